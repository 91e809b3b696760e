"""The stream patcher (addons/response/stream.py) over recorded and made-up streams.

Recorded streams live in tests/data/streams (`litellm-*` from the real LiteLLM
proxy, see record.py there; the others written by hand). The Anthropic SDK is
the client-side oracle: what it reads from the patched bytes is what Claude
Code reads. The helpers here serve the other response tests too.
"""

import json
from pathlib import Path

import anthropic
import httpx2
import pytest
from anthropic._streaming import SSEDecoder as SDKDecoder
from hypothesis import given, settings
from hypothesis import strategies as st

from addons.flow.change import Change, ChangeKind
from addons.messages.tokens import count_text
from addons.response.stream import TRUNCATED_STREAM_MESSAGE, StreamPatcher

STREAMS = Path(__file__).parent.parent / "data" / "streams"
SSE_FILES = sorted(STREAMS.glob("*.sse"))
NOT_ANTHROPIC = {"not-sse.sse"}
ESTIMATE = 4321
# Hypothesis deadlines are timings: never asserted here.
NO_DEADLINE = settings(deadline=None)


def patch(chunks: list[bytes], estimate: int = ESTIMATE) -> tuple[bytes, StreamPatcher]:
    patcher = StreamPatcher(estimate)
    out = [patcher.feed(chunk) for chunk in chunks]
    return b"".join(out) + patcher.finish(), patcher


def patch_file(name: str, estimate: int = ESTIMATE) -> tuple[bytes, StreamPatcher]:
    return patch([(STREAMS / name).read_bytes()], estimate)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted({cut % (len(data) + 1) for cut in cuts}), len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


def sdk_events(data: bytes) -> list[tuple[str | None, str]]:
    return [(sse.event, sse.data) for sse in SDKDecoder().iter_bytes(iter([data]))]


def sdk_client(body: bytes, status: int = 200, content_type: str = "text/event-stream") -> anthropic.Anthropic:
    def handler(request):
        return httpx2.Response(status, headers={"content-type": content_type}, content=body)

    return anthropic.Anthropic(
        api_key="test", base_url="http://upstream.test", max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )  # fmt: skip


def sdk_final_message(sse: bytes) -> anthropic.types.Message:
    """The message Anthropic's SDK assembles from a stream, as Claude Code would."""
    messages = [{"role": "user", "content": "hi"}]
    with sdk_client(sse).messages.stream(model="m", max_tokens=10, messages=messages) as stream:
        return stream.get_final_message()


def text_of(message) -> str:
    return "".join(block.text for block in message.content if block.type == "text")


# --- the stream patcher over recorded streams ------------------------------------


@pytest.mark.parametrize("path", SSE_FILES, ids=lambda p: p.name)
@NO_DEADLINE
@given(cuts=st.lists(st.integers(min_value=0), max_size=40))
def test_any_chunking_patches_like_the_whole_body(path, cuts):
    body = path.read_bytes()
    assert patch(chunked(body, cuts))[0] == patch([body])[0]


@pytest.mark.parametrize("path", SSE_FILES, ids=lambda p: p.name)
def test_one_byte_at_a_time_patches_like_the_whole_body(path):
    body = path.read_bytes()
    assert patch([body[i : i + 1] for i in range(len(body))])[0] == patch([body])[0]


@pytest.mark.parametrize("path", [p for p in SSE_FILES if p.name not in NOT_ANTHROPIC], ids=lambda p: p.name)
def test_no_event_lost_reordered_or_duplicated_and_all_json(path):
    body = path.read_bytes()
    out, patcher = patch([body])
    before, after = sdk_events(body), sdk_events(out)
    # Unnamed events are named after their JSON type; a cut stream gets one error event more.
    expected = [(name or json.loads(data)["type"] if data.startswith("{") else name, data) for name, data in before]
    if not any(name in ("message_stop", "error") for name, _ in expected):
        expected.append(("error", None))
    assert [name for name, _ in after] == [name for name, _ in expected]
    for (name, data), (_, original) in zip(after, expected):
        if data == "[DONE]":
            continue
        payload = json.loads(data)  # every event is JSON
        assert payload["type"] == name
        if name not in ("message_start", "message_delta", "error"):
            assert data == original  # untouched events: byte for byte
        elif name == "message_start":
            assert {**payload["message"], "usage": None} == {**json.loads(original)["message"], "usage": None}
        elif name == "message_delta":
            assert payload["delta"] == json.loads(original)["delta"]


@pytest.mark.parametrize(
    "name, text",
    [
        ("usage-null.sse", "Hello there, friend."),
        ("usage-missing-zero.sse", "Zeros everywhere."),
        ("crlf-ping-comments.sse", "CRLF line ends."),
        ("cr-multiline-data.sse", "Lone CR."),
        ("data-only-done.sse", "No event lines."),
        ("litellm-text-zero-usage.sse", "Zero usage here."),
    ],
)
def test_missing_usage_is_filled_with_estimates(name, text):
    message = sdk_final_message(patch_file(name)[0])
    assert text_of(message) == text
    assert message.usage.input_tokens == ESTIMATE
    assert message.usage.output_tokens == count_text(text)
    assert message.usage.cache_creation_input_tokens == 0
    assert message.usage.cache_read_input_tokens == 0


def test_tool_input_counts_as_output():
    message = sdk_final_message(patch_file("usage-empty.sse")[0])
    assert message.content[0].input == {"file_path": "/etc/hosts"}
    assert message.usage.output_tokens == count_text('{"file_path": "/etc/hosts"}')
    assert message.usage.input_tokens == ESTIMATE


def test_litellm_zero_message_start_gets_the_estimate_and_real_figures_stay():
    out, patcher = patch_file("litellm-text-usage.sse")
    start = json.loads(sdk_events(out)[0][1])
    assert start["message"]["usage"] == {
        "input_tokens": ESTIMATE, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
    }  # fmt: skip
    message = sdk_final_message(out)
    # The backend's own figures: output counts the answer's 20 tokens and the reasoning's 13.
    assert (message.usage.input_tokens, message.usage.output_tokens) == (10, 33)
    assert message.content[0].type == "thinking"
    assert patcher.changes == [Change(ChangeKind.USAGE_FILLED, f"message_start: filled usage input_tokens={ESTIMATE}")]


def test_anthropic_stream_with_real_usage_passes_byte_for_byte():
    body = (STREAMS / "anthropic-real-usage.sse").read_bytes()
    out, patcher = patch([body])
    assert out == body
    assert patcher.changes == []


def test_message_delta_input_follows_a_real_message_start_figure():
    body = (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","type":"message","role":"assistant",'
        b'"model":"x","content":[],"stop_reason":null,"usage":{"input_tokens":900,"output_tokens":1}}}\n\n'
        b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"input_tokens":0,"output_tokens":3}}\n\n'
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    )
    usage = sdk_final_message(patch([body])[0]).usage
    assert (usage.input_tokens, usage.output_tokens) == (900, 3)


def test_rewritten_events_keep_crlf_line_ends():
    out, _ = patch_file("crlf-ping-comments.sse")
    assert b"\n" not in out.replace(b"\r\n", b"")


def test_truncated_stream_ends_with_an_overloaded_error_the_sdk_raises():
    out, patcher = patch_file("truncated-mid-event.sse")
    assert out.endswith(
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"'
        + TRUNCATED_STREAM_MESSAGE.encode() + b'"}}\n\n'
    )  # fmt: skip
    assert out.count(b"event: content_block_delta") == 1  # the half event was dropped
    with pytest.raises(anthropic.APIStatusError, match="overloaded_error"):
        sdk_final_message(out)


def test_upstream_error_event_is_kept_and_nothing_is_added():
    body = (STREAMS / "litellm-cut-mid-event.sse").read_bytes()
    out, _ = patch([body])
    assert sdk_events(out)[-1] == sdk_events(body)[-1]
    assert out.count(b"event: error") == 1


def test_openai_shaped_error_event_is_reshaped_in_place():
    out, _ = patch_file("mid-stream-openai-error.sse")
    name, data = sdk_events(out)[-1]
    assert name == "error"
    assert json.loads(data) == {"type": "error", "error": {"type": "api_error", "message": "Internal server error"}}
    with pytest.raises(anthropic.APIStatusError, match="Internal server error"):
        sdk_final_message(out)


def test_a_body_that_is_not_sse_passes_unchanged():
    body = (STREAMS / "not-sse.sse").read_bytes()
    out, patcher = patch([body])
    assert out == body
    assert patcher.changes == []


def test_last_event_without_its_empty_line_is_completed():
    body = (STREAMS / "litellm-text-usage.sse").read_bytes().rstrip(b"\n")
    out, _ = patch([body])
    assert out.endswith(b'data: {"type": "message_stop"}\n\n')
    assert text_of(sdk_final_message(out)).startswith("Hello!")


def test_nothing_is_emitted_before_an_event_is_complete():
    patcher = StreamPatcher(ESTIMATE)
    assert patcher.feed(b"event: ping\ndata: {") == b""
    assert patcher.feed(b'"type":"ping"}\n') == b""
    assert patcher.feed(b"\n") == b'event: ping\ndata: {"type":"ping"}\n\n'


@NO_DEADLINE
@given(st.binary(max_size=300).filter(lambda b: b"message_start" not in b and b"error" not in b and b"{" not in b))
def test_arbitrary_bytes_never_raise_and_pass_through(data):
    assert patch([data])[0] == data


def test_stream_cut_inside_an_oversized_event_still_ends_with_a_parsable_error():
    start = (STREAMS / "usage-null.sse").read_bytes().split(b"\n\n", 1)[0] + b"\n\n"
    patcher = StreamPatcher(ESTIMATE, max_event_bytes=100)
    endless = b'event: content_block_delta\ndata: {"x": "' + b"y" * 500
    out = patcher.feed(start) + patcher.feed(endless) + patcher.finish()
    assert out.endswith(b'y\n\nevent: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"'
                        + TRUNCATED_STREAM_MESSAGE.encode() + b'"}}\n\n')  # fmt: skip
    assert sdk_events(out)[-1][0] == "error"
    assert Change(ChangeKind.OTHER, "an event over 100 bytes passed on unpatched") in patcher.changes


# --- LiteLLM's stand-in input count --------------------------------------------------------
# When the backend reports no usage, LiteLLM counts the messages alone (no system prompt, no
# tools): 12 for a request the backend counts as 328 (tests/data/streams, measured). The
# request addon's estimate is 4321 here, of which 3000 are the system prompt and the tools.


def delta_stream(usage: dict) -> bytes:
    start = {
        "type": "message_start",
        "message": {
            "id": "m",
            "type": "message",
            "role": "assistant",
            "model": "x",
            "content": [],
            "stop_reason": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        },
    }
    delta = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": usage}
    return (
        f"event: message_start\ndata: {json.dumps(start)}\n\n"
        f"event: message_delta\ndata: {json.dumps(delta)}\n\n"
        'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    ).encode()


@pytest.mark.parametrize(
    "reported, delivered",
    [
        ({"input_tokens": 12, "output_tokens": 22}, {"input_tokens": ESTIMATE, "output_tokens": 22}),
        ({"input_tokens": 4400, "output_tokens": 22}, {"input_tokens": 4400, "output_tokens": 22}),
        (
            {"input_tokens": 1100, "output_tokens": 22, "cache_read_input_tokens": 3300},
            {"input_tokens": 1100, "output_tokens": 22, "cache_read_input_tokens": 3300},
        ),
    ],
)
def test_the_stream_delivers_the_backends_count_or_the_estimate(reported, delivered):
    patcher = StreamPatcher(ESTIMATE, fixed_tokens_estimate=3000)
    out = patcher.feed(delta_stream(reported)) + patcher.finish()
    message = sdk_final_message(out)
    assert {key: getattr(message.usage, key) for key in delivered} == delivered
    replaced = [change for change in patcher.changes if "LiteLLM's count of the messages alone" in change.detail]
    assert bool(replaced) is (delivered["input_tokens"] != reported["input_tokens"])


@pytest.mark.parametrize("name", ["litellm-text-usage.sse", "litellm-text-no-usage.sse"])
def test_trimmed_tokens_are_added_to_the_streamed_input_count(name):
    body = (STREAMS / name).read_bytes()
    untrimmed = sdk_final_message(patch([body])[0]).usage.input_tokens
    patcher = StreamPatcher(ESTIMATE, trimmed_tokens=5000)
    out = patcher.feed(body) + patcher.finish()
    assert sdk_final_message(out).usage.input_tokens == untrimmed + 5000


# --- auto mode ------------------------------------------------------------------

SAFEGUARD_RESULTS = [
    {
        "type": "dangerous_tool_use",
        "status": {"type": "available", "tool_uses": {"toolu_1": {"type": "unavailable", "reason": "timeout"}}},
    }
]


def test_safeguard_results_pass_in_message_delta_and_are_kept():
    delta = {"type": "message_delta", "delta": {"stop_reason": "tool_use", "safeguard_results": SAFEGUARD_RESULTS}}
    stream = (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","usage":{"input_tokens":5}}}\n\n'
        b"event: message_delta\ndata: " + json.dumps(delta).encode() + b"\n\n"
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    )
    out, patcher = patch([stream])
    assert patcher.safeguard_results == SAFEGUARD_RESULTS
    sent = [json.loads(line[6:]) for line in out.split(b"\n") if line.startswith(b"data: ")]
    assert sent[1]["delta"]["safeguard_results"] == SAFEGUARD_RESULTS
