"""MiniMax (`minimax*`, any case): always thinks, `<think>` in content unless `reasoning_split`,
code 2013 context errors (platform.minimax.io/docs/api-reference/text-openai-api,
MiniMax-AI/MiniMax-M2#119; read 2026-11-26). Its Anthropic route ignores `top_k`,
`stop_sequences`, `service_tier`, `mcp_servers`, `context_management` and `container` ("This
parameter will be ignored", https://platform.minimax.io/docs/api-reference/text-anthropic-api,
read 2026-11-26), as every profile here ignores keys it does not know."""

from __future__ import annotations

import uuid
from typing import Any

from tests.backend.core import Error
from tests.backend.provider import Provider

# Input + max_tokens over the window (https://github.com/MiniMax-AI/MiniMax-M2/issues/119, read 2026-11-26).
MINIMAX_CONTEXT = "invalid params, context window exceeds limit (2013)"


def minimax_error(message: str) -> Error:
    """MiniMax's OpenAI-route envelope (https://github.com/MiniMax-AI/MiniMax-M2/issues/119,
    https://github.com/lobehub/lobehub/pull/14814, read 2026-11-26)."""
    return Error(400, {"error": {"message": message, "type": "bad_request_error", "param": "", "code": None}})


def _minimax_anthropic_error(message: str) -> Error:
    """MiniMax's /anthropic envelope (the same sources)."""
    return Error(
        400,
        {
            "type": "error",
            "error": {"type": "bad_request_error", "message": message, "http_code": "400"},
            "request_id": uuid.uuid4().hex,
        },
    )


def _reasoning_fields(body: dict[str, Any], piece: str) -> dict[str, Any]:
    """`<think>` inside `content`, or with `reasoning_split: true` a `reasoning_details` list
    (https://platform.minimax.io/docs/api-reference/text-openai-api, read 2026-11-26) whose
    items are `{"type": "reasoning.text", "text": ...}` (https://belingud.github.io/yaicli/providers/minimax/;
    its docs read `reasoning_details[0]['text']`), incremental when streamed
    (https://github.com/MiniMax-AI/MiniMax-M2/issues/95); read 2026-11-26."""
    if body.get("reasoning_split") is True:
        return {"reasoning_details": [{"type": "reasoning.text", "text": piece}]}
    return {}


def _think_block(reasoning: str, text: str) -> str:
    """The `<think>` block in the content, a newline inside each tag and a blank line before the
    answer (as streamed in https://github.com/MiniMax-AI/MiniMax-M2/issues/105, read 2026-11-26)."""
    return f"<think>\n{reasoning}\n</think>\n\n{text}"


PROVIDER = Provider(
    name="minimax",
    prefix="minimax",
    # MiniMax-M3: 1,000,000 tokens (https://platform.minimax.io/docs/api-reference/text-openai-api, read
    # 2026-11-26); thinks always (M2.x: "disabled ignored"; M3 takes `disabled` per the same docs, but the
    # profile keeps it on).
    profile={"thinking": True, "always_thinks": True, "context_window": 1_000_000},
    # MiniMax-M2.x: 204,800 tokens (https://platform.minimax.io/docs/api-reference/text-openai-api, read 2026-11-26).
    model_quirks={"minimax-m2": {"context_window": 204_800}},
    context_error=lambda window, prompt, completion: minimax_error(MINIMAX_CONTEXT),
    reasoning_fields=_reasoning_fields,
    reasoning_in_content=_think_block,
    messages_context_error=lambda window, prompt, completion: _minimax_anthropic_error(MINIMAX_CONTEXT),
)
