"""How trimming works: fitting a long history into the model's context window.

Budget = context_window - max_tokens (already capped) - safety_margin_tokens,
all from the model's policy. The request's size is estimated with a real
tokenizer (addons/messages/tokens.py; counts are cached per message, so only a turn's new
messages are counted). When the estimate is over budget, or the history has more
than `max_messages`, whole messages are removed from the middle:

    kept start | removed gap | tail, from an assistant turn to the end
    U0           A1 U2 .. U8   A9 U10 .. A(n-2) U(n-1)

- The start is the first `keep_first_messages` messages (default 1: the task),
  shortened until it ends with a user turn.
- The tail starts at an assistant turn, so the result keeps alternating user,
  assistant, user. Its shortest form is the last turn: the last assistant
  message before the final user message, and everything after it.
- A cut is allowed only where no tool_use/tool_result pair straddles the gap:
  nothing in the result answers a removed tool_use, and no kept tool_use loses
  its answer.
- The first user turn after the gap gets a text block saying how many messages
  were omitted (after its tool_result blocks, which must come first), followed
  by any <system-reminder> folded from a system message in the gap: system
  text is never lost. When the tail's first tool results come split over
  several user turns, the text goes to the last of them (shaping.defers_text).
- If even the start plus the last turn is over budget and the last turn holds
  tool results (a file or a command's output far larger than the window), the
  largest results are shortened in their middle, head and tail kept, with a
  note saying how many tokens were cut, until the request fits. Otherwise
  nothing is sent: the caller answers "prompt is too long: N tokens > M
  maximum", on which Claude Code offers /compact. The user's own words in the
  current turn are never cut.

Prefix stability. Backends such as DeepSeek cache by prefix: a request whose
messages begin with exactly the previous request's messages is cheap and fast.
A sliding window (cut just enough each turn) moves the cut on almost every turn
and so misses that cache. Instead the amount removed goes in steps of
H = budget - low_water, where low_water = budget * low_water_percent / 100:

    k = ceil((tokens - budget) / H)        removed >= k * H

and the cut is the first allowed one that removes at least k * H tokens. The
history is append-only and counts are deterministic, so while k stays the same
the cut stays at the same message, turn after turn: the kept prefix (start,
note, and the tail's old part) is byte-identical and only new messages are
appended. Each time k steps up, the kept part drops back to about low_water
and then grows again for H tokens before the next cut. (A history first seen
far over budget lands anywhere between low_water and the budget, and falls
into that rhythm at its next cut.) The 300-turn replay of tests/pure/test_trim.py
checks it: at least 90% of trimmed turns keep the previous request as their
prefix, where a token sliding window keeps under half and the origin article's
message window almost none (the shares of a run: docs/benchmarks.md).

The message-count limit steps the same way, in messages. The article's "first
10 + last 90 above 100" is max_messages: 100, keep_first_messages: 10,
low_water_percent: 100 (the start then holds 9 messages, to end on a user turn).

The bound. Trimming is a bridge, not a way of life: the usage reported for a
trimmed request counts what the client sent (addons/response/usage.py,
add_trimmed), so a client that compacts by its own count does so at once. One
that does not (Claude Code told of a larger window than the model's, or none)
would send an ever longer history, up to the body limit. So when the request
without its latest turn (the previous request, which was trimmed already) is
over `history_bound` (the caller passes the model's context window), it is not
trimmed again: the caller answers "prompt is too long", on which Claude Code
compacts by itself (its reactive compaction). The latest turn does not count:
one huge tool result is still shortened and sent. Claude Code's own compaction
request (its summary instructions in the last user message, is_compaction_request)
is never bounded: it is what makes the history short again.

Nothing here keeps state between requests: the same history always gets the
same cut, whichever process or restart handles it.
"""

from collections.abc import Collection
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from addons.config.policy import ModelPolicy
from addons.flow.change import Change, ChangeKind
from addons.messages.memo import Memo
from addons.messages.tokens import MessageEstimate, count_fixed, count_message, count_text, estimate_message
from addons.request.shaping import add_text_blocks, defers_text, role_of

OMITTED_NOTE = "[{} earlier messages of this conversation were omitted here to fit the model's context window.]"
# The sentence of Claude Code's summary instructions that names the task (2.1.x).
SUMMARY_INSTRUCTION = "create a detailed summary of the conversation"
CUT_NOTE = "\n[... {} tokens of this tool result were cut here to fit the model's context window ...]\n"
# A shortened tool result keeps at least this much of its text, head and tail together.
MIN_RESULT_TOKENS = 256
# Shortening aims this far below the budget: the cut is made by characters, the count is by tokens.
SHORTEN_SLACK = 0.02


@dataclass(frozen=True)
class Trimmed:
    request: dict
    tokens_before: int
    tokens_after: int
    budget: int
    removed: int = 0
    # True when even the start plus the last turn is over budget: answer, do not send.
    too_long: bool = False
    # Tokens cut from the last turn's tool results (see shorten_tool_results).
    shortened: int = 0
    # True when the history before the latest turn is over `history_bound` (too_long too).
    over_bound: bool = False

    def changes(self) -> list[Change]:
        """What trimming did, as the flow's change records."""
        changes = []
        if self.shortened:
            shortened = f"shortened the last turn's tool results by {self.shortened} tokens"
            changes.append(Change(ChangeKind.TRIMMED, shortened))
        if self.removed:
            changes.append(Change(ChangeKind.TRIMMED, f"trimmed {self.removed} messages"))
        return changes


def trim_request(
    request: dict,
    policy: ModelPolicy,
    reminders: Collection[str] = (),
    memo: Memo | None = None,
    *,
    shorten: bool = True,
    history_bound: int | None = None,
) -> Trimmed:
    """Fit `request` (already shaped: roles alternate) into `policy`'s budget.

    `reminders` are the texts folded from system messages, carried over when
    their message is cut. `memo`: estimates of values seen before, by identity.
    `shorten`: whether the last turn's tool results may be shortened when cutting
    messages is not enough. `history_bound`: tokens the request without its
    latest turn (what went before the last assistant message: the previous
    request) may hold and still be trimmed; over it, too_long (see the bound),
    unless the request is Claude Code's compaction request (is_compaction_request).
    """
    messages = request["messages"]
    estimates = [estimate_message(message, memo) for message in messages]
    tokens = count_fixed(request, memo) + sum(estimate.tokens for estimate in estimates)
    budget = policy.input_budget(request.get("max_tokens"))
    unchanged = Trimmed(request, tokens, tokens, budget)

    token_goal = _removal_goal(tokens, budget, policy.low_water_percent)
    count_goal = 0
    if policy.max_messages:
        count_goal = _removal_goal(len(messages), policy.max_messages, policy.low_water_percent)
    if not token_goal and not count_goal:
        return unchanged
    if (
        token_goal
        and history_bound is not None
        and _earlier_tokens(request, estimates, memo) > history_bound
        and not is_compaction_request(messages)
    ):
        return Trimmed(request, tokens, tokens, budget, too_long=True, over_bound=True)

    start = _start_length(messages, policy.keep_first_messages)
    cuts = _allowed_cuts(messages, estimates, start)
    # removed_tokens[t - start]: tokens of messages[start:t]
    removed_tokens = [0, *accumulate(estimate.tokens for estimate in estimates[start:])]
    wanted = [t for t in cuts if t - start >= count_goal and removed_tokens[t - start] >= token_goal]
    for cut in wanted or cuts[-1:]:
        # The first user turn after the gap carries the note (cuts leave one in the tail, and
        # the last user turn never defers).
        noted = next(
            i for i in range(cut, len(messages)) if role_of(messages[i]) == "user" and not defers_text(messages, i)
        )
        noted_message = add_text_blocks(messages[noted], _inserted_blocks(messages, start, cut, reminders))
        after = tokens - removed_tokens[cut - start] - estimates[noted].tokens + count_message(noted_message)
        if after <= budget:
            kept = [*messages[:start], *messages[cut:noted], noted_message, *messages[noted + 1 :]]
            return Trimmed({**request, "messages": kept}, tokens, after, budget, removed=cut - start)
    if not token_goal or not shorten:
        return Trimmed(request, tokens, tokens, budget, too_long=True) if token_goal else unchanged
    smallest = tokens - (removed_tokens[cuts[-1] - start] if cuts else 0)
    return _with_results_shortened(request, policy, reminders, memo, smallest, tokens, budget) or Trimmed(
        request, tokens, tokens, budget, too_long=True
    )


def _with_results_shortened(
    request: dict,
    policy: ModelPolicy,
    reminders: Collection[str],
    memo: Memo | None,
    smallest: int,
    tokens: int,
    budget: int,
) -> Trimmed | None:
    """The request fitted by shortening the last turn's tool results, then trimmed; None if that cannot fit it.

    `smallest`: the tokens the shortest allowed cut leaves (the omission note aside: SHORTEN_SLACK covers it)."""
    messages = request["messages"]
    for attempt in range(1, 4):  # the cut is by characters: a text of short tokens may need a second go
        last = messages[-1] if messages else None
        shortened = shorten_tool_results(last, smallest - budget + int(budget * SHORTEN_SLACK * attempt))
        if shortened is None:
            return None
        last, cut_tokens = shortened
        trimmed = trim_request({**request, "messages": [*messages[:-1], last]}, policy, reminders, memo, shorten=False)
        if not trimmed.too_long:
            return Trimmed(trimmed.request, tokens, trimmed.tokens_after, budget, trimmed.removed, shortened=cut_tokens)
    return None


def shorten_tool_results(message: Any, excess: int) -> tuple[dict, int] | None:
    """`message` with its largest tool results' text cut by `excess` tokens in all, and the
    tokens cut; None when it has no tool result with that much text to spare."""
    content = message.get("content") if isinstance(message, dict) and role_of(message) == "user" else None
    if not isinstance(content, list) or excess <= 0:
        return None
    sizes = {index: count_text(_result_text(block)) for index, block in enumerate(content) if _is_result(block)}
    spare = {index: size - MIN_RESULT_TOKENS for index, size in sizes.items() if size > MIN_RESULT_TOKENS}
    if sum(spare.values()) < excess:
        return None
    blocks, left = list(content), excess
    for index in sorted(spare, key=spare.__getitem__, reverse=True):
        if left <= 0:
            break
        cut = min(left, spare[index])
        blocks[index] = _shortened_result(blocks[index], sizes[index], cut)
        left -= cut
    return {**message, "content": blocks}, excess - max(left, 0)


def _is_result(block: Any) -> bool:
    return isinstance(block, dict) and block.get("type") == "tool_result"


def _result_text(block: dict) -> str:
    content = block.get("content")
    if isinstance(content, str):
        return content
    return "".join(item["text"] for item in _text_blocks(content))


def _text_blocks(content: Any) -> list[dict]:
    items = content if isinstance(content, list) else []
    return [item for item in items if isinstance(item, dict) and isinstance(item.get("text"), str)]


def _shortened_result(block: dict, size: int, cut: int) -> dict:
    """A tool result whose text is shorter by about `cut` of its `size` tokens, cut in the middle."""
    content = block.get("content")
    if isinstance(content, str):
        return {**block, "content": _cut_middle(content, size, cut)}
    assert isinstance(content, list)  # shorten_tool_results passes only results with text to spare
    # The longest text block gives the tokens (a result's text is usually one block).
    longest = max(_text_blocks(content), key=lambda item: len(item["text"]))
    share = len(longest["text"]) / max(1, len("".join(item["text"] for item in _text_blocks(content))))
    shortened = {**longest, "text": _cut_middle(longest["text"], round(size * share), cut)}
    return {**block, "content": [shortened if item is longest else item for item in content]}


def _cut_middle(text: str, size: int, cut: int) -> str:
    """`text` (of `size` tokens) without about `cut` tokens from its middle, and a note in their place."""
    keep_chars = int(len(text) * max(0, size - cut) / max(1, size))
    head = keep_chars * 2 // 3  # the start of an output says most about what it is
    tail = keep_chars - head
    return text[:head] + CUT_NOTE.format(cut) + (text[len(text) - tail :] if tail else "")


def _earlier_tokens(request: dict, estimates: list[MessageEstimate], memo: Memo | None) -> int:
    """Tokens of the request without its latest turn: the messages before the last assistant one."""
    messages = request["messages"]
    last_assistant = next((i for i in range(len(messages) - 1, -1, -1) if role_of(messages[i]) == "assistant"), None)
    if last_assistant is None:
        return 0  # a first turn: nothing was sent before it
    return count_fixed(request, memo) + sum(estimate.tokens for estimate in estimates[:last_assistant])


def _removal_goal(size: int, limit: int, low_water_percent: int) -> int:
    """How much to remove: 0 within the limit, else the excess rounded up to a step."""
    if size <= limit:
        return 0
    step = max(1, limit - limit * low_water_percent // 100)
    return -(-(size - limit) // step) * step


def _start_length(messages: list, keep_first: int) -> int:
    """Length of the kept start: at most `keep_first` messages, ending with a user turn."""
    length = min(keep_first, len(messages))
    while length and role_of(messages[length - 1]) != "user":
        length -= 1
    if length:
        return length
    # The history does not open with the user: keep through its first user turn.
    first_user = next((i for i, message in enumerate(messages) if role_of(message) == "user"), len(messages))
    return first_user + 1


def _allowed_cuts(messages: list, estimates: list[MessageEstimate], start: int) -> list[int]:
    """Indices t where the tail messages[t:] may begin, ascending (t > start)."""
    last_user = next((i for i in range(len(messages) - 1, -1, -1) if role_of(messages[i]) == "user"), None)
    if last_user is None:
        return []
    # t may not exceed `latest`; t is blocked where blocked_depth[t] > 0.
    latest = last_user - 1
    blocked_depth = [0] * (len(messages) + 1)
    used_at: dict[str, int] = {}
    for index, estimate in enumerate(estimates):
        for answered in estimate.answered_ids:
            used = used_at.get(answered, index)
            if used == index:
                continue  # answers nothing earlier: not trimming's doing
            if used < start:
                if index >= start:
                    latest = min(latest, index)  # the start's tool_use keeps its answer
            else:
                blocked_depth[used + 1] += 1  # a cut in (used, index] would split the pair
                blocked_depth[index + 1] -= 1
        for tool_use_id in estimate.tool_use_ids:
            used_at.setdefault(tool_use_id, index)
    depth = list(accumulate(blocked_depth))
    return [t for t in range(start + 1, latest + 1) if role_of(messages[t]) == "assistant" and depth[t] == 0]


def _inserted_blocks(messages: list, start: int, cut: int, reminders: Collection[str]) -> list[dict]:
    """The omission note and the system reminders that only the gap held."""
    inserted = [{"type": "text", "text": OMITTED_NOTE.format(cut - start)}]
    if not reminders:
        return inserted
    reminders = set(reminders)
    seen = {
        text for message in messages[:start] for block in _blocks(message) if isinstance(text := block.get("text"), str)
    }
    for message in messages[start:cut]:
        if role_of(message) != "user" or not isinstance(content := message.get("content"), list):
            continue  # fold puts reminders in user turns, always as blocks
        for block in content:
            text = block.get("text") if isinstance(block, dict) else None
            if isinstance(text, str) and text in reminders and text not in seen:
                seen.add(text)
                inserted.append({"type": "text", "text": text})
    return inserted


def _blocks(message: Any) -> list[dict]:
    content = message.get("content") if isinstance(message, dict) else None
    return [block for block in content if isinstance(block, dict)] if isinstance(content, list) else []


def is_compaction_request(messages: list[Any]) -> bool:
    """Whether the last user message carries Claude Code's request for a summary.

    Claude Code 2.1.332 asks for its summary by adding its instructions as a text
    block to the last user message of the history it sends (captured 2026-12-06,
    tests/e2e/test_compaction_after_trim.py): the whole history, however long, goes
    with it."""
    last = next((message for message in reversed(messages) if role_of(message) == "user"), None)
    content = last.get("content") if isinstance(last, dict) else None
    blocks = content if isinstance(content, list) else [{"text": content}]
    return any(
        isinstance(block, dict) and isinstance(text := block.get("text"), str) and SUMMARY_INSTRUCTION in text
        for block in blocks
    )
