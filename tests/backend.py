"""Stand-in model provider for the integration tests.

Every integration test runs the real LiteLLM proxy, the real mitmdump and the
real Claude Code CLI against this server, so it reproduces what the providers'
gateways and the local servers really do, with their wording. The profile is
chosen per request from the `model` field, which LiteLLM sends without its own
prefix (`provider_for`). One line per profile (all sources read 2026-11-26; the
exact URL sits beside each behaviour in the code):

- deepseek (`deepseek*`): V4's "Thinking Mode" guide and error captures: strict keys,
  max_tokens [1, 393216], 1M window, reasoning_content and its round trip, usage on the finish chunk.
- qwen (`qwen*`): DashScope compatible-mode: max_tokens and input-length ranges, JSON tool
  arguments, usage only with include_usage (qwen-code#98, HKUDS/nanobot#1487, claude-code-router#1327).
- kimi (`kimi*`): Moonshot: thinks (k3 always), reasoning_content round trip with the message's
  index, token-limit and temperature wordings, 128 tools (platform.kimi.ai/docs/api/errors, kimi-cli#2011).
- glm (`glm*`): Z.ai: thinks (5.3 always), string-coded `{"error": {"code", "message"}}` errors, zero
  usage in the Anthropic message_start (docs.z.ai/api-reference/api-code, zai-org/GLM-5#139).
- minimax (`minimax*`, any case): always thinks, `<think>` in content unless `reasoning_split`, code 2013
  context errors (platform.minimax.io/docs/api-reference/text-openai-api, MiniMax-AI/MiniMax-M2#119).
- vllm (`vllm-*`): `reasoning` field, its renderer's context wording, the tool-parser flag
  (docs.vllm.ai/en/stable/features/reasoning_outputs, vllm renderers/params.py).
- ollama (`ollama-*`): `reasoning` field; silently drops the oldest messages to fit its window
  (docs.ollama.com/context-length, ollama server/prompt.go chatPrompt).
- llamacpp (`llamacpp-*`): reasoning_content; `exceed_context_size_error` past n_ctx
  (llama.cpp tools/server/README.md, third-party captures).
- openai (anything else): a permissive plain OpenAI server.

Tool messages: DeepSeek, Qwen, Kimi and the plain profile refuse an assistant
message whose tool calls are not all answered by the tool messages right after
it, each in its own words (`TOOL_MESSAGES_DUE`).

Content parts: DeepSeek takes only `text` (serde's "unknown variant `file`,
expected `text`"); `deepseek-v4-pro` takes no `image_url` either (DeepSeek
Models & Pricing; wording as quoted in ChatLunaLab/chatluna#867). The `images`
quirk refuses images elsewhere with OpenAI's wording (browser-use/web-ui#274),
or Z.ai's for glm-5.3. Qwen refuses an earlier assistant tool call whose
`function.arguments` is not a JSON object; the `strict_arguments` quirk turns
it on elsewhere (vLLM's wording, vllm-project/vllm#43995). The `max_tools`
quirk refuses more tools than Kimi takes (128; its wording as quoted in
MoonshotAI/Kimi-K2#90).

A test overrides the profile with `with backend.quirks(...)` (usage
null/absent/zero, odd chunking of the byte stream, CRLF line endings, limits)
and scripts the answers with `backend.script([...])` or `backend.responder`.
Stalls and broken streams are replies too; they end when `until` is set, on
`reset()` or on `stop()`, so a test can never hang on them.

The same server also answers `POST /v1/messages` the way DeepSeek's
Anthropic-compatible endpoint (https://api.deepseek.com/anthropic, its
"Anthropic API" guide) does, for LiteLLM's `anthropic/` provider: thinking
blocks first, signed with the message id (a UUID) through a `signature_delta`;
in a thinking request with tools every earlier assistant turn must bring its
thinking block back, or 400 "The `content[].thinking` in the thinking mode must
be passed back to the API."; `redacted_thinking` and `document` blocks are
refused; `budget_tokens`, `cache_control` and `top_k` are ignored. The other
thinking profiles think the same way there, with their own differences where
sourced (`check_messages_request`). `backend.messages_requests` lists what it
received.

Streams use HTTP/1.1 chunked transfer encoding on a kept-alive connection, as
the real gateways (behind nginx/envoy) do, one HTTP chunk per write.

Standalone: `python -m tests.backend --port 8000 [--provider deepseek]
[--quirk usage=null ...]`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import http.server
import itertools
import json
import logging
import random
import re
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from addons.messages.tokens import count_text

logger = logging.getLogger(__name__)

CHAT_PATHS = ("/v1/chat/completions", "/chat/completions")
MESSAGES_PATHS = ("/v1/messages",)
MODELS_PATHS = ("/v1/models", "/models")
PROVIDERS = ("deepseek", "qwen", "kimi", "glm", "minimax", "vllm", "ollama", "llamacpp", "openai")

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

# Where each profile writes its reasoning on the OpenAI route (default: reasoning_content).
# vLLM: "`reasoning` used to be called `reasoning_content`"
#   (https://docs.vllm.ai/en/stable/features/reasoning_outputs/, read 2026-11-26).
# Ollama: `Reasoning string json:"reasoning"` on message and delta
#   (https://github.com/ollama/ollama/blob/main/openai/openai.go, read 2026-11-26).
# MiniMax: `<think>` inside `content`, or with `reasoning_split: true` a `reasoning_details`
#   list (https://platform.minimax.io/docs/api-reference/text-openai-api, read 2026-11-26; see
#   `reasoning_field`).
REASONING_FIELDS = {"vllm": "reasoning", "ollama": "reasoning"}


def _type_disabled(body: dict[str, Any]) -> bool:
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") == "disabled"


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

USAGE_MODES = ("real", "null", "absent", "zero")
CHUNKING_MODES = ("normal", "odd")
LINE_ENDINGS = ("\n", "\r\n")

# A stall nobody releases ends on its own after this long: a forgotten
# Event must fail one test, not hang the session.
MAX_STALL_SECONDS = 120.0


@dataclasses.dataclass(frozen=True)
class Quirks:
    """How the server behaves for one request.

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
        disabled (or the profile's own switch, THINKING_OFF) is ignored
        (kimi-k3*, glm-5.3*, MiniMax).
    fixed_temperature: a `temperature` other than this -> 400 (kimi-k3*; None: no check).
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
    tool_parser: bool = True
    truncate_history: bool = False

    def __post_init__(self) -> None:
        checks = (
            ("provider", PROVIDERS),
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


PROFILES: dict[str, Quirks] = {
    # deepseek-flash and deepseek-v4-pro: 1M context, up to 384K output (393216), thinking by default.
    "deepseek": Quirks(
        provider="deepseek", strict_keys=True, max_tokens_limit=393216, context_window=1_000_000, thinking=True
    ),
    "qwen": Quirks(provider="qwen", max_tokens_limit=8192, context_window=129024, strict_arguments=True),
    # Kimi K2.6: 262,144 tokens, thinking on by default (https://platform.kimi.ai/docs/api/models-overview);
    # 128 tools (MoonshotAI/Kimi-K2#90); unknown top-level fields ignored ("verified live", third party:
    # https://docs.rs/synaps-engine/0.7.0/src/agent_engine/runtime/openai/catalog/kimi.rs.html). Read 2026-11-26.
    "kimi": Quirks(provider="kimi", thinking=True, context_window=262_144, max_tools=128),
    # GLM-5.x: max_tokens up to 131072 (https://github.com/diegosouzapw/OmniRoute/pull/4518); 1,048,576 tokens
    # for glm-5.3 (https://openrouter.ai/z-ai/glm-5.3); 5.2 thinks unless disabled
    # (https://docs.bigmodel.cn/cn/guide/capabilities/thinking-mode.md). Read 2026-11-26.
    "glm": Quirks(provider="glm", thinking=True, max_tokens_limit=131072, context_window=1_048_576),
    # MiniMax-M3: 1,000,000 tokens (https://platform.minimax.io/docs/api-reference/text-openai-api, read
    # 2026-11-26); thinks always (M2.x: "disabled ignored"; M3 takes `disabled` per the same docs, but the
    # profile keeps it on).
    "minimax": Quirks(provider="minimax", thinking=True, always_thinks=True, context_window=1_000_000),
    # Local servers running a reasoning model behind a reasoning parser. vLLM's window is --max-model-len
    # (the model's own when unset) and llama-server's -c (from the model): set context_window in a test.
    "vllm": Quirks(provider="vllm", thinking=True),
    # Ollama picks 4096 on CPU / under 24 GiB VRAM, 32768 for 24-48 GiB, 262144 above
    # (https://docs.ollama.com/context-length, read 2026-11-26): the profile takes the middle tier.
    "ollama": Quirks(provider="ollama", thinking=True, context_window=32768, truncate_history=True),
    "llamacpp": Quirks(provider="llamacpp", thinking=True),
    "openai": Quirks(provider="openai"),
}
# Model-specific defaults on top of the profile, by name prefix (lower case); every matching
# prefix applies, the longer last. DeepSeek documents no image input for v4-pro (DeepSeek Models &
# Pricing, read 2026-11-26).
MODEL_QUIRKS: dict[str, dict[str, Any]] = {
    "deepseek-v4-pro": {"images": False},
    # Qwen 3.7 / 3.8: 991,808 tokens in, 65,536 / 131,072 out (LiteLLM 1.108.7's model map, whose source is
    # https://www.alibabacloud.com/help/en/model-studio/models; read 2026-11-26).
    "qwen3.7": {"max_tokens_limit": 65_536, "context_window": 991_808, "thinking": True},
    "qwen3.8": {"max_tokens_limit": 131_072, "context_window": 991_808, "thinking": True},
    # K3 (and K3.1): 1,048,576 tokens, thinking always on
    # (https://docs.evolink.ai/en/api-manual/language-series/kimi-k3/kimi-k3-chat.md); temperature fixed at 1
    # (https://dev.to/aihubmix/kimi-k31-pro-migration-guide-five-400s-one-404-and-the-claude-code-codex-config-13k).
    # Read 2026-11-26.
    "kimi-k3": {"always_thinks": True, "fixed_temperature": 1.0, "context_window": 1_048_576},
    # glm-5.3: thinking only, text only; glm-5.3-flash takes images
    # (https://dev.to/aihubmix/glm-53-api-guide-always-on-thinking-3-effort-levels-and-the-support-matrix-1d8e,
    # https://runware.ai/docs/models/zai-glm-5-3-flash.md, read 2026-11-26).
    "glm-5.3": {"always_thinks": True, "images": False},
    "glm-5.3-flash": {"images": True},
    # MiniMax-M2.x: 204,800 tokens (https://platform.minimax.io/docs/api-reference/text-openai-api, read 2026-11-26).
    "minimax-m2": {"context_window": 204_800},
}

# Model-name prefixes of each profile; LiteLLM strips its own (`openai/`, `moonshot/`...) first.
PROVIDER_PREFIXES = (
    ("deepseek", "deepseek"),
    ("qwen", "qwen"),
    ("kimi", "kimi"),
    ("glm", "glm"),
    ("minimax", "minimax"),
    ("vllm-", "vllm"),
    ("ollama-", "ollama"),
    ("llamacpp-", "llamacpp"),
)


def provider_for(model: Any) -> str:
    name = model.lower() if isinstance(model, str) else ""
    return next((provider for prefix, provider in PROVIDER_PREFIXES if name.startswith(prefix)), "openai")


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


# --------------------------------------------------------------------------
# Pure core: token counting, validation, rendering.


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
            return f"The user wrote {sum(len(text) for text in _anthropic_texts(message.get('content')))} characters."
    return "Nothing to answer yet."


def default_reply(body: dict[str, Any]) -> Text:
    quoted = last_user_text(body)
    if len(quoted) > 200:
        quoted = quoted[:200] + "..."
    return Text(f'You said: "{quoted}"')


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


def _line_column(raw: str, offset: int) -> tuple[int, int]:
    return raw.count("\n", 0, offset) + 1, offset - (raw.rfind("\n", 0, offset) + 1)


def _after_key(raw: str, key: str) -> tuple[int, int]:
    """Line and column just past `"key"` in the raw body, as serde reports
    them (first occurrence: good enough for an error message)."""
    match = re.search(rf'"{re.escape(key)}"\s*:', raw)
    return _line_column(raw, match.start() + len(key) + 2 if match else len(raw))


def _unknown_keys_error(provider: str, unknown: list[str], raw: str) -> Error:
    if provider == "deepseek":
        expected = ", ".join(f"`{key}`" for key in DEEPSEEK_KEYS)
        line, column = _after_key(raw, unknown[0])
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
        line, column = _line_column(raw, len(raw))
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
    return not THINKING_OFF.get(quirks.provider, _type_disabled)(body)


def _thinking_error(body: dict[str, Any], raw: str) -> Error | None:
    """DeepSeek's thinking-mode checks: the switch's and the effort's values (serde's enum
    wording, as for its other fields); the round trip is `reasoning_missing`."""
    thinking = body.get("thinking", _UNSET)
    if thinking is not _UNSET and not (isinstance(thinking, dict) and thinking.get("type") in ("enabled", "disabled")):
        got = thinking.get("type") if isinstance(thinking, dict) else thinking
        line, column = _after_key(raw, "type" if isinstance(thinking, dict) else "thinking")
        return _deepseek_error(
            "Failed to deserialize the JSON body into the target type: thinking.type: unknown variant "
            f"`{got}`, expected `enabled` or `disabled` at line {line} column {column}"
        )
    effort = body.get("reasoning_effort", _UNSET)
    if effort is not _UNSET and effort not in DEEPSEEK_EFFORTS:
        line, column = _after_key(raw, "reasoning_effort")
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
            line, column = _line_column(raw, match.end() if match else len(raw))
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


_UNSET = object()


def _arguments_text(arguments: dict[str, Any] | str) -> str:
    """A scripted call's arguments as sent: a str verbatim, anything else as JSON."""
    return arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)


def _compact(value: Any) -> str:
    """JSON the way the gateways write it: no spaces, UTF-8 kept."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def reasoning_field(body: dict[str, Any], provider: str) -> str | None:
    """Where the reasoning goes on the OpenAI route; None: inside `content` as
    `<think>...</think>` before the answer (MiniMax without `reasoning_split`)."""
    if provider == "minimax":
        return "reasoning_details" if body.get("reasoning_split") is True else None
    return REASONING_FIELDS.get(provider, "reasoning_content")


class Completion:
    """Renders one answer (Text or ToolCalls) the way `quirks.provider`
    shapes it: SSE events for a streaming request, a JSON body otherwise."""

    def __init__(self, body: dict[str, Any], reply: Text | ToolCalls, quirks: Quirks) -> None:
        self.body, self.quirks = body, quirks
        self.provider = quirks.provider
        self.model = body.get("model") if isinstance(body.get("model"), str) else "stand-in"
        self.id = str(uuid.uuid4()) if self.provider == "deepseek" else f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.fingerprint = None if self.provider == "qwen" else "fp_standin_prod"
        self.text = reply.text
        self.reasoning = ""
        if thinks(body, quirks):
            self.reasoning = reply.reasoning if reply.reasoning is not None else default_reasoning(body)
        self.reasoning_field = reasoning_field(body, self.provider)
        # MiniMax's `<think>` block in the content, a newline inside each tag and a blank line
        # before the answer (as streamed in https://github.com/MiniMax-AI/MiniMax-M2/issues/105, read 2026-11-26).
        inline = self.reasoning and self.reasoning_field is None
        self.content = f"<think>\n{self.reasoning}\n</think>\n\n{self.text}" if inline else self.text
        self.calls = [
            (self._call_id(index), name, _arguments_text(arguments))
            for index, (name, arguments) in enumerate(reply.calls if isinstance(reply, ToolCalls) else [])
        ]
        self.finish_reason = "tool_calls" if self.calls else getattr(reply, "finish_reason", "stop")

    def _call_id(self, index: int) -> str:
        if self.provider == "deepseek":
            return f"call_{index:02d}_{uuid.uuid4().hex[:24]}"
        return f"call_{uuid.uuid4().hex[:24]}"

    def usage(self) -> dict[str, Any] | None:
        if self.quirks.usage == "null":
            return None
        prompt, completion = 0, 0
        if self.quirks.usage != "zero":
            prompt = request_tokens(self.body)
            completion = count_text(self.text) + sum(count_text(name + arguments) for _, name, arguments in self.calls)
        reasoning = count_text(self.reasoning) if self.quirks.usage != "zero" else 0
        completion += reasoning
        usage: dict[str, Any] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        if self.reasoning:
            usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
        cached = int(prompt * self.quirks.cached_share)
        if self.provider in ("deepseek", "qwen") or cached:
            usage["prompt_tokens_details"] = {"cached_tokens": cached}
        if self.provider == "deepseek":
            usage |= {"prompt_cache_hit_tokens": cached, "prompt_cache_miss_tokens": prompt - cached}
        return usage

    # -- non-streaming

    def _reasoning(self, text: str) -> dict[str, Any]:
        """The reasoning (or a piece of it) in the profile's field. MiniMax's `reasoning_details`
        items are `{"type": "reasoning.text", "text": ...}` (https://belingud.github.io/yaicli/providers/minimax/;
        its docs read `reasoning_details[0]['text']`), incremental when streamed
        (https://github.com/MiniMax-AI/MiniMax-M2/issues/95); read 2026-11-26."""
        if not (self.reasoning and self.reasoning_field):
            return {}
        if self.reasoning_field == "reasoning_details":
            return {"reasoning_details": [{"type": "reasoning.text", "text": text}]}
        return {self.reasoning_field: text}

    def json_body(self) -> bytes:
        message: dict[str, Any] = {"role": "assistant", "content": self.content, **self._reasoning(self.reasoning)}
        if self.calls:
            if self.provider == "openai" and not self.text:
                message["content"] = None
            message["tool_calls"] = [
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
                for call_id, name, arguments in self.calls
            ]
        result: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": self.finish_reason}],
            "system_fingerprint": self.fingerprint,
        }
        if self.quirks.usage != "absent":
            result["usage"] = self.usage()
        return _compact(result).encode()

    # -- streaming

    def _include_usage(self) -> bool:
        options = self.body.get("stream_options")
        return isinstance(options, dict) and bool(options.get("include_usage"))

    def _chunk(self, choices: list[dict[str, Any]], usage: Any = _UNSET) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": self.fingerprint,
            "choices": choices,
        }
        if usage is _UNSET:
            # Where the provider puts `"usage": null` on ordinary chunks.
            if self.quirks.usage == "absent":
                return chunk
            if self.provider == "qwen" or self._include_usage():
                chunk["usage"] = None
            return chunk
        chunk["usage"] = usage
        return chunk

    def _delta(self, delta: dict[str, Any], finish_reason: str | None = None, **usage: Any) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return self._chunk([choice], **usage)

    def _tool_call_fragments(self) -> Iterator[dict[str, Any]]:
        for index, (call_id, name, arguments) in enumerate(self.calls):
            yield {
                "tool_calls": [
                    {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
                ]
            }
            for fragment in split_fragments(arguments):
                call: dict[str, Any] = {"index": index, "function": {"arguments": fragment}}
                if self.provider == "qwen":
                    # DashScope repeats an empty id and the type on every fragment.
                    call = {"index": index, "id": "", "type": "function", "function": {"arguments": fragment}}
                yield {"tool_calls": [call]}

    def chunks(self) -> list[dict[str, Any]]:
        if self._reasoning(""):
            # DeepSeek: the reasoning first, content null beside it; then the answer.
            chunks = [self._delta({"role": "assistant", "content": None, **self._reasoning("")})]
            chunks += [self._delta({"content": None, **self._reasoning(piece)}) for piece in split_text(self.reasoning)]
        else:
            chunks = [self._delta({"role": "assistant", "content": ""})]
        chunks += [self._delta({"content": piece}) for piece in split_text(self.content)]
        chunks += [self._delta(fragment) for fragment in self._tool_call_fragments()]
        finish_delta: dict[str, Any] = {"content": ""} if self.provider in ("deepseek", "qwen") else {}
        if self.provider == "deepseek" and self.quirks.usage != "absent":
            # DeepSeek: usage rides on the finish chunk, with or without include_usage.
            chunks.append(self._delta(finish_delta, self.finish_reason, usage=self.usage()))
        else:
            chunks.append(self._delta(finish_delta, self.finish_reason))
        if self.provider != "deepseek" and self._include_usage() and self.quirks.usage != "absent":
            chunks.append(self._chunk([], usage=self.usage()))
        return chunks

    def open_content(self) -> bytes:
        """A chunk's JSON cut inside its content string: `{..."content": "`."""
        marker = "\u2063fill\u2063"
        text = _compact(self._delta({"content": marker}))
        return text[: text.index(marker)].encode()

    def events(self) -> list[bytes]:
        """The SSE events, `data: [DONE]` last (keep-alive comments excluded)."""
        end = self.quirks.line_ending
        payloads = [_compact(chunk) for chunk in self.chunks()] + ["[DONE]"]
        return [f"data: {payload}{end}{end}".encode() for payload in payloads]


def split_text(text: str) -> list[str]:
    """Content deltas of two words each (whitespace kept), like a tokenizer would."""
    words = re.findall(r"\s*\S+|\s+$", text)
    return ["".join(words[i : i + 2]) for i in range(0, len(words), 2)]


def split_fragments(arguments: str) -> list[str]:
    """Cut a JSON arguments string into small uneven fragments."""
    sizes = itertools.cycle((3, 7, 2, 5, 11))
    fragments, start = [], 0
    while start < len(arguments):
        size = next(sizes)
        fragments.append(arguments[start : start + size])
        start += size
    return fragments


def odd_pieces(events: list[bytes], seed: int = 0) -> list[bytes]:
    """Cut the concatenated events into writes at awkward places: inside the
    first `data:`, inside the first JSON, between the first \\r and \\n; the
    second and third events share one write; elsewhere cuts fall at random
    sizes, some spanning several events. Deterministic for a given seed."""
    data = b"".join(events)
    if not data:
        return []
    cuts: set[int] = set()
    first = data.find(b"data:")
    if first >= 0:
        cuts.add(first + 3)
    brace = data.find(b"{")
    if brace >= 0:
        cuts.add(min(brace + 5, len(data) - 1))
    crlf = data.find(b"\r\n")
    if crlf >= 0:
        cuts.add(crlf + 1)
    starts = list(itertools.accumulate(len(event) for event in events))  # end offsets
    together = (starts[0], starts[2]) if len(events) >= 3 else (0, 0)
    rng = random.Random(seed)
    average = max(1, len(data) // len(events))
    position = 0
    while True:
        position += rng.randint(1, average * 2)
        if position >= len(data):
            break
        if not together[0] < position < together[1]:
            cuts.add(position)
    cuts = {cut for cut in cuts if 0 < cut < len(data) and not together[0] < cut < together[1]}
    bounds = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


# --------------------------------------------------------------------------
# The Anthropic-compatible route (DeepSeek's /anthropic/v1/messages).


def anthropic_error(message: str, kind: str = "invalid_request_error", status: int = 400) -> Error:
    return Error(status, {"type": "error", "error": {"type": kind, "message": message}})


def _anthropic_texts(value: Any) -> Iterator[str]:
    """Every string in a system prompt, message content or tool list, for counting."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _anthropic_texts(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key in ("text", "thinking", "content", "name", "description"):
                yield from _anthropic_texts(item)
            elif key in ("input", "input_schema"):
                yield json.dumps(item)


def anthropic_request_tokens(body: dict[str, Any]) -> int:
    """Prompt tokens of a Messages request as this server counts them (cl100k of its texts)."""
    return sum(count_text(text) for key in ("system", "messages", "tools") for text in _anthropic_texts(body.get(key)))


def anthropic_thinks(body: dict[str, Any], quirks: Quirks) -> bool:
    return quirks.thinking and (quirks.always_thinks or not _type_disabled(body))


# The profiles whose Messages route is DeepSeek's (the plain one keeps it too): its block
# list, its thinking round trip and its max_tokens and context wordings. The others take
# any block and have no round trip there; their differences are below.
DEEPSEEK_MESSAGES = ("deepseek", "openai")


def _dashscope_stream_error(message: str) -> Error:
    """DashScope's /apps/anthropic answers a bad parameter with an SSE `error` event as the
    body of an HTTP 400 (Claude Code shows "API Error: 400 event:error data:{...}"), as quoted
    in https://github.com/musistudio/claude-code-router/issues/1327 (read 2026-11-26)."""
    data = _compact(
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


class MessagesCompletion:
    """Renders one answer as an Anthropic Messages response: SSE events or a JSON body.
    A thinking answer starts with a thinking block signed with the message id."""

    def __init__(self, body: dict[str, Any], reply: Text | ToolCalls, quirks: Quirks) -> None:
        self.body, self.quirks = body, quirks
        self.id = str(uuid.uuid4())
        self.model = body.get("model") if isinstance(body.get("model"), str) else "stand-in"
        self.reasoning = ""
        if anthropic_thinks(body, quirks):
            self.reasoning = reply.reasoning if reply.reasoning is not None else default_reasoning_text(body)
        self.text = reply.text
        self.calls = [
            (f"call_{index:02d}_{uuid.uuid4().hex[:24]}", name, arguments)
            for index, (name, arguments) in enumerate(reply.calls if isinstance(reply, ToolCalls) else [])
        ]
        self.stop_reason = "tool_use" if self.calls else "end_turn"

    def _blocks(self) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        if self.reasoning:
            blocks.append({"type": "thinking", "thinking": self.reasoning, "signature": self.id})
        if self.text:
            blocks.append({"type": "text", "text": self.text})
        blocks += [
            {"type": "tool_use", "id": call_id, "name": name, "input": arguments}
            for call_id, name, arguments in self.calls
        ]
        return blocks

    def usage(self) -> dict[str, Any]:
        output = count_text(self.reasoning) + count_text(self.text)
        output += sum(count_text(name + _arguments_text(arguments)) for _, name, arguments in self.calls)
        if self.quirks.usage == "zero":
            return {"input_tokens": 0, "output_tokens": 0}
        return {"input_tokens": anthropic_request_tokens(self.body), "output_tokens": output}

    def json_body(self) -> bytes:
        return _compact(
            {
                "id": self.id,
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": self._blocks(),
                "stop_reason": self.stop_reason,
                "stop_sequence": None,
                "usage": self.usage(),
            }
        ).encode()

    def events(self) -> list[bytes]:
        usage = self.usage()
        # Z.ai: message_start's usage is always zero, the real counts come in the last message_delta
        # (https://github.com/zai-org/GLM-5/issues/139, glm-5.3, read 2026-11-26).
        zero_start = self.quirks.provider == "glm"
        start_usage = {"input_tokens": 0, "output_tokens": 0} if zero_start else {**usage, "output_tokens": 0}
        start = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": start_usage,
        }
        events: list[tuple[str, dict[str, Any]]] = [("message_start", {"type": "message_start", "message": start})]
        for index, block in enumerate(self._blocks()):
            kind = block["type"]
            opened = {
                "thinking": {"type": "thinking", "thinking": "", "signature": ""},
                "text": {"type": "text", "text": ""},
            }.get(kind, {**block, "input": {}})
            events.append(
                ("content_block_start", {"type": "content_block_start", "index": index, "content_block": opened})
            )
            if kind == "thinking":
                deltas = [{"type": "thinking_delta", "thinking": piece} for piece in split_text(block["thinking"])]
                deltas.append({"type": "signature_delta", "signature": block["signature"]})
            elif kind == "text":
                deltas = [{"type": "text_delta", "text": piece} for piece in split_text(block["text"])]
            else:
                # A str input (a scripted raw arguments string) streams verbatim.
                deltas = [
                    {"type": "input_json_delta", "partial_json": fragment}
                    for fragment in split_fragments(_arguments_text(block["input"]))
                ]
            events += [
                ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
                for delta in deltas
            ]
            events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
        events.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": self.stop_reason, "stop_sequence": None},
                    "usage": usage if zero_start else {"output_tokens": usage["output_tokens"]},
                },
            )
        )
        events.append(("message_stop", {"type": "message_stop"}))
        end = self.quirks.line_ending
        return [f"event: {name}{end}data: {_compact(payload)}{end}{end}".encode() for name, payload in events]


# --------------------------------------------------------------------------
# The HTTP server.


def _route(path: str) -> str:
    return path.split("?", 1)[0]


class _ClientGone(Exception):
    """The client closed the connection, or stop()/reset() cut it."""


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "stand-in-backend"
    sys_version = ""
    timeout = 60  # idle kept-alive connections and writes nobody reads
    server: _Server

    # -- plumbing

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.backend._register(self.connection)
        self.exchange: Exchange | None = None

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.backend._unregister(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("backend: " + format, *args)

    def send_response(self, code: int, message: str | None = None) -> None:
        if self.exchange is not None:
            self.exchange.status = code
        super().send_response(code, message)

    def _write(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except OSError as error:
            raise _ClientGone from error

    def _write_chunk(self, data: bytes) -> None:
        if data:
            self._write(b"%x\r\n%s\r\n" % (len(data), data))

    def _abort(self) -> None:
        """Close the socket now, mid-response, so the client sees a cut."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _hold(self, until: threading.Event | None, release: threading.Event) -> bool:
        """Wait for `until` (True) or for reset()/stop()/timeout (False)."""
        deadline = time.monotonic() + MAX_STALL_SECONDS
        while time.monotonic() < deadline:
            if until is not None and until.is_set():
                return True
            if release.wait(0.02):
                return False
        return False

    # -- routes

    def do_GET(self) -> None:
        self.exchange = self.server.backend._receive("GET", self.path, dict(self.headers), None)
        if _route(self.path) not in MODELS_PATHS:
            self._not_found()
            return
        models = [
            "deepseek-flash",
            "deepseek-v4-pro",
            "qwen-plus",
            "qwen3-coder-plus",
            "kimi-k3",
            "glm-5.3",
            "MiniMax-M3",
            "gpt-4o-mini",
        ]
        self._send_json(
            200,
            {
                "object": "list",
                "data": [
                    {"id": name, "object": "model", "created": 0, "owned_by": provider_for(name)} for name in models
                ],
            },
        )

    def do_POST(self) -> None:
        backend = self.server.backend
        length = self.headers.get("Content-Length")
        if length is None:
            self.exchange = backend._receive("POST", self.path, dict(self.headers), None)
            self._send_json(
                411,
                {
                    "error": {
                        "message": "Content-Length required",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": None,
                    }
                },
            )
            return
        raw = self.rfile.read(int(length)).decode("utf-8", errors="replace")
        try:
            body: Any = json.loads(raw)
            problem = None if isinstance(body, dict) else "expected a JSON object"
        except json.JSONDecodeError as error:
            body, problem = None, f"{error.msg} at line {error.lineno} column {error.colno}"
        self.exchange = backend._receive("POST", self.path, dict(self.headers), body)
        release = backend._release
        route = _route(self.path)
        if route not in CHAT_PATHS + MESSAGES_PATHS:
            self._not_found()
            return
        if problem is not None:
            error = invalid_json_error(backend.provider or "openai", problem)
            self._send_error(anthropic_error(error.body["error"]["message"]) if route in MESSAGES_PATHS else error)
            return
        quirks = backend.quirks_for(body.get("model"))
        if route in MESSAGES_PATHS:
            rejection = check_messages_request(body, quirks)
        else:
            rejection = check_request(body, raw, quirks)
        if rejection is not None:
            self._send_error(rejection)
            return
        if quirks.truncate_history and quirks.context_window is not None:
            body, self.exchange.dropped_messages = fit_history(body, quirks.context_window, route in MESSAGES_PATHS)
        try:
            self._answer(body, backend._next_reply(body), quirks, release)
        except _ClientGone:
            self.close_connection = True

    # -- answers

    def _send_json(
        self, status: int, payload: Any, extra: dict[str, str] | None = None, content_type: str = "application/json"
    ) -> None:
        data = payload if isinstance(payload, bytes) else _compact(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self._write(data)

    def _not_found(self) -> None:
        self._send_json(
            404,
            {
                "error": {
                    "message": f"Not found: {self.path}",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "not_found",
                }
            },
        )

    def _send_error(self, error: Error) -> None:
        data = error.body if isinstance(error.body, str) else _compact(error.body)
        self._send_json(error.status, data.encode(), error.headers, error.content_type)

    def _answer(self, body: dict[str, Any], reply: Reply, quirks: Quirks, release: threading.Event) -> None:
        match reply:
            case Error():
                self._send_error(reply)
            case Text() | ToolCalls():
                messages_route = _route(self.path) in MESSAGES_PATHS
                completion = (MessagesCompletion if messages_route else Completion)(body, reply, quirks)
                if body.get("stream"):
                    self._start_stream(quirks)
                    self._stream(completion.events(), quirks)
                    self._write(b"0\r\n\r\n")
                else:
                    data = completion.json_body()
                    self._start_json(len(data), quirks)
                    self._write(data)
            case StallBeforeFirstByte():
                reply.reached.set()
                if not self._hold(reply.until, release):
                    self._abort()
                    return
                self._answer(body, reply.then or default_reply(body), quirks, release)
            case StallMidStream():
                self._stall_mid_stream(body, reply, quirks, release)
            case CloseMidEvent():
                self._close_mid_event(body, reply, quirks)
            case EndlessEvent():
                self._endless(body, reply, quirks, release)
            case PacedStream():
                self._paced(body, reply, quirks, release)
            case _:
                raise TypeError(f"not a Reply: {reply!r}")

    def _start_stream(self, quirks: Quirks) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._stream(
            [f": keep-alive{quirks.line_ending}{quirks.line_ending}".encode()] * quirks.keepalive,
            dataclasses.replace(quirks, chunking="normal"),
        )

    def _start_json(self, length: int, quirks: Quirks) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(length + quirks.keepalive))
        self.end_headers()
        if quirks.keepalive:
            self._write(b"\n" * quirks.keepalive)

    def _stream(self, events: list[bytes], quirks: Quirks) -> None:
        pieces = odd_pieces(events) if quirks.chunking == "odd" else events
        for piece in pieces:
            self._write_chunk(piece)

    def _send_first_part(
        self, body: dict[str, Any], reply: StallMidStream | CloseMidEvent, quirks: Quirks
    ) -> tuple[list[bytes], bool]:
        """Send the status, headers and the first part of the answer; return
        the pieces still to send and whether they belong to a stream."""
        completion = Completion(body, reply.reply or default_reply(body), quirks)
        if body.get("stream"):
            events = completion.events()
            split = min(max(reply.after_events, 0), len(events))
            self._start_stream(quirks)
            self._stream(events[:split], quirks)
            return events[split:], True
        data = completion.json_body()
        self._start_json(len(data), quirks)
        self._write(data[: len(data) // 2])
        return [data[len(data) // 2 :]], False

    def _stall_mid_stream(
        self, body: dict[str, Any], reply: StallMidStream, quirks: Quirks, release: threading.Event
    ) -> None:
        rest, streaming = self._send_first_part(body, reply, quirks)
        reply.reached.set()
        if not self._hold(reply.until, release):
            self._abort()
        elif streaming:
            self._stream(rest, quirks)
            self._write(b"0\r\n\r\n")
        else:
            self._write(rest[0])

    def _close_mid_event(self, body: dict[str, Any], reply: CloseMidEvent, quirks: Quirks) -> None:
        rest, streaming = self._send_first_part(body, reply, quirks)
        if rest:
            half = rest[0][: len(rest[0]) // 2]
            self._write_chunk(half) if streaming else self._write(half)
        self._abort()
        reply.reached.set()

    def _paced(self, body: dict[str, Any], reply: PacedStream, quirks: Quirks, release: threading.Event) -> None:
        first, *rest = Completion(body, reply.reply or default_reply(body), quirks).events()
        self._start_stream(quirks)
        self._write_chunk(first)
        for event in rest:
            while not reply.step.acquire(timeout=0.02):
                if release.is_set():
                    self._abort()
                    return
            self._write_chunk(event)
        self._write(b"0\r\n\r\n")

    def _endless(self, body: dict[str, Any], reply: EndlessEvent, quirks: Quirks, release: threading.Event) -> None:
        opening = Completion(body, Text(""), quirks).open_content()
        try:
            if body.get("stream"):
                self._start_stream(quirks)
                self._write_chunk(b"data: " + opening)
            else:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self._write_chunk(opening)
            reply.reached.set()
            filler = b"x" * reply.chunk_size
            deadline = time.monotonic() + reply.max_seconds
            while reply.sent_bytes < reply.max_bytes and time.monotonic() < deadline and not release.is_set():
                self._write_chunk(filler)
                reply.sent_bytes += len(filler)
        finally:
            self._abort()
            reply.ended.set()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins every handler thread: no leaks
    block_on_close = True

    def __init__(self, address: tuple[str, int], backend: Backend) -> None:
        self.backend = backend
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("backend: connection from %s ended with an error", client_address, exc_info=True)


class Backend:
    """The stand-in provider. `Backend().start()` listens on a free loopback
    port in a background thread; `stop()` releases every stall, closes every
    connection and joins every thread."""

    def __init__(self, provider: str | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        if provider is not None and provider not in PROVIDERS:
            raise ValueError(f"provider must be one of {PROVIDERS}")
        self.provider = provider  # forces one profile whatever the model name
        self.responder: Callable[[dict[str, Any]], Reply | None] | None = None
        self._address = (host, port)
        self._lock = threading.Condition()
        self._exchanges: list[Exchange] = []
        self._script: list[Reply] = []
        self._overrides: dict[str, Any] = {}
        self._release = threading.Event()
        self._connections: set[socket.socket] = set()
        self._stopping = False
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> Backend:
        self._server = _Server(self._address, self)
        self._thread = threading.Thread(target=self._server.serve_forever, name="stand-in-backend", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        with self._lock:
            self._stopping = True
            self._release.set()
            connections = list(self._connections)
        self._server.shutdown()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._server.server_close()
        assert self._thread is not None
        self._thread.join()
        self._server = None

    def __enter__(self) -> Backend:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("backend not started")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{self._address[0]}:{self.port}/v1"

    def reset(self) -> None:
        """Forget requests, script, responder and overrides; end every stall."""
        with self._lock:
            self._exchanges.clear()
            self._script.clear()
            self._overrides = {}
            self.responder = None
            self._release.set()
            self._release = threading.Event()

    # -- what a test reads

    @property
    def exchanges(self) -> list[Exchange]:
        with self._lock:
            return list(self._exchanges)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """JSON bodies of the chat-completion POSTs received, in order."""
        with self._lock:
            return [
                e.body
                for e in self._exchanges
                if e.method == "POST" and _route(e.path) in CHAT_PATHS and isinstance(e.body, dict)
            ]

    @property
    def messages_requests(self) -> list[dict[str, Any]]:
        """JSON bodies of the Anthropic Messages POSTs received, in order."""
        with self._lock:
            return [
                e.body
                for e in self._exchanges
                if e.method == "POST" and _route(e.path) in MESSAGES_PATHS and isinstance(e.body, dict)
            ]

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Block until `count` JSON bodies have arrived; TimeoutError otherwise."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self.requests) >= count, timeout):
                raise TimeoutError(f"{len(self.requests)} of {count} requests arrived within {timeout} s")
            return self.requests

    # -- what a test sets

    def script(self, replies: list[Reply]) -> None:
        """Answer the next accepted requests with these replies, in order; then
        `responder`, then the default answer. Requests the provider rejects
        (400 for a key, max_tokens or the context) do not consume a reply."""
        with self._lock:
            self._script = list(replies)

    @contextlib.contextmanager
    def quirks(self, **overrides: Any) -> Iterator[Backend]:
        """Override profile fields (see Quirks) for the duration of the block."""
        unknown = set(overrides) - {field.name for field in dataclasses.fields(Quirks)}
        if unknown:
            raise TypeError(f"unknown quirks: {', '.join(sorted(unknown))}")
        dataclasses.replace(PROFILES["openai"], **overrides)  # validates the values now
        previous = self._overrides
        self._overrides = previous | overrides
        try:
            yield self
        finally:
            self._overrides = previous

    def quirks_for(self, model: Any) -> Quirks:
        profile = PROFILES[self.provider or provider_for(model)]
        name = model.lower() if isinstance(model, str) else ""
        defaults: dict[str, Any] = {}
        for prefix in sorted(MODEL_QUIRKS, key=len):
            if name.startswith(prefix):
                defaults |= MODEL_QUIRKS[prefix]
        return dataclasses.replace(profile, **(defaults | self._overrides))

    # -- used by the handler

    def _register(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)
            stopping = self._stopping
        if stopping:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def _unregister(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)

    def _receive(self, method: str, path: str, headers: dict[str, str], body: Any) -> Exchange:
        exchange = Exchange(method, path, headers, body)
        with self._lock:
            self._exchanges.append(exchange)
            self._lock.notify_all()
        return exchange

    def _next_reply(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            if self._script:
                return self._script.pop(0)
            responder = self.responder
        reply = responder(body) if responder is not None else None
        return reply if reply is not None else default_reply(body)


def _parse_quirk(text: str) -> tuple[str, Any]:
    name, _, value = text.partition("=")
    if name not in {field.name for field in dataclasses.fields(Quirks)}:
        raise argparse.ArgumentTypeError(f"unknown quirk {name!r}")
    if value in ("true", "false"):
        return name, value == "true"
    if value == "none":
        return name, None
    if value.isdigit():
        return name, int(value)
    return name, value.replace("\\r", "\r").replace("\\n", "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Stand-in model provider (DeepSeek, Qwen, Kimi, GLM, MiniMax, vLLM, Ollama, llama-server profiles)."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--provider", choices=PROVIDERS, help="force one profile (default: from the model name)")
    parser.add_argument(
        "--quirk",
        action="append",
        default=[],
        type=_parse_quirk,
        metavar="NAME=VALUE",
        help="override a profile field, e.g. usage=null, chunking=odd, line_ending=\\r\\n",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    backend = Backend(args.provider, args.host, args.port)
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    with backend, backend.quirks(**dict(args.quirk)):
        print(f"stand-in backend listening on {backend.base_url}", flush=True)
        stopped.wait()


if __name__ == "__main__":
    main()
