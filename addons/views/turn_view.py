"""The text of the "stabilizer" content view (addons/inspection.py): what the addons did to one turn.

Plain functions over plain data: the addons' notes and the bodies, parsed (and
redacted) by the caller. Nothing here knows about mitmproxy.

A request is compared structurally, so that a 2 MB history costs a walk and
not a line diff of megabytes: the top-level keys one by one (short values as
`- key: value` / `+ key: value`, long ones as a unified diff), then the
messages. They are aligned with difflib over each message's exact JSON, so
the messages that went upstream unchanged anchor the rest; what is left is
aligned again on role and tool ids, which shaping leaves alone. A trimmed gap
reads as one `- messages[i..j]: removed` line, and only messages that differ
get a unified diff of their pretty JSON. A response is summed up by its usage
objects and its events, on both sides.

The whole text stays within MAX_LINES lines of at most MAX_LINE_CHARS
characters (one JSON string can be megabytes), and says where it was cut. The
headings and the `- key: value` lines are stable: tests and users grep them.
"""

import difflib
import itertools
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from addons.flow.change import Change
from addons.wire.json_codec import from_json, to_json
from addons.wire.sse import SSEDecoder

CHANGES_HEADING = "What the stabilizer did"
REQUEST_HEADING = "What Claude Code sent vs what went upstream"
RESPONSE_HEADING = "What the backend answered vs what Claude Code got"
USAGE_HEADING = "Usage as the backend gave it (-) and as Claude Code got it (+)"
# A Claude Code turn is the whole conversation (2 MB and more in a long session): the bodies
# as they arrived are kept for the newest turns only (addons/inspection.py), not for every flow.
MAX_KEPT_TURNS = 100
NOT_KEPT = f"not kept: the stabilizer keeps it for the newest {MAX_KEPT_TURNS} turns while mitmweb runs, and in a --record file"

MAX_LINES = 400
# One key's or one message's diff: a shortened tool result must not hide the messages after it.
MAX_SECTION_LINES = 60
MAX_LINE_CHARS = 240
# Values up to this long (as compact JSON) are shown whole on one line, longer ones diffed.
SHORT_VALUE_CHARS = 120
DIFF_CONTEXT = 2

_ABSENT = object()
_USAGE_EVENTS = ("message_start", "message_delta")


# --- requests ----------------------------------------------------------------------


def request_text(
    changes: list[Change], sent: Any, upstream: Any, sizes: tuple[int, int] | None = None, answered_here: bool = False
) -> str:
    """The view of a request: the notes, then Claude Code's body (`sent`) against the one that
    went upstream; None for a body that was not kept. `sizes`: the two bodies' bytes."""
    return _bounded(
        itertools.chain(
            _changes(changes),
            ["", REQUEST_HEADING],
            _request_lines(sent, upstream, sizes, answered_here),
        )
    )


def _request_lines(sent: Any, upstream: Any, sizes: tuple[int, int] | None, answered_here: bool) -> Iterator[str]:
    if answered_here:
        yield "Nothing went upstream: the stabilizer answered this request itself."
        return
    if sent is None or upstream is None:
        yield f"The body as Claude Code sent it was {NOT_KEPT}." if sent is None else "No body went upstream."
        return
    if sent == upstream:
        yield "No difference: the body went upstream as Claude Code sent it."
        return
    if not (isinstance(sent, dict) and isinstance(upstream, dict)):
        yield from _value_diff("body", sent, upstream)
        return
    if overview := _overview(sent.get("messages"), upstream.get("messages"), sizes):
        yield overview
    long_keys = []
    for key in {**sent, **upstream}:  # Claude Code's order, then the keys the stabilizer added
        before, after = sent.get(key, _ABSENT), upstream.get(key, _ABSENT)
        if key == "messages" or before == after:
            continue
        if _is_short(before) and _is_short(after):
            yield from _short_lines(key, before, after)
        else:
            long_keys.append(key)
    yield from _messages_lines(sent.get("messages", _ABSENT), upstream.get("messages", _ABSENT))
    for key in long_keys:  # system and tools last: they are long and change little
        yield from _value_diff(key, sent.get(key, _ABSENT), upstream.get(key, _ABSENT))


def _overview(sent: Any, upstream: Any, sizes: tuple[int, int] | None) -> str:
    parts = []
    if isinstance(sent, list) and isinstance(upstream, list):
        parts.append(f"messages: {len(sent)} -> {len(upstream)}")
    if sizes is not None:
        parts.append(f"body: {sizes[0]:,} -> {sizes[1]:,} bytes")
    return "; ".join(parts)


def _messages_lines(sent: Any, upstream: Any) -> Iterator[str]:
    if not (isinstance(sent, list) and isinstance(upstream, list)):
        if sent != upstream:
            yield from _value_diff("messages", sent, upstream)
        return
    exact = difflib.SequenceMatcher(None, [to_json(m) for m in sent], [to_json(m) for m in upstream], autojunk=False)
    for tag, i1, i2, j1, j2 in exact.get_opcodes():
        if tag != "equal":
            yield from _unmatched(sent, upstream, i1, i2, j1, j2)


def _unmatched(sent: list, upstream: list, i1: int, i2: int, j1: int, j2: int) -> Iterator[str]:
    """Messages sent[i1:i2] against upstream[j1:j2], none of them equal: aligned on role and tool ids."""
    loose = difflib.SequenceMatcher(
        None,
        [_loose_key(m) for m in sent[i1:i2]],
        [_loose_key(m) for m in upstream[j1:j2]],
        autojunk=False,
    )
    for tag, a1, a2, b1, b2 in loose.get_opcodes():
        a1, a2, b1, b2 = a1 + i1, a2 + i1, b1 + j1, b2 + j1
        if tag == "equal" or (tag == "replace" and a2 - a1 == b2 - b1):
            for i, j in zip(range(a1, a2), range(b1, b2)):
                yield from _message_diff(i, sent[i], j, upstream[j])
            continue
        if a2 > a1:
            span = f"messages[{a1}]" if a2 - a1 == 1 else f"messages[{a1}..{a2 - 1}]"
            roles = Counter(_role(m) for m in sent[a1:a2])
            yield f"- {span}: removed ({', '.join(f'{n} {role}' for role, n in roles.items())})"
        for j in range(b1, b2):
            yield f"+ upstream messages[{j}]: added ({_role(upstream[j])}) {_compact(upstream[j])}"


def _message_diff(i: int, before: Any, j: int, after: Any) -> Iterator[str]:
    if before == after:
        return
    moved = f" -> upstream messages[{j}]" if i != j else ""
    yield f"~ messages[{i}] ({_role(before)}){moved}:"
    yield from _section(_unified(_pretty(before), _pretty(after)))


def _loose_key(message: Any) -> Any:
    """What shaping leaves alone in a message: its role and the ids of its tool calls and
    results, else the start of its first own text (folded system text comes after it)."""
    if not isinstance(message, dict):
        return to_json(message)
    role, content = str(message.get("role")), message.get("content")
    if isinstance(content, str):
        return role, content[:80]
    blocks = [block for block in content if isinstance(block, dict)] if isinstance(content, list) else []
    ids = tuple(
        str(block.get("id") or block.get("tool_use_id"))
        for block in blocks
        if block.get("id") or block.get("tool_use_id")
    )
    if ids:
        return role, ids
    texts = (block.get("text") for block in blocks if block.get("type") == "text")
    first = next((text for text in texts if isinstance(text, str) and not text.startswith("<system-reminder>")), "")
    return role, first[:80]


def _role(message: Any) -> str:
    return str(message.get("role")) if isinstance(message, dict) else type(message).__name__


# --- responses ---------------------------------------------------------------------


def answer(body: bytes) -> dict[str, Any]:
    """One side of a response as the view sums it up: its usage objects in order, as
    [where, usage] (message_start, message_delta, or message for a whole JSON body), its
    event counts by name, and for a whole body that is not a stream its JSON (`json`)."""
    if body.lstrip().startswith((b"event:", b"data:", b":")):
        return _stream_answer(body)
    try:
        value = from_json(body)
    except ValueError:
        return {"usage": [], "events": {}}
    is_message = isinstance(value, dict) and value.get("type") == "message" and "usage" in value
    return {"usage": [["message", value["usage"]]] if is_message else [], "events": {}, "json": value}


def _stream_answer(body: bytes) -> dict[str, Any]:
    decoder = SSEDecoder()
    events = decoder.feed(body) + decoder.finish()[0]
    usage: list[list[Any]] = []
    counts: Counter[str] = Counter()
    for event in events:
        if event.data is None and event.event is None:
            continue  # a comment
        payload = _payload(event.data) if event.event in (None, *_USAGE_EVENTS) else None
        kind = event.event or f"{payload.get('type') if isinstance(payload, dict) else 'data'} (no event: line)"
        counts[kind] += 1
        if not isinstance(payload, dict) or payload.get("type") not in _USAGE_EVENTS:
            continue
        holder = payload.get("message") if payload["type"] == "message_start" else payload
        if isinstance(holder, dict) and "usage" in holder:
            usage.append([payload["type"], holder["usage"]])
    return {"usage": usage, "events": dict(counts)}


def _payload(data: bytes | None) -> Any:
    try:
        return from_json(data) if data else None
    except ValueError:
        return None


def response_text(
    changes: list[Change], upstream: dict[str, Any] | None, client: dict[str, Any], answered_here: bool = False
) -> str:
    """The view of a response: the notes, then the backend's answer (None when it was not
    kept) against what Claude Code got, both as `answer` sums them up."""
    return _bounded(
        itertools.chain(
            _changes(changes),
            ["", RESPONSE_HEADING],
            _response_lines(upstream, client, answered_here),
        )
    )


def _response_lines(upstream: dict[str, Any] | None, client: dict[str, Any], answered_here: bool) -> Iterator[str]:
    if answered_here:
        yield "The stabilizer answered this request itself: nothing came from the backend."
        return
    if upstream is None:
        yield f"The answer as the backend sent it was {NOT_KEPT}."
        return
    before, after = dict(upstream["usage"]), dict(client["usage"])
    if before or after:
        yield USAGE_HEADING
    for where in {**before, **after}:
        old, new = before.get(where, _ABSENT), after.get(where, _ABSENT)
        if old == new:
            yield f"  {where} usage: {_compact(old)}"
        else:
            yield f"- {where} usage: {_compact(old)}"
            yield f"+ {where} usage: {_compact(new)}"
    if upstream["events"] or client["events"]:
        sent, got = Counter(upstream["events"]), Counter(client["events"])
        yield f"Events the stabilizer added: {_counted(got - sent) or 'none'}"
        if removed := sent - got:
            yield f"Events the stabilizer removed: {_counted(removed)}"
    if not (before or after) and "json" in upstream and "json" in client:
        if upstream["json"] == client["json"]:
            yield "No difference: Claude Code got the body as the backend sent it."
        else:
            yield from _value_diff("body", upstream["json"], client["json"])


def _counted(counts: Counter[str]) -> str:
    return ", ".join(f"{name} x{n}" for name, n in counts.items())


# --- text --------------------------------------------------------------------------


def _changes(changes: list[Change]) -> Iterator[str]:
    yield CHANGES_HEADING
    yield from (f"  * {change.detail}" for change in changes) if changes else ["  (nothing)"]


def _compact(value: Any) -> str:
    return "(none)" if value is _ABSENT else json.dumps(value, ensure_ascii=False)


def _is_short(value: Any) -> bool:
    return value is _ABSENT or len(_compact(value)) <= SHORT_VALUE_CHARS


def _short_lines(key: str, before: Any, after: Any) -> Iterator[str]:
    if before is not _ABSENT:
        yield f"- {key}: {_compact(before)}"
    if after is not _ABSENT:
        yield f"+ {key}: {_compact(after)}"


def _value_diff(label: str, before: Any, after: Any) -> Iterator[str]:
    if before is _ABSENT or after is _ABSENT:
        yield from _short_lines(label, before, after)  # one line, cut to MAX_LINE_CHARS
        return
    yield f"~ {label}:"
    yield from _section(_unified(_pretty(before), _pretty(after)))


def _pretty(value: Any, indent: str = "", name: str = "") -> Iterator[str]:
    """Indented JSON, one line per value, and a string's lines each on a line of its own,
    so that a change inside a long text shows as the lines that changed. No commas: a
    value added to a list changes no other line."""
    if isinstance(value, dict) and value:
        yield f"{indent}{name}{{"
        for key, item in value.items():
            yield from _pretty(item, indent + "  ", f"{json.dumps(key, ensure_ascii=False)}: ")
        yield f"{indent}}}"
    elif isinstance(value, list) and value:
        yield f"{indent}{name}["
        for item in value:
            yield from _pretty(item, indent + "  ")
        yield f"{indent}]"
    elif isinstance(value, str) and "\n" in value:
        yield f'{indent}{name}"""'
        yield from (f"{indent}  {line}" for line in value.split("\n"))
        yield f'{indent}"""'
    else:
        yield f"{indent}{name}{json.dumps(value, ensure_ascii=False)}"


def _unified(before: Iterable[str], after: Iterable[str]) -> Iterator[str]:
    lines = difflib.unified_diff(list(before), list(after), lineterm="", n=DIFF_CONTEXT)
    return itertools.islice(lines, 2, None)  # without the ---/+++ file header


def _section(lines: Iterator[str]) -> Iterator[str]:
    for count, line in enumerate(lines):
        if count == MAX_SECTION_LINES:
            yield f"  [this diff goes on: cut at {MAX_SECTION_LINES} lines]"
            return
        yield f"  {line}"


def _bounded(lines: Iterable[str]) -> str:
    out = []
    for count, line in enumerate(lines):
        if count == MAX_LINES:
            out.append(f"[cut at {MAX_LINES} lines: more differences follow; the JSON view shows the whole body]")
            break
        out.append(line if len(line) <= MAX_LINE_CHARS else f"{line[:MAX_LINE_CHARS]}... ({len(line):,} chars)")
    return "\n".join(out)
