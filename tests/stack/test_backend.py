"""Tests of the stand-in provider itself (tests/backend/).

Fast tests talk to it directly: httpx for ordinary exchanges, a raw socket
when the test is about the bytes and HTTP chunks on the wire. One test, marked
`litellm`, runs the real LiteLLM proxy against it (~10 s start-up).
"""

import dataclasses
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from addons.messages.tokens import count_text
from tests.backend import (
    DEEPSEEK_KEYS,
    Backend,
    CloseMidEvent,
    EndlessEvent,
    Error,
    StallBeforeFirstByte,
    StallMidStream,
    Text,
    ToolCalls,
    anthropic_request_tokens,
    default_reasoning,
    odd_pieces,
    provider_for,
    request_tokens,
    split_fragments,
    split_text,
)

REPO = Path(__file__).resolve().parent.parent.parent


@pytest.fixture(scope="module")
def backend():
    with Backend() as started:
        yield started


@pytest.fixture(autouse=True)
def _fresh(backend):
    backend.reset()
    yield
    backend.reset()


@pytest.fixture
def client():
    with httpx.Client(timeout=10) as http:
        yield http


def chat(model="deepseek-flash", text="hello there", **extra):
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def post(client, backend, body, path="/chat/completions"):
    return client.post(backend.base_url + path, json=body)


def sse_payloads(data: bytes) -> list[str]:
    """The `data:` payloads of an SSE byte stream (either line ending)."""
    text = data.decode().replace("\r\n", "\n")
    assert text.endswith("\n\n"), "stream must end with a blank line"
    return [block.removeprefix("data: ") for block in text.split("\n\n") if block and not block.startswith(":")]


def chunks_of(data: bytes) -> list[dict]:
    payloads = sse_payloads(data)
    assert payloads[-1] == "[DONE]"
    return [json.loads(payload) for payload in payloads[:-1]]


def streamed_text(chunks: list[dict]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def streamed_reasoning(chunks: list[dict]) -> str:
    return "".join(c["choices"][0]["delta"].get("reasoning_content") or "" for c in chunks if c["choices"])


def tool_call_fragments(chunks: list[dict]) -> list[dict]:
    return [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks if c["choices"][0]["delta"].get("tool_calls")]


class RawExchange:
    """One request on a raw socket; reads the response's HTTP chunks one by
    one, so a test sees exactly what the server wrote and when."""

    def __init__(self, backend: Backend, body: dict) -> None:
        self.sock = socket.create_connection(("127.0.0.1", backend.port), timeout=10)
        self.buffer = b""
        self.send(body)

    def send(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: backend\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(data), data)
        )

    def close(self) -> None:
        self.sock.close()

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError(f"connection closed; unread: {self.buffer[:80]!r}")
            self.buffer += data
        head, _, self.buffer = self.buffer.partition(marker)
        return head

    def _read_exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError(f"connection closed after {len(self.buffer)} of {size} bytes")
            self.buffer += data
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def head(self) -> tuple[int, dict[str, str]]:
        lines = self._read_until(b"\r\n\r\n").decode().split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        return int(lines[0].split()[1]), {name.lower(): value for name, value in headers.items()}

    def next_chunk(self) -> bytes | None:
        """The next HTTP chunk's data; None for the terminating chunk."""
        size = int(self._read_until(b"\r\n"), 16)
        data = self._read_exactly(size + 2)
        assert data.endswith(b"\r\n")
        return data[:-2] or None

    def all_chunks(self) -> list[bytes]:
        chunks = []
        while (chunk := self.next_chunk()) is not None:
            chunks.append(chunk)
        return chunks

    def nothing_pending(self) -> bool:
        """No byte has arrived beyond what was read (non-blocking peek)."""
        if self.buffer:
            return False
        self.sock.setblocking(False)  # a socket timeout would make recv wait instead
        try:
            self.sock.recv(1, socket.MSG_PEEK)
            return False
        except BlockingIOError:
            return True
        finally:
            self.sock.settimeout(10)

    def drain(self) -> None:
        """Read until the peer closes (fails on the socket timeout otherwise)."""
        while self.sock.recv(65536):
            pass


# --------------------------------------------------------------------------
# Serving basics


def test_listens_on_loopback_and_lists_models(backend, client):
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", backend.base_url)
    response = client.get(backend.base_url + "/models")
    assert response.status_code == 200
    listed = [model["id"] for model in response.json()["data"]]
    assert {"deepseek-flash", "deepseek-v4-pro", "qwen-plus"} <= set(listed)
    assert "deepseek-chat" not in listed and "deepseek-reasoner" not in listed  # retired 2026-07-24


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/chat/completions"])
def test_both_paths_answer_and_default_reply_quotes_last_user_text(backend, client, path):
    body = {
        "model": "gpt-4o",
        "messages": [
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "an answer"},
            {"role": "user", "content": [{"type": "text", "text": "second question"}]},
        ],
    }
    response = client.post(backend.base_url.removesuffix("/v1") + path, json=body)
    assert response.status_code == 200
    answer = response.json()
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": 'You said: "second question"'}
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert backend.requests == [body]


def test_unknown_path_is_404_and_invalid_json_is_400(backend, client):
    assert client.post(backend.base_url + "/responses", json=chat()).status_code == 404
    assert backend.requests == [] and backend.exchanges[0].path == "/v1/responses"
    response = client.post(
        backend.base_url + "/chat/completions", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_stream_is_chunked_sse_ending_with_done(backend):
    raw = RawExchange(backend, chat(text="one two three four five", stream=True))
    try:
        status, headers = raw.head()
        chunks = raw.all_chunks()
    finally:
        raw.close()
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    assert headers["transfer-encoding"] == "chunked"
    assert all(chunk.startswith(b"data: ") and chunk.endswith(b"\n\n") for chunk in chunks)  # one event per write
    parsed = chunks_of(b"".join(chunks))
    assert parsed[0]["choices"][0]["delta"]["role"] == "assistant"
    assert streamed_text(parsed) == 'You said: "one two three four five"'
    assert len(parsed) >= 4  # role, several content deltas, finish
    assert parsed[-1]["choices"][0]["finish_reason"] == "stop"


def test_json_is_compact_like_the_gateways(backend, client):
    assert b'"object":"chat.completion"' in post(client, backend, chat()).content


def test_keeps_the_connection_alive_between_requests(backend):
    raw = RawExchange(backend, chat(stream=True))
    try:
        raw.head()
        assert chunks_of(b"".join(raw.all_chunks()))
        raw.send(chat(text="again"))
        status, headers = raw.head()
        answer = json.loads(raw._read_exactly(int(headers["content-length"])))
    finally:
        raw.close()
    assert status == 200 and answer["choices"][0]["message"]["content"] == 'You said: "again"'
    assert backend.wait_for_requests(2) == [chat(stream=True), chat(text="again")]


# --------------------------------------------------------------------------
# Usage: real counts, placed where each provider places them


def test_real_usage_counts_messages_and_tools(backend, client):
    tools = [{"type": "function", "function": {"name": "Read", "parameters": {"type": "object"}}}]
    body = chat(text="alpha beta gamma " * 20, tools=tools)
    usage = post(client, backend, body).json()["usage"]
    assert usage["prompt_tokens"] == request_tokens(body) > request_tokens(chat(text="alpha beta gamma " * 20))
    assert usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_cache_miss_tokens"] == usage["prompt_tokens"]  # DeepSeek's own fields


def test_deepseek_puts_usage_on_the_finish_chunk_whatever_stream_options(backend, client):
    for include in (False, True):
        extra = {"stream_options": {"include_usage": True}} if include else {}
        chunks = chunks_of(post(client, backend, chat(stream=True, **extra)).content)
        assert all(chunk["choices"] for chunk in chunks), "DeepSeek sends no usage-only chunk"
        assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
        assert chunks[-1]["usage"]["prompt_tokens"] == request_tokens(chat())
        if include:
            assert all(chunk["usage"] is None for chunk in chunks[:-1])
        else:
            assert all("usage" not in chunk for chunk in chunks[:-1])


@pytest.mark.parametrize("model", ["qwen-plus", "gpt-4o-mini", "vllm-qwen3-coder", "ollama-qwen3-coder"])
def test_qwen_and_openai_send_usage_only_when_asked(backend, client, model):
    plain = chunks_of(post(client, backend, chat(model, stream=True)).content)
    assert all(chunk.get("usage") is None for chunk in plain)
    asked = chunks_of(post(client, backend, chat(model, stream=True, stream_options={"include_usage": True})).content)
    assert asked[-1]["choices"] == []
    assert asked[-1]["usage"]["prompt_tokens"] == request_tokens(chat(model))
    assert asked[-2]["choices"][0]["finish_reason"] == "stop"
    assert all(chunk["usage"] is None for chunk in asked[:-1])


@pytest.mark.parametrize("model", ["deepseek-flash", "qwen-plus", "gpt-4o"])
def test_usage_modes(backend, client, model):
    streaming = chat(model, stream=True, stream_options={"include_usage": True})
    with backend.quirks(usage="null"):
        assert post(client, backend, chat(model)).json()["usage"] is None
        assert all(chunk["usage"] is None for chunk in chunks_of(post(client, backend, streaming).content))
    with backend.quirks(usage="absent"):
        assert "usage" not in post(client, backend, chat(model)).json()
        chunks = chunks_of(post(client, backend, streaming).content)
        assert all("usage" not in chunk and chunk["choices"] for chunk in chunks)
    with backend.quirks(usage="zero"):
        assert post(client, backend, chat(model)).json()["usage"]["prompt_tokens"] == 0
        usages = [chunk["usage"] for chunk in chunks_of(post(client, backend, streaming).content) if chunk.get("usage")]
        assert usages and all(u["prompt_tokens"] == u["completion_tokens"] == u["total_tokens"] == 0 for u in usages)


# --------------------------------------------------------------------------
# Scripted replies


def test_tool_calls_stream_arguments_in_fragments(backend, client):
    calls = [("Read", {"file_path": "/tmp/project/main.py"}), ("Glob", {"pattern": "**/*.py", "path": "/tmp"})]
    backend.script([ToolCalls(calls, text="Let me look.")])
    chunks = chunks_of(post(client, backend, chat(stream=True)).content)
    assert streamed_text(chunks) == "Let me look."
    fragments = tool_call_fragments(chunks)
    for index, (name, arguments) in enumerate(calls):
        mine = [f for f in fragments if f["index"] == index]
        assert mine[0]["function"] == {"name": name, "arguments": ""} and mine[0]["id"].startswith("call_")
        assert len(mine) > 3
        assert json.loads("".join(f["function"]["arguments"] for f in mine)) == arguments
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_qwen_tool_call_fragments_repeat_an_empty_id(backend, client):
    backend.script([ToolCalls([("Read", {"file_path": "/a"})])])
    chunks = chunks_of(post(client, backend, chat("qwen-plus", stream=True)).content)
    later = tool_call_fragments(chunks)[1:]
    assert later and all(f["id"] == "" and f["type"] == "function" for f in later)


def test_tool_calls_without_streaming(backend, client):
    backend.script([ToolCalls([("Read", {"file_path": "/a"})])])
    answer = post(client, backend, chat("gpt-4o")).json()["choices"][0]
    assert answer["finish_reason"] == "tool_calls"
    assert answer["message"]["content"] is None
    call = answer["message"]["tool_calls"][0]
    assert call["function"] == {"name": "Read", "arguments": json.dumps({"file_path": "/a"})}


@pytest.mark.parametrize("stream", [True, False])
def test_tool_call_arguments_given_as_a_string_are_sent_verbatim(backend, client, stream):
    backend.script([ToolCalls([("Write", "{'path': 'a.txt'}")])])
    response = post(client, backend, chat("qwen3-coder-plus", stream=stream))
    if stream:
        fragments = tool_call_fragments(chunks_of(response.content))
        arguments = "".join(f["function"]["arguments"] for f in fragments)
    else:
        arguments = response.json()["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
    assert arguments == "{'path': 'a.txt'}"


def test_script_then_responder_then_default(backend, client):
    backend.script([Text("scripted"), Error(503, {"error": {"message": "busy"}}, headers={"Retry-After": "1"})])
    backend.responder = lambda body: Text("from responder") if body["messages"][0]["content"] == "ask" else None
    first = post(client, backend, chat())
    second = post(client, backend, chat())
    third = post(client, backend, chat(text="ask"))
    fourth = post(client, backend, chat(text="other"))
    assert first.json()["choices"][0]["message"]["content"] == "scripted"
    assert (second.status_code, second.headers["retry-after"]) == (503, "1")
    assert second.json() == {"error": {"message": "busy"}}
    assert third.json()["choices"][0]["message"]["content"] == "from responder"
    assert fourth.json()["choices"][0]["message"]["content"] == 'You said: "other"'
    assert [e.status for e in backend.exchanges] == [200, 503, 200, 200]


def test_error_with_a_text_body(backend, client):
    backend.script([Error(502, "<html>Bad Gateway</html>", content_type="text/html")])
    response = post(client, backend, chat(stream=True))
    assert (response.status_code, response.text, response.headers["content-type"]) == (
        502,
        "<html>Bad Gateway</html>",
        "text/html",
    )


def test_rejected_requests_do_not_consume_the_script(backend, client):
    backend.script([Text("kept for the valid request")])
    assert post(client, backend, chat(max_tokens=393217)).status_code == 400
    assert post(client, backend, chat()).json()["choices"][0]["message"]["content"] == "kept for the valid request"
    assert len(backend.requests) == 2  # the rejected body is recorded too


# --------------------------------------------------------------------------
# Provider checks, with the providers' wording


# What LiteLLM 1.108.7 and 1.108.14 sent for Anthropic /v1/messages requests (plain,
# streaming with temperature/top_p/stop_sequences, tools with tool_choice and
# tool_use/tool_result history): see test_real_litellm_proxy_against_strict_deepseek.
LITELLM_KEYS = {
    "model",
    "messages",
    "max_tokens",
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    "stop",
    "tools",
    "tool_choice",
}


def test_deepseek_accepts_every_key_litellm_sends(backend, client):
    body = chat(
        max_tokens=8192,
        stream=True,
        stream_options={"include_usage": True},
        temperature=0.2,
        top_p=0.9,
        stop=["END"],
        tools=[{"type": "function", "function": {"name": "Read", "parameters": {}}}],
        tool_choice="auto",
    )
    assert set(body) == LITELLM_KEYS <= set(DEEPSEEK_KEYS)
    assert post(client, backend, body).status_code == 200


@pytest.mark.parametrize(
    "key, value",
    [
        ("output_config", {"effort": "high"}),
        ("top_k", 5),
        ("context_management", {"edits": []}),
        ("extra_body", {"thinking": {"type": "enabled"}}),
        ("enable_thinking", True),
    ],
)
def test_deepseek_rejects_unknown_keys(backend, client, key, value):
    response = post(client, backend, chat(**{key: value}))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == error["code"] == "invalid_request_error" and error["param"] is None
    assert error["message"].startswith(
        f"Failed to deserialize the JSON body into the target type: unknown field `{key}`, expected one of `messages`"
    )
    assert re.search(r"at line 1 column \d+$", error["message"])


def test_deepseek_v4_takes_thinking_and_reasoning_effort(backend, client):
    assert {"thinking", "reasoning_effort"} <= set(DEEPSEEK_KEYS)
    for extra in (
        {"thinking": {"type": "enabled"}},
        {"thinking": {"type": "disabled"}},
        {"reasoning_effort": "high"},
        {"thinking": {"type": "enabled"}, "reasoning_effort": "max"},
        {"reasoning_effort": "low"},
    ):
        assert post(client, backend, chat(**extra)).status_code == 200, extra


def test_deepseek_refuses_an_anthropic_shaped_thinking(backend, client):
    # Claude Code's own `thinking: {"type": "adaptive"}` is a known key with a value serde does not know.
    body = chat(thinking={"type": "adaptive"})
    response = post(client, backend, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == error["code"] == "invalid_request_error" and error["param"] is None
    assert re.fullmatch(
        r"Failed to deserialize the JSON body into the target type: thinking\.type: unknown variant `adaptive`, "
        r"expected `enabled` or `disabled` at line 1 column \d+",
        error["message"],
    ), error["message"]
    budget = post(client, backend, chat(thinking={"type": "enabled_with_budget", "budget_tokens": 31999}))
    assert "thinking.type: unknown variant `enabled_with_budget`" in budget.json()["error"]["message"]


@pytest.mark.parametrize("effort", ["none", "HIGH", 3])
def test_deepseek_refuses_an_effort_it_does_not_know(backend, client, effort):
    # LiteLLM turns Anthropic's thinking disabled into reasoning_effort "none", which DeepSeek does not know.
    response = post(client, backend, chat(reasoning_effort=effort))
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert message.startswith(
        f"Failed to deserialize the JSON body into the target type: reasoning_effort: unknown variant `{effort}`, "
        "expected one of `minimal`, `low`, `medium`, `high`, `xhigh`, `max`, `ultra` at line 1 column "
    )


def test_strict_keys_is_a_quirk(backend, client):
    with backend.quirks(strict_keys=False):
        assert post(client, backend, chat(top_k=5)).status_code == 200
    assert post(client, backend, chat("qwen-plus", top_k=5, enable_thinking=False, foo=1)).status_code == 200
    with backend.quirks(strict_keys=True):
        response = post(client, backend, chat("gpt-4o", foo=1, bar=2))
        assert response.json()["error"]["message"] == "Unrecognized request arguments supplied: foo, bar"
        assert post(client, backend, chat("qwen-plus", top_k=5)).status_code == 200  # DashScope knows top_k


@pytest.mark.parametrize("value", [393217, 1_000_000, 0, -1, "100"])
def test_deepseek_max_tokens_range(backend, client, value):
    response = post(client, backend, chat(max_tokens=value))
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "message": "Invalid max_tokens value, the valid range of max_tokens is [1, 393216]",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_request_error",
        }
    }


def test_max_tokens_at_the_limit_passes_and_qwen_and_openai_wording(backend, client):
    assert post(client, backend, chat(max_tokens=393216)).status_code == 200
    assert post(client, backend, chat("deepseek-v4-pro", max_tokens=32000)).status_code == 200  # Claude Code's ask
    assert post(client, backend, chat("qwen-plus", max_tokens=8192)).status_code == 200
    qwen = post(client, backend, chat("qwen-plus", max_tokens=9000))
    assert qwen.status_code == 400
    error = qwen.json()["error"]
    assert error == {
        "code": "invalid_parameter_error",
        "param": None,
        "type": "invalid_request_error",
        "message": "<400> InternalError.Algo.InvalidParameter: Range of max_tokens should be [1, 8192]",
    }
    assert post(client, backend, chat("gpt-4o", max_tokens=100000)).status_code == 200  # permissive
    with backend.quirks(max_tokens_limit=16384):
        error = post(client, backend, chat("gpt-4o", max_tokens=100000)).json()["error"]
        assert error["message"].startswith("max_tokens is too large: 100000.") and error["param"] == "max_tokens"


def test_deepseek_context_window_counts_messages_and_completion(backend, client):
    body = chat(text="lorem ipsum dolor " * 30, max_tokens=100)
    prompt = request_tokens(body)
    with backend.quirks(context_window=prompt + 100):
        assert post(client, backend, body).status_code == 200
    with backend.quirks(context_window=prompt + 99):
        response = post(client, backend, body)
    assert response.status_code == 400
    assert response.json()["error"] == {
        "message": f"This model's maximum context length is {prompt + 99} tokens. However, you requested "
        f"{prompt + 100} tokens ({prompt} in the messages, 100 in the completion). "
        "Please reduce the length of the messages or completion.",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_request_error",
    }


def test_deepseek_default_window_is_1m(backend, client):
    assert backend.quirks_for("deepseek-flash").context_window == backend.quirks_for("deepseek-v4-pro").context_window
    body = chat(text="hello " * 1_000_100, max_tokens=1)
    assert 1_000_000 < request_tokens(body) < 1_010_000
    assert "maximum context length is 1000000 tokens" in post(client, backend, body).json()["error"]["message"]
    # What deepseek-chat's 128K window refused now fits.
    assert post(client, backend, chat(text="hello " * 131100, max_tokens=1)).status_code == 200


def test_qwen_limits_the_input_alone(backend, client):
    body = chat("qwen-plus", text="lorem ipsum dolor " * 30, max_tokens=8000)
    prompt = request_tokens(body)
    with backend.quirks(context_window=prompt):
        assert post(client, backend, body).status_code == 200
    with backend.quirks(context_window=prompt - 1):
        error = post(client, backend, body).json()["error"]
    assert error["code"] == "invalid_parameter_error"
    assert error["message"] == (
        f"<400> InternalError.Algo.InvalidParameter: Range of input length should be [1, {prompt - 1}]"
    )


def test_openai_context_error_when_a_window_is_set(backend, client):
    with backend.quirks(context_window=10):
        error = post(client, backend, chat("gpt-4o", text="word " * 50)).json()["error"]
    assert error["code"] == "context_length_exceeded" and error["param"] == "messages"


def test_missing_messages_is_rejected(backend, client):
    response = post(client, backend, {"model": "deepseek-flash"})
    assert response.status_code == 400
    assert "missing field `messages`" in response.json()["error"]["message"]


def test_quirks_override_restore_and_validate(backend):
    deepseek = backend.quirks_for("deepseek-flash")
    assert deepseek.strict_keys and deepseek.thinking
    assert (deepseek.max_tokens_limit, deepseek.context_window) == (393216, 1_000_000)
    # v4-pro differs only in taking no images (DeepSeek Models & Pricing, read 2026-11-26).
    assert backend.quirks_for("deepseek-v4-pro") == dataclasses.replace(deepseek, images=False)
    assert deepseek.images and not backend.quirks_for("DeepSeek-V4-Pro-0526").images
    with backend.quirks(images=True):
        assert backend.quirks_for("deepseek-v4-pro").images  # an override beats the model default
    assert backend.quirks_for("qwen-plus").strict_arguments and not deepseek.strict_arguments
    assert not backend.quirks_for("qwen-plus").thinking and not backend.quirks_for("gpt-4o").thinking
    with backend.quirks(strict_keys=False, usage="zero"):
        with backend.quirks(usage="null"):
            inner = backend.quirks_for("deepseek-v3")
            assert (inner.usage, inner.strict_keys) == ("null", False)
        assert backend.quirks_for("deepseek-flash").usage == "zero"
    assert backend.quirks_for("deepseek-flash").usage == "real"
    assert backend.quirks_for("qwen3-coder-plus").context_window == 129024
    assert backend.quirks_for("claude-sonnet").max_tokens_limit is None
    with pytest.raises(TypeError), backend.quirks(usge="null"):
        pass
    with pytest.raises(ValueError), backend.quirks(usage="sometimes"):
        pass


IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}


def with_parts(model: str, *parts: dict) -> dict:
    """A request whose third message (index 2) carries `parts` after a text part."""
    return {
        "model": model,
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": [{"type": "text", "text": "look at this"}, *parts]},
        ],
    }


def test_deepseek_v4_pro_refuses_images_with_serdes_wording(backend, client):
    body = with_parts("deepseek-v4-pro", IMAGE)
    raw = json.dumps(body)
    response = client.post(
        backend.base_url + "/chat/completions", content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    column = raw.index('"type": "image_url"') + len('"type": "image_url"')
    assert response.json() == deepseek_error(
        "Failed to deserialize the JSON body into the target type: messages[2]: unknown variant `image_url`, "
        f"expected `text` at line 1 column {column}"
    )
    assert post(client, backend, with_parts("deepseek-flash", IMAGE)).status_code == 200  # the profile's default
    assert post(client, backend, chat("deepseek-v4-pro")).status_code == 200  # text alone passes


def test_images_is_a_quirk_with_openais_wording_elsewhere(backend, client):
    assert post(client, backend, with_parts("gpt-4o", IMAGE)).status_code == 200
    with backend.quirks(images=False):
        response = post(client, backend, with_parts("gpt-4o", {"type": "text", "text": "and"}, IMAGE))
        assert "unknown variant `image_url`" in post(client, backend, with_parts("deepseek-flash", IMAGE)).text
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "message": "Invalid content type. image_url is only supported by certain models.",
            "type": "invalid_request_error",
            "param": "messages.[2].content.[2].type",
            "code": None,
        }
    }


def test_deepseek_takes_no_file_part_and_openai_does(backend, client):
    document = {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}}
    response = post(client, backend, with_parts("deepseek-flash", document))
    assert response.status_code == 400
    assert re.fullmatch(
        r"Failed to deserialize the JSON body into the target type: messages\[2\]: unknown variant "
        r"`file`, expected `text` at line 1 column \d+",
        response.json()["error"]["message"],
    )
    assert post(client, backend, with_parts("gpt-4o", document)).status_code == 200
    assert post(client, backend, with_parts("qwen-plus", document)).status_code == 200


def test_max_tools_refuses_with_kimis_wording(backend, client):
    tools = [{"type": "function", "function": {"name": f"tool_{n}", "parameters": {}}} for n in range(129)]
    assert post(client, backend, chat("gpt-4o", tools=tools)).status_code == 200  # no limit by default
    with backend.quirks(max_tools=128):
        assert post(client, backend, chat("gpt-4o", tools=tools[:128])).status_code == 200
        response = post(client, backend, chat("gpt-4o", tools=tools))
    assert response.status_code == 400
    assert response.json() == {
        "error": {"message": "a max of 128 tools can be supported", "type": "invalid_request_error"}
    }


def replayed_call(model: str, arguments: str) -> dict:
    call = {"id": "call_01", "type": "function", "function": {"name": "Read", "arguments": arguments}}
    return {
        "model": model,
        "messages": [
            {"role": "user", "content": "read it"},
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_01", "content": "print(1)"},
            {"role": "user", "content": "go on"},
        ],
    }


@pytest.mark.parametrize("arguments", ["{'path': 'a.txt'}", '["a.txt"]', '"a.txt"', '{"path": "a.txt"'])
def test_qwen_refuses_replayed_arguments_that_are_not_a_json_object(backend, client, arguments):
    response = post(client, backend, replayed_call("qwen3-coder-plus", arguments))
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["message"]) == (
        "invalid_parameter_error",
        (
            '<400> InternalError.Algo.InvalidParameter: The "function.arguments" parameter of the code model '
            "must be in JSON format."
        ),
    )
    assert post(client, backend, replayed_call("qwen3-coder-plus", '{"path": "a.txt"}')).status_code == 200


def test_strict_arguments_is_a_quirk_with_vllms_wording_elsewhere(backend, client):
    body = replayed_call("gpt-4o", "{'path': 'a.txt'}")
    assert post(client, backend, body).status_code == 200  # off by default
    with backend.quirks(strict_arguments=True):
        response = post(client, backend, body)
        assert post(client, backend, replayed_call("gpt-4o", "[]")).status_code == 200  # valid JSON: let through
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "message": "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
            "type": "BadRequestError",
            "param": None,
            "code": 400,
        }
    }
    with backend.quirks(strict_arguments=False):
        assert post(client, backend, replayed_call("qwen-plus", "{'path': 'a.txt'}")).status_code == 200


def anthropic_body(*blocks: dict, **extra) -> dict:
    return {
        "model": "deepseek-flash",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, *blocks]}],
        **extra,
    }


def test_messages_route_refuses_documents_and_too_many_tools(backend, client):
    document = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}}
    refused = post(client, backend, anthropic_body(document), path="/messages")
    assert refused.status_code == 400
    assert refused.json()["error"]["message"].startswith(
        "Failed to deserialize the JSON body into the target type: messages: unknown variant `document`"
    )
    tools = [{"name": f"tool_{n}", "input_schema": {"type": "object"}} for n in range(3)]
    assert post(client, backend, anthropic_body(tools=tools), path="/messages").status_code == 200
    with backend.quirks(max_tools=2):
        response = post(client, backend, anthropic_body(tools=tools), path="/messages")
    assert response.status_code == 400
    assert response.json() == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "a max of 2 tools can be supported"},
    }


def test_messages_tool_use_with_string_arguments_streams_them_verbatim(backend, client):
    backend.script([ToolCalls([("Write", "{'path': 'a.txt'}")])])
    response = post(client, backend, anthropic_body(stream=True), path="/messages")
    events = [
        json.loads(line.removeprefix("data: ")) for line in response.text.splitlines() if line.startswith("data: ")
    ]
    partial = "".join(
        e["delta"]["partial_json"]
        for e in events
        if e["type"] == "content_block_delta" and e["delta"]["type"] == "input_json_delta"
    )
    assert partial == "{'path': 'a.txt'}"


def test_forced_provider_ignores_the_model_name():
    forced = Backend(provider="qwen")
    assert forced.quirks_for("deepseek-flash").provider == "qwen"


# --------------------------------------------------------------------------
# DeepSeek V4's thinking mode


TOOLS = [{"type": "function", "function": {"name": "Read", "parameters": {"type": "object"}}}]
REASONING_MISSING = "The reasoning_content in the thinking mode must be passed back to the API."


def tool_history(**assistant_fields) -> list[dict]:
    """A user turn, an assistant turn that called Read (with `assistant_fields`), and the tool's answer."""
    call = {"id": "call_01", "type": "function", "function": {"name": "Read", "arguments": "{}"}}
    return [
        {"role": "user", "content": "read it"},
        {"role": "assistant", "content": "", "tool_calls": [call], **assistant_fields},
        {"role": "tool", "tool_call_id": "call_01", "content": "print(1)"},
    ]


def deepseek_error(message: str) -> dict:
    return {
        "error": {"message": message, "type": "invalid_request_error", "param": None, "code": "invalid_request_error"}
    }


def test_reasoning_streams_before_the_answer(backend, client):
    backend.script([Text("the answer is four", reasoning="two plus two, carried over, makes four")])
    chunks = chunks_of(post(client, backend, chat(stream=True)).content)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": None, "reasoning_content": ""}
    assert streamed_reasoning(chunks) == "two plus two, carried over, makes four"
    assert streamed_text(chunks) == "the answer is four"
    deltas = [c["choices"][0]["delta"] for c in chunks]
    reasoning_at = [i for i, d in enumerate(deltas) if d.get("reasoning_content")]
    content_at = [i for i, d in enumerate(deltas) if d.get("content")]
    assert len(reasoning_at) > 1 and content_at  # in several pieces
    assert max(reasoning_at) < min(content_at)
    assert all(deltas[i]["content"] is None for i in reasoning_at)  # content null beside the reasoning
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_reasoning_in_the_json_answer(backend, client):
    backend.script([Text("the answer is four", reasoning="two plus two")])
    answer = post(client, backend, chat("deepseek-v4-pro")).json()
    assert answer["choices"][0]["message"] == {
        "role": "assistant",
        "content": "the answer is four",
        "reasoning_content": "two plus two",
    }


def test_unscripted_reasoning_is_the_default_sentence(backend, client):
    body = chat(text="four words long here")
    message = post(client, backend, body).json()["choices"][0]["message"]
    assert message["reasoning_content"] == default_reasoning(body) != ""
    assert message["content"] == 'You said: "four words long here"'


def test_reasoning_before_tool_calls(backend, client):
    backend.script([ToolCalls([("Read", {"file_path": "/a"})], text="Let me look.", reasoning="I need the file")])
    chunks = chunks_of(post(client, backend, chat(stream=True, tools=TOOLS)).content)
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert streamed_reasoning(chunks) == "I need the file"
    last_reasoning = max(i for i, d in enumerate(deltas) if d.get("reasoning_content"))
    first_call = min(i for i, d in enumerate(deltas) if d.get("tool_calls"))
    first_content = min(i for i, d in enumerate(deltas) if d.get("content"))
    assert last_reasoning < first_content < first_call
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize("stream", [False, True])
def test_reasoning_tokens_are_counted_in_the_completion(backend, client, stream):
    reasoning = "first a few words of reasoning, then some more of it"
    backend.script([Text("short answer", reasoning=reasoning)])
    response = post(client, backend, chat(stream=stream))
    usage = chunks_of(response.content)[-1]["usage"] if stream else response.json()["usage"]
    assert usage["completion_tokens_details"] == {"reasoning_tokens": count_text(reasoning)}
    assert usage["completion_tokens"] == count_text(reasoning) + count_text("short answer")
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


@pytest.mark.parametrize("model", ["qwen-plus", "gpt-4o"])
def test_other_providers_do_not_reason(backend, client, model):
    answer = post(client, backend, chat(model)).json()
    assert "reasoning_content" not in answer["choices"][0]["message"]
    assert "completion_tokens_details" not in answer["usage"]
    chunks = chunks_of(post(client, backend, chat(model, stream=True)).content)
    assert streamed_reasoning(chunks) == ""


def test_thinking_disabled_gives_no_reasoning(backend, client):
    backend.script([Text("plain", reasoning="never seen"), Text("plain again", reasoning="never seen")])
    answer = post(client, backend, chat(thinking={"type": "disabled"})).json()
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": "plain"}
    assert "completion_tokens_details" not in answer["usage"]
    assert answer["usage"]["completion_tokens"] == count_text("plain")
    chunks = chunks_of(post(client, backend, chat(thinking={"type": "disabled"}, stream=True)).content)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all("reasoning_content" not in c["choices"][0]["delta"] for c in chunks)
    assert streamed_text(chunks) == "plain again"


def test_thinking_enabled_explicitly_reasons(backend, client):
    message = post(client, backend, chat(thinking={"type": "enabled"})).json()["choices"][0]["message"]
    assert message["reasoning_content"]


def test_an_effort_with_thinking_disabled_still_thinks(backend, client):
    # The pair is answered as a thinking request: reasoning, and the round-trip rule.
    body = chat(thinking={"type": "disabled"}, reasoning_effort="high")
    assert post(client, backend, body).json()["choices"][0]["message"]["reasoning_content"]
    body = {**body, "messages": tool_history(), "tools": TOOLS}
    response = post(client, backend, body)
    assert (response.status_code, response.json()) == (400, deepseek_error(REASONING_MISSING))


def test_thinking_is_a_quirk(backend, client):
    with backend.quirks(thinking=False):
        assert "reasoning_content" not in post(client, backend, chat()).json()["choices"][0]["message"]
        assert post(client, backend, chat(messages=tool_history(), tools=TOOLS)).status_code == 200


def test_tool_request_without_earlier_reasoning_is_refused(backend, client):
    backend.script([Text("kept for the valid request")])
    response = post(client, backend, chat(messages=tool_history(), tools=TOOLS))
    assert (response.status_code, response.json()) == (400, deepseek_error(REASONING_MISSING))
    # Explicitly enabled: the same.
    response = post(client, backend, chat(messages=tool_history(), tools=TOOLS, thinking={"type": "enabled"}))
    assert (response.status_code, response.json()) == (400, deepseek_error(REASONING_MISSING))
    # Not a string is not reasoning.
    response = post(client, backend, chat(messages=tool_history(reasoning_content=None), tools=TOOLS))
    assert (response.status_code, response.json()) == (400, deepseek_error(REASONING_MISSING))
    # A later turn that called no tool needs its reasoning too.
    messages = [
        *tool_history(reasoning_content="r"),
        {"role": "assistant", "content": "done"},
        {"role": "user", "content": "and now?"},
    ]
    response = post(client, backend, chat(messages=messages, tools=TOOLS))
    assert (response.status_code, response.json()) == (400, deepseek_error(REASONING_MISSING))
    answer = post(client, backend, chat())
    assert answer.json()["choices"][0]["message"]["content"] == "kept for the valid request"


def test_tool_request_with_earlier_reasoning_passes(backend, client):
    for reasoning in ("", "I read the file first"):  # an empty string counts
        response = post(client, backend, chat(messages=tool_history(reasoning_content=reasoning), tools=TOOLS))
        assert response.status_code == 200, (reasoning, response.text)
    messages = [
        *tool_history(reasoning_content=""),
        {"role": "assistant", "content": "done", "reasoning_content": ""},
        {"role": "user", "content": "and now?"},
    ]
    assert post(client, backend, chat(messages=messages, tools=TOOLS)).status_code == 200


def test_request_without_tools_needs_no_earlier_reasoning(backend, client):
    assert post(client, backend, chat(messages=tool_history())).status_code == 200
    assert post(client, backend, chat(messages=tool_history(), tools=[])).status_code == 200


def test_thinking_disabled_needs_no_earlier_reasoning(backend, client):
    body = chat(messages=tool_history(), tools=TOOLS, thinking={"type": "disabled"})
    assert post(client, backend, body).status_code == 200


# --------------------------------------------------------------------------
# The other profiles: Kimi, GLM, MiniMax, vLLM, Ollama, llama-server


@pytest.mark.parametrize(
    "model, provider",
    [
        ("kimi-k3", "kimi"),
        ("kimi-k2.6", "kimi"),
        ("glm-5.3", "glm"),
        ("MiniMax-M3", "minimax"),
        ("minimax-m2.7", "minimax"),
        ("vllm-qwen3-coder", "vllm"),
        ("ollama-qwen3-coder", "ollama"),
        ("llamacpp-local", "llamacpp"),
        ("deepseek-flash", "deepseek"),
        ("qwen3.8-max", "qwen"),
        ("vllmish", "openai"),
        ("plain-model", "openai"),
    ],
)
def test_the_model_name_picks_the_profile(backend, model, provider):
    assert provider_for(model) == backend.quirks_for(model).provider == provider


def test_model_defaults_on_top_of_the_profiles(backend):
    k3, k2 = backend.quirks_for("kimi-k3"), backend.quirks_for("kimi-k2.6")
    assert (k3.context_window, k3.always_thinks, k3.fixed_temperature) == (1_048_576, True, 1.0)
    assert (k2.context_window, k2.always_thinks, k2.fixed_temperature, k2.max_tools) == (262_144, False, None, 128)
    assert backend.quirks_for("kimi-k3.1-pro") == k3
    glm, flash = backend.quirks_for("glm-5.3"), backend.quirks_for("glm-5.3-flash")
    assert (glm.context_window, glm.max_tokens_limit, glm.always_thinks, glm.images) == (1_048_576, 131072, True, False)
    assert flash.always_thinks and flash.images  # the longer prefix applies last
    assert not backend.quirks_for("glm-5.2").always_thinks
    assert backend.quirks_for("MiniMax-M3").context_window == 1_000_000
    assert backend.quirks_for("MiniMax-M2.7-highspeed").context_window == 204_800
    assert backend.quirks_for("qwen3.7-plus").max_tokens_limit == 65_536
    assert backend.quirks_for("qwen3.8-max").max_tokens_limit == 131_072
    ollama = backend.quirks_for("ollama-qwen3-coder")
    assert (ollama.context_window, ollama.truncate_history) == (32768, True)
    with backend.quirks(context_window=4096):
        assert backend.quirks_for("ollama-qwen3-coder").context_window == 4096
    assert backend.quirks_for("vllm-x").tool_parser and backend.quirks_for("vllm-x").context_window is None


@pytest.mark.parametrize("model", ["kimi-k3", "glm-5.3", "MiniMax-M3", "vllm-qwen3", "ollama-qwen3", "llamacpp-x"])
def test_the_other_profiles_ignore_unknown_keys(backend, client, model):
    assert post(client, backend, chat(model, foo=1, top_k=5, output_config={"effort": "high"})).status_code == 200


def moonshot_error(message: str) -> dict:
    return {"error": {"message": message, "type": "invalid_request_error"}}


@pytest.mark.parametrize("model", ["kimi-k3", "kimi-k2.6", "glm-5.3", "glm-5.2", "llamacpp-local"])
def test_reasoning_content_streams_before_the_answer(backend, client, model):
    backend.script([Text("the answer", reasoning="thinking it over")])
    chunks = chunks_of(post(client, backend, chat(model, stream=True)).content)
    assert streamed_reasoning(chunks) == "thinking it over" and streamed_text(chunks) == "the answer"
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert max(i for i, d in enumerate(deltas) if d.get("reasoning_content")) < min(
        i for i, d in enumerate(deltas) if d.get("content")
    )


def test_kimi_k3_always_thinks_and_k2_can_stop(backend, client):
    disabled = {"thinking": {"type": "disabled"}}
    assert post(client, backend, chat("kimi-k3", **disabled)).json()["choices"][0]["message"]["reasoning_content"]
    message = post(client, backend, chat("kimi-k2.6", **disabled)).json()["choices"][0]["message"]
    assert "reasoning_content" not in message
    assert post(client, backend, chat("kimi-k2.6")).json()["choices"][0]["message"]["reasoning_content"]


def kimi_history(*, second_reasoning: bool) -> list[dict]:
    """Two tool-call turns; the second (index 3) with or without its reasoning_content."""
    call = {"id": "call_01", "type": "function", "function": {"name": "Read", "arguments": "{}"}}
    second = {"role": "assistant", "content": "", "tool_calls": [call]}
    if second_reasoning:
        second["reasoning_content"] = "and then"
    return [
        {"role": "user", "content": "read it"},
        {"role": "assistant", "content": "", "tool_calls": [call], "reasoning_content": "first"},
        {"role": "tool", "tool_call_id": "call_01", "content": "print(1)"},
        second,
        {"role": "tool", "tool_call_id": "call_01", "content": "print(2)"},
        {"role": "assistant", "content": "done"},  # no tool call: no reasoning needed
        {"role": "user", "content": "and now?"},
    ]


@pytest.mark.parametrize("model", ["kimi-k3", "kimi-k2.6"])
def test_kimi_refuses_a_tool_call_turn_without_its_reasoning_by_index(backend, client, model):
    for tools in ({"tools": TOOLS}, {}):  # with tools in the request or not
        response = post(client, backend, chat(model, messages=kimi_history(second_reasoning=False), **tools))
        assert (response.status_code, response.json()) == (
            400,
            moonshot_error(
                "thinking is enabled but reasoning_content is missing in assistant tool call message at index 3"
            ),
        )
    assert post(client, backend, chat(model, messages=kimi_history(second_reasoning=True))).status_code == 200


def test_kimi_k2_without_thinking_needs_no_reasoning_and_k3_still_does(backend, client):
    body = {"messages": kimi_history(second_reasoning=False), "thinking": {"type": "disabled"}}
    assert post(client, backend, chat("kimi-k2.6", **body)).status_code == 200
    assert post(client, backend, chat("kimi-k3", **body)).status_code == 400


# The error each provider answers when input + max_tokens pass the window: (window, requested) -> body.
WINDOW_ERRORS = {
    "kimi-k2.6": lambda window, requested: moonshot_error(
        f"Invalid request: Your request exceeded model token limit: {window} (requested: {requested})"
    ),
    "MiniMax-M3": lambda window, requested: {
        "error": {
            "message": "invalid params, context window exceeds limit (2013)",
            "type": "bad_request_error",
            "param": "",
            "code": None,
        }
    },
}


@pytest.mark.parametrize("model", WINDOW_ERRORS)
def test_the_window_counts_input_and_max_tokens(backend, client, model):
    body = chat(model, text="lorem ipsum dolor " * 30, max_tokens=100)
    prompt = request_tokens(body)
    with backend.quirks(context_window=prompt + 100):
        assert post(client, backend, body).status_code == 200
    with backend.quirks(context_window=prompt + 99):
        response = post(client, backend, body)
    assert (response.status_code, response.json()) == (400, WINDOW_ERRORS[model](prompt + 99, prompt + 100))


def test_kimi_takes_128_tools(backend, client):
    tools = [{"type": "function", "function": {"name": f"tool_{n}", "parameters": {}}} for n in range(129)]
    assert post(client, backend, chat("kimi-k3", tools=tools[:128])).status_code == 200
    response = post(client, backend, chat("kimi-k3", tools=tools))
    assert (response.status_code, response.json()) == (400, moonshot_error("a max of 128 tools can be supported"))


def test_kimi_k3_takes_only_temperature_1(backend, client):
    for value in (0.6, 0, 1.5):
        response = post(client, backend, chat("kimi-k3", temperature=value))
        assert (response.status_code, response.json()) == (
            400,
            moonshot_error("invalid temperature: only 1 is allowed for this model"),
        ), value
    for extra in ({"temperature": 1}, {"temperature": 1.0}, {}):
        assert post(client, backend, chat("kimi-k3", **extra)).status_code == 200
    assert post(client, backend, chat("kimi-k2.6", temperature=0.6)).status_code == 200


def test_glm_5_3_always_thinks_and_5_2_can_stop(backend, client):
    disabled = {"thinking": {"type": "disabled"}}
    for model in ("glm-5.3", "glm-5.3-flash"):
        assert post(client, backend, chat(model, **disabled)).json()["choices"][0]["message"]["reasoning_content"]
    assert "reasoning_content" not in post(client, backend, chat("glm-5.2", **disabled)).json()["choices"][0]["message"]
    assert post(client, backend, chat("glm-5.2")).json()["choices"][0]["message"]["reasoning_content"]


def test_glm_window_counts_the_prompt_alone_in_zais_envelope(backend, client):
    body = chat("glm-5.3", text="lorem ipsum dolor " * 30, max_tokens=100)
    prompt = request_tokens(body)
    with backend.quirks(context_window=prompt):
        assert post(client, backend, body).status_code == 200  # max_tokens does not count
    with backend.quirks(context_window=prompt - 1):
        response = post(client, backend, body)
    assert (response.status_code, response.json()) == (
        400,
        {"error": {"code": "1261", "message": "Prompt exceeds max length"}},
    )


def test_glm_max_tokens_range(backend, client):
    assert post(client, backend, chat("glm-5.3", max_tokens=131072)).status_code == 200
    response = post(client, backend, chat("glm-5.3", max_tokens=131073))
    assert (response.status_code, response.json()) == (
        400,
        {"error": {"code": "1214", "message": "The max_tokens parameter is illegal.：限制数值范围[1,131072]"}},
    )


def test_glm_5_3_refuses_images_and_flash_takes_them(backend, client):
    response = post(client, backend, with_parts("glm-5.3", IMAGE))
    assert (response.status_code, response.json()) == (
        400,
        {"error": {"code": "1210", "message": "messages.content.type 参数非法，取值范围 ['text']"}},
    )
    assert post(client, backend, with_parts("glm-5.3-flash", IMAGE)).status_code == 200
    assert post(client, backend, chat("glm-5.3")).status_code == 200


@pytest.mark.parametrize("stream", [False, True])
def test_minimax_writes_its_reasoning_in_think_tags_in_the_content(backend, client, stream):
    backend.script([Text("the answer", reasoning="thinking it over")])
    response = post(client, backend, chat("MiniMax-M3", stream=stream, thinking={"type": "disabled"}))
    if stream:
        chunks = chunks_of(response.content)
        content = streamed_text(chunks)
        deltas = [c["choices"][0]["delta"] for c in chunks]
        assert not any("reasoning_content" in d or "reasoning_details" in d for d in deltas)
        usage = None
    else:
        message = response.json()["choices"][0]["message"]
        content, usage = message["content"], response.json()["usage"]
        assert set(message) == {"role", "content"}
    assert content == "<think>\nthinking it over\n</think>\n\nthe answer"  # always thinks
    if usage:
        assert usage["completion_tokens_details"] == {"reasoning_tokens": count_text("thinking it over")}


@pytest.mark.parametrize("stream", [False, True])
def test_minimax_reasoning_split_puts_the_reasoning_in_reasoning_details(backend, client, stream):
    backend.script([Text("the answer", reasoning="thinking it over at some length")])
    response = post(client, backend, chat("MiniMax-M2.7", stream=stream, reasoning_split=True))
    if stream:
        chunks = chunks_of(response.content)
        assert streamed_text(chunks) == "the answer"
        details = [d for c in chunks for d in c["choices"][0]["delta"].get("reasoning_details") or []]
        assert len(details) > 2 and all(d["type"] == "reasoning.text" for d in details)
        assert "".join(d["text"] for d in details) == "thinking it over at some length"  # incremental pieces
    else:
        message = response.json()["choices"][0]["message"]
        assert message["content"] == "the answer"
        assert message["reasoning_details"] == [{"type": "reasoning.text", "text": "thinking it over at some length"}]


@pytest.mark.parametrize("model", ["vllm-qwen3-coder", "ollama-qwen3-coder"])
def test_local_servers_write_reasoning_not_reasoning_content(backend, client, model):
    backend.script([Text("the answer", reasoning="thinking it over"), Text("the answer", reasoning="streamed")])
    message = post(client, backend, chat(model)).json()["choices"][0]["message"]
    assert message == {"role": "assistant", "content": "the answer", "reasoning": "thinking it over"}
    chunks = chunks_of(post(client, backend, chat(model, stream=True)).content)
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert "".join(d.get("reasoning") or "" for d in deltas) == "streamed"
    assert not any("reasoning_content" in d for d in deltas) and streamed_text(chunks) == "the answer"


@pytest.mark.parametrize(
    "model, switch",
    [
        ("vllm-qwen3-coder", {"chat_template_kwargs": {"enable_thinking": False}}),
        ("ollama-qwen3-coder", {"reasoning_effort": "none"}),
    ],
)
def test_local_servers_turn_thinking_off_their_own_way(backend, client, model, switch):
    message = post(client, backend, chat(model, **switch)).json()["choices"][0]["message"]
    assert "reasoning" not in message
    assert (
        "reasoning" in post(client, backend, chat(model, thinking={"type": "disabled"})).json()["choices"][0]["message"]
    )  # not their switch


def vllm_error(message: str, param: str | None) -> dict:
    return {"error": {"message": message, "type": "BadRequestError", "param": param, "code": 400}}


def test_vllm_context_errors_with_its_renderers_wording(backend, client):
    body = chat("vllm-qwen3-coder", text="lorem ipsum dolor " * 30, max_tokens=100)
    prompt = request_tokens(body)
    with backend.quirks(context_window=prompt + 100):
        assert post(client, backend, body).status_code == 200
    with backend.quirks(context_window=prompt + 99):
        response = post(client, backend, body)
        unset = post(client, backend, {**body, "max_tokens": None})  # counts as 0: fits
        too_many = post(client, backend, {**body, "max_tokens": prompt + 100})
    assert (response.status_code, response.json()) == (
        400,
        vllm_error(
            f"You passed {prompt} input tokens and requested 100 output tokens. However, the model's context length is "
            f"only {prompt + 99} tokens, resulting in a maximum input length of {prompt - 1} tokens. Please reduce the "
            "length of the input prompt.",
            "input_tokens",
        ),
    )
    assert unset.status_code == 200
    assert too_many.json() == vllm_error(
        f"max_tokens={prompt + 100}cannot be greater than max_model_len=max_total_tokens={prompt + 99}. "
        "Please request fewer output tokens.",
        "max_tokens",
    )


def test_vllm_without_a_tool_parser_refuses_tools(backend, client):
    assert post(client, backend, chat("vllm-qwen3-coder", tools=TOOLS)).status_code == 200
    with backend.quirks(tool_parser=False):
        auto = post(client, backend, chat("vllm-qwen3-coder", tools=TOOLS))
        required = post(client, backend, chat("vllm-qwen3-coder", tools=TOOLS, tool_choice="required"))
        assert post(client, backend, chat("vllm-qwen3-coder", tools=TOOLS, tool_choice="none")).status_code == 200
        assert post(client, backend, chat("vllm-qwen3-coder")).status_code == 200  # no tools
    assert (auto.status_code, auto.json()) == (
        400,
        vllm_error('"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set', None),
    )
    assert required.json() == vllm_error('tool_choice="required" requires --tool-call-parser to be set', None)


def long_history(model: str, turns: int = 6) -> dict:
    """A system prompt, then `turns` user/assistant messages of about a hundred tokens each, the last a user's."""
    messages = [{"role": "system", "content": "You are terse."}]
    messages += [
        {"role": "user" if n % 2 == 0 else "assistant", "content": f"message {n}: " + "lorem ipsum " * 50}
        for n in range(turns - 1)
    ]
    messages.append({"role": "user", "content": "the last question"})
    return {"model": model, "messages": messages, "max_tokens": 100_000}


def test_ollama_silently_drops_the_oldest_messages_to_fit(backend, client):
    body = long_history("ollama-qwen3-coder")
    seen = []
    backend.responder = lambda request: seen.append(request) or None
    window = request_tokens(body) - 150  # one message of about a hundred tokens is not enough to drop
    with backend.quirks(context_window=window):
        response = post(client, backend, body)
    assert response.status_code == 200  # no error: max_tokens is not checked against the window either
    kept = seen[0]["messages"]
    dropped = backend.exchanges[-1].dropped_messages
    assert dropped >= 2 and kept == [body["messages"][0], *body["messages"][1 + dropped :]]
    assert request_tokens(seen[0]) <= window  # fits...
    assert request_tokens({**body, "messages": [body["messages"][0], *body["messages"][dropped:]]}) > window  # ...just
    assert response.json()["usage"]["prompt_tokens"] == request_tokens(seen[0])
    assert backend.exchanges[-1].body == body  # what was received stays on record


def test_ollama_keeps_the_system_and_last_messages_whatever_the_window(backend, client):
    body = long_history("ollama-qwen3-coder")
    with backend.quirks(context_window=10):
        response = post(client, backend, body)
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == 'You said: "the last question"'
    assert backend.exchanges[-1].dropped_messages == len(body["messages"]) - 2
    assert response.json()["usage"]["prompt_tokens"] == request_tokens(
        {**body, "messages": [body["messages"][0], body["messages"][-1]]}
    )


def test_ollama_drops_nothing_that_fits_and_others_never_drop(backend, client):
    body = long_history("ollama-qwen3-coder")
    assert post(client, backend, body).status_code == 200  # its default window: 32768
    with backend.quirks(context_window=request_tokens(body)):
        assert post(client, backend, body).status_code == 200
    assert [e.dropped_messages for e in backend.exchanges] == [0, 0]
    with backend.quirks(context_window=10):
        assert post(client, backend, long_history("llamacpp-local")).status_code == 400
    assert backend.exchanges[-1].dropped_messages == 0


def test_ollama_drops_history_on_the_messages_route_too(backend, client):
    messages = [
        {"role": "user" if n % 2 == 0 else "assistant", "content": f"turn {n}: " + "lorem ipsum " * 50}
        for n in range(5)
    ]
    body = {"model": "ollama-qwen3-coder", "max_tokens": 1024, "system": "Be terse. " * 150, "messages": messages}
    fits = {**body, "messages": messages[-2:]}  # the long system prompt counts too
    with backend.quirks(context_window=anthropic_request_tokens(fits)):
        response = post(client, backend, body, path="/messages")
    assert response.status_code == 200
    assert backend.exchanges[-1].dropped_messages == 3
    assert response.json()["usage"]["input_tokens"] == anthropic_request_tokens(fits)


def test_llamacpp_context_error(backend, client):
    body = chat("llamacpp-local", text="lorem ipsum dolor " * 30, max_tokens=100)
    prompt = request_tokens(body)
    with backend.quirks(context_window=prompt):
        assert post(client, backend, body).status_code == 200  # the prompt alone counts
    with backend.quirks(context_window=prompt - 1):
        response = post(client, backend, body)
    assert (response.status_code, response.json()) == (
        400,
        {
            "error": {
                "code": 400,
                "type": "exceed_context_size_error",
                "n_prompt_tokens": prompt,
                "n_ctx": prompt - 1,
                "message": f"request ({prompt} tokens) exceeds the available context size ({prompt - 1} tokens), "
                "try increasing it",
            }
        },
    )


def messages_events(response: httpx.Response) -> list[dict]:
    return [json.loads(line.removeprefix("data: ")) for line in response.text.splitlines() if line.startswith("data: ")]


# llama-server as measured on llama.cpp 1652066 (tests/stack/test_llama_server.py runs the real one).
LLAMA = "llamacpp-local"
LLAMA_TEXT_WITHOUT_TEXT = (
    500,
    {
        "error": {
            "code": 500,
            "message": "Failed to parse messages: [json.exception.out_of_range.403] key 'text' not found",
            "type": "server_error",
        }
    },
)


@pytest.mark.parametrize("path", ["/chat/completions", "/messages"])
def test_llamacpp_thinks_unless_the_template_kwargs_switch_it_off(backend, client, path):
    body = {"model": LLAMA, "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
    off = {"chat_template_kwargs": {"enable_thinking": False}}

    def thought(extra: dict) -> bool:
        backend.script([Text("the answer", reasoning="thinking it over")])
        answer = post(client, backend, {**body, **extra}, path=path).json()
        if path == "/messages":
            return answer["content"][0]["type"] == "thinking"
        return "reasoning_content" in answer["choices"][0]["message"]

    assert thought({}) and thought({"thinking": {"type": "disabled"}}) and not thought(off)


@pytest.mark.parametrize("path", ["/chat/completions", "/messages"])
def test_llamacpp_answers_a_text_part_without_text_with_a_500(backend, client, path):
    body = {"model": LLAMA, "max_tokens": 100, "messages": [{"role": "user", "content": [{"type": "text"}]}]}
    response = post(client, backend, body, path=path)
    assert (response.status_code, response.json()) == LLAMA_TEXT_WITHOUT_TEXT
    body["messages"][0]["content"] = 5
    response = post(client, backend, body, path=path)
    assert (response.status_code, response.json()["error"]["message"]) == (
        400,
        "Expected 'content' to be a string or an array",
    )


@pytest.mark.parametrize("path", ["/chat/completions", "/messages"])
def test_llamacpp_answers_a_body_that_is_not_json_with_a_500(client, path):
    server = Backend(provider="llamacpp").start()  # no model to pick a profile by
    try:
        response = client.post(server.base_url + path, content=b"{not json")
    finally:
        server.stop()
    assert (response.status_code, response.json()["error"]["type"]) == (500, "server_error")
    assert response.json()["error"]["message"].startswith("[json.exception.parse_error.101] parse error")


def test_llamacpp_messages_a_string_or_missing_differ_by_route(backend, client):
    chat_missing = post(client, backend, {"model": LLAMA, "max_tokens": 100})
    assert (chat_missing.status_code, chat_missing.json()["error"]["message"]) == (400, "'messages' is required")
    chat_string = post(client, backend, {"model": LLAMA, "max_tokens": 100, "messages": "hi"})
    assert (chat_string.status_code, chat_string.json()["error"]["message"]) == (
        400,
        "Expected 'messages' to be an array",
    )
    messages_missing = post(client, backend, {"model": LLAMA, "max_tokens": 100}, path="/messages")
    assert (messages_missing.status_code, messages_missing.json()["error"]["type"]) == (500, "server_error")
    assert post(client, backend, {"model": LLAMA, "max_tokens": 100, "messages": "hi"}, path="/messages").is_success


def test_llamacpp_messages_route_counts_the_prompt_alone_against_the_window(backend, client):
    body = {"model": LLAMA, "max_tokens": 100_000, "messages": [{"role": "user", "content": "lorem ipsum " * 30}]}
    prompt = anthropic_request_tokens(body)
    with backend.quirks(context_window=prompt):
        assert post(client, backend, body, path="/messages").status_code == 200
    with backend.quirks(context_window=prompt - 1):
        response = post(client, backend, {**body, "stream": True}, path="/messages")
    assert (response.status_code, response.headers["content-type"]) == (400, "application/json")
    assert response.json()["error"]["n_prompt_tokens"] == prompt


def test_llamacpp_messages_stream_shapes(backend, client):
    backend.script([ToolCalls([("Read", {"file_path": "a.txt"})], text="Reading.", reasoning="Look.")])
    body = {"model": LLAMA, "max_tokens": 100, "stream": True, "messages": [{"role": "user", "content": "go"}]}
    with backend.quirks(cached_share=0.5):
        events = messages_events(post(client, backend, body, path="/messages"))
    usage = events[0]["message"]["usage"]
    prompt = anthropic_request_tokens(body)
    assert usage == {"cache_read_input_tokens": prompt // 2, "input_tokens": prompt - prompt // 2, "output_tokens": 0}
    starts = [e["content_block"] for e in events if e["type"] == "content_block_start"]
    assert starts[0] == {"type": "thinking", "thinking": ""}  # no signature at the start
    assert "input" not in starts[2] and starts[2]["name"] == "Read"
    # The thinking block ends after the others' deltas, with an empty signature, then the others end.
    ends = [(e["type"], e.get("index"), e.get("delta", {}).get("type")) for e in events][-6:]
    assert ends == [
        ("content_block_delta", 0, "signature_delta"),
        ("content_block_stop", 0, None),
        ("content_block_stop", 1, None),
        ("content_block_stop", 2, None),
        ("message_delta", None, None),
        ("message_stop", None, None),
    ]
    assert [e["delta"]["signature"] for e in events if e.get("delta", {}).get("type") == "signature_delta"] == [""]


@pytest.mark.parametrize("path", ["/chat/completions", "/messages"])
def test_a_tool_call_cut_by_max_tokens(backend, client, path):
    backend.script([ToolCalls([("Read", '{"file_path": "a')], finish_reason="length")])
    body = {
        "model": "deepseek-flash",
        "max_tokens": 10,
        "stream": True,
        "messages": [{"role": "user", "content": "go"}],
    }
    response = post(client, backend, body, path=path)
    if path == "/messages":
        events = messages_events(response)
        arguments = "".join(e["delta"].get("partial_json", "") for e in events if e["type"] == "content_block_delta")
        assert events[-2]["delta"]["stop_reason"] == "max_tokens"
    else:
        chunks = chunks_of(response.content)
        arguments = "".join(
            call["function"].get("arguments", "")
            for c in chunks
            if c["choices"]
            for call in c["choices"][0]["delta"].get("tool_calls") or []
        )
        assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert arguments == '{"file_path": "a'


@pytest.mark.parametrize("model", ["kimi-k2.6", "glm-5.3-flash", "MiniMax-M3", "vllm-qwen3", "llamacpp-local"])
def test_messages_route_thinking_profiles_think_first(backend, client, model):
    backend.script([Text("the answer", reasoning="thinking it over")])
    answer = post(client, backend, {**anthropic_body(), "model": model}, path="/messages").json()
    assert [block["type"] for block in answer["content"]] == ["thinking", "text"]
    signature = "" if model.startswith("llamacpp") else answer["id"]  # llama-server's is empty
    assert answer["content"][0] == {"type": "thinking", "thinking": "thinking it over", "signature": signature}


def test_messages_route_kimi_takes_documents_and_caps_tools(backend, client):
    document = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}}
    taken = post(client, backend, {**anthropic_body(document), "model": "kimi-k2.6"}, path="/messages")
    assert taken.status_code == 200  # no sourced wording for a refusal: taken
    tools = [{"name": f"tool_{n}", "input_schema": {"type": "object"}} for n in range(129)]
    response = post(client, backend, {**anthropic_body(tools=tools), "model": "kimi-k2.6"}, path="/messages")
    assert (response.status_code, response.json()) == (
        400,
        {"type": "error", "error": {"type": "invalid_request_error", "message": "a max of 128 tools can be supported"}},
    )


def test_messages_route_glm_reports_usage_only_in_the_last_message_delta(backend, client):
    body = {**anthropic_body(stream=True), "model": "glm-5.3"}
    events = messages_events(post(client, backend, body, path="/messages"))
    assert events[0]["message"]["usage"] == {"input_tokens": 0, "output_tokens": 0}
    last = [e for e in events if e["type"] == "message_delta"][-1]["usage"]
    assert last["input_tokens"] == anthropic_request_tokens(body) > 0 and last["output_tokens"] > 0
    deepseek = messages_events(post(client, backend, anthropic_body(stream=True), path="/messages"))
    assert deepseek[0]["message"]["usage"]["input_tokens"] > 0  # DeepSeek counts at the start


def test_messages_route_minimax_ignores_claude_only_fields_and_words_its_context_error(backend, client):
    ignored = {
        "top_k": 5,
        "stop_sequences": ["END"],
        "container": "c1",
        "mcp_servers": [],
        "context_management": {"edits": []},
        "service_tier": "auto",
    }
    body = {**anthropic_body(**ignored), "model": "MiniMax-M3"}
    assert post(client, backend, body, path="/messages").status_code == 200
    with backend.quirks(context_window=anthropic_request_tokens(body) + 1023):
        response = post(client, backend, body, path="/messages")
    assert response.status_code == 400
    answer = response.json()
    assert answer["request_id"] and answer == {
        "type": "error",
        "request_id": answer["request_id"],
        "error": {
            "type": "bad_request_error",
            "message": "invalid params, context window exceeds limit (2013)",
            "http_code": "400",
        },
    }


def test_messages_route_qwen_answers_a_max_tokens_over_its_limit_with_an_sse_error(backend, client):
    body = {**anthropic_body(stream=True), "model": "qwen3.7-plus", "max_tokens": 65_537}
    response = post(client, backend, body, path="/messages")
    assert response.status_code == 400 and response.headers["content-type"] == "text/event-stream"
    event, data = response.text.split("\n")[:2]
    assert event == "event:error" and data.startswith("data:") and response.text.endswith("\n\n")
    payload = json.loads(data.removeprefix("data:"))
    assert payload["request_id"] and payload == {
        "code": "InvalidParameter",
        "request_id": payload["request_id"],
        "message": "<400> InternalError.Algo.InvalidParameter: Range of max_tokens should be [1, 65536]",
    }
    assert post(client, backend, {**body, "max_tokens": 32000}, path="/messages").status_code == 200


# --------------------------------------------------------------------------
# Wire shape quirks


def test_odd_chunking_cuts_at_awkward_places(backend):
    body = chat(text="one two three four five six seven eight", stream=True)
    with backend.quirks(chunking="odd", line_ending="\r\n"):
        raw = RawExchange(backend, body)
        try:
            raw.head()
            chunks = raw.all_chunks()
        finally:
            raw.close()
    stream = b"".join(chunks)
    assert streamed_text(chunks_of(stream)) == 'You said: "one two three four five six seven eight"'
    assert b"\r\n\r\n" in stream and b"\n\n" not in stream.replace(b"\r\n\r\n", b"")
    assert any(chunk.endswith(b"dat") for chunk in chunks), "a cut inside `data:`"
    assert any(chunk.endswith(b"\r") for chunk in chunks), "a cut between \\r and \\n"
    assert any(chunk.count(b"data: ") >= 2 for chunk in chunks), "several events in one write"
    assert any(not chunk.endswith(b"\n") and b"{" in chunk for chunk in chunks), "a cut inside the JSON"


def test_keepalive_comments_before_the_answer(backend, client):
    with backend.quirks(keepalive=2):
        stream = post(client, backend, chat(stream=True)).content
        plain = post(client, backend, chat()).content
    assert stream.startswith(b": keep-alive\n\n: keep-alive\n\ndata: ")
    assert plain.startswith(b"\n\n{") and json.loads(plain)["object"] == "chat.completion"


@given(st.lists(st.text(min_size=1, max_size=60), min_size=1, max_size=12), st.integers(0, 2**32))
def test_odd_pieces_keep_every_byte(texts, seed):
    events = [f"data: {json.dumps({'t': text})}\r\n\r\n".encode() for text in texts]
    pieces = odd_pieces(events, seed)
    assert b"".join(pieces) == b"".join(events)
    assert all(pieces)
    if len(events) >= 3:
        assert any(events[1] + events[2] in piece for piece in pieces)


@given(st.text())
def test_text_and_argument_splits_keep_every_character(text):
    assert "".join(split_text(text)) == text
    assert "".join(split_fragments(text)) == text


# --------------------------------------------------------------------------
# Stalls, cuts, endless events


def test_stall_before_first_byte_sends_nothing_until_released(backend):
    release = threading.Event()
    stall = StallBeforeFirstByte(until=release, then=Text("late"))
    backend.script([stall])
    raw = RawExchange(backend, chat())
    try:
        assert stall.reached.wait(10)
        assert raw.nothing_pending()
        release.set()
        status, headers = raw.head()
        assert status == 200
        answer = json.loads(raw._read_exactly(int(headers["content-length"])))
        assert answer["choices"][0]["message"]["content"] == "late"
    finally:
        raw.close()


def test_stall_mid_stream_is_an_ordering_gate(backend):
    gate = threading.Event()
    stall = StallMidStream(after_events=2, until=gate, reply=Text("alpha beta gamma delta"))
    backend.script([stall])
    raw = RawExchange(backend, chat(stream=True))
    try:
        raw.head()
        first_two = [raw.next_chunk(), raw.next_chunk()]
        assert stall.reached.wait(10)
        assert raw.nothing_pending(), "the backend must hold the third event"
        gate.set()
        rest = raw.all_chunks()
    finally:
        raw.close()
    chunks = chunks_of(b"".join(first_two + rest))
    assert streamed_text(chunks) == "alpha beta gamma delta"


def test_stall_mid_stream_without_streaming_holds_half_the_body(backend):
    gate = threading.Event()
    stall = StallMidStream(until=gate)
    backend.script([stall])
    raw = RawExchange(backend, chat())
    try:
        _, headers = raw.head()
        assert stall.reached.wait(10)
        gate.set()
        body = raw._read_exactly(int(headers["content-length"]))
    finally:
        raw.close()
    assert json.loads(body)["choices"][0]["message"]["content"] == 'You said: "hello there"'


def test_reset_ends_a_stall_by_closing_the_connection(backend, client):
    stall = StallMidStream(after_events=1)  # no `until`: only reset()/stop() ends it
    backend.script([stall])
    outcome = {}

    def consume():
        try:
            with client.stream("POST", backend.base_url + "/chat/completions", json=chat(stream=True)) as response:
                outcome["body"] = response.read()
        except httpx.HTTPError as error:
            outcome["error"] = error

    reader = threading.Thread(target=consume)
    reader.start()
    assert stall.reached.wait(10)
    backend.reset()
    reader.join(10)
    assert not reader.is_alive()
    assert isinstance(outcome.get("error"), httpx.RemoteProtocolError)


def test_close_mid_event_cuts_the_socket_inside_an_event(backend):
    cut = CloseMidEvent(after_events=2)
    backend.script([cut])
    raw = RawExchange(backend, chat(stream=True))
    try:
        raw.head()
        whole = [raw.next_chunk(), raw.next_chunk()]
        partial = raw.next_chunk()
        with pytest.raises(EOFError):
            raw.next_chunk()
    finally:
        raw.close()
    assert cut.reached.wait(10)
    assert len(chunks_of(b"".join(whole) + b"data: [DONE]\n\n")) == 2
    assert partial.startswith(b"data: {") and b"\n" not in partial


def test_endless_event_never_ends_its_line_and_is_bounded(backend):
    endless = EndlessEvent(max_bytes=256 * 1024, chunk_size=8192)
    backend.script([endless])
    raw = RawExchange(backend, chat(stream=True))
    received = b""
    try:
        raw.head()
        with pytest.raises(EOFError):
            while (chunk := raw.next_chunk()) is not None:
                received += chunk
    finally:
        raw.close()
    assert endless.ended.wait(10)
    assert received.startswith(b'data: {"id":') and b"\n" not in received
    assert len(received) > 256 * 1024 and endless.sent_bytes == 256 * 1024


def test_endless_event_stops_when_the_client_goes_away(backend):
    endless = EndlessEvent()  # 8 MiB / 30 s bounds, never reached here
    backend.script([endless])
    raw = RawExchange(backend, chat(stream=True))
    raw.head()
    raw.next_chunk()
    assert endless.reached.wait(10)
    raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST on close
    raw.close()
    assert endless.ended.wait(20)
    assert endless.sent_bytes < endless.max_bytes


def test_stop_releases_every_stall_and_joins_every_thread():
    before = set(threading.enumerate())
    backend = Backend().start()
    stall, endless, held = StallMidStream(after_events=1), EndlessEvent(max_seconds=60), StallBeforeFirstByte()
    backend.script([stall, endless, held])
    clients = []
    for reply in (stall, endless, held):
        clients.append(RawExchange(backend, chat(stream=True)))
        assert reply.reached.wait(10)
    idle = socket.create_connection(("127.0.0.1", backend.port))  # a kept-alive connection with no request
    backend.stop()
    assert set(threading.enumerate()) - before == set()
    assert endless.ended.is_set()
    for raw in clients:
        raw.drain()  # what was sent, then the close
        raw.close()
    idle.close()


def test_wait_for_requests_times_out_with_a_clear_error(backend):
    with pytest.raises(TimeoutError, match="0 of 1 requests"):
        backend.wait_for_requests(1, timeout=0.05)


# --------------------------------------------------------------------------
# Standalone


def test_runs_standalone(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.backend", "--port", "0", "--provider", "deepseek", "--quirk", "usage=zero"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = process.stdout.readline()
        base_url = re.search(r"listening on (http://127\.0\.0\.1:\d+/v1)", line).group(1)
        answer = httpx.post(base_url + "/chat/completions", json=chat("gpt-4o"), timeout=10).json()
        assert answer["usage"]["prompt_tokens"] == 0  # quirk applied
        assert "prompt_cache_hit_tokens" in answer["usage"]  # DeepSeek forced despite the model name
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0


# --------------------------------------------------------------------------
# The real LiteLLM proxy against the stand-in (slow: ~10 s start-up)


@pytest.fixture(scope="module")
def litellm_proxy(backend, tmp_path_factory):
    """LiteLLM on an OS-chosen loopback port, routing deepseek-flash to the backend."""
    config = tmp_path_factory.mktemp("litellm") / "litellm.yaml"
    config.write_text(
        json.dumps(
            {  # JSON is YAML
                "model_list": [
                    {
                        "model_name": "deepseek-flash",
                        "litellm_params": {
                            "model": "openai/deepseek-flash",
                            "api_base": backend.base_url,
                            "api_key": "sk-fake",
                        },
                    }
                ],
                "litellm_settings": {"drop_params": True, "use_chat_completions_url_for_anthropic_messages": True},
                "general_settings": {"master_key": "sk-test"},
            }
        )
    )
    env = dict(os.environ, CONFIG_FILE_PATH=str(config), LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_TELEMETRY="False")
    code = (
        "import litellm, uvicorn; litellm.disable_hf_tokenizer_download = True; "
        "uvicorn.run('litellm.proxy.proxy_server:app', host='127.0.0.1', port=0)"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    log: list[str] = []
    found: dict[str, str] = {}
    ready = threading.Event()

    def follow() -> None:
        for line in process.stderr:  # keeps draining after start-up so the pipe never fills
            log.append(line)
            if match := re.search(r"Uvicorn running on (http://127\.0\.0\.1:\d+)", line):
                found["url"] = match.group(1)
                ready.set()
        ready.set()

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    try:
        assert ready.wait(90) and "url" in found, "LiteLLM did not start:\n" + "".join(log[-30:])
        yield found["url"]
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        follower.join(10)


@pytest.mark.litellm
def test_real_litellm_proxy_against_strict_deepseek(backend, litellm_proxy):
    headers = {"x-api-key": "sk-test", "anthropic-version": "2023-06-01"}
    tools = [
        {
            "name": "Read",
            "description": "Read a file",
            "input_schema": {
                "type": "object",
                "properties": {"file_path": {"type": "string"}},
                "required": ["file_path"],
            },
        }
    ]

    def history(*reasoning: dict) -> list[dict]:
        return [
            {"role": "user", "content": "read /tmp/a.py"},
            {
                "role": "assistant",
                "content": [
                    *reasoning,
                    {"type": "tool_use", "id": "toolu_01", "name": "Read", "input": {"file_path": "/tmp/a.py"}},
                ],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "print(1)"}]},
        ]

    thought = {"type": "thinking", "thinking": "I should read it", "signature": "sig"}
    backend.script(
        [
            Text("plain answer", reasoning="a short thought"),
            ToolCalls([("Read", {"file_path": "/tmp/b.py"})], text="Next file.", reasoning="now b"),
        ]
    )
    with httpx.Client(base_url=litellm_proxy, headers=headers, timeout=60) as anthropic:
        plain = anthropic.post(
            "/v1/messages",
            json={"model": "deepseek-flash", "max_tokens": 1024, "messages": [{"role": "user", "content": "hi"}]},
        )
        streamed = anthropic.post(
            "/v1/messages",
            json={
                "model": "deepseek-flash",
                "max_tokens": 1024,
                "stream": True,
                "temperature": 0.2,
                "stop_sequences": ["END"],
                "tools": tools,
                "messages": history(thought),
            },
        )
        # The same history without the turn's reasoning: DeepSeek's 400, passed on by LiteLLM.
        refused = anthropic.post(
            "/v1/messages", json={"model": "deepseek-flash", "max_tokens": 1024, "tools": tools, "messages": history()}
        )
        # extra_body goes to the backend verbatim, as top-level fields (how the stabilizer switches thinking).
        disabled = anthropic.post(
            "/v1/messages",
            json={
                "model": "deepseek-flash",
                "max_tokens": 1024,
                "tools": tools,
                "messages": history(),
                "extra_body": {"thinking": {"type": "disabled"}},
            },
        )
    assert plain.status_code == 200, plain.text
    (thinking, answer) = plain.json()["content"]
    assert (thinking["type"], thinking["thinking"]) == ("thinking", "a short thought")
    assert answer == {"type": "text", "text": "plain answer"}
    assert streamed.status_code == 200, streamed.text
    events = [
        json.loads(line.removeprefix("data: ")) for line in streamed.text.splitlines() if line.startswith("data: ")
    ]
    started = [e["content_block"]["type"] for e in events if e["type"] == "content_block_start"]
    assert started == ["thinking", "text", "tool_use"]
    reasoning = "".join(
        e["delta"]["thinking"]
        for e in events
        if e["type"] == "content_block_delta" and e["delta"]["type"] == "thinking_delta"
    )
    assert reasoning == "now b"
    tool_use = [
        e["content_block"]
        for e in events
        if e["type"] == "content_block_start" and e["content_block"]["type"] == "tool_use"
    ]
    assert tool_use and tool_use[0]["name"] == "Read"
    arguments = "".join(
        e["delta"]["partial_json"]
        for e in events
        if e["type"] == "content_block_delta" and e["delta"]["type"] == "input_json_delta"
    )
    assert json.loads(arguments) == {"file_path": "/tmp/b.py"}
    assert refused.status_code == 400
    assert "The reasoning_content in the thinking mode must be passed back to the API." in refused.text
    assert disabled.status_code == 200, disabled.text
    assert [block["type"] for block in disabled.json()["content"]] == ["text"]
    # Strict DeepSeek accepted the translations, made of keys already seen; only the refused
    # one was refused, for its reasoning. (LiteLLM also sends GET /v1/models to the api_base on its own.)
    assert [e.status for e in backend.exchanges if e.method == "POST"] == [200, 200, 400, 200]
    assert all(set(body) <= LITELLM_KEYS for body in backend.requests[:3]), [sorted(b) for b in backend.requests]
    assert set(backend.requests[3]) - LITELLM_KEYS == {"thinking"}
    assert backend.requests[3]["thinking"] == {"type": "disabled"}
    assert backend.requests[1]["stop"] == ["END"] and backend.requests[1]["stream_options"] == {"include_usage": True}
    assert backend.requests[1]["messages"][1]["tool_calls"][0]["id"] == "toolu_01"
    # LiteLLM puts the turn's thinking block back as reasoning_content (and nothing for a turn without one).
    assert backend.requests[1]["messages"][1]["reasoning_content"] == "I should read it"
    assert "reasoning_content" not in backend.requests[2]["messages"][1]
    assert backend.requests[1]["messages"][2] == {"role": "tool", "tool_call_id": "toolu_01", "content": "print(1)"}
