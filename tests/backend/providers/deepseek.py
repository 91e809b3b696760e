"""DeepSeek (`deepseek*`): V4's "Thinking Mode" guide and error captures: strict keys, max_tokens
[1, 393216], 1M window, reasoning_content and its round trip, usage on the finish chunk; and its
Anthropic-compatible endpoint (https://api.deepseek.com/anthropic, its "Anthropic API" guide).
All read 2026-11-26."""

from __future__ import annotations

import re
import uuid
from typing import Any

from tests.backend.core import (
    UNSET,
    Error,
    Quirks,
    after_key,
    anthropic_error,
    line_column,
    thinks,
    type_disabled,
)
from tests.backend.provider import TOOL_MESSAGES_DUE, Provider, context_length_message

# What DeepSeek documents for POST /chat/completions (V4: `thinking` and
# `reasoning_effort` among them; an Anthropic-shaped `thinking` such as
# {"type": "adaptive"} is refused by the value check below).
DEEPSEEK_KEYS = (
    "messages",
    "model",
    "frequency_penalty",
    "max_tokens",
    "presence_penalty",
    "response_format",
    "stop",
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    "tools",
    "tool_choice",
    "logprobs",
    "top_logprobs",
    "thinking",
    "reasoning_effort",
)
# DeepSeek's reasoning_effort values ("Thinking Mode" guide: minimal and low map
# to low, medium/high/xhigh to high, max/ultra to max).
DEEPSEEK_EFFORTS = ("minimal", "low", "medium", "high", "xhigh", "max", "ultra")
# Its Anthropic-compatible endpoint: the block types it takes (the guide's table; it
# refuses redacted_thinking and document), and its wording when a thinking block is
# not sent back (as quoted in hermes-agent#17992).
DEEPSEEK_ANTHROPIC_BLOCKS = (
    "text",
    "image",
    "tool_use",
    "tool_result",
    "thinking",
    "server_tool_use",
    "web_search_tool_result",
)
THINKING_MISSING = "The `content[].thinking` in the thinking mode must be passed back to the API."
# Its wording when an earlier turn comes back without its reasoning (as quoted in
# opencode#24083; some reports show the field name in backticks).
REASONING_MISSING = "The reasoning_content in the thinking mode must be passed back to the API."


def deepseek_error(message: str) -> Error:
    return Error(
        400,
        {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_request_error",
            }
        },
    )


def _unknown_keys_error(unknown: list[str], raw: str) -> Error:
    expected = ", ".join(f"`{key}`" for key in DEEPSEEK_KEYS)
    line, column = after_key(raw, unknown[0])
    return deepseek_error(
        "Failed to deserialize the JSON body into the target type: "
        f"unknown field `{unknown[0]}`, expected one of {expected} at line {line} column {column}"
    )


def _missing_messages_error(raw: str) -> Error:
    line, column = line_column(raw, len(raw))
    return deepseek_error(
        f"Failed to deserialize the JSON body into the target type: missing field `messages` "
        f"at line {line} column {column}"
    )


def _invalid_json_error(problem: str) -> Error:
    return deepseek_error(f"Failed to parse the request body as JSON: {problem}")


def _max_tokens_message(limit: int) -> str:
    return f"Invalid max_tokens value, the valid range of max_tokens is [1, {limit}]"


def _refuses_part(kind: str, quirks: Quirks) -> bool:
    """DeepSeek's serde enum for parts has the one variant `text` (its wording: "messages[3]:
    unknown variant `image_url`, expected `text` at line 1 column 173667", ChatLunaLab/chatluna#867),
    so it refuses `file` too; `deepseek-v4-pro` takes no `image_url` either (`images` off)."""
    return not quirks.images if kind == "image_url" else kind != "text"


def _content_part_error(kind: str, index: int, number: int, raw: str) -> Error:
    # serde stops just after the variant's name; the first such "type" in the body is this part's.
    match = re.search(rf'"type"\s*:\s*"{re.escape(kind)}"', raw)
    line, column = line_column(raw, match.end() if match else len(raw))
    return deepseek_error(
        f"Failed to deserialize the JSON body into the target type: messages[{index}]: "
        f"unknown variant `{kind}`, expected `text` at line {line} column {column}"
    )


def _tool_order_error(index: int, missing: list[str]) -> Error:
    # In its usual envelope (TurixAI/TuriX-CUA#15, 2026-03-03; BigPizzaV3/CodexPlusPlus#308).
    return deepseek_error(TOOL_MESSAGES_DUE + " (insufficient tool messages following tool_calls message)")


def _thinking_off(body: dict[str, Any]) -> bool:
    """`thinking: {"type": "disabled"}`; DeepSeek thinks even then when a `reasoning_effort`
    is sent (observed by others: the pair is answered as a thinking request, with the
    reasoning 400 below)."""
    return "reasoning_effort" not in body and type_disabled(body)


def _switch_error(body: dict[str, Any], raw: str) -> Error | None:
    """The switch's and the effort's values (serde's enum wording, as for its other fields)."""
    thinking = body.get("thinking", UNSET)
    if thinking is not UNSET and not (isinstance(thinking, dict) and thinking.get("type") in ("enabled", "disabled")):
        got = thinking.get("type") if isinstance(thinking, dict) else thinking
        line, column = after_key(raw, "type" if isinstance(thinking, dict) else "thinking")
        return deepseek_error(
            "Failed to deserialize the JSON body into the target type: thinking.type: unknown variant "
            f"`{got}`, expected `enabled` or `disabled` at line {line} column {column}"
        )
    effort = body.get("reasoning_effort", UNSET)
    if effort is not UNSET and effort not in DEEPSEEK_EFFORTS:
        line, column = after_key(raw, "reasoning_effort")
        expected = ", ".join(f"`{name}`" for name in DEEPSEEK_EFFORTS)
        return deepseek_error(
            "Failed to deserialize the JSON body into the target type: reasoning_effort: unknown variant "
            f"`{effort}`, expected one of {expected} at line {line} column {column}"
        )
    return None


def reasoning_missing(body: dict[str, Any], quirks: Quirks) -> bool:
    """DeepSeek's round trip: in a thinking request that carries tools, every earlier
    assistant turn must carry its reasoning_content (an empty string counts, a missing
    field does not), even one that called no tool."""
    if not (thinks(body, quirks, _thinking_off) and body.get("tools")):
        return False
    return any(
        isinstance(message, dict)
        and message.get("role") == "assistant"
        and not isinstance(message.get("reasoning_content"), str)
        for message in body["messages"]
    )


def _reasoning_error(body: dict[str, Any], raw: str, quirks: Quirks) -> Error | None:
    if error := _switch_error(body, raw):
        return error
    return deepseek_error(REASONING_MISSING) if reasoning_missing(body, quirks) else None


def _cache_usage(prompt: int, cached: int) -> dict[str, Any]:
    return {
        "prompt_tokens_details": {"cached_tokens": cached},
        "prompt_cache_hit_tokens": cached,
        "prompt_cache_miss_tokens": prompt - cached,
    }


# -- the Anthropic-compatible endpoint: thinking blocks first, signed with the message id (a UUID)
# through a `signature_delta`; `budget_tokens`, `cache_control` and `top_k` are ignored.


def messages_max_tokens_error(value: Any, limit: int) -> Error | None:
    return None if isinstance(value, int) and 1 <= value <= limit else anthropic_error(_max_tokens_message(limit))


def messages_content_error(body: dict[str, Any], quirks: Quirks) -> Error | None:
    """Its block list, and its round trip: in a thinking request with tools every earlier
    assistant turn must bring its thinking block back."""
    for message in body["messages"]:
        content = message.get("content") if isinstance(message, dict) else None
        for block in content if isinstance(content, list) else []:
            kind = block.get("type") if isinstance(block, dict) else None
            if kind not in DEEPSEEK_ANTHROPIC_BLOCKS:
                expected = ", ".join(f"`{name}`" for name in DEEPSEEK_ANTHROPIC_BLOCKS)
                return anthropic_error(
                    f"Failed to deserialize the JSON body into the target type: messages: unknown variant "
                    f"`{kind}`, expected one of {expected}"
                )
    if not (thinks(body, quirks, type_disabled) and body.get("tools")):
        return None
    for message in body["messages"]:
        content = message.get("content") if isinstance(message, dict) else None
        if (
            isinstance(message, dict)
            and message.get("role") == "assistant"
            and not (
                isinstance(content, list) and any(isinstance(b, dict) and b.get("type") == "thinking" for b in content)
            )
        ):
            return anthropic_error(THINKING_MISSING)
    return None


def messages_context_error(window: int, prompt: int, completion: int) -> Error | None:
    return anthropic_error(context_length_message(window, prompt, completion))


PROVIDER = Provider(
    name="deepseek",
    prefix="deepseek",
    # deepseek-flash and deepseek-v4-pro: 1M context, up to 384K output (393216), thinking by default.
    profile={"strict_keys": True, "max_tokens_limit": 393216, "context_window": 1_000_000, "thinking": True},
    # DeepSeek documents no image input for v4-pro (DeepSeek Models & Pricing, read 2026-11-26).
    model_quirks={"deepseek-v4-pro": {"images": False}},
    accepted_keys=DEEPSEEK_KEYS,
    unknown_keys_error=_unknown_keys_error,
    missing_messages_error=_missing_messages_error,
    invalid_json_error=_invalid_json_error,
    refuses_part=_refuses_part,
    content_part_error=_content_part_error,
    tool_order_error=_tool_order_error,
    reasoning_error=_reasoning_error,
    max_tokens_error=lambda value, limit: deepseek_error(_max_tokens_message(limit)),
    context_error=lambda window, prompt, completion: deepseek_error(context_length_message(window, prompt, completion)),
    thinking_off=_thinking_off,
    completion_id=lambda: str(uuid.uuid4()),
    call_id=lambda body, index, name: f"call_{index:02d}_{uuid.uuid4().hex[:24]}",
    cache_usage=_cache_usage,
    empty_content_at_finish=True,
    usage_on_finish_chunk=True,
    messages_max_tokens_error=messages_max_tokens_error,
    messages_content_error=messages_content_error,
    messages_context_error=messages_context_error,
)
