"""Each provider's profile (Quirks), the model-specific defaults on top, and which
profile a model name picks."""

from __future__ import annotations

from typing import Any

from tests.backend.core import Quirks

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
