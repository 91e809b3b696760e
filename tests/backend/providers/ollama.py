"""Ollama (`ollama-*`): the `reasoning` field; silently drops the oldest messages to fit its
window (docs.ollama.com/context-length, ollama server/prompt.go chatPrompt; read 2026-11-26).
Its OpenAI layer writes OpenAI's error envelope (provider.openai_error)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.backend.core import anthropic_request_tokens, request_tokens
from tests.backend.provider import Provider


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


PROVIDER = Provider(
    name="ollama",
    prefix="ollama-",
    # Ollama picks 4096 on CPU / under 24 GiB VRAM, 32768 for 24-48 GiB, 262144 above
    # (https://docs.ollama.com/context-length, read 2026-11-26): the profile takes the middle tier.
    profile={"thinking": True, "context_window": 32768, "truncate_history": True},
    # Never refused: it drops history instead (`truncate_history`), then context shift cuts the rest.
    context_error=lambda window, prompt, completion: None,
    # `reasoning_effort` "none" maps to think false (https://docs.ollama.com/api/openai-compatibility,
    # read 2026-11-26).
    thinking_off=lambda body: body.get("reasoning_effort") == "none",
    # `Reasoning string json:"reasoning"` on message and delta
    # (https://github.com/ollama/ollama/blob/main/openai/openai.go, read 2026-11-26).
    reasoning_fields=lambda body, piece: {"reasoning": piece},
)
