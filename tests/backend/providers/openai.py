"""The plain profile (any model name no other profile claims): a permissive OpenAI server, with
OpenAI's wordings (the defaults in provider.py). Its Anthropic Messages route is DeepSeek's:
its block list, its thinking round trip, its max_tokens and context wordings."""

from __future__ import annotations

from tests.backend.core import Error
from tests.backend.provider import TOOL_IDS_MISSING, TOOL_MESSAGES_DUE, Provider, openai_error
from tests.backend.providers import deepseek


def _tool_order_error(index: int, missing: list[str]) -> Error:
    # With the ids and the offending message's role as `param` (provider.TOOL_MESSAGES_DUE).
    return openai_error(
        TOOL_MESSAGES_DUE + TOOL_IDS_MISSING.format(", ".join(missing)), param=f"messages.[{index}].role"
    )


PROVIDER = Provider(
    name="openai",
    tool_order_error=_tool_order_error,
    null_content_with_calls=True,
    messages_max_tokens_error=deepseek.messages_max_tokens_error,
    messages_content_error=deepseek.messages_content_error,
    messages_context_error=deepseek.messages_context_error,
)
