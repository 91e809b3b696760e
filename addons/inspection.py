"""For watching the addons at work in mitmweb (`stabilizer run --web`).

FlowMarker marks every flow the addons changed and writes what they changed
(their `changes`, addons/flow/notes.py) into its comment, which mitmweb shows
in the flow list (the "comment" column) and in the flow's details. The comment
starts with the words mitmweb's filter box finds, in brackets (FILTER_WORDS,
earned by the kinds of the changes):
`~comment trimmed`, `~comment refused`, `~comment "usage patched"`, `~comment
"upstream error"`, `~comment "auto mode"` (addons/safeguards.py). mitmproxy calls `response` for a streamed response only
after the stream has ended, so the notes of the stream patcher are in by then.
(For a stream the upstream cut, the `error` hook comes before
ProxyErrorAnswers closes the stream: the comment lacks that last note.)

FlowMarker also registers the "stabilizer" content view (StabilizerView),
which mitmweb picks by default for a POST /v1/messages or count_tokens flow
with notes. On the request: the notes, then what Claude Code sent against
what went upstream; on the response: the usage the backend gave against the
usage Claude Code got, and the events the stabilizer added (addons/views/turn_view.py
writes the text). It reads both layouts of a flow: a live one holds what went
on, with what arrived kept by TurnKeeper; a recorded one (addons/recorder.py,
opened with `mitmweb -r FILE -s addons/view_addons.py`) holds what arrived,
with what went on in metadata["stabilizer_sent"]. Bodies are redacted as the
recorder redacts them before anything is shown, and the view shows no headers.
mitmproxy 12 cannot unregister a content view (contentviews.remove is a no-op):
the view stays registered until the process ends.

TurnKeeper keeps what the view needs and the addons replace, for the newest
turn_view.MAX_KEPT_TURNS turns and only while a flow view is loaded (mitmweb;
mitmdump has none, and a recording holds the originals itself): the request body as it arrived and the upstream's whole
response body, as references to their bytes (shaping and patching set new
bytes, so no copy is made), and for a stream a summary of both sides (usage
and event counts) taken through a tee while it passes. All of it is in
flow.metadata["stabilizer_original"], so dropping a flow (FlowCap) drops it
too. Its first part (`arrivals`) goes first in the entry list, before anything
changes the flow; the TurnKeeper itself after ResponsePatcher, whose stream it
taps.

KeysHidden replaces the key headers of a flow mitmweb keeps once the request
has gone upstream.

FlowCap keeps mitmweb's memory bounded: mitmweb keeps every flow and has no
option to stop, so beyond `stabilizer_max_flows` the oldest finished flows are
removed from its view. mitmdump keeps no flows (it has no view): there the cap
does nothing.
"""

import collections
import logging
import os
from collections.abc import Sequence
from typing import Any

from mitmproxy import contentviews, ctx, exceptions, http
from mitmproxy.net import encoding

from addons.flow.change import Change, ChangeKind, described
from addons.flow.kind import SHAPED, flow_kind
from addons.flow.notes import ANSWERED_HERE, ORIGINAL, SENT, changes
from addons.recorder import PLACEHOLDER, SECRET_HEADERS, StreamTee, redact_json, scrub, secret_values
from addons.views import turn_view
from addons.wire.json_codec import from_json

logger = logging.getLogger(__name__)

# Shown as a wrench in mitmweb's flow list (a marker from mitmproxy.utils.emoji).
CHANGED_MARKER = ":wrench:"
DEFAULT_MAX_FLOWS = 1000
# Above the JSON view's 1: mitmweb's "auto" picks the stabilizer view for the flows it explains.
VIEW_PRIORITY = 2

# The words a filter finds, and the kinds of change that earn them. "upstream error" is
# also earned by an error status the upstream answered (not one the addons answered themselves).
FILTER_WORDS = {
    "refused": {ChangeKind.REFUSED},
    "trimmed": {ChangeKind.TRIMMED},
    "usage patched": {ChangeKind.USAGE_FILLED, ChangeKind.COUNT_ESTIMATED},
    "upstream error": {ChangeKind.UPSTREAM_ERROR, ChangeKind.COUNT_ESTIMATED},
    "auto mode": {ChangeKind.AUTO_MODE},
}


def filter_words(changes: Sequence[Change], upstream_failed: bool) -> list[str]:
    kinds = {change.kind for change in changes}
    words = [word for word, earned_by in FILTER_WORDS.items() if kinds & earned_by]
    if upstream_failed and "upstream error" not in words:
        words.append("upstream error")
    return words


def changes_comment(flow: http.HTTPFlow) -> str:
    """The filter words in brackets, then the addons' changes as one line; empty when neither."""
    return _comment(flow, changes(flow))


def _comment(flow: http.HTTPFlow, done: list[Change]) -> str:
    response = flow.response
    failed = response is not None and response.status_code >= 400 and not flow.metadata.get(ANSWERED_HERE)
    words = filter_words(done, failed)
    return " ".join(([f"[{', '.join(words)}]"] if words else []) + ([described(done)] if done else []))


def _is_turn(flow: http.HTTPFlow) -> bool:
    return flow_kind(flow) in SHAPED


class FlowMarker:
    def load(self, loader):
        if contentviews.registry.get(VIEW.name) is not VIEW:
            contentviews.add(VIEW)

    def response(self, flow: http.HTTPFlow) -> None:
        self._mark(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._mark(flow)

    @staticmethod
    def _mark(flow: http.HTTPFlow) -> None:
        done = changes(flow)
        if comment := _comment(flow, done):
            flow.comment = comment
        if done:
            flow.marked = CHANGED_MARKER


# --- the view ------------------------------------------------------------------------


class StabilizerView(contentviews.Contentview):
    name = "stabilizer"

    def render_priority(self, data: bytes, metadata: contentviews.Metadata) -> float:
        flow = metadata.flow
        return VIEW_PRIORITY if isinstance(flow, http.HTTPFlow) and _is_turn(flow) and changes(flow) else 0

    def prettify(self, data: bytes, metadata: contentviews.Metadata) -> str:
        flow = metadata.flow
        if not isinstance(flow, http.HTTPFlow):
            raise ValueError("not an HTTP flow")
        answered_here = bool(flow.metadata.get(ANSWERED_HERE))
        if isinstance(metadata.http_message, http.Response):
            upstream, client = _answers(flow)
            text = turn_view.response_text(changes(flow), upstream, client, answered_here)
        else:
            sent, went = _request_bodies(flow)
            sizes = (len(sent), len(went)) if sent is not None and went is not None else None
            text = turn_view.request_text(changes(flow), _parsed(sent), _parsed(went), sizes, answered_here)
        # Literal keys anywhere (an error message quoting one); secret-named fields went in _parsed.
        return scrub(text.encode(), secret_values(os.environ)).decode()


VIEW = StabilizerView()


def _request_bodies(flow: http.HTTPFlow) -> tuple[bytes | None, bytes | None]:
    """The request body as Claude Code sent it and as it went upstream; None where not kept."""
    if SENT in flow.metadata:  # recorded: the flow holds what arrived
        return _content(flow.request), _content(http.Request.from_state(flow.metadata[SENT]["request"]))
    kept = flow.metadata.get(ORIGINAL)
    return (_decoded(kept["request"]) if kept and "request" in kept else None), _content(flow.request)


def _answers(flow: http.HTTPFlow) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The response as the backend sent it (None where not kept) and as Claude Code got it, summed up."""
    if SENT in flow.metadata:
        state = flow.metadata[SENT]["response"]
        client = _content(http.Response.from_state(state)) if state is not None else None
        return _answer(_content(flow.response)), _answer(client)
    kept = flow.metadata.get(ORIGINAL) or {}
    if "stream" in kept:
        return kept["stream"]["upstream"], kept["stream"]["client"]
    upstream = _decoded(kept["response"]) if "response" in kept else None
    return (_answer(upstream) if upstream is not None else None), _answer(_content(flow.response))


def _answer(body: bytes | None) -> dict[str, Any]:
    summed = turn_view.answer(body or b"")
    if "json" in summed:
        summed["json"] = redact_json(summed["json"])[0]
    return summed


def _content(message: http.Message | None) -> bytes | None:
    return message.get_content(strict=False) if message is not None else None


def _decoded(kept: dict[str, Any]) -> bytes | None:
    try:
        return encoding.decode(kept["content"], kept["encoding"]) if kept["encoding"] else kept["content"]
    except ValueError:
        return None


def _parsed(body: bytes | None) -> Any:
    """The body's JSON with secret-named fields replaced, its text when it is not JSON, or None."""
    if body is None:
        return None
    try:
        return redact_json(from_json(body))[0]
    except ValueError:
        return body.decode("utf-8", "replace")


# --- keeping the originals -------------------------------------------------------------


def _kept(message: http.Message) -> dict[str, Any]:
    return {"content": message.raw_content, "encoding": message.headers.get("content-encoding")}


class _TurnArrivals:
    """First in the entry list: keeps the request, and a whole response, before other addons change them,
    for the newest turn_view.MAX_KEPT_TURNS turns."""

    def __init__(self):
        self._kept: collections.deque[dict[str, Any]] = collections.deque()

    def request(self, flow: http.HTTPFlow) -> None:
        if _is_turn(flow) and ctx.master.addons.get("view") is not None:
            kept = flow.metadata[ORIGINAL] = {"request": _kept(flow.request)}
            self._kept.append(kept)
            if len(self._kept) > turn_view.MAX_KEPT_TURNS:
                # The bodies go, the stream summaries (a few numbers) stay.
                oldest = self._kept.popleft()
                oldest.pop("request", None)
                oldest.pop("response", None)

    def response(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        assert response is not None  # mitmproxy calls response with the response in
        kept = flow.metadata.get(ORIGINAL)
        if kept is not None and not response.stream:
            kept["response"] = _kept(response)


class TurnKeeper:
    """After ResponsePatcher: taps the streams of the turns whose originals are kept."""

    def __init__(self):
        self.arrivals = _TurnArrivals()
        self._tees: dict[str, StreamTee] = {}

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        assert response is not None  # mitmproxy calls responseheaders once the headers are in
        if ORIGINAL in flow.metadata and response.stream:
            response.stream = self._tees[flow.id] = StreamTee(response.stream)

    def response(self, flow: http.HTTPFlow) -> None:
        self._sum_up(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._sum_up(flow)

    def _sum_up(self, flow: http.HTTPFlow) -> None:
        """The stream's two sides as plain data, kept on the flow; the bytes go."""
        tee = self._tees.pop(flow.id, None)
        if tee is None:
            return
        response = flow.response
        assert response is not None  # a tee is made in responseheaders, on the response
        flow.metadata[ORIGINAL]["stream"] = {
            "upstream": turn_view.answer(bytes(tee.received)),
            "client": turn_view.answer(bytes(tee.sent)),
        }
        if response.raw_content is None:
            # mitmproxy stores no streamed body (unless store_streamed_bodies), and shows no
            # content view without one: an empty body lets the stabilizer view show the summary.
            response.raw_content = b""


# --- keys --------------------------------------------------------------------------------


class KeysHidden:
    """Under mitmweb, a flow's key headers are replaced once they have done their work.

    mitmweb shows a request's headers (on a shared screen, in a screenshot) for as long as
    it keeps the flow, and the master key or a team's virtual key is in them. By the
    response's headers the request has gone upstream, so nothing needs the key any more
    (a replay from mitmweb then gets a 401: give the key again to replay)."""

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        _hide_keys(flow.request)

    def response(self, flow: http.HTTPFlow) -> None:
        _hide_keys(flow.request)
        _hide_keys(flow.response)

    def error(self, flow: http.HTTPFlow) -> None:
        _hide_keys(flow.request)


def _hide_keys(message: http.Message | None) -> None:
    if message is None or ctx.master.addons.get("view") is None:
        return
    for name in SECRET_HEADERS:
        if name in message.headers:
            message.headers[name] = PLACEHOLDER


# --- the cap ---------------------------------------------------------------------------


class FlowCap:
    def load(self, loader):
        loader.add_option(
            "stabilizer_max_flows",
            int,
            DEFAULT_MAX_FLOWS,
            "mitmweb only: the most flows it keeps; beyond it the oldest finished ones are dropped. 0: no cap.",
        )

    def configure(self, updated):
        if "stabilizer_max_flows" not in updated:
            return
        if ctx.options.stabilizer_max_flows < 0:
            raise exceptions.OptionsError("stabilizer_max_flows must be 0 (no cap) or more")
        self._enforce()

    def response(self, flow: http.HTTPFlow) -> None:
        self._enforce()

    def error(self, flow: http.HTTPFlow) -> None:
        self._enforce()

    @staticmethod
    def _enforce() -> None:
        view = ctx.master.addons.get("view")
        cap = ctx.options.stabilizer_max_flows
        if view is None or not cap:
            return
        excess = view.store_count() - cap
        if excess <= 0:
            return
        # Oldest first (the store keeps arrival order); a live flow is never cut off.
        oldest = [flow for flow in view.resolve("@all") if not flow.live][:excess]
        view.remove(oldest)
        logger.debug("flow cap %d: dropped %d flows", cap, len(oldest))
