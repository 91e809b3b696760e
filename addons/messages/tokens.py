"""Token counts and request estimates with a real tokenizer that works offline.

LiteLLM ships the tiktoken encoding files inside its package
(litellm/litellm_core_utils/tokenizers); pointing TIKTOKEN_CACHE_DIR there
means tiktoken never downloads. We locate the folder without importing litellm
(that import costs seconds and pulls in the whole SDK).
"""

import functools
import importlib.util
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

import tiktoken

from addons.messages.memo import Kind, Memo
from addons.wire.json_codec import to_json

T = TypeVar("T")


def _bundled_encodings_dir() -> str | None:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(spec.submodule_search_locations[0], "litellm_core_utils", "tokenizers")
    return path if os.path.isdir(path) else None


@functools.cache
def _encoding() -> tiktoken.Encoding:
    if "TIKTOKEN_CACHE_DIR" not in os.environ and (bundled := _bundled_encodings_dir()):
        os.environ["TIKTOKEN_CACHE_DIR"] = bundled
    return tiktoken.get_encoding("cl100k_base")


# tiktoken's merging is superlinear in the length of one piece, and it holds the GIL while it
# turns its result into a list, a stall for the event loop even when counting runs in a worker
# thread (figures: docs/benchmarks.md). Text is counted
# in slices of this size: linear, and the GIL is let go between slices.
SLICE_CHARS = 1 << 16


def count_text(text: str) -> int:
    """Tokens in `text` under cl100k_base (special-token strings count as text)."""
    encode = _encoding().encode_ordinary
    total, start = 0, 0
    while start < len(text):
        end = start + SLICE_CHARS
        if end < len(text) and (space := text.rfind(" ", start + SLICE_CHARS // 2, end)) > 0:
            # cl100k's pieces begin at a space: a slice that ends before one splits none.
            end = space
        total += len(encode(text[start:end]))
        start = end
    return total


# --- Estimating whole requests ----------------------------------------------------------
#
# The estimate counts what reaches the backend: the system prompt, every message block
# (text, tool_use input as JSON, tool_result content), and the tool schemas. Chat
# formats add a few tokens per message and per block; images are billed by size, which
# we do not decode, so each counts as Anthropic's figure for a ~1.15 megapixel image.

IMAGE_TOKENS = 1600
MESSAGE_OVERHEAD = 4
BLOCK_OVERHEAD = 3
REQUEST_OVERHEAD = 8

# A session's history is resent whole on every turn; counting it costs a hundred times what
# hashing it does (docs/benchmarks.md). Estimates are kept per message (and for the system prompt and tools),
# keyed by a hash of the value's JSON: no message text is kept, so a bound on entries
# is a bound on memory (a few hundred bytes each, ~10 MB when full). A request parsed
# from the session's previous one (addons/request/history.py) shares its objects, and finds
# their estimates in its memo by identity, without hashing. This cache stays beside the
# memo for what identity cannot find: old messages in new objects, from a body parsed
# whole (a resumed or forked session, a subagent, a count_tokens call, a body that is not
# canonical JSON, or stabilizer_incremental off).
CACHE_ENTRIES = 32768


class _EstimateCache:
    """Least-recently-used map from (kind, length, hash) of a value's JSON to its estimate.
    The event loop and the request addon's worker thread count at once: the map is read and
    changed under a lock (an entry another thread dropped cannot be moved), never held while counting."""

    def __init__(self, max_entries: int):
        self.max_entries = max_entries
        self._estimates: OrderedDict[tuple[str, int, int], Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, kind: str, value: Any, estimate: Callable[[Any], T]) -> T:
        encoded = to_json(value)
        key = (kind, len(encoded), hash(encoded))
        with self._lock:
            if (found := self._estimates.get(key)) is not None:
                self._estimates.move_to_end(key)
                return found
        estimated = estimate(value)
        with self._lock:
            self._estimates[key] = estimated
            if len(self._estimates) > self.max_entries:
                self._estimates.popitem(last=False)
        return estimated

    def clear(self) -> None:
        with self._lock:
            self._estimates.clear()


_cache = _EstimateCache(CACHE_ENTRIES)


class MessageEstimate(NamedTuple):
    """What trimming needs to know about a message, found once per distinct message."""

    tokens: int
    # ids of the tool_use blocks (server_tool_use, mcp_tool_use ...) it opens
    tool_use_ids: tuple[str, ...]
    # tool_use_id of the blocks answering one (tool_result, web_search_tool_result ...)
    answered_ids: tuple[str, ...]


def count_content(content: Any) -> int:
    """Tokens in a message's `content` (a string or a list of blocks); not cached."""
    if isinstance(content, str):
        return count_text(content)
    if isinstance(content, list):
        return sum(_count_block(block) for block in content)
    return _count_json(content)


def _count_block(block: Any) -> int:
    if not isinstance(block, dict):
        return count_content(block)
    match block.get("type"):
        case "text":
            return BLOCK_OVERHEAD + count_text(_str(block.get("text")))
        case "image":
            return BLOCK_OVERHEAD + IMAGE_TOKENS
        case "tool_use":
            return BLOCK_OVERHEAD + count_text(_str(block.get("name"))) + _count_json(block.get("input"))
        case "tool_result":
            return BLOCK_OVERHEAD + count_content(block.get("content", ""))
        case "thinking":
            return BLOCK_OVERHEAD + count_text(_str(block.get("thinking")))
        case _:
            return BLOCK_OVERHEAD + _count_json(block)


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _count_json(value: Any) -> int:
    return count_text(to_json(value).decode())


def _estimate_message(message: Any) -> MessageEstimate:
    if not isinstance(message, dict):
        return MessageEstimate(MESSAGE_OVERHEAD + _count_json(message), (), ())
    content = message.get("content", "")
    blocks = [block for block in content if isinstance(block, dict)] if isinstance(content, list) else []
    return MessageEstimate(
        MESSAGE_OVERHEAD + count_content(content),
        tuple(block["id"] for block in blocks if _opens_tool_use(block)),
        tuple(block["tool_use_id"] for block in blocks if isinstance(block.get("tool_use_id"), str)),
    )


def _opens_tool_use(block: dict) -> bool:
    kind = block.get("type")
    return isinstance(kind, str) and kind.endswith("tool_use") and isinstance(block.get("id"), str)


def _message_estimate(message: Any) -> MessageEstimate:
    return _cache.get("message", message, _estimate_message)


def _system_count(system: Any) -> int:
    return _cache.get("system", system, count_content)


def _tools_count(tools: Any) -> int:
    return _cache.get("tools", tools, _count_json)


# Each looks in the request's memo (by identity) first, then in the cache (by JSON).


def estimate_message(message: Any, memo: Memo | None = None) -> MessageEstimate:
    """Tokens and tool ids of one message, cached: a history's old messages are counted once."""
    return _message_estimate(message) if memo is None else memo.get(Kind.ESTIMATE, message, _message_estimate)


def count_message(message: Any, memo: Memo | None = None) -> int:
    return estimate_message(message, memo).tokens


def count_system(system: Any, memo: Memo | None = None) -> int:
    """Tokens of the top-level `system` (a string or a list of text blocks), cached."""
    if not system:
        return 0
    return _system_count(system) if memo is None else memo.get(Kind.SYSTEM_TOKENS, system, _system_count)


def count_tools(tools: Any, memo: Memo | None = None) -> int:
    """Tokens of the tool definitions, counted as their JSON schema, cached."""
    if not tools:
        return 0
    return _tools_count(tools) if memo is None else memo.get(Kind.TOOLS_TOKENS, tools, _tools_count)


def count_fixed(request: dict, memo: Memo | None = None) -> int:
    """Tokens of everything but the messages: what trimming can never remove."""
    return REQUEST_OVERHEAD + count_system(request.get("system"), memo) + count_tools(request.get("tools"), memo)


def estimate_request(request: dict, memo: Memo | None = None) -> int:
    """Estimated input tokens of a Messages API request as the backend will see it."""
    messages = request.get("messages")
    counted = sum(count_message(message, memo) for message in messages) if isinstance(messages, list) else 0
    return count_fixed(request, memo) + counted
