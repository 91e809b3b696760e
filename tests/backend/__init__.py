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

from tests.backend.checks import (
    DEEPSEEK_KEYS,
    REASONING_MISSING,
    TOOL_MESSAGES_DUE,
    check_request,
    reasoning_missing,
)
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
from tests.backend.profiles import PROFILES, provider_for
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
