"""Response patches as pure code: usage that Claude Code can count on, a stream
for every streaming request, and errors in Anthropic's shape.

Claude Code reads `usage` from `message_start` and `message_delta` to know how
full its context is; LiteLLM sends zeros there (or null, or nothing) whenever
the backend does not report usage, and an OpenAI-shaped error reaches the user
raw. Nothing here knows about mitmproxy: bytes and dicts in, bytes and dicts out.
"""

import dataclasses
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from addons.errors.anthropic import (
    STATUS_BY_TYPE,
    error_body,
    error_payload,
    is_anthropic_error,
    prompt_too_long_message,
)
from addons.messages.think_tags import ThinkTagSplitter
from addons.messages.tokens import count_text
from addons.wire.json_codec import from_json
from addons.wire.sse import MAX_EVENT_BYTES, SSEDecoder, SSEEvent, encode_event, json_data, parse_event, replace_data

CACHE_USAGE_FIELDS = ("cache_creation_input_tokens", "cache_read_input_tokens")
# System prompt and tools (estimated tokens) below which a reported input count is never
# taken for LiteLLM's stand-in (is_substitute_input).
MIN_FIXED_TOKENS = 128

CONTENT_BLOCK_EVENTS = frozenset({"content_block_start", "content_block_delta", "content_block_stop"})
# Event types of Anthropic's Messages stream. A data-only event whose JSON has
# one of these types gets its `event:` line: the SDKs skip unnamed events.
STREAM_EVENT_TYPES = frozenset(
    {
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
        "ping",
        "error",
    }
)

TRUNCATED_STREAM_MESSAGE = "upstream stream ended before message_stop"

logger = logging.getLogger(__name__)


def _reported(value: Any) -> int | None:
    """A token count the backend really reported: a positive number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return None
    return int(value)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# --- usage -----------------------------------------------------------------------


def is_substitute_input(usage: dict[str, Any], input_estimate: int, fixed_estimate: int) -> bool:
    """Whether the reported input count is LiteLLM's stand-in rather than the backend's.

    When a backend reports no usage, LiteLLM 1.108.7 puts in a count of its own
    that leaves out the system prompt and the tool schemas (measured: 12 input
    tokens for a request the backend counted as 328). Our estimate of what went
    upstream is `input_estimate`, of which `fixed_estimate` is the system prompt,
    the tools and the request's overhead. A backend's own count (its input plus
    the cached parts) comes near the whole estimate; LiteLLM's, counted with
    the same cl100k encoding, near the estimate without the fixed part. A
    figure closer to the second, below input_estimate - fixed_estimate / 2, is
    taken for LiteLLM's. Below MIN_FIXED_TOKENS of system prompt and tools the
    two lie too close to tell apart (and to matter): the figure is kept.
    """
    reported = _reported(usage.get("input_tokens"))
    if reported is None or fixed_estimate < MIN_FIXED_TOKENS:
        return False
    cached = sum(_reported(usage.get(field)) or 0 for field in CACHE_USAGE_FIELDS)
    return reported + cached < input_estimate - fixed_estimate / 2


def complete_usage(
    usage: Any, input_estimate: int, output_estimate: int | None, fixed_estimate: int = 0
) -> tuple[dict[str, Any], list[str]]:
    """`usage` with integer input, output and cache counts, and the fields it filled.

    input_tokens: reported, else `input_estimate` (no prompt has zero tokens,
    so zero means "not reported"); LiteLLM's stand-in count is replaced too
    (is_substitute_input). output_tokens: reported, else `output_estimate`;
    with None, any non-negative int stays (message_start comes before the
    output). Cache counts: 0 when not an int. The backend's own figures are
    never replaced.
    """
    result = dict(usage) if isinstance(usage, dict) else {}
    filled: list[str] = []
    if is_substitute_input(result, input_estimate, fixed_estimate):
        filled.append(
            f"input_tokens={input_estimate} for LiteLLM's count of the messages alone ({result['input_tokens']})"
        )
        result["input_tokens"] = input_estimate
    elif _reported(result.get("input_tokens")) is None:
        result["input_tokens"] = input_estimate
        filled.append(f"input_tokens={input_estimate}")
    if output_estimate is not None and _reported(result.get("output_tokens")) is None:
        result["output_tokens"] = output_estimate
        filled.append(f"output_tokens={output_estimate}")
    for field in ("output_tokens", *CACHE_USAGE_FIELDS):
        if not _is_count(result.get(field)):
            result[field] = _reported(result.get(field)) or 0
            filled.append(f"{field}={result[field]}")
    return result, filled


def _filled(where: str, fields: list[str]) -> list[str]:
    """One change note per patched event."""
    return [f"{where}: filled usage {', '.join(fields)}"] if fields else []


def content_text(blocks: Any) -> str:
    """The generated text of content blocks, as the output-token estimate sees it."""
    parts: list[str] = []
    for block in blocks if isinstance(blocks, list) else ():
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            parts.append(str(block.get("text") or ""))
        elif kind == "thinking":
            parts.append(str(block.get("thinking") or ""))
        elif kind in ("tool_use", "server_tool_use"):
            parts.append(json.dumps(block.get("input") or {}, ensure_ascii=False))
    return "".join(parts)


def is_message(value: Any) -> bool:
    return isinstance(value, dict) and value.get("type") == "message" and isinstance(value.get("content"), list)


def fill_message_usage(message: dict[str, Any], input_estimate: int, fixed_estimate: int = 0) -> list[str]:
    """Complete `message["usage"]` of a non-streaming message in place; returns the changes."""
    output_estimate = count_text(content_text(message.get("content")))
    message["usage"], filled = complete_usage(message.get("usage"), input_estimate, output_estimate, fixed_estimate)
    return _filled("message", filled)


def fill_thinking_signatures(message: dict[str, Any]) -> list[str]:
    """Give thinking blocks without a string signature an empty one, in place.

    LiteLLM writes `"signature": null` for reasoning a Chat Completions backend
    returned (it has no signature); Anthropic's schema has a string there."""
    unsigned = [
        block
        for block in message.get("content") or ()
        if isinstance(block, dict) and block.get("type") == "thinking" and not isinstance(block.get("signature"), str)
    ]
    for block in unsigned:
        block["signature"] = ""
    return [f"thinking signature set to empty x{len(unsigned)}"] if unsigned else []


# --- JSON message -> event stream -------------------------------------------------


def message_to_sse_events(message: dict[str, Any]) -> bytes:
    """The events Anthropic streams for `message` (give it complete usage first)."""
    usage = message["usage"] if isinstance(message.get("usage"), dict) else {}
    # message_start carries the message before any output: no content, no stop yet.
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = {**usage, "output_tokens": 0}
    events = [encode_event("message_start", json_data({"type": "message_start", "message": start}))]
    for index, block in enumerate(message.get("content") or []):
        for name, payload in _block_events(block):
            events.append(encode_event(name, json_data({"type": name, "index": index, **payload})))
    delta = {"stop_reason": message.get("stop_reason"), "stop_sequence": message.get("stop_sequence")}
    events.append(encode_event("message_delta", json_data({"type": "message_delta", "delta": delta, "usage": usage})))
    events.append(encode_event("message_stop", json_data({"type": "message_stop"})))
    return b"".join(events)


def _block_events(block: Any) -> list[tuple[str, dict[str, Any]]]:
    """(event name, payload without type and index) for one content block."""
    kind = block.get("type") if isinstance(block, dict) else None
    if kind == "text":
        start = {**block, "text": ""}
        deltas = [{"type": "text_delta", "text": block.get("text") or ""}]
    elif kind in ("tool_use", "server_tool_use"):
        start = {**block, "input": {}}
        arguments = json.dumps(block.get("input") or {}, ensure_ascii=False)
        deltas = [{"type": "input_json_delta", "partial_json": arguments}]
    elif kind == "thinking":
        start = {**block, "thinking": "", "signature": ""}
        deltas = [{"type": "thinking_delta", "thinking": block.get("thinking") or ""}]
        if block.get("signature"):
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
    else:
        # redacted_thinking, tool results and newer kinds come whole in the start event.
        start, deltas = block, []
    return [
        ("content_block_start", {"content_block": start}),
        *(("content_block_delta", {"delta": delta}) for delta in deltas),
        ("content_block_stop", {}),
    ]


# --- the stream patcher ----------------------------------------------------------


class StreamPatcher:
    """Patches an Anthropic event stream as it passes.

    feed() returns the bytes ready to go on (b"" while an event is still
    incomplete); finish() returns the rest. Only message_start, message_delta,
    malformed or refusal error events (explain_refusal) and unnamed events are
    rewritten; every other byte goes through as it came. content_block_delta data is kept aside unparsed
    and read only if the backend reports no output count.

    A stream that started a message and ends with neither message_stop nor an
    error event gets an `overloaded_error` event appended, so the client
    retries instead of taking a truncated answer for a whole one.
    """

    def __init__(
        self,
        input_tokens_estimate: int = 0,
        changes: list[str] | None = None,
        max_event_bytes: int = MAX_EVENT_BYTES,
        fixed_tokens_estimate: int = 0,
        refusal: "RefusalContext | None" = None,
        think_tags: bool = False,
    ) -> None:
        self.input_estimate = input_tokens_estimate
        self.refusal = refusal  # named when an error event is a refusal (explain_refusal)
        self.fixed_estimate = fixed_tokens_estimate
        self.changes: list[str] = changes if changes is not None else []
        self.message_started = False
        self.message_stopped = False
        self.error_seen = False
        self._decoder = SSEDecoder(max_event_bytes)
        self._deltas: list[bytes] = []
        self._reported_input: int | None = None
        self._named_events = False
        self._oversized_noted = False
        # Reasoning inside <think> tags in the text, sent on as thinking blocks (addons/messages/think_tags.py).
        self._splitter = ThinkTagSplitter() if think_tags else None

    def feed(self, chunk: bytes) -> bytes:
        out = b"".join([self._patch_or_pass(event) for event in self._decoder.feed(chunk)])
        if self._decoder.in_oversized_event and not self._oversized_noted:
            self._oversized_noted = True
            self.changes.append(f"an event over {self._decoder.max_event_bytes} bytes passed on unpatched")
        return out

    def finish(self) -> bytes:
        # Cut inside an event already passed on: end it so the error below parses.
        cut_open = self._decoder.in_oversized_event
        events, rest = self._decoder.finish()
        out = [self._patch_or_pass(event) for event in events]
        if rest:
            if (event := _leftover_event(rest)) is not None:
                out.append(self._patch_or_pass(event))
            elif self._truncated():
                # Half an event of a cut stream: the client would choke on it
                # before it got to the error event below.
                self.changes.append(f"dropped {len(rest)} bytes of an unfinished event")
            else:
                out.append(rest)
        if self._truncated():
            self.error_seen = True
            self.changes.append("stream ended without message_stop: appended an overloaded_error event")
            error = encode_event("error", json_data(error_payload("overloaded_error", TRUNCATED_STREAM_MESSAGE)))
            out.append(b"\n\n" + error if cut_open else error)
        return b"".join(out)

    def _truncated(self) -> bool:
        return self.message_started and not (self.message_stopped or self.error_seen)

    def _patch_or_pass(self, event: SSEEvent) -> bytes:
        try:
            return self._patch(event)
        except Exception:  # a patching bug must not cost the client an event
            logger.exception("patching a %s event failed; passed it through unchanged", event.event)
            return event.raw

    def _patch(self, event: SSEEvent) -> bytes:
        name = event.event
        if self._splitter is not None and name in CONTENT_BLOCK_EVENTS:
            return self._split(event, self._splitter, name)
        if name == "content_block_delta":  # the hot path: nearly every event
            if event.data is not None:
                self._deltas.append(event.data)
            return event.raw
        if name is None:
            return self._patch_unnamed(event)
        if name == "message_start":
            self.message_started = True
            return self._rewrite(event, self._patch_message_start)
        if name == "message_delta":
            return self._rewrite(event, self._patch_message_delta)
        if name == "message_stop":
            self.message_stopped = True
        elif name == "error":
            self.error_seen = True
            return self._rewrite_error(event)
        return event.raw

    def _split(self, event: SSEEvent, splitter: ThinkTagSplitter, event_name: str) -> bytes:
        """A content block event through the <think> splitter: the events it gives in its place."""
        try:
            payload = from_json(event.data) if event.data is not None else None
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            return event.raw
        noticed = splitter.split
        out = []
        for name, data in splitter.feed(event_name, payload):
            encoded = json_data(data)
            if name == "content_block_delta":
                self._deltas.append(encoded)
            out.append(encode_event(name, encoded))
        if splitter.split and not noticed:
            self.changes.append("reasoning inside <think> tags sent as a thinking block")
        return b"".join(out)

    def _patch_unnamed(self, event: SSEEvent) -> bytes:
        """Data without an `event:` line: named after its JSON type, if it has one."""
        if event.data is None or not event.data.lstrip().startswith(b"{"):
            return event.raw  # comments, keep-alives, `[DONE]`
        try:
            kind = from_json(event.data).get("type")
        except (ValueError, AttributeError):
            return event.raw
        if kind not in STREAM_EVENT_TYPES:
            return event.raw
        if not self._named_events:
            self._named_events = True
            self.changes.append("added missing `event:` lines")
        return self._patch(parse_event(replace_data(event, event.data, name=kind)))

    def _rewrite(self, event: SSEEvent, patch) -> bytes:
        """Apply `patch` to the event's JSON object; re-encode only if it changed something."""
        try:
            payload = from_json(event.data) if event.data is not None else None
        except ValueError:
            return event.raw
        if not isinstance(payload, dict) or not (changes := patch(payload)):
            return event.raw
        self.changes.extend(changes)
        return replace_data(event, json_data(payload))

    def _rewrite_error(self, event: SSEEvent) -> bytes:
        """An error event stays where it is, in Anthropic's shape."""
        try:
            payload = from_json(event.data) if event.data is not None else None
        except ValueError:
            payload = None
        text = (event.data or b"").decode("utf-8", "replace")
        status, error_type, message = classify_error(None, payload, text, refusal=self.refusal)
        if _kept_as_it_came(payload, status, message):
            return event.raw
        self.changes.append(f"error event reshaped to {error_type}")
        data = json_data(error_payload(error_type, message))
        return replace_data(event, data) if event.data is not None else encode_event("error", data)

    def _patch_message_start(self, payload: dict[str, Any]) -> list[str]:
        message = payload.get("message")
        if not isinstance(message, dict):
            return []
        usage = message.get("usage")
        message["usage"], filled = complete_usage(usage, self.input_estimate, None, self.fixed_estimate)
        if isinstance(usage, dict) and _reported(usage.get("input_tokens")) is not None:
            self._reported_input = message["usage"]["input_tokens"]
        return _filled("message_start", filled)

    def _patch_message_delta(self, payload: dict[str, Any]) -> list[str]:
        """output_tokens always; input_tokens when the key is there without a
        figure, or when message_start had none either (an absent key keeps the
        client's message_start figure)."""
        usage = dict(payload["usage"]) if isinstance(payload.get("usage"), dict) else {}
        filled = []
        if _reported(usage.get("output_tokens")) is None:
            usage["output_tokens"] = self._output_estimate()
            filled.append(f"output_tokens={usage['output_tokens']}")
        if is_substitute_input(usage, self.input_estimate, self.fixed_estimate):
            substitute, usage["input_tokens"] = usage["input_tokens"], self._reported_input or self.input_estimate
            filled.append(
                f"input_tokens={usage['input_tokens']} for LiteLLM's count of the messages alone ({substitute})"
            )
        elif _reported(usage.get("input_tokens")) is None and ("input_tokens" in usage or self._reported_input is None):
            usage["input_tokens"] = self._reported_input or self.input_estimate
            filled.append(f"input_tokens={usage['input_tokens']}")
        payload["usage"] = usage
        return _filled("message_delta", filled)

    def _output_estimate(self) -> int:
        """Tokens of the text, thinking and tool input streamed so far."""
        parts: list[str] = []
        for data in self._deltas:
            try:
                delta = from_json(data).get("delta")
            except (ValueError, AttributeError):
                continue
            if isinstance(delta, dict):
                value = delta.get("text") or delta.get("partial_json") or delta.get("thinking")
                if isinstance(value, str):
                    parts.append(value)
        return count_text("".join(parts))


def _leftover_event(rest: bytes) -> SSEEvent | None:
    """The stream's last bytes as an event, if only its empty line is missing
    (its data is whole JSON); None for half an event or for no event at all."""
    event = parse_event(rest)
    if event.data is None:
        return None
    try:
        from_json(event.data)
    except ValueError:
        return None
    ending = b"\n" if rest.endswith((b"\r", b"\n")) else b"\n\n"
    return parse_event(rest + ending)


# --- errors ----------------------------------------------------------------------

# Every provider's words for a prompt over the window (read 2026-11-26): OpenAI and DeepSeek,
# Qwen "Range of input length should be [1, N]", Anthropic, TGI; Kimi "Your request exceeded
# model token limit: N (requested: M)" and "Input token length too long"
# (platform.kimi.ai/docs/api/errors); GLM "Prompt exceeds max length" and, on the Coding Plan,
# "tokens in request more than max tokens allowed" (openclaw/openclaw#111744); MiniMax "context
# window exceeds limit (2013)" (MiniMax-AI/MiniMax-M2#119); vLLM "However, the model's context
# length is only N tokens" (vllm/renderers/params.py); llama-server "exceeds the available
# context size (N tokens)"; Ollama "the prompt is longer than the context length".
_CONTEXT_ERROR = re.compile(
    r"context_length_exceeded|maximum context length|context[ _]?window[ _]?exceed"
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
_NO_KEY_DATABASE = re.compile(r"no connected db", re.IGNORECASE)
# LiteLLM's refusals of the caller's key (proxy/auth, 1.108.7): "Authentication Error, Invalid proxy
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
# What the backend objected to, as providers word it, and the policy setting that avoids it; the
# first that matches wins (a serde "unknown variant `image_url`" is about images, not a key).
_REFUSAL_HINTS = (
    # DeepSeek: "The reasoning_content in the thinking mode must be passed back to the API."; Kimi:
    # "thinking is enabled but reasoning_content is missing in assistant tool call message at index 2".
    (
        re.compile(r"reasoning_content\b.*(?:passed back|missing)|content\[\]\.thinking", re.IGNORECASE),
        "Set models.{key}.thinking.require_reasoning: true in {policy}.",
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
    model, policy_file, policy_key = dataclasses.astuple(refusal or RefusalContext())
    words = _LITELLM_SUFFIX.sub("", _LITELLM_PREFIX.sub("", message)) or message
    refused = f"{model or 'the backend'} refused the request: {words}"
    hint = next((hint for pattern, hint in _REFUSAL_HINTS if pattern.search(words)), None) or _parameter_hint(words)
    if hint is None:
        return refused
    policy = policy_file or "a policy file (stabilizer run --policy)"
    return f"{refused.rstrip('. ')}. {hint.format(key=policy_key or model or '<model>', policy=policy)}"


def _kept_as_it_came(payload: Any, status: int, message: str) -> bool:
    """An Anthropic-shaped upstream error goes on untouched unless its message was changed
    for Claude Code: a context error reworded, a refusal explained."""
    return is_anthropic_error(payload) and (payload["error"]["message"] == message or not _is_refusal(status))


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
    explain_refusal, naming what `refusal` says.
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
    if _kept_as_it_came(payload, new_status, message):
        return None
    return new_status, error_body(error_type, message)


def _html_title(html: str) -> str | None:
    match = re.search(r"<title>(.*?)</title>", html, re.IGNORECASE | re.DOTALL)
    return " ".join(match.group(1).split()) or None if match else None
