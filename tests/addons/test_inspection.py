"""addons/inspection.py: the "stabilizer" content view (which flows get it, from which layout, no key
shown), the originals kept for it, the filter words and marks of changed flows, the flow cap
and the key headers hidden.

In process: the request and response addons run on test flows in the bundle's
order (tests/addons/view_bundle.py), and mitmproxy's own content view machinery
(contentviews.prettify_message, as mitmweb calls it) picks and renders the view.
The view's text: tests/addons/test_turn_view.py. Under a real mitmweb (the flow cap,
the token, the comments): tests/stack/test_web.py.
"""

import json

import pytest
from mitmproxy import contentviews, flowfilter, http, io
from mitmproxy.addons.view import View
from mitmproxy.test import taddons, tflow, tutils

from addons.flow.change import Change, ChangeKind
from addons.flow.notes import ORIGINAL, TurnNotes, add_changes, turn_notes
from addons.inspection import CHANGED_MARKER, VIEW, FlowCap, FlowMarker, KeysHidden, changes_comment
from addons.recorder import PLACEHOLDER, recorded_flow
from addons.views import turn_view
from tests.addons.view_bundle import MASTER, REQUEST, ROOT, Bundle, marked, shown
from tests.conftest import POLICY

SECRET_FIELD = "sk-field-fedcba9876543210"


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


# --- the marker, the cap, the keys -------------------------------------------------------


def test_marker_comments_what_the_addons_changed():
    flow = tflow.tflow(resp=True)
    add_changes(
        turn_notes(flow),
        [
            Change(ChangeKind.STRIPPED, "stripped keys: thinking"),
            Change(ChangeKind.USAGE_FILLED, "message_start: filled usage input_tokens=9"),
        ],
    )
    FlowMarker().response(flow)
    assert flow.comment == "[usage patched] stripped keys: thinking; message_start: filled usage input_tokens=9"
    assert flow.marked == CHANGED_MARKER


@pytest.mark.parametrize("metadata", [{}, {"stabilizer": {"changes": []}}, {"stabilizer": "junk"}])
def test_marker_leaves_untouched_flows_alone(metadata):
    flow = tflow.tflow(err=True)
    flow.metadata = metadata
    FlowMarker().error(flow)
    assert (flow.comment, flow.marked) == ("", "")


def test_cap_drops_the_oldest_finished_flows():
    view, cap = View(), FlowCap()
    with taddons.context(view, cap) as tctx:
        tctx.configure(cap, stabilizer_max_flows=3)
        flows = [tflow.tflow(resp=True) for _ in range(5)]
        for flow in flows:
            flow.live = False
        flows[0].live = True  # still streaming: not ours to cut off
        view.add(flows)
        cap.response(flows[-1])
        assert list(view.resolve("@all")) == [flows[0], flows[3], flows[4]]

        tctx.configure(cap, stabilizer_max_flows=0)  # no cap
        view.add([tflow.tflow(resp=True) for _ in range(3)])
        cap.response(flows[-1])
        assert view.store_count() == 6


@pytest.mark.parametrize("with_view", [True, False])
def test_key_headers_are_hidden_once_sent_under_mitmweb_only(with_view):
    hidden = KeysHidden()
    with taddons.context(*([View()] if with_view else []), hidden):
        flow = tflow.tflow()
        flow.request.headers.update({"x-api-key": "sk-master-12345", "authorization": "Bearer sk-virtual-1"})
        hidden.responseheaders(flow)
        kept = [flow.request.headers[name] for name in ("x-api-key", "authorization")]
        assert kept == (["[redacted]"] * 2 if with_view else ["sk-master-12345", "Bearer sk-virtual-1"])
        flow = tflow.tflow(err=True)
        flow.request.headers["x-api-key"] = "sk-master-12345"
        hidden.error(flow)  # never answered: shown all the same
        assert (flow.request.headers["x-api-key"] == "[redacted]") is with_view


def test_cap_without_a_view_does_nothing():
    cap = FlowCap()
    with taddons.context(cap) as tctx:
        tctx.configure(cap, stabilizer_max_flows=1)
        flow = tflow.tflow(resp=True)
        assert tctx.master.addons.get("view") is None  # mitmdump: no flows kept, nothing to drop
        cap.response(flow)
        assert flow.error is None and flow.response.status_code == 200
