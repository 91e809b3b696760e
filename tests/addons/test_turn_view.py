"""addons/views/turn_view.py: the text of the "stabilizer" content view, what the addons did to a turn.

In process: the request and response addons run on test flows in the bundle's
order (tests/addons/view_bundle.py), and mitmproxy's own content view machinery
(contentviews.prettify_message, as mitmweb calls it) picks and renders the view.
Which flows get the view, from which layout, the originals kept for it and the
filter words in flow comments: tests/addons/test_inspection.py.
"""

import json
import time

from mitmproxy import flowfilter

from addons.flow.notes import changes
from addons.views import turn_view
from tests import workload
from tests.addons.view_bundle import REQUEST, shown


def event(name: str, payload: dict) -> bytes:
    return f"event: {name}\ndata: {json.dumps(payload)}\n\n".encode()


# --- requests ---------------------------------------------------------------------------


def test_a_shaped_claude_code_request_shows_what_changed_and_the_diff(bundle):
    flow = bundle.request({**REQUEST, "model": "qwen-plus"})
    text = shown(flow.request, flow)
    lines = text.splitlines()

    assert lines[0] == turn_view.CHANGES_HEADING
    assert "  * capped max_tokens 32000->8192" in lines
    assert "  * stripped keys: metadata, thinking, context_management, output_config" in lines
    diff = lines[lines.index(turn_view.REQUEST_HEADING) + 1 :]
    assert diff[0].startswith(f"messages: {len(REQUEST['messages'])} -> ")
    assert "- max_tokens: 32000" in diff and "+ max_tokens: 8192" in diff
    for key in ("thinking", "context_management", "output_config"):
        assert f"- {key}: {json.dumps(REQUEST[key])}" in diff
    assert any(line.strip().startswith("-") and '"cache_control"' in line for line in diff)
    # The response side shows the same view, for the same turn.
    bundle.answer(flow, "application/json", json.dumps({"type": "error", "error": {}}).encode())
    assert shown(flow.response, flow).startswith(turn_view.CHANGES_HEADING)


def test_a_trimmed_history_shows_which_messages_were_removed(bundle):
    session = {**workload.long_session(2_000_000), "model": "qwen-plus"}  # trimmed under a 128K window
    # Claude Code's compaction request: an ordinary turn of a history this long is refused.
    session["messages"] = workload.as_compaction_request(session["messages"])
    flow = bundle.request(session)
    trimmed = next(int(change.detail.split()[1]) for change in changes(flow) if change.detail.startswith("trimmed "))

    started = time.perf_counter()
    text = shown(flow.request, flow)
    assert time.perf_counter() - started < 5  # a 2 MB body: a walk, not a line diff of megabytes

    lines = text.splitlines()
    assert len(lines) <= turn_view.MAX_LINES + 1
    assert all(len(line) <= turn_view.MAX_LINE_CHARS + 20 for line in lines)
    removed = [line for line in lines if line.startswith("- messages[")]
    assert removed, text[:2000]
    # The gap after the first message: its span and the count the notes give, folded system messages beside.
    first = removed[0]
    assert first.startswith("- messages[1..") and first.endswith(")")
    counts = first[first.index("(") + 1 : -1].split(", ")
    roles = {count.split()[1]: int(count.split()[0]) for count in counts}
    assert roles["user"] + roles["assistant"] == trimmed


def test_a_refused_request_says_nothing_went_upstream(bundle):
    flow = bundle.request({"model": "qwen-plus", "messages": "not a list"})
    assert flow.response.status_code == 400
    bundle.run(flow, "response")
    assert "Nothing went upstream" in shown(flow.request, flow)
    assert "nothing came from the backend" in shown(flow.response, flow)


# --- responses --------------------------------------------------------------------------


def test_a_patched_usage_shows_both_usages(bundle):
    flow = bundle.request({**REQUEST, "model": "qwen-plus", "stream": False})
    message = {
        "id": "m",
        "type": "message",
        "role": "assistant",
        "model": "qwen-plus",
        "stop_reason": "end_turn",
        "content": [{"type": "text", "text": "hello"}],
        "usage": {"input_tokens": 0, "output_tokens": 0},
    }
    bundle.answer(flow, "application/json", json.dumps(message).encode())
    patched = json.loads(flow.response.content)["usage"]
    assert patched["input_tokens"] > 0

    lines = shown(flow.response, flow).splitlines()
    assert turn_view.RESPONSE_HEADING in lines and turn_view.USAGE_HEADING in lines
    assert '- message usage: {"input_tokens": 0, "output_tokens": 0}' in lines
    assert f"+ message usage: {json.dumps(patched)}" in lines


def test_a_patched_stream_shows_both_usages_and_the_events_added(bundle):
    flow = bundle.request({**REQUEST, "model": "qwen-plus"})
    message = {
        "id": "m",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": "qwen-plus",
        "usage": {"input_tokens": 0, "output_tokens": 0},
    }
    start = {"type": "message_start", "message": message}
    chunks = [
        event("message_start", start),
        event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        event(
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hello"}},
        ),
    ]
    bundle.answer(flow, "text/event-stream", b"", chunks)  # cut before message_stop
    assert flow.response.raw_content == b""  # so that mitmweb renders a view at all

    lines = shown(flow.response, flow).splitlines()
    assert '- message_start usage: {"input_tokens": 0, "output_tokens": 0}' in lines
    assert any(
        line.startswith('+ message_start usage: {"input_tokens": ') and '"input_tokens": 0,' not in line
        for line in lines
    )
    assert "Events the stabilizer added: error x1" in lines
    assert flowfilter.match('~comment "upstream error"', flow)
