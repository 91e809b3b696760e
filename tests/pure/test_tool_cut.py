"""A tool call cut by max_tokens (addons/response/tool_cut.py, through addons/response/stream.py).

The streams are built the two ways they reach the stack (measured with llama.cpp 1652066,
2026-12-06): LiteLLM's translation of a chat completion (the thinking block closed before the
tool_use, whose start carries `input: {}`), and llama-server's own Anthropic route (the thinking
block left open until the end, the tool_use's start without `input`). What Claude Code 2.1.332
does with each shape is measured in tests/e2e/test_llama_claude.py: a tool_use it sees stopped
is run, one left open at a max_tokens message_delta is dropped and the model asked to resume.
"""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from addons.flow.change import ChangeKind
from addons.response.json_to_sse import message_to_sse_events
from addons.response.tool_cut import cut_call, cut_call_refused, cut_short
from tests.pure.test_stream import NO_DEADLINE, chunked, patch, sdk_events

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
ARGUMENTS = st.dictionaries(st.text(min_size=1, max_size=6), JSON_VALUES, min_size=1, max_size=4).map(json.dumps)


def event(name: str, payload: dict) -> bytes:
    return f"event: {name}\ndata: {json.dumps(payload)}\n\n".encode()


def block(name: str, index: int, **fields) -> bytes:
    return event(name, {"type": name, "index": index, **fields})


def tool_stream(pieces: list[str], stop_reason: str, shape: str) -> bytes:
    """A thinking block, then a tool_use whose input streams in `pieces`, as `shape` writes it."""
    start = {"id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "m"}
    start |= {
        "stop_reason": None,
        "usage": {
            "input_tokens": 12,
            "output_tokens": 0,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }
    thinking_open = block("content_block_start", 0, content_block={"type": "thinking", "thinking": ""})
    thinking_open += block("content_block_delta", 0, delta={"type": "thinking_delta", "thinking": "Hmm."})
    thinking_close = block("content_block_delta", 0, delta={"type": "signature_delta", "signature": ""})
    thinking_close += block("content_block_stop", 0)
    tool = {"type": "tool_use", "id": "call_1", "name": "Write"} | ({"input": {}} if shape == "litellm" else {})
    deltas = b"".join(
        block("content_block_delta", 1, delta={"type": "input_json_delta", "partial_json": piece}) for piece in pieces
    )
    body = block("content_block_start", 1, content_block=tool) + deltas
    if shape == "litellm":  # the thinking block closed before the tool_use starts
        blocks = thinking_open + thinking_close + body + block("content_block_stop", 1)
    else:  # llama-server's Anthropic route: the thinking block closed at the end
        blocks = thinking_open + body + thinking_close + block("content_block_stop", 1)
    end = event(
        "message_delta", {"type": "message_delta", "delta": {"stop_reason": stop_reason}, "usage": {"output_tokens": 5}}
    )
    end += event("message_stop", {"type": "message_stop"})
    return event("message_start", {"type": "message_start", "message": start}) + blocks + end


def stopped_tool_inputs(stream: bytes) -> dict[int, str]:
    """The input JSON of each tool_use block that got its content_block_stop, as a client joins it."""
    tools: dict[int, list[str]] = {}
    given: dict[int, str] = {}  # the input a start gave: the input when no JSON streams
    stopped: dict[int, str] = {}
    for _, data in sdk_events(stream):
        payload = json.loads(data)
        index = payload.get("index")
        if payload["type"] == "content_block_start" and payload["content_block"]["type"] == "tool_use":
            tools[index] = []
            given[index] = json.dumps(payload["content_block"]["input"]) if "input" in payload["content_block"] else ""
        elif payload["type"] == "content_block_delta" and index in tools:
            tools[index].append(payload["delta"].get("partial_json", ""))
        elif payload["type"] == "content_block_stop" and index in tools:
            stopped[index] = "".join(tools.pop(index)) or given[index]
    return stopped


def pieces_of(text: str, cuts: list[int]) -> list[str]:
    return [piece.decode() for piece in chunked(text.encode(), cuts)] if text else []


@NO_DEADLINE
@given(
    arguments=ARGUMENTS,
    cut=st.integers(min_value=0),
    cuts=st.lists(st.integers(min_value=0), max_size=6),
    shape=st.sampled_from(["litellm", "llama"]),
    chunks=st.lists(st.integers(min_value=0), max_size=20),
)
def test_any_cut_point_of_a_tool_calls_json_gives_claude_code_well_formed_events(arguments, cut, cuts, shape, chunks):
    written = arguments[: cut % (len(arguments) + 1)]
    pieces = [piece for piece in pieces_of(written, cuts) if piece] if written.isascii() else [written]
    upstream = tool_stream(pieces, "max_tokens", shape)
    out, patcher = patch(chunked(upstream, chunks))

    events = sdk_events(out)
    payloads = [json.loads(data) for _, data in events]  # every event is JSON, named after its type
    assert [name for name, _ in events] == [payload["type"] for payload in payloads]
    assert payloads[-1]["type"] == "message_stop" and payloads[-2]["delta"]["stop_reason"] == "max_tokens"
    # A tool call Claude Code sees finished has whole arguments: it never runs a cut one.
    assert all(isinstance(json.loads(text), dict) for text in stopped_tool_inputs(out).values())
    # The whole call (cut only after it), or none of it streamed after a start that gave the input.
    if written == arguments or (not written and shape == "litellm"):
        assert out == upstream  # as it came
    else:
        assert stopped_tool_inputs(out) == {}
        assert [block for block in payloads if block["type"] == "content_block_stop"] == [
            {"type": "content_block_stop", "index": 0}
        ]
        # Everything else passes as it came.
        cut_stop = {"type": "content_block_stop", "index": 1}
        assert events == [(name, data) for name, data in sdk_events(upstream) if json.loads(data) != cut_stop]
        assert [change.kind for change in patcher.changes] == [ChangeKind.REPAIRED]


def test_malformed_arguments_of_a_finished_turn_keep_their_stop_before_the_message_delta():
    # A model that wrote single-quoted arguments and ended its turn: the call is whole, only
    # malformed, and the request side repairs it on the next turn (shaping.repaired_input).
    upstream = tool_stream(["{'path': 'a.txt'}"], "tool_use", "llama")
    out, patcher = patch([upstream])
    names = [(name, json.loads(data).get("index")) for name, data in sdk_events(out)]
    assert names[-4:] == [
        ("content_block_stop", 0),
        ("content_block_stop", 1),
        ("message_delta", None),
        ("message_stop", None),
    ]
    assert sorted(sdk_events(out)) == sorted(sdk_events(upstream))
    assert patcher.changes == []


def test_a_stream_cut_after_an_unfinished_tool_call_ends_in_its_stop_and_the_error():
    upstream = tool_stream(["{", '"path": "a'], "max_tokens", "litellm")
    cut_short = upstream[: upstream.index(b"event: message_delta")]
    out, _ = patch([cut_short])
    names = [name for name, _ in sdk_events(out)]
    assert names[-2:] == ["content_block_stop", "error"]


def test_a_tool_call_whose_start_gave_the_input_and_no_delta_is_whole():
    upstream = tool_stream([], "max_tokens", "litellm")
    assert patch([upstream])[0] == upstream
    # llama-server's start gives no input: a call cut before its first piece is unfinished.
    out, _ = patch([tool_stream([], "max_tokens", "llama")])
    assert stopped_tool_inputs(out) == {}


def test_the_next_block_after_malformed_arguments_gets_the_stop_first():
    upstream = tool_stream(["{'a': 1}"], "tool_use", "litellm")
    second = block("content_block_start", 2, content_block={"type": "text", "text": ""})
    second += block("content_block_stop", 2)
    at = upstream.index(b"event: message_delta")
    out, _ = patch([upstream[:at] + second + upstream[at:]])
    indexes = [(name, json.loads(data).get("index")) for name, data in sdk_events(out)]
    assert indexes.index(("content_block_stop", 1)) < indexes.index(("content_block_start", 2))


# --- a whole (non-streamed) message ---------------------------------------------------------

# LiteLLM 1.108.14's 500 for the cut Read call of tests/e2e/test_llama_claude.py (measured through
# the stack on llama-server's chat route, 2026-12-06), as its message reads.
LITELLM_CUT_REFUSAL = (
    "Failed to parse tool call arguments for tool 'Read' (Anthropic pass-through adapter). Error: Unterminated "
    'string starting at: line 1 column 15 (char 14). Arguments: {"file_path": "/tmp/project/field notes/from the'
)
MALFORMED = st.dictionaries(st.text(min_size=1, max_size=6), JSON_VALUES, min_size=1, max_size=4).map(repr)


@given(value=st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=4), ascii_only=st.booleans(), cut=st.integers())
def test_any_start_of_a_json_object_is_cut_short_and_the_whole_is_not(value, ascii_only, cut):
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert not cut_short(text)
    start = text[: 1 + cut % len(text)]
    assert cut_short(start) == (start != text)


@given(text=MALFORMED.filter(lambda text: text.startswith("{'")), cut=st.integers())
def test_single_quoted_arguments_are_malformed_not_cut_short(text, cut):
    # Python's repr (Qwen coder models' arguments): no continuation of any part of it is JSON.
    assert not cut_short(text[: 2 + cut % (len(text) - 1)])


@pytest.mark.parametrize("text", ['{"a" 1', '{"a": tx', '{"a": 1 .5', "[1, 2", "null", '{"a": 1}}', "{'a': 1"])
def test_text_that_no_continuation_makes_an_object_is_not_cut_short(text):
    assert not cut_short(text)


def message(content: list, stop_reason: str) -> dict:
    return {"type": "message", "role": "assistant", "content": content, "stop_reason": stop_reason}


THINKING = {"type": "thinking", "thinking": "Hmm.", "signature": ""}
CALL = {"type": "tool_use", "id": "call_1", "name": "Read", "input": {}}


def test_the_cut_call_of_a_whole_message_is_its_last_block_at_max_tokens():
    assert cut_call(message([THINKING, CALL], "max_tokens")) == 1
    assert cut_call(message([CALL, {**CALL, "id": "call_2"}], "max_tokens")) == 1  # the first one ended
    assert cut_call(message([THINKING, CALL], "tool_use")) is None
    assert cut_call(message([CALL, {"type": "text", "text": "and"}], "max_tokens")) is None
    assert cut_call(message([], "max_tokens")) is None


def test_a_json_message_for_a_stream_leaves_the_cut_call_open():
    cut = message([THINKING, {**CALL, "input": {"file_path": "a"}}], "max_tokens") | {"id": "m", "model": "x"}
    cut["usage"] = {"input_tokens": 3, "output_tokens": 5}
    events = [(name, json.loads(data)) for name, data in sdk_events(message_to_sse_events(cut, left_open=1))]
    assert [(name, payload.get("index")) for name, payload in events if name == "content_block_stop"] == [
        ("content_block_stop", 0)
    ]
    assert stopped_tool_inputs(message_to_sse_events(cut, left_open=1)) == {}
    assert stopped_tool_inputs(message_to_sse_events(cut)) == {1: '{"file_path": "a"}'}


def test_litellms_refusal_of_cut_arguments_names_the_tool():
    assert cut_call_refused(LITELLM_CUT_REFUSAL) == "Read"
    # Arguments a model wrote wrong and finished: not a cut.
    malformed = LITELLM_CUT_REFUSAL.split("Arguments: ")[0] + "Arguments: {'file_path': 'a.txt'}"
    assert cut_call_refused(malformed) is None
    assert cut_call_refused("Connection refused") is None
