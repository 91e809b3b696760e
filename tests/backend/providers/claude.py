"""Anthropic's own models (`claude*`) behind the same LiteLLM, on the Anthropic route: they sign
each thinking block and verify every signature sent back, refusing one they did not write with
"messages.1.content.0: Invalid `signature` in `thinking` block" (Anthropic's 400 as quoted in
anthropics/anthropic-sdk-csharp#126, ding113/claude-code-hub#518 and kaitranntt/ccs#415, read
2026-12-06; their extended-thinking guide: blocks go back unmodified). The signature here is a
digest of the thinking text, so a block another provider wrote, or an empty signature, fails.
Tool-use ids: its own are `toolu_01...` (the examples of Anthropic's tool-use guide), and it
refuses one outside `^[a-zA-Z0-9_-]+$` or one used twice (TOOL_USE_ID_PATTERN, TOOL_USE_ID_TWICE).
With thinking on, the assistant turn that opened the tool round trip being answered must start
with a thinking block (THINKING_FIRST)."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterator
from typing import Any

from tests.backend.core import Error, Quirks, anthropic_error
from tests.backend.provider import Provider

INVALID_SIGNATURE = "messages.{}.content.{}: Invalid `signature` in `thinking` block"
# Anthropic's 400 for a tool_use id outside its pattern, as quoted in CommandCodeAI/command-code#323,
# BerriAI/litellm#21114 and maximhq/bifrost#5097 (a Kimi id, `functions.Bash:0`, after a model switch);
# read 2026-12-06.
TOOL_USE_ID_PATTERN = "messages.{}.content.{}.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'"
# Its 400 for an id used by two tool_use blocks, as quoted in anthropics/claude-code#21083 and
# trycua/cua#524; read 2026-12-06.
TOOL_USE_ID_TWICE = "messages.{}.content.{}: `tool_use` ids must be unique"
VALID_TOOL_USE_ID = re.compile(r"[a-zA-Z0-9_-]+")
# Its 400 when thinking is on and the last assistant turn of an unfinished tool round trip does not
# start with thinking, as quoted in OpenRouterTeam/ai-sdk-provider#162, anomalyco/opencode#3077 and
# mastra-ai/mastra#7799 (read 2026-12-06); a history whose last turn is a new prompt is not checked.
THINKING_FIRST = (
    "messages.{}.content.0.type: Expected `thinking` or `redacted_thinking`, but found `{}`. When `thinking` is "
    "enabled, a final `assistant` message must start with a thinking block (preceeding the lastmost set of "
    "`tool_use` and `tool_result` blocks). We recommend you include thinking blocks from previous turns. To avoid "
    "this requirement, disable `thinking`. Please consult our documentation at "
    "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
)


def signature_of(thinking: str) -> str:
    return "claude-sig-" + hashlib.sha256(thinking.encode()).hexdigest()[:32]


def _blocks(body: dict[str, Any], kind: str) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """(message index, block position, block) of each `kind` block in the messages' contents."""
    for index, message in enumerate(body["messages"]):
        content = message.get("content") if isinstance(message, dict) else None
        for position, block in enumerate(content if isinstance(content, list) else []):
            if isinstance(block, dict) and block.get("type") == kind:
                yield index, position, block


def _tool_use_id_error(body: dict[str, Any]) -> Error | None:
    seen: set[str] = set()
    for index, position, block in _blocks(body, "tool_use"):
        tool_id = block.get("id")
        if not (isinstance(tool_id, str) and VALID_TOOL_USE_ID.fullmatch(tool_id)):
            return anthropic_error(TOOL_USE_ID_PATTERN.format(index, position))
        if tool_id in seen:
            return anthropic_error(TOOL_USE_ID_TWICE.format(index, position))
        seen.add(tool_id)
    return None


def _thinking_first_error(body: dict[str, Any]) -> Error | None:
    thinking = body.get("thinking")
    if not (isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")):
        return None
    messages = body["messages"]
    last = messages[-1] if messages else None
    content = last.get("content") if isinstance(last, dict) and last.get("role") == "user" else None
    if not (isinstance(content, list) and any(isinstance(b, dict) and b.get("type") == "tool_result" for b in content)):
        return None
    index = max(
        (i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "assistant"), default=None
    )
    opened = messages[index].get("content") if index is not None else None
    if not (isinstance(opened, list) and opened and isinstance(opened[0], dict)):
        return None
    if (first := opened[0].get("type")) in ("thinking", "redacted_thinking"):
        return None
    return anthropic_error(THINKING_FIRST.format(index, first))


def messages_content_error(body: dict[str, Any], quirks: Quirks) -> Error | None:
    if error := _tool_use_id_error(body) or _thinking_first_error(body):
        return error
    for index, position, block in _blocks(body, "thinking"):
        thinking = block.get("thinking")
        if not isinstance(thinking, str) or block.get("signature") != signature_of(thinking):
            return anthropic_error(INVALID_SIGNATURE.format(index, position))
    return None


PROVIDER = Provider(
    name="claude",
    prefix="claude",
    profile={"thinking": True},
    thinking_signature=lambda message_id, thinking: signature_of(thinking),
    messages_content_error=messages_content_error,
    messages_call_id=lambda body, index, name: f"toolu_01{uuid.uuid4().hex[:22]}",
)
