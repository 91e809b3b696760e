"""What was worked out from parsed values, found again by the values' identity.

A session's next request reuses the previous request's parsed messages as the
very same objects (addons/request/history.py). So what was worked out from them (a
stripped copy, a token estimate, a shape check) can be looked up by identity,
in a dict, instead of being computed again or hashed from its JSON, which at a
long session's history costs hundreds of times more (docs/benchmarks.md).

Each entry keeps its value alive, so the id it is filed under cannot be taken
by another object while the entry exists. A memo lives as long as the request
it serves and what history.py remembers of it; it starts from the previous
request's entries and keeps only those it used again, so it never holds more
than two requests' worth. The previous request may still be shaped in the
request addon's worker thread, filling its entries while this memo looks them
up: each lookup and each entry added is one dict operation, whole under the GIL,
and an entry not yet there is computed again.
"""

import functools
import itertools
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class Kind:
    """What is worked out from a value, and so looked up under it. A kind that depends on more
    than the value is filed as a tuple, (kind, what else it depends on...). Plain strings, not
    an Enum: a memo key is hashed on every lookup, and an Enum member's hash is a Python call
    (twice the cost of a str's; at 2 MB of history a next turn looks up thousands of keys)."""

    JSON = "json"  # the value's compact JSON (history.encode)
    ESTIMATE = "estimate"  # a message's tokens and tool ids (tokens.estimate_message)
    SYSTEM_TOKENS = "system tokens"  # the system prompt's tokens (tokens.count_system)
    TOOLS_TOKENS = "tools tokens"  # the tool definitions' tokens (tokens.count_tools)
    SOUND_MESSAGE = "sound message"  # whether a message is well formed (validation)
    FOLD = "fold"  # a user turn with folded system text; + at the end?, the texts (shaping)
    STRIP_BLOCKS = "strip blocks"  # blocks a model takes; + accepted types, model (shaping)
    STRIP_TOOLS = "strip tools"  # tools a model takes; + server tools kept? (shaping)
    # a message a model takes; + accepted types, reasoning noted?, model, <think> tags?, provenance,
    # tool-id rule (shaping, through `interned`)
    STRIP_MESSAGE = "strip message"


# Kinds `interned` keeps: the tuples in use at once are a few per model a session goes to.
INTERNED_KINDS = 256
_serials = itertools.count()


@functools.lru_cache(maxsize=INTERNED_KINDS)
def interned(kind: tuple) -> str:
    """A kind filed as a tuple, as one string: the same string for an equal tuple while it is kept
    here, another one for any other tuple. For a kind looked up for every message of a request: a
    lookup hashes its key three times (in the memo, in the previous request's entries, as it is
    filed), and a tuple is hashed anew each time, nested ones too, while a string keeps its hash.
    A tuple dropped here and asked again gets a new string, so its entries are worked out once more."""
    return f"{kind[0]} #{next(_serials)}"


class Memo:
    __slots__ = ("_entries", "_earlier")

    def __init__(self, earlier: "Memo | None" = None):
        self._entries: dict[tuple[Hashable, int], tuple[Any, Any]] = {}
        self._earlier = earlier._entries if earlier is not None else {}

    def get(self, kind: Hashable, value: Any, compute: Callable[[Any], T]) -> T:
        """compute(value), or what it gave for this very object under `kind` before."""
        key = (kind, id(value))
        entry = self._entries.get(key) or self._earlier.get(key)
        if entry is None:
            entry = (value, compute(value))
        self._entries[key] = entry
        return entry[1]
