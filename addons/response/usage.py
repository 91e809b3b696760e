"""Usage that Claude Code can count on: every count an integer, the missing ones estimated.

Claude Code reads `usage` from `message_start` and `message_delta` to know how
full its context is; LiteLLM sends zeros there (or null, or nothing) whenever
the backend does not report usage. For a request the request addon trimmed, the
input count also holds what trimming cut (add_trimmed): what Claude Code sent,
so that it compacts. Plain data in, plain data out.
"""

import json
from typing import Any

from addons.flow.change import Change, ChangeKind
from addons.messages.tokens import count_text

CACHE_USAGE_FIELDS = ("cache_creation_input_tokens", "cache_read_input_tokens")
# System prompt and tools (estimated tokens) below which a reported input count is never
# taken for LiteLLM's stand-in (is_substitute_input).
MIN_FIXED_TOKENS = 128


def reported_count(value: Any) -> int | None:
    """A token count the backend really reported: a positive number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return None
    return int(value)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# --- usage -----------------------------------------------------------------------


def is_substitute_input(usage: dict[str, Any], input_estimate: int, fixed_estimate: int) -> bool:
    """Whether the reported input count is LiteLLM's stand-in rather than the backend's.

    When a backend reports no usage, LiteLLM (1.108.7, 1.108.14) puts in a count of its own
    that leaves out the system prompt and the tool schemas (measured: 12 input
    tokens for a request the backend counted as 328). Our estimate of what went
    upstream is `input_estimate`, of which `fixed_estimate` is the system prompt,
    the tools and the request's overhead. A backend's own count (its input plus
    the cached parts) comes near the whole estimate; LiteLLM's, counted with
    the same cl100k encoding, near the estimate without the fixed part. A
    figure closer to the second, below input_estimate - fixed_estimate / 2, is
    taken for LiteLLM's. Below MIN_FIXED_TOKENS of system prompt and tools the
    two lie too close to tell apart (and to matter): the figure is kept.
    """
    reported = reported_count(usage.get("input_tokens"))
    if reported is None or fixed_estimate < MIN_FIXED_TOKENS:
        return False
    cached = sum(reported_count(usage.get(field)) or 0 for field in CACHE_USAGE_FIELDS)
    return reported + cached < input_estimate - fixed_estimate / 2


def complete_usage(
    usage: Any, input_estimate: int, output_estimate: int | None, fixed_estimate: int = 0
) -> tuple[dict[str, Any], list[str]]:
    """`usage` with integer input, output and cache counts, and the fields it filled.

    input_tokens: reported, else `input_estimate` (no prompt has zero tokens,
    so zero means "not reported"); LiteLLM's stand-in count is replaced too
    (is_substitute_input). output_tokens: reported, else `output_estimate`;
    with None, any non-negative int stays (message_start comes before the
    output). A count given as a float becomes its int; cache counts: 0 when
    not an int. The backend's own figures are
    never replaced.
    """
    result = dict(usage) if isinstance(usage, dict) else {}
    filled: list[str] = []
    if is_substitute_input(result, input_estimate, fixed_estimate):
        filled.append(
            f"input_tokens={input_estimate} for LiteLLM's count of the messages alone ({result['input_tokens']})"
        )
        result["input_tokens"] = input_estimate
    elif reported_count(result.get("input_tokens")) is None:
        result["input_tokens"] = input_estimate
        filled.append(f"input_tokens={input_estimate}")
    if output_estimate is not None and reported_count(result.get("output_tokens")) is None:
        result["output_tokens"] = output_estimate
        filled.append(f"output_tokens={output_estimate}")
    for field in ("input_tokens", "output_tokens", *CACHE_USAGE_FIELDS):
        if not _is_count(result.get(field)):
            result[field] = reported_count(result.get(field)) or 0
            filled.append(f"{field}={result[field]}")
    return result, filled


def add_trimmed(usage: dict[str, Any], trimmed_tokens: int) -> list[str]:
    """Add to usage's input count, in place, the tokens the request addon trimmed from the request.

    The count then says what the client sent (the backend's figure for what it
    received plus the estimate of what was cut), so a client that compacts by
    its own count (Claude Code) learns that its history outgrew the window.
    """
    if trimmed_tokens <= 0 or not _is_count(usage.get("input_tokens")):
        return []
    usage["input_tokens"] += trimmed_tokens
    return [f"input_tokens+{trimmed_tokens} trimmed from the request"]


def filled_notes(where: str, fields: list[str]) -> list[Change]:
    """One change per patched event, naming the fields complete_usage filled."""
    return [Change(ChangeKind.USAGE_FILLED, f"{where}: filled usage {', '.join(fields)}")] if fields else []


def content_text(blocks: Any) -> str:
    """The generated text of content blocks, as the output-token estimate sees it."""
    parts: list[str] = []
    for block in blocks if isinstance(blocks, list) else ():
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            parts.append(str(block.get("text") or ""))
        elif kind == "thinking":
            parts.append(str(block.get("thinking") or ""))
        elif kind in ("tool_use", "server_tool_use"):
            parts.append(json.dumps(block.get("input") or {}, ensure_ascii=False))
    return "".join(parts)


def is_message(value: Any) -> bool:
    return isinstance(value, dict) and value.get("type") == "message" and isinstance(value.get("content"), list)


def fill_message_usage(
    message: dict[str, Any], input_estimate: int, fixed_estimate: int = 0, trimmed_tokens: int = 0
) -> list[Change]:
    """Complete `message["usage"]` of a non-streaming message in place, the trimmed tokens
    added (add_trimmed); returns the changes."""
    output_estimate = count_text(content_text(message.get("content")))
    message["usage"], filled = complete_usage(message.get("usage"), input_estimate, output_estimate, fixed_estimate)
    return filled_notes("message", filled + add_trimmed(message["usage"], trimmed_tokens))


def fill_thinking_signatures(message: dict[str, Any]) -> list[Change]:
    """Give thinking blocks without a string signature an empty one, in place.

    LiteLLM 1.108.7 writes `"signature": null` for reasoning a Chat Completions
    backend returned (it has no signature; 1.108.14 writes "" itself, but a
    team's LiteLLM behind --upstream may be older); Anthropic's schema has a
    string there."""
    unsigned = [
        block
        for block in message.get("content") or ()
        if isinstance(block, dict) and block.get("type") == "thinking" and not isinstance(block.get("signature"), str)
    ]
    for block in unsigned:
        block["signature"] = ""
    return [Change(ChangeKind.REPAIRED, f"thinking signature set to empty x{len(unsigned)}")] if unsigned else []
