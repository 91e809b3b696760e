"""The request policy: what each target model accepts and how its requests are trimmed.

The file (config/stabilizer.yaml) has two sections:

    defaults:            # every setting, for models without an entry of their own
      context_window: 131072
    models:
      deepseek-v4-pro:   # keyed by the provider's model id, or by the name Claude Code sends
        accepted_block_types: [text, tool_use, tool_result]   # partial: the rest from `defaults`

A model's entry is merged over `defaults` key by key (a list or a `thinking`
section given in an entry replaces the default one). A request's model is
looked up by the name Claude Code sends, then by the provider's own model id
behind that name in LiteLLM's config (`openai/deepseek-flash` -> deepseek-flash,
addons/config/routes.py), so one entry serves every LiteLLM alias of a model. Models
found under neither use `defaults`.

`load_policy(None)` or `load_policy("")` and an empty file give the built-in
defaults. A path that was given but does not exist is an error: a mistyped
--policy must not silently run with other limits than the user wrote down.
Every problem becomes a PolicyError naming the file, the key path
(`models.deepseek-flash.max_output_tokens`), what is expected and how to fix it.
"""

from collections.abc import Collection
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError, model_validator
from pydantic_core import ErrorDetails

from addons.errors.config import ConfigError

DEFAULT_ACCEPTED_KEYS = frozenset(
    {"model", "messages", "system", "max_tokens", "stream", "temperature", "stop_sequences", "tools", "tool_choice"}
)
REQUIRED_KEYS = frozenset({"model", "messages"})
DEFAULT_BLOCK_TYPES = frozenset({"text", "image", "tool_use", "tool_result"})
THINKING_BLOCK_TYPES = frozenset({"thinking", "redacted_thinking"})
ESSENTIAL_BLOCK_TYPES = frozenset({"text", "tool_use", "tool_result"})
# The fields of an entry that name another model of the LiteLLM config.
MODEL_REFERENCES = ("vision_model", "background_model", "subagent_model", "thinking_off_model")

PositiveInt = Annotated[StrictInt, Field(gt=0)]
NonNegativeInt = Annotated[StrictInt, Field(ge=0)]
# The reasoning efforts Claude Code asks for in output_config.effort.
ClaudeEffort = Literal["low", "medium", "high", "xhigh", "max"]
# The providers' rules for tool-use ids (addons/request/tool_ids.py).
ToolIdRuleName = Literal["anthropic", "openai", "mistral"]


class ThinkingPolicy(BaseModel):
    """How a thinking model is switched, and which of its reasoning goes back to it.

    `enable`, `disable` and `effort_field` name what the backend takes on its
    OpenAI-compatible route; LiteLLM forwards them verbatim (as `extra_body`).
    On the Anthropic-compatible route LiteLLM passes Anthropic's own fields only,
    so the switch is Anthropic's `thinking.type`, or none (`anthropic_switch`);
    the effort cannot pass there. addons/request/thinking.py applies it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enable: dict[str, Any] | None = Field(
        None,
        description="a mapping of body fields that turn thinking on (DeepSeek: {thinking: {type: enabled}}), "
        "or null: no switch is sent, the backend decides",
    )
    disable: dict[str, Any] | None = Field(
        None,
        description="a mapping of body fields that turn thinking off (DeepSeek: {thinking: {type: disabled}}), "
        "or null: it cannot be turned off",
    )
    effort_field: str | None = Field(
        None, description="the body field that takes the reasoning effort (e.g. reasoning_effort), or null: none"
    )
    efforts: dict[ClaudeEffort, str | StrictInt] = Field(
        {}, description="a mapping from Claude Code's efforts (low, medium, high, xhigh, max) to the backend's values"
    )
    history: Literal["tool_turns", "all"] = Field(
        "all",
        description="all (every turn's reasoning goes back) or tool_turns (only that of turns that called tools, "
        "which saves tokens where the backend allows it)",
    )
    require_reasoning: StrictBool = Field(
        False,
        description="true or false: every assistant turn must carry reasoning (DeepSeek, Kimi; a turn without, "
        "such as one another model wrote, gets a thinking block saying it has none, on both routes)",
    )
    verifies_signatures: StrictBool | None = Field(
        None,
        description="true or false: the backend checks the signature of each thinking block sent back and refuses "
        'one another provider wrote (Anthropic\'s own models: "Invalid `signature` in `thinking` block"), so '
        "other models' thinking never reaches it (see other_models_thinking); or null: true for a model id with "
        "claude in it",
    )
    other_models_thinking: Literal["drop", "text"] = Field(
        "drop",
        description="drop or text: what becomes of thinking another model wrote (after /model, --continue with "
        "another model, a LiteLLM fallback) on its way to a backend that verifies signatures: dropped, as Claude "
        "Code itself does, or kept as a plain text block ([thinking of <model>] ...) so the reasoning still "
        "counts; a backend that does not verify gets it as it came",
    )
    anthropic_switch: Literal["thinking", "none"] = Field(
        "thinking",
        description="thinking or none: the switch on the Anthropic-compatible route, where LiteLLM (1.108.14) "
        "passes Anthropic's own fields only (chat_template_kwargs and extra_body are dropped): thinking, Anthropic's "
        "thinking {type: enabled|disabled} where enable / disable are set; none, the backend reads none of them "
        "(llama-server), so nothing is sent and its own default holds (see thinking_off_model)",
    )
    in_text: StrictBool = Field(
        False,
        description="true or false: on the OpenAI-compatible route the backend writes its reasoning at the start of "
        "the text inside <think> tags and wants it back there (MiniMax, llama-server --reasoning-format none)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> "ThinkingPolicy":
        if self.efforts and self.effort_field is None:
            raise ValueError("efforts are given but effort_field is null: name the field that takes them")
        if self.require_reasoning and self.history != "all":
            raise ValueError("require_reasoning needs history: all (the backend wants every turn's reasoning)")
        return self


class ModelPolicy(BaseModel):
    """Everything the request addon needs to know about one target model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    context_window: PositiveInt = Field(
        131072, description="a whole number above 0: tokens the model holds, prompt and answer together"
    )
    max_output_tokens: PositiveInt = Field(
        32000,
        description="a whole number above 0: the largest max_tokens the backend accepts; a request's max_tokens "
        "is capped to it",
    )
    safety_margin_tokens: NonNegativeInt = Field(
        4096,
        description="a whole number, 0 or more: tokens kept free for the estimate's error (the prompt's budget is "
        "context_window - the capped max_tokens - this margin)",
    )
    accepted_keys: frozenset[str] = Field(
        DEFAULT_ACCEPTED_KEYS,
        description="a list of top-level request keys the backend accepts, including model and messages; "
        "the rest (thinking, output_config, context_management, ...) are removed",
    )
    accepted_block_types: frozenset[str] = Field(
        DEFAULT_BLOCK_TYPES,
        description="a list of content block types the backend accepts, including text, tool_use and tool_result "
        "(thinking blocks follow `thinking`); any other becomes a text note saying what was there "
        "([image omitted: deepseek-v4-pro does not read images]) or its own text (search results, plain-text "
        "documents, tool references)",
    )
    server_tools: StrictBool = Field(
        False,
        description="true or false: the backend runs Anthropic's server tools (web_search, web_fetch, ...); "
        "if not, they are removed, with a tool_choice naming one",
    )
    max_tools: PositiveInt | None = Field(
        None,
        description="a whole number above 0: the most tools the backend takes in one request (Kimi's coding plan: "
        "128; the last ones, MCP servers', go), or null: no limit",
    )
    tool_ids: ToolIdRuleName | None = Field(
        None,
        description="anthropic, openai or mistral: the backend's rule for tool-use ids (anthropic: letters, digits, "
        "_ and -; openai: at most 40 characters; mistral: 9 letters and digits); an id another model wrote that "
        "the rule refuses is mapped to one it takes, the same in every request, and its tool_result with it; "
        "or null: none (anthropic for a model id with claude in it)",
    )
    background_model: str | None = Field(
        None,
        description="a model name of the LiteLLM config for Claude Code's background work (its haiku role, which "
        "`stabilizer aliases` exports as ANTHROPIC_DEFAULT_HAIKU_MODEL: 2.1.332 names the session there in its "
        "interactive TUI) and, by default, auto mode's classifier; or null: the model itself",
    )
    subagent_model: str | None = Field(
        None,
        description="a model name of the LiteLLM config for Claude Code's subagents (`stabilizer aliases` exports "
        "it as CLAUDE_CODE_SUBAGENT_MODEL), or null: the model itself",
    )
    vision_model: str | None = Field(
        None,
        description="a model name of the LiteLLM config that reads images: a turn that brings new images (pasted, "
        "or a screenshot the Read tool returns) goes there and the next turn comes back, its images as notes "
        "(start-up stops if that model's own entry takes no images); or null: images are replaced by a note",
    )
    thinking: ThinkingPolicy | None = Field(
        ThinkingPolicy(),
        description="a thinking section (enable, disable, effort_field, efforts, history, require_reasoning, "
        "verifies_signatures, other_models_thinking, anthropic_switch, in_text): thinking blocks stay in the "
        "history; or null for a model that never thinks: its history loses its thinking blocks",
    )
    thinking_off_model: str | None = Field(
        None,
        description="a model name of the LiteLLM config for the turns that ask thinking off on the "
        "Anthropic-compatible route when it has no switch (thinking.anthropic_switch: none): the same server's "
        "OpenAI-compatible route, where thinking.disable works; the next turn comes back; or null: such a turn "
        "goes as it is, thinking",
    )
    low_water_percent: Annotated[StrictInt, Field(ge=1, le=100)] = Field(
        70,
        description="a whole number from 1 to 100: over budget, trimming cuts down to this share of it, so the "
        "kept prefix (and the backend's prefix cache) survives many turns",
    )
    max_messages: NonNegativeInt = Field(
        0,
        description="a whole number: trim histories longer than this many messages (0 = no limit; the origin "
        'article\'s "first 10 + last 90 above 100" is max_messages: 100, keep_first_messages: 10, '
        "low_water_percent: 100)",
    )
    keep_first_messages: PositiveInt = Field(
        1, description="a whole number above 0: messages at the start of the history that trimming keeps (the task)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> "ModelPolicy":
        if self.context_window <= self.max_output_tokens + self.safety_margin_tokens:
            raise ValueError(
                f"context_window ({self.context_window}) must exceed max_output_tokens + safety_margin_tokens "
                f"({self.max_output_tokens} + {self.safety_margin_tokens}), or no prompt fits"
            )
        if missing := REQUIRED_KEYS - self.accepted_keys:
            raise ValueError(f"accepted_keys must include {', '.join(sorted(missing))}")
        if missing := ESSENTIAL_BLOCK_TYPES - self.accepted_block_types:
            raise ValueError(
                f"accepted_block_types must include {', '.join(sorted(missing))}: without them no answer or "
                f"tool call can be sent back"
            )
        if mixed := THINKING_BLOCK_TYPES & self.accepted_block_types:
            raise ValueError(
                f"accepted_block_types lists {', '.join(sorted(mixed))}: thinking blocks follow the `thinking` "
                f"section instead, remove them here"
            )
        if self.thinking_off_model is not None and (self.thinking is None or self.thinking.anthropic_switch != "none"):
            raise ValueError(
                "thinking_off_model is for a model whose Anthropic-compatible route has no switch: set "
                "thinking.anthropic_switch: none, or remove thinking_off_model"
            )
        if self.max_messages and self.max_messages < self.keep_first_messages + 2:
            raise ValueError(
                f"max_messages ({self.max_messages}) must be 0 or at least keep_first_messages + 2 "
                f"({self.keep_first_messages + 2}): the kept start and the last turn must fit"
            )
        return self

    def input_budget(self, max_tokens: Any) -> int:
        """Prompt tokens allowed when the answer may take `max_tokens` (capped like the request)."""
        answer = self.max_output_tokens
        if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and 0 < max_tokens < answer:
            answer = max_tokens
        return self.context_window - answer - self.safety_margin_tokens


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    defaults: ModelPolicy = ModelPolicy()
    models: dict[str, ModelPolicy] = {}

    @model_validator(mode="before")
    @classmethod
    def _merge_defaults_into_models(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
            return data
        defaults = data.get("defaults")
        defaults = defaults if isinstance(defaults, dict) else {}
        merged = {
            name: {**defaults, **(entry or {})} if entry is None or isinstance(entry, dict) else entry
            for name, entry in data["models"].items()
        }
        return {**data, "models": merged}

    def for_model(self, name: Any, model_id: str | None = None) -> ModelPolicy:
        """The settings for `name` (the request's `model`), else for `model_id` (the provider's
        id behind it, addons/config/routes.py), else the defaults."""
        return self.entry(name, model_id)[1]

    def entry(self, name: Any, model_id: str | None = None) -> tuple[str | None, ModelPolicy]:
        """(key_for(), for_model()) in one look-up."""
        key = self.key_for(name, model_id)
        return key, self.models.get(key, self.defaults) if key is not None else self.defaults

    def entries(self) -> dict[str, ModelPolicy]:
        """Every entry by its key path in the file: `defaults`, `models.<name>`."""
        return {"defaults": self.defaults} | {f"models.{name}": entry for name, entry in self.models.items()}

    def unknown_model_names(self, known: Collection[str]) -> list[str]:
        """A line for each model an entry names (vision_model, background_model, subagent_model, thinking_off_model)
        that is not among `known`, the LiteLLM config's model names."""
        return [
            f"{key}.{field}: {name!r} is not a model_name in the LiteLLM config; add an entry for it there "
            f"or name one that is"
            for key, entry in self.entries().items()
            for field in MODEL_REFERENCES
            if (name := getattr(entry, field)) is not None and name not in known
        ]

    def key_for(self, name: Any, model_id: str | None = None) -> str | None:
        """The entry under `models` that for_model uses; for a model without one, the name an
        entry for it would take (None when the request names no model)."""
        if isinstance(name, str) and name in self.models:
            return name
        if model_id and model_id in self.models:
            return model_id
        return name if isinstance(name, str) else None


class PolicyError(ConfigError):
    """A policy file that cannot be used; str() says where, what is wrong and what to write."""

    def __init__(self, path: str, problems: list[str]):
        self.path = path
        self.problems = problems
        super().__init__("\n".join(f"{path}: {problem}" for problem in problems))


def load_policy(path: str | None) -> Policy:
    if not path:
        return Policy()
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyError(path, ["file not found. Fix: give an existing file, or no policy for the defaults"]) from None
    except (OSError, UnicodeDecodeError) as e:
        raise PolicyError(path, [f"cannot read: {e}"]) from None
    except yaml.YAMLError as e:
        raise PolicyError(path, [f"not valid YAML: {e}"]) from None
    if raw is None:
        return Policy()
    if not isinstance(raw, dict):
        raise PolicyError(path, ["expected a mapping with `defaults:` and `models:` at the top level"])
    try:
        return Policy.model_validate(raw)
    except ValidationError as e:
        raise PolicyError(path, _describe_errors(e, raw)) from None


def _describe_errors(error: ValidationError, raw: dict) -> list[str]:
    problems = []
    for item in error.errors():
        loc = item["loc"]
        # A bad default is reported once, under `defaults`, not again for each model.
        if len(loc) >= 3 and loc[0] == "models" and loc[2] not in (raw["models"].get(loc[1]) or {}):
            continue
        problems.append(_describe(item))
    return problems


def _describe(item: ErrorDetails) -> str:
    loc = item["loc"]
    key_path = ".".join(str(part) for part in loc) or "(top level)"
    if item["type"] == "extra_forbidden":
        fields = (
            Policy.model_fields
            if len(loc) == 1
            else ThinkingPolicy.model_fields
            if "thinking" in loc[:-1]
            else ModelPolicy.model_fields
        )
        return f"{key_path}: unknown key. Fix: remove it or use one of: {', '.join(fields)}"
    # loc is ("defaults", field, ...) or ("models", name, field, ...)
    at = 1 if loc[0] == "defaults" else 2
    field_name = loc[at] if len(loc) > at else None
    field = ModelPolicy.model_fields.get(field_name) if isinstance(field_name, str) else None
    if field_name == "thinking" and len(loc) > at + 1 and isinstance(subfield := loc[at + 1], str):
        field = ThinkingPolicy.model_fields.get(subfield, field)
    if field is not None:
        got = repr(item["input"])
        got = got if len(got) <= 60 else got[:57] + "..."
        return f"{key_path}: {item['msg'].removeprefix('Value error, ')} (got {got}). Expected {field.description}"
    # Cross-field checks and section shapes: pydantic's message says what to change.
    return f"{key_path}: {item['msg'].removeprefix('Value error, ')}"
