"""Stand-in model provider for the integration tests.

Every integration test runs the real LiteLLM proxy, the real mitmdump and the
real Claude Code CLI against this server, so it reproduces what the providers'
gateways and the local servers really do, with their wording. The profile is
chosen per request from the `model` field, which LiteLLM sends without its own
prefix (`provider_for`).

One module per provider in providers/ (deepseek, qwen, kimi, glm, minimax, vllm,
ollama, llamacpp, and openai for any other name) holds its profile, its limits,
its error wordings, its reasoning rules and how it shapes an answer, with the
source (URL, date read) beside each value. They fill in provider.Provider, data
plus hooks whose defaults are OpenAI's API; the generic code calls the hooks:
checks.py (the 400s), render.py (chunks, events, JSON), server.py (the HTTP
server and `Backend`); core.py holds what they share (Quirks, the replies, token
counting). A new provider is one module defining `PROVIDER`, listed in
providers/__init__.py.

A test overrides the profile with `with backend.quirks(...)` (usage
null/absent/zero, odd chunking of the byte stream, CRLF line endings, limits)
and scripts the answers with `backend.script([...])` or `backend.responder`.
Stalls and broken streams are replies too; they end when `until` is set, on
`reset()` or on `stop()`, so a test can never hang on them.

The same server also answers `POST /v1/messages` the way DeepSeek's
Anthropic-compatible endpoint does, for LiteLLM's `anthropic/` provider
(providers/deepseek.py); the other thinking profiles think the same way there,
with their own differences where sourced (their `messages_*` hooks).
`backend.messages_requests` lists what it received.

Streams use HTTP/1.1 chunked transfer encoding on a kept-alive connection, as
the real gateways (behind nginx/envoy) do, one HTTP chunk per write.

Standalone: `python -m tests.backend --port 8000 [--provider deepseek]
[--quirk usage=null ...]`.
"""

from tests.backend.checks import check_request
from tests.backend.core import (
    CloseMidEvent,
    EndlessEvent,
    Error,
    PacedStream,
    StallBeforeFirstByte,
    StallMidStream,
    Text,
    ToolCalls,
    anthropic_request_tokens,
    default_reasoning,
    request_tokens,
)
from tests.backend.provider import TOOL_MESSAGES_DUE
from tests.backend.providers import PROFILES, provider_for
from tests.backend.providers.deepseek import DEEPSEEK_KEYS, REASONING_MISSING, reasoning_missing
from tests.backend.render import odd_pieces, split_fragments, split_text
from tests.backend.server import Backend

__all__ = [
    "DEEPSEEK_KEYS",
    "PROFILES",
    "REASONING_MISSING",
    "TOOL_MESSAGES_DUE",
    "Backend",
    "CloseMidEvent",
    "EndlessEvent",
    "Error",
    "PacedStream",
    "StallBeforeFirstByte",
    "StallMidStream",
    "Text",
    "ToolCalls",
    "anthropic_request_tokens",
    "check_request",
    "default_reasoning",
    "odd_pieces",
    "provider_for",
    "reasoning_missing",
    "request_tokens",
    "split_fragments",
    "split_text",
]
