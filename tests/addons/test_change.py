"""addons/flow/change.py: the changes read back from a flow's notes, as FlowMarker reads them.

A recording made before the changes were records holds sentences alone; a later
version's kind is not known here.
"""

import pytest

from addons.flow.change import Change, ChangeKind
from addons.flow.notes import changes
from tests.addons.view_bundle import marked


@pytest.mark.parametrize(
    "sentence, word",
    [
        ("answered 413: the request body is over 32 MB", "refused"),
        ("trimmed 4 messages", "trimmed"),
        ("shortened the last turn's tool results by 900 tokens", "trimmed"),
        ("message_delta: filled usage output_tokens=3", "usage patched"),
        ("count_tokens: upstream HTTP 200 gave no count, answered the estimate 9", "usage patched, upstream error"),
        ("HTTP 502 error -> 529 overloaded_error", "upstream error"),
        ("error event reshaped to overloaded_error", "upstream error"),
        ("stream ended without message_stop: appended an overloaded_error event", "upstream error"),
        ("capped max_tokens 32000->8192", None),
    ],
)
def test_a_recording_made_before_the_records_gets_the_words_it_had(sentence, word):
    # Its changes are the sentences alone: read as the kind that earned the word by then.
    flow = marked([sentence])
    assert flow.comment == (f"[{word}] {sentence}" if word else sentence)
    assert [change.detail for change in changes(flow)] == [sentence]


@pytest.mark.parametrize("stored", [{"kind": "from_a_later_version", "detail": "did x"}, 7])
def test_a_change_of_no_kind_known_here_is_shown_as_other(stored):
    assert changes(marked([stored])) == [Change(ChangeKind.OTHER, "did x" if isinstance(stored, dict) else "7")]
