"""Trimming (addons/request/trim.py): the middle of a history removed down to the low-water mark with a
note, tool pairs never split, a tool result larger than the window shortened, the bound before a
turn; hypothesis: a trimmed history keeps the API's rules and a stable prefix.
"""

import json
import random
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from addons.config.policy import ModelPolicy
from addons.messages.tokens import count_text, estimate_request
from addons.request.shaping import SYSTEM_REMINDER, shape_request
from addons.request.trim import OMITTED_NOTE, SUMMARY_INSTRUCTION, shorten_tool_results, trim_request

RECORDED = json.loads((Path(__file__).parent.parent / "data" / "claude_code_request.json").read_text())
SYSTEM_PROMPT = "You are a coding agent."
TOOLS = [{"name": "Read", "description": "Read a file", "input_schema": {"type": "object", "properties": {}}}]
WORDS = "alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega".split()


def words(n: int, seed: int = 0) -> str:
    return " ".join(WORDS[(i * 7 + seed) % len(WORDS)] + str(i % 13) for i in range(n))


def user(*content) -> dict:
    return {"role": "user", "content": list(content)}


def assistant(*content) -> dict:
    return {"role": "assistant", "content": list(content)}


def text(value: str) -> dict:
    return {"type": "text", "text": value}


def tool_use(id_: str) -> dict:
    return {"type": "tool_use", "id": id_, "name": "Read", "input": {"file_path": f"/src/{id_}.py"}}


def tool_result(id_: str, size: int = 50) -> dict:
    return {"type": "tool_result", "tool_use_id": id_, "content": words(size, len(id_))}


def request_of(messages: list, max_tokens: int = 100) -> dict:
    return {"model": "m", "system": SYSTEM_PROMPT, "tools": TOOLS, "max_tokens": max_tokens, "messages": messages}


def policy_for(budget: int, **settings) -> ModelPolicy:
    """A policy whose prompt budget is `budget` for requests with max_tokens=100."""
    return ModelPolicy(context_window=budget + 100, max_output_tokens=100, safety_margin_tokens=0, **settings)


def agent_session(turns: int, seed: int = 1, result_words: tuple[int, int] = (50, 400)) -> list[dict]:
    """The task, then `turns` rounds of assistant tool call / user tool result."""
    rng = random.Random(seed)
    messages = [user(text("fix the bug in parser.py"))]
    for i in range(turns):
        messages.append(assistant(text(words(rng.randint(5, 30), i)), tool_use(f"t{i}")))
        messages.append(user(tool_result(f"t{i}", rng.randint(*result_words))))
    return messages


def note_of(message: dict) -> str | None:
    for block in message["content"]:
        if isinstance(block, dict) and block.get("text", "").startswith("[") and "were omitted" in block["text"]:
            return block["text"]
    return None


# --- examples -----------------------------------------------------------------------------


def test_under_budget_nothing_changes():
    request = request_of(agent_session(5))
    trimmed = trim_request(request, policy_for(100_000))
    assert trimmed.request is request and trimmed.removed == 0 and not trimmed.too_long
    assert trimmed.tokens_before == trimmed.tokens_after == estimate_request(request)


def test_middle_is_removed_and_a_note_says_how_much():
    messages = agent_session(40)
    request = request_of(messages)
    total = estimate_request(request)
    trimmed = trim_request(request, policy_for(total // 2))
    out = trimmed.request["messages"]
    assert trimmed.removed > 0 and len(out) == len(messages) - trimmed.removed
    assert out[0] is messages[0]
    assert out[1] is messages[trimmed.removed + 1] and out[1]["role"] == "assistant"
    # The note rides in the first user turn after the gap, after its tool_result.
    assert out[2]["content"][0] == messages[trimmed.removed + 2]["content"][0]
    assert out[2]["content"][1] == text(OMITTED_NOTE.format(trimmed.removed))
    assert out[3:] == messages[trimmed.removed + 3 :]
    assert trimmed.tokens_after == estimate_request(trimmed.request) <= trimmed.budget


def test_growing_past_the_budget_trims_down_to_the_low_water_mark():
    messages = agent_session(40)
    budget = estimate_request(request_of(messages[:-2])) + 10  # the newest turn tips it over
    trimmed = trim_request(request_of(messages), policy_for(budget))
    largest_message = max(estimate_request({"messages": [m]}) for m in messages)
    assert trimmed.removed and trimmed.tokens_after <= budget * 0.7 + largest_message


def test_a_tool_pair_across_turns_is_never_split():
    messages = [
        user(text("task")),
        assistant(tool_use("slow")),
        user(text(words(300))),  # the user interjects; the tool answers later
        assistant(text(words(300))),
        user(tool_result("slow"), text(words(300))),
        assistant(text("done")),
        user(text("thanks")),
    ]
    request = request_of(messages)
    trimmed = trim_request(request, policy_for(estimate_request(request) - 50))
    out = trimmed.request["messages"]
    assert trimmed.removed == 4  # cutting at 3 would orphan the result; 5 removes the pair
    assert [m["content"][0] for m in out[1:2]] == [text("done")]


def test_the_starting_tool_use_keeps_its_answer():
    messages = [
        user(text("task")),
        assistant(tool_use("a")),
        user(tool_result("a", 400)),
        assistant(text(words(400))),
        user(text(words(400))),
        assistant(text("ok")),
        user(text("go on")),
    ]
    request = request_of(messages)
    trimmed = trim_request(request, policy_for(estimate_request(request) - 50, keep_first_messages=3))
    out = trimmed.request["messages"]
    assert out[:3] == messages[:3] and trimmed.removed == 2


def test_system_text_in_the_gap_is_carried_over():
    messages = agent_session(30)
    reminder = SYSTEM_REMINDER.format("Available agent types: Explore, Plan")
    messages[3] = user(*messages[3]["content"], text(reminder))
    request = request_of(messages)
    trimmed = trim_request(request, policy_for(estimate_request(request) // 2), reminders=[reminder])
    out = trimmed.request["messages"]
    assert trimmed.removed > 3
    assert out[2]["content"][1:3] == [text(OMITTED_NOTE.format(trimmed.removed)), text(reminder)]
    assert estimate_request(trimmed.request) == trimmed.tokens_after <= trimmed.budget


def test_a_last_turn_that_cannot_fit_is_too_long():
    messages = agent_session(10)
    messages[-1] = user(tool_result("t9", 300), text(words(5000)))  # the user's own words are never cut
    request = request_of(messages)
    trimmed = trim_request(request, policy_for(3000))
    assert trimmed.too_long and trimmed.request is request
    assert trimmed.tokens_before == estimate_request(request) > trimmed.budget == 3000


def test_a_tool_result_larger_than_the_window_is_shortened_in_its_middle():
    messages = agent_session(10)
    original = words(40_000, seed=7)
    messages[-1] = user(
        {"type": "tool_result", "tool_use_id": "t9", "content": original},
        {**tool_result("t9b", 2000), "tool_use_id": "t9"},
    )
    request = request_of(messages)
    trimmed = trim_request(request, policy_for(6000))
    assert not trimmed.too_long and trimmed.removed > 0
    assert estimate_request(trimmed.request) == trimmed.tokens_after <= trimmed.budget
    big, small = trimmed.request["messages"][-1]["content"][:2]
    head, note, tail = big["content"].partition("\n[... ")
    assert original.startswith(head) and original.endswith(tail.split("...]\n", 1)[1]) and len(head) > 1000
    assert f"{trimmed.shortened} tokens of this tool result were cut here" in note + tail
    assert small == messages[-1]["content"][1]  # the largest goes first
    assert trimmed.shortened >= trimmed.tokens_before - estimate_request(trimmed.request) - 40_000 // 2


def test_results_too_small_to_spare_enough_are_too_long():
    messages = agent_session(3)
    messages[-1] = user(*[{**tool_result("t2", 300), "tool_use_id": "t2"}] * 3)
    assert trim_request(request_of(messages), policy_for(500)).too_long
    assert shorten_tool_results(messages[-1], 10**6) is None
    assert shorten_tool_results(assistant(text("a")), 10) is None


def test_a_single_message_too_long():
    request = request_of([user(text(words(3000)))])
    assert trim_request(request, policy_for(1000)).too_long


def test_message_limit_is_the_articles_first_10_last_90():
    messages = agent_session(75)  # 151 messages
    policy = policy_for(10**9, max_messages=100, keep_first_messages=10, low_water_percent=100)
    trimmed = trim_request(request_of(messages), policy)
    out = trimmed.request["messages"]
    # The kept start ends with a user turn (9 messages), the tail starts with an assistant
    # turn: 52 removed, one more than 151 - 100, to keep the roles alternating.
    assert trimmed.removed == 52 and len(out) == 99
    assert out[:9] == messages[:9] and out[9] is messages[61] and out[11:] == messages[63:]


def test_message_limit_steps_down_to_its_low_water_mark():
    policy = policy_for(10**9, max_messages=100, low_water_percent=70)
    messages, sizes, cuts = agent_session(30), [], []
    for turn in range(30, 150):
        messages += agent_session(turn + 1)[-2:]
        trimmed = trim_request(request_of(messages), policy)
        sizes.append(len(trimmed.request["messages"]))
        cuts.append(trimmed.removed)
    assert max(sizes) <= 100
    new_cuts = [size for size, cut, before in zip(sizes[1:], cuts[1:], cuts) if cut != before]
    assert len(new_cuts) >= 5 and all(size <= 72 for size in new_cuts)


# --- properties over generated conversations ----------------------------------------------


@st.composite
def conversations(draw) -> dict:
    """Claude Code-like histories: text, tool chains with parallel calls, images, thinking,
    late tool answers and system messages anywhere, ending with a user turn."""
    ids = iter(range(10**6))
    size = st.integers(1, 300)
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    messages = [user(text(words(draw(size), 1)), *([image] if draw(st.booleans()) else []))]
    for _ in range(draw(st.integers(0, 25))):
        calls = [f"t{next(ids)}" for _ in range(draw(st.sampled_from([0, 1, 1, 2, 3])))]
        thinking = [{"type": "thinking", "thinking": words(draw(size)), "signature": "s"}] * draw(st.integers(0, 1))
        messages.append(assistant(*thinking, text(words(draw(size), 2)), *map(tool_use, calls)))
        if calls and draw(st.integers(0, 9)) == 0:
            # Not valid for the API, but seen in the wild: the answer arrives a turn late.
            messages += [user(text(words(draw(size), 4))), assistant(text(words(draw(size), 5)))]
        if calls:
            results = [tool_result(call, draw(size)) for call in calls]
            if draw(st.booleans()):
                results[0] = {**results[0], "content": [text(words(draw(size))), image]}
            messages.append(user(*results))
        else:
            messages.append(user(text(words(draw(size), 3))))
    for _ in range(draw(st.integers(0, 4))):
        position = draw(st.integers(1, len(messages)))
        messages.insert(position, {"role": "system", "content": f"system note {next(ids)}: " + words(draw(size))})
    return request_of(messages)


def tool_ids(messages: list, key: str, kind: str) -> list[str]:
    return [b[key] for m in messages for b in m["content"] if isinstance(b, dict) and b.get("type") == kind]


def allowed_cuts(messages: list, start: int) -> list[int]:
    """By brute force: where a tail (from an assistant turn, before the last user turn) may
    start so that no tool pair has one side in the removed gap and the other kept."""
    last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
    cuts = []
    for cut in range(start + 1, last_user):
        gap, kept = messages[start:cut], messages[:start] + messages[cut:]
        splits = set(tool_ids(gap, "id", "tool_use")) & set(tool_ids(kept, "tool_use_id", "tool_result")) or set(
            tool_ids(kept, "id", "tool_use")
        ) & set(tool_ids(gap, "tool_use_id", "tool_result"))
        if messages[cut]["role"] == "assistant" and not splits:
            cuts.append(cut)
    return cuts


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    conversations(),
    st.floats(0.25, 1.2),
    st.integers(1, 100),
    st.integers(1, 4),
    st.sampled_from([0, 0, 8, 30]),
)
def test_trimmed_history_keeps_the_api_rules(request, budget_share, low_water, keep_first, max_messages):
    shaped = shape_request(request, ModelPolicy())
    messages = shaped.request["messages"]
    budget = int(estimate_request(shaped.request) * budget_share)
    policy = policy_for(
        budget,
        low_water_percent=low_water,
        keep_first_messages=keep_first,
        max_messages=max(max_messages, keep_first + 2) if max_messages else 0,
    )
    trimmed = trim_request(shaped.request, policy, shaped.reminders)
    assert trimmed.budget == budget
    event("too long" if trimmed.too_long else "trimmed" if trimmed.removed else "untouched")

    start = max(i + 1 for i in range(min(keep_first, len(messages))) if messages[i]["role"] == "user")
    cuts = allowed_cuts(messages, start)
    if trimmed.too_long:
        assert trimmed.request is shaped.request and trimmed.tokens_before > budget
        # No allowed cut fits, not even with the note and carried system text left out of the count.
        carried = sum(count_text(r) + 3 for r in shaped.reminders) + 40
        for cut in cuts:
            kept = messages[:start] + messages[cut:]
            assert estimate_request({**shaped.request, "messages": kept}) + carried > budget
        return

    out = trimmed.request["messages"]
    roles = [m["role"] for m in out]
    assert roles[0] == "user" and all(a != b for a, b in zip(roles, roles[1:]))
    used = tool_ids(out, "id", "tool_use")
    assert sorted(tool_ids(out, "tool_use_id", "tool_result")) == sorted(used)  # no orphan, none unanswered
    for index, message in enumerate(out):  # each result comes after its call
        for result in tool_ids([message], "tool_use_id", "tool_result"):
            assert result in tool_ids(out[:index], "id", "tool_use")
    assert trimmed.tokens_after == estimate_request(trimmed.request) <= budget
    assert out[0] == messages[0]
    if len(messages) > 1:
        assert out[-2] == messages[-2]
    inserted_text = {OMITTED_NOTE.format(trimmed.removed), *shaped.reminders}
    kept_last = [b for b in out[-1]["content"] if b.get("text") not in inserted_text]
    sent_last = [b for b in messages[-1]["content"] if b.get("text") not in inserted_text]
    if trimmed.shortened:
        event("shortened")
        assert len(kept_last) == len(sent_last) and any(a != b for a, b in zip(kept_last, sent_last))
        for kept, sent in zip(kept_last, sent_last):
            if kept != sent:  # a tool result cut in its middle: head and tail as they were
                assert kept["type"] == sent["type"] == "tool_result" and kept["tool_use_id"] == sent["tool_use_id"]
                head, _, rest = result_text(kept).partition("\n[... ")
                tail = rest.split(" ...]\n", 1)[1]
                assert result_text(sent).startswith(head) and result_text(sent).endswith(tail)
    else:
        assert kept_last == sent_last
    all_text = {b.get("text") for m in out for b in m["content"]}
    for message in request["messages"]:
        if message["role"] == "system":
            assert SYSTEM_REMINDER.format(message["content"]) in all_text
    if policy.max_messages and len(out) > policy.max_messages:
        # Only when tool pairs leave no cut short enough.
        assert (start + len(messages) - cuts[-1] if cuts else len(messages)) > policy.max_messages
    if trimmed.removed:
        assert sum(note_of(m) is not None for m in out) == 1
    elif not trimmed.shortened:
        assert trimmed.request is shaped.request


def result_text(block: dict) -> str:
    content = block["content"]
    return content if isinstance(content, str) else "".join(b.get("text", "") for b in content)


# --- prefix stability ---------------------------------------------------------------------


def replay_session(policy: ModelPolicy, turns: int) -> tuple[float, int]:
    """Replays a Claude Code session turn by turn, as the addon sees it. Returns, over the
    turns that needed trimming, the share whose request starts with the previous request's
    messages (a backend prefix-cache hit), and how many turns needed trimming."""
    rng = random.Random(7)
    messages = [
        user(text("refactor the storage layer")),
        {"role": "system", "content": "Available agent types: Explore, Plan"},
    ]
    previous, hits, trimmed_turns = None, 0, 0
    for turn in range(turns):
        messages.append(assistant(text(words(rng.randint(10, 60), turn)), tool_use(f"t{turn}")))
        messages.append(user(tool_result(f"t{turn}", rng.randint(100, 1500))))
        # Claude Code marks the newest block for its prompt cache; the marker moves every turn.
        marked = user({**messages[-1]["content"][0], "cache_control": {"type": "ephemeral"}})
        shaped = shape_request({**RECORDED, "messages": [*messages[:-1], marked]}, policy)
        trimmed = trim_request(shaped.request, policy, shaped.reminders)
        assert not trimmed.too_long
        out = trimmed.request["messages"]
        if trimmed.removed:
            trimmed_turns += 1
            hits += previous is not None and out[: len(previous)] == previous
        previous = out
    return hits / trimmed_turns, trimmed_turns


def test_kept_prefix_is_stable_across_turns():
    budget = 100_000  # the recorded request's system prompt and tools take about 16K of it
    stable, trimmed_turns = replay_session(policy_for(budget), 300)
    sliding, _ = replay_session(policy_for(budget, low_water_percent=100), 300)
    article, _ = replay_session(policy_for(10**7, max_messages=100, keep_first_messages=10, low_water_percent=100), 300)
    print(
        f"\nprefix kept turn to turn, over {trimmed_turns} trimmed turns of 300: low-water {stable:.0%}, "
        f"token sliding window {sliding:.0%}, first 10 + last 90 {article:.0%}"
    )
    assert trimmed_turns > 200
    assert stable >= 0.9
    assert sliding < 0.5 and article < 0.05


# --- malformed input ----------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(
        st.sampled_from(["type", "text", "content", "role", "id", "tool_use_id", "name"]), children, max_size=4
    ),
    max_leaves=20,
)
odd_blocks = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "tool_use", "tool_result", "thinking", "image", "document", None])},
    optional={
        "text": json_values,
        "id": st.sampled_from(["a", "b", 1]),
        "tool_use_id": st.sampled_from(["a", "b", None, []]),
        "content": json_values,
        "cache_control": json_values,
    },
)
odd_messages = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant", "system", "other"])},
        optional={"content": st.one_of(json_values, st.lists(st.one_of(odd_blocks, json_values), max_size=4))},
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(odd_messages, max_size=10),
    st.dictionaries(st.sampled_from(["system", "tools", "tool_choice", "max_tokens", "stream"]), json_values),
    st.integers(200, 2000),
)
def test_malformed_requests_never_raise(messages, extra, window):
    policy = ModelPolicy(context_window=window, max_output_tokens=50, safety_margin_tokens=0, max_messages=4)
    shaped = shape_request({"model": "m", "messages": messages, **extra}, policy)
    trimmed = trim_request(shaped.request, policy, shaped.reminders)
    assert trimmed.too_long or trimmed.tokens_after <= trimmed.budget or not trimmed.removed


# --- the bound: a history already too long before its turn -------------------------------


def test_a_history_over_the_bound_before_its_turn_is_too_long_untrimmed():
    messages = agent_session(40)
    earlier = estimate_request(request_of(messages[:-2]))  # the previous request: up to the last assistant
    budget = earlier // 2
    trimmed = trim_request(request_of(messages), policy_for(budget), history_bound=earlier - 1)
    assert trimmed.too_long and trimmed.over_bound and trimmed.removed == 0
    assert trimmed.tokens_before == estimate_request(request_of(messages))


def test_claude_codes_compaction_request_over_the_bound_is_trimmed():
    # Its summary instructions ride on the last user message: the request that makes the history short.
    messages = agent_session(40)
    earlier = estimate_request(request_of(messages[:-2]))
    asking = [*messages[:-1], user(text(f"Your task is to {SUMMARY_INSTRUCTION} so far."))]
    trimmed = trim_request(request_of(asking), policy_for(earlier // 2), history_bound=earlier - 1)
    assert trimmed.removed and not trimmed.too_long and not trimmed.over_bound


def test_a_history_within_the_bound_before_its_turn_is_trimmed():
    messages = agent_session(40)
    earlier = estimate_request(request_of(messages[:-2]))
    trimmed = trim_request(request_of(messages), policy_for(earlier // 2), history_bound=earlier + 200)
    assert trimmed.removed and not trimmed.too_long and not trimmed.over_bound


def test_a_first_turn_is_never_over_the_bound():
    # Nothing was sent before it: the user's own words are answered too long, never "over the bound".
    alone = [user(text("summarise " + words(3000)))]
    trimmed = trim_request(request_of(alone), policy_for(2000), history_bound=1)
    assert trimmed.too_long and not trimmed.over_bound
