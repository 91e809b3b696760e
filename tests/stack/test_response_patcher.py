"""Response patching through the real stack: what the official SDK and Claude Code receive."""

import json
import threading

import anthropic
import pytest

from addons.errors.anthropic import is_anthropic_error
from tests.backend import CloseMidEvent, Error, StallMidStream, Text, ToolCalls
from tests.procs import post_json

ASK = {
    "model": "plain-model",
    "max_tokens": 256,
    "messages": [{"role": "user", "content": "Tell me about the weather."}],
}
TOOLS = [
    {
        "name": "Read",
        "description": "Read a file",
        "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}, "required": ["file_path"]},
    }
]

STREAM_SHAPES = [
    pytest.param(
        model, usage, chunking, eol, id=f"{model}-{usage}-{chunking}-{'crlf' if eol == chr(13) + chr(10) else 'lf'}"
    )
    for model in ("plain-model", "deepseek-flash", "qwen-plus")
    for usage in ("real", "null", "absent", "zero")
    for chunking, eol in (("normal", "\n"), ("odd", "\r\n"))
]


@pytest.mark.parametrize("model, usage, chunking, eol", STREAM_SHAPES)
def test_sdk_stream_helper_consumes_every_stream_with_real_usage(
    anthropic_client, fresh_backend, model, usage, chunking, eol
):
    fresh_backend.script(
        [
            ToolCalls(
                [("Read", {"file_path": "/etc/hostname"})],
                text="Let me look.",
                reasoning="The hostname is in /etc/hostname.",
            )
        ]
    )
    with fresh_backend.quirks(usage=usage, chunking=chunking, line_ending=eol):
        with anthropic_client.messages.stream(**{**ASK, "model": model, "tools": TOOLS}) as stream:
            final = stream.get_final_message()
    # DeepSeek V4 thinks: its reasoning comes first, as a thinking block.
    thinks = model.startswith("deepseek")
    assert [block.type for block in final.content] == ["thinking"] * thinks + ["text", "tool_use"]
    if thinks:
        assert final.content[0].thinking == "The hostname is in /etc/hostname."
    assert final.content[-1].input == {"file_path": "/etc/hostname"}
    assert final.stop_reason == "tool_use"
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0


@pytest.mark.parametrize("usage", ["null", "absent", "zero"])
def test_non_streaming_usage_is_filled(anthropic_client, fresh_backend, usage):
    with fresh_backend.quirks(usage=usage):
        message = anthropic_client.messages.create(**ASK)
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0


def test_demo_stream_is_a_real_stream(anthropic_client):
    """LiteLLM answers a streaming mock request with one JSON body; the client still gets events."""
    with anthropic_client.messages.stream(**{**ASK, "model": "demo"}) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_message()
    assert events[0] == "message_start" and "content_block_delta" in events and events[-1] == "message_stop"
    assert "demo model" in final.content[0].text and final.usage.input_tokens > 0


def test_no_buffering_first_event_arrives_before_the_second_is_sent(anthropic_client, fresh_backend):
    gate = threading.Event()
    fresh_backend.script([StallMidStream(after_events=2, until=gate, reply=Text("first second third"))])
    seen_before_release = []
    with anthropic_client.messages.stream(**ASK) as stream:
        for event in stream:
            if event.type == "content_block_delta" and not gate.is_set():
                seen_before_release.append(event.delta.text)
                gate.set()  # only now may the backend send the rest
        final = stream.get_final_message()
    assert seen_before_release, "no text arrived before the backend was released: something buffered"
    assert final.content[0].text == "first second third"


def anthropic_error(body: bytes) -> dict:
    payload = json.loads(body)
    assert is_anthropic_error(payload), payload
    return payload["error"]


def test_backend_context_error_becomes_prompt_too_long(stack, fresh_backend, master_key):
    fresh_backend.script(
        [
            Error(
                400,
                {
                    "error": {
                        "message": "This model's maximum context length is 131072 tokens. However, you requested 140000 tokens "
                        "(131808 in the messages, 8192 in the completion). Please reduce the length of the messages or completion.",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "invalid_request_error",
                    }
                },
            )
        ]
    )
    status, _, body = post_json(stack.url + "/v1/messages", ASK, {"x-api-key": master_key})
    assert status == 400
    error = anthropic_error(body)
    assert error["type"] == "invalid_request_error"
    assert error["message"] == "prompt is too long: 140000 tokens > 131072 maximum"


@pytest.mark.parametrize(
    "reply, expected_types",
    [
        (
            Error(500, {"error": {"message": "internal failure", "type": "server_error"}}),
            {"overloaded_error", "api_error"},
        ),
        (
            Error(502, "<html><head><title>502 Bad Gateway</title></head></html>", "text/html"),
            {"overloaded_error", "api_error"},
        ),
        (
            Error(401, {"error": {"message": "Authentication Fails (no such user)", "type": "authentication_error"}}),
            {"authentication_error"},
        ),
        (
            Error(429, {"error": {"message": "Rate limit reached", "type": "rate_limit_error"}}),
            {"rate_limit_error", "overloaded_error"},
        ),
    ],
)
def test_backend_errors_reach_the_client_in_anthropic_shape(stack, fresh_backend, master_key, reply, expected_types):
    fresh_backend.script([reply] * 3)  # LiteLLM retries 5xx and 429 once
    status, headers, body = post_json(stack.url + "/v1/messages", ASK, {"x-api-key": master_key})
    assert status >= 400 and headers["content-type"].startswith("application/json")
    assert anthropic_error(body)["type"] in expected_types


def test_stream_cut_by_the_backend_ends_with_a_well_formed_error_event(anthropic_client, fresh_backend):
    fresh_backend.script([CloseMidEvent(after_events=3, reply=Text("a long answer that will be cut"))] * 3)
    with pytest.raises(anthropic.APIStatusError) as raised:
        with anthropic_client.messages.stream(**ASK) as stream:
            for _ in stream:
                pass
    assert raised.value.body["type"] == "error" and raised.value.body["error"]["type"]


def test_count_tokens_always_answers(stack, master_key):
    for model in ("demo", "deepseek-flash"):
        status, _, body = post_json(
            stack.url + "/v1/messages/count_tokens?beta=true",
            {"model": model, "messages": ASK["messages"], "tools": TOOLS},
            {"x-api-key": master_key},
        )
        assert status == 200, body
        assert json.loads(body)["input_tokens"] > 10
