"""LiteLLM's fallbacks (router_settings.fallbacks) in the middle of a thinking session: the
fallback model writes a turn Claude Code never knows it wrote, and the primary gets the history
back afterwards. The stand-in's Claude verifies thinking signatures (tests/backend/providers/claude.py)."""

import json

from addons.messages.provenance import unwrap
from tests.backend import Error, Text, ToolCalls
from tests.backend.providers.claude import signature_of as claude_signature_of
from tests.procs import post_json
from tests.streams import streamed_message

TOOLS = [{"name": "Read", "description": "read", "input_schema": {"type": "object"}}]
OVERLOADED = Error(529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})


def turn(url: str, master_key: str, messages: list, model: str = "claude-opus-anthropic") -> tuple[int, dict, bytes]:
    body = {
        "model": model,
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


def test_a_fallback_from_deepseek_to_claude_and_back(stack, fresh_backend, master_key):
    # DeepSeek first: a tool call with its signed thinking.
    fresh_backend.script([ToolCalls([("Read", {"file_path": "a.txt"})], reasoning="Read a first.")])
    messages: list = [{"role": "user", "content": "read a.txt"}]
    status, _, raw = turn(stack.url, master_key, messages, model="deepseek-pro-anthropic")
    assert status == 200, raw
    first = streamed_message(raw)
    _, deepseek_signature = unwrap(first["content"][0]["signature"])
    call = first["content"][-1]
    messages += [
        {"role": "assistant", "content": as_claude_code_keeps(first)},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": "A"}]},
    ]

    # DeepSeek overloaded: LiteLLM falls back to Claude with the history shaped for DeepSeek.
    # Claude refuses DeepSeek's signature, and LiteLLM itself retries it without thinking
    # (measured, 1.108.7): the turn answers, at the cost of a refused call.
    fresh_backend.responder = lambda body: OVERLOADED if body.get("model") == "deepseek-v4-pro" else Text("A.")
    status, _, raw = turn(stack.url, master_key, messages, model="deepseek-pro-anthropic")
    assert status == 200, raw
    claude = [e for e in fresh_backend.exchanges if e.method == "POST" and e.body.get("model") == "claude-sonnet-4-6"]
    assert [e.status for e in claude] == [400, 200]
    second = streamed_message(raw)["content"]
    assert unwrap(second[0]["signature"])[0] == "claude-sonnet-4-6"  # named after the fallback
    messages += [{"role": "assistant", "content": second}, {"role": "user", "content": "And b.txt?"}]

    # DeepSeek back: its own thinking exactly as it came, Claude's with Claude's own signature.
    fresh_backend.reset()
    fresh_backend.script([Text("No b.txt.", reasoning="Nothing there.")])
    status, _, raw = turn(stack.url, master_key, messages, model="deepseek-pro-anthropic")
    assert status == 200, raw
    (body,) = fresh_backend.messages_requests
    assert body["messages"][1]["content"][0] == {
        "type": "thinking",
        "thinking": "Read a first.",
        "signature": deepseek_signature,
    }
    thought = second[0]["thinking"]
    assert body["messages"][3]["content"][0] == {
        "type": "thinking",
        "thinking": thought,
        "signature": claude_signature_of(thought),
    }
