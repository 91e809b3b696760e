"""addons/request/history.py and its memo: a session's next request parsed from the one before.

The memo alone (addons/messages/memo.py): tests/pure/test_memo.py.

The claim to hold: whatever the bytes, History.parse gives exactly what
from_json gives (or the same error), and the request pipeline run with the
parse's memo gives exactly what it gives without one. The sessions here are
generated (hypothesis): turns appended, the last message rewritten, history
cut or edited in the middle, head and tail keys changed, bodies written
compact (canonical), with spaces, or broken in the places a splice could hide
(a trailing comma, the messages array closed early).
"""

import json
from pathlib import Path

import orjson
import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st
from mitmproxy import io

from addons.config.policy import THINKING_BLOCK_TYPES, ModelPolicy
from addons.messages.memo import Kind, Memo, interned
from addons.messages.tokens import estimate_request
from addons.request.history import History, _reusable_messages, encode
from addons.request.shaping import shape_request
from addons.request.thinking import provenance_for
from addons.request.tool_ids import rule_for
from addons.request.trim import trim_request
from addons.request.validation import request_problem
from addons.wire.json_codec import from_json, to_json
from tests import workload
from tests.pure.test_fuzz_transforms import FUZZ, json_values, messages, policies, requests


def exactly(value) -> str:
    """A rendering that tells 1 from 1.0 and True, and keeps key order."""
    return json.dumps(value)


def compact(value) -> bytes:
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:  # lone surrogates, integers beyond 64 bits
        return json.dumps(value, separators=(",", ":")).encode()


def parsed_or_error(parse, raw: bytes):
    try:
        return "value", exactly(parse(raw))
    except ValueError:
        return "error", None


# --- one turn to the next ------------------------------------------------------------


edits = st.sampled_from(["append", "rewrite last", "repeat", "cut", "edit early", "tail", "head", "drop messages"])
writings = st.sampled_from(["compact"] * 6 + ["spaced", "trailing comma", "closed early", "truncated"])


def next_body(body: dict, edit: str, new_messages: list, value) -> dict:
    history = body["messages"]
    match edit:
        case "append":
            return {**body, "messages": [*history, *new_messages]}
        case "rewrite last":
            return {**body, "messages": [*history[:-1], *new_messages]}
        case "repeat":
            return body
        case "cut":
            return {**body, "messages": history[: len(history) // 2] + new_messages}
        case "edit early":
            return {**body, "messages": [value, *history[1:]]}
        case "tail":
            return {**body, "tools": value}
        case "head":
            return {"model": value, **{k: v for k, v in body.items() if k != "model"}}
        case _:
            return {**body, "messages": []}


def written(body: dict, writing: str) -> bytes:
    raw = compact(body)
    match writing:
        case "spaced":
            try:
                return json.dumps(body).encode()
            except ValueError:
                return raw
        case "trailing comma":
            close = raw.rfind(b"]")
            return raw[:close] + b"," + raw[close:] if close > 0 else raw
        case "closed early":
            return raw.replace(b'"messages":[', b'"messages":[],"x":[', 1)
        case "truncated":
            return raw[: len(raw) * 2 // 3]
        case _:
            return raw


def session_bodies(session) -> list[bytes]:
    first, turns = session
    body = first
    bodies = [compact(first)]
    for edit, new_messages, value, writing in turns:
        body = next_body(body, edit, new_messages, value)
        bodies.append(written(body, writing))
    return bodies


# Values orjson writes back byte for byte (no lone surrogates, no integers beyond
# 64 bits): bodies made of them are canonical, so their next turns take the splice.
clean_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=30) | st.sampled_from(
    ["text", "tool_use", "tool_result", "thinking", "user", "assistant", "system", "cache_control"]
)
clean_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | clean_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(clean_text, children, max_size=4),
    max_leaves=20,
)  # fmt: skip
clean_blocks = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "tool_use", "tool_result", "thinking", "image"])},
    optional={"text": clean_text, "id": clean_text, "tool_use_id": clean_text, "input": clean_values,
              "cache_control": st.just({"type": "ephemeral"}), "content": clean_values},
)  # fmt: skip
clean_messages = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "assistant", "system"]),
        "content": clean_text | st.lists(clean_blocks, max_size=3),
    }
)
clean_requests = st.fixed_dictionaries(
    {"model": clean_text, "messages": st.lists(clean_messages, min_size=2, max_size=8)},
    optional={"system": clean_text | st.lists(clean_blocks, max_size=2), "tools": clean_values,
              "max_tokens": st.integers(-5, 100_000), "stream": st.booleans(), "metadata": clean_values},
)  # fmt: skip

sessions = st.tuples(
    clean_requests,
    st.lists(st.tuples(edits, st.lists(clean_messages, max_size=3), clean_values, writings), min_size=1, max_size=6),
) | st.tuples(
    requests,
    st.lists(st.tuples(edits, st.lists(messages | json_values, max_size=3), json_values, writings), max_size=6),
)


@FUZZ
@given(sessions)
def test_parse_gives_what_from_json_gives(session):
    history = History()
    for raw in session_bodies(session):
        assert parsed_or_error(lambda r: history.parse(r).body, raw) == parsed_or_error(from_json, raw)


def reusable_by_hand(known, raw: bytes) -> int:
    """The most of `known`'s messages (each with its comma, so never its last) that `raw`
    begins with, where `raw` ends with `known`'s `] tail`; -1 when it does not continue it."""
    tail = known.raw[known.close :]
    limit = len(raw) - len(tail)
    if not raw.endswith(tail) or limit < known.first or raw[: known.first] != known.raw[: known.first]:
        return -1
    candidates = range(max(len(known.ends) - 1, 0), -1, -1)
    return next(
        k for k in candidates if known.message_start(k) <= limit and raw.startswith(known.raw[: known.message_start(k)])
    )


@FUZZ
@given(sessions, st.integers(-1, 12))
def test_a_remembered_body_gives_the_most_it_can_and_is_skipped_when_it_cannot_beat(session, to_beat):
    history = History()
    for raw in session_bodies(session):
        for known in history._known:
            most = reusable_by_hand(known, raw)
            assert _reusable_messages(known, raw) == most
            assert _reusable_messages(known, raw, to_beat) == (most if most > to_beat else -1)
        try:
            history.parse(raw)
        except ValueError:
            pass


def test_the_generated_sessions_do_reach_the_splice():
    """The properties above say something only if bodies do get continued."""

    def continued(session) -> bool:
        history = History()
        for raw in session_bodies(session):
            try:
                if history.parse(raw).reused:
                    return True
            except ValueError:
                pass
        return False

    # derandomized: the same examples every run, so this can only fail when the strategies change
    find(sessions, continued, settings=settings(database=None, derandomize=True))


@FUZZ
@given(sessions, policies)
def test_the_pipeline_gives_the_same_with_the_memo(session, policy: ModelPolicy):
    history = History()
    for raw in session_bodies(session):
        try:
            plain = from_json(raw)
        except ValueError:
            continue
        if not isinstance(plain, dict) or not isinstance(plain.get("messages"), list):
            continue
        parsed = history.parse(raw)
        with_memo = pipeline(parsed.body, policy, parsed.memo)
        assert exactly(with_memo) == exactly(pipeline(plain, policy, None))
        for outgoing in (parsed.body, with_memo[0], with_memo[5] if len(with_memo) > 5 else with_memo[0]):
            assert encode(outgoing, parsed) == to_json(outgoing)


def pipeline(body: dict, policy: ModelPolicy, memo: Memo | None) -> list:
    shaped = shape_request(body, policy, memo=memo)
    problem = request_problem(shaped.request, memo)
    changes = [[change.kind, change.detail] for change in shaped.changes]
    out = [shaped.request, changes, shaped.reminders, problem, estimate_request(shaped.request, memo)]
    if problem is None:
        trimmed = trim_request(shaped.request, policy, shaped.reminders, memo)
        out += [trimmed.request, trimmed.tokens_before, trimmed.tokens_after, trimmed.removed, trimmed.too_long]
    return out


# --- what is reused, and what is remembered --------------------------------------------


def claude_code_turns(count: int, size: int = 200_000, salt: str = "") -> list[bytes]:
    session = workload.long_session(size, salt)
    turns = []
    for turn in range(count):
        session = workload.next_turn(session, turn)
        turns.append(workload.encode(session))
    return turns


def test_a_claude_code_next_turn_parses_only_what_changed():
    first, second, third = claude_code_turns(3)
    history = History()
    assert history.parse(first).reused == 0
    parsed = history.parse(second)
    # all but the message whose cache_control moved, and the two new ones
    assert parsed.reused == len(parsed.body["messages"]) - 3
    assert history.parse(third).reused == len(from_json(third)["messages"]) - 3
    assert exactly(history.parse(third).body) == exactly(from_json(third))


def test_the_next_turn_shares_the_objects_and_the_memo():
    first, second = claude_code_turns(2)
    history = History()
    before = history.parse(first)
    shape_request(before.body, ModelPolicy(), memo=before.memo)
    after = history.parse(second)
    assert after.body["tools"] is before.body["tools"]
    assert all(a is b for a, b in zip(after.body["messages"][: after.reused], before.body["messages"]))
    calls = []
    after.memo.get("probe", after.body["tools"], calls.append)  # a kind nobody asked for before
    assert calls == [after.body["tools"]]
    # an assistant turn: never folded, so stripped as it is
    old = next(message for message in after.body["messages"][: after.reused] if message["role"] == "assistant")
    accepted = ModelPolicy().accepted_block_types | THINKING_BLOCK_TYPES  # thinking blocks stay by default
    provenance = provenance_for(ModelPolicy().thinking, after.body["model"])
    id_rule = rule_for(ModelPolicy().tool_ids, after.body["model"])
    kind = interned((Kind.STRIP_MESSAGE, accepted, False, after.body["model"], False, provenance, id_rule))
    stripped = after.memo.get(kind, old, calls.append)
    assert len(calls) == 1 and stripped is not None  # found, not computed


@pytest.mark.parametrize("salts", [("a", "b", "c"), ("", "", "")], ids=["sessions", "forks of one session"])
def test_a_session_keeps_one_place_and_sessions_their_own(salts):
    history = History(max_bodies=3)
    # with one salt, each longer session begins with the whole of the shorter ones
    sessions = [claude_code_turns(3, 100_000 + 20_000 * n, salt) for n, salt in enumerate(salts)]
    for turn in range(3):
        for session in sessions:
            parsed = history.parse(session[turn])
            if turn:
                assert parsed.reused == len(parsed.body["messages"]) - 3
    assert [known.raw for known in history._known] == [session[2] for session in sessions]


def test_what_is_remembered_stays_within_its_bounds():
    by_count = History(max_bodies=2)
    by_bytes = History(max_bytes=250_000)
    for n in range(5):
        body = workload.encode(workload.unique_first_request(workload.recorded(), n))
        by_count.parse(body)
        by_bytes.parse(body)
    assert len(by_count._known) == 2
    assert sum(len(known.raw) for known in by_bytes._known) <= 250_000
    too_big = History(max_bytes=1000)
    too_big.parse(workload.encode(workload.recorded()))
    assert too_big._known == []


@pytest.mark.parametrize(
    "raw",
    [
        b'{"model":"m","messages":[{"role":"user","content":"a"},{"role":"user","content":"b"},],"x":1}',
        b'{"model":"m","messages":[{"role":"user","content":"a"},],"x":1}',
        b'{"model":"m","messages":[{"role":"user","content":"a"}],"x":1}]',
    ],
)
def test_a_broken_continuation_gets_the_full_parse_and_its_error(raw):
    history = History()
    history.parse(b'{"model":"m","messages":[{"role":"user","content":"a"},{"role":"user","content":"c"}],"x":1}')
    with pytest.raises(ValueError) as spliced:
        history.parse(raw)
    with pytest.raises(ValueError) as whole:
        from_json(raw)
    assert str(spliced.value) == str(whole.value)


def test_the_bytes_of_what_was_not_changed_are_copied_not_written_again():
    first, second = claude_code_turns(2, 300_000)
    history = History()
    history.parse(first)
    parsed = history.parse(second)
    assert parsed.layout is not None
    assert encode(parsed.body, parsed) == second
    messages = parsed.body["messages"]
    edited = {**parsed.body, "messages": [*messages[:3], {"role": "user", "content": "new"}, *messages[10:]]}
    edited.pop("metadata")
    assert encode(edited, parsed) == to_json(edited)


def test_a_body_that_is_not_canonical_is_parsed_whole_and_not_remembered():
    history = History()
    spaced = json.dumps({"model": "m", "messages": [{"role": "user", "content": "a"}]}).encode()
    parsed = history.parse(spaced)
    assert parsed.body == from_json(spaced) and parsed.layout is None
    assert history._known == []
    assert encode(parsed.body, parsed) == to_json(parsed.body)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 40))
def test_a_repeated_body_is_remembered_once(repeats):
    history = History()
    raw = workload.encode(workload.recorded())
    for _ in range(repeats + 1):
        history.parse(raw)
    assert len(history._known) == 1


def recorded_request_bodies(name: str) -> list[bytes]:
    with open(Path(__file__).parent.parent / "flows" / name, "rb") as file:
        flows = list(io.FlowReader(file).stream())
    return [flow.request.raw_content for flow in flows if flow.request.path.startswith("/v1/messages?")]


def test_real_claude_code_bodies_are_canonical_and_continue():
    """Claude Code writes JSON as orjson does (JSON.stringify): if that ever changes,
    every turn is parsed whole again. Recorded by `make flows` with the real CLI."""
    history = History()
    parsed = [history.parse(body) for body in recorded_request_bodies("long-session.flow")]
    assert len(parsed) >= 3 and all(turn.layout is not None for turn in parsed)
    # from the second turn on, system prompt and tools are the objects parsed before
    assert all(turn.body["tools"] is parsed[0].body["tools"] for turn in parsed[1:])
    assert parsed[-1].reused > 0
