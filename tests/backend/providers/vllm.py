"""vLLM (`vllm-*`): a local server running a reasoning model behind a reasoning parser: the
`reasoning` field, its renderer's context wording, the tool-parser flag
(docs.vllm.ai/en/stable/features/reasoning_outputs, vllm renderers/params.py; read 2026-11-26),
and its tool-call ids, `chatcmpl-tool-` and 32 hex digits (46 characters: the default of
ToolCall.id in vllm/entrypoints/openai/protocol.py, read 2026-12-06).
Its window is --max-model-len (the model's own when unset): set context_window in a test."""

from __future__ import annotations

import json
import uuid
from typing import Any

from tests.backend.core import Error
from tests.backend.provider import Provider

# vLLM without a tool parser (vllm/renderers/online_renderer.py,
# https://github.com/vllm-project/vllm/blob/01063cd07bef167f37f6d25a96b1df7d97fe40eb/vllm/renderers/online_renderer.py,
# read 2026-11-26); tools without a tool_choice count as "auto" there. The `tool_parser`
# quirk uses it on any profile.
TOOL_PARSER_ERRORS = {
    "auto": '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set',
    "required": 'tool_choice="required" requires --tool-call-parser to be set',
}


def vllm_error(message: str, param: str | None = None) -> Error:
    """vLLM's ErrorResponse for a 400 (vllm-project/vllm#43995, read 2026-11-26)."""
    return Error(400, {"error": {"message": message, "type": "BadRequestError", "param": param, "code": 400}})


def arguments_error(arguments: Any) -> Error | None:
    """An earlier assistant tool call whose arguments are not JSON: vLLM json.loads them and
    answers 400 with the decoder's message, `{"message": "Expecting ',' delimiter: line 1
    column 54 (char 53)", "type": "BadRequestError", "param": null, "code": 400}`
    (vllm-project/vllm#43995). Other JSON values are let through here (vLLM coerces `null`
    to {}; what it does with other non-objects varies by version). The `strict_arguments`
    quirk uses it on the profiles without a check of their own."""
    if isinstance(arguments, str):
        try:
            json.loads(arguments)
        except json.JSONDecodeError as error:
            return vllm_error(str(error))
    return None


def _context_error(window: int, prompt: int, completion: int) -> Error:
    """vLLM's renderer (TokenizeParams in vllm/renderers/params.py,
    https://github.com/vllm-project/vllm/blob/017638d70159114c71e4c28cc95f54c3f7699079/vllm/renderers/params.py,
    read 2026-11-26): max_tokens alone over max_model_len, then the prompt over what is left
    (an unset max_tokens counts as 0); over the window, one of the two is. The missing space
    after the number is in the source."""
    if completion > window:
        return vllm_error(
            f"max_tokens={completion}cannot be greater than max_model_len=max_total_tokens={window}. "
            "Please request fewer output tokens.",
            param="max_tokens",
        )
    return vllm_error(
        f"You passed {prompt} input tokens and requested {completion} output tokens. However, the model's "
        f"context length is only {window} tokens, resulting in a maximum input length of {window - completion} "
        "tokens. Please reduce the length of the input prompt.",
        param="input_tokens",
    )


PROVIDER = Provider(
    name="vllm",
    prefix="vllm-",
    profile={"thinking": True},
    context_error=_context_error,
    # `chat_template_kwargs.enable_thinking` false (https://docs.vllm.ai/en/stable/features/reasoning_outputs/,
    # read 2026-11-26).
    thinking_off=lambda body: isinstance(body.get("chat_template_kwargs"), dict)
    and body["chat_template_kwargs"].get("enable_thinking") is False,
    # "`reasoning` used to be called `reasoning_content`"
    # (https://docs.vllm.ai/en/stable/features/reasoning_outputs/, read 2026-11-26).
    reasoning_fields=lambda body, piece: {"reasoning": piece},
    call_id=lambda body, index, name: f"chatcmpl-tool-{uuid.uuid4().hex}",
)
