"""Fold, strip and cap: a Claude Code request made acceptable to the target model.

Pure functions over the parsed request. They never mutate their input and never
deep-copy it: a changed message is a shallow copy, everything else is shared, so
a 2 MB history costs a walk, not a copy.

- fold: `{"role": "system"}` entries inside `messages` (Claude Code's
  mid-conversation system messages, which LiteLLM drops) become
  `<system-reminder>` text blocks in the neighbouring user turn.
- strip: top-level keys outside the model's allow-list, `cache_control`
  everywhere, server tools (and a `tool_choice` naming one), and content blocks
  the backend does not take (thinking, unless the model accepts it).
- cap: `max_tokens` down to the model's `max_output_tokens`.

The client's `stream` choice is never touched.
"""

from dataclasses import dataclass
from typing import Any

from addons.policy import THINKING_BLOCK_TYPES, ModelPolicy

SYSTEM_REMINDER = "<system-reminder>\n{}\n</system-reminder>"


@dataclass(frozen=True)
class Shaped:
    request: dict
    changes: list[str]
    # The <system-reminder> texts folded from system messages: trimming must not lose them.
    reminders: list[str]


def shape_request(request: dict, policy: ModelPolicy, *, cap: bool = True) -> Shaped:
    """Fold, strip and (unless `cap` is false) cap; `request["messages"]` must be a list."""
    request, reminders = fold_system_messages(request)
    request, changes = strip_unaccepted(request, policy)
    if reminders:
        changes.insert(0, f"folded {len(reminders)} system messages")
    if cap:
        request, capped = cap_max_tokens(request, policy)
        changes += capped
    return Shaped(request, changes, reminders)


# --- fold ---------------------------------------------------------------------------------


def fold_system_messages(request: dict) -> tuple[dict, list[str]]:
    """Move the text of each system message into a user turn, keeping the order of events.

    A system message goes to the start of the next user turn (after its tool_result
    blocks, which the API wants first) when the next turn is the user's; otherwise to
    the end of the previous user turn; between two assistant turns, or with no user
    turn around, it becomes a user turn of its own. Returns the new request and the
    folded texts.
    """
    messages = request["messages"]
    if not any(role_of(message) == "system" for message in messages):
        return request, []
    folded: list[Any] = []
    pending: list[dict] = []
    reminders: list[str] = []
    for message in messages:
        if role_of(message) == "system":
            if text := _system_text(message.get("content")):
                reminders.append(SYSTEM_REMINDER.format(text))
                pending.append({"type": "text", "text": reminders[-1]})
            continue
        if pending:
            if role_of(message) == "user":
                message = add_text_blocks(message, pending)
            else:
                _append_to_previous_user_turn(folded, pending)
            pending = []
        folded.append(message)
    if pending:
        _append_to_previous_user_turn(folded, pending)
    return {**request, "messages": folded}, reminders


def _append_to_previous_user_turn(folded: list[Any], blocks: list[dict]) -> None:
    if folded and role_of(folded[-1]) == "user":
        folded[-1] = add_text_blocks(folded[-1], blocks, at_end=True)
    else:
        folded.append({"role": "user", "content": list(blocks)})


def _system_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            block["text"] for block in content if isinstance(block, dict) and isinstance(block.get("text"), str)
        )
    return ""


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


def strip_unaccepted(request: dict, policy: ModelPolicy) -> tuple[dict, list[str]]:
    """Remove what the backend rejects or mishandles. Returns the new request and changes."""
    changes: list[str] = []
    shaped = {key: value for key, value in request.items() if key in policy.accepted_keys}
    if stripped := [key for key in request if key not in policy.accepted_keys]:
        changes.append(f"stripped keys: {', '.join(stripped)}")

    stripper = _BlockStripper(policy)
    if isinstance(system := shaped.get("system"), list):
        shaped["system"] = stripper.blocks(system)
    if isinstance(tools := shaped.get("tools"), list):
        changes += _strip_tools(shaped, tools, stripper)
    shaped["messages"] = stripper.messages(shaped["messages"])
    changes += stripper.changes()
    # Every edit above is reported, so no change reported means an identical request.
    return (shaped, changes) if changes else (request, [])


def _strip_tools(shaped: dict, tools: list, stripper: "_BlockStripper") -> list[str]:
    custom = [stripper.block(tool) for tool in tools if _is_custom_tool(tool)]
    if len(custom) == len(tools):
        shaped["tools"] = custom
        return []
    removed = [
        str(tool.get("name") or tool.get("type")) if isinstance(tool, dict) else repr(tool)
        for tool in tools
        if not _is_custom_tool(tool)
    ]
    changes = [f"removed server tools: {', '.join(removed)}"]
    if custom:
        shaped["tools"] = custom
    else:
        del shaped["tools"]
    choice = shaped.get("tool_choice")
    names = [tool.get("name") for tool in custom]
    if "tool_choice" in shaped and (
        not custom or (isinstance(choice, dict) and choice.get("type") == "tool" and choice.get("name") not in names)
    ):
        del shaped["tool_choice"]
        changes.append("dropped tool_choice naming a removed tool")
    return changes


def _is_custom_tool(tool: Any) -> bool:
    # Server tools (web_search_20250305, bash_20250124, ...) carry a versioned `type`.
    return isinstance(tool, dict) and tool.get("type", "custom") == "custom"


class _BlockStripper:
    """Walks content blocks once, copying only what changes, and tallies what it removed."""

    def __init__(self, policy: ModelPolicy):
        self.accepted = policy.accepted_block_types | (THINKING_BLOCK_TYPES if policy.accepts_thinking else set())
        self.cache_controls = 0
        self.removed_blocks: dict[str, int] = {}
        self.dropped_messages = 0

    def block(self, block: Any) -> Any:
        if isinstance(block, dict) and "cache_control" in block:
            self.cache_controls += 1
            return {key: value for key, value in block.items() if key != "cache_control"}
        return block

    def blocks(self, blocks: list) -> list:
        kept = []
        for block in blocks:
            if isinstance(block, dict):
                kind = block.get("type")
                if isinstance(kind, str) and kind not in self.accepted:
                    self.removed_blocks[kind] = self.removed_blocks.get(kind, 0) + 1
                    continue
                block = self.block(block)
                if kind == "tool_result" and isinstance(nested := block.get("content"), list):
                    if (inner := self.blocks(nested)) != nested:
                        block = {**block, "content": inner}
            kept.append(block)
        return kept

    def messages(self, messages: list) -> list:
        out: list[Any] = []
        after_drop = False
        for message in messages:
            shaped = self.block(message)
            if isinstance(shaped, dict) and isinstance(content := shaped.get("content"), list):
                kept = self.blocks(content)
                if not kept and content:
                    # Nothing the backend takes is left (a thinking-only turn): drop the turn
                    # and join its neighbours, so the roles still alternate.
                    self.dropped_messages += 1
                    after_drop = True
                    continue
                if kept != content:
                    shaped = {**shaped, "content": kept}
            if after_drop and out and role_of(shaped) is not None and role_of(out[-1]) == role_of(shaped):
                out[-1] = _joined(out[-1], shaped)
            else:
                out.append(shaped)
            after_drop = False
        return out

    def changes(self) -> list[str]:
        changes = []
        if self.cache_controls:
            changes.append(f"removed cache_control x{self.cache_controls}")
        if self.removed_blocks:
            changes.append("removed blocks: " + ", ".join(f"{kind} x{n}" for kind, n in self.removed_blocks.items()))
        if self.dropped_messages:
            changes.append(f"dropped {self.dropped_messages} messages left empty")
        return changes


def _joined(first: dict, second: dict) -> dict:
    return {**first, "content": _as_blocks(first.get("content")) + _as_blocks(second.get("content"))}


def _as_blocks(content: Any) -> list:
    """Message content as a list of blocks (the API allows a plain string)."""
    if isinstance(content, list):
        return content
    return [{"type": "text", "text": content}] if isinstance(content, str) and content else []


# --- cap ----------------------------------------------------------------------------------


def cap_max_tokens(request: dict, policy: ModelPolicy) -> tuple[dict, list[str]]:
    """Lower `max_tokens` to what the backend accepts (DeepSeek answers 400 above 8192)."""
    asked = request.get("max_tokens")
    if isinstance(asked, int) and not isinstance(asked, bool) and asked > policy.max_output_tokens:
        capped = {**request, "max_tokens": policy.max_output_tokens}
        return capped, [f"capped max_tokens {asked}->{policy.max_output_tokens}"]
    return request, []


def role_of(message: Any) -> Any:
    """A message's role, or None for something that is not a message."""
    return message.get("role") if isinstance(message, dict) else None


def _block_type(block: Any) -> Any:
    return block.get("type") if isinstance(block, dict) else None
