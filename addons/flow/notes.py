"""What the addons note on a flow for one another, in flow.metadata: defined, written and read here.

The request addon notes what it worked out about a turn (TurnNotes, under
NOTES); the response addon reads it to patch the answer, and every addon that
changes something adds a record to its `changes` (add_changes, with the records
of addons/flow/change.py, stored as that module writes them), which FlowMarker
writes into the flow's comment. mitmproxy writes flow.metadata into flow files
(--record) as plain data, so the notes stay a plain dict: TurnNotes says what
each key holds, and the readers here take a missing or malformed value (a
recording of another version) as absent.

The other keys: SENT (addons/recorder.py: what went on, in a recorded flow),
ORIGINAL (addons/inspection.py: what arrived, kept for mitmweb's view) and
ANSWERED_HERE (addons/flow/answers.py: an addon answered the request itself).
"""

from collections.abc import Iterable, Mapping
from typing import Any, TypedDict

from mitmproxy import http

from addons.flow.change import Change, restored, stored

NOTES = "stabilizer"
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
    trimmed_tokens: int  # the estimate of what trimming cut from the client's request (added to its usage)
    context_window: int
    max_output_tokens: int
    think_tags: bool  # the backend writes its reasoning inside <think> tags
    # The provider's model id that answers: its thinking signatures name it (messages/provenance.py);
    # absent with the option stabilizer_thinking_provenance off.
    origin: str
    safeguards: bool  # auto mode: the request asks for verdicts on its tool calls, kept for LiteLLM
    safeguard_results: list  # auto mode: the verdicts the answer carried (addons/safeguards.py)
    changes: list[dict[str, str]]  # what the addons did, as stored: add_changes() writes, changes() reads


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
    notes.setdefault("changes", []).extend(stored(changes))


def changes(flow: http.HTTPFlow) -> list[Change]:
    """What the addons did to the flow; empty when nothing (read only: no notes are created)."""
    notes = flow.metadata.get(NOTES)
    found = notes.get("changes") if isinstance(notes, dict) else None
    return [restored(value) for value in found] if isinstance(found, list) else []


def count(notes: Mapping[str, object], key: str) -> int:
    """notes[key] when it is a positive int, else 0 (absent, null, junk)."""
    value: Any = notes.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
