"""The models Claude Code's model picker lists: GET /v1/models, answered from the LiteLLM config and the policy.

With gateway model discovery on (CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY=1,
which `stabilizer aliases` sets) Claude Code 2.1.332 reads this list for
`/model` and keeps only `id`, `display_name` and `description` of each entry,
and only the entries whose id says `claude` or `anthropic` (read from its
binary, 2026-12-06). So each model is listed under PICKER_PREFIX + its name,
shown by its name; a turn that comes back with such an id goes to the model
(`picker_ids`, the table the request addon looks a request's model up in). LiteLLM's own answer has no
description and nulls for the limits. The body has Anthropic's shape (a page of
`model` objects).
"""

from collections.abc import Iterable, Mapping
from typing import Any

from addons.config.policy import ModelPolicy, Policy
from addons.config.routes import Route

# What a listed id begins with: Claude Code lists no id without "claude" or "anthropic" in it.
PICKER_PREFIX = "anthropic-gateway/"


def picker_ids(names: Iterable[str]) -> dict[str, str]:
    """The id the picker lists for each model name, to that name: what a model picked in /model is sent as."""
    return {PICKER_PREFIX + name: name for name in names}


def window_words(tokens: int) -> str:
    """131072 -> "128K", 1000000 -> "1M", 200000 -> "200K": a window as providers write it
    (in binary or decimal thousands, whichever divides it), else rounded to thousands."""
    for unit, sizes in (("M", (1 << 20, 1_000_000)), ("K", (1 << 10, 1000))):
        for size in sizes:
            if tokens >= size and tokens % size == 0:
                return f"{tokens // size}{unit}"
    return f"{round(tokens / 1000)}K" if tokens >= 1000 else str(tokens)


def description(limits: ModelPolicy) -> str:
    """One line for the picker: the window, whether the model thinks, whether it reads images."""
    thinking = "thinks" if limits.thinking is not None else "no thinking"
    if "image" in limits.accepted_block_types:
        images = "reads images"
    elif limits.vision_model is not None:
        images = f"images go to {limits.vision_model}"
    else:
        images = "no images"
    return f"{window_words(limits.context_window)} window, {thinking}, {images}"


def model_page(routes: Mapping[str, Route], policy: Policy) -> dict[str, Any]:
    """The answer to GET /v1/models: every model name of the LiteLLM config, in its order."""
    data = [
        {
            "type": "model",
            "id": picked,
            "display_name": name,
            "description": description(policy.for_model(name, routes[name].model_id)),
            "created_at": "1970-01-01T00:00:00Z",
        }
        for picked, name in picker_ids(routes).items()
    ]
    return {
        "data": data,
        "has_more": False,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }
