"""LiteLLM's fallbacks: the models a request named for one model may reach without the stack seeing it.

The stack shapes a request for the model Claude Code names; LiteLLM may then send that same
body to another model. What LiteLLM 1.108.14 does (its router.py and
router_utils/fallback_event_handlers.py, measured with the stand-ins 2026-12-06):

- It reads `fallbacks` and `context_window_fallbacks` (lists of `{model_name: [names]}`) from
  router_settings, else from litellm_settings; `default_fallbacks` (a list of names) is the
  chain of every model without its own, as is a `"*"` entry.
- A request that fails on its model (an overload, any 400 too) goes to the model's fallbacks in
  order. One the backend refuses as over its window goes to its context_window_fallbacks instead,
  or to its fallbacks where it has none: only when LiteLLM takes the refusal for a context
  overflow (ContextWindowExceededError). It does for OpenAI's, DeepSeek's and llama.cpp's words
  ("maximum context length is", "exceeds the available context size"), not for Qwen's "Range
  of input length" nor Kimi's "exceeded model token limit": for those only `fallbacks` fire.
- A fallback that fails goes on to its own fallbacks, up to max_fallbacks hops.
- A fallback's refusal ends the turn: Claude Code gets a 500 naming both errors.

So a request is shaped for its whole chain (`chain_policy`): what every model of it takes, and
a window to trim to that lets the context fallbacks fire at all.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from addons.config.policy import ModelPolicy

# LiteLLM's key for the chain of every model without one of its own.
EVERY_MODEL = "*"


@dataclass(frozen=True)
class Chain:
    """The models LiteLLM may send a request for one model to, besides that model."""

    # Every model a failed request may reach: fallbacks and context window fallbacks, and theirs.
    reached: tuple[str, ...]
    # Those it reaches when over the window: context_window_fallbacks and theirs.
    larger_windows: tuple[str, ...]


def _setting(config: Mapping[str, Any], key: str) -> Any:
    """router_settings' value, else litellm_settings' (LiteLLM's Router: `fallbacks or litellm.fallbacks`)."""
    for section in ("router_settings", "litellm_settings"):
        settings = config.get(section)
        if isinstance(settings, dict) and settings.get(key):
            return settings[key]
    return None


def _edges(value: Any) -> dict[str, tuple[str, ...]]:
    """`[{name: [names]}, ...]` as name -> names; entries of another shape are LiteLLM's to refuse."""
    edges: dict[str, tuple[str, ...]] = {}
    for item in value if isinstance(value, list) else ():
        if isinstance(item, dict):
            for name, names in item.items():
                if isinstance(names, list):
                    edges.setdefault(str(name), tuple(n for n in names if isinstance(n, str)))
    return edges


def _closure(start: str, edges: Sequence[Mapping[str, tuple[str, ...]]]) -> tuple[str, ...]:
    """Every model reachable from `start` along `edges` (each map falling back to its "*" entry), `start` aside."""
    seen: dict[str, None] = {}
    pending = [start]
    while pending:
        name = pending.pop()
        for graph in edges:
            for following in graph.get(name, graph.get(EVERY_MODEL, ())):
                if following != start and following not in seen:
                    seen[following] = None
                    pending.append(following)
    return tuple(seen)


def chains_of(config: Any, names: Iterable[str]) -> dict[str, Chain]:
    """The chain of each of `names` (the config's model names) that has one."""
    if not isinstance(config, dict):
        return {}
    general = _edges(_setting(config, "fallbacks"))
    if isinstance(default := _setting(config, "default_fallbacks"), list):
        general.setdefault(EVERY_MODEL, tuple(name for name in default if isinstance(name, str)))
    context = _edges(_setting(config, "context_window_fallbacks"))
    chains = {}
    for name in names:
        if reached := _closure(name, (general, context)):
            chains[name] = Chain(reached, _closure(name, (context,)))
    return chains


def chain_policy(
    primary: ModelPolicy, reached: Sequence[ModelPolicy], larger_windows: Sequence[ModelPolicy]
) -> ModelPolicy:
    """The policy a request for `primary` is shaped by when LiteLLM may send it on to the models of
    `reached` (their policies; `larger_windows` among them).

    Where the rules combine, every model gets what it takes: the lowest output cap, only the keys,
    block types and tools all take. The window is the largest of the primary and its context window
    fallbacks: trimmed to the primary's, a request would never be over it, and they would never fire.
    Thinking stays the primary's: it needs its own thinking back (DeepSeek) or checks signatures
    (Claude), and a fallback that checks them refuses the primary's once, after which LiteLLM sends
    the request again without thinking. The primary wants every turn's reasoning where a fallback
    does (DeepSeek, Kimi): turns without get a note, unless the primary checks signatures
    (addons/request/shaping.py: a note is unsigned)."""
    if not reached:
        return primary
    every = (primary, *reached)
    thinking = primary.thinking
    if (
        thinking is not None
        and not thinking.require_reasoning
        and any(policy.thinking is not None and policy.thinking.require_reasoning for policy in reached)
    ):
        thinking = thinking.model_copy(update={"require_reasoning": True, "history": "all"})
    tool_limits = [policy.max_tools for policy in every if policy.max_tools is not None]
    # Valid without checking again: the window only grows, the output cap only shrinks.
    return primary.model_copy(
        update={
            "context_window": max(policy.context_window for policy in (primary, *larger_windows)),
            "max_output_tokens": min(policy.max_output_tokens for policy in every),
            "accepted_keys": frozenset.intersection(*(policy.accepted_keys for policy in every)),
            "accepted_block_types": frozenset.intersection(*(policy.accepted_block_types for policy in every)),
            "server_tools": all(policy.server_tools for policy in every),
            "max_tools": min(tool_limits, default=None),
            "thinking": thinking,
        }
    )
