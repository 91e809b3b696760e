"""What an addon changed in a flow, as a record: its kind and one short sentence.

The code that makes a change makes the record; readers go by the kind (the filter
words of addons/inspection.py) and show the sentence only at the edge: the flow's
comment, the stabilizer view, log lines. Plain data, nothing here knows about
mitmproxy; addons/flow/notes.py keeps the records on the flow, in the form
stored() writes and restored() reads.
"""

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


class ChangeKind(enum.StrEnum):
    REFUSED = "refused"  # the stabilizer answered an error itself: nothing went upstream
    TRIMMED = "trimmed"  # messages or tool results cut to fit the context window
    USAGE_FILLED = "usage_filled"  # usage counts the backend did not give, estimated
    COUNT_ESTIMATED = "count_estimated"  # count_tokens answered with the estimate: the upstream gave no count
    UPSTREAM_ERROR = "upstream_error"  # an error from upstream reshaped, a cut stream ended
    STRIPPED = "stripped"  # what the backend does not take removed, or replaced by a note
    REPAIRED = "repaired"  # something malformed made well-formed
    THINKING = "thinking"  # the thinking switch and effort, reasoning notes, <think> tags
    CAPPED = "capped"  # max_tokens lowered to the model's limit
    FOLDED = "folded"  # system messages folded into user turns
    ROUTED = "routed"  # the turn sent to another model
    AUTO_MODE = "auto_mode"  # auto mode's classifier call, and the verdicts on a turn's tool calls
    OTHER = "other"  # anything else, and a note of an older recording that earns no filter word


# Each kind by its value: restored() reads one per change on each flow, and calling the enum
# class (ChangeKind(value), `value in ChangeKind`) is a Python call where this is a dict lookup.
_KINDS = {kind.value: kind for kind in ChangeKind}


@dataclass(frozen=True)
class Change:
    kind: ChangeKind
    detail: str  # the sentence shown: "trimmed 4 messages"


def described(changes: Iterable[Change]) -> str:
    """The changes as one line of text, for a log line or a flow's comment."""
    return "; ".join(change.detail for change in changes)


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


def stored(changes: Iterable[Change]) -> list[dict[str, str]]:
    """The changes as plain data, the form flow notes keep them in."""
    return [{"kind": change.kind.value, "detail": change.detail} for change in changes]


def restored(value: Any) -> Change:
    """A change as stored() wrote it; a sentence alone (a recording made before the records)
    gets the kind it earned a filter word by then (LEGACY_KINDS), else OTHER."""
    if isinstance(value, dict) and isinstance(detail := value.get("detail"), str):
        kind = value.get("kind")  # one a later version added: OTHER
        return Change(_KINDS.get(kind, ChangeKind.OTHER) if isinstance(kind, str) else ChangeKind.OTHER, detail)
    detail = str(value)
    kind = next((kind for pattern, kind in LEGACY_KINDS if pattern.search(detail)), ChangeKind.OTHER)
    return Change(kind, detail)
