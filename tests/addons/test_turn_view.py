"""The "stabilizer" content view, the originals kept for it, and the filter words in flow comments.

In process: the request and response addons run on test flows in the bundle's
order, and mitmproxy's own content view machinery (contentviews.prettify_message,
as mitmweb calls it) picks and renders the view.
"""

import asyncio
import json
import time
from pathlib import Path

import pytest
from mitmproxy import contentviews, flowfilter, http, io
from mitmproxy.addons.view import View
from mitmproxy.test import taddons, tflow, tutils

from addons.classifier import FlowClassifier
from addons.flow.change import Change, ChangeKind
from addons.flow.notes import ORIGINAL, TurnNotes, add_changes, changes
from addons.inspection import VIEW, FlowMarker, TurnKeeper, changes_comment
from addons.recorder import PLACEHOLDER, recorded_flow
from addons.request_shaper import RequestShaper
from addons.response_patcher import ResponsePatcher
from addons.views import turn_view
from tests import workload
from tests.conftest import POLICY

ROOT = Path(__file__).resolve().parent.parent.parent
REQUEST = json.loads((ROOT / "tests" / "data" / "claude_code_request.json").read_bytes())
MASTER = "sk-master-0123456789abcdef"
SECRET_FIELD = "sk-field-fedcba9876543210"


class Bundle:
    """The addons the view depends on, hooks called in the entry list's order."""

    def __init__(self):
        self.keeper, self.shaper = TurnKeeper(), RequestShaper()
        self.chain = [FlowClassifier(), self.keeper.arrivals, self.shaper, ResponsePatcher(), self.keeper, FlowMarker()]

    def run(self, flow: http.HTTPFlow, hook: str) -> None:
        for addon in self.chain:
            if (pending := getattr(addon, hook, lambda _: None)(flow)) is not None:
                asyncio.run(pending)  # the shaper's worker thread, for a large body

    def arrive(self, flow: http.HTTPFlow) -> None:
        """The request hooks, as mitmproxy calls them for a request that arrived whole."""
        self.run(flow, "requestheaders")
        self.run(flow, "request")

    def request(self, body: dict, path: str = "/v1/messages?beta=true") -> http.HTTPFlow:
        flow = tflow.tflow(req=tutils.treq(method=b"POST", path=path.encode(), content=json.dumps(body).encode()))
        flow.request.headers["authorization"] = f"Bearer {MASTER}"
        self.arrive(flow)
        return flow

    def answer(
        self, flow: http.HTTPFlow, content_type: str, body: bytes, chunks: list[bytes] | None = None, status: int = 200
    ) -> None:
        flow.response = tutils.tresp(status_code=status, content=body)
        flow.response.headers["content-type"] = content_type
        self.run(flow, "responseheaders")
        if chunks is not None:  # mitmproxy streams: the body never reaches the flow
            flow.response.raw_content = None
            for chunk in [*chunks, b""]:
                flow.response.stream(chunk)
        self.run(flow, "response")


@pytest.fixture
def bundle(monkeypatch):
    monkeypatch.setenv("LITELLM_MASTER_KEY", MASTER)
    bundle = Bundle()
    with taddons.context(View(), *bundle.chain) as tctx:
        tctx.configure(bundle.shaper, stabilizer_policy=str(POLICY))
        yield bundle


def shown(message: http.Message, flow: http.HTTPFlow) -> str:
    """What mitmweb shows for the message in its "auto" view: the stabilizer view's text."""
    result = contentviews.prettify_message(message, flow)
    assert result.view_name == "stabilizer", result.text[:300]
    return result.text


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


def test_no_key_appears_in_the_view(bundle):
    body = {**REQUEST, "model": "qwen-plus", "thinking": {"type": "adaptive", "api_key": SECRET_FIELD}}
    body["messages"] = [*REQUEST["messages"][:-1], {"role": "user", "content": f"my key is {MASTER}"}]
    flow = bundle.request(body)
    bundle.answer(flow, "application/json", json.dumps({"detail": f"bad key {MASTER}"}).encode(), status=500)

    texts = [shown(flow.request, flow), shown(flow.response, flow)]
    for text in texts:
        assert MASTER not in text and SECRET_FIELD not in text and "authorization" not in text.lower()
    assert f'"api_key": "{PLACEHOLDER}"' in texts[0]
    assert PLACEHOLDER in texts[1]


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


# --- which flows, which layout ----------------------------------------------------------------


def test_other_flows_keep_their_usual_view(bundle):
    other = tflow.tflow(req=tutils.treq(method=b"POST", path=b"/v1/models", content=b'{"a": 1}'), resp=True)
    other.metadata["stabilizer"] = {"changes": ["something"]}
    untouched = bundle.request(
        {"model": "plain-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}
    )
    assert untouched.metadata["stabilizer"]["changes"] == []
    for flow in (other, untouched):
        metadata = contentviews.Metadata(flow=flow, http_message=flow.request)
        assert VIEW.render_priority(flow.request.content, metadata) == 0
        assert contentviews.prettify_message(flow.request, flow).view_name != "stabilizer"


def test_originals_are_kept_only_while_a_flow_view_is_loaded(monkeypatch):
    body = json.dumps({**REQUEST, "model": "qwen-plus"}).encode()
    for with_view in (True, False):
        bundle = Bundle()
        with taddons.context(*([View()] if with_view else []), *bundle.chain) as tctx:
            tctx.configure(bundle.shaper, stabilizer_policy=str(POLICY))
            flow = tflow.tflow(req=tutils.treq(method=b"POST", path=b"/v1/messages", content=body))
            arrived = flow.request.raw_content
            bundle.arrive(flow)
            assert flow.request.raw_content is not arrived  # shaped
            if with_view:  # the arrived bytes themselves, not a copy
                assert flow.metadata[ORIGINAL]["request"]["content"] is arrived
            else:
                assert ORIGINAL not in flow.metadata
                assert turn_view.NOT_KEPT in shown(flow.request, flow)


def test_originals_are_kept_for_the_newest_turns_only(monkeypatch):
    # 2 MB and more a turn in a long session: not for all the flows mitmweb keeps.
    monkeypatch.setattr(turn_view, "MAX_KEPT_TURNS", 3)
    body = json.dumps({**REQUEST, "model": "qwen-plus"}).encode()
    bundle = Bundle()
    with taddons.context(View(), *bundle.chain) as tctx:
        tctx.configure(bundle.shaper, stabilizer_policy=str(POLICY))
        flows = [tflow.tflow(req=tutils.treq(method=b"POST", path=b"/v1/messages", content=body)) for _ in range(5)]
        for flow in flows:
            bundle.arrive(flow)
        assert ["request" in flow.metadata[ORIGINAL] for flow in flows] == [False, False, True, True, True]
        assert turn_view.NOT_KEPT in shown(flows[0].request, flows[0])
        assert "+ max_tokens: 8192" in shown(flows[-1].request, flows[-1])


def test_the_recorder_leaves_the_kept_originals_out(bundle):
    flow = bundle.request({**REQUEST, "model": "qwen-plus"})
    arrived = http.Request.from_state(flow.request.get_state())
    arrived.content = json.dumps({**REQUEST, "model": "qwen-plus"}).encode()
    assert ORIGINAL not in recorded_flow(flow, arrived, None, None, []).metadata


@pytest.mark.parametrize("index", [0, 2])
def test_a_recorded_flow_renders(index):
    """A --record file's flow holds what arrived and, in metadata, what was sent on."""
    with (ROOT / "tests" / "flows" / "long-session.flow").open("rb") as file:
        flow = list(io.FlowReader(file).stream())[index]
    with taddons.context(FlowMarker()):
        request, response = shown(flow.request, flow), shown(flow.response, flow)
    assert "- max_tokens: 32000" in request.splitlines() and "+ max_tokens: 4096" in request.splitlines()
    assert ("- messages[1..3]: removed (1 system, 1 assistant, 1 user)" in request.splitlines()) == (index == 2)
    assert '- message_start usage: {"input_tokens": 0,' in response
    assert '+ message_start usage: {"input_tokens": ' in response


# --- filter words ------------------------------------------------------------------------


def marked(stored: list, status: int = 200, answered_here: bool = False) -> http.HTTPFlow:
    """A flow whose notes hold `stored` as changes, through FlowMarker."""
    flow = tflow.tflow(resp=tutils.tresp(status_code=status))
    flow.metadata["stabilizer"] = {"changes": stored}
    if answered_here:
        flow.metadata["stabilizer_answered_here"] = True
    FlowMarker().response(flow)
    return flow


def noted(*made: Change) -> list:
    """The changes as the addons store them on a flow."""
    notes = TurnNotes()
    add_changes(notes, made)
    return notes["changes"]


@pytest.mark.parametrize(
    "made, status, answered_here, comment",
    [
        (
            [
                Change(ChangeKind.CAPPED, "capped max_tokens 32000->8192"),
                Change(ChangeKind.TRIMMED, "trimmed 4 messages"),
            ],
            200,
            False,
            "[trimmed] capped max_tokens 32000->8192; trimmed 4 messages",
        ),
        (
            [Change(ChangeKind.REFUSED, "answered 400: prompt is too long: 9 tokens > 5 maximum")],
            400,
            True,
            "[refused] answered 400: prompt is too long: 9 tokens > 5 maximum",
        ),
        (
            [Change(ChangeKind.USAGE_FILLED, "message_start: filled usage input_tokens=9")],
            200,
            False,
            "[usage patched] message_start: filled usage input_tokens=9",
        ),
        (
            [
                Change(
                    ChangeKind.COUNT_ESTIMATED, "count_tokens: upstream HTTP 500 gave no count, answered the estimate 9"
                )
            ],
            200,
            False,
            "[usage patched, upstream error] count_tokens: upstream HTTP 500 gave no count, answered the estimate 9",
        ),
        (
            [Change(ChangeKind.UPSTREAM_ERROR, "HTTP 500 error -> 500 api_error")],
            500,
            False,
            "[upstream error] HTTP 500 error -> 500 api_error",
        ),
        ([], 529, False, "[upstream error]"),  # the backend's own Anthropic error: nothing to reshape
        ([], 401, True, ""),  # the master key refused here: no upstream involved
    ],
)
def test_comments_start_with_the_words_a_filter_finds(made, status, answered_here, comment):
    flow = marked(noted(*made), status, answered_here)
    assert flow.comment == changes_comment(flow) == comment
    words = comment[1 : comment.index("]")].split(", ") if comment else []
    for word in words:
        assert flowfilter.match(f'~comment "{word}"', flow)
    assert flowfilter.match("~marked", flow) == bool(made)


def test_a_filter_word_is_earned_by_the_kind_not_the_wording():
    reworded = marked(noted(Change(ChangeKind.TRIMMED, "made room: 4 messages fewer")))
    assert reworded.comment == "[trimmed] made room: 4 messages fewer"
    assert flowfilter.match("~comment trimmed", reworded)
    # The old wording of another kind earns nothing.
    other = marked(
        noted(Change(ChangeKind.OTHER, "trimmed 4 messages"), Change(ChangeKind.STRIPPED, "answered 400: x"))
    )
    assert other.comment == "trimmed 4 messages; answered 400: x"


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
