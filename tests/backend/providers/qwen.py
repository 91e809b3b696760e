"""Qwen (`qwen*`): DashScope's compatible mode: max_tokens and input-length ranges, JSON tool
arguments, usage only with include_usage (QwenLM/qwen-code#98, HKUDS/nanobot#1487,
musistudio/claude-code-router#1327; read 2026-11-26)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from tests.backend.core import Error, compact
from tests.backend.provider import (
    OPENAI_KEYS,
    TOOL_IDS_MISSING,
    TOOL_MESSAGES_DUE,
    Provider,
    unknown_keys_message,
)

# DashScope's extensions on top of OpenAI's set.
QWEN_KEYS = OPENAI_KEYS + (
    "enable_thinking",
    "thinking_budget",
    "enable_search",
    "search_options",
    "top_k",
    "repetition_penalty",
    "translation_options",
    "vl_high_resolution_images",
)
# DashScope's wording for a replayed tool call whose arguments are not a JSON object
# (as quoted in HKUDS/nanobot#1487, qwen3.5-plus through LiteLLM).
ARGUMENTS_NOT_JSON = 'The "function.arguments" parameter of the code model must be in JSON format.'


def qwen_error(message: str) -> Error:
    return Error(
        400,
        {
            "error": {
                "code": "invalid_parameter_error",
                "param": None,
                "message": f"<400> InternalError.Algo.InvalidParameter: {message}",
                "type": "invalid_request_error",
            },
            "id": f"chatcmpl-{uuid.uuid4()}",
            "request_id": str(uuid.uuid4()),
        },
    )


def _tool_order_error(index: int, missing: list[str]) -> Error:
    # In double quotes, naming the message instead of the ids (QwenLM/qwen-code#606).
    return qwen_error(TOOL_MESSAGES_DUE.replace("'", '"') + TOOL_IDS_MISSING.format(f"message[{index}].role"))


def _arguments_error(arguments: Any) -> Error | None:
    """DashScope wants a JSON object."""
    try:
        parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
    except json.JSONDecodeError:
        parsed = None
    return None if isinstance(parsed, dict) else qwen_error(ARGUMENTS_NOT_JSON)


def _dashscope_stream_error(message: str) -> Error:
    """DashScope's /apps/anthropic answers a bad parameter with an SSE `error` event as the
    body of an HTTP 400 (Claude Code shows "API Error: 400 event:error data:{...}"), as quoted
    in https://github.com/musistudio/claude-code-router/issues/1327 (read 2026-11-26)."""
    data = compact(
        {
            "code": "InvalidParameter",
            "message": f"<400> InternalError.Algo.InvalidParameter: {message}",
            "request_id": str(uuid.uuid4()),
        }
    )
    return Error(400, f"event:error\ndata:{data}\n\n", content_type="text/event-stream")


def _messages_max_tokens_error(value: Any, limit: int) -> Error | None:
    if isinstance(value, int) and not 1 <= value <= limit:
        return _dashscope_stream_error(f"Range of max_tokens should be [1, {limit}]")
    return None


PROVIDER = Provider(
    name="qwen",
    prefix="qwen",
    profile={"max_tokens_limit": 8192, "context_window": 129024, "strict_arguments": True},
    model_quirks={
        # Qwen 3.7 / 3.8: 991,808 tokens in, 65,536 / 131,072 out (LiteLLM 1.108.7's model map, the same in 1.108.14, whose source is
        # https://www.alibabacloud.com/help/en/model-studio/models; read 2026-11-26).
        "qwen3.7": {"max_tokens_limit": 65_536, "context_window": 991_808, "thinking": True},
        "qwen3.8": {"max_tokens_limit": 131_072, "context_window": 991_808, "thinking": True},
    },
    accepted_keys=QWEN_KEYS,
    unknown_keys_error=lambda unknown, raw: qwen_error(unknown_keys_message(unknown)),
    missing_messages_error=lambda raw: qwen_error(
        "Required parameter(s) missing or invalid, please check the request parameters."
    ),
    invalid_json_error=lambda problem: qwen_error(
        "Input should be a valid dictionary or instance of ChatCompletionRequest"
    ),
    tool_order_error=_tool_order_error,
    arguments_error=_arguments_error,
    max_tokens_error=lambda value, limit: qwen_error(f"Range of max_tokens should be [1, {limit}]"),
    # The window bounds the input alone: "Range of input length" (QwenLM/qwen-code#98).
    window_counts_completion=False,
    context_error=lambda window, prompt, completion: qwen_error(f"Range of input length should be [1, {window}]"),
    # DashScope: `enable_thinking` false (https://www.alibabacloud.com/help/en/model-studio/deep-thinking,
    # read 2026-11-26); on by default from Qwen 3.5 on (as reported in BerriAI/litellm#40720).
    thinking_off=lambda body: body.get("enable_thinking") is False,
    fingerprint=None,
    cache_usage=lambda prompt, cached: {"prompt_tokens_details": {"cached_tokens": cached}},
    usage_null_on_every_chunk=True,
    # DashScope repeats an empty id and the type on every fragment.
    argument_fragment=lambda index, fragment: {
        "index": index,
        "id": "",
        "type": "function",
        "function": {"arguments": fragment},
    },
    empty_content_at_finish=True,
    messages_max_tokens_error=_messages_max_tokens_error,
)
