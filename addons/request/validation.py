"""The shape a Messages request must have before it goes to LiteLLM.

LiteLLM answers a malformed request (a message that is not an object, content
blocks that are numbers, a `tool_choice` that is a list, nothing left in
`messages`) with HTTP 500 after retrying it internally for seconds, and its
message is a Python exception ("'int' object has no attribute 'get'"). Claude
Code retries a 500 ten times; a 400 it shows at once. So the request addon
answers these itself, with Anthropic's 400 invalid_request_error naming the
field, the way Anthropic's API words it ("messages.0.content.1: ...").

Only the structure is checked, and only in the request as it goes upstream
(shaped: system messages folded, unaccepted blocks removed). Values (the model
name, how large max_tokens is, the text itself) stay for LiteLLM and the backend
to judge: they answer those with a 400 of their own. A few values are checked
here all the same: a `tool_choice` without a `type` Anthropic knows (LiteLLM's
translation raises on it), a `max_tokens` that is not an integer (capping
passes it by), and a system message whose content is not text (folding leaves
it in place so that it is refused here, never dropped).
"""

from typing import Any

from addons.messages.memo import Kind, Memo

ROLES = ("user", "assistant")
# What Anthropic takes as tool_choice.type.
TOOL_CHOICE_TYPES = ("auto", "any", "tool", "none")


def request_problem(request: dict[str, Any], memo: Memo | None = None) -> str | None:
    """What makes `request` malformed, as a 400 message; None when its shape is sound.

    A message found sound before (in `memo`, by identity) is not checked again."""
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: expected a non-empty list of messages (none is left that the model accepts)"
    if memo is None:
        memo = Memo()
    for index, message in enumerate(messages):
        if not memo.get(Kind.SOUND_MESSAGE, message, _sound):
            return _message_problem(message, f"messages.{index}")
    system = request.get("system")
    if system is not None and not isinstance(system, str):
        if problem := _blocks_problem(system, "system"):
            return problem
    tools = request.get("tools")
    if tools is not None and not (isinstance(tools, list) and all(isinstance(tool, dict) for tool in tools)):
        return "tools: expected a list of tool definitions (objects)"
    if "tool_choice" in request and (problem := _tool_choice_problem(request["tool_choice"])):
        return problem
    max_tokens = request.get("max_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool)):
        return f"max_tokens: Input should be a valid integer, not {_shown(max_tokens)}"
    return None


def _tool_choice_problem(choice: Any) -> str | None:
    if not isinstance(choice, dict):
        return 'tool_choice: expected an object such as {"type": "auto"}'
    if choice.get("type") not in TOOL_CHOICE_TYPES:
        return f'tool_choice.type: expected "auto", "any", "tool" or "none", not {_shown(choice.get("type"))}'
    if choice["type"] == "tool" and not isinstance(choice.get("name"), str):
        return 'tool_choice.name: expected the name of a tool (a string) with "type": "tool"'
    return None


def _sound(message: Any) -> bool:
    return _message_problem(message, "") is None


def _message_problem(message: Any, where: str) -> str | None:
    if not isinstance(message, dict):
        return f"{where}: expected a message object with role and content"
    if message.get("role") == "system":  # left by folding: its content is not text
        return (
            f"{where}.content: a system message's content must be text (a string or text blocks), "
            f"not {_shown(message.get('content'))}"
        )
    if message.get("role") not in ROLES:
        return f'{where}.role: expected "user" or "assistant", not {_shown(message.get("role"))}'
    content = message.get("content")
    if isinstance(content, str):
        return None
    return _blocks_problem(content, f"{where}.content")


def _blocks_problem(blocks: Any, where: str) -> str | None:
    if not isinstance(blocks, list):
        return f"{where}: expected a string or a list of content blocks"
    for index, block in enumerate(blocks):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            return f"{where}.{index}: expected a content block (an object with a string `type`)"
        if block["type"] == "text" and not isinstance(block.get("text"), str):
            return f"{where}.{index}.text: expected a string"
    return None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
