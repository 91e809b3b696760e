"""<think> tags in the text: thinking blocks for Claude Code, and tags again on the way back."""

from hypothesis import given
from hypothesis import strategies as st

from addons.messages.think_tags import ThinkTagSplitter, joined_message, split_message


def stream_of(parts: list[str], tool: bool = False) -> list[tuple[str, dict]]:
    """A text block streamed in `parts`, and a tool_use block after it."""
    events = [
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        )
    ]
    events += [
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": part}},
        )
        for part in parts
    ]
    events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
    if tool:
        events += [
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 1,
                    "content_block": {"type": "tool_use", "id": "t", "name": "Read", "input": {}},
                },
            ),
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 1,
                    "delta": {"type": "input_json_delta", "partial_json": "{}"},
                },
            ),
            ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        ]
    return events


def assembled(events: list[tuple[str, dict]]) -> list[dict]:
    """The content blocks a client builds from the events, checking the indices as it goes."""
    blocks: list[dict] = []
    open_index = None
    for name, payload in events:
        if name == "content_block_start":
            assert open_index is None and payload["index"] == len(blocks)
            blocks.append(dict(payload["content_block"]))
            open_index = payload["index"]
        elif name == "content_block_delta":
            assert payload["index"] == open_index
            delta, block = payload["delta"], blocks[open_index]
            for key in ("text", "thinking", "partial_json"):
                if key in delta:
                    block[key] = block.get(key, "") + delta[key]
        elif name == "content_block_stop":
            assert payload["index"] == open_index
            open_index = None
    return blocks


def run(events):
    splitter = ThinkTagSplitter()
    return [out for name, payload in events for out in splitter.feed(name, payload)], splitter


def cuts(text: str):
    return st.lists(st.integers(0, len(text)), max_size=8).map(
        lambda points: [text[a:b] for a, b in zip([0, *sorted(points)], [*sorted(points), len(text)])]
    )


TAGGED = "<think>\nThe user wants a.txt; read it first.\n</think>\n\nLet me read it."


@given(cuts(TAGGED), st.booleans())
def test_reasoning_in_tags_becomes_a_thinking_block_however_it_is_cut(parts, tool):
    out, splitter = run(stream_of(parts, tool))
    blocks = assembled(out)
    assert blocks[:2] == [
        {"type": "thinking", "thinking": "The user wants a.txt; read it first.", "signature": ""},
        {"type": "text", "text": "Let me read it."},
    ]
    assert [block["type"] for block in blocks[2:]] == (["tool_use"] if tool else [])
    assert splitter.split


@given(st.text(max_size=40).filter(lambda text: not text.lstrip().startswith("<think>")).flatmap(cuts), st.booleans())
def test_other_text_passes_as_it_came(parts, tool):
    out, splitter = run(stream_of(parts, tool))
    original = assembled(stream_of(parts, tool))
    assert assembled(out) == original and not splitter.split


def test_tags_that_never_close_are_all_reasoning():
    blocks = assembled(run(stream_of(["<think>still thinking", " when the answer was cut"]))[0])
    assert blocks == [{"type": "thinking", "thinking": "still thinking when the answer was cut", "signature": ""}]


def test_a_whole_message_and_back():
    message = {
        "role": "assistant",
        "content": [{"type": "text", "text": TAGGED}, {"type": "tool_use", "id": "t", "name": "Read", "input": {}}],
    }
    assert split_message(message)
    assert message["content"][:2] == [
        {"type": "thinking", "thinking": "The user wants a.txt; read it first.", "signature": ""},
        {"type": "text", "text": "Let me read it."},
    ]
    back = joined_message(message)
    assert back["content"][0] == {
        "type": "text",
        "text": "<think>\nThe user wants a.txt; read it first.\n</think>\n\nLet me read it.",
    }
    assert back["content"][1]["type"] == "tool_use"
    only_thinking = {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "hm", "signature": ""},
            {"type": "tool_use", "id": "t", "name": "Read", "input": {}},
        ],
    }
    assert joined_message(only_thinking)["content"][0] == {"type": "text", "text": "<think>\nhm\n</think>"}
    user = {"role": "user", "content": [{"type": "text", "text": TAGGED}]}
    assert joined_message(user) is user and not split_message({"role": "assistant", "content": "plain"})
