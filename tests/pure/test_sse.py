"""The SSE decoder against the Anthropic SDK's own decoder, under every chunking."""

import json

from anthropic._streaming import SSEDecoder as SDKDecoder
from hypothesis import given, settings
from hypothesis import strategies as st

from addons.wire.sse import SSEDecoder, encode_event, json_data, parse_event, replace_data

LINE_ENDS = st.sampled_from(["\n", "\r\n", "\r"])
# Field values: no line terminators (they cannot be inside a line).
VALUES = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=20)


@st.composite
def sse_event(draw, line_ends=LINE_ENDS) -> str:
    lines = []
    if draw(st.booleans()):
        lines.append(":" + draw(VALUES))
    if draw(st.booleans()):
        lines.append("event: " + draw(st.sampled_from(["message_start", "content_block_delta", "ping", "error"])))
    if draw(st.booleans()):
        lines.append("id: " + draw(st.text("0123456789", min_size=1, max_size=3)))
    for value in draw(st.lists(VALUES, min_size=1, max_size=3)):
        lines.append(draw(st.sampled_from(["data: ", "data:"])) + value)
    draw(st.randoms()).shuffle(lines)
    text = "".join(line + draw(line_ends) for line in lines)
    end = draw(line_ends)
    # `\r` then `\n` is one `\r\n`, not an empty line: the event would go on.
    return text + ("\r" if text.endswith("\r") and end == "\n" else end)


@st.composite
def plain_event(draw) -> str:
    """The form nearly every event takes: an `event:` line, one `data: ` line, `\n` line ends."""
    return f"event: {draw(VALUES)}\ndata: {draw(VALUES)}\n\n"


# Hypothesis deadlines are timings: never asserted here.
NO_DEADLINE = settings(deadline=None)
STREAMS = st.lists(sse_event(), max_size=8).map(lambda events: "".join(events).encode())
# `\n` line ends only, as nearly every real stream has: the decoder's fast path.
LF_STREAMS = st.lists(plain_event() | sse_event(st.just("\n")), max_size=8).map(lambda events: "".join(events).encode())


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted({cut % (len(data) + 1) for cut in cuts}), len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


def decode(chunks: list[bytes]) -> tuple[list, bytes]:
    decoder = SSEDecoder()
    events = [event for chunk in chunks for event in decoder.feed(chunk)]
    last, rest = decoder.finish()
    return events + last, rest


def fields(events) -> list[tuple[str | None, str]]:
    """(event, data) of the events a client dispatches, as the SDK reports them."""
    return [(e.event, e.data.decode()) for e in events if e.data is not None]


def sdk_fields(data: bytes) -> list[tuple[str | None, str]]:
    return [(sse.event, sse.data) for sse in SDKDecoder().iter_bytes(iter([data]))]


@NO_DEADLINE
@given(STREAMS | LF_STREAMS, st.lists(st.integers(min_value=0), max_size=12))
def test_every_chunking_cuts_the_same_events_and_loses_no_byte(data, cuts):
    whole, whole_rest = decode([data])
    events, rest = decode(chunked(data, cuts))
    assert [e.raw for e in events] == [e.raw for e in whole]
    assert rest == whole_rest
    assert b"".join(e.raw for e in events) + rest == data


@NO_DEADLINE
@given(STREAMS | LF_STREAMS)
def test_fields_match_the_anthropic_sdk_decoder(data):
    events, rest = decode([data])
    assert rest == b""
    assert fields(events) == sdk_fields(data)


@NO_DEADLINE
@given(STREAMS | LF_STREAMS)
def test_one_byte_at_a_time(data):
    events, rest = decode([data[i : i + 1] for i in range(len(data))])
    assert [e.raw for e in events] == [e.raw for e in decode([data])[0]]


def test_cr_lf_split_across_chunks_is_one_line_end():
    decoder = SSEDecoder()
    assert decoder.feed(b"event: ping\r\ndata: {}\r\n\r") == []  # the last \r may be half a \r\n
    events = decoder.feed(b"\nevent: ping\n")
    assert [e.raw for e in events] == [b"event: ping\r\ndata: {}\r\n\r\n"]
    assert decoder.finish() == ([], b"event: ping\n")


def test_lone_cr_at_the_end_ends_the_event():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\r\r") == []
    events, rest = decoder.finish()
    assert [(e.event, e.data, e.raw) for e in events] == [(None, b"x", b"data: x\r\r")]
    assert rest == b""


def test_fields_comments_and_multiline_data():
    event = parse_event(b': comment\nevent:message_delta\ndata: {"a":\ndata:  1}\nid: 7\nretry: 10\ndata\n\n')
    assert event.event == "message_delta"
    assert event.data == b'{"a":\n 1}\n'  # one space dropped; a bare `data` line adds an empty line
    assert parse_event(b": only a comment\n\n").data is None
    assert parse_event(b"\n").event is None


def test_the_common_form_reads_as_the_line_rules_read_it():
    # `event:` then one `data:` line, `\n` line ends: read in one match; ended `\r\n`: line by line.
    for name, data in [(b"a:b", b" x "), (b"", b""), (b"message_delta", b'{"a": 1}')]:
        plain = parse_event(b"event: " + name + b"\ndata: " + data + b"\n\n")
        by_lines = parse_event(b"event: " + name + b"\r\ndata: " + data + b"\r\n\r\n")
        assert (plain.event, plain.data) == (by_lines.event, by_lines.data)
    assert parse_event(b"event: \ndata: x\n\n").event is None  # an empty name leaves it unnamed (WHATWG)


def test_encode_event_round_trips():
    raw = encode_event("message_stop", json_data({"type": "message_stop", "text": "héllo"}))
    assert raw == 'event: message_stop\ndata: {"type":"message_stop","text":"héllo"}\n\n'.encode()
    assert json.loads(parse_event(raw).data) == {"type": "message_stop", "text": "héllo"}
    assert encode_event(None, b"a\nb", b"\r\n") == b"data: a\r\ndata: b\r\n\r\n"


def test_replace_data_keeps_other_lines_and_line_ends():
    event = parse_event(b"id: 4\r\nevent: message_start\r\n: note\r\ndata: {\r\ndata: }\r\n\r\n")
    assert replace_data(event, b'{"new":1}') == b'id: 4\r\nevent: message_start\r\n: note\r\ndata: {"new":1}\r\n\r\n'


def test_replace_data_names_an_unnamed_event_before_its_first_field():
    event = parse_event(b'\ndata: {"type":"ping"}\n\n')
    assert replace_data(event, event.data, name="ping") == b'\nevent: ping\ndata: {"type":"ping"}\n\n'


@NO_DEADLINE
@given(STREAMS, st.lists(st.integers(min_value=0), max_size=12), st.integers(1, 40))
def test_oversized_events_pass_on_in_pieces_and_the_rest_decodes_the_same(data, cuts, limit):
    decoder = SSEDecoder(max_event_bytes=limit)
    items = [event for chunk in chunked(data, cuts) for event in decoder.feed(chunk)]
    last, rest = decoder.finish()
    items += last
    assert b"".join(e.raw for e in items) + rest == data
    whole, _ = decode([data])
    # Each event comes whole, or (if over the limit) as field-less pieces that add up to it.
    position = 0
    for event in whole:
        item = items[position]
        if (item.raw, item.event, item.data) == (event.raw, event.event, event.data):
            position += 1
            continue
        assert len(event.raw) > limit
        pieces = b""
        while pieces != event.raw:
            assert items[position].event is None and items[position].data is None
            pieces += items[position].raw
            position += 1
    assert position == len(items)


def test_an_endless_event_is_not_held_in_memory():
    decoder = SSEDecoder(max_event_bytes=1000)
    assert decoder.feed(b'data: {"a":"') == []
    passed = [event.raw for _ in range(100) for event in decoder.feed(b"x" * 100)]
    assert sum(map(len, passed)) >= 100 * 100 - 1000 and decoder.in_oversized_event
    events = decoder.feed(b'"}\n\nevent: ping\ndata: {}\n\n')
    assert [e.raw for e in events] == [b'"}\n\n', b"event: ping\ndata: {}\n\n"]
    assert not decoder.in_oversized_event
