"""Tool-use ids in the form the target provider takes.

A session written by several models carries each writer's tool-use ids: Anthropic's
`toolu_01...`, DeepSeek's `call_00_...`, Kimi's `functions.Read:0`, vLLM's
`chatcmpl-tool-<32 hex>`. Claude Code keeps them in its history and sends them to whatever
model is current, and some providers refuse ids that are not in their own form (RULES).

For a target with a rule, every tool_use id and the tool_use_id of its tool_result are
mapped by `mapped_id`, a pure function of the id: the same id gives the same result in every
request and after every restart, so pairs still match and the request prefix, and with it
the backend's prompt cache, stays the same from turn to turn. An id the rule already
accepts is left exactly as it is. Another id keeps what it can of itself (its characters
the rule allows, in front) and ends in a hash of the whole id, so distinct ids stay distinct.

Nothing maps back: a response carries the new tool calls the target wrote, never an id of
the request, and Claude Code keeps its own ids in its history; the mapping is applied
again to every request.
"""

import hashlib
import re
from dataclasses import dataclass

from addons.config.policy import ToolIdRuleName

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Characters of the hash that ends a mapped id: 10 base-62 digits, about 59 bits.
HASH_LENGTH = 10


@dataclass(frozen=True, eq=False)
class IdRule:
    """What a provider takes as a tool-use id. One object per rule (RULES), equal to itself alone:
    it is part of every message's memo key, and an identity hash costs no Python call."""

    valid: re.Pattern[str]  # an id it takes, matched whole
    refused_char: re.Pattern[str] | None  # one character it refuses (None: any character goes)
    max_length: int | None


RULES: dict[ToolIdRuleName, IdRule] = {
    # Anthropic's Messages API: "messages.1.content.1.tool_use.id: String should match pattern
    # '^[a-zA-Z0-9_-]+$'" (400 invalid_request_error, as quoted in CommandCodeAI/command-code#323,
    # BerriAI/litellm#21114 and maximhq/bifrost#5097; read 2026-12-06). No length limit is documented.
    "anthropic": IdRule(re.compile(r"[a-zA-Z0-9_-]+"), re.compile(r"[^a-zA-Z0-9_-]"), None),
    # OpenAI's Chat Completions: "Invalid 'messages[2].tool_calls[0].id': string too long. Expected
    # a string with maximum length 40, but got a string with length 43 instead."
    # (code string_above_max_length, as quoted in vercel/ai#5171; read 2026-12-06). No character rule.
    "openai": IdRule(re.compile(r".{1,40}", re.DOTALL), None, 40),
    # Mistral's API: "Tool call id was abc123 but must be a-z, A-Z, 0-9, with a length of 9."
    # (as quoted in langchain-ai/langchain#24668 and openclaw/openclaw#57672; read 2026-12-06); the
    # chat templates of Mistral's open models say the same ("Tool call IDs should be alphanumeric
    # strings with length 9!", ggml-org/llama.cpp#14349).
    "mistral": IdRule(re.compile(r"[a-zA-Z0-9]{9}"), re.compile(r"[^a-zA-Z0-9]"), 9),
}


def rule_for(name: ToolIdRuleName | None, target: str) -> IdRule | None:
    """The rule of the policy's `tool_ids`; unset, Anthropic's for a model id with claude in it."""
    if name is None and "claude" in target.lower():
        name = "anthropic"
    return RULES[name] if name is not None else None


def mapped_id(tool_id: str, rule: IdRule) -> str:
    """`tool_id` as `rule` takes it: itself when the rule takes it already; else its allowed
    characters (each refused one as "_"), cut to fit, then "_" and a hash of the whole id.
    Where the rule leaves no room for more than the hash (Mistral's nine), the hash alone."""
    if rule.valid.fullmatch(tool_id):
        return tool_id
    number = int.from_bytes(hashlib.sha256(tool_id.encode("utf-8", "surrogatepass")).digest(), "big")
    digits = []
    for _ in range(HASH_LENGTH):
        number, digit = divmod(number, len(BASE62))
        digits.append(BASE62[digit])
    digest = "".join(digits)
    if rule.max_length is not None and rule.max_length <= HASH_LENGTH + 1:
        return digest[: rule.max_length]
    kept = rule.refused_char.sub("_", tool_id) if rule.refused_char else tool_id
    if rule.max_length is not None:
        kept = kept[: rule.max_length - HASH_LENGTH - 1]
    return f"{kept}_{digest}"
