"""LiteLLM's fallbacks (router_settings.fallbacks) in the middle of a thinking session: the
fallback model writes a turn Claude Code never knows it wrote, and the primary gets the history
back afterwards. The stand-in's Claude verifies thinking signatures (tests/backend/providers/claude.py).
The request addon shapes each request for the whole chain (addons/config/fallbacks.py): a fallback
with a lower output cap takes it, and context_window_fallbacks get what is over the window."""

import json

from addons.messages.provenance import unwrap
from tests.backend import Error, Text, ToolCalls
from tests.backend.providers.claude import signature_of as claude_signature_of
from tests.procs import post_json
from tests.streams import streamed_message

TOOLS = [{"name": "Read", "description": "read", "input_schema": {"type": "object"}}]
OVERLOADED = Error(529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})


def turn(
    url: str, master_key: str, messages: list, model: str = "claude-opus-anthropic", max_tokens: int = 32000
) -> tuple[int, dict, bytes]:
    body = {
        "model": model,
        "max_tokens": max_tokens,
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


def with_result(messages: list, answer: dict, result: str) -> list:
    """The history after a streamed answer ending in a tool call, and the call's result, as Claude Code sends it."""
    call = answer["content"][-1]
    return messages + [
        {"role": "assistant", "content": as_claude_code_keeps(answer)},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": result}]},
    ]


def tried(backend) -> list[tuple[str, int]]:
    """(model, status) of each request the stand-in received."""
    return [(e.body.get("model"), e.status) for e in backend.exchanges if e.method == "POST"]


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
    messages = with_result(messages, first, "A")

    # Turn 2: Claude is overloaded, LiteLLM falls back to DeepSeek, whose thinking is named as its own.
    fresh_backend.responder = responder
    status, _, raw = turn(stack.url, master_key, messages)
    assert status == 200, raw
    second = streamed_message(raw)
    models = [body["model"] for body in fresh_backend.messages_requests]
    assert models[-1] == "deepseek-flash" and "claude-opus-4-7" in models
    assert unwrap(second["content"][0]["signature"])[0] == "deepseek-flash"
    messages = with_result(messages, second, "B")

    # Turn 3: Claude is back and gets a history it accepts: its own thinking, not DeepSeek's.
    fresh_backend.reset()
    fresh_backend.script([Text("A and B.", reasoning="Both read.")])
    status, _, raw = turn(stack.url, master_key, messages)
    assert status == 200, raw
    (body,) = fresh_backend.messages_requests
    assert body["model"] == "claude-opus-4-7"
    assert [block["type"] for block in body["messages"][1]["content"]] == ["thinking", "tool_use"]
    assert [block["type"] for block in body["messages"][3]["content"]] == ["tool_use"]
    # DeepSeek's call, now without its thinking, opens the round trip Claude answers: without
    # thinking for this turn, or Claude refuses it (tests/backend/providers/claude.py, THINKING_FIRST).
    assert "thinking" not in body


def test_a_fallback_from_deepseek_to_claude_and_back(stack, fresh_backend, master_key):
    # DeepSeek first: a tool call with its signed thinking.
    fresh_backend.script([ToolCalls([("Read", {"file_path": "a.txt"})], reasoning="Read a first.")])
    messages: list = [{"role": "user", "content": "read a.txt"}]
    status, _, raw = turn(stack.url, master_key, messages, model="deepseek-pro-anthropic")
    assert status == 200, raw
    first = streamed_message(raw)
    _, deepseek_signature = unwrap(first["content"][0]["signature"])
    messages = with_result(messages, first, "A")

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


def test_a_fallback_with_a_lower_output_cap_answers(stack, fresh_backend, master_key):
    # DeepSeek takes max_tokens up to 393216, its fallback Qwen 3.7 up to 65536 (tests/conftest.py
    # FALLBACKS; tests/backend/providers/qwen.py). Claude Code asks 100000 (CLAUDE_CODE_MAX_OUTPUT_TOKENS).
    model, asked = "deepseek-flash-to-qwen", 100000
    fresh_backend.script([ToolCalls([("Read", {"file_path": "a.txt"})], reasoning="Read a first.")])
    messages: list = [{"role": "user", "content": "read a.txt and b.txt"}]
    status, _, raw = turn(stack.url, master_key, messages, model=model, max_tokens=asked)
    assert status == 200, raw
    # The chain's cap, on DeepSeek too: the price of a fallback that takes less.
    assert fresh_backend.messages_requests[-1]["max_tokens"] == 65536
    first = streamed_message(raw)
    messages = with_result(messages, first, "A")

    # DeepSeek overloaded: LiteLLM sends the same request to Qwen, which takes it.
    fresh_backend.reset()
    fresh_backend.responder = lambda body: (
        OVERLOADED if body.get("model") == "deepseek-flash" else ToolCalls([("Read", {"file_path": "b.txt"})])
    )
    status, _, raw = turn(stack.url, master_key, messages, model=model, max_tokens=asked)
    assert status == 200, raw
    answered = tried(fresh_backend)
    assert answered[-1] == ("qwen3.7-plus", 200) and ("deepseek-flash", 529) in answered
    second = streamed_message(raw)
    assert unwrap(second["content"][0]["signature"])[0] == "qwen3.7-plus"
    messages = with_result(messages, second, "B")

    # DeepSeek back: the history with Qwen's turn in it is one it takes (reasoning on every tool turn).
    fresh_backend.reset()
    fresh_backend.script([Text("A and B.", reasoning="Both read.")])
    status, _, raw = turn(stack.url, master_key, messages, model=model, max_tokens=asked)
    assert status == 200, raw
    (body,) = fresh_backend.messages_requests
    assert body["model"] == "deepseek-flash"
    assert [block["type"] for block in body["messages"][3]["content"]] == ["thinking", "tool_use"]
    assert streamed_message(raw)["content"][-1]["text"] == "A and B."


def long_history(turns: int, words: int) -> list[dict]:
    """A conversation of `turns` exchanges of about `words` tokens each."""
    messages: list[dict] = [{"role": "user", "content": "Summarise what follows."}]
    for index in range(turns):
        messages += [
            {"role": "assistant", "content": [{"type": "text", "text": f"Part {index}?"}]},
            {"role": "user", "content": f"Part {index}: " + "word " * words},
        ]
    return messages


def test_a_history_over_the_window_goes_to_the_context_window_fallback(stack, fresh_backend, master_key):
    # A llama-server started with -c 131072 (the policy's default window for it), whose
    # context_window_fallbacks is DeepSeek's 1M (tests/conftest.py CONTEXT_WINDOW_FALLBACKS).
    model = "llamacpp-to-deepseek"
    messages = long_history(turns=7, words=20000)  # about 140K tokens: llama-server counts the prompt alone
    with fresh_backend.quirks(model="llamacpp-local", context_window=131072):
        status, _, raw = turn(stack.url, master_key, messages, model=model)
        assert status == 200, raw
        # llama-server refuses in words LiteLLM takes for a context overflow; DeepSeek answers.
        assert tried(fresh_backend) == [("llamacpp-local", 400), ("deepseek-flash", 200)]
        # Untrimmed: every message reached it.
        fallback = fresh_backend.requests[-1]
        texts = [m["content"] for m in fallback["messages"] if m["role"] == "user"]
        assert len(texts) == 8 and texts[-1] == messages[-1]["content"]
        assert streamed_message(raw)["content"]

        # The next small turn (after Claude Code compacted, or another session) is the local server's.
        fresh_backend.reset()
        status, _, raw = turn(stack.url, master_key, [{"role": "user", "content": "hi"}], model=model)
        assert status == 200, raw
        assert tried(fresh_backend) == [("llamacpp-local", 200)]
