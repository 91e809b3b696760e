"""How Claude Code's thinking controls reach a thinking backend, and its reasoning goes back.

Claude Code asks with two fields: `thinking` (`{"type": "adaptive"}`,
`{"type": "enabled", "budget_tokens": N}` or `{"type": "disabled"}`, which it
sends for some subagents) and `output_config.effort` (low, medium, high,
xhigh, max). Neither may reach LiteLLM as it is. On the OpenAI-compatible route
LiteLLM turns `thinking` into `reasoning_effort` ("none" for disabled, a value
DeepSeek does not know), and `enabled` sends the call to the Responses API,
which DeepSeek and Qwen gateways do not serve. So shaping strips both, and
`apply_thinking` writes what the model's policy (`thinking` section) says its
backend takes:

    Claude Code asks           OpenAI-compatible route         Anthropic-compatible route
                               (LiteLLM's extra_body, verbatim)  (anthropic_switch: thinking)
    adaptive / enabled         enable + effort_field: effort   thinking {type: enabled}
    disabled                   disable                         thinking {type: disabled}
    nothing                    effort_field: effort, if asked  nothing

On the Anthropic-compatible route LiteLLM (1.108.14) passes only the fields of Anthropic's own
request: chat_template_kwargs and extra_body, in the body or in the deployment's litellm_params,
never reach the backend (measured in front of llama-server, 2026-12-06). A backend that takes
none of Anthropic's fields as its switch has `anthropic_switch: none` and gets nothing: llama-server
thinks on `thinking: {type: disabled}` and on `enabled` with any budget_tokens (llama.cpp 1652066,
measured; its server_chat_convert_anthropic_to_oai reads `enabled` as a reasoning budget only,
10000 tokens without budget_tokens, read 2026-12-06). A turn that asks thinking off there goes to
the entry's `thinking_off_model` when it names one, the same server's OpenAI-compatible route,
where `disable` works; the next turn comes back.

On the Anthropic-compatible route the effort stays behind: LiteLLM's (1.108.7,
1.108.14) anthropic/ (and deepseek/) provider removes `output_config.effort`, and the
`thinking` beside it, for any model its cost map does not list as taking an
effort (measured; `model_info` in the LiteLLM config does not change it), so
the backend's own default effort applies there (DeepSeek: high, max for agent
requests such as Claude Code's).

The effort is output_config.effort, or for `enabled` without one the band of
its budget (BUDGET_BANDS), mapped by `efforts` to the backend's own value; an
effort the mapping lacks is not sent, so the backend's default applies. A part
the policy leaves null is not sent: with no `disable` (MiniMax cannot turn
thinking off) a disabled request goes out without a switch, and the change
says so. A model whose policy has `thinking: null` gets neither field.

On the way back the backend needs its reasoning: LiteLLM (1.108.7, 1.108.14) puts an
assistant turn's thinking blocks back on its Chat Completions message as
`reasoning_content` (measured), so the blocks stay in the history (shaping
keeps them unless `thinking` is null; `history: tool_turns` keeps only those
of turns that called tools). DeepSeek refuses a request with tools in which
any earlier assistant turn lacks reasoning_content, even an empty one; LiteLLM
writes none for a turn without thinking, so `require_reasoning` gives such a
turn a thinking block that says it has none (PLACEHOLDER_REASONING, added by
addons/request/shaping.py while it strips each message, so a session's next turn finds
it in the memo). DeepSeek's Anthropic-compatible endpoint has the same rule for
thinking blocks ("The `content[].thinking` in the thinking mode must be passed
back to the API."), so the note goes on both routes; a session that began on
another model, whose thinking Claude Code drops on /model and --continue, stays
usable.

Which model wrote a thinking block is in its signature (addons/messages/provenance.py),
and `returned_thinking` decides by it: the target's own blocks go back exactly as
the provider wrote them, signature included; another model's reach a target that
verifies signatures (Anthropic's own models, `verifies_signatures`) never, but are
dropped or become text (`other_models_thinking`), and reach any other target with
their writer's own signature.
"""

from typing import Any, NamedTuple, TypeGuard, get_args

from addons.config.policy import ClaudeEffort, ModelPolicy, ThinkingPolicy
from addons.config.routes import ANTHROPIC, OPENAI
from addons.flow.change import Change, ChangeKind
from addons.messages.provenance import unwrap

# `enabled` with a budget and no effort: the effort of the budget's band
# (budget_tokens up to the bound -> effort). Claude Code's own MAX_THINKING_TOKENS
# default is 31999, which lands on high.
BUDGET_BANDS = ((4096, "low"), (16384, "medium"), (32000, "high"))
# Text, not just whitespace: LiteLLM drops an unsigned thinking block with blank text.
PLACEHOLDER_REASONING = {"type": "thinking", "thinking": "(no reasoning recorded for this turn)", "signature": ""}
CLAUDE_EFFORTS = frozenset(get_args(ClaudeEffort))


def _is_claude_effort(effort: str | None) -> TypeGuard[ClaudeEffort]:
    """An effort `efforts` can map (the client may send any string)."""
    return effort in CLAUDE_EFFORTS


def requested(request: dict) -> tuple[str | None, str | None]:
    """(mode, effort) Claude Code asked for: mode "on", "off" or None (said nothing)."""
    thinking = request.get("thinking")
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    config = request.get("output_config")
    effort = config.get("effort") if isinstance(config, dict) else None
    effort = effort if isinstance(effort, str) else None
    if kind == "disabled":
        return "off", None
    if kind == "enabled" and effort is None and isinstance(thinking, dict):  # (kind is read from a dict)
        budget = thinking.get("budget_tokens")
        if isinstance(budget, int) and not isinstance(budget, bool):
            effort = next((band for bound, band in BUDGET_BANDS if budget <= bound), "max")
    return ("on" if kind in ("adaptive", "enabled") else None), effort


def apply_thinking(
    original: dict, shaped: dict, policy: ThinkingPolicy | None, route: str, signatures_checked: bool = False
) -> tuple[dict, list[Change]]:
    """`shaped` (whose thinking fields shaping removed) with the backend's own thinking fields
    for what `original` asked, none for a turn that answers another model's tool call where the
    backend has its `signatures_checked` (without_thinking_after_another_models_call). Returns the
    request and the changes made."""
    request, changes = _switched(original, shaped, policy, route)
    if signatures_checked:
        request, off = without_thinking_after_another_models_call(request)
        changes += off
    return request, changes


def _switched(original: dict, shaped: dict, policy: ThinkingPolicy | None, route: str) -> tuple[dict, list[Change]]:
    """`shaped` with the backend's own switch and effort for what `original` asked."""
    if policy is None:
        return shaped, []
    mode, effort = requested(original)
    switch = policy.enable if mode == "on" else policy.disable if mode == "off" else None
    value = policy.efforts.get(effort) if _is_claude_effort(effort) and mode != "off" and policy.effort_field else None
    changes = []
    if mode == "off" and policy.disable is None:
        changes.append(Change(ChangeKind.THINKING, "thinking stays on: this model cannot turn it off"))
    if switch is None and value is None:
        return shaped, changes
    if route == ANTHROPIC:
        if policy.anthropic_switch == "none":
            if mode == "off" and policy.disable is not None:
                changes.append(Change(ChangeKind.THINKING, "thinking stays on: this route takes no switch"))
            return shaped, changes
        if switch is None:
            return shaped, changes
        added: dict[str, Any] = {"thinking": {"type": "enabled" if mode == "on" else "disabled"}}
        asked = f"thinking {mode}" + (", effort left to the backend" if effort else "")
    else:
        added = {"extra_body": {**(switch or {}), **({policy.effort_field: value} if value is not None else {})}}
        asked = f"thinking {mode or 'unset'}, effort {effort or 'unset'}"
    described = ", ".join(f"{key}={_compact(item)}" for key, item in added.items())
    return {**shaped, **added}, [*changes, Change(ChangeKind.THINKING, f"{asked} -> {described}")]


def thinking_off_model(request: dict, policy: ModelPolicy, route: str) -> str | None:
    """The model of the LiteLLM config a turn goes to because it asks thinking off on an
    Anthropic-compatible route without a switch (ModelPolicy.thinking_off_model), or None."""
    thinking, model = policy.thinking, policy.thinking_off_model
    if route != ANTHROPIC or thinking is None or thinking.anthropic_switch != "none" or model is None:
        return None
    return model if requested(request)[0] == "off" and model != request.get("model") else None


def without_thinking_after_another_models_call(request: dict) -> tuple[dict, list[Change]]:
    """`request` without thinking when it answers a tool call whose turn does not start with
    thinking (another model's, its thinking dropped for a backend that checks signatures).
    Anthropic's models refuse that with thinking on: "When `thinking` is enabled, a final
    `assistant` message must start with a thinking block (preceeding the lastmost set of
    `tool_use` and `tool_result` blocks) ... To avoid this requirement, disable `thinking`."
    (quoted in OpenRouterTeam/ai-sdk-provider#162 and anomalyco/opencode#3077, read 2026-12-06).
    This turn alone goes without; the next prompt thinks again."""
    thinking = request.get("thinking")
    if not (isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")):
        return request, []
    messages = request["messages"]
    content = messages[-1].get("content") if messages and isinstance(messages[-1], dict) else None
    if not (isinstance(content, list) and any(_is_type(block, "tool_result") for block in content)):
        return request, []
    opened = next(
        (m.get("content") for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "assistant"), None
    )
    if not isinstance(opened, list) or not opened or _is_type(opened[0], "thinking", "redacted_thinking"):
        return request, []
    off = "thinking off for this turn: the tool call it answers starts without this model's thinking"
    return {key: value for key, value in request.items() if key != "thinking"}, [Change(ChangeKind.THINKING, off)]


def _is_type(block: object, *types: str) -> bool:
    return isinstance(block, dict) and block.get("type") in types


def reasoning_in_text(policy: ThinkingPolicy | None, route: str) -> bool:
    """Whether the backend's reasoning travels inside <think> tags in the text on this route
    (addons/messages/think_tags.py)."""
    return policy is not None and policy.in_text and route == OPENAI


def needs_reasoning_note(policy: ThinkingPolicy | None) -> bool:
    """Whether assistant turns without reasoning get a note: on either route, since the backend
    refuses the request on both (DeepSeek's Anthropic-compatible endpoint as "The
    `content[].thinking` in the thinking mode must be passed back to the API.")."""
    return policy is not None and policy.require_reasoning


class Provenance(NamedTuple):
    """What a target does with thinking blocks by their origin (addons/messages/provenance.py).
    A tuple: it is part of every message's memo key, hashed at each lookup (a dataclass's hash
    is a Python call)."""

    target: str  # the provider's model id the request goes to
    verifies: bool  # the backend refuses a signature another provider wrote
    other_models_thinking: str  # "drop" or "text": another model's thinking, for a target that verifies


def provenance_for(policy: ThinkingPolicy | None, target: str) -> Provenance | None:
    """How thinking blocks go back to `target` (None: a model that never thinks loses them anyway)."""
    if policy is None:
        return None
    return Provenance(target, checks_signatures(policy, target), policy.other_models_thinking)


def checks_signatures(policy: ThinkingPolicy | None, target: str) -> bool:
    """Whether the backend of `target` (a provider's model id) refuses a thinking signature
    another provider wrote: verifies_signatures, else whether it is one of Anthropic's own
    models; a model that never thinks (no policy) checks nothing."""
    if policy is None:
        return False
    return "claude" in target.lower() if policy.verifies_signatures is None else policy.verifies_signatures


class ThinkingPlan(NamedTuple):
    """What thinking means for one request's target, decided once for the whole of its shaping."""

    provenance: Provenance | None  # how thinking blocks go back by their origin; None: as they came
    note_reasoning: bool  # an assistant turn without reasoning gets PLACEHOLDER_REASONING
    in_text: bool  # the backend's reasoning travels inside <think> tags in the text
    checks_signatures: bool  # the backend refuses a thinking signature another provider wrote


def plan_thinking(policy: ThinkingPolicy | None, route: str, target: str, provenance: bool = True) -> ThinkingPlan:
    """The plan for `target` (a provider's model id) on `route`; `provenance` false: every
    thinking block goes back as it came, whoever wrote it."""
    origins = provenance_for(policy, target) if provenance else None
    return ThinkingPlan(
        origins,
        # A note is unsigned: a backend that checks signatures would refuse it.
        needs_reasoning_note(policy) and not (origins is not None and origins.verifies),
        reasoning_in_text(policy, route),
        checks_signatures(policy, target),
    )


def returned_thinking(block: dict, provenance: Provenance) -> tuple[dict | None, str]:
    """A thinking block of the history as the target gets it, and what was done ("" for nothing).

    The same model's comes back exactly as it came, its signature unwrapped. Another
    model's reaches a target that verifies signatures never: it is dropped or becomes
    text (other_models_thinking); any other target gets it with the writer's own
    signature. A block without an origin (it never passed the stack, or did before
    provenance existed) goes as it is, except to a target that verifies: nothing says it
    wrote it, and a refusal would cost the whole turn where a drop costs a thought."""
    origin, signature = unwrap(block.get("signature"))
    if origin == provenance.target or not provenance.verifies:
        if origin is None:
            return block, ""
        return {**block, "signature": signature}, "unwrapped"
    if provenance.other_models_thinking == "drop":
        return None, "dropped"
    thought = block.get("thinking")
    text = f"[thinking of {origin or 'another model'}]\n{thought if isinstance(thought, str) else ''}"
    return {"type": "text", "text": text}, "as text"


def _compact(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {_compact(item)}" for key, item in value.items()) + "}"
    return str(value)
