"""JSON as the addons read and write it: orjson where it can (20x faster on large bodies),
the stdlib where a client's JSON needs it, and lone UTF-16 surrogates repaired on the way in.
"""

import json
import re
from typing import Any

import orjson


def to_json(value: Any) -> bytes:
    """Compact JSON; orjson where it can (20x faster on large bodies), stdlib otherwise.

    orjson refuses what the stdlib accepts from a client: lone surrogates
    (JavaScript's JSON.stringify escapes them) and integers above 64 bits.
    """
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":")).encode()


def from_json(data: bytes | str) -> Any:
    """parse_json's value."""
    return parse_json(data)[0]


def parse_json(data: bytes | str) -> tuple[Any, int]:
    """The value, parsed like the stdlib, orjson where it can; and how many lone UTF-16
    surrogates in its strings were replaced by U+FFFD.

    Claude Code sends a lone surrogate (an escaped `\\ud83d` without its pair) when it
    cuts a string inside an emoji; LiteLLM refuses it with a 400, on that turn and every
    later one. json.JSONDecodeError (a ValueError) for anything that is not JSON: NaN and
    Infinity (the stdlib takes them, no JSON parser of a backend does) and nesting too
    deep (the stdlib would raise RecursionError) included."""
    try:
        return orjson.loads(data), 0
    except orjson.JSONDecodeError as refused:
        try:
            value = json.loads(data, parse_constant=_not_json)
            # orjson refuses lone surrogates; the stdlib keeps them, escaped or not.
            return _without_lone_surrogates(value) if _SURROGATE.search(_as_bytes(data)) else (value, 0)
        except (RecursionError, ValueError):
            raise refused from None  # orjson's account: "depth limit exceeded", "unexpected character"


# An escaped surrogate, lone or in a pair: worth a walk over the value to repair the lone ones.
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE_CHAR = re.compile("[\ud800-\udfff]")


def _as_bytes(data: bytes | str) -> bytes:
    return data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")


def _without_lone_surrogates(value: Any) -> tuple[Any, int]:
    """`value` with every lone surrogate in its strings (keys too) replaced by U+FFFD."""
    if isinstance(value, str):
        if not _SURROGATE_CHAR.search(value):
            return value, 0
        # UTF-16 joins the pairs; what is left alone cannot be decoded and becomes U+FFFD.
        repaired = value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
        return repaired, repaired.count("\ufffd") - value.count("\ufffd")
    if isinstance(value, list):
        items = [_without_lone_surrogates(item) for item in value]
        return [item for item, _ in items], sum(n for _, n in items)
    if isinstance(value, dict):
        pairs = [(_without_lone_surrogates(k), _without_lone_surrogates(v)) for k, v in value.items()]
        return {k: v for (k, _), (v, _) in pairs}, sum(nk + nv for (_, nk), (_, nv) in pairs)
    return value, 0


def _not_json(constant: str):
    raise ValueError(f"{constant} is not JSON")
