"""addons/flow/notes.py: what the addons note on a flow for one another, kept as plain data, and
a missing or malformed note (a recording of another version) read as absent."""

import io as bytes_io

import pytest
from mitmproxy import io
from mitmproxy.test import tflow

from addons.flow.change import Change, ChangeKind
from addons.flow.notes import NOTES, add_changes, changes, count, turn_notes

TRIMMED = Change(ChangeKind.TRIMMED, "trimmed 4 messages")
CAPPED = Change(ChangeKind.CAPPED, "capped max_tokens 32000->8192")


def test_notes_are_made_once_and_kept_on_the_flow():
    flow = tflow.tflow()
    notes = turn_notes(flow)
    assert notes == {"changes": []}
    notes["model"] = "qwen-plus"
    assert turn_notes(flow) is notes and flow.metadata[NOTES]["model"] == "qwen-plus"


@pytest.mark.parametrize("found", ["a sentence", ["a list"], {"changes": "not a list", "model": "m"}])
def test_malformed_notes_are_made_sound(found):
    flow = tflow.tflow()
    flow.metadata[NOTES] = found
    notes = turn_notes(flow)
    assert isinstance(notes, dict) and notes["changes"] == []
    assert notes.get("model") == (found.get("model") if isinstance(found, dict) else None)


def test_changes_are_added_after_those_already_in_and_read_back():
    flow = tflow.tflow()
    add_changes(turn_notes(flow), [CAPPED])
    add_changes(turn_notes(flow), [TRIMMED])
    assert changes(flow) == [CAPPED, TRIMMED]
    fresh = {}
    add_changes(fresh, [TRIMMED])  # notes not yet on a flow
    assert fresh == {"changes": [{"kind": "trimmed", "detail": "trimmed 4 messages"}]}


@pytest.mark.parametrize("found", [None, "a sentence", {"changes": None}, {"changes": {"kind": "trimmed"}}])
def test_reading_changes_creates_nothing_and_takes_junk_as_none(found):
    flow = tflow.tflow()
    if found is not None:
        flow.metadata[NOTES] = found
    assert changes(flow) == []
    assert flow.metadata.get(NOTES) == found


def test_the_notes_are_plain_data_in_a_flow_file():
    flow = tflow.tflow(resp=True)
    notes = turn_notes(flow)
    notes["input_tokens"] = 1200
    add_changes(notes, [CAPPED, TRIMMED])
    buffer = bytes_io.BytesIO()
    io.FlowWriter(buffer).add(flow)
    buffer.seek(0)
    (read,) = io.FlowReader(buffer).stream()
    assert changes(read) == [CAPPED, TRIMMED] and count(read.metadata[NOTES], "input_tokens") == 1200


@pytest.mark.parametrize(
    "value, counted", [(7, 7), (0, 0), (-3, 0), (True, 0), (2.5, 0), ("7", 0), (None, 0), ([7], 0)]
)
def test_a_count_is_a_positive_integer_or_nothing(value, counted):
    assert count({"input_tokens": value}, "input_tokens") == counted
    assert count({}, "input_tokens") == 0
