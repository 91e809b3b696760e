"""llama.cpp's llama-server (`llamacpp-*`): a local server running a reasoning model behind a
reasoning parser: reasoning_content on the chat route, thinking blocks on its own Messages route.

Measured on the real server, llama.cpp 1652066 (vendored in llama-cpp-python 0.3.36), with the
model of tests/llama/model.py, 2026-12-06 (the stack's own tests against it:
tests/stack/test_llama_server.py). Its window is -c (from the model): set context_window in a
test. Not played here: in a user turn [tool_result, text] the text goes before the tool message
(what the template renders: a scripted reply sees the request as sent); `tool_choice` is not
enforced (`none` is ignored, a named tool becomes "required").
"""

from __future__ import annotations

import json
from typing import Any

from tests.backend.core import Error
from tests.backend.provider import Provider


def _error(status: int, kind: str, message: str) -> Error:
    """llama-server's envelope, the same on both routes."""
    return Error(status, {"error": {"code": status, "message": message, "type": kind}})


def _context_error(window: int, prompt: int, completion: int) -> Error:
    """A prompt over -c, on both routes, as JSON even when streaming; the prompt alone counts
    (a prompt under -c with max_tokens over the rest is answered)."""
    error = _error(
        400,
        "exceed_context_size_error",
        f"request ({prompt} tokens) exceeds the available context size ({window} tokens), try increasing it",
    )
    error.body["error"] |= {"n_prompt_tokens": prompt, "n_ctx": window}
    return error


def _invalid_json_error(problem: str) -> Error:
    """Not JSON, on both routes: 500. nlohmann::json's words after its prefix ("syntax error while
    parsing object key - invalid literal; last read: '{no'; expected string literal") are not
    played: Python's parser names the problem instead."""
    return _error(500, "server_error", f"[json.exception.parse_error.101] parse error: {problem}")


def _missing_messages_error(raw: str) -> Error:
    """The chat route: 400, worded by whether `messages` is there."""
    if "messages" not in json.loads(raw):
        return _error(400, "invalid_request_error", "'messages' is required")
    return _error(400, "invalid_request_error", "Expected 'messages' to be an array")


def _messages_not_a_list_error(messages: Any) -> Error | None:
    """The Messages route: none is a 500; a string is taken as the prompt."""
    if messages is None:
        return _error(500, "server_error", "'messages' is required")
    if isinstance(messages, str):
        return None
    return _error(400, "invalid_request_error", "Expected 'messages' to be an array")


def _malformed_error(body: dict[str, Any]) -> Error | None:
    """A message llama-server cannot read, on both routes: content neither a string nor a list
    is a 400; a text part without `text` a 500 (the stack refuses both at once: 400)."""
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else []:
        content = message.get("content") if isinstance(message, dict) else None
        if content is not None and not isinstance(content, (str, list)):
            return _error(400, "invalid_request_error", "Expected 'content' to be a string or an array")
        for part in content if isinstance(content, list) else []:
            if isinstance(part, dict) and part.get("type") == "text" and "text" not in part:
                return _error(
                    500,
                    "server_error",
                    "Failed to parse messages: [json.exception.out_of_range.403] key 'text' not found",
                )
    return None


def _thinking_off(body: dict[str, Any]) -> bool:
    """Qwen's template switch, on both routes; `thinking: {type: disabled}` is ignored."""
    kwargs = body.get("chat_template_kwargs")
    return isinstance(kwargs, dict) and kwargs.get("enable_thinking") is False


def _messages_usage(prompt: int, cached: int, output: int) -> dict[str, Any]:
    """input_tokens leaves out the prompt read from the cache (cache_read_input_tokens)."""
    return {"cache_read_input_tokens": cached, "input_tokens": prompt - cached, "output_tokens": output}


PROVIDER = Provider(
    name="llamacpp",
    prefix="llamacpp-",
    profile={"thinking": True},
    missing_messages_error=_missing_messages_error,
    malformed_error=_malformed_error,
    invalid_json_error=_invalid_json_error,
    window_counts_completion=False,
    context_error=_context_error,
    thinking_off=_thinking_off,
    # prompt_tokens counts the cached tokens; their number always comes, 0 included.
    cache_usage=lambda prompt, cached: {"prompt_tokens_details": {"cached_tokens": cached}},
    messages_not_a_list_error=_messages_not_a_list_error,
    messages_invalid_json_error=_invalid_json_error,
    messages_thinking_off=_thinking_off,
    messages_content_error=lambda body, quirks: _malformed_error(body),
    messages_context_error=_context_error,
    messages_usage=_messages_usage,
    # The thinking block stays open while the answer streams; its signature is empty.
    late_thinking_stop=True,
    thinking_signature=lambda message_id, thinking: "",
    tool_input_at_start=False,
    # Without streaming, the call max_tokens cut comes with an empty input.
    messages_cut_input=lambda arguments: {},
)
