"""What each provider refuses: the 400s of the chat and the Messages routes."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import Any

from tests.backend.core import (
    UNSET,
    Error,
    Quirks,
    after_key,
    anthropic_error,
    anthropic_request_tokens,
    compact,
    line_column,
    request_tokens,
    type_disabled,
)

# What DeepSeek documents for POST /chat/completions (V4: `thinking` and
# `reasoning_effort` among them; an Anthropic-shaped `thinking` such as
# {"type": "adaptive"} is refused by the value check below).
DEEPSEEK_KEYS = (
    "messages",
    "model",
    "frequency_penalty",
    "max_tokens",
    "presence_penalty",
    "response_format",
    "stop",
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    "tools",
    "tool_choice",
    "logprobs",
    "top_logprobs",
    "thinking",
    "reasoning_effort",
)
# DeepSeek's reasoning_effort values ("Thinking Mode" guide: minimal and low map
# to low, medium/high/xhigh to high, max/ultra to max).
DEEPSEEK_EFFORTS = ("minimal", "low", "medium", "high", "xhigh", "max", "ultra")
# Its Anthropic-compatible endpoint: the block types it takes (the guide's table; it
# refuses redacted_thinking and document), and its wording when a thinking block is
# not sent back (as quoted in hermes-agent#17992).
DEEPSEEK_ANTHROPIC_BLOCKS = (
    "text",
    "image",
    "tool_use",
    "tool_result",
    "thinking",
    "server_tool_use",
    "web_search_tool_result",
)
THINKING_MISSING = "The `content[].thinking` in the thinking mode must be passed back to the API."
# Its wording when an earlier turn comes back without its reasoning (as quoted in
# opencode#24083; some reports show the field name in backticks).
REASONING_MISSING = "The reasoning_content in the thinking mode must be passed back to the API."
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
ACCEPTED_KEYS = {"deepseek": DEEPSEEK_KEYS, "qwen": QWEN_KEYS}  # the others: OpenAI's set


# What turns a thinking profile's reasoning off, when the model lets it (`always_thinks`).
# DeepSeek, Kimi (`thinking: {"type": "disabled"}` via extra_body,
# https://platform.kimi.ai/docs/api/models-overview), GLM
# (https://docs.z.ai/guides/capabilities/thinking-mode): `thinking.type` "disabled".
# vLLM: `chat_template_kwargs.enable_thinking` false
# (https://docs.vllm.ai/en/stable/features/reasoning_outputs/). Ollama: `reasoning_effort`
# "none" maps to think false (https://docs.ollama.com/api/openai-compatibility).
# All read 2026-11-26. llama-server's switch is a server flag (`--reasoning off`): use the
# `thinking` quirk.
THINKING_OFF: dict[str, Callable[[dict[str, Any]], bool]] = {
    "vllm": lambda body: isinstance(body.get("chat_template_kwargs"), dict)
    and body["chat_template_kwargs"].get("enable_thinking") is False,
    "ollama": lambda body: body.get("reasoning_effort") == "none",
    "llamacpp": lambda body: False,
    # DashScope: `enable_thinking` false (https://www.alibabacloud.com/help/en/model-studio/deep-thinking,
    # read 2026-11-26); on by default from Qwen 3.5 on (as reported in BerriAI/litellm#40720).
    "qwen": lambda body: body.get("enable_thinking") is False,
}


def _deepseek_error(message: str) -> Error:
    return Error(
        400,
        {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_request_error",
            }
        },
    )


def _qwen_error(message: str) -> Error:
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


def _openai_error(message: str, param: str | None = None, code: str | None = None) -> Error:
    """OpenAI's envelope; Ollama's compatibility layer writes the same (its openai.NewError,
    https://github.com/ollama/ollama/blob/main/openai/openai.go, read 2026-11-26)."""
    return Error(400, {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}})


def _moonshot_error(message: str) -> Error:
    """Moonshot's envelope, `{"error": {"message", "type": "invalid_request_error"}}`
    (MoonshotAI/Kimi-K2#90, https://github.com/MoonshotAI/kimi-cli/issues/2011, read 2026-11-26)."""
    return Error(400, {"error": {"message": message, "type": "invalid_request_error"}})


def _zai_error(code: str, message: str) -> Error:
    """Z.ai's envelope, the code a string: `{"error":{"code":"1261","message":"Prompt exceeds max
    length"}}` (https://github.com/zeroclaw-labs/zeroclaw/issues/4124; codes:
    https://docs.z.ai/api-reference/api-code; read 2026-11-26)."""
    return Error(400, {"error": {"code": code, "message": message}})


def _minimax_error(message: str) -> Error:
    """MiniMax's OpenAI-route envelope (https://github.com/MiniMax-AI/MiniMax-M2/issues/119,
    https://github.com/lobehub/lobehub/pull/14814, read 2026-11-26)."""
    return Error(400, {"error": {"message": message, "type": "bad_request_error", "param": "", "code": None}})


def _vllm_error(message: str, param: str | None = None) -> Error:
    """vLLM's ErrorResponse for a 400 (vllm-project/vllm#43995, read 2026-11-26)."""
    return Error(400, {"error": {"message": message, "type": "BadRequestError", "param": param, "code": 400}})


def _unknown_keys_error(provider: str, unknown: list[str], raw: str) -> Error:
    if provider == "deepseek":
        expected = ", ".join(f"`{key}`" for key in DEEPSEEK_KEYS)
        line, column = after_key(raw, unknown[0])
        return _deepseek_error(
            "Failed to deserialize the JSON body into the target type: "
            f"unknown field `{unknown[0]}`, expected one of {expected} at line {line} column {column}"
        )
    noun = "argument" if len(unknown) == 1 else "arguments"
    message = f"Unrecognized request {noun} supplied: {', '.join(unknown)}"
    return _qwen_error(message) if provider == "qwen" else _openai_error(message)


def _max_tokens_error(provider: str, value: Any, limit: int) -> Error:
    if provider == "deepseek":
        return _deepseek_error(f"Invalid max_tokens value, the valid range of max_tokens is [1, {limit}]")
    if provider == "qwen":
        return _qwen_error(f"Range of max_tokens should be [1, {limit}]")
    if provider == "glm":
        # Seen through a relay, upstream HTTP 400 (https://github.com/diegosouzapw/OmniRoute/pull/4518, read
        # 2026-11-26); the code is the table's 1214 "Invalid ${field} parameter"
        # (https://docs.z.ai/api-reference/api-code, read 2026-11-26).
        return _zai_error("1214", f"The max_tokens parameter is illegal.：限制数值范围[1,{limit}]")
    return _openai_error(
        f"max_tokens is too large: {value}. This model supports at most {limit} completion tokens, "
        f"whereas you provided {value}.",
        param="max_tokens",
        code="invalid_value",
    )


# Profiles whose window bounds the prompt alone (the others: prompt + max_tokens).
# Qwen: "Range of input length" (QwenLM/qwen-code#98); GLM: "Prompt exceeds max length";
# llama-server: "request (N tokens) exceeds the available context size".
INPUT_ONLY_WINDOW = ("qwen", "glm", "llamacpp")


def _context_error(provider: str, window: int, prompt: int, completion: int) -> Error | None:
    if provider == "ollama":
        return None  # it drops history instead (`truncate_history`), then context shift cuts the rest
    if provider == "vllm":
        return _vllm_context_error(window, prompt, completion)
    requested = prompt if provider in INPUT_ONLY_WINDOW else prompt + completion
    if requested <= window:
        return None
    match provider:
        case "qwen":
            return _qwen_error(f"Range of input length should be [1, {window}]")
        case "glm":
            # The global API's live answer (https://github.com/openclaw/openclaw/pull/111744, read 2026-11-26).
            return _zai_error("1261", "Prompt exceeds max length")
        case "kimi":
            # "sum of input tokens and max_tokens exceeds the model's maximum length"
            # (https://platform.kimi.ai/docs/api/errors); the live wording as quoted in
            # https://github.com/MoonshotAI/kimi-cli/issues/2011. Read 2026-11-26.
            return _moonshot_error(
                f"Invalid request: Your request exceeded model token limit: {window} (requested: {requested})"
            )
        case "minimax":
            # Input + max_tokens over the window (https://github.com/MiniMax-AI/MiniMax-M2/issues/119, read 2026-11-26).
            return _minimax_error(MINIMAX_CONTEXT)
        case "llamacpp":
            # As captured by third parties quoting tools/server/server-context.cpp (not checked in source),
            # read 2026-11-26.
            return Error(
                400,
                {
                    "error": {
                        "code": 400,
                        "type": "exceed_context_size_error",
                        "n_prompt_tokens": prompt,
                        "n_ctx": window,
                        "message": f"request ({prompt} tokens) exceeds the available context size ({window} tokens), "
                        "try increasing it",
                    }
                },
            )
    message = (
        f"This model's maximum context length is {window} tokens. However, you requested "
        f"{prompt + completion} tokens ({prompt} in the messages, {completion} in the completion). "
        "Please reduce the length of the messages or completion."
    )
    if provider == "deepseek":
        return _deepseek_error(message)
    return _openai_error(message, param="messages", code="context_length_exceeded")


MINIMAX_CONTEXT = "invalid params, context window exceeds limit (2013)"


def _vllm_context_error(window: int, prompt: int, completion: int) -> Error | None:
    """vLLM's renderer (TokenizeParams in vllm/renderers/params.py,
    https://github.com/vllm-project/vllm/blob/017638d70159114c71e4c28cc95f54c3f7699079/vllm/renderers/params.py,
    read 2026-11-26): max_tokens alone over max_model_len, then the prompt over what is left
    (an unset max_tokens counts as 0). The missing space after the number is in the source."""
    if completion > window:
        return _vllm_error(
            f"max_tokens={completion}cannot be greater than max_model_len=max_total_tokens={window}. "
            "Please request fewer output tokens.",
            param="max_tokens",
        )
    if prompt <= window - completion:
        return None
    return _vllm_error(
        f"You passed {prompt} input tokens and requested {completion} output tokens. However, the model's "
        f"context length is only {window} tokens, resulting in a maximum input length of {window - completion} "
        "tokens. Please reduce the length of the input prompt.",
        param="input_tokens",
    )


def _missing_messages_error(provider: str, raw: str) -> Error:
    if provider == "deepseek":
        line, column = line_column(raw, len(raw))
        return _deepseek_error(
            f"Failed to deserialize the JSON body into the target type: missing field `messages` "
            f"at line {line} column {column}"
        )
    if provider == "qwen":
        return _qwen_error("Required parameter(s) missing or invalid, please check the request parameters.")
    return _openai_error("Missing required parameter: 'messages'.", param="messages", code="missing_required_parameter")


def invalid_json_error(provider: str, problem: str) -> Error:
    if provider == "deepseek":
        return _deepseek_error(f"Failed to parse the request body as JSON: {problem}")
    if provider == "qwen":
        return _qwen_error("Input should be a valid dictionary or instance of ChatCompletionRequest")
    return _openai_error(
        "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
        "your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not "
        "valid JSON.)"
    )


def thinks(body: dict[str, Any], quirks: Quirks) -> bool:
    """Whether a thinking backend reasons on this request: unless its switch (THINKING_OFF)
    says off and the model lets it (`always_thinks`). DeepSeek thinks even then when a
    `reasoning_effort` is sent (observed by others: the pair is answered as a thinking
    request, with the reasoning 400 below)."""
    if not quirks.thinking:
        return False
    if quirks.always_thinks or (quirks.provider == "deepseek" and "reasoning_effort" in body):
        return True
    return not THINKING_OFF.get(quirks.provider, type_disabled)(body)


def _thinking_error(body: dict[str, Any], raw: str) -> Error | None:
    """DeepSeek's thinking-mode checks: the switch's and the effort's values (serde's enum
    wording, as for its other fields); the round trip is `reasoning_missing`."""
    thinking = body.get("thinking", UNSET)
    if thinking is not UNSET and not (isinstance(thinking, dict) and thinking.get("type") in ("enabled", "disabled")):
        got = thinking.get("type") if isinstance(thinking, dict) else thinking
        line, column = after_key(raw, "type" if isinstance(thinking, dict) else "thinking")
        return _deepseek_error(
            "Failed to deserialize the JSON body into the target type: thinking.type: unknown variant "
            f"`{got}`, expected `enabled` or `disabled` at line {line} column {column}"
        )
    effort = body.get("reasoning_effort", UNSET)
    if effort is not UNSET and effort not in DEEPSEEK_EFFORTS:
        line, column = after_key(raw, "reasoning_effort")
        expected = ", ".join(f"`{name}`" for name in DEEPSEEK_EFFORTS)
        return _deepseek_error(
            "Failed to deserialize the JSON body into the target type: reasoning_effort: unknown variant "
            f"`{effort}`, expected one of {expected} at line {line} column {column}"
        )
    return None


def reasoning_missing(body: dict[str, Any], quirks: Quirks) -> bool:
    """DeepSeek's round trip: in a thinking request that carries tools, every earlier
    assistant turn must carry its reasoning_content (an empty string counts, a missing
    field does not), even one that called no tool."""
    if not (thinks(body, quirks) and body.get("tools")):
        return False
    return any(
        isinstance(message, dict)
        and message.get("role") == "assistant"
        and not isinstance(message.get("reasoning_content"), str)
        for message in body["messages"]
    )


# Kimi's round trip: in a thinking request (tools or not), an assistant message with
# tool_calls must carry its reasoning_content; N is that message's index in `messages`
# (https://www.kimi.com/code/docs/en/kimi-code/error-reference.html;
# https://github.com/MoonshotAI/kimi-agent-sdk/issues/169; read 2026-11-26).
KIMI_REASONING_MISSING = (
    "thinking is enabled but reasoning_content is missing in assistant tool call message at index {}"
)


def _kimi_reasoning_error(body: dict[str, Any], quirks: Quirks) -> Error | None:
    if not thinks(body, quirks):
        return None
    for index, message in enumerate(body["messages"]):
        if (
            isinstance(message, dict)
            and message.get("role") == "assistant"
            and message.get("tool_calls")
            and not isinstance(message.get("reasoning_content"), str)
        ):
            return _moonshot_error(KIMI_REASONING_MISSING.format(index))
    return None


def _content_part_error(body: dict[str, Any], raw: str, quirks: Quirks) -> Error | None:
    """The first content part the provider cannot take. DeepSeek's serde enum for parts
    has the one variant `text` (its wording: "messages[3]: unknown variant `image_url`,
    expected `text` at line 1 column 173667", ChatLunaLab/chatluna#867), so it refuses
    `file` too; the others take anything but, when `images` is off, `image_url` (OpenAI's
    wording for a text-only model, browser-use/web-ui#274). LiteLLM 1.108.7 sends an
    Anthropic `document` as an `image_url` part (`data:application/pdf;base64,...`, its
    anthropic pass_through adapter), so a PDF from Claude Code meets the image rule here."""
    deepseek = quirks.provider == "deepseek"
    for index, message in enumerate(body["messages"]):
        content = message.get("content") if isinstance(message, dict) else None
        for number, part in enumerate(content if isinstance(content, list) else []):
            kind = part.get("type") if isinstance(part, dict) else None
            refused = not quirks.images if kind == "image_url" else deepseek and kind != "text"
            if not (refused and isinstance(kind, str)):
                continue
            if quirks.provider == "glm":
                # Z.ai's code 1210 as quoted in https://github.com/TriDefender/zcode-api/pull/26 (read 2026-11-26).
                return _zai_error("1210", "messages.content.type 参数非法，取值范围 ['text']")
            if not deepseek:
                return _openai_error(
                    "Invalid content type. image_url is only supported by certain models.",
                    param=f"messages.[{index}].content.[{number}].type",
                )
            # serde stops just after the variant's name; the first such "type" in the body is this part's.
            match = re.search(rf'"type"\s*:\s*"{re.escape(kind)}"', raw)
            line, column = line_column(raw, match.end() if match else len(raw))
            return _deepseek_error(
                f"Failed to deserialize the JSON body into the target type: messages[{index}]: "
                f"unknown variant `{kind}`, expected `text` at line {line} column {column}"
            )
    return None


# An assistant message's tool calls must be answered by the tool messages right after it:
# `tool, user, tool` leaves a call unanswered. The providers' wordings (read 2026-11-26):
# DeepSeek, in its usual envelope (TurixAI/TuriX-CUA#15, 2026-03-03; BigPizzaV3/CodexPlusPlus#308);
# OpenAI, with the ids and the offending message's role as `param`
# (https://github.com/router-for-me/CLIProxyAPI/issues/2798; how several ids are joined is
# not shown there); DashScope, in double quotes, naming the message instead of the ids
# (QwenLM/qwen-code#606); Moonshot, in lower case (MoonshotAI/kimi-cli#2405). No source
# was found for the others, which are left without the check.
TOOL_MESSAGES_DUE = (
    "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'."
)
TOOL_IDS_MISSING = " The following tool_call_ids did not have response messages: {}"


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


def _tool_order_error(body: dict[str, Any], provider: str) -> Error | None:
    if provider not in ("deepseek", "openai", "qwen", "kimi") or not (found := _unanswered_calls(body["messages"])):
        return None
    index, missing = found
    if provider == "deepseek":
        return _deepseek_error(TOOL_MESSAGES_DUE + " (insufficient tool messages following tool_calls message)")
    if provider == "qwen":
        return _qwen_error(TOOL_MESSAGES_DUE.replace("'", '"') + TOOL_IDS_MISSING.format(f"message[{index}].role"))
    ids = TOOL_IDS_MISSING.format(", ".join(missing))
    if provider == "kimi":
        return _moonshot_error("a" + TOOL_MESSAGES_DUE[1:] + ids)
    return _openai_error(TOOL_MESSAGES_DUE + ids, param=f"messages.[{index}].role")


def _tools_error(tools: Any, limit: int | None) -> str | None:
    """Kimi refuses more than 128 tools; its wording as quoted in MoonshotAI/Kimi-K2#90
    (seen on its Anthropic route; assumed the same on the OpenAI one, in Moonshot's
    `{"error": {"message", "type"}}` shape)."""
    if limit is not None and isinstance(tools, list) and len(tools) > limit:
        return f"a max of {limit} tools can be supported"
    return None


# DashScope's wording for a replayed tool call whose arguments are not a JSON object
# (as quoted in HKUDS/nanobot#1487, qwen3.5-plus through LiteLLM).
ARGUMENTS_NOT_JSON = 'The "function.arguments" parameter of the code model must be in JSON format.'


def _arguments_error(body: dict[str, Any], provider: str) -> Error | None:
    """An earlier assistant tool call with unusable arguments. Qwen wants a JSON object.
    vLLM (the model for the other profiles) json.loads them and answers 400 with the
    decoder's message when that fails, `{"message": "Expecting ',' delimiter: line 1
    column 54 (char 53)", "type": "BadRequestError", "param": null, "code": 400}`
    (vllm-project/vllm#43995). Other JSON values are let through here (vLLM coerces `null`
    to {}; what it does with other non-objects varies by version)."""
    for message in body["messages"]:
        calls = message.get("tool_calls") if isinstance(message, dict) else None
        for call in calls if isinstance(calls, list) else []:
            function = call.get("function") if isinstance(call, dict) else None
            arguments = function.get("arguments") if isinstance(function, dict) else None
            try:
                parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
            except json.JSONDecodeError as error:
                if provider != "qwen":
                    return _vllm_error(str(error))
                parsed = None
            if provider == "qwen" and not isinstance(parsed, dict):
                return _qwen_error(ARGUMENTS_NOT_JSON)
    return None


# vLLM without a tool parser (vllm/renderers/online_renderer.py,
# https://github.com/vllm-project/vllm/blob/01063cd07bef167f37f6d25a96b1df7d97fe40eb/vllm/renderers/online_renderer.py,
# read 2026-11-26); tools without a tool_choice count as "auto" there.
TOOL_PARSER_ERRORS = {
    "auto": '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set',
    "required": 'tool_choice="required" requires --tool-call-parser to be set',
}
# Kimi K3's fixed temperature, as quoted in
# https://agent-zone.ai/knowledge/agent-tooling/moonshot-kimi-k2.6-operational-quirks/ and
# https://dev.to/aihubmix/kimi-k31-pro-migration-guide-five-400s-one-404-and-the-claude-code-codex-config-13k
# (read 2026-11-26).
FIXED_TEMPERATURE = "invalid temperature: only {:g} is allowed for this model"


def check_request(body: dict[str, Any], raw: str, quirks: Quirks) -> Error | None:
    """The 400 the provider would answer this request with, or None."""
    provider = quirks.provider
    if quirks.strict_keys:
        unknown = [key for key in body if key not in ACCEPTED_KEYS.get(provider, OPENAI_KEYS)]
        if unknown:
            return _unknown_keys_error(provider, unknown, raw)
    if not isinstance(body.get("messages"), list):
        return _missing_messages_error(provider, raw)
    if error := _content_part_error(body, raw, quirks):
        return error
    if error := _tool_order_error(body, provider):
        return error
    if quirks.thinking and provider == "deepseek":
        if error := _thinking_error(body, raw):
            return error
        if reasoning_missing(body, quirks):
            return _deepseek_error(REASONING_MISSING)
    if quirks.thinking and provider == "kimi" and (error := _kimi_reasoning_error(body, quirks)):
        return error
    if message := _tools_error(body.get("tools"), quirks.max_tools):
        return _moonshot_error(message)
    if not quirks.tool_parser and body.get("tools"):
        choice = body.get("tool_choice", "auto")
        if isinstance(choice, str) and (message := TOOL_PARSER_ERRORS.get(choice)):
            return _vllm_error(message)
    if quirks.strict_arguments and (error := _arguments_error(body, provider)):
        return error
    fixed = quirks.fixed_temperature
    if fixed is not None and "temperature" in body and body["temperature"] != fixed:
        return _moonshot_error(FIXED_TEMPERATURE.format(fixed))
    max_tokens = body.get("max_tokens")
    limit = quirks.max_tokens_limit
    if limit is not None and max_tokens is not None:
        in_range = isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and 1 <= max_tokens <= limit
        if not in_range:
            return _max_tokens_error(provider, max_tokens, limit)
    if quirks.context_window is not None:
        completion = max_tokens if isinstance(max_tokens, int) else 0
        return _context_error(provider, quirks.context_window, request_tokens(body), completion)
    return None


def fit_history(body: dict[str, Any], window: int, anthropic: bool = False) -> tuple[dict[str, Any], int]:
    """The request as a `truncate_history` profile feeds it to the model, and how many
    messages it dropped. Ollama's Anthropic and OpenAI layers call its chat handler with
    `truncate` unset, so both routes truncate (inferred from its code, read 2026-11-26)."""
    count = anthropic_request_tokens if anthropic else request_tokens
    kept, dropped = drop_oldest(body["messages"], lambda kept: count({**body, "messages": kept}) <= window)
    return {**body, "messages": kept}, dropped


def drop_oldest(messages: list[Any], fits: Callable[[list[Any]], bool]) -> tuple[list[Any], int]:
    """Ollama's chatPrompt (server/prompt.go, https://github.com/ollama/ollama, read 2026-11-26):
    from the first message on, try the system messages before index i plus messages[i:],
    and keep the first that fits; the last message always stays. Returns the kept
    messages and how many were dropped. Over the window even then, Ollama's default
    context shift cuts tokens instead of refusing, so the request is answered."""
    for start in range(len(messages)):
        system = [m for m in messages[:start] if isinstance(m, dict) and m.get("role") == "system"]
        kept = system + messages[start:]
        if fits(kept) or start == len(messages) - 1:
            return kept, start - len(system)
    return messages, 0


def anthropic_thinks(body: dict[str, Any], quirks: Quirks) -> bool:
    return quirks.thinking and (quirks.always_thinks or not type_disabled(body))


# The profiles whose Messages route is DeepSeek's (the plain one keeps it too): its block
# list, its thinking round trip and its max_tokens and context wordings. The others take
# any block and have no round trip there; their differences are below.
DEEPSEEK_MESSAGES = ("deepseek", "openai")


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


def _minimax_anthropic_error(message: str) -> Error:
    """MiniMax's /anthropic envelope (https://github.com/MiniMax-AI/MiniMax-M2/issues/119,
    https://github.com/lobehub/lobehub/pull/14814, read 2026-11-26)."""
    return Error(
        400,
        {
            "type": "error",
            "error": {"type": "bad_request_error", "message": message, "http_code": "400"},
            "request_id": uuid.uuid4().hex,
        },
    )


def check_messages_request(body: dict[str, Any], quirks: Quirks) -> Error | None:
    """The 400 the provider's Anthropic-compatible endpoint would answer, or None.
    Kimi: only its tool limit (a `document` wording was not found). MiniMax ignores
    `top_k`, `stop_sequences`, `service_tier`, `mcp_servers`, `context_management` and
    `container` ("This parameter will be ignored",
    https://platform.minimax.io/docs/api-reference/text-anthropic-api, read 2026-11-26), as
    every profile here ignores keys it does not know."""
    provider = quirks.provider
    deepseek = provider in DEEPSEEK_MESSAGES
    messages = body.get("messages")
    if not isinstance(messages, list):
        return anthropic_error("messages: Field required")
    max_tokens = body.get("max_tokens")
    limit = quirks.max_tokens_limit
    if limit is not None and deepseek and not (isinstance(max_tokens, int) and 1 <= max_tokens <= limit):
        return anthropic_error(f"Invalid max_tokens value, the valid range of max_tokens is [1, {limit}]")
    if limit is not None and provider == "qwen" and isinstance(max_tokens, int) and not 1 <= max_tokens <= limit:
        return _dashscope_stream_error(f"Range of max_tokens should be [1, {limit}]")
    if message := _tools_error(body.get("tools"), quirks.max_tools):
        return anthropic_error(message)
    for message in messages if deepseek else []:
        content = message.get("content") if isinstance(message, dict) else None
        for block in content if isinstance(content, list) else []:
            kind = block.get("type") if isinstance(block, dict) else None
            if kind not in DEEPSEEK_ANTHROPIC_BLOCKS:
                expected = ", ".join(f"`{name}`" for name in DEEPSEEK_ANTHROPIC_BLOCKS)
                return anthropic_error(
                    f"Failed to deserialize the JSON body into the target type: messages: unknown variant "
                    f"`{kind}`, expected one of {expected}"
                )
    if deepseek and anthropic_thinks(body, quirks) and body.get("tools"):
        for message in messages:
            content = message.get("content") if isinstance(message, dict) else None
            if (
                isinstance(message, dict)
                and message.get("role") == "assistant"
                and not (
                    isinstance(content, list)
                    and any(isinstance(b, dict) and b.get("type") == "thinking" for b in content)
                )
            ):
                return anthropic_error(THINKING_MISSING)
    if quirks.context_window is not None and provider in (*DEEPSEEK_MESSAGES, "minimax"):
        prompt = anthropic_request_tokens(body)
        completion = max_tokens if isinstance(max_tokens, int) else 0
        if prompt + completion > quirks.context_window:
            if provider == "minimax":
                return _minimax_anthropic_error(MINIMAX_CONTEXT)
            return anthropic_error(
                f"This model's maximum context length is {quirks.context_window} tokens. However, you requested "
                f"{prompt + completion} tokens ({prompt} in the messages, {completion} in the completion). "
                "Please reduce the length of the messages or completion."
            )
    return None
