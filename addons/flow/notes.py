"""What the addons note on a flow for one another, in flow.metadata: defined, written and read here.

The request addon notes what it worked out about a turn (TurnNotes, under
NOTES); the response addon reads it to patch the answer, and every addon that
changes something adds a record to its `changes` (add_changes, with the records
of addons/flow/change.py), which FlowMarker writes into the flow's comment.
mitmproxy writes flow.metadata into flow files (--record) as plain data, so the
notes stay a plain dict, each change in it {"kind": ..., "detail": ...}: TurnNotes
says what each key holds, and the readers here take a missing or malformed value
(a recording of another version) as absent. A recording made before the records
holds each change as its sentence alone: `changes` gives such a sentence the kind
it earned a filter word by then (LEGACY_KINDS), else OTHER.

KIND holds what the request is (addons/flow/kind.py), noted by FlowClassifier
(addons/classifier.py) as it arrives, as the kind's string: read it with
flow_kind(), which classifies a flow that lacks it (a recording of an earlier
version, a hook driven on its own) by its request as it is now.

The other keys: SENT (addons/recorder.py: what went on, in a recorded flow),
ORIGINAL (addons/inspection.py: what arrived, kept for mitmweb's view) and
ANSWERED_HERE (addons/flow/answers.py: an addon answered the request itself).
"""

import re
from collections.abc import Iterable, Mapping
from typing import Any, TypedDict

from mitmproxy import http

from addons.flow.change import Change, ChangeKind
from addons.flow.kind import FlowKind, classify

NOTES = "stabilizer"
KIND = "stabilizer_kind"
SENT = "stabilizer_sent"
ORIGINAL = "stabilizer_original"
ANSWERED_HERE = "stabilizer_answered_here"


class TurnNotes(TypedDict, total=False):
    model: str  # the model name Claude Code sent
    policy_file: str | None  # the policy in use ("" or None: built-in defaults), named in a refusal's hint
    policy_key: str | None  # the entry under `models` that applies, or would
    reasoning_required: bool  # that entry's thinking.require_reasoning: a reasoning refusal's hint differs
    signatures_verified: bool  # other models' thinking is kept from it: a signature refusal gets no hint
    stream: bool  # the client asked for a stream
    input_tokens: int  # the estimate of what went upstream
    fixed_tokens: int  # of which the system prompt, the tools and the request's overhead
    context_window: int
    max_output_tokens: int
    think_tags: bool  # the backend writes its reasoning inside <think> tags
    origin: str  # the provider's model id that answers: its thinking signatures name it (messages/provenance.py)
    changes: list[dict[str, str]]  # what the addons did, as stored: add_changes() writes, changes() reads


def flow_kind(flow: http.HTTPFlow) -> FlowKind:
    """What the request is, as noted on arrival; classified now when no kind (or junk) was noted."""
    try:
        return FlowKind(flow.metadata[KIND])
    except (KeyError, ValueError):
        return classify(flow.request.method, flow.request.path)


def turn_notes(flow: http.HTTPFlow) -> TurnNotes:
    """The flow's notes, created empty when no addon left any; `changes` is always a list."""
    notes = flow.metadata.get(NOTES)
    if not isinstance(notes, dict):
        notes = flow.metadata[NOTES] = {}
    if not isinstance(notes.get("changes"), list):
        notes["changes"] = []
    return notes  # type: ignore[return-value]


def add_changes(notes: TurnNotes, changes: Iterable[Change]) -> None:
    """Add the changes to `notes` (a flow's turn_notes, or new ones), after those already in, as plain data."""
    stored = notes.setdefault("changes", [])
    stored.extend({"kind": change.kind.value, "detail": change.detail} for change in changes)


def changes(flow: http.HTTPFlow) -> list[Change]:
    """What the addons did to the flow; empty when nothing (read only: no notes are created)."""
    notes = flow.metadata.get(NOTES)
    found = notes.get("changes") if isinstance(notes, dict) else None
    return [_change(stored) for stored in found] if isinstance(found, list) else []


# The sentences that earned a filter word (addons/inspection.py) before changes were records,
# and the kind that earns it now: a recording of those days gets the same words.
LEGACY_KINDS = (
    (re.compile(r"^answered \d{3}:"), ChangeKind.REFUSED),
    (re.compile(r"^(trimmed \d+ messages|shortened the last turn's tool results)"), ChangeKind.TRIMMED),
    (
        re.compile(r"^count_tokens: upstream HTTP \d{3} gave no count, answered the estimate"),
        ChangeKind.COUNT_ESTIMATED,
    ),
    (re.compile(r"filled usage"), ChangeKind.USAGE_FILLED),
    (
        re.compile(r"^(HTTP \d{3} error ->|error event reshaped|stream ended without message_stop)"),
        ChangeKind.UPSTREAM_ERROR,
    ),
)


def _change(stored: Any) -> Change:
    if isinstance(stored, dict) and isinstance(detail := stored.get("detail"), str):
        kind = stored.get("kind")  # one a later version added: OTHER
        return Change(ChangeKind(kind) if isinstance(kind, str) and kind in ChangeKind else ChangeKind.OTHER, detail)
    detail = str(stored)
    kind = next((kind for pattern, kind in LEGACY_KINDS if pattern.search(detail)), ChangeKind.OTHER)
    return Change(kind, detail)


def count(notes: Mapping[str, object], key: str) -> int:
    """notes[key] when it is a positive int, else 0 (absent, null, junk)."""
    value: Any = notes.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
