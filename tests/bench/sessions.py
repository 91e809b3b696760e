"""8. Long sessions: the largest body a client that compacts like Claude Code sends (issue 31).

In this process, no servers: the request addon's trimming (trim_request) and
the usage the response addon would report, turn after turn of one session, as
the soak of issue 31 ran it (a 200K window, 8-30 KB pasted each turn). The
client sends its whole history every turn and compacts when its count (the
last answer's usage) passes the window it believes, or when it is answered
"prompt is too long". It believes 1M tokens: Claude Code 2.1.332 without the
aliases' window variables.

Two ways: "now", where a trimmed answer's usage counts what the client sent and
a history past the window before its turn is refused (the bound), and
"without", where the usage is what the backend received and every turn is
trimmed. The figure is the largest body the client sends, in bytes of JSON.
"""

import random

import orjson

from addons.config.policy import ModelPolicy
from addons.messages.memo import Memo
from addons.request.trim import trim_request
from litellm_service.aliases import CLAUDE_CODE_OUTPUT_RESERVE_CAP

POLICY = ModelPolicy(context_window=200_000, max_output_tokens=32_000)
BELIEVED_WINDOW = 1_000_000
SUMMARY_BUFFER = 13_000  # Claude Code compacts this far below its window, less its output reserve
WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike".split()
TURNS = 1_000


def _pasted(rng: random.Random, turn: int) -> str:
    size = rng.randint(8_000, 30_000)
    return (f"Turn {turn}: " + " ".join(f"{rng.choice(WORDS)}{rng.randrange(10_000)}" for _ in range(size // 9)))[:size]


def run(turns: int, bounded: bool) -> dict:
    """One session of `turns` turns; the largest body, the compactions and the turns trimmed."""
    rng = random.Random(31)
    threshold = BELIEVED_WINDOW - min(POLICY.max_output_tokens, CLAUDE_CODE_OUTPUT_RESERVE_CAP) - SUMMARY_BUFFER
    task = {"role": "user", "content": "The task: remember the word ORCHID."}
    history: list[dict] = [task, {"role": "assistant", "content": "Noted."}]
    sizes = [len(orjson.dumps(message)) for message in history]
    count, largest, compactions, trimmed_turns, memo = 0, 0, 0, 0, Memo()

    def send(messages: list[dict], summary: bool = False):
        nonlocal largest, memo
        largest = max(largest, sum(sizes) + len(orjson.dumps(messages[-1])) + 200)
        request = {"model": "m", "max_tokens": 32_000, "messages": messages}
        memo = Memo(memo)
        return trim_request(
            request, POLICY, (), memo, history_bound=POLICY.context_window if bounded and not summary else None
        )

    def compact() -> None:
        nonlocal history, sizes, count, compactions
        compactions += 1
        ask = {"role": "user", "content": "Summarise the conversation."}
        send([*history, ask], summary=True)
        history = [{"role": "user", "content": "Summary: remember ORCHID."}, {"role": "assistant", "content": "Noted."}]
        sizes, count = [len(orjson.dumps(message)) for message in history], 0

    for turn in range(turns):
        pending = {"role": "user", "content": _pasted(rng, turn)}
        if count > threshold:
            compact()
        trimmed = send([*history, pending])
        if trimmed.too_long:
            compact()
            trimmed = send([*history, pending])
        trimmed_turns += trimmed.tokens_after < trimmed.tokens_before
        count = trimmed.tokens_before if bounded else trimmed.tokens_after
        answer = {"role": "assistant", "content": "Noted."}
        history += [pending, answer]
        sizes += [len(orjson.dumps(pending)), len(orjson.dumps(answer))]
    return {"largest body MB": largest / 1e6, "compactions": compactions, "trimmed turns": trimmed_turns}


def measure(progress, turns: int = TURNS) -> dict:
    results = {}
    for way, bounded in (("now", True), ("without", False)):
        progress(f"sessions: {turns} turns, {way}")
        results[way] = run(turns, bounded)
    return {"turns": turns, **results}
