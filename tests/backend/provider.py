"""The provider interface: what makes one provider's gateway differ from another's.

A `Provider` is data plus hooks that the generic code (checks.py, render.py,
server.py) calls instead of asking which provider it serves. On the chat route
its defaults are OpenAI's API, which every provider here copies (OpenAI's
accepted keys and error wordings, its chunk shapes); on the Messages route, no
check beyond the common ones. A provider module (tests/backend/providers/) sets
only what its gateway does differently, with the source beside each value.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from typing import Any

from tests.backend.core import Error, Quirks, anthropic_error, type_disabled

# OpenAI's own Chat Completions parameters (used when a test turns strict_keys
# on for the plain or the Qwen profile).
OPENAI_KEYS = (
    "messages",
    "model",
    "audio",
    "frequency_penalty",
    "function_call",
    "functions",
    "logit_bias",
    "logprobs",
    "max_completion_tokens",
    "max_tokens",
    "metadata",
    "modalities",
    "n",
    "parallel_tool_calls",
    "prediction",
    "presence_penalty",
    "prompt_cache_key",
    "reasoning_effort",
    "response_format",
    "safety_identifier",
    "seed",
    "service_tier",
    "stop",
    "store",
    "stream",
    "stream_options",
    "temperature",
    "tool_choice",
    "tools",
    "top_logprobs",
    "top_p",
    "user",
    "verbosity",
    "web_search_options",
)

# An assistant message's tool calls must be answered by the tool messages right after it:
# `tool, user, tool` leaves a call unanswered. OpenAI's wording, with the ids and the
# offending message's role as `param` (https://github.com/router-for-me/CLIProxyAPI/issues/2798,
# read 2026-11-26; how several ids are joined is not shown there). DeepSeek, Qwen and Kimi
# word it after OpenAI (their modules); no source was found for the others, which are left
# without the check.
TOOL_MESSAGES_DUE = (
    "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'."
)
TOOL_IDS_MISSING = " The following tool_call_ids did not have response messages: {}"


def openai_error(message: str, param: str | None = None, code: str | None = None) -> Error:
    """OpenAI's envelope; Ollama's compatibility layer writes the same (its openai.NewError,
    https://github.com/ollama/ollama/blob/main/openai/openai.go, read 2026-11-26)."""
    return Error(400, {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}})


def unknown_keys_message(unknown: list[str]) -> str:
    noun = "argument" if len(unknown) == 1 else "arguments"
    return f"Unrecognized request {noun} supplied: {', '.join(unknown)}"


def context_length_message(window: int, prompt: int, completion: int) -> str:
    return (
        f"This model's maximum context length is {window} tokens. However, you requested "
        f"{prompt + completion} tokens ({prompt} in the messages, {completion} in the completion). "
        "Please reduce the length of the messages or completion."
    )


def _unknown_keys_error(unknown: list[str], raw: str) -> Error:
    return openai_error(unknown_keys_message(unknown))


def _missing_messages_error(raw: str) -> Error:
    return openai_error("Missing required parameter: 'messages'.", param="messages", code="missing_required_parameter")


def _invalid_json_error(problem: str) -> Error:
    return openai_error(
        "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
        "your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not "
        "valid JSON.)"
    )


def _max_tokens_error(value: Any, limit: int) -> Error:
    return openai_error(
        f"max_tokens is too large: {value}. This model supports at most {limit} completion tokens, "
        f"whereas you provided {value}.",
        param="max_tokens",
        code="invalid_value",
    )


def _context_error(window: int, prompt: int, completion: int) -> Error | None:
    return openai_error(
        context_length_message(window, prompt, completion), param="messages", code="context_length_exceeded"
    )


def _refuses_part(kind: str, quirks: Quirks) -> bool:
    return kind == "image_url" and not quirks.images


def _content_part_error(kind: str, index: int, number: int, raw: str) -> Error:
    """OpenAI's wording for an image sent to a text-only model (browser-use/web-ui#274). LiteLLM
    1.108.7 and 1.108.14 send an Anthropic `document` as an `image_url` part (`data:application/pdf;base64,...`,
    its anthropic pass_through adapter), so a PDF from Claude Code meets the image rule."""
    return openai_error(
        "Invalid content type. image_url is only supported by certain models.",
        param=f"messages.[{index}].content.[{number}].type",
    )


def _no_error(*_: Any) -> Error | None:
    return None


def _messages_field_required(messages: Any) -> Error | None:
    return anthropic_error("messages: Field required")


def _messages_usage(prompt: int, cached: int, output: int) -> dict[str, Any]:
    return {"input_tokens": prompt, "output_tokens": output}


def _cached_tokens_when_any(prompt: int, cached: int) -> dict[str, Any]:
    return {"prompt_tokens_details": {"cached_tokens": cached}} if cached else {}


def _argument_fragment(index: int, fragment: str) -> dict[str, Any]:
    return {"index": index, "function": {"arguments": fragment}}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Provider:
    """One provider's gateway: data, and hooks that are plain functions (see the module)."""

    name: str
    # The model-name prefix (lower case) that picks this profile; LiteLLM strips its own
    # (`openai/`, `moonshot/`...) first. None: the profile of every other name.
    prefix: str | None = None
    # The profile's Quirks fields, and model-specific ones on top by name prefix (lower
    # case; every matching prefix applies, the longer last).
    profile: dict[str, Any] = dataclasses.field(default_factory=dict)
    model_quirks: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    # -- the chat route's checks (checks.check_request), in the order they run
    accepted_keys: tuple[str, ...] = OPENAI_KEYS  # with strict_keys
    unknown_keys_error: Callable[[list[str], str], Error] = _unknown_keys_error  # (unknown, raw body)
    missing_messages_error: Callable[[str], Error] = _missing_messages_error  # (raw body), `messages` not a list
    malformed_error: Callable[[dict[str, Any]], Error | None] = _no_error  # (body) a message it cannot read
    invalid_json_error: Callable[[str], Error] = _invalid_json_error  # (the parser's problem)
    refuses_part: Callable[[str, Quirks], bool] = _refuses_part  # (a content part's type, quirks)
    content_part_error: Callable[[str, int, int, str], Error] = _content_part_error  # (type, message, part, raw)
    # (the index of the message standing where a tool message is due, the unanswered ids); None: no check
    tool_order_error: Callable[[int, list[str]], Error] | None = None
    # The thinking-mode checks of a thinking profile: (body, raw body, quirks).
    reasoning_error: Callable[[dict[str, Any], str, Quirks], Error | None] = _no_error
    # With strict_arguments, for each earlier tool call's arguments; None: vLLM's check.
    arguments_error: Callable[[Any], Error | None] | None = None
    max_tokens_error: Callable[[Any, int], Error] = _max_tokens_error  # (value, limit), outside [1, limit]
    # Whether the window bounds prompt + max_tokens (else the prompt alone).
    window_counts_completion: bool = True
    context_error: Callable[[int, int, int], Error | None] = _context_error  # (window, prompt, completion), over it

    # -- thinking
    # Whether the request turns the reasoning off, when the model lets it (`always_thinks`).
    thinking_off: Callable[[dict[str, Any]], bool] = type_disabled
    # The fields of a chat message or delta that carry (a piece of) the reasoning: (body, piece);
    # {}: the reasoning goes inside the content instead, as `reasoning_in_content` writes it.
    reasoning_fields: Callable[[dict[str, Any], str], dict[str, Any]] = lambda body, piece: {"reasoning_content": piece}
    reasoning_in_content: Callable[[str, str], str] = lambda reasoning, text: text  # (reasoning, answer)

    # -- how the chat route writes an answer (render.Completion)
    completion_id: Callable[[], str] = lambda: f"chatcmpl-{uuid.uuid4().hex}"
    # The id of a tool call it writes: (request body, the call's index in the answer, tool name).
    call_id: Callable[[dict[str, Any], int, str], str] = lambda body, index, name: f"call_{uuid.uuid4().hex[:24]}"
    fingerprint: str | None = "fp_standin_prod"
    # The prompt-cache fields of `usage`: (prompt tokens, cached tokens).
    cache_usage: Callable[[int, int], dict[str, Any]] = _cached_tokens_when_any
    null_content_with_calls: bool = False  # `content: null` beside tool calls and no text (JSON body)
    usage_null_on_every_chunk: bool = False  # `"usage": null` on each chunk even without include_usage
    argument_fragment: Callable[[int, str], dict[str, Any]] = _argument_fragment  # (call index, fragment)
    empty_content_at_finish: bool = False  # the finish chunk's delta is `{"content": ""}`, not `{}`
    usage_on_finish_chunk: bool = False  # usage rides on the finish chunk, with or without include_usage

    # -- the Anthropic Messages route (checks.check_messages_request, render.MessagesCompletion)
    messages_not_a_list_error: Callable[[Any], Error | None] = _messages_field_required  # (the `messages` value)
    # A body that is not JSON: (the parser's problem); None: the chat route's wording in Anthropic's 400.
    messages_invalid_json_error: Callable[[str], Error] | None = None
    messages_thinking_off: Callable[[dict[str, Any]], bool] = type_disabled
    messages_max_tokens_error: Callable[[Any, int], Error | None] = _no_error  # (value, limit)
    messages_content_error: Callable[[dict[str, Any], Quirks], Error | None] = _no_error  # (body, quirks)
    messages_context_error: Callable[[int, int, int], Error | None] = _no_error  # (window, prompt, completion), over it
    zero_usage_at_start: bool = False  # message_start's usage zero, the counts in the last message_delta
    # The id of a tool_use block it writes: (request body, index, tool name); DeepSeek's form by default.
    messages_call_id: Callable[[dict[str, Any], int, str], str] = (
        lambda body, index, name: f"call_{index:02d}_{uuid.uuid4().hex[:24]}"
    )
    messages_usage: Callable[[int, int, int], dict[str, Any]] = _messages_usage  # (prompt, cached, output tokens)
    late_thinking_stop: bool = False  # a thinking block's signature_delta and stop come after the other blocks' deltas
    tool_input_at_start: bool = True  # a tool_use's content_block_start carries `input: {}`
    # The input of the tool_use max_tokens cut, in a whole (non-streamed) answer: (its arguments as
    # scripted, the cut string); by default that string as it is.
    messages_cut_input: Callable[[Any], Any] = lambda arguments: arguments
    # The signature of a thinking block it writes: (message id, thinking); DeepSeek's is the message id.
    thinking_signature: Callable[[str, str], str] = lambda message_id, thinking: message_id
