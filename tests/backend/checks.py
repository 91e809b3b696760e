"""What a provider refuses: the 400s of the chat and the Messages routes, in the order the
checks run. The wordings are the providers' (provider.Provider's hooks); the quirks a test
turns on anywhere borrow the wording of the provider they come from (Kimi's tool limit and
fixed temperature, vLLM's tool parser and tool-call arguments)."""

from __future__ import annotations

from typing import Any

from tests.backend.core import Error, Quirks, anthropic_error, anthropic_request_tokens, request_tokens
from tests.backend.provider import Provider
from tests.backend.providers import BY_NAME, kimi, openai, vllm


def _unanswered_calls(messages: list[Any]) -> tuple[int, list[str]] | None:
    """The first message standing where a tool message is due (its index), and the calls
    of the assistant message before it that are still unanswered; None if there is none."""
    for index, message in enumerate(messages):
        calls = message.get("tool_calls") if isinstance(message, dict) and message.get("role") == "assistant" else None
        if not isinstance(calls, list) or not calls:
            continue
        answered, after = set(), index + 1
        while after < len(messages) and isinstance(messages[after], dict) and messages[after].get("role") == "tool":
            answered.add(messages[after].get("tool_call_id"))
            after += 1
        missing = [str(call.get("id")) for call in calls if isinstance(call, dict) and call.get("id") not in answered]
        if missing and after < len(messages):
            return after, missing
    return None


def _content_part_error(body: dict[str, Any], raw: str, quirks: Quirks, provider: Provider) -> Error | None:
    """The first content part the provider cannot take."""
    for index, message in enumerate(body["messages"]):
        content = message.get("content") if isinstance(message, dict) else None
        for number, part in enumerate(content if isinstance(content, list) else []):
            kind = part.get("type") if isinstance(part, dict) else None
            if isinstance(kind, str) and provider.refuses_part(kind, quirks):
                return provider.content_part_error(kind, index, number, raw)
    return None


def _arguments_error(body: dict[str, Any], provider: Provider) -> Error | None:
    """The first earlier assistant tool call whose arguments the provider cannot use."""
    check = provider.arguments_error or vllm.arguments_error
    for message in body["messages"]:
        calls = message.get("tool_calls") if isinstance(message, dict) else None
        for call in calls if isinstance(calls, list) else []:
            function = call.get("function") if isinstance(call, dict) else None
            if error := check(function.get("arguments") if isinstance(function, dict) else None):
                return error
    return None


def check_request(body: dict[str, Any], raw: str, quirks: Quirks) -> Error | None:
    """The 400 the provider would answer this request with, or None."""
    provider = BY_NAME[quirks.provider]
    if quirks.strict_keys:
        unknown = [key for key in body if key not in provider.accepted_keys]
        if unknown:
            return provider.unknown_keys_error(unknown, raw)
    if not isinstance(body.get("messages"), list):
        return provider.missing_messages_error(raw)
    if error := provider.malformed_error(body):
        return error
    if error := _content_part_error(body, raw, quirks, provider):
        return error
    if provider.tool_order_error is not None and (found := _unanswered_calls(body["messages"])):
        return provider.tool_order_error(*found)
    if quirks.max_tool_call_id is not None and (error := openai.tool_call_id_error(body, quirks.max_tool_call_id)):
        return error
    if quirks.thinking and (error := provider.reasoning_error(body, raw, quirks)):
        return error
    if message := kimi.too_many_tools(body.get("tools"), quirks.max_tools):
        return kimi.moonshot_error(message)
    if not quirks.tool_parser and body.get("tools"):
        choice = body.get("tool_choice", "auto")
        if isinstance(choice, str) and (message := vllm.TOOL_PARSER_ERRORS.get(choice)):
            return vllm.vllm_error(message)
    if quirks.strict_arguments and (error := _arguments_error(body, provider)):
        return error
    fixed = quirks.fixed_temperature
    if fixed is not None and "temperature" in body and body["temperature"] != fixed:
        return kimi.moonshot_error(kimi.FIXED_TEMPERATURE.format(fixed))
    max_tokens = body.get("max_tokens")
    limit = quirks.max_tokens_limit
    if limit is not None and max_tokens is not None:
        in_range = isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and 1 <= max_tokens <= limit
        if not in_range:
            return provider.max_tokens_error(max_tokens, limit)
    if quirks.context_window is not None:
        prompt = request_tokens(body)
        completion = max_tokens if isinstance(max_tokens, int) else 0
        if (prompt + completion if provider.window_counts_completion else prompt) > quirks.context_window:
            return provider.context_error(quirks.context_window, prompt, completion)
    return None


def check_messages_request(body: dict[str, Any], quirks: Quirks) -> Error | None:
    """The 400 the provider's Anthropic-compatible endpoint would answer, or None."""
    provider = BY_NAME[quirks.provider]
    messages = body.get("messages")
    if not isinstance(messages, list) and (error := provider.messages_not_a_list_error(messages)):
        return error
    max_tokens = body.get("max_tokens")
    limit = quirks.max_tokens_limit
    if limit is not None and (error := provider.messages_max_tokens_error(max_tokens, limit)):
        return error
    if message := kimi.too_many_tools(body.get("tools"), quirks.max_tools):
        return anthropic_error(message)
    if error := provider.messages_content_error(body, quirks):
        return error
    if quirks.context_window is not None:
        prompt = anthropic_request_tokens(body)
        completion = max_tokens if isinstance(max_tokens, int) else 0
        if (prompt + completion if provider.window_counts_completion else prompt) > quirks.context_window:
            return provider.messages_context_error(quirks.context_window, prompt, completion)
    return None
