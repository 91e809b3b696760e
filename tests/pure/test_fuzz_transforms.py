"""Property-based fuzzing of the request and response transforms with arbitrary JSON values.

Request side: shaping.shape_request, validation.request_problem,
trim.trim_request, tokens.estimate_request (json_codec.from_json, over the same
values: tests/pure/test_json_codec.py); and, over well-formed histories whose
tool results come split over several user turns, that shaping and trimming keep
the order LiteLLM's translation needs (`tool_order_problem`). Response side:
stream.StreamPatcher (feed/finish), to_anthropic_error, fill_message_usage,
message_to_sse_events.

Every transform here is a plain function that the addons call on whatever a
client or an upstream sent. Each either returns or raises the error its
docstring names; anything else (a KeyError, a TypeError, a RecursionError, a
UnicodeEncodeError) would reach mitmproxy as an addon crash. The strategies
reach the shapes the wire allows and the happy-path tests do not: any JSON
value where an object, a list or a string is expected, lone surrogates (JSON's
`"\\ud800"` escape), integers beyond 64 bits, and nesting deeper than any
parser's recursion limit.
"""

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from addons.config.policy import ModelPolicy, Policy, ThinkingPolicy
from addons.config.routes import ANTHROPIC, OPENAI
from addons.errors.anthropic import is_anthropic_error
from addons.errors.upstream import to_anthropic_error
from addons.flow.change import Change
from addons.messages.tokens import estimate_request
from addons.request.shaping import shape_request
from addons.request.trim import trim_request
from addons.request.validation import request_problem
from addons.response.json_to_sse import message_to_sse_events
from addons.response.stream import STREAM_EVENT_TYPES, StreamPatcher
from addons.response.usage import fill_message_usage
from addons.wire.json_codec import from_json
from addons.wire.sse import SSEDecoder, encode_event
from tests.pure.test_trim import assistant, policy_for, request_of, text, tool_result, tool_use, user, words

DATA = Path(__file__).parent.parent / "data"
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Strings as JSON can carry them: any code point, lone surrogates included.
json_text = st.text(st.characters(codec=None), max_size=30) | st.sampled_from(
    ["text", "tool_use", "tool_result", "thinking", "image", "user", "assistant", "system", "\ud800", "x\udfff"]
)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.integers().map(lambda n: n * 2**70)  # beyond 64 bits: orjson refuses to write them
    | st.floats(allow_nan=False, allow_infinity=False)
    | json_text
)
# Keys the transforms look for, so that fuzzed objects go down their branches.
KEYS = st.sampled_from(
    ["type", "role", "content", "text", "id", "tool_use_id", "input", "name", "usage", "input_tokens",
     "output_tokens", "cache_control", "thinking", "signature", "model", "messages", "system", "tools",
     "tool_choice", "max_tokens", "stream", "error", "message", "detail", "code", "delta", "index"]
) | json_text  # fmt: skip
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=5),
    max_leaves=30,
)
blocks = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "tool_use", "tool_result", "thinking", "redacted_thinking", "image", "document"])
     | json_values},
    optional={"text": json_values, "id": json_values, "tool_use_id": json_values, "input": json_values,
              "content": json_values, "cache_control": json_values, "thinking": json_values, "name": json_values},
)  # fmt: skip
messages = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system"]) | json_values},
    optional={"content": st.lists(blocks | json_values, max_size=4) | json_values, "cache_control": json_values},
)
requests = st.fixed_dictionaries(
    {"messages": st.lists(messages | json_values, max_size=8)},
    optional={
        "model": json_values,
        "system": json_values,
        "tools": json_values,
        "tool_choice": json_values,
        "max_tokens": json_values,
        "stream": json_values,
        "thinking": json_values,
    },
).flatmap(lambda request: st.dictionaries(KEYS, json_values, max_size=3).map(lambda extra: {**extra, **request}))

thinking_policies = (
    st.none()
    | st.builds(
        ThinkingPolicy,
        enable=st.none() | st.just({"thinking": {"type": "enabled"}}),
        disable=st.none() | st.just({"thinking": {"type": "disabled"}}),
        effort_field=st.just("reasoning_effort"),
        efforts=st.dictionaries(
            st.sampled_from(["low", "medium", "high", "xhigh", "max"]), st.sampled_from(["low", "max"])
        ),
        history=st.just("all"),
        require_reasoning=st.booleans(),
    )
    | st.builds(ThinkingPolicy, history=st.just("tool_turns"))
)

policies = st.integers(1, 4).flatmap(
    lambda keep_first: st.builds(
        ModelPolicy,
        context_window=st.integers(300, 200_000),
        max_output_tokens=st.just(100),
        safety_margin_tokens=st.integers(0, 100),
        thinking=thinking_policies,
        low_water_percent=st.integers(1, 100),
        max_messages=st.just(0) | st.integers(keep_first + 2, 12),
        keep_first_messages=st.just(keep_first),
    )
)

# Nesting far beyond the C and Python parsers' limits (orjson stops at 1024).
DEEP = [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000]


# --- the request side ------------------------------------------------------------


@FUZZ
@given(requests, policies, st.sampled_from([OPENAI, ANTHROPIC]))
def test_shape_and_trim_return_for_any_messages_list(request, policy, route):
    shaped = shape_request(request, policy, route=route)
    assert isinstance(shaped.request["messages"], list)
    trimmed = trim_request(shaped.request, policy, shaped.reminders)
    assert trimmed.too_long or trimmed.tokens_after <= trimmed.budget or not trimmed.removed
    assert isinstance(estimate_request(trimmed.request), int)


@FUZZ
@given(requests, policies)
def test_request_problem_is_a_message_or_none(request, policy):
    problem = request_problem(shape_request(request, policy).request)
    assert problem is None or (isinstance(problem, str) and problem)


@pytest.mark.parametrize("recorded", ["claude_code_request.json", "claude_code_tool_roundtrip_request.json"])
def test_claude_code_requests_have_no_problem(recorded):
    request = json.loads((DATA / recorded).read_text())
    assert request_problem(shape_request(request, Policy().for_model(request["model"])).request) is None


@FUZZ
@given(requests)
def test_count_tokens_path_shapes_without_capping(request):
    shaped = shape_request(request, Policy().for_model(request.get("model")), cap=False)
    assert isinstance(estimate_request(shaped.request), int)


@FUZZ
@given(st.dictionaries(KEYS, json_values, max_size=6))
def test_estimate_request_takes_any_object(request):
    assert estimate_request(request) >= 0


# --- tool results split over user turns ----------------------------------------


@st.composite
def split_result_requests(draw) -> dict:
    """Well-formed histories whose tool results may come split over consecutive user turns
    (Anthropic merges them), with system messages anywhere: right after a tool_use, between
    two result turns, as a string, text blocks or one text block object."""
    ids = iter(range(10**6))
    sizes = st.integers(1, 80)
    messages = [user(text(words(draw(sizes))))]
    for _ in range(draw(st.integers(1, 12))):
        calls = [f"t{next(ids)}" for _ in range(draw(st.sampled_from([0, 1, 2, 3])))]
        messages.append(assistant(text(words(draw(sizes), 1)), *map(tool_use, calls)))
        results = [tool_result(call, draw(sizes)) for call in calls]
        cuts = sorted(
            draw(st.sets(st.integers(1, max(1, len(results) - 1)), max_size=len(results) - 1))
            if len(results) > 1
            else set()
        )
        turns = [results[a:b] for a, b in zip([0, *cuts], [*cuts, len(results)])] if results else [[]]
        if not results or draw(st.booleans()):  # the user's words after the results (or instead of them)
            turns[-1] = [*turns[-1], text(words(draw(sizes), 3))]
        messages += [user(*turn) for turn in turns]
    with_system = []
    for message in messages:
        with_system.append(message)
        if draw(st.integers(0, 3)) == 0:
            note = f"system note {next(ids)}: " + words(draw(sizes), 2)
            content = draw(st.sampled_from([note, [text(note)], text(note)]))
            with_system.append({"role": "system", "content": content})
    return request_of(with_system)


def tool_order_problem(messages: list) -> str | None:
    """Where LiteLLM's Anthropic-to-OpenAI translation of `messages` breaks the tool order; None if nowhere.

    The translation makes each user turn its tool_result blocks as `tool` messages, in
    order, then (if it has any other content) one `user` message; an assistant turn with
    tool_use blocks becomes one assistant message with `tool_calls`. OpenAI-compatible
    backends want every tool call answered by the `tool` messages directly after its
    assistant message. In Anthropic terms: after an assistant turn with tool_use blocks,
    the user turns that follow, up to and including the first one with anything besides
    tool_result blocks, carry all its results; no result follows a text."""
    translated = []  # (role, tool ids called or answered)
    for message in messages:
        content = message["content"] if isinstance(message["content"], list) else [text(message["content"])]
        if message["role"] == "assistant":
            translated.append(("assistant", [b["id"] for b in content if b.get("type") == "tool_use"]))
            continue
        translated += [("tool", [b["tool_use_id"]]) for b in content if b.get("type") == "tool_result"]
        if any(b.get("type") != "tool_result" for b in content):
            translated.append(("user", []))
    for index, (role, called) in enumerate(translated):
        if role != "assistant" or not called:
            continue
        answered = []
        for other_role, ids in translated[index + 1 :]:
            if other_role != "tool":
                break
            answered += ids
        if set(called) - set(answered):
            return f"translated message {index}: tool calls {called}, answered right after: {answered}"
    return None


@FUZZ
@given(split_result_requests(), thinking_policies, st.floats(0.3, 1.2), st.integers(1, 100), st.integers(1, 4),
       st.sampled_from([0, 0, 8, 30]))  # fmt: skip
def test_shaping_and_trimming_keep_split_tool_results_together(
    request, thinking, budget_share, low_water, keep_first, max_messages
):
    assert tool_order_problem([m for m in request["messages"] if m["role"] != "system"]) is None
    shaped = shape_request(request, ModelPolicy(thinking=thinking))
    assert request_problem(shaped.request) is None
    assert tool_order_problem(shaped.request["messages"]) is None
    # A budget that the request exceeds more or less (or not at all), as in tests/pure/test_trim.py.
    policy = policy_for(
        int(estimate_request(shaped.request) * budget_share),
        thinking=thinking,
        low_water_percent=low_water,
        keep_first_messages=keep_first,
        max_messages=max(max_messages, keep_first + 2) if max_messages else 0,
    )
    trimmed = trim_request(shaped.request, policy, shaped.reminders)
    event("too long" if trimmed.too_long else "trimmed" if trimmed.removed else "untouched")
    assert tool_order_problem(trimmed.request["messages"]) is None


# --- the response side -----------------------------------------------------------


@FUZZ
@given(st.integers(300, 599), st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode())),
       st.sampled_from(["application/json", "text/html", "text/plain", ""]),
       st.integers(0, 10**7), st.integers(0, 10**7))  # fmt: skip
def test_to_anthropic_error_answers_an_anthropic_error_or_none(status, body, content_type, estimate, window):
    result = to_anthropic_error(status, body, content_type, estimate, window)
    if result is None:
        assert is_anthropic_error(json.loads(body))
    else:
        new_status, new_body = result
        assert new_status == status or 400 <= new_status <= 599
        assert is_anthropic_error(json.loads(new_body))


@pytest.mark.parametrize("raw", DEEP, ids=["array", "object"])
def test_to_anthropic_error_takes_deep_nesting(raw):
    new_status, body = to_anthropic_error(500, raw, "application/json")
    assert new_status >= 500 and is_anthropic_error(json.loads(body))


@FUZZ
@given(st.fixed_dictionaries({"type": st.just("message"), "content": st.lists(blocks | json_values, max_size=4)},
                             optional={"usage": json_values, "stop_reason": json_values, "id": json_values,
                                       "model": json_values, "stop_sequence": json_values}),
       st.integers(0, 10**6))  # fmt: skip
def test_fill_usage_then_events_for_any_message(message, estimate):
    changes = fill_message_usage(message, estimate)
    assert all(isinstance(change, Change) and isinstance(change.detail, str) for change in changes)
    for field in ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
        assert isinstance(message["usage"][field], int)
    out = message_to_sse_events(message)
    out.decode("utf-8")  # valid UTF-8 whatever the strings held
    decoder = SSEDecoder()
    events = decoder.feed(out)
    assert decoder.finish() == ([], b"")
    names = [decoded.event for decoded in events]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    for decoded in events:
        json.loads(decoded.data)


def event_bytes(name, data) -> bytes:
    try:
        encoded = json.dumps(data, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        encoded = json.dumps(data).encode()
    return encode_event(name, encoded)


stream_events = st.lists(
    st.tuples(st.sampled_from(sorted(STREAM_EVENT_TYPES)) | st.none()
              | st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=12),
              json_values).map(lambda pair: event_bytes(*pair))
    | st.binary(max_size=60),
    max_size=10,
)  # fmt: skip


@FUZZ
@given(stream_events, st.lists(st.integers(min_value=1, max_value=80), max_size=10), st.integers(0, 10**6))
def test_stream_patcher_takes_any_stream_in_any_chunks(events, cuts, estimate):
    stream = b"".join(events)
    patcher = StreamPatcher(estimate, max_event_bytes=256)
    out, position = [], 0
    for cut in cuts:
        out.append(patcher.feed(stream[position : position + cut]))
        position += cut
    out.append(patcher.feed(stream[position:]))
    out.append(patcher.finish())
    assert all(isinstance(part, bytes) for part in out)
    if patcher.message_started:
        assert patcher.message_stopped or patcher.error_seen


@pytest.mark.parametrize("raw", DEEP, ids=["array", "object"])
@pytest.mark.parametrize("name", ["message_start", "message_delta", None])
@pytest.mark.parametrize("blank_line", [b"\n\n", b""], ids=["whole", "leftover"])
def test_stream_patcher_passes_deeply_nested_event_data(raw, name, blank_line):
    patcher = StreamPatcher(10, max_event_bytes=1 << 20)
    event = (b"event: %s\n" % name.encode() if name else b"") + b"data: " + raw + blank_line
    out = patcher.feed(event) + patcher.finish()
    assert out.startswith(event)
    if out != event:  # a message that started and never stopped: the patcher says so
        assert name == "message_start" and b"event: error" in out[len(event) :]


@pytest.mark.parametrize("raw", DEEP, ids=["array", "object"])
def test_deeply_nested_error_event_becomes_an_anthropic_error(raw):
    patcher = StreamPatcher(10, max_event_bytes=1 << 20)
    out = patcher.feed(b"event: error\ndata: " + raw + b"\n\n") + patcher.finish()
    (event,) = SSEDecoder().feed(out)
    assert event.event == "error" and is_anthropic_error(json.loads(event.data))


def test_deepest_parseable_message_is_counted_and_converted():
    depth = 1000  # about the deepest json.loads reads; deeper is a ValueError (above)
    tool_input = from_json(b'{"a":' + b"[" * depth + b"]" * depth + b"}")
    message = {"type": "message", "content": [{"type": "tool_use", "id": "t", "name": "n", "input": tool_input}]}
    fill_message_usage(message, 5)
    assert message["usage"]["output_tokens"] > depth / 10
    assert b"message_stop" in message_to_sse_events(message)
