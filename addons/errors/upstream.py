"""Upstream errors in Anthropic's shape: what each provider's wording means, and what Claude Code is shown.

A context-length error in any provider's words becomes the "prompt is too long"
sentence Claude Code acts on; a backend's refusal is explained (who refused, the
backend's own words, the policy setting that avoids it); everything else keeps
its meaning under Anthropic's error type for its status. Plain data in and out.
"""

import dataclasses
import json
import re
from dataclasses import dataclass
from typing import Any

from addons import CHAT_COMPLETIONS_SETTING
from addons.errors.anthropic import STATUS_BY_TYPE, error_body, is_anthropic_error, prompt_too_long_message
from addons.wire.json_codec import from_json

# Every provider's words for a prompt over the window (read 2026-11-26): OpenAI and DeepSeek,
# Qwen "Range of input length should be [1, N]", Anthropic, TGI; Kimi "Your request exceeded
# model token limit: N (requested: M)" and "Input token length too long"
# (platform.kimi.ai/docs/api/errors); GLM "Prompt exceeds max length" and, on the Coding Plan,
# "tokens in request more than max tokens allowed" (openclaw/openclaw#111744); MiniMax "context
# window exceeds limit (2013)" (MiniMax-AI/MiniMax-M2#119); vLLM "However, the model's context
# length is only N tokens" (vllm/renderers/params.py); llama-server "exceeds the available
# context size (N tokens)"; Ollama "the prompt is longer than the context length".
_CONTEXT_ERROR = re.compile(
    r"context_length_exceeded|maximum context length|context[ _]window[ _]exceed"
    r"|range of input length should be|input length is too long|prompt is too long"
    r"|exceeds? (?:the )?(?:model'?s? )?(?:maximum |available )?context (?:length|window|size)"
    r"|exceeded model token limit|input token length too long|prompt exceeds max length"
    r"|tokens in request more than max tokens allowed|context length is only \d+"
    r"|prompt is longer than the context length",
    re.IGNORECASE,
)
# The model's limit, in the wordings above.
_CONTEXT_LIMIT = (
    re.compile(r"maximum context length is (\d+)", re.IGNORECASE),
    re.compile(r"range of input length should be \[\s*\d+\s*,\s*(\d+)\s*\]", re.IGNORECASE),
    re.compile(r"tokens > (\d+) maximum", re.IGNORECASE),
    re.compile(r"must be <= (\d+)", re.IGNORECASE),
    re.compile(r"exceeded model token limit\s*:\s*(\d+)", re.IGNORECASE),
    re.compile(r"maximum input length of (\d+) tokens", re.IGNORECASE),
    re.compile(r"available context size \((\d+) tokens\)", re.IGNORECASE),
)
# The request's size, total first: Claude Code compares it with the limit.
_REQUEST_TOKENS = (
    re.compile(r"for a total of (?:at least )?(\d+) tokens", re.IGNORECASE),
    re.compile(r"you requested (\d+) tokens", re.IGNORECASE),
    re.compile(r"prompt is too long: (\d+) tokens", re.IGNORECASE),
    re.compile(r"\(requested: (\d+)\)", re.IGNORECASE),
    re.compile(r"you passed (\d+) input tokens", re.IGNORECASE),
    re.compile(r"request \((\d+) tokens\) exceeds", re.IGNORECASE),
    re.compile(
        r"(?:request|prompt|messages?) (?:has|contains|resulted in) (?:at least )?(\d+) (?:input )?tokens",
        re.IGNORECASE,
    ),
)
# A backend's own range for max_tokens: DeepSeek "the valid range of max_tokens is [1, 8192]",
# Qwen "Range of max_tokens should be [1, 8192]", GLM "The max_tokens parameter is illegal.：
# 限制数值范围[1,8192]", OpenAI "This model supports at most 8192 completion tokens".
_MAX_TOKENS_LIMIT = (
    re.compile(r"\bmax_(?:completion_)?tokens\b[^\[\]]*\[\s*\d+\s*,\s*(\d+)\s*\]", re.IGNORECASE),
    re.compile(r"supports at most (\d+) completion tokens", re.IGNORECASE),
)
_NO_KEY_DATABASE = re.compile(r"no connected db", re.IGNORECASE)
# LiteLLM's refusals of the caller's key (proxy/auth, 1.108.7 and 1.108.14): "Authentication Error, Invalid proxy
# server token passed", "No api key passed in.", expired or blocked keys, and "No connected db.".
_KEY_REFUSAL = re.compile(
    r"authentication error|proxy server token|no api key passed|malformed api key|expired key|key is blocked|"
    + _NO_KEY_DATABASE.pattern,
    re.IGNORECASE,
)
# 5xx wordings meaning "backend unreachable or busy": overloaded, so the client retries.
_UNAVAILABLE = re.compile(
    r"apiconnectionerror|connection (?:error|refused|reset)|service unavailable|overloaded|no deployments available",
    re.IGNORECASE,
)
# LiteLLM's wrapping around the backend's words: "litellm.BadRequestError: OpenAIException - " before,
# its router's "LiteLLM: model group 'x' failed with the error above. ..." (or "Received Model Group=x
# Available Model Group Fallbacks=None") after. The user needs the backend's sentence, not the chain.
_LITELLM_PREFIX = re.compile(r"^(?:(?:litellm\.)?\w+(?:Error|Exception)(?::| -)\s*)+")
_LITELLM_SUFFIX = re.compile(r"\s*(?:LiteLLM: model group|Received Model Group=|LiteLLM Retried:).*$")
# DeepSeek: "The reasoning_content in the thinking mode must be passed back to the API." (on its
# Anthropic-compatible endpoint "The `content[].thinking` ..."); Kimi: "thinking is enabled but
# reasoning_content is missing in assistant tool call message at index 2".
_REASONING_REFUSAL = re.compile(r"reasoning_content\b.*(?:passed back|missing)|content\[\]\.thinking", re.IGNORECASE)
# The same refusal when require_reasoning is set already: the stabilizer gave every turn reasoning.
_REASONING_SENT_HINT = (
    "models.{key}.thinking.require_reasoning is already true in {policy}, so every assistant turn went with "
    "reasoning, yet the backend wants more: please report it; /clear starts the session afresh."
)
# Anthropic: "messages.1.content.0: Invalid `signature` in `thinking` block".
_SIGNATURE_REFUSAL = re.compile(r"invalid `?signature`? in `?thinking`? block", re.IGNORECASE)
# What the backend objected to, as providers word it, and the policy setting that avoids it; the
# first that matches wins (a serde "unknown variant `image_url`" is about images, not a key).
_REFUSAL_HINTS = (
    (_REASONING_REFUSAL, "Set models.{key}.thinking.require_reasoning: true in {policy}."),
    # Another model's thinking, to a backend that verifies signatures.
    (
        _SIGNATURE_REFUSAL,
        "Set models.{key}.thinking.verifies_signatures: true in {policy} (other models' thinking then never "
        "reaches it).",
    ),
    # Tool-use ids another model wrote (addons/request/tool_ids.py): Anthropic "messages.1.content.1.tool_use.id:
    # String should match pattern '^[a-zA-Z0-9_-]+$'"; OpenAI "Invalid 'messages[2].tool_calls[0].id': string too
    # long"; Mistral "Tool call id was abc123 but must be a-z, A-Z, 0-9, with a length of 9.".
    (
        re.compile(
            r"tool_use\.id: string should match pattern|tool_calls\[\d+\]\.id'?: string too long|tool call id was",
            re.IGNORECASE,
        ),
        "Set models.{key}.tool_ids to the backend's rule (anthropic, openai or mistral) in {policy}.",
    ),
    # DeepSeek: "Invalid max_tokens value, the valid range of max_tokens is [1, 393216]".
    (
        re.compile(
            r"\bmax_(?:completion_|output_)?tokens\b.*(?:range|too large|at most|maximum|must be|less than|exceed)",
            re.IGNORECASE,
        ),
        "Set models.{key}.max_output_tokens to the backend's limit in {policy}.",
    ),
    # Kimi: "tools length must be less than or equal to 128"; OpenAI: "Invalid 'tools': array too long.
    # Expected an array with maximum length 128".
    (
        re.compile(r"\btools\b.*(?:\b128\b|at most|maximum|exceed|too many)|too many tools", re.IGNORECASE),
        "Set models.{key}.max_tools to the backend's limit in {policy}.",
    ),
    # DeepSeek: "messages[3]: unknown variant `image_url`, expected `text`"; "does not support image input".
    (
        re.compile(r"image|vision|multimodal", re.IGNORECASE),
        "Set models.{key}.accepted_block_types without image in {policy} (the stabilizer then replaces images "
        "with a note), or models.{key}.vision_model to send turns with images to a model that reads them.",
    ),
    (
        re.compile(r"\bdocuments?\b|\bpdf\b|[`'\"]file[`'\"]|\bfile (?:content|part|input)", re.IGNORECASE),
        "Set models.{key}.accepted_block_types without document in {policy} "
        "(the stabilizer then replaces documents with a note).",
    ),
)
_UNKNOWN_PARAMETER = re.compile(
    r"unknown (?:field|variant|parameter)|unrecogni[sz]ed|extra (?:fields|inputs) (?:are )?not permitted"
    r"|unsupported parameter",
    re.IGNORECASE,
)
# serde behind axum (DeepSeek) puts the JSON path before the complaint: none for a top-level field
# ("target type: unknown field `foo`"), the key for its value ("tool_choice: unknown variant `any`"),
# a nested path for what accepted_keys cannot reach ("messages[3]: unknown variant `x`").
_SERDE_UNKNOWN = re.compile(r"target type: (?:(\S+): )?unknown (?:field|variant) `(\w+)`")
# OpenAI: "Unrecognized request argument(s) supplied: foo, bar"; "Unsupported parameter: 'foo' is not supported".
_NAMED_PARAMETER = re.compile(r"(?:supplied|parameter):\s*[`'\"]?(\w+(?:, \w+)*)", re.IGNORECASE)
# Client errors a policy setting may avoid; 401/403/404/429 are about keys, routes and quotas.
_NOT_REFUSALS = frozenset({401, 403, 404, 429})
# A backend's 404 for the path LiteLLM called, not for a model ("The model `x` does not exist"):
# on a Messages turn, the Responses API that LiteLLM calls for an `openai/` model unless
# litellm_settings says otherwise. Worded "Not found: /v1/responses" (OpenAI-style), {"detail":
# "Not Found"} (FastAPI: vLLM), "404 page not found" (Go: Ollama), "File Not Found" (llama-server).
_PATH_NOT_FOUND = re.compile(r"/responses\b|^(?!.*\bmodel\b).*\bnot found\b", re.IGNORECASE)
_RESPONSES_API_FIX = (
    "LiteLLM sends an openai/ model's turns to the Responses API (/responses), which most OpenAI-compatible "
    f"backends do not serve, unless its config has litellm_settings.{CHAT_COMPLETIONS_SETTING}: true; "
    "add it and restart LiteLLM"
)
# Anthropic's own 400 that Claude Code parses to retry with a smaller max_tokens: its words must stay.
_CLIENT_READS = re.compile(r"input length and `?max_tokens`? exceed context limit")
# Anthropic's error type for a status; 5xx are sorted out in classify_error.
_TYPE_BY_STATUS = {status: error_type for error_type, status in STATUS_BY_TYPE.items() if status not in (500, 529)}
_MAX_MESSAGE_CHARS = 2000


def _first_number(patterns: tuple[re.Pattern[str], ...], text: str) -> int | None:
    for pattern in patterns:
        if match := pattern.search(text):
            return int(match.group(1))
    return None


def upstream_error_text(payload: Any, body_text: str = "") -> tuple[str, str]:
    """(message, text to search) of an error body in whatever shape it came:
    OpenAI/LiteLLM `{"error": {"message", "type", "code"}}`, `{"error": "..."}`,
    FastAPI `{"detail": ...}`, `{"message": ...}`, or plain text."""
    message: Any = None
    details: list[str] = []
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict):
            message = error.get("message")
            details = [str(error[key]) for key in ("type", "code") if error.get(key) is not None]
        elif isinstance(error, str):
            message = error
        if not message:
            message = next((payload[key] for key in ("message", "detail", "msg") if payload.get(key)), None)
        if isinstance(message, dict):
            return upstream_error_text(message, body_text)
    elif payload is not None:
        message = payload
    if not message:
        message = body_text
    if not isinstance(message, str):
        message = json.dumps(message, ensure_ascii=False)
    message = " ".join(message.split())[:_MAX_MESSAGE_CHARS]
    return message, " ".join([message, *details])


def _is_refusal(status: int) -> bool:
    return 400 <= status < 500 and status not in _NOT_REFUSALS


@dataclass(frozen=True)
class RefusalContext:
    """Who refused a request, and where the setting that avoids it goes (explain_refusal)."""

    model: str | None = None  # the name Claude Code sent
    policy_file: str | None = None  # "" or None: the built-in defaults are in use
    # The entry under `models` that applies (the provider's model id behind `model`,
    # addons/config/routes.py), else `model`.
    policy_key: str | None = None
    reasoning_required: bool = False  # that entry's thinking.require_reasoning
    signatures_verified: bool = False  # whether other models' thinking is kept from it (verifies_signatures)


def _explained(status: int, message: str, refusal: RefusalContext | None) -> str:
    """`message`, explained when it is a refusal that Claude Code does not act on by itself."""
    if not _is_refusal(status) or _CLIENT_READS.search(message):
        return message
    return explain_refusal(message, refusal)


def _parameter_hint(message: str) -> str | None:
    """The accepted_keys hint for a top-level key the backend does not know, naming it when the message does."""
    if serde := _SERDE_UNKNOWN.search(message):
        path, name = serde.groups()
        if path is not None and not path.isidentifier():
            return None  # deeper than a top-level key: accepted_keys cannot help
        key = path or name
    elif _UNKNOWN_PARAMETER.search(message):
        key = named.group(1) if (named := _NAMED_PARAMETER.search(message)) else "it"
    else:
        return None
    return f"Remove {key} from models.{{key}}.accepted_keys in {{policy}}."


def explain_refusal(message: str, refusal: RefusalContext | None = None) -> str:
    """What Claude Code shows for a backend's client error: who refused, the backend's own
    words without LiteLLM's wrapping, and the policy setting that avoids it when the words
    match a known cause."""
    model, policy_file, policy_key, reasoning_required, signatures_verified = dataclasses.astuple(
        refusal or RefusalContext()
    )
    words = _LITELLM_SUFFIX.sub("", _LITELLM_PREFIX.sub("", message)) or message
    refused = f"{model or 'the backend'} refused the request: {words}"
    hint = next((hint for pattern, hint in _REFUSAL_HINTS if pattern.search(words)), None) or _parameter_hint(words)
    if reasoning_required and _REASONING_REFUSAL.search(words):
        hint = _REASONING_SENT_HINT
    elif signatures_verified and _SIGNATURE_REFUSAL.search(words):
        hint = None  # the setting is in effect already: no hint is better than a wrong one
    if hint is None:
        return refused
    policy = policy_file or "a policy file (stabilizer run --policy)"
    return f"{refused.rstrip('. ')}. {hint.format(key=policy_key or model or '<model>', policy=policy)}"


def _responses_api_explained(message: str, model: str) -> str | None:
    """A backend's 404 for a Messages turn as what it likely means: LiteLLM called the Responses
    API (its choice for an `openai/` model without the setting), which the backend lacks; or None."""
    words = _LITELLM_SUFFIX.sub("", _LITELLM_PREFIX.sub("", message)) or message
    if not _PATH_NOT_FOUND.search(words):
        return None
    return f"{model} refused the request: {words.rstrip('. ')}. {_RESPONSES_API_FIX}"


def stated_limit(status: int, body: bytes) -> tuple[str, int] | None:
    """The limit a backend's 400 states, as the policy setting it bounds: ("max_output_tokens", N)
    for its range of max_tokens, ("context_window", N) for a context-length error naming the
    window; None for any other answer."""
    if status != 400:
        return None
    text = body.decode("utf-8", "replace")
    try:
        payload = from_json(text) if text else None
    except ValueError:
        payload = None
    searchable = upstream_error_text(payload, text)[1]
    if _CONTEXT_ERROR.search(searchable):
        window = _first_number(_CONTEXT_LIMIT, searchable)
        return ("context_window", window) if window else None
    if limit := _first_number(_MAX_TOKENS_LIMIT, searchable):
        return "max_output_tokens", limit
    return None


def kept_as_it_came(payload: Any, status: int, message: str) -> bool:
    """An Anthropic-shaped upstream error goes on untouched unless its message was changed
    for Claude Code: a context error reworded, a refusal or a turn's 404 explained."""
    if not is_anthropic_error(payload):
        return False
    explained = _is_refusal(status) or message.endswith(_RESPONSES_API_FIX)
    return payload["error"]["message"] == message or not explained


def is_key_refusal(body: bytes) -> bool:
    """Whether an upstream error is LiteLLM refusing the caller's key (not a provider's key it lacks)."""
    return bool(_KEY_REFUSAL.search(body.decode("utf-8", "replace")))


def classify_error(
    status: int | None,
    payload: Any,
    body_text: str = "",
    estimate: int = 0,
    context_window: int = 0,
    refusal: RefusalContext | None = None,
) -> tuple[int, str, str]:
    """(status, Anthropic error type, message) for an upstream error;
    `status` None for an error event inside a stream.

    A context-length error in any wording becomes 400 invalid_request_error
    "prompt is too long: N tokens > M maximum", the sentence Claude Code
    explains itself. N and M come from the upstream text when it has them,
    else from the request's estimate and the model's window. N is raised to
    M+1 when our tokenizer counted less than the backend's: the backend said
    the prompt is too long, and Claude Code reads the overflow from N - M.

    Any other client error (4xx but 401/403/404/429) is explained with
    explain_refusal, naming what `refusal` says; a 404 for a turn's path
    (not for a model) names the LiteLLM setting that keeps turns off the
    Responses API.
    """
    message, searchable = upstream_error_text(payload, body_text)
    if _NO_KEY_DATABASE.search(searchable):
        # LiteLLM's answer to a key that is not its master key when it has no database of virtual keys.
        return (
            401,
            "authentication_error",
            ("invalid API key: LiteLLM has no database of virtual keys, so only its master key is accepted"),
        )
    if _CONTEXT_ERROR.search(searchable):
        limit = _first_number(_CONTEXT_LIMIT, searchable) or context_window
        tokens = _first_number(_REQUEST_TOKENS, searchable) or estimate
        if limit and tokens:
            return 400, "invalid_request_error", prompt_too_long_message(max(tokens, limit + 1), limit)
        return 400, "invalid_request_error", f"prompt is too long ({message})"
    if status is None:
        error = payload.get("error") if isinstance(payload, dict) else None
        error_type = error.get("type") if isinstance(error, dict) else None
        error_type = error_type if error_type in STATUS_BY_TYPE else "api_error"
        status = STATUS_BY_TYPE[error_type]
        return status, error_type, _explained(status, message or "upstream sent an error event", refusal)
    message = message or f"upstream answered HTTP {status}"
    if status in (502, 503, 529) or (status >= 500 and _UNAVAILABLE.search(searchable)):
        return 529, "overloaded_error", message
    if status >= 500:
        return status, _TYPE_BY_STATUS.get(status, "api_error"), message
    if status == 404 and refusal is not None and refusal.model:  # a shaped turn (Messages, count_tokens)
        if explained := _responses_api_explained(message, refusal.model):
            return status, "not_found_error", explained
    return status, _TYPE_BY_STATUS.get(status, "invalid_request_error"), _explained(status, message, refusal)


def to_anthropic_error(
    status: int,
    body: bytes,
    content_type: str = "",
    estimate: int = 0,
    context_window: int = 0,
    refusal: RefusalContext | None = None,
) -> tuple[int, bytes] | None:
    """An upstream non-2xx answer as an Anthropic error: (status, body), or
    None when it already is one. An Anthropic-shaped error (LiteLLM's own for
    /v1/messages) is still rewritten when it is a context error whose message
    is not the one Claude Code recognises, or a refusal to explain."""
    text = body.decode("utf-8", "replace").strip()
    try:
        payload = from_json(text) if text else None
    except ValueError:
        payload = None
    if payload is None and "html" in content_type.lower():
        text = _html_title(text) or f"upstream answered HTTP {status} with an HTML page"
    new_status, error_type, message = classify_error(status, payload, text, estimate, context_window, refusal)
    if kept_as_it_came(payload, new_status, message):
        return None
    return new_status, error_body(error_type, message)


def _html_title(html: str) -> str | None:
    match = re.search(r"<title>(.*?)</title>", html, re.IGNORECASE | re.DOTALL)
    return " ".join(match.group(1).split()) or None if match else None
