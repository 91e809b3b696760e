"""Request shaping through the real stack, against a strict DeepSeek / Qwen stand-in."""

import json
import random
from pathlib import Path

import pytest

from addons.messages.tokens import estimate_request
from tests.procs import post_json
from tests.workload import as_compaction_request

DATA = Path(__file__).parent.parent / "data"
# What each strict stand-in takes as max_tokens, and the thinking fields it must get for
# Claude Code's adaptive thinking at effort high (DeepSeek V4: its own switch and effort).
STRICT_MODELS = {
    "deepseek-flash": (393216, {"thinking": {"type": "enabled"}, "reasoning_effort": "high"}),
    "deepseek-v4-pro": (393216, {"thinking": {"type": "enabled"}, "reasoning_effort": "high"}),
    "qwen-plus": (8192, {}),
}
# A model with a 128K policy window (the smallest of the hosted ones), for trimming.
WINDOW_128K_MODEL = "qwen-plus"
TOOLS = [{"name": "Read", "description": "read a file", "input_schema": {"type": "object"}}]


def sse_event_types(body: bytes) -> list[str]:
    return [line.split(b":", 1)[1].strip().decode() for line in body.splitlines() if line.startswith(b"event:")]


def recorded_request(model: str) -> tuple[dict, dict]:
    request = json.loads((DATA / "claude_code_request.json").read_text())
    headers = json.loads((DATA / "claude_code_request.headers.json").read_text())
    headers = {k: v for k, v in headers.items() if k.lower() not in ("authorization", "x-api-key", "content-length")}
    return {**request, "model": model}, headers


@pytest.mark.parametrize("model", STRICT_MODELS)
def test_recorded_claude_code_request_is_accepted(stack, fresh_backend, master_key, model):
    limit, thinking_fields = STRICT_MODELS[model]
    request, headers = recorded_request(model)
    assert request["max_tokens"] == 32000 and "thinking" in request and "output_config" in request
    status, _, body = post_json(
        stack.url + "/v1/messages?beta=true", request, {**headers, "authorization": f"Bearer {master_key}"}
    )
    assert status == 200, body[:500]
    assert sse_event_types(body)[-1] == "message_stop"

    received = fresh_backend.requests[-1]
    assert received["max_tokens"] == min(32000, limit)
    # Claude Code's own thinking fields never arrive; the backend's own ones do, where it has any.
    assert not {"output_config", "context_management", "top_k"} & set(received)
    assert {key: received[key] for key in ("thinking", "reasoning_effort") if key in received} == thinking_fields
    # The mid-conversation system message (agent types, skills) reached the backend.
    system_text = next(m for m in request["messages"] if m["role"] == "system")
    system_text = (
        system_text["content"] if isinstance(system_text["content"], str) else system_text["content"][0]["text"]
    )
    sent = json.dumps(received["messages"])
    assert json.dumps(system_text)[1:200] in sent


def long_history(messages: int, seed: int = 7) -> list[dict]:
    """A session of tool calls and answers, each turn a few hundred varied words."""
    rng = random.Random(seed)
    words = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar".split()

    def prose(n):
        return " ".join(f"{rng.choice(words)}{rng.randrange(1000)}" for _ in range(n))

    history = [{"role": "user", "content": "The task: summarise the repository. " + prose(50)}]
    for turn in range((messages - 2) // 2):
        tool_id = f"toolu_{turn:04d}"
        history.append(
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": prose(20)},
                    {"type": "tool_use", "id": tool_id, "name": "Read", "input": {"file_path": f"/src/f{turn}.py"}},
                ],
            }
        )
        history.append(
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": tool_id, "content": prose(400)},
                ],
            }
        )
    history.append({"role": "assistant", "content": prose(30)})
    history.append({"role": "user", "content": "And now the last question: what is left to do?"})
    return history


def test_a_history_already_over_the_window_is_answered_prompt_too_long(stack, fresh_backend, master_key):
    # Its turn before the last was over the window too: trimmed once, it would be trimmed on
    # every later turn while Claude Code sends ever more. Refused, Claude Code compacts.
    history = long_history(300)
    request = {"model": WINDOW_128K_MODEL, "max_tokens": 32000, "stream": True, "messages": history, "tools": TOOLS}
    status, _, body = post_json(stack.url + "/v1/messages", request, {"x-api-key": master_key})
    assert status == 400, body[:300]
    message = json.loads(body)["error"]["message"]
    tokens, maximum = message.removeprefix("prompt is too long: ").split(" tokens > ")
    assert int(tokens) > 131072 and maximum == f"{131072 - 8192 - 4096} maximum"
    assert fresh_backend.requests == []


def test_300_message_history_over_the_window_is_trimmed_and_accepted(stack, litellm, fresh_backend, master_key):
    # Claude Code's own compaction request carries the whole history: trimmed, never refused.
    model = WINDOW_128K_MODEL
    history = as_compaction_request(long_history(300))
    request = {"model": model, "max_tokens": 32000, "stream": True, "messages": history, "tools": TOOLS}
    assert estimate_request(request) > 131072
    # Sent straight to LiteLLM (no addons), the backend refuses it: that is what trimming must prevent.
    status, _, body = post_json(
        litellm.url + "/v1/messages", {**request, "max_tokens": 8192}, {"x-api-key": master_key}
    )
    assert status == 400 and b"length" in body, body[:300]

    status, _, body = post_json(stack.url + "/v1/messages", request, {"x-api-key": master_key})
    assert status == 200, body[:500]
    assert sse_event_types(body)[-1] == "message_stop"

    received = fresh_backend.requests[-1]
    sent = received["messages"]
    assert len(sent) < len(history)
    assert "The task: summarise the repository." in json.dumps(sent[0]) or "The task" in json.dumps(sent[:2])
    assert "what is left to do?" in json.dumps(sent[-1])
    # Every tool result the backend got answers a tool call it also got.
    calls = {c["id"] for m in sent if m["role"] == "assistant" for c in m.get("tool_calls") or []}
    answered = {m["tool_call_id"] for m in sent if m["role"] == "tool"}
    assert answered <= calls and calls <= answered


def test_the_same_history_fits_deepseeks_window_untrimmed(stack, fresh_backend, master_key):
    history = long_history(300)
    request = {"model": "deepseek-flash", "max_tokens": 32000, "stream": True, "messages": history, "tools": TOOLS}
    assert 131072 < estimate_request(request) < 1_000_000 - 32000 - 4096
    status, _, body = post_json(stack.url + "/v1/messages", request, {"x-api-key": master_key})
    assert status == 200, body[:500]
    received = fresh_backend.requests[-1]
    assert received["max_tokens"] == 32000
    # Nothing removed: every user turn and every tool call arrives.
    calls = [c["id"] for m in received["messages"] if m["role"] == "assistant" for c in m.get("tool_calls") or []]
    assert len(calls) == (300 - 2) // 2
    assert "The task: summarise the repository." in json.dumps(received["messages"][0])


@pytest.mark.parametrize("model", ["deepseek-flash", "deepseek-v4-pro"])
def test_tool_history_without_reasoning_gets_it_for_deepseek(stack, litellm, fresh_backend, master_key, model):
    """DeepSeek refuses a request with tools whose earlier assistant turns lack reasoning_content;
    Claude Code sends turns without thinking (a session begun on another model, a subagent)."""
    history = long_history(12)
    request = {"model": model, "max_tokens": 1024, "stream": True, "messages": history, "tools": TOOLS}
    # Straight to LiteLLM (no addons): refused, with DeepSeek's wording.
    status, _, body = post_json(litellm.url + "/v1/messages", request, {"x-api-key": master_key})
    assert status == 400 and b"The reasoning_content in the thinking mode must be passed back to the API." in body

    status, _, body = post_json(stack.url + "/v1/messages", request, {"x-api-key": master_key})
    assert status == 200, body[:500]
    assert sse_event_types(body)[-1] == "message_stop"
    assistants = [m for m in fresh_backend.requests[-1]["messages"] if m["role"] == "assistant"]
    assert len(assistants) == 6
    assert all(isinstance(m.get("reasoning_content"), str) for m in assistants), assistants


def test_thinking_blocks_reach_deepseek_as_reasoning(stack, fresh_backend, master_key):
    """Kept by default: each assistant turn's thinking block goes back as its reasoning_content."""
    history = long_history(6)
    for index, message in enumerate(history):
        if message["role"] == "assistant":
            content = (
                message["content"]
                if isinstance(message["content"], list)
                else [{"type": "text", "text": message["content"]}]
            )
            message["content"] = [
                {"type": "thinking", "thinking": f"reasoning of turn {index}", "signature": ""},
                *content,
            ]
    request = {"model": "deepseek-flash", "max_tokens": 1024, "messages": history, "tools": TOOLS}
    status, _, body = post_json(stack.url + "/v1/messages", request, {"x-api-key": master_key})
    assert status == 200, body[:500]
    received = fresh_backend.requests[-1]["messages"]
    sent = [m["reasoning_content"] for m in received if m["role"] == "assistant"]
    assert sent == [f"reasoning of turn {i}" for i, m in enumerate(history) if m["role"] == "assistant"]
