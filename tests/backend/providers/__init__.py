"""The providers the stand-in reproduces, one module each, and which one a model name picks.
A new provider is one module that defines `PROVIDER` (a provider.Provider), listed here."""

from __future__ import annotations

from typing import Any

from tests.backend.core import Quirks
from tests.backend.provider import Provider
from tests.backend.providers import claude, deepseek, glm, kimi, llamacpp, minimax, ollama, openai, qwen, vllm

BY_NAME: dict[str, Provider] = {
    module.PROVIDER.name: module.PROVIDER
    for module in (deepseek, qwen, kimi, glm, minimax, vllm, ollama, llamacpp, claude, openai)
}
PROVIDERS = tuple(BY_NAME)
PROFILES: dict[str, Quirks] = {name: Quirks(provider=name, **provider.profile) for name, provider in BY_NAME.items()}
# Every provider's model-specific defaults, by name prefix: they apply whichever profile serves the model.
MODEL_QUIRKS: dict[str, dict[str, Any]] = {
    prefix: quirks for provider in BY_NAME.values() for prefix, quirks in provider.model_quirks.items()
}


def provider_for(model: Any) -> str:
    """The profile a model name picks: the provider whose prefix it starts with, else the plain one."""
    name = model.lower() if isinstance(model, str) else ""
    return next(
        (provider.name for provider in BY_NAME.values() if provider.prefix and name.startswith(provider.prefix)),
        "openai",
    )
