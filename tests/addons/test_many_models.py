"""A session written by many models (/model, --continue under another model, LiteLLM's fallbacks,
role models): whatever mix of writers a history has, the request each target receives satisfies
that target's documented rules, as the stand-in reproduces them (tests/backend/)."""

import dataclasses
import json
import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from addons.config.routes import ANTHROPIC, OPENAI
from addons.messages.provenance import unwrap, wrap
from addons.request.shaping import shape_request
from tests.addons.test_thinking import SHIPPED, TOOLS
from tests.backend import PROFILES, check_request
from tests.backend.checks import check_messages_request
from tests.backend.providers import MODEL_QUIRKS
from tests.backend.providers.claude import signature_of

# Who writes a turn: the provider's model id, and how its thinking block is signed as Claude
# Code gets it from that provider (None: a model that does not think).
WRITERS = {
    "deepseek-flash": lambda thought: str(uuid.uuid4()),  # its Anthropic route: the message id
    "kimi-k2.6": lambda thought: "",  # an OpenAI-compatible route: no signature
    "claude-sonnet-4-6": signature_of,
    "qwen3-coder-plus": None,
    "vllm-qwen3-coder": lambda thought: "",  # an OpenAI-compatible route: no signature
}
# The tool-use id each writer gives its call of turn `index`, as Claude Code keeps it: its
# own form (tests/backend/providers/), Kimi's as its Anthropic route hands it out, vLLM's 46
# characters long.
IDS = {
    "deepseek-flash": lambda index: f"call_00_{index:024x}",
    "kimi-k2.6": lambda index: f"functions.Read:{index}",
    "claude-sonnet-4-6": lambda index: f"toolu_01{index:022x}",
    "qwen3-coder-plus": lambda index: f"call_{index:024x}",
    "vllm-qwen3-coder": lambda index: f"chatcmpl-tool-{index:032x}",
}
# Each target: (model id, route, the stand-in's quirks for it, whose rules it enforces).
TARGETS = [
    ("deepseek-flash", OPENAI, PROFILES["deepseek"]),
    ("deepseek-flash", ANTHROPIC, PROFILES["deepseek"]),
    ("kimi-k2.6", OPENAI, PROFILES["kimi"]),
    ("claude-sonnet-4-6", ANTHROPIC, PROFILES["claude"]),
    # OpenAI's own model: tool-call ids of 40 characters at most (tests/backend/providers/openai.py).
    ("gpt-4.1", OPENAI, dataclasses.replace(PROFILES["openai"], **MODEL_QUIRKS["gpt-"])),
]
# An OpenAI model's entry: OpenAI's rule for tool-call ids (at most 40 characters).
POLICIES = {model: SHIPPED.for_model(model) for model, _, _ in TARGETS} | {
    "gpt-4.1": SHIPPED.for_model("gpt-4.1").model_copy(update={"tool_ids": "openai"})
}

# One assistant turn: its writer, whether Claude Code kept its thinking (it drops other
# models' on /model and --continue), and whether the stack that handed it out wrapped its
# signature (a turn from before provenance existed did not).
turns = st.lists(st.tuples(st.sampled_from(sorted(WRITERS)), st.booleans(), st.booleans()), min_size=1, max_size=8)


def history(written: list[tuple[str, bool, bool]]) -> list[dict]:
    messages: list[dict] = [{"role": "user", "content": "read the files"}]
    for index, (writer, kept, wrapped) in enumerate(written):
        content: list[dict] = []
        sign = WRITERS[writer]
        if sign is not None and kept:
            thought = f"{writer} reads file {index}."
            signature = sign(thought)
            content.append(
                {
                    "type": "thinking",
                    "thinking": thought,
                    "signature": wrap(signature, writer) if wrapped else signature,
                }
            )
        call = IDS[writer](index)
        content.append({"type": "tool_use", "id": call, "name": "Read", "input": {"file_path": f"{index}.txt"}})
        messages += [
            {"role": "assistant", "content": content},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call, "content": str(index)}]},
        ]
    return messages


def chat_body(request: dict) -> dict:
    """The Chat Completions body LiteLLM 1.108.7 makes of a shaped request, as far as the
    round trip goes: extra_body merged in, tool calls and tool messages, thinking blocks as
    reasoning_content (an unsigned block with blank text is dropped)."""
    body = {key: request[key] for key in ("model", "max_tokens", "tools") if key in request}
    body |= request.get("extra_body", {})
    body["messages"] = []
    for message in request["messages"]:
        content = message["content"] if isinstance(message["content"], list) else [message["content"]]
        if message["role"] == "user":
            for block in content:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    body["messages"].append({"role": "tool", "tool_call_id": block["tool_use_id"], "content": "."})
                else:
                    body["messages"].append({"role": "user", "content": "..."})
            continue
        converted: dict = {"role": "assistant", "content": "..."}
        thinking = "\n".join(b["thinking"] for b in content if b.get("type") == "thinking" and b.get("thinking"))
        if thinking:
            converted["reasoning_content"] = thinking
        if calls := [b for b in content if b.get("type") == "tool_use"]:
            converted["tool_calls"] = [
                {
                    "id": b["id"],
                    "type": "function",
                    "function": {"name": b["name"], "arguments": json.dumps(b["input"])},
                }
                for b in calls
            ]
        body["messages"].append(converted)
    return body


@settings(max_examples=150, deadline=None)
@given(turns, st.sampled_from(TARGETS))
def test_every_target_gets_a_history_it_accepts(written, target):
    model, route, quirks = target
    request = {
        "model": model,
        "max_tokens": 32000,
        "thinking": {"type": "adaptive"},
        "tools": TOOLS,
        "messages": history(written),
    }
    shaped = shape_request(request, POLICIES[model], route=route, target=model).request
    if route == ANTHROPIC:
        refused = check_messages_request(shaped, quirks)
    else:
        body = chat_body(shaped)
        refused = check_request(body, json.dumps(body), quirks)
    assert refused is None, (refused.body, shaped["messages"])
    # Each tool_result still answers its own tool_use; distinct ids stay distinct.
    blocks = [
        block for message in shaped["messages"] if isinstance(message["content"], list) for block in message["content"]
    ]
    calls = [block["id"] for block in blocks if block["type"] == "tool_use"]
    answers = [block["tool_use_id"] for block in blocks if block["type"] == "tool_result"]
    assert calls == answers and len(set(calls)) == len(written)
    # A block the target wrote and the stack handed out goes back exactly as the provider wrote it.
    for sent, original in zip(shaped["messages"], request["messages"], strict=True):
        for block in original["content"] if original["role"] == "assistant" else []:
            origin, signature = unwrap(block.get("signature"))
            if block["type"] == "thinking" and origin == model:
                assert {**block, "signature": signature} in sent["content"]
