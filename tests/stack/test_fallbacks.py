"""LiteLLM's fallbacks (router_settings.fallbacks) in the middle of a thinking session: the
fallback model writes a turn Claude Code never knows it wrote, and the primary gets the history
back afterwards. The stand-in's Claude verifies thinking signatures (tests/backend/providers/claude.py)."""

import json

from addons.messages.provenance import unwrap
from tests.backend import Error, Text, ToolCalls
from tests.procs import post_json
from tests.streams import streamed_message

TOOLS = [{"name": "Read", "description": "read", "input_schema": {"type": "object"}}]
OVERLOADED = Error(529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})


def turn(url: str, master_key: str, messages: list) -> tuple[int, dict, bytes]:
    body = {
        "model": "claude-opus-anthropic",
        "max_tokens": 32000,
        "stream": True,
        "thinking": {"type": "adaptive"},
        "tools": TOOLS,
        "messages": messages,
    }
    return post_json(url + "/v1/messages", body, {"authorization": f"Bearer {master_key}"})


def as_claude_code_keeps(message: dict) -> list[dict]:
    """The content Claude Code sends back for a streamed answer (tool input parsed)."""
    return [
        {**{k: v for k, v in block.items() if k != "input_json"}, "input": json.loads(block["input_json"])}
        if "input_json" in block
        else block
        for block in message["content"]
    ]


def test_a_fallback_turn_and_the_primary_after_it_answer(stack, fresh_backend, master_key):
    def responder(body):
        # Scripted replies come first: while Claude is down, each turn is answered here.
        if body.get("model") == "claude-opus-4-7":
            return OVERLOADED
        return ToolCalls([("Read", {"file_path": "b.txt"})], reasoning="Now b.")

    # Turn 1 on Claude: a tool call with its signed thinking.
    fresh_backend.script([ToolCalls([("Read", {"file_path": "a.txt"})], reasoning="Read a first.")])
    messages: list = [{"role": "user", "content": "read a.txt and b.txt"}]
    status, _, raw = turn(stack.url, master_key, messages)
    assert status == 200, raw
    first = streamed_message(raw)
    assert unwrap(first["content"][0]["signature"])[0] == "claude-opus-4-7"
    call = first["content"][-1]
    messages += [
        {"role": "assistant", "content": as_claude_code_keeps(first)},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": "A"}]},
    ]

    # Turn 2: Claude is overloaded, LiteLLM falls back to DeepSeek, whose thinking is named as its own.
    fresh_backend.responder = responder
    status, _, raw = turn(stack.url, master_key, messages)
    assert status == 200, raw
    second = streamed_message(raw)
    models = [body["model"] for body in fresh_backend.messages_requests]
    assert models[-1] == "deepseek-flash" and "claude-opus-4-7" in models
    assert unwrap(second["content"][0]["signature"])[0] == "deepseek-flash"
    call = second["content"][-1]
    messages += [
        {"role": "assistant", "content": as_claude_code_keeps(second)},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": "B"}]},
    ]

    # Turn 3: Claude is back and gets a history it accepts: its own thinking, not DeepSeek's.
    fresh_backend.reset()
    fresh_backend.script([Text("A and B.", reasoning="Both read.")])
    status, _, raw = turn(stack.url, master_key, messages)
    assert status == 200, raw
    (body,) = fresh_backend.messages_requests
    assert body["model"] == "claude-opus-4-7"
    assert [block["type"] for block in body["messages"][1]["content"]] == ["thinking", "tool_use"]
    assert [block["type"] for block in body["messages"][3]["content"]] == ["tool_use"]
