"""Fold, strip, cap and think: a Claude Code request made acceptable to the target model.

Pure functions over the parsed request. They never mutate their input and never
deep-copy it: a changed message is a shallow copy, everything else is shared, so
a 2 MB history costs a walk, not a copy.

- fold: `{"role": "system"}` entries inside `messages` (Claude Code's
  mid-conversation system messages; older LiteLLMs dropped them, 1.108.7 and
  1.108.14 make each a user turn behind an "Operator note" on the
  OpenAI-compatible route and pass it on unchanged on the Anthropic one) become
  `<system-reminder>` text blocks in the neighbouring user turn, never between
  the tool results of one assistant turn (`defers_text`). One whose content is
  not text stays where it is, for validation to refuse.
- strip: top-level keys outside the model's allow-list, `cache_control` and
  citations everywhere, server tools (and a `tool_choice` naming one), tool
  fields beyond name, description and schema, tools over `max_tools`; a
  content block the backend does not take becomes a text note saying what was
  there (thinking blocks follow the model's `thinking` section instead: all
  kept, only those of tool-calling turns, or none, each as its origin allows:
  addons/request/thinking.py returned_thinking); a tool_use input that is
  not an object is repaired; tool-use ids the backend refuses (another model wrote them)
  are mapped to ones it takes, each tool_result's with its tool_use's
  (addons/request/tool_ids.py).
- cap: `max_tokens` down to the model's `max_output_tokens`.
- think: Claude Code's `thinking` and `output_config.effort` written as the
  backend's own switch and effort, and reasoning filled in where the backend
  needs every turn's (addons/request/thinking.py).

The client's `stream` choice is never touched.
"""

import ast
import collections
import dataclasses
import functools
import itertools
import json
import operator
from dataclasses import dataclass
from typing import Any

from addons.config.policy import THINKING_BLOCK_TYPES, ModelPolicy
from addons.config.routes import OPENAI
from addons.flow.change import Change, ChangeKind
from addons.messages.memo import Kind, Memo, interned
from addons.messages.think_tags import joined_message
from addons.request.thinking import (
    PLACEHOLDER_REASONING,
    Provenance,
    ThinkingPlan,
    apply_thinking,
    plan_thinking,
    returned_thinking,
    thinking_off_model,
)
from addons.request.tool_ids import IdRule, mapped_id, rule_for

SYSTEM_REMINDER = "<system-reminder>\n{}\n</system-reminder>"


@dataclass(frozen=True)
class Shaped:
    request: dict
    changes: list[Change]
    # The <system-reminder> texts folded from system messages: trimming must not lose them.
    reminders: list[str]


def shape_request(
    request: dict,
    policy: ModelPolicy,
    *,
    cap: bool = True,
    memo: Memo | None = None,
    route: str = OPENAI,
    target: str | None = None,
    litellm_keys: frozenset[str] = frozenset(),
    thinking: ThinkingPlan | None = None,
) -> Shaped:
    """Fold, strip, (unless `cap` is false) cap, and think; `request["messages"]` must be a list.

    `route`: how LiteLLM reaches the backend (addons/config/routes.py), which decides how
    thinking is written. `target`: the provider's model id behind it, which decides which
    thinking blocks are its own (addons/messages/provenance.py); None: the request's model.
    `thinking`: what thinking means for the target (addons/request/thinking.py, plan_thinking);
    None: the plan for `target` on `route`, provenance on.
    `memo`: results for values seen before (see strip_unaccepted). `litellm_keys`: keys LiteLLM
    answers itself and keeps from the backend, kept whatever the policy."""
    original = request
    target = target or _model_of(request)
    thinking = thinking or plan_thinking(policy.thinking, route, target)
    request, reminders = fold_system_messages(request, memo)
    request, changes = strip_unaccepted(request, policy, memo, target, litellm_keys, thinking)
    if reminders:
        changes.insert(0, Change(ChangeKind.FOLDED, f"folded {len(reminders)} system messages"))
    if cap:
        request, capped = cap_max_tokens(request, policy)
        changes += capped
    request, thought = apply_thinking(original, request, policy.thinking, route, thinking.checks_signatures)
    return Shaped(request, changes + thought, reminders)


# --- fold ---------------------------------------------------------------------------------


def fold_system_messages(request: dict, memo: Memo | None = None) -> tuple[dict, list[str]]:
    """Move the text of each system message into a user turn, keeping the order of events.

    A system message goes to the start of the next user turn (after its tool_result
    blocks, which the API wants first) when the next turn is the user's, or past it
    while `defers_text`; otherwise to the end of the previous user turn; between two
    assistant turns, or with no user turn around, it becomes a user turn of its own.
    A system message whose content is not text (see `_system_text`) is kept as it is,
    for validation to refuse: its content is never dropped. Returns the new request
    and the folded texts. A user turn that took the same texts before (in `memo`)
    gives the same copy again.
    """
    messages = request["messages"]
    if not any(role_of(message) == "system" for message in messages):
        return request, []
    if memo is None:
        memo = Memo()
    folded: list[Any] = []
    pending: list[dict] = []
    reminders: list[str] = []
    for index, message in enumerate(messages):
        role = role_of(message)
        if role == "system" and (text := _system_text(message.get("content"))) is not None:
            if text:
                reminders.append(SYSTEM_REMINDER.format(text))
                pending.append({"type": "text", "text": reminders[-1]})
            continue
        if pending and not (role == "user" and defers_text(messages, index)):
            if role == "user":
                message = _with_reminders(message, pending, memo)
            else:
                _append_to_previous_user_turn(folded, pending, memo)
            pending = []
        folded.append(message)
    if pending:
        _append_to_previous_user_turn(folded, pending, memo)
    return {**request, "messages": folded}, reminders


def _append_to_previous_user_turn(folded: list[Any], blocks: list[dict], memo: Memo) -> None:
    if folded and role_of(folded[-1]) == "user":
        folded[-1] = _with_reminders(folded[-1], blocks, memo, at_end=True)
    else:
        folded.append({"role": "user", "content": list(blocks)})


def _with_reminders(message: dict, blocks: list[dict], memo: Memo, *, at_end: bool = False) -> dict:
    kind = (Kind.FOLD, at_end, *(block["text"] for block in blocks))
    return memo.get(kind, message, lambda message: add_text_blocks(message, blocks, at_end=at_end))


def _system_text(content: Any) -> str | None:
    """The text of a system message's content (a string, text blocks, or one text block
    object); None when it holds anything else, which folding would lose."""
    if isinstance(content, str):
        return content
    blocks = [content] if isinstance(content, dict) else content
    if isinstance(blocks, list) and all(
        isinstance(block, dict) and isinstance(block.get("text"), str) for block in blocks
    ):
        return "\n".join(block["text"] for block in blocks)
    return None


def defers_text(messages: list, index: int) -> bool:
    """Whether text meant for the user turn `messages[index]` must go to a later turn: it
    holds only tool results, and the next turn (system messages aside) is the user's too.

    Anthropic merges consecutive user turns, so an assistant turn's tool results may come
    split over several. LiteLLM makes each user turn its tool messages, then a user
    message with its text; a text before the last of those results would stand between
    the assistant's tool calls and their tool messages, which OpenAI-compatible backends
    refuse ("An assistant message with 'tool_calls' must be followed by tool messages").
    """
    if not _results_only(messages[index]):
        return False
    following = next(
        (message for message in itertools.islice(messages, index + 1, None) if role_of(message) != "system"), None
    )
    return role_of(following) == "user"


def _results_only(message: Any) -> bool:
    content = message.get("content") if role_of(message) == "user" else None
    return isinstance(content, list) and bool(content) and all(_block_type(block) == "tool_result" for block in content)


def add_text_blocks(message: dict, blocks: list[dict], *, at_end: bool = False) -> dict:
    """A copy of the user `message` with `blocks` added at its end, or at its start but
    after its leading tool_result blocks (the API wants those first in a user turn)."""
    content = _as_blocks(message.get("content"))
    position = len(content)
    if not at_end:
        position = 0
        while position < len(content) and _block_type(content[position]) == "tool_result":
            position += 1
    return {**message, "content": [*content[:position], *blocks, *content[position:]]}


# --- strip --------------------------------------------------------------------------------

# What a custom tool definition keeps: newer fields (defer_loading, input_examples, strict,
# cache_control, ...) mean nothing to these backends, and one that checks its input refuses them.
TOOL_KEYS = frozenset({"type", "name", "description", "input_schema"})
# Fields of a block no backend behind LiteLLM takes: Anthropic's prompt caching and citations.
CACHE_CONTROL = "cache_control"
CITATIONS = "citations"
# Python's literal parser only ever sees strings up to this size (a repaired tool input).
LITERAL_PARSE_LIMIT = 1 << 20
# Where a block holds a tool-use id: a tool_use its own, a tool_result that of its tool_use.
TOOL_ID_FIELDS = {"tool_use": "id", "tool_result": "tool_use_id"}
INVALID_ARGUMENTS_NOTE = "the model wrote these arguments as something other than a JSON object"


def strip_unaccepted(
    request: dict,
    policy: ModelPolicy,
    memo: Memo | None = None,
    target: str | None = None,
    litellm_keys: frozenset[str] = frozenset(),
    thinking: ThinkingPlan | None = None,
) -> tuple[dict, list[Change]]:
    """Make every part of the request something the backend takes. Returns the new request and changes.

    Keys outside the allow-list (and `litellm_keys`) go; a content block of a type the backend does not take
    becomes a text block saying what was there (see `replacement_block`), thinking blocks
    apart, which follow the `thinking` section; a tool_use whose input is not an object is
    repaired (`repaired_input`), and a tool-use id the target's rule refuses is mapped, in
    its tool_use and its tool_result alike (addons/request/tool_ids.py); server tools (unless
    `server_tools`), tool fields outside TOOL_KEYS and tools over `max_tools` go. Each message, the system prompt and the tool list are stripped on their
    own, so the result for a value is found in `memo` when the same object comes again (a
    session's next turn, addons/request/history.py). In the same pass, as `thinking` plans
    (by default the OpenAI-compatible route's plan for `target`), an assistant turn without
    reasoning gets its note where the backend needs every turn's, and each thinking block goes
    back as its origin allows (addons/request/thinking.py: returned_thinking).
    """
    changes: list[Change] = []
    kept = policy.accepted_keys | litellm_keys
    shaped = {key: value for key, value in request.items() if key in kept}
    if stripped := [key for key in request if key not in kept]:
        changes.append(Change(ChangeKind.STRIPPED, f"stripped keys: {', '.join(stripped)}"))

    named = _model_of(request) or "this model"
    target = target or named
    thinking = thinking or plan_thinking(policy.thinking, OPENAI, target)
    stripper = _BlockStripper(
        policy,
        Memo() if memo is None else memo,
        thinking.note_reasoning,
        named,
        thinking.in_text,
        thinking.provenance,
        rule_for(policy.tool_ids, target),
    )
    if isinstance(system := shaped.get("system"), list):
        shaped["system"] = stripper.blocks(system)
    if isinstance(tools := shaped.get("tools"), list):
        changes += _strip_tools(shaped, tools, stripper, policy.max_tools)
    shaped["messages"] = stripper.messages(shaped["messages"])
    changes += stripper.changes()
    # Every edit above is reported, so no change reported means an identical request.
    return (shaped, changes) if changes else (request, [])


def _strip_tools(shaped: dict, tools: list, stripper: "_BlockStripper", max_tools: int | None) -> list[Change]:
    kept = stripper.tools(tools)
    changes = []
    if len(kept) < len(tools):
        removed = [_tool_name(tool) for tool in tools if not _is_custom_tool(tool)]
        changes.append(Change(ChangeKind.STRIPPED, f"removed server tools: {', '.join(removed)}"))
    if max_tools is not None and len(kept) > max_tools:
        # Claude Code lists its own tools first and MCP servers' after: the latter go.
        over = kept[max_tools:]
        kept = kept[:max_tools]
        over_limit = f"removed {len(over)} tools over the model's limit of {max_tools}: " + ", ".join(
            map(_tool_name, over)
        )
        changes.append(Change(ChangeKind.STRIPPED, over_limit))
    if not changes:
        shaped["tools"] = kept
        return []
    if kept:
        shaped["tools"] = kept
    else:
        del shaped["tools"]
    choice = shaped.get("tool_choice")
    names = [tool.get("name") for tool in kept]
    if "tool_choice" in shaped and (
        not kept or (isinstance(choice, dict) and choice.get("type") == "tool" and choice.get("name") not in names)
    ):
        del shaped["tool_choice"]
        changes.append(Change(ChangeKind.STRIPPED, "dropped tool_choice naming a removed tool"))
    return changes


def _is_custom_tool(tool: Any) -> bool:
    # Server tools (web_search_20250305, bash_20250124, ...) carry a versioned `type`.
    return isinstance(tool, dict) and tool.get("type", "custom") == "custom"


def _tool_name(tool: Any) -> str:
    return str(tool.get("name") or tool.get("type")) if isinstance(tool, dict) else repr(tool)


@dataclass(frozen=True)
class _Stripped:
    """One value stripped on its own: the result (None: a message left empty) and what went."""

    value: Any
    cache_controls: int = 0
    removed_blocks: tuple[str, ...] = ()  # the type of each block removed, in order
    replaced_blocks: tuple[str, ...] = ()  # the type of each block replaced by a note
    removed_fields: tuple[str, ...] = ()  # each other field removed from a block or a tool
    repaired_inputs: int = 0
    mapped_ids: int = 0  # tool_use ids and tool_result tool_use_ids put in the target's form
    returned_thinking: tuple[str, ...] = ()  # what was done to each thinking block by its origin
    noted: bool = False  # an assistant turn given a no-reasoning note
    tagged: bool = False  # an assistant turn whose thinking went back into <think> tags

    def add(self, other: "_Stripped") -> "_Stripped":
        """This result's value with both tallies."""
        if not other.changed:  # nearly always: a memo hit, an untouched block
            return self
        return dataclasses.replace(
            self,
            cache_controls=self.cache_controls + other.cache_controls,
            removed_blocks=self.removed_blocks + other.removed_blocks,
            replaced_blocks=self.replaced_blocks + other.replaced_blocks,
            removed_fields=self.removed_fields + other.removed_fields,
            repaired_inputs=self.repaired_inputs + other.repaired_inputs,
            mapped_ids=self.mapped_ids + other.mapped_ids,
            returned_thinking=self.returned_thinking + other.returned_thinking,
        )

    def holding(self, value: Any) -> "_Stripped":
        """This tally with `value` as its result."""
        return _Stripped(value) if self is _NOTHING else dataclasses.replace(self, value=value)

    # Asked of every message's result on every request, nearly always of a memo hit's same
    # object: worked out once per object, then one attribute read instead of a call.
    @functools.cached_property
    def changed(self) -> bool:
        return bool(
            self.cache_controls
            or self.removed_blocks
            or self.replaced_blocks
            or self.removed_fields
            or self.repaired_inputs
            or self.mapped_ids
            or self.returned_thinking
        )


# The tally of a value left as it was, as most are: shared, so a first-seen history's blocks
# cost no tally object each.
_NOTHING = _Stripped(None)


def _removed_cache_controls(count: int) -> _Stripped:
    return _Stripped(None, count) if count else _NOTHING


class _BlockStripper:
    """Walks content blocks, copying only what changes, and tallies what it changed.

    Unchanged values come out as the same objects, changed ones as copies, and
    both are kept in the memo under the value they came from: next turn the
    same message gives the same object again, whose estimate is in the memo too.
    """

    def __init__(
        self,
        policy: ModelPolicy,
        memo: Memo,
        note_reasoning: bool = False,
        model: str = "this model",
        think_tags: bool = False,
        provenance: Provenance | None = None,
        id_rule: IdRule | None = None,
    ):
        thinking = policy.thinking
        self.provenance = provenance
        self.id_rule = id_rule  # the target's rule for tool-use ids, if it has one
        self.think_tags = think_tags  # thinking goes back inside <think> tags in the text
        self.accepted = policy.accepted_block_types | (THINKING_BLOCK_TYPES if thinking is not None else set())
        self.note_reasoning = note_reasoning
        self.model = model  # named in the notes that replace blocks
        self.server_tools = policy.server_tools
        self.strip_message = self._message_stripper(self.accepted)
        # history: tool_turns -- a turn that called no tool loses its reasoning.
        self.without_reasoning = None
        if thinking is not None and thinking.history == "tool_turns":
            self.without_reasoning = self._message_stripper(policy.accepted_block_types)
        self.memo = memo
        self.tally = _NOTHING
        self.dropped_messages = 0
        self.noted_messages = 0
        self.tagged_messages = 0

    def blocks(self, blocks: list) -> list:
        kind = (Kind.STRIP_BLOCKS, self.accepted, self.model, self.id_rule)
        return self._tallied(self.memo.get(kind, blocks, self._strip_blocks))

    def tools(self, tools: list) -> list:
        keep_server = self.server_tools
        return self._tallied(
            self.memo.get((Kind.STRIP_TOOLS, keep_server), tools, lambda value: _accepted_tools(value, keep_server))
        )

    def messages(self, messages: list) -> list:
        out: list[Any] = []
        after_drop = False
        for message in messages:
            kind, strip = self.strip_message
            if self.without_reasoning is not None and not _calls_tools(message):
                kind, strip = self.without_reasoning
            shaped = self._tallied(self.memo.get(kind, message, strip))
            if shaped is None:
                # Nothing the backend takes is left (a thinking-only turn): drop the turn
                # and join its neighbours, so the roles still alternate.
                self.dropped_messages += 1
                after_drop = True
                continue
            if after_drop and out and role_of(shaped) is not None and role_of(out[-1]) == role_of(shaped):
                out[-1] = _joined(out[-1], shaped)
            else:
                out.append(shaped)
            after_drop = False
        return out

    def changes(self) -> list[Change]:
        tally, changes = self.tally, []
        if tally.cache_controls:
            changes.append(Change(ChangeKind.STRIPPED, f"removed cache_control x{tally.cache_controls}"))
        if tally.removed_fields:
            changes.append(Change(ChangeKind.STRIPPED, "removed fields: " + _counted(tally.removed_fields)))
        if tally.removed_blocks:
            changes.append(Change(ChangeKind.STRIPPED, "removed blocks: " + _counted(tally.removed_blocks)))
        if tally.replaced_blocks:
            replaced = f"replaced blocks {self.model} does not take with notes: " + _counted(tally.replaced_blocks)
            changes.append(Change(ChangeKind.STRIPPED, replaced))
        if tally.repaired_inputs:
            repaired = f"repaired tool_use input that was not an object x{tally.repaired_inputs}"
            changes.append(Change(ChangeKind.REPAIRED, repaired))
        if tally.mapped_ids:
            mapped = f"mapped {tally.mapped_ids} tool ids to the form {self.model} takes"
            changes.append(Change(ChangeKind.REPAIRED, mapped))
        if self.dropped_messages:
            changes.append(Change(ChangeKind.STRIPPED, f"dropped {self.dropped_messages} messages left empty"))
        if self.noted_messages:
            noted = f"added a no-reasoning note to {self.noted_messages} assistant turns"
            changes.append(Change(ChangeKind.THINKING, noted))
        if tally.returned_thinking:
            returned = "thinking blocks by their origin: " + _counted(tally.returned_thinking)
            changes.append(Change(ChangeKind.THINKING, returned))
        if self.tagged_messages:
            tagged = f"wrote the thinking of {self.tagged_messages} assistant turns back inside <think> tags"
            changes.append(Change(ChangeKind.THINKING, tagged))
        return changes

    def _tallied(self, stripped: _Stripped) -> Any:
        self.tally = self.tally.add(stripped)
        self.noted_messages += stripped.noted
        self.tagged_messages += stripped.tagged
        return stripped.value

    def _message_stripper(self, accepted: frozenset[str]) -> tuple[str, Any]:
        """(memo kind, function) that strips one message down to `accepted`."""
        kind = interned(
            (
                Kind.STRIP_MESSAGE,
                accepted,
                self.note_reasoning,
                self.model,
                self.think_tags,
                self.provenance,
                self.id_rule,
            )
        )
        return kind, lambda message: self._strip_message(message, accepted)

    def _strip_message(self, message: Any, accepted: frozenset[str]) -> _Stripped:
        shaped, cache_controls = _without_cache_control(message)
        if not isinstance(shaped, dict):
            return _Stripped(shaped, cache_controls)
        tally = _removed_cache_controls(cache_controls)
        if isinstance(content := shaped.get("content"), list):
            kept = self._strip_blocks(content, accepted)
            tally = tally.add(kept)
            if not kept.value and content:
                return tally
            if kept.value is not content:
                shaped = {**shaped, "content": kept.value}
        if self.note_reasoning and (noted := with_reasoning_note(shaped)) is not shaped:
            return dataclasses.replace(tally, value=noted, noted=True)
        if self.think_tags and (tagged := joined_message(shaped)) is not shaped:
            return dataclasses.replace(tally, value=tagged, tagged=True)
        return tally.holding(shaped)

    def _strip_blocks(self, blocks: list, accepted: frozenset[str] | None = None) -> _Stripped:
        accepted = self.accepted if accepted is None else accepted
        kept = []
        tally = _NOTHING
        for block in blocks:
            if isinstance(block, dict):
                kind = block.get("type")
                if isinstance(kind, str) and kind not in accepted:
                    if kind in THINKING_BLOCK_TYPES:
                        tally = tally.add(_Stripped(None, removed_blocks=(kind,)))
                        continue
                    block = replacement_block(block, self.model)
                    tally = tally.add(_Stripped(None, replaced_blocks=(kind,)))
                elif kind == "thinking" and self.provenance is not None:
                    returned, done = returned_thinking(block, self.provenance)
                    if done:
                        tally = tally.add(_Stripped(None, returned_thinking=(done,)))
                    if returned is None:
                        continue
                    block = returned
                else:
                    block, fixed = self._strip_block(block, kind, accepted)
                    tally = tally.add(fixed)
            kept.append(block)
        unchanged = not tally.changed and all(map(operator.is_, kept, blocks))
        return tally.holding(blocks if unchanged else kept)

    def _strip_block(self, block: dict, kind: Any, accepted: frozenset[str]) -> tuple[dict, _Stripped]:
        """An accepted block without the fields no backend takes, and with what it holds stripped."""
        block, cache_controls = _without_cache_control(block)
        tally = _removed_cache_controls(cache_controls)
        if kind == "text" and CITATIONS in block:
            block = {key: value for key, value in block.items() if key != CITATIONS}
            tally = tally.add(_Stripped(None, removed_fields=(CITATIONS,)))
        elif kind == "tool_use" and (repaired := repaired_input(block.get("input"))) is not None:
            block = {**block, "input": repaired}
            tally = tally.add(_Stripped(None, repaired_inputs=1))
        elif kind == "tool_result" and isinstance(nested := block.get("content"), list):
            inner = self._strip_blocks(nested, accepted)
            tally = tally.add(inner)
            if inner.value is not nested:
                block = {**block, "content": inner.value}
        if self.id_rule is not None and isinstance(kind, str) and (field := TOOL_ID_FIELDS.get(kind)) is not None:
            if isinstance(tool_id := block.get(field), str) and (mapped := mapped_id(tool_id, self.id_rule)) != tool_id:
                block = {**block, field: mapped}
                tally = tally.add(_Stripped(None, mapped_ids=1))
        return block, tally


def _accepted_tools(tools: list, keep_server: bool) -> _Stripped:
    """The custom tools, with only the fields in TOOL_KEYS, and the server tools if `keep_server`."""
    custom = []
    tally = _NOTHING
    for tool in tools:
        if keep_server and not _is_custom_tool(tool):
            custom.append(tool)
        elif _is_custom_tool(tool):
            if extra := [key for key in tool if key not in TOOL_KEYS]:
                tool = {key: value for key, value in tool.items() if key in TOOL_KEYS}
                cache_controls = extra.count(CACHE_CONTROL)
                fields = tuple(key for key in extra if key != CACHE_CONTROL)
                tally = tally.add(_Stripped(None, cache_controls, removed_fields=fields))
            custom.append(tool)
    unchanged = len(custom) == len(tools) and all(map(operator.is_, custom, tools))
    return tally.holding(tools if unchanged else custom)


def _without_cache_control(value: Any) -> tuple[Any, int]:
    if isinstance(value, dict) and CACHE_CONTROL in value:
        return {key: item for key, item in value.items() if key != CACHE_CONTROL}, 1
    return value, 0


def _counted(kinds: tuple[str, ...]) -> str:
    return ", ".join(f"{kind} x{n}" for kind, n in collections.Counter(kinds).items())


# --- replace ------------------------------------------------------------------------------


def replacement_block(block: dict, model: str) -> dict:
    """A text block in place of a block the backend does not take, so nothing vanishes unsaid.

    What is text already stays readable (a search result, a plain-text document, a tool
    reference); the rest is named, so the model can tell the user why it cannot see it.
    """
    kind = block.get("type")
    if kind == "search_result":
        text = "\n".join(
            filter(None, [_string(block.get("title")), _string(block.get("source")), *_texts(block.get("content"))])
        )
    elif kind == "document" and isinstance(source := block.get("source"), dict) and source.get("type") == "text":
        text = "\n".join(filter(None, [_string(block.get("title")), _string(source.get("data"))]))
    elif kind == "tool_reference":
        text = f"[tool reference: {_string(block.get('tool_name')) or 'unnamed'}]"
    elif kind == "image":
        text = f"[image omitted: {model} does not read images]"
    elif kind == "document":
        text = f"[document omitted: {model} does not read documents]"
    else:
        text = ""
    return {"type": "text", "text": text or f"[{kind} block omitted: {model} does not take it]"}


def _string(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    return (
        [_string(block.get("text")) for block in content if isinstance(block, dict)]
        if isinstance(content, list)
        else []
    )


def repaired_input(value: Any) -> dict | None:
    """A tool_use `input` that is not an object, as one; None when it is one already.

    Models write arguments that are not JSON objects (Qwen coder models single-quoted
    pseudo-JSON, GLM arrays), and they come back in the next request, where the backend
    refuses its own output on every later turn. A string that parses as an object (as JSON,
    else as a Python literal) becomes that object; anything else is kept, as text, inside
    an object that says what happened.
    """
    if isinstance(value, dict):
        return None
    if isinstance(value, str):
        parsers = [json.loads] + ([ast.literal_eval] if len(value) <= LITERAL_PARSE_LIMIT else [])
        for parse in parsers:
            try:
                parsed = parse(value)
                json.dumps(parsed)  # a Python literal may hold what JSON cannot (tuples as keys, bytes)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                continue
            if isinstance(parsed, dict):
                return parsed
    written = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return {"invalid_arguments": written, "note": INVALID_ARGUMENTS_NOTE}


def with_reasoning_note(message: dict) -> dict:
    """An assistant turn without a thinking block, given one that says it has none (LiteLLM
    passes it on as reasoning_content); any other message as it is."""
    if message.get("role") != "assistant":
        return message
    blocks = _as_blocks(message.get("content"))
    if any(_block_type(block) in THINKING_BLOCK_TYPES for block in blocks):
        return message
    return {**message, "content": [dict(PLACEHOLDER_REASONING), *blocks]}


def _joined(first: dict, second: dict) -> dict:
    return {**first, "content": _as_blocks(first.get("content")) + _as_blocks(second.get("content"))}


def _as_blocks(content: Any) -> list:
    """Message content as a list of blocks (the API allows a plain string)."""
    if isinstance(content, list):
        return content
    return [{"type": "text", "text": content}] if isinstance(content, str) and content else []


# --- cap ----------------------------------------------------------------------------------


def cap_max_tokens(request: dict, policy: ModelPolicy) -> tuple[dict, list[Change]]:
    """Lower `max_tokens` to the policy's max_output_tokens: a backend refuses more with a 400."""
    asked = request.get("max_tokens")
    if isinstance(asked, int) and not isinstance(asked, bool) and asked > policy.max_output_tokens:
        capped = {**request, "max_tokens": policy.max_output_tokens}
        return capped, [Change(ChangeKind.CAPPED, f"capped max_tokens {asked}->{policy.max_output_tokens}")]
    return request, []


def _calls_tools(message: Any) -> bool:
    content = message.get("content") if isinstance(message, dict) else None
    return isinstance(content, list) and any(_block_type(block) == "tool_use" for block in content)


def _model_of(request: dict) -> str:
    """The model a request names, "" for none."""
    model = request.get("model")
    return model if isinstance(model, str) else ""


def role_of(message: Any) -> Any:
    """A message's role, or None for something that is not a message."""
    return message.get("role") if isinstance(message, dict) else None


def _block_type(block: Any) -> str | None:
    """A block's type, or None for what is not a block with a string type (a list is no type)."""
    kind = block.get("type") if isinstance(block, dict) else None
    return kind if isinstance(kind, str) else None


def turn_elsewhere(request: dict, policy: ModelPolicy, route: str) -> tuple[str, str] | None:
    """The model of the LiteLLM config that takes this turn instead of the one it names, and why:
    one that reads the images the turn brings (vision_model; the history's images become notes
    for the named model's next turn), or one that turns thinking off where this route cannot
    (thinking_off_model); None: the named model takes it."""
    named = request.get("model")
    if policy.vision_model and "image" not in policy.accepted_block_types and brings_images(request["messages"]):
        return policy.vision_model, f"the new turn brings images {named} does not read"
    if off := thinking_off_model(request, policy, route):
        return off, f"thinking off, which {named}'s route cannot switch"
    return None


def brings_images(messages: list) -> bool:
    """Whether the last message is a user turn with an image, in its content or a tool result's."""
    last = messages[-1] if messages else None
    content = last.get("content") if isinstance(last, dict) and last.get("role") == "user" else None
    blocks = content if isinstance(content, list) else []
    nested = [
        block.get("content") for block in blocks if isinstance(block, dict) and block.get("type") == "tool_result"
    ]
    return any(
        isinstance(block, dict) and block.get("type") == "image"
        for group in [blocks, *(inner for inner in nested if isinstance(inner, list))]
        for block in group
    )
