"""Which route and which provider model stand behind each model name Claude Code sends.

LiteLLM's config maps a `model_name` (what Claude Code sends as `model`) to
`litellm_params.model`, `<provider>/<model id>`. Two facts follow from it:

- The provider's model id (`openai/deepseek-flash` -> `deepseek-flash`), under
  which the policy keeps what it knows of a model (addons/config/policy.py): one entry
  serves every alias a user gives it in their own LiteLLM config.
- The route. For `/v1/messages`, LiteLLM (1.108.7, 1.108.14) sends a few providers the
  Anthropic request as it is (`anthropic/`, `deepseek/` to
  api.deepseek.com/anthropic, `minimax/` ..., and any deployment whose
  `model_info.supported_endpoints` lists /v1/messages; see
  ProviderConfigManager.get_provider_anthropic_messages_config). Every other
  provider gets it translated to Chat Completions (`openai/` and the rest).
  Thinking travels differently on the two (addons/request/thinking.py).

Without a LiteLLM config (a LiteLLM run elsewhere), or for a name it does not
list, the route is the OpenAI-compatible one and the model id is the name.
The config is read by addons/config/litellm_config.py, as everywhere else.
"""

from dataclasses import dataclass
from typing import Any

from addons.config.litellm_config import LiteLLMConfigError

ANTHROPIC = "anthropic"
OPENAI = "openai"
# Providers whose /v1/messages LiteLLM forwards in Anthropic's format.
_NATIVE_MESSAGES_PROVIDERS = frozenset({"anthropic", "deepseek", "minimax", "tencent", "edenai"})
# Providers that do so for Claude models only.
_NATIVE_FOR_CLAUDE = frozenset({"bedrock", "vertex_ai", "azure_ai", "github_copilot"})


@dataclass(frozen=True)
class Route:
    kind: str  # ANTHROPIC or OPENAI
    model_id: str | None  # the provider's id for the model, None when unknown


UNKNOWN = Route(OPENAI, None)


def route_of(deployment: dict[str, Any]) -> Route:
    """The route of one model_list entry's litellm_params (and model_info)."""
    params = deployment.get("litellm_params") or {}
    model = params.get("model")
    if not isinstance(model, str):
        return UNKNOWN
    provider, _, model_id = model.partition("/") if "/" in model else ("", "", model)
    provider = params.get("custom_llm_provider") or provider
    endpoints = (deployment.get("model_info") or {}).get("supported_endpoints") or ()
    native = (
        provider in _NATIVE_MESSAGES_PROVIDERS
        or (provider in _NATIVE_FOR_CLAUDE and "claude" in model_id.lower())
        or "/v1/messages" in endpoints
    )
    return Route(ANTHROPIC if native else OPENAI, model_id or None)


def load_routes(config: Any, path: str) -> dict[str, Route]:
    """model_name -> Route for every entry of `config`, the LiteLLM config read from `path` (the first entry wins)."""
    entries = config.get("model_list") if isinstance(config, dict) else None
    if not isinstance(entries, list):
        raise LiteLLMConfigError(f"{path}: model_list: expected a list of models")
    return routes_of(entries)


def routes_of(model_list: list) -> dict[str, Route]:
    """model_name -> Route for the entries of a LiteLLM model_list (the first entry of a name wins)."""
    routes: dict[str, Route] = {}
    for entry in model_list:
        if isinstance(entry, dict) and isinstance(entry.get("model_name"), str):
            routes.setdefault(entry["model_name"], route_of(entry))
    return routes
