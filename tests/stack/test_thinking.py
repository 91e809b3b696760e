"""Claude Code's thinking controls through the real LiteLLM and mitmdump, to a thinking stand-in.

Each case is sent twice where it proves something: straight to LiteLLM (what a
user without the stabilizer gets) and through the stack (what the addons make
of it), and the stand-in backend says what arrived.
"""

import json
import uuid

import pytest

from addons.messages.provenance import unwrap
from addons.request.thinking import PLACEHOLDER_REASONING
from tests.backend import PROFILES, Text, ToolCalls
from tests.backend.checks import check_messages_request
from tests.backend.providers.claude import signature_of as claude_signature_of
from tests.conftest import ANTHROPIC_ROUTE_MODELS
from tests.procs import post_json
from tests.streams import streamed_message

ANTHROPIC_MODEL = next(iter(ANTHROPIC_ROUTE_MODELS))


def ask(url: str, master_key: str, model: str, **fields) -> tuple[int, bytes]:
    body = {
        "model": model,
        "max_tokens": 32000,
        "stream": True,
        "messages": [{"role": "user", "content": "Which is larger, 9.11 or 9.8?"}],
        **fields,
    }
    status, _, raw = post_json(url + "/v1/messages", body, {"authorization": f"Bearer {master_key}"})
    return status, raw


def test_enabled_thinking_with_a_budget_stays_on_chat_completions(stack, litellm, fresh_backend, master_key):
    enabled = {"thinking": {"type": "enabled", "budget_tokens": 10000}}
    # Straight to LiteLLM, `enabled` sends the call to the Responses API, which the gateway lacks.
    status, raw = ask(litellm.url, master_key, "deepseek-flash", **enabled)
    assert status == 404 and b"/responses" in raw
    fresh_backend.reset()

    fresh_backend.script([Text("9.8 is larger.", reasoning="Compare the tenths: 8 > 1.")])
    status, raw = ask(stack.url, master_key, "deepseek-flash", **enabled)
    assert status == 200, raw
    (exchange,) = [e for e in fresh_backend.exchanges if e.method == "POST"]
    assert exchange.path == "/v1/chat/completions"
    # A 10000-token budget is Claude Code's medium, which DeepSeek runs as high.
    assert exchange.body["thinking"] == {"type": "enabled"} and exchange.body["reasoning_effort"] == "high"
    message = streamed_message(raw)
    assert [block["type"] for block in message["content"]] == ["thinking", "text"]
    assert message["content"][0]["thinking"] == "Compare the tenths: 8 > 1."


@pytest.mark.parametrize("effort, sent", [("low", "low"), ("medium", "high"), ("xhigh", "high"), ("max", "max")])
def test_adaptive_effort_becomes_deepseeks_effort(stack, fresh_backend, master_key, effort, sent):
    status, raw = ask(
        stack.url, master_key, "deepseek-flash", thinking={"type": "adaptive"}, output_config={"effort": effort}
    )
    assert status == 200, raw
    (body,) = fresh_backend.requests
    assert body["reasoning_effort"] == sent and body["thinking"] == {"type": "enabled"}
    assert "output_config" not in body


def test_disabled_thinking_turns_it_off_without_an_effort(stack, litellm, fresh_backend, master_key):
    disabled = {"thinking": {"type": "disabled"}, "output_config": {"effort": "high"}}
    # Straight to LiteLLM: reasoning_effort "none", which DeepSeek does not know.
    status, raw = ask(litellm.url, master_key, "deepseek-flash", **disabled)
    assert status == 400 and b"unknown variant" in raw
    fresh_backend.reset()

    status, raw = ask(stack.url, master_key, "deepseek-flash", **disabled)
    assert status == 200, raw
    (body,) = fresh_backend.requests
    assert body["thinking"] == {"type": "disabled"} and "reasoning_effort" not in body
    assert [block["type"] for block in streamed_message(raw)["content"]] == ["text"]


@pytest.mark.parametrize(
    "fields, thinking",
    [
        ({"thinking": {"type": "adaptive"}, "output_config": {"effort": "high"}}, {"type": "enabled"}),
        ({"thinking": {"type": "disabled"}}, {"type": "disabled"}),
    ],
)
def test_anthropic_route_gets_the_switch(stack, fresh_backend, master_key, fields, thinking):
    status, raw = ask(stack.url, master_key, ANTHROPIC_MODEL, **fields)
    assert status == 200, raw
    (body,) = fresh_backend.messages_requests
    assert body["thinking"] == thinking
    blocks = [block["type"] for block in streamed_message(raw)["content"]]
    assert blocks == (["thinking", "text"] if thinking["type"] == "enabled" else ["text"])


def test_a_turn_without_reasoning_is_filled_for_deepseek(stack, litellm, fresh_backend, master_key):
    # A session that began with thinking off (or on another model): its tool turn has no reasoning.
    history = {
        "tools": [{"name": "Read", "description": "read", "input_schema": {"type": "object"}}],
        "messages": [
            {"role": "user", "content": "read a.txt"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "A"}]},
        ],
    }
    status, raw = ask(litellm.url, master_key, "deepseek-flash", **history)
    assert status == 400 and b"reasoning_content in the thinking mode must be passed back" in raw
    fresh_backend.reset()

    status, raw = ask(stack.url, master_key, "deepseek-flash", **history)
    assert status == 200, raw
    (body,) = fresh_backend.requests
    assert body["messages"][1]["reasoning_content"] == PLACEHOLDER_REASONING["thinking"]
    assert body["messages"][2]["role"] == "tool"


def test_a_json_answer_gets_string_signatures(stack, litellm, fresh_backend, master_key):
    reply = Text("9.8 is larger.", reasoning="Compare the tenths.")
    body = {"model": "deepseek-flash", "max_tokens": 1024, "messages": [{"role": "user", "content": "9.11 or 9.8?"}]}
    headers = {"authorization": f"Bearer {master_key}"}
    fresh_backend.script([reply])
    status, _, raw = post_json(litellm.url + "/v1/messages", body, headers)
    # LiteLLM alone: the pinned 1.108.14 writes the empty string itself; 1.108.7 and 1.110.2
    # write null, which the stack repairs (tests/pure/test_usage.py).
    assert status == 200 and json.loads(raw)["content"][0]["signature"] in ("", None)

    fresh_backend.script([reply])
    status, _, raw = post_json(stack.url + "/v1/messages", body, headers)
    assert status == 200, raw
    # The empty signature, wrapped with the model that wrote it (addons/messages/provenance.py).
    thought = {"type": "thinking", "thinking": "Compare the tenths.", "signature": "stz1:deepseek-flash:"}
    assert json.loads(raw)["content"][0] == thought


def test_a_turn_without_thinking_is_filled_on_deepseeks_anthropic_route(stack, litellm, fresh_backend, master_key):
    # A session another model began (Claude Code drops other models' thinking on --continue
    # and /model): its tool turn comes back without a thinking block.
    history = {
        "thinking": {"type": "adaptive"},
        "tools": [{"name": "Read", "description": "read", "input_schema": {"type": "object"}}],
        "messages": [
            {"role": "user", "content": "read a.txt"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "A"}]},
        ],
    }
    status, raw = ask(litellm.url, master_key, "deepseek-flash-anthropic", **history)
    assert status == 400 and b"content[].thinking` in the thinking mode must be passed back" in raw
    fresh_backend.reset()

    status, raw = ask(stack.url, master_key, "deepseek-flash-anthropic", **history)
    assert status == 200, raw
    (body,) = fresh_backend.messages_requests
    assert body["messages"][1]["content"][0] == PLACEHOLDER_REASONING
    assert body["messages"][1]["content"][1]["type"] == "tool_use"


def test_a_session_across_deepseek_and_claude_keeps_each_ones_thinking(stack, litellm, fresh_backend, master_key):
    # Turn 1 on DeepSeek's Anthropic route: a tool call with its signed thinking.
    tools = [{"name": "Read", "description": "read", "input_schema": {"type": "object"}}]
    asked = {"thinking": {"type": "adaptive"}, "tools": tools}
    fresh_backend.script([ToolCalls([("Read", {"file_path": "a.txt"})], reasoning="Read it first.")])
    status, raw = ask(stack.url, master_key, "deepseek-flash-anthropic", **asked)
    assert status == 200, raw
    first = streamed_message(raw)
    # DeepSeek's own signature (the stand-in's message id), wrapped with the model that wrote it.
    origin, deepseek_signature = unwrap(first["content"][0]["signature"])
    assert origin == "deepseek-flash" and uuid.UUID(deepseek_signature)
    call = first["content"][-1]
    call["input"] = json.loads(call.pop("input_json"))
    history = [
        {"role": "user", "content": "Which is larger, 9.11 or 9.8?"},
        {"role": "assistant", "content": first["content"]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": "A"}]},
    ]

    # Turn 2, the same history to Claude, which verifies signatures (a LiteLLM fallback, or a
    # client that keeps other models' thinking): as it stands, Anthropic refuses it. (LiteLLM
    # alone retries such a refusal without thinking at all.)
    refused = check_messages_request({"messages": history}, PROFILES["claude"])
    assert refused.body["error"]["message"] == "messages.1.content.0: Invalid `signature` in `thinking` block"
    fresh_backend.reset()
    fresh_backend.script([Text("It says A.", reasoning="The file holds A.")])
    status, raw = ask(stack.url, master_key, "claude-sonnet-anthropic", messages=history, **asked)
    assert status == 200, raw
    (body,) = fresh_backend.messages_requests
    assert [block["type"] for block in body["messages"][1]["content"]] == ["tool_use"]  # DeepSeek's dropped
    second = streamed_message(raw)
    history += [{"role": "assistant", "content": second["content"]}, {"role": "user", "content": "And now?"}]

    # Turn 3 back on DeepSeek: its own thinking exactly as it came, Claude's with Claude's signature.
    fresh_backend.reset()
    fresh_backend.script([Text("Done.", reasoning="Nothing left.")])
    status, raw = ask(stack.url, master_key, "deepseek-flash-anthropic", messages=history, **asked)
    assert status == 200, raw
    (body,) = fresh_backend.messages_requests
    assert body["messages"][1]["content"][0] == {
        "type": "thinking",
        "thinking": "Read it first.",
        "signature": deepseek_signature,
    }
    assert body["messages"][3]["content"][0]["signature"] == claude_signature_of("The file holds A.")
