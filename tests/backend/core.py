"""The stand-in's shared vocabulary: the profile fields (Quirks), the replies a test
scripts, what was received (Exchange), and how it counts tokens and writes JSON."""

from __future__ import annotations

import dataclasses
import json
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

from addons.messages.tokens import count_text


def type_disabled(body: dict[str, Any]) -> bool:
    """The common thinking switch: `thinking: {"type": "disabled"}`."""
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") == "disabled"


def thinks(body: dict[str, Any], quirks: Quirks, switched_off: Callable[[dict[str, Any]], bool]) -> bool:
    """Whether a thinking profile reasons on this request: unless its switch (the provider's
    `thinking_off`, or `messages_thinking_off` on the Messages route) says off and the model lets it
    (`always_thinks`)."""
    return quirks.thinking and (quirks.always_thinks or not switched_off(body))


USAGE_MODES = ("real", "null", "absent", "zero")
CHUNKING_MODES = ("normal", "odd")
LINE_ENDINGS = ("\n", "\r\n")


@dataclasses.dataclass(frozen=True)
class Quirks:
    """How the server behaves for one request.

    provider: the provider whose gateway it plays (one of providers.PROVIDERS;
        its hooks, provider.Provider, word the errors and shape the answers).
    usage: "real" counts, "zero" counts, "null" (`"usage": null`) or "absent"
        (no usage key, no usage chunk), placed where the provider places it.
    chunking: "normal" writes one SSE event per HTTP chunk; "odd" cuts the
        byte stream at awkward points (inside `data:`, inside the JSON,
        between \\r and \\n) and packs several events into one write.
    strict_keys: unknown top-level request keys -> 400.
    max_tokens_limit: `max_tokens` outside [1, limit] -> 400 (None: no check).
    context_window: tokens (see `request_tokens`). DeepSeek and plain OpenAI
        compare messages + max_tokens with it, Qwen the input alone (its
        "input length" limit). None: no check.
    line_ending: "\\n" or "\\r\\n" inside the SSE stream.
    keepalive: number of `: keep-alive` SSE comments (blank lines for a JSON
        body) sent before the answer, as DeepSeek does while a request queues.
    thinking: DeepSeek's thinking mode: on unless the request says
        `thinking: {"type": "disabled"}`; reasoning first, the round-trip rule.
    cached_share: the part of each prompt (0 to 1) reported as read from the
        provider's prompt cache, in OpenAI's `prompt_tokens_details.cached_tokens`
        and DeepSeek's `prompt_cache_hit_tokens` / `prompt_cache_miss_tokens`.
    images: `image_url` content parts are taken (False: 400, as for a text-only model).
    max_tools: more `tools` than this -> 400 (None: no check).
    strict_arguments: an assistant `tool_calls[].function.arguments` that is not
        a JSON object (Qwen) or not JSON at all (vLLM, the other profiles) -> 400.
    always_thinks: a thinking model that cannot be switched off: `thinking`
        disabled (or the provider's own switch, `thinking_off`) is ignored
        (kimi-k3*, glm-5.3*, MiniMax).
    fixed_temperature: a `temperature` other than this -> 400 (kimi-k3*; None: no check).
    max_tool_call_id: an earlier assistant `tool_calls[].id` longer than this -> 400, in
        OpenAI's wording (OpenAI's gpt-*: 40; None: no check).
    tool_parser: vLLM started with `--enable-auto-tool-choice --tool-call-parser`;
        False: a request with tools -> 400 (vLLM's wording).
    truncate_history: over `context_window`, drop the oldest non-system
        messages (the last one stays) instead of refusing, and record it in
        `Exchange.dropped_messages` (Ollama's default).
    """

    provider: str = "openai"
    usage: str = "real"
    chunking: str = "normal"
    strict_keys: bool = False
    max_tokens_limit: int | None = None
    context_window: int | None = None
    line_ending: str = "\n"
    keepalive: int = 0
    thinking: bool = False
    cached_share: float = 0.0
    images: bool = True
    max_tools: int | None = None
    strict_arguments: bool = False
    always_thinks: bool = False
    fixed_temperature: float | None = None
    max_tool_call_id: int | None = None
    tool_parser: bool = True
    truncate_history: bool = False

    def __post_init__(self) -> None:
        checks = (
            ("usage", USAGE_MODES),
            ("chunking", CHUNKING_MODES),
            ("line_ending", LINE_ENDINGS),
        )
        for name, allowed in checks:
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, not {getattr(self, name)!r}")
        if self.keepalive < 0:
            raise ValueError("keepalive must be >= 0")
        if not 0 <= self.cached_share <= 1:
            raise ValueError("cached_share must be from 0 to 1")


# --------------------------------------------------------------------------
# Replies a test can script.


@dataclasses.dataclass
class Text:
    """A plain answer, streamed as several content deltas. `reasoning`: what a
    thinking backend reasons first (None: a sentence of its own)."""

    text: str
    finish_reason: str = "stop"
    reasoning: str | None = None


@dataclasses.dataclass
class ToolCalls:
    """OpenAI `tool_calls`; each call's arguments JSON is streamed in several
    fragments after a first fragment carrying id, type and name. A `str`
    arguments value is sent verbatim (e.g. the Python-repr `{'path': 'a.txt'}`
    Qwen coder models sometimes write)."""

    calls: list[tuple[str, dict[str, Any] | str]]
    text: str = ""  # content streamed before the calls, as DeepSeek often does
    reasoning: str | None = None
    # "length": max_tokens cut the last call (give its arguments as the cut string): the chat
    # route ends with finish_reason "length", the Messages route with stop_reason "max_tokens",
    # as llama-server does (llama.cpp 1652066, measured 2026-12-06; vLLM says "tool_calls"
    # there instead: vllm-project/vllm#58228, read 2026-12-06). None: "tool_calls" / "tool_use".
    finish_reason: str | None = None


@dataclasses.dataclass
class Error:
    """An HTTP error answer; a dict body is sent as JSON."""

    status: int
    body: dict[str, Any] | str
    content_type: str = "application/json"
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class StallBeforeFirstByte:
    """Send nothing, not even the status line, until `until` is set; then
    answer with `then` (default answer when None). Released by reset()/stop()
    instead, the connection is closed without a byte. `reached` is set when
    the request has arrived and the stall began."""

    until: threading.Event | None = None
    then: Text | ToolCalls | Error | None = None
    reached: threading.Event = dataclasses.field(default_factory=threading.Event)


@dataclasses.dataclass
class StallMidStream:
    """Send the first `after_events` SSE events of `reply` (default answer
    when None), flush, set `reached`, hold until `until` is set, then send the
    rest. Released by reset()/stop() instead, the connection is closed. For a
    non-streaming request the JSON body is held after its first half.

    This is the ordering gate: StallMidStream(after_events=2, until=gate)
    holds the third event until the test has seen the second arrive."""

    after_events: int = 1
    until: threading.Event | None = None
    reply: Text | ToolCalls | None = None
    reached: threading.Event = dataclasses.field(default_factory=threading.Event)


@dataclasses.dataclass
class CloseMidEvent:
    """Send `after_events` whole events, then half of the next one, then
    close the socket (no terminating chunk). `reached` is set once closed."""

    after_events: int = 1
    reply: Text | ToolCalls | None = None
    reached: threading.Event = dataclasses.field(default_factory=threading.Event)


@dataclasses.dataclass
class EndlessEvent:
    """A 200 stream whose one event never ends: `data: {...` then filler
    bytes without a newline, until the client goes away, `max_bytes` or
    `max_seconds` is reached, or reset()/stop(); then the socket closes.
    `reached` is set after the first write, `ended` when it stops;
    `sent_bytes` counts what the socket accepted."""

    max_bytes: int = 8 * 1024 * 1024
    max_seconds: float = 30.0
    chunk_size: int = 16 * 1024
    reached: threading.Event = dataclasses.field(default_factory=threading.Event)
    ended: threading.Event = dataclasses.field(default_factory=threading.Event)
    sent_bytes: int = 0


@dataclasses.dataclass
class PacedStream:
    """A stream of `reply` (default answer when None) whose first event goes at once and
    each next one when `step` is released: the test paces it, event by event. Released by
    reset()/stop() instead, the connection is closed."""

    reply: Text | ToolCalls | None = None
    step: threading.Semaphore = dataclasses.field(default_factory=lambda: threading.Semaphore(0))


Reply = Text | ToolCalls | Error | StallBeforeFirstByte | StallMidStream | CloseMidEvent | EndlessEvent | PacedStream


@dataclasses.dataclass
class Exchange:
    """One HTTP request as received, and the status it was answered with
    (None while no status line was sent). `dropped_messages`: how many of its
    messages a `truncate_history` profile (Ollama) silently left out to fit
    its window; `body` stays what was received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON, or None when absent / not JSON
    status: int | None = None
    dropped_messages: int = 0


def message_texts(message: dict[str, Any]) -> Iterator[str]:
    content = message.get("content")
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                yield part["text"]
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            for key in ("name", "arguments"):
                if isinstance(function.get(key), str):
                    yield function[key]


def request_tokens(body: dict[str, Any]) -> int:
    """Prompt tokens as this server counts them: cl100k tokens of every text
    in the messages (string content, text parts, tool-call names and
    arguments) plus those of `json.dumps(tools)`. Limits and real usage use it."""
    messages = body.get("messages") if isinstance(body.get("messages"), list) else []
    total = sum(
        count_text(text) for message in messages if isinstance(message, dict) for text in message_texts(message)
    )
    if body.get("tools"):
        total += count_text(json.dumps(body["tools"]))
    return total


def last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return "".join(message_texts(message))
    return ""


def default_reasoning(body: dict[str, Any]) -> str:
    """What a thinking stand-in reasons when the test scripted nothing."""
    return f"The user wrote {len(last_user_text(body))} characters; I will answer them."


def default_reasoning_text(body: dict[str, Any]) -> str:
    """The same for a Messages request (its user turns hold blocks, not OpenAI parts)."""
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return f"The user wrote {sum(len(text) for text in anthropic_texts(message.get('content')))} characters."
    return "Nothing to answer yet."


def default_reply(body: dict[str, Any]) -> Text:
    quoted = last_user_text(body)
    if len(quoted) > 200:
        quoted = quoted[:200] + "..."
    return Text(f'You said: "{quoted}"')


def line_column(raw: str, offset: int) -> tuple[int, int]:
    return raw.count("\n", 0, offset) + 1, offset - (raw.rfind("\n", 0, offset) + 1)


def after_key(raw: str, key: str) -> tuple[int, int]:
    """Line and column just past `"key"` in the raw body, as serde reports
    them (first occurrence: good enough for an error message)."""
    match = re.search(rf'"{re.escape(key)}"\s*:', raw)
    return line_column(raw, match.start() + len(key) + 2 if match else len(raw))


UNSET = object()


def arguments_text(arguments: dict[str, Any] | str) -> str:
    """A scripted call's arguments as sent: a str verbatim, anything else as JSON."""
    return arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)


def compact(value: Any) -> str:
    """JSON the way the gateways write it: no spaces, UTF-8 kept."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def anthropic_error(message: str, kind: str = "invalid_request_error", status: int = 400) -> Error:
    return Error(status, {"type": "error", "error": {"type": kind, "message": message}})


def anthropic_texts(value: Any) -> Iterator[str]:
    """Every string in a system prompt, message content or tool list, for counting."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from anthropic_texts(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key in ("text", "thinking", "content", "name", "description"):
                yield from anthropic_texts(item)
            elif key in ("input", "input_schema"):
                yield json.dumps(item)


def anthropic_request_tokens(body: dict[str, Any]) -> int:
    """Prompt tokens of a Messages request as this server counts them (cl100k of its texts)."""
    return sum(count_text(text) for key in ("system", "messages", "tools") for text in anthropic_texts(body.get(key)))
