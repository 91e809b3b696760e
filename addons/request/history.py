"""Parsing a session's next request from the one before it.

Claude Code sends the whole conversation on every turn. From one turn to the
next the body's bytes stay the same up to the last message or two (the
`cache_control` mark moves to the newest turn) and after the messages (system
prompt, tools, settings); new messages are appended. Parsing a long session's
body whole takes milliseconds (docs/benchmarks.md); this parses only what changed.

It can do so from a body whose layout it knows: a canonical one, exactly the
bytes orjson writes for the value it parses to (compact JSON as JSON.stringify
writes it: no spaces, no duplicate keys). Of such a body R it knows where each
message ends and where the `]` closing the messages is:

    R = head [ m0 , m1 , ... , m(n-1) ] tail
              ^first     ends[i]^      ^close

A new body B continues R when it begins with R's `head [` and ends with R's
`] tail`. If it also begins with R's first k messages, each with its comma
(k < n: the last one has none), then

    B = head [ m0 , ... , m(k-1) , rest ] tail

and B's value is R's with messages[k:] replaced by the parse of `[rest]`: a
JSON parser is in the same state after `head [ m0 , ... , m(k-1) ,` in R and
in B, and `] tail` ends both the same way. If `[rest]` is not JSON, or is empty
while k > 0 (B would end its messages with a comma), B is parsed whole, which
gives its own error.

The reused messages, system prompt and tools are the very objects parsed from
R, so what was worked out from them is found in R's memo (addons/messages/memo.py); B's
memo starts from it. Nothing downstream mutates a parsed request
(addons/request/shaping.py copies what it changes), so sharing the objects is safe.

encode() writes the shaped request back to bytes the same way round: every
part that is still the very object parsed is copied from the body's bytes
(runs of messages as one copy), and only what shaping changed is written.

A few bodies are remembered (MAX_BODIES, at most MAX_BYTES together), the
least recently used dropped first. A body that continues all of a remembered
one but its last message takes its place: the same session, a turn later. Any
other is added, so a session forked from another (a subagent, a compaction, a
resumed branch) does not push out the one it shares its start with. A body
that is not canonical is parsed whole every time, and written with to_json.

The event loop and the request addon's worker thread parse at once (a small
request goes on while a large one is counted, addons/request_shaper.py): the
list of remembered bodies is read and changed under a lock, held for that
alone, never while a body is parsed. What a body's memo is given while another
thread still fills it is only looked up (addons/messages/memo.py).
"""

import threading
from bisect import bisect_right
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from addons.messages.memo import Kind, Memo
from addons.wire.json_codec import parse_json, to_json

MAX_BODIES = 8
MAX_BYTES = 24 << 20


@dataclass(frozen=True, eq=False)
class _Layout:
    raw: bytes
    body: dict
    # offset just after each message; ends[i] + 1 is where message i + 1 starts
    ends: list[int]
    first: int  # where the first message starts, just after `"messages":[`
    close: int  # where the `]` closing the messages is
    # (start, end) of the value of each top-level key but messages
    members: dict[str, tuple[int, int]]
    memo: Memo

    def message_start(self, index: int) -> int:
        return self.ends[index - 1] + 1 if index else self.first


class Parsed(NamedTuple):
    body: Any
    memo: Memo
    # messages taken over from a remembered body without being parsed again
    reused: int = 0
    # where each part of the body is in its bytes, when they are canonical
    layout: _Layout | None = None
    # lone UTF-16 surrogates replaced by U+FFFD (addons/wire/json_codec.py, parse_json): the bytes are not the value's
    repaired: int = 0


class History:
    def __init__(self, max_bodies: int = MAX_BODIES, max_bytes: int = MAX_BYTES):
        self.max_bodies = max_bodies
        self.max_bytes = max_bytes
        self._known: list[_Layout] = []  # least recently used first
        self._lock = threading.Lock()  # over _known: the loop and a worker thread parse at once

    def parse(self, raw: bytes) -> Parsed:
        """`raw` parsed as addons.wire.json_codec.parse_json parses it (same value, same
        errors), from a remembered body where `raw` continues one."""
        with self._lock:
            remembered = list(self._known)
        best, reused = None, -1
        for known in reversed(remembered):
            if (k := _reusable_messages(known, raw, reused)) > reused:
                best, reused = known, k
        if best is not None:
            if (parsed := self._continue(best, raw, reused)) is not None:
                return parsed
        body, repaired = parse_json(raw)
        memo = Memo()
        layout = _layout(raw, body, memo) if len(raw) <= self.max_bytes and not repaired else None
        self._remember(layout)
        return Parsed(body, memo, 0, layout, repaired)

    def _continue(self, known: _Layout, raw: bytes, k: int) -> Parsed | None:
        start = known.message_start(k)
        rest_end = len(raw) - (len(known.raw) - known.close)
        try:
            rest, repaired = parse_json(b"[" + raw[start:rest_end] + b"]")
        except ValueError:
            return None
        if k and not rest:
            return None
        body = {**known.body, "messages": [*known.body["messages"][:k], *rest]}
        memo = Memo(known.memo)
        ends = _message_ends(raw, rest, start, rest_end)
        layout = None
        if ends is not None and len(raw) <= self.max_bytes and not repaired:
            shift = rest_end - known.close  # the tail moved with the messages' new length
            members = {
                key: (begin + shift, end + shift) if begin > known.close else (begin, end)
                for key, (begin, end) in known.members.items()
            }
            layout = _Layout(raw, body, [*known.ends[:k], *ends], known.first, rest_end, members, memo)
            self._remember(layout, replaces=known if k >= len(known.ends) - 1 else None)
        return Parsed(body, memo, k, layout, repaired)

    def _remember(self, layout: _Layout | None, replaces: _Layout | None = None) -> None:
        """Remember `layout`, in place of `replaces` (the same session a turn earlier: all of it
        again, and more) unless another thread's parse has replaced that one already."""
        if layout is None:
            return
        with self._lock:
            if replaces is not None and replaces in self._known:
                self._known.remove(replaces)
            self._known.append(layout)
            while len(self._known) > self.max_bodies or sum(len(known.raw) for known in self._known) > self.max_bytes:
                del self._known[0]


def whole(raw: bytes) -> Parsed:
    """`raw` parsed by itself, as History.parse would without a remembered body (nothing remembered)."""
    body, repaired = parse_json(raw)
    return Parsed(body, Memo(), 0, None, repaired)


def encode(request: dict, parsed: Parsed) -> bytes:
    """to_json(request), byte for byte, with every value that is still the very
    object parsed (a message, the tools...) copied from the parsed bytes
    instead of written again: 2 MB of history is a memory copy, not a second
    serialization. The objects are never changed after parsing (see above).
    Copies the shaping made (a message without cache_control, one that took a
    folded system message) are written once and found in the memo next turn."""
    layout = parsed.layout
    if layout is None or not isinstance(request.get("messages"), list):
        return to_json(request)
    raw = memoryview(layout.raw)
    parts: list[Any] = []
    try:
        for key, value in request.items():
            parts += (b"," if parts else b"{", orjson.dumps(key), b":")
            span = layout.members.get(key)
            if key == "messages":
                _encode_messages(value, layout, parsed.memo, raw, parts)
            elif span is not None and layout.body.get(key) is value:
                parts.append(raw[span[0] : span[1]])
            else:
                parts.append(parsed.memo.get(Kind.JSON, value, orjson.dumps))
    except orjson.JSONEncodeError:
        return to_json(request)
    parts.append(b"}")
    return b"".join(parts)


def _encode_messages(messages: list, layout: _Layout, memo: Memo, raw: memoryview, parts: list) -> None:
    """The messages array; runs of parsed messages in their parsed order go as one copy."""
    parsed = layout.body["messages"]
    index_of: dict[int, int] | None = None  # built only when a message is not where the order puts it
    expected = 0  # where the next message is in `parsed` while the order holds
    parts.append(b"[")
    run_start = run_end = -1  # parsed messages [run_start, run_end) pending as one copy
    for position, message in enumerate(messages):
        if run_end != -1 and run_end < len(parsed) and parsed[run_end] is message:
            run_end += 1
            continue
        if run_end != -1:
            parts.append(raw[layout.message_start(run_start) : layout.ends[run_end - 1]])
            expected, run_start, run_end = run_end, -1, -1
        if position:
            parts.append(b",")
        if expected < len(parsed) and parsed[expected] is message:
            index: int | None = expected
        else:  # after a copy made by shaping, or a cut
            if index_of is None:
                index_of = {id(message): index for index, message in enumerate(parsed)}
            index = index_of.get(id(message))
        if index is not None and parsed[index] is message:
            run_start, run_end = index, index + 1
        else:
            parts.append(memo.get(Kind.JSON, message, orjson.dumps))
            expected += 1
    if run_end != -1:
        parts.append(raw[layout.message_start(run_start) : layout.ends[run_end - 1]])
    parts.append(b"]")


def _reusable_messages(known: _Layout, raw: bytes, to_beat: int = -1) -> int:
    """How many of `known`'s messages `raw` begins with (each with its comma); -1
    when `raw` does not continue `known` at all, or cannot take over more than `to_beat`."""
    most = max(len(known.ends) - 1, 0)  # the last message has no comma
    if most <= to_beat:
        return -1
    known_raw = memoryview(known.raw)
    tail = known_raw[known.close :]
    limit = len(raw) - len(tail)  # where raw's messages would close
    beaten = known.message_start(to_beat + 1)  # what raw must share to take over more
    if limit < beaten or not raw.endswith(tail) or not raw.startswith(known_raw[:beaten]):
        return -1
    # A next turn takes over all but the last message (its cache_control mark moved on):
    # one comparison up to there, before searching byte by byte.
    if (whole := known.message_start(most)) <= limit and raw.startswith(known_raw[beaten:whole], beaten):
        return most
    shared = _common_prefix(raw, known.raw, limit, beaten)
    # message i is reused when its comma (at ends[i]) is shared too
    return min(bisect_right(known.ends, shared - 1), most)


def _common_prefix(a: bytes, b: bytes, limit: int, shared: int = 0) -> int:
    """Length of the longest common prefix of a[:limit] and b (memcmp, not a loop over bytes),
    given that a[:shared] == b[:shared]."""
    end = min(limit, len(b))
    view = memoryview(b)
    if a.startswith(view[shared:end], shared):
        return end
    low, high = min(shared, end), end  # a[:low] == b[:low]; a[:high] != b[:high]
    while high - low > 1:
        middle = (low + high) // 2
        if a.startswith(view[low:middle], low):
            low = middle
        else:
            high = middle
    return low


def _layout(raw: bytes, body: Any, memo: Memo) -> _Layout | None:
    """Where the parts of `body` are in `raw`, if `raw` is canonical."""
    if not isinstance(body, dict) or not isinstance(messages := body.get("messages"), list):
        return None
    keys = list(body)
    place = keys.index("messages")
    members: dict[str, tuple[int, int]] = {}
    try:
        head = _members(keys[:place], body, 1, members, leading_comma=False) + b'"messages":['
        first = len(head) + 1
        tail_members = _members(keys[place + 1 :], body, 0, {}, leading_comma=True)
    except orjson.JSONEncodeError:
        return None
    tail = b"]" + tail_members + b"}"
    close = len(raw) - len(tail)
    if not (raw.startswith(b"{" + head) and raw.endswith(tail)) or close < first:
        return None
    _members(keys[place + 1 :], body, close + 1, members, leading_comma=True)
    ends = _message_ends(raw, messages, first, close)
    return None if ends is None else _Layout(raw, body, ends, first, close, members, memo)


def _members(keys: list[str], body: dict, offset: int, spans: dict, *, leading_comma: bool) -> bytes:
    """`"key":value` for each key, comma-separated, as written from `offset` on;
    notes where each value is in `spans`."""
    written: list[bytes] = []
    for key in keys:
        if leading_comma or written:
            written.append(b",")
            offset += 1
        name, value = orjson.dumps(key) + b":", orjson.dumps(body[key])
        spans[key] = (offset + len(name), offset + len(name) + len(value))
        written += (name, value)
        offset += len(name) + len(value)
    return b"".join(written) + (b"," if keys and not leading_comma else b"")


def _message_ends(raw: bytes, messages: list, start: int, close: int) -> list[int] | None:
    """Offsets just after each message, if raw[start:close] is exactly the
    messages as orjson writes them, comma-separated; None otherwise."""
    ends = []
    position = start
    for index, message in enumerate(messages):
        if index:
            if raw[position : position + 1] != b",":
                return None
            position += 1
        try:
            encoded = orjson.dumps(message)
        except orjson.JSONEncodeError:
            return None
        if not raw.startswith(encoded, position):
            return None
        position += len(encoded)
        ends.append(position)
    return ends if position == close else None
