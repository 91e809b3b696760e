"""The response addon's hooks, driven the way mitmproxy drives them."""

import gzip
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mitmproxy import http
from mitmproxy.test import taddons, tflow, tutils

from addons.errors.anthropic import is_anthropic_error
from addons.flow.change import Change, ChangeKind
from addons.flow.notes import TurnNotes, changes
from addons.response.json_to_sse import message_to_sse_events
from addons.response.stream import StreamPatcher
from addons.response_patcher import MitmproxyStream, ResponsePatcher
from tests.pure.test_stream import ESTIMATE, chunked, patch, sdk_events, sdk_final_message, text_of
from tests.pure.test_tool_cut import LITELLM_CUT_REFUSAL

STREAMS = Path(__file__).parent.parent / "data" / "streams"
CAPPED = Change(ChangeKind.CAPPED, "capped max_tokens 32000->8192")
SSE = "text/event-stream; charset=utf-8"


def make_flow(
    path: str = "/v1/messages?beta=true",
    status: int = 200,
    body: bytes = b"",
    content_type: str = "application/json",
    notes: dict | None = None,
    request_body: bytes = b"{}",
    method: str = "POST",
) -> http.HTTPFlow:
    flow = tflow.tflow(req=tutils.treq(method=method.encode(), path=path.encode(), content=request_body))
    flow.response = http.Response.make(status, body, {"content-type": content_type})
    if notes is not None:
        flow.metadata["stabilizer"] = {"changes": [{"kind": "capped", "detail": CAPPED.detail}], **notes}
    return flow


@pytest.fixture
def addon():
    addon = ResponsePatcher()
    with taddons.context(addon):
        yield addon


def stream_through(flow: http.HTTPFlow, chunks: list[bytes]) -> bytes:
    """Call the stream callable as mitmproxy does; no empty chunk may come back."""
    callable_ = flow.response.stream
    sent = []
    for chunk in [*chunks, b""]:
        out = callable_(chunk)
        assert isinstance(out, list) and all(isinstance(piece, bytes) and piece for piece in out)
        sent += out
    return b"".join(sent)


# --- streams ---------------------------------------------------------------------


@settings(deadline=None, max_examples=30)
@given(cuts=st.lists(st.integers(min_value=0), max_size=30))
def test_sse_answer_is_patched_as_it_streams(cuts):
    body = (STREAMS / "litellm-text-zero-usage.sse").read_bytes()
    addon = ResponsePatcher()
    with taddons.context(addon):
        flow = make_flow(content_type=SSE, notes={"input_tokens": ESTIMATE, "stream": True})
        addon.responseheaders(flow)
        assert isinstance(flow.response.stream, MitmproxyStream)
        assert stream_through(flow, chunked(body, cuts)) == patch([body])[0]
        addon.response(flow)  # after a streamed body: nothing more to do
    made = changes(flow)
    assert made[0] == CAPPED  # the request addon's notes stay
    assert Change(ChangeKind.USAGE_FILLED, f"message_start: filled usage input_tokens={ESTIMATE}") in made


def test_a_streams_changes_are_noted_as_they_are_made(addon):
    # A stream cut short never gets its end-of-body call: FlowMarker's error hook reads the notes then.
    body = (STREAMS / "litellm-text-zero-usage.sse").read_bytes()
    flow = make_flow(content_type=SSE, notes={"input_tokens": ESTIMATE, "stream": True})
    addon.responseheaders(flow)
    flow.response.stream(body.split(b"\n\n", 1)[0] + b"\n\n")  # message_start alone
    filled = Change(ChangeKind.USAGE_FILLED, f"message_start: filled usage input_tokens={ESTIMATE}")
    assert changes(flow) == [CAPPED, filled]
    flow.response.stream(b"")
    assert changes(flow)[:2] == [CAPPED, filled]  # noted once


def test_stream_without_notes_still_gets_complete_usage(addon):
    flow = make_flow(content_type=SSE)
    addon.responseheaders(flow)
    message = sdk_final_message(stream_through(flow, [(STREAMS / "usage-null.sse").read_bytes()]))
    assert message.usage.input_tokens == 0
    assert message.usage.output_tokens > 0


def test_truncated_stream_gets_an_error_event_at_the_end(addon):
    flow = make_flow(content_type=SSE, notes={"input_tokens": 10})
    addon.responseheaders(flow)
    out = stream_through(flow, [(STREAMS / "truncated-mid-event.sse").read_bytes()])
    assert out.endswith(b"\n\n") and b"overloaded_error" in out.rsplit(b"event: ", 1)[1]


@pytest.mark.parametrize(
    "method, path, status, content_type",
    [
        ("POST", "/v1/messages?beta=true", 200, "application/json"),
        ("POST", "/v1/messages", 400, SSE),
        ("POST", "/v1/messages/count_tokens", 200, SSE),
        ("GET", "/v1/messages", 200, SSE),
        ("POST", "/v1/chat/completions", 200, SSE),
    ],
)
def test_only_successful_message_streams_are_streamed(addon, method, path, status, content_type):
    flow = make_flow(path=path, status=status, content_type=content_type, method=method)
    addon.responseheaders(flow)
    assert not flow.response.stream


def test_compressed_stream_is_streamed_unpatched(addon):
    flow = make_flow(content_type=SSE)
    flow.response.headers["content-encoding"] = "gzip"
    addon.responseheaders(flow)
    assert flow.response.stream is True


def test_patcher_failure_passes_the_event_through(addon, monkeypatch):
    def broken(self, payload):
        raise RuntimeError("bug")

    monkeypatch.setattr(StreamPatcher, "_patch_message_start", broken)
    body = (STREAMS / "litellm-text-zero-usage.sse").read_bytes()
    flow = make_flow(content_type=SSE, notes={"input_tokens": ESTIMATE})
    addon.responseheaders(flow)
    out = stream_through(flow, [body])
    assert out.startswith(body.split(b"\n\n", 1)[0] + b"\n\n")  # message_start as it came
    assert sdk_final_message(out).usage.output_tokens == 4  # later events still patched


def test_adapter_failure_passes_the_rest_through():
    class Exploding(StreamPatcher):
        def feed(self, chunk):
            self.changes.append(Change(ChangeKind.REPAIRED, "half done"))
            raise RuntimeError("bug")

    notes = TurnNotes()
    stream = MitmproxyStream(Exploding(), "POST /v1/messages", notes)
    with taddons.context():
        assert stream(b"data: 1\n\n") == [b"data: 1\n\n"]
        assert stream(b"data: 2\n\n") == [b"data: 2\n\n"]
        assert stream(b"") == []
    assert notes["changes"] == [{"kind": "repaired", "detail": "half done"}]  # what it did before it failed


# --- whole bodies ------------------------------------------------------------------


def test_json_message_gets_usage(addon):
    body = (STREAMS / "litellm-text-no-usage.json").read_bytes()
    flow = make_flow(body=body, notes={"input_tokens": ESTIMATE, "stream": False})
    addon.response(flow)
    message = json.loads(flow.response.content)
    assert message["usage"]["input_tokens"] == ESTIMATE
    assert message["usage"]["output_tokens"] > 0
    assert flow.response.headers["content-length"] == str(len(flow.response.content))
    assert any(
        change.kind is ChangeKind.USAGE_FILLED and change.detail.startswith("message: filled usage")
        for change in changes(flow)
    )


def test_json_answer_to_a_streaming_request_becomes_a_stream(addon):
    body = (STREAMS / "litellm-demo-mock-stream.json").read_bytes()
    flow = make_flow(body=body, notes={"input_tokens": ESTIMATE, "stream": True})
    addon.response(flow)
    assert flow.response.headers["content-type"].startswith("text/event-stream")
    message = sdk_final_message(flow.response.content)
    assert text_of(message) == "Hello from the demo model."
    assert (message.usage.input_tokens, message.usage.output_tokens) == (2095, 503)  # LiteLLM's figures kept


def test_stream_request_is_read_from_the_body_without_notes(addon):
    body = (STREAMS / "litellm-demo-mock-stream.json").read_bytes()
    flow = make_flow(body=body, request_body=b'{"model": "demo", "stream": true}')
    addon.response(flow)
    assert flow.response.headers["content-type"].startswith("text/event-stream")


def test_json_message_with_complete_usage_is_left_as_it_came(addon):
    message = json.loads((STREAMS / "litellm-demo-mock.json").read_bytes())
    message["usage"] |= {"cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    body = json.dumps(message, separators=(",", ":")).encode()
    flow = make_flow(body=body, notes={"input_tokens": ESTIMATE, "stream": False})
    addon.response(flow)
    assert flow.response.content == body


# A tool call max_tokens cut, as llama-server's Messages route answers without streaming
# (llama.cpp 1652066, measured 2026-12-06): Claude Code 2.1.332 runs such a call as it is.
CUT_CALL_MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "llamacpp-anthropic",
    "content": [
        {"type": "thinking", "thinking": "Pondering", "signature": ""},
        {"type": "tool_use", "id": "call_1", "name": "Read", "input": {}},
    ],
    "stop_reason": "max_tokens",
    "stop_sequence": None,
    "usage": {"input_tokens": 30, "output_tokens": 10, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0},
}


def test_a_json_answers_cut_call_is_removed(addon):
    flow = make_flow(body=json.dumps(CUT_CALL_MESSAGE).encode(), notes={"input_tokens": ESTIMATE, "stream": False})
    addon.response(flow)
    assert json.loads(flow.response.content)["content"] == CUT_CALL_MESSAGE["content"][:1]
    assert Change(ChangeKind.REPAIRED, "a tool call cut by max_tokens removed: Claude Code would run it") in changes(
        flow
    )


def test_a_json_answer_for_a_stream_leaves_its_cut_call_unfinished(addon):
    flow = make_flow(body=json.dumps(CUT_CALL_MESSAGE).encode(), notes={"input_tokens": ESTIMATE, "stream": True})
    addon.response(flow)
    stops = [
        json.loads(data)["index"] for name, data in sdk_events(flow.response.content) if name == "content_block_stop"
    ]
    assert stops == [0]


def test_litellms_500_for_cut_arguments_becomes_a_max_tokens_stop(addon):
    error = {"message": LITELLM_CUT_REFUSAL, "type": None, "param": None, "code": "500"}
    flow = make_flow(
        status=500, body=json.dumps({"error": error}).encode(), notes={"input_tokens": ESTIMATE, "model": "m"}
    )
    addon.response(flow)
    assert flow.response.status_code == 200
    message = json.loads(flow.response.content)
    assert (message["content"], message["stop_reason"], message["model"]) == ([], "max_tokens", "m")
    assert message["usage"]["input_tokens"] == ESTIMATE


def test_litellms_500_for_malformed_arguments_stays_an_error(addon):
    words = LITELLM_CUT_REFUSAL.split("Arguments: ")[0] + "Arguments: {'file_path': 'a.txt'}"
    flow = make_flow(status=500, body=json.dumps({"error": {"message": words}}).encode(), notes={})
    addon.response(flow)
    assert flow.response.status_code == 500 and is_anthropic_error(json.loads(flow.response.content))


# --- errors ----------------------------------------------------------------------


def test_openai_context_error_becomes_prompt_is_too_long(addon):
    error = {"message": "input length is too long", "type": "invalid_request_error", "code": "400"}
    body = json.dumps({"error": error}).encode()
    flow = make_flow(status=400, body=body, notes={"input_tokens": 140000, "context_window": 131072})
    addon.response(flow)
    assert flow.response.status_code == 400
    assert json.loads(flow.response.content) == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "prompt is too long: 140000 tokens > 131072 maximum"},
    }
    assert changes(flow)[-1] == Change(ChangeKind.UPSTREAM_ERROR, "HTTP 400 error -> 400 invalid_request_error")


def test_litellm_anthropic_shaped_context_error_is_reworded(addon):
    flow = make_flow(status=400, body=(STREAMS / "litellm-context-error.json").read_bytes(), notes={})
    addon.response(flow)
    assert json.loads(flow.response.content)["error"]["message"] == "prompt is too long: 138001 tokens > 131072 maximum"


def test_upstream_5xx_becomes_a_retryable_overloaded_error(addon):
    flow = make_flow(status=503, body=b"Service Unavailable", content_type="text/plain")
    addon.response(flow)
    assert flow.response.status_code == 529
    assert flow.response.headers["content-type"] == "application/json"
    assert json.loads(flow.response.content)["error"] == {"type": "overloaded_error", "message": "Service Unavailable"}


def test_gzip_error_body_is_read_decoded(addon):
    flow = make_flow(status=400, body=b"", notes={})
    flow.response.headers["content-encoding"] = "gzip"
    flow.response.raw_content = gzip.compress(b'{"error": {"message": "bad things"}}')
    addon.response(flow)
    assert json.loads(flow.response.content)["error"] == {
        "type": "invalid_request_error",
        "message": "the backend refused the request: bad things",
    }


def test_backend_refusal_names_the_model_and_the_policy_key(addon):
    error = {
        "message": "litellm.BadRequestError: OpenAIException - Invalid max_tokens value, the valid range of "
        "max_tokens is [1, 393216]",
        "type": None,
        "param": None,
        "code": "400",
    }
    notes = {
        "model": "deepseek-flash",
        "policy_file": "/srv/policy.yaml",
        "input_tokens": 900,
        "context_window": 131072,
    }
    flow = make_flow(status=400, body=json.dumps({"error": error}).encode(), notes=notes)
    addon.response(flow)
    assert flow.response.status_code == 400
    assert json.loads(flow.response.content)["error"] == {
        "type": "invalid_request_error",
        "message": "deepseek-flash refused the request: Invalid max_tokens value, the valid range of max_tokens is "
                   "[1, 393216]. Set models.deepseek-flash.max_output_tokens to the backend's limit in /srv/policy.yaml.",
    }  # fmt: skip
    assert changes(flow)[-1] == Change(ChangeKind.UPSTREAM_ERROR, "HTTP 400 error -> 400 invalid_request_error")


def test_refusal_error_event_in_a_stream_names_the_model(addon):
    event = b'event: error\ndata: {"error": {"message": "Extra inputs are not permitted", "type": "invalid_request_error"}}\n\n'
    flow = make_flow(content_type=SSE, notes={"model": "qwen", "policy_file": ""})
    addon.responseheaders(flow)
    error = json.loads(stream_through(flow, [event]).split(b"data: ", 1)[1])["error"]
    assert error["message"] == (
        "qwen refused the request: Extra inputs are not permitted. "
        "Remove it from models.qwen.accepted_keys in a policy file (stabilizer run --policy)."
    )


def test_anthropic_error_is_left_alone(addon):
    body = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    flow = make_flow(status=529, body=body)
    addon.response(flow)
    assert (flow.response.status_code, flow.response.content) == (529, body)


# --- count_tokens ----------------------------------------------------------------


@pytest.mark.parametrize(
    "status, body", [(404, b'{"detail":"Not Found"}'), (500, b"boom"), (200, b'{"input_tokens": 0}'), (200, b"nope")]
)
def test_count_tokens_answers_the_estimate_when_upstream_cannot(addon, status, body):
    flow = make_flow(path="/v1/messages/count_tokens?beta=true", status=status, body=body, notes={"input_tokens": 2048})
    addon.response(flow)
    assert flow.response.status_code == 200
    assert json.loads(flow.response.content) == {"input_tokens": 2048}
    answered = f"count_tokens: upstream HTTP {status} gave no count, answered the estimate 2048"
    assert changes(flow) == [CAPPED, Change(ChangeKind.COUNT_ESTIMATED, answered)]


def test_count_tokens_from_upstream_is_kept(addon):
    flow = make_flow(path="/v1/messages/count_tokens", body=b'{"input_tokens": 1999}', notes={"input_tokens": 2048})
    addon.response(flow)
    assert json.loads(flow.response.content) == {"input_tokens": 1999}


def test_count_tokens_without_estimate_is_still_an_anthropic_error(addon):
    flow = make_flow(path="/v1/messages/count_tokens", status=404, body=b'{"detail":"Not Found"}')
    addon.response(flow)
    assert flow.response.status_code == 404
    assert is_anthropic_error(json.loads(flow.response.content))


# --- provenance: the thinking signatures name the model that wrote them ----------------------


THOUGHT_ANSWER = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "m",
    "content": [{"type": "thinking", "thinking": "hmm", "signature": None}, {"type": "text", "text": "ok"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 5, "output_tokens": 3},
}


@pytest.mark.parametrize(
    "deployment, origin",
    [
        (None, "deepseek-flash"),  # the model the request named, as the request addon noted it
        ("anthropic/claude-sonnet-4-6", "claude-sonnet-4-6"),  # LiteLLM fell back to another deployment
    ],
)
def test_a_json_answers_thinking_names_the_model_that_wrote_it(addon, deployment, origin):
    flow = make_flow(body=json.dumps(THOUGHT_ANSWER).encode(), notes={"stream": False, "origin": "deepseek-flash"})
    if deployment:
        flow.response.headers["x-litellm-model-name"] = deployment
    addon.response(flow)
    assert json.loads(flow.response.content)["content"][0]["signature"] == f"stz1:{origin}:"


def test_without_an_origin_noted_no_signature_is_wrapped(addon):
    # The provenance switch off (option stabilizer_thinking_provenance): the request addon notes no origin.
    flow = make_flow(body=json.dumps(THOUGHT_ANSWER).encode(), notes={"stream": False})
    flow.response.headers["x-litellm-model-name"] = "anthropic/deepseek-flash"
    addon.response(flow)
    assert json.loads(flow.response.content)["content"][0]["signature"] == ""  # filled in, not wrapped


def test_a_streamed_answers_thinking_names_the_deployment_that_answered(addon):
    flow = make_flow(content_type=SSE, notes={"origin": "claude-opus-4-7"})
    flow.response.headers["x-litellm-model-name"] = "anthropic/deepseek-flash"
    addon.responseheaders(flow)
    sent = stream_through(
        flow,
        [
            message_to_sse_events(
                {
                    **THOUGHT_ANSWER,
                    "content": [
                        {"type": "thinking", "thinking": "hmm", "signature": "uuid-1"},
                        {"type": "text", "text": "ok"},
                    ],
                }
            )
        ],
    )
    assert sdk_final_message(sent).content[0].signature == "stz1:deepseek-flash:uuid-1"
