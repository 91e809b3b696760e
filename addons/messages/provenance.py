"""Which model wrote a thinking block: its origin, carried in the signature Claude Code keeps.

A session's history passes through many models (/model, --continue under another
ANTHROPIC_MODEL, LiteLLM's fallbacks, background and subagent models), and a
thinking block's signature means something only to the provider that wrote it:
Anthropic refuses any other ("messages.1.content.0: Invalid `signature` in
`thinking` block"). So every thinking block the stack hands Claude Code has its
signature wrapped with the provider's model id that wrote it,
`stz1:<model id, percent-encoded>:<the provider's own signature>`, and the request
side unwraps it (addons/request/shaping.py), for the same model exactly as it
came.

Why the signature: Claude Code stores it with the block and sends it back
untouched, and never reads it. So the origin travels with the block itself:
no database, nothing lost when the stack restarts, and any number of front doors
(mitmdump instances) read each other's blocks. Only a block that never passed the
stack (or did before this existed) has no origin; `unwrap` says so.

The origin is the provider's model id behind the name Claude Code sent
(addons/config/routes.py: `anthropic/deepseek-flash` -> deepseek-flash), so one
model's aliases and routes share it. Finer than a provider, which is the safe
side: a block goes back to another model of the same provider as another
model's, which only a target that checks signatures treats differently.
"""

from typing import Any
from urllib.parse import quote, unquote

PREFIX = "stz1:"


def wrap(signature: Any, origin: str) -> str:
    """The signature handed to Claude Code for a block `origin` wrote (None or a non-string: empty)."""
    return f"{PREFIX}{quote(origin, safe='')}:{signature if isinstance(signature, str) else ''}"


def unwrap(signature: Any) -> tuple[str | None, Any]:
    """(origin, the provider's own signature); (None, `signature`) for a block without an origin."""
    if not (isinstance(signature, str) and signature.startswith(PREFIX)):
        return None, signature
    origin, separator, original = signature[len(PREFIX) :].partition(":")
    if not separator:
        return None, signature
    return unquote(origin), original


def wrap_block(block: Any, origin: str) -> bool:
    """Wrap the signature of a thinking block (or of a signature_delta), in place; False for anything else."""
    if not isinstance(block, dict) or block.get("type") not in ("thinking", "signature_delta"):
        return False
    if unwrap(block.get("signature"))[0] is not None:
        return False  # wrapped already (a body patched twice)
    block["signature"] = wrap(block.get("signature"), origin)
    return True


def wrap_message(message: dict[str, Any], origin: str) -> int:
    """Wrap the signature of each thinking block of a whole message, in place; how many."""
    content = message.get("content")
    return sum(wrap_block(block, origin) for block in content) if isinstance(content, list) else 0


def wrap_event(payload: dict[str, Any], origin: str) -> bool:
    """Wrap the signature a stream event carries (a thinking block's start, a signature_delta), in place.
    Claude Code keeps the last signature_delta's value, so each is wrapped whole."""
    kind = payload.get("type")
    if kind == "content_block_start":
        return wrap_block(payload.get("content_block"), origin)
    if kind == "content_block_delta":
        return wrap_block(payload.get("delta"), origin)
    return False
