"""What an addon changed in a flow, as a record: its kind and one short sentence.

The code that makes a change makes the record; readers go by the kind (the filter
words of addons/inspection.py) and show the sentence only at the edge: the flow's
comment, the stabilizer view, log lines. Plain data, nothing here knows about
mitmproxy; addons/flow/notes.py stores the records on the flow.
"""

import enum
from collections.abc import Iterable
from dataclasses import dataclass


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
    OTHER = "other"  # anything else, and a note of an older recording that earns no filter word


@dataclass(frozen=True)
class Change:
    kind: ChangeKind
    detail: str  # the sentence shown: "trimmed 4 messages"


def described(changes: Iterable[Change]) -> str:
    """The changes as one line of text, for a log line or a flow's comment."""
    return "; ".join(change.detail for change in changes)
