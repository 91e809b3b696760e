"""Anthropic's own models (`claude*`) behind the same LiteLLM, on the Anthropic route: they sign
each thinking block and verify every signature sent back, refusing one they did not write with
"messages.1.content.0: Invalid `signature` in `thinking` block" (Anthropic's 400 as quoted in
anthropics/anthropic-sdk-csharp#126, ding113/claude-code-hub#518 and kaitranntt/ccs#415, read
2026-12-06; their extended-thinking guide: blocks go back unmodified). The signature here is a
digest of the thinking text, so a block another provider wrote, or an empty signature, fails."""

from __future__ import annotations

import hashlib
from typing import Any

from tests.backend.core import Error, Quirks, anthropic_error
from tests.backend.provider import Provider

INVALID_SIGNATURE = "messages.{}.content.{}: Invalid `signature` in `thinking` block"


def signature_of(thinking: str) -> str:
    return "claude-sig-" + hashlib.sha256(thinking.encode()).hexdigest()[:32]


def messages_content_error(body: dict[str, Any], quirks: Quirks) -> Error | None:
    for index, message in enumerate(body["messages"]):
        content = message.get("content") if isinstance(message, dict) else None
        for position, block in enumerate(content if isinstance(content, list) else []):
            if not (isinstance(block, dict) and block.get("type") == "thinking"):
                continue
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
)
