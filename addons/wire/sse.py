"""Server-sent events over bytes: an incremental decoder that keeps each event's
raw bytes, and an encoder for the events this bundle writes.

Line handling follows the WHATWG event-stream rules the Anthropic SDK's
SSEDecoder implements: a line ends at `\\r\\n`, `\\n` or a lone `\\r`; an empty
line ends an event; `:` starts a comment; several `data:` lines join with
`\\n`; one space after the colon is dropped. The decoder never reinterprets
bytes: the `raw` of every event it yields, followed by the rest `finish()`
returns, is exactly what was fed, whatever the chunking. That is what lets a
patcher pass untouched events through byte for byte.
"""

import json
import re
from dataclasses import dataclass
from typing import Any

# An event ends at its first empty line: a line terminator directly followed by
# another. The atomic groups stop `\r\n` from being read as `\r` + `\n` (which
# would invent an empty line). Searching may start a few bytes before new data
# arrived (see _LOOKBACK), also in the middle of a `\r\n`; the end of the first
# match is still the end of the event.
_EVENT_END = re.compile(rb"(?>\r\n|\r|\n)(?>\r\n|\r|\n)")
# The longest event end is `\r\n\r\n`: a match that completes with new data
# starts at most three bytes before it.
_LOOKBACK = 3
# The largest event worth holding back to patch. Real events are a few hundred
# bytes; a whole file as one tool-input delta can reach some hundred KB.
MAX_EVENT_BYTES = 1 << 20


@dataclass(slots=True)
class SSEEvent:
    """One event as it came over the wire.

    `event` is the `event:` field (None when absent or empty), `data` the joined
    `data:` lines (None when there were none). Comment-only blocks, stray
    empty lines and the pieces of an oversized event come with both None, so
    no byte is ever lost.
    """

    raw: bytes
    event: str | None
    data: bytes | None


# The form nearly every event takes (Anthropic's, LiteLLM's): an `event:` line, one `data:` line,
# `\n` line ends. Read in one match, with the fields parse_event's line rules give it.
_PLAIN_EVENT = re.compile(rb"event: ([^\r\n]*)\ndata: ([^\r\n]*)\n\n")


def parse_event(raw: bytes) -> SSEEvent:
    """The fields of one event block (its lines, up to and with the empty line)."""
    if (plain := _PLAIN_EVENT.fullmatch(raw)) is not None:
        return SSEEvent(raw, plain[1].decode("utf-8", "replace") or None, plain[2])
    name: str | None = None
    data_lines: list[bytes] = []
    for line in raw.splitlines():  # bytes.splitlines splits on \r\n, \r, \n only
        if not line or line[0] == 0x3A:  # empty line or ":" comment
            continue
        field, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if field == b"data":
            data_lines.append(value)
        elif field == b"event":
            # An empty name leaves the event unnamed (WHATWG: its type stays "message"), as the SDK reads it.
            name = value.decode("utf-8", "replace") or None
    return SSEEvent(raw, name, b"\n".join(data_lines) if data_lines else None)


class SSEDecoder:
    """Cuts a byte stream into events; keeps a partial event until its empty line.

    An event that grows past `max_event_bytes` before its end arrives is not
    held any longer: its bytes come out as they arrive, as SSEEvents without
    fields, until it ends. Memory stays bounded whatever the upstream sends.
    """

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self.max_event_bytes = max_event_bytes
        self._buffer = b""
        # Where to resume looking for an event end: bytes before it hold none.
        self._scan_from = 0
        # Inside an oversized event: its last bytes, to spot its end across chunks.
        self._oversized_tail: bytes | None = None
        # Whether the bytes held hold a `\r`: without one, an event ends at the first `\n\n`.
        self._cr_held = False

    @property
    def in_oversized_event(self) -> bool:
        return self._oversized_tail is not None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        if self._oversized_tail is not None:
            chunk = self._pass_oversized(chunk, events)
        buffer = self._buffer + chunk if self._buffer else chunk
        has_cr = self._cr_held or b"\r" in chunk
        if has_cr:
            start = self._cut(buffer, events)
        elif buffer.find(b"\n\n", self._scan_from) < 0:
            start = 0
        else:
            # `\n` line ends only, as nearly every stream has: split at once, not event by event.
            *ended, rest = buffer.split(b"\n\n")
            events.extend([parse_event(event + b"\n\n") for event in ended])
            start = len(buffer) - len(rest)
        self._buffer = buffer[start:]
        self._cr_held = has_cr and b"\r" in self._buffer
        self._scan_from = max(0, len(self._buffer) - _LOOKBACK)
        if len(self._buffer) > self.max_event_bytes:
            events.append(SSEEvent(self._buffer, None, None))
            self._oversized_tail = self._buffer[-_LOOKBACK:]
            self._buffer, self._scan_from, self._cr_held = b"", 0, False
        return events

    def _cut(self, buffer: bytes, events: list[SSEEvent]) -> int:
        """Add the events `buffer` completes to `events`; where the rest begins."""
        start = 0
        scan = self._scan_from
        size = len(buffer)
        while (match := _EVENT_END.search(buffer, scan)) is not None:
            end = match.end()
            # A `\r` as the last byte may be the first half of `\r\n`: wait for
            # the next byte so every chunking cuts the same events.
            if end == size and buffer[end - 1] == 0x0D:
                break
            events.append(parse_event(buffer[start:end]))
            start = scan = end
        return start

    def _pass_oversized(self, chunk: bytes, events: list[SSEEvent]) -> bytes:
        """Pass on the part of `chunk` that belongs to the oversized event; return the rest."""
        tail = self._oversized_tail or b""
        window = tail + chunk
        match = _EVENT_END.search(window)
        if match is None or (match.end() == len(window) and window[-1] == 0x0D):
            if chunk:
                events.append(SSEEvent(chunk, None, None))
            self._oversized_tail = window[-_LOOKBACK:]
            return b""
        cut = match.end() - len(tail)
        if cut:
            events.append(SSEEvent(chunk[:cut], None, None))
        self._oversized_tail = None
        return chunk[cut:]

    def finish(self) -> tuple[list[SSEEvent], bytes]:
        """The last events and what is left: an event that never got its empty line.

        At the end a trailing `\\r` is a whole line end; nothing can follow it.
        """
        buffer, self._buffer, self._scan_from, self._oversized_tail = self._buffer, b"", 0, None
        self._cr_held = False
        events: list[SSEEvent] = []
        start = 0
        while (match := _EVENT_END.search(buffer, start)) is not None:
            events.append(parse_event(buffer[start : match.end()]))
            start = match.end()
        return events, buffer[start:]


def encode_event(name: str | None, data: bytes, eol: bytes = b"\n") -> bytes:
    """One event: `event:` line, one `data:` line per line of data, empty line."""
    head = b"event: " + name.encode() + eol if name is not None else b""
    body = b"".join(b"data: " + line + eol for line in data.split(b"\n"))
    return head + body + eol


def json_data(value: Any) -> bytes:
    """Compact JSON for an event's data: one line, UTF-8 kept as is.

    A lone surrogate (JSON's `"\\ud800"` escape, which json.loads accepts)
    has no UTF-8 form: such a value is written with every non-ASCII
    character escaped instead.
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":")).encode()


def replace_data(event: SSEEvent, data: bytes, name: str | None = None) -> bytes:
    """The event with new data, every other line (id, comments) kept in place.

    The new data goes where the first `data:` line was, with that line's
    terminator; `name` adds an `event:` line before the first field when the
    event had none. Only for events that have data.
    """
    out: list[bytes] = []
    data_written = False
    name_missing = name is not None and event.event is None
    for line in event.raw.splitlines(keepends=True):
        content = line.rstrip(b"\r\n")
        if name_missing and content:
            assert name is not None  # name_missing implies a name
            out.append(b"event: " + name.encode() + _terminator(line))
            name_missing = False
        if content == b"data" or content.startswith(b"data:"):
            if not data_written:
                eol = _terminator(line)
                out.append(b"".join(b"data: " + part + eol for part in data.split(b"\n")))
                data_written = True
            continue
        out.append(line)
    return b"".join(out)


def _terminator(line: bytes) -> bytes:
    if line.endswith(b"\r\n"):
        return b"\r\n"
    if line.endswith(b"\r"):
        return b"\r"
    return b"\n"
