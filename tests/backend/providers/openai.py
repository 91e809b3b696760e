"""The plain profile (any model name no other profile claims): a permissive OpenAI server, with
OpenAI's wordings (the defaults in provider.py); OpenAI's own models (`gpt-*`) also cap
tool-call ids at 40 characters (the `max_tool_call_id` quirk). Its Anthropic Messages route is DeepSeek's:
its block list, its thinking round trip, its max_tokens and context wordings."""

from __future__ import annotations

from typing import Any

from tests.backend.core import Error
from tests.backend.provider import TOOL_IDS_MISSING, TOOL_MESSAGES_DUE, Provider, openai_error
from tests.backend.providers import deepseek


def _tool_order_error(index: int, missing: list[str]) -> Error:
    # With the ids and the offending message's role as `param` (provider.TOOL_MESSAGES_DUE).
    return openai_error(
        TOOL_MESSAGES_DUE + TOOL_IDS_MISSING.format(", ".join(missing)), param=f"messages.[{index}].role"
    )


# OpenAI refuses a longer tool-call id in the history: the body quoted in vercel/ai#5171 (also
# BerriAI/litellm#17343, anomalyco/opencode#12653, after a switch from another model); read 2026-12-06.
TOOL_CALL_ID_TOO_LONG = (
    "Invalid '{}': string too long. Expected a string with maximum length {}, but got a string with length {} instead."
)


def tool_call_id_error(body: dict[str, Any], limit: int) -> Error | None:
    """The first earlier tool call whose id is longer than `limit`, in OpenAI's words."""
    for index, message in enumerate(body["messages"]):
        calls = message.get("tool_calls") if isinstance(message, dict) else None
        for number, call in enumerate(calls if isinstance(calls, list) else []):
            call_id = call.get("id") if isinstance(call, dict) else None
            if isinstance(call_id, str) and len(call_id) > limit:
                param = f"messages[{index}].tool_calls[{number}].id"
                message_text = TOOL_CALL_ID_TOO_LONG.format(param, limit, len(call_id))
                return openai_error(message_text, param=param, code="string_above_max_length")
    return None


PROVIDER = Provider(
    name="openai",
    # OpenAI's own models: tool-call ids of 40 characters at most (TOOL_CALL_ID_TOO_LONG).
    model_quirks={"gpt-": {"max_tool_call_id": 40}},
    tool_order_error=_tool_order_error,
    null_content_with_calls=True,
    messages_max_tokens_error=deepseek.messages_max_tokens_error,
    messages_content_error=deepseek.messages_content_error,
    messages_context_error=deepseek.messages_context_error,
)
