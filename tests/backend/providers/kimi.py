"""Kimi (`kimi*`): Moonshot: thinks (k3 always), the reasoning_content round trip with the
message's index, token-limit and temperature wordings, 128 tools
(platform.kimi.ai/docs/api/errors, MoonshotAI/kimi-cli#2011; read 2026-11-26). Its thinking
switch is the common one, `thinking: {"type": "disabled"}` via extra_body
(https://platform.kimi.ai/docs/api/models-overview, read 2026-11-26). On its Anthropic route
only the tool limit is reproduced (a `document` wording was not found). On both routes it writes
tool-call ids in its own form, `functions.{name}:{idx}` (kimi_call_id)."""

from __future__ import annotations

from typing import Any

from tests.backend.core import Error, Quirks, thinks, type_disabled
from tests.backend.provider import TOOL_IDS_MISSING, TOOL_MESSAGES_DUE, Provider

# Kimi's round trip: in a thinking request (tools or not), an assistant message with
# tool_calls must carry its reasoning_content; N is that message's index in `messages`
# (https://www.kimi.com/code/docs/en/kimi-code/error-reference.html;
# https://github.com/MoonshotAI/kimi-agent-sdk/issues/169; read 2026-11-26).
KIMI_REASONING_MISSING = (
    "thinking is enabled but reasoning_content is missing in assistant tool call message at index {}"
)
# Kimi K3's fixed temperature, as quoted in
# https://agent-zone.ai/knowledge/agent-tooling/moonshot-kimi-k2.6-operational-quirks/ and
# https://dev.to/aihubmix/kimi-k31-pro-migration-guide-five-400s-one-404-and-the-claude-code-codex-config-13k
# (read 2026-11-26). The `fixed_temperature` quirk uses it on any profile.
FIXED_TEMPERATURE = "invalid temperature: only {:g} is allowed for this model"


def kimi_call_id(body: dict[str, Any], index: int, name: str) -> str:
    """Kimi's tool-call id: "The format of the tool ID is `functions.{func_name}:{idx}`"
    (MoonshotAI/Kimi-K2 docs/tool_call_guidance.md, read 2026-12-06), idx counting every call
    of the conversation (the `tool_call_counter` of its chat template, as quoted in
    ikawrakow/ik_llama.cpp#955; such ids, `functions.Bash:0`, reach other providers after a
    model switch: maximhq/bifrost#5097, BerriAI/litellm#31094; read 2026-12-06). Earlier calls
    are counted in either route's history: chat `tool_calls` or Messages `tool_use` blocks."""
    earlier = 0
    for message in body.get("messages") or []:
        if isinstance(message, dict) and message.get("role") == "assistant":
            calls = message.get("tool_calls")
            content = message.get("content")
            earlier += len(calls) if isinstance(calls, list) else 0
            blocks = content if isinstance(content, list) else []
            earlier += sum(isinstance(block, dict) and block.get("type") == "tool_use" for block in blocks)
    return f"functions.{name}:{earlier + index}"


def moonshot_error(message: str) -> Error:
    """Moonshot's envelope, `{"error": {"message", "type": "invalid_request_error"}}`
    (MoonshotAI/Kimi-K2#90, https://github.com/MoonshotAI/kimi-cli/issues/2011, read 2026-11-26)."""
    return Error(400, {"error": {"message": message, "type": "invalid_request_error"}})


def too_many_tools(tools: Any, limit: int | None) -> str | None:
    """Kimi refuses more than 128 tools; its wording as quoted in MoonshotAI/Kimi-K2#90
    (seen on its Anthropic route; assumed the same on the OpenAI one, in Moonshot's
    `{"error": {"message", "type"}}` shape). The `max_tools` quirk uses it on any profile."""
    if limit is not None and isinstance(tools, list) and len(tools) > limit:
        return f"a max of {limit} tools can be supported"
    return None


def _tool_order_error(index: int, missing: list[str]) -> Error:
    # In lower case (MoonshotAI/kimi-cli#2405).
    return moonshot_error("a" + TOOL_MESSAGES_DUE[1:] + TOOL_IDS_MISSING.format(", ".join(missing)))


def _reasoning_error(body: dict[str, Any], raw: str, quirks: Quirks) -> Error | None:
    if not thinks(body, quirks, type_disabled):
        return None
    for index, message in enumerate(body["messages"]):
        if (
            isinstance(message, dict)
            and message.get("role") == "assistant"
            and message.get("tool_calls")
            and not isinstance(message.get("reasoning_content"), str)
        ):
            return moonshot_error(KIMI_REASONING_MISSING.format(index))
    return None


def _context_error(window: int, prompt: int, completion: int) -> Error:
    """ "sum of input tokens and max_tokens exceeds the model's maximum length"
    (https://platform.kimi.ai/docs/api/errors); the live wording as quoted in
    https://github.com/MoonshotAI/kimi-cli/issues/2011. Read 2026-11-26."""
    return moonshot_error(
        f"Invalid request: Your request exceeded model token limit: {window} (requested: {prompt + completion})"
    )


PROVIDER = Provider(
    name="kimi",
    prefix="kimi",
    # Kimi K2.6: 262,144 tokens, thinking on by default (https://platform.kimi.ai/docs/api/models-overview);
    # 128 tools (MoonshotAI/Kimi-K2#90); unknown top-level fields ignored ("verified live", third party:
    # https://docs.rs/synaps-engine/0.7.0/src/agent_engine/runtime/openai/catalog/kimi.rs.html). Read 2026-11-26.
    profile={"thinking": True, "context_window": 262_144, "max_tools": 128},
    model_quirks={
        # K3 (and K3.1): 1,048,576 tokens, thinking always on
        # (https://docs.evolink.ai/en/api-manual/language-series/kimi-k3/kimi-k3-chat.md); temperature fixed at 1
        # (https://dev.to/aihubmix/kimi-k31-pro-migration-guide-five-400s-one-404-and-the-claude-code-codex-config-13k).
        # Read 2026-11-26.
        "kimi-k3": {"always_thinks": True, "fixed_temperature": 1.0, "context_window": 1_048_576},
    },
    tool_order_error=_tool_order_error,
    reasoning_error=_reasoning_error,
    context_error=_context_error,
    call_id=kimi_call_id,
    messages_call_id=kimi_call_id,
)
