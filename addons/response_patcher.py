"""The response addon: mitmproxy hooks around the pure patches in addons/response/ and addons/errors/.

Streams are patched as they pass (`responseheaders` installs a StreamPatcher as
the flow's stream callable); whole bodies (JSON messages, errors, count_tokens,
and events read whole: a request sent again, addons/limit_learner.py) in
`response`. All per-flow state lives on the flow: the patcher in the stream
callable, what it changed in the flow's notes (addons/flow/notes.py).
"""

import json
import logging
from typing import Any

from mitmproxy import http
from mitmproxy.net.http import status_codes

from addons.config.routes import route_of
from addons.errors.upstream import RefusalContext, is_key_refusal, to_anthropic_error
from addons.flow.change import Change, ChangeKind, described
from addons.flow.kind import FlowKind, flow_kind
from addons.flow.notes import ANSWERED_HERE, TurnNotes, add_changes, count, turn_notes
from addons.messages.provenance import wrap_message
from addons.messages.think_tags import split_message
from addons.response.json_to_sse import message_to_sse_events
from addons.response.stream import THINK_TAGS_SPLIT, StreamPatcher
from addons.response.tool_cut import cut_call, cut_call_message, cut_call_refused
from addons.response.usage import fill_message_usage, fill_thinking_signatures, is_message
from addons.wire.json_codec import from_json
from addons.wire.sse import json_data

logger = logging.getLogger(__name__)

SSE_CONTENT_TYPE = "text/event-stream; charset=utf-8"
# The deployment that answered, as LiteLLM 1.108.7 names it (its litellm_params.model).
DEPLOYMENT_HEADER = "x-litellm-model-name"
CUT_CALL_LEFT_OPEN = Change(ChangeKind.REPAIRED, "a tool call cut by max_tokens left unfinished: Claude Code drops it")
CUT_CALL_DROPPED = Change(ChangeKind.REPAIRED, "a tool call cut by max_tokens removed: Claude Code would run it")


def _label(flow: http.HTTPFlow) -> str:
    return f"{flow.request.method} {flow.request.path}"


def _record(flow: http.HTTPFlow, changes: list[Change]) -> None:
    if changes:
        add_changes(turn_notes(flow), changes)
        logger.info("%s: %s", _label(flow), described(changes))


def _is_2xx(response: http.Response) -> bool:
    return 200 <= response.status_code < 300


class MitmproxyStream:
    """Adapts StreamPatcher to mitmproxy's stream callable.

    mitmproxy sends every returned chunk as is, and an empty chunk mid-stream
    is the end of a chunked body: "nothing yet" must be an empty list. b"" is
    the end-of-body call. A patcher failure switches this flow to pass-through
    instead of breaking the response. The patcher's changes go into the flow's
    notes as they are made: a stream cut short keeps those it made.
    """

    def __init__(self, patcher: StreamPatcher, label: str, notes: TurnNotes) -> None:
        self.patcher: StreamPatcher | None = patcher
        self.label = label
        self.notes = notes
        self._noted = 0  # of the patcher's changes, those in the notes

    def __call__(self, chunk: bytes) -> list[bytes]:
        patcher = self.patcher
        if patcher is None:
            return [chunk] if chunk else []
        try:
            out = patcher.feed(chunk) if chunk else patcher.finish()
        except Exception:  # never break the client's stream over a patching bug
            logger.exception("%s: stream patching failed, passing the rest through", self.label)
            self.patcher = None
            return [chunk] if chunk else []
        finally:
            self._note(patcher.changes)
            if patcher.safeguard_results is not None:
                self.notes["safeguard_results"] = patcher.safeguard_results
        if not chunk and patcher.changes:
            logger.info("%s: %s", self.label, described(patcher.changes))
        return [out] if out else []

    def _note(self, changes: list[Change]) -> None:
        if len(changes) > self._noted:
            add_changes(self.notes, changes[self._noted :])
            self._noted = len(changes)


class ResponsePatcher:
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        assert response is not None  # mitmproxy calls responseheaders once the headers are in
        if not (flow_kind(flow) is FlowKind.MESSAGES and _is_2xx(response)):
            return
        if not _is_event_stream(response):
            return  # a whole body: the response hook handles it
        if response.headers.get("content-encoding", "identity").lower() != "identity":
            # Compressed events cannot be patched without decoding; still never buffer them.
            logger.info("%s: %s event stream passes unpatched", _label(flow), response.headers["content-encoding"])
            response.stream = True
            return
        response.stream = _stream(flow)

    def response(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        if response is None or response.stream or flow.metadata.get(ANSWERED_HERE):
            return  # streamed bodies were patched on the way
        kind = flow_kind(flow)
        if kind is FlowKind.COUNT_TOKENS:
            self._count_tokens(flow)
        elif kind is FlowKind.MESSAGES and _is_2xx(response):
            self._message(flow)
        elif kind is FlowKind.MESSAGES and self._cut_call_refusal(flow):
            self._message(flow)
        elif response.status_code >= 400 and flow.request.method != "HEAD":
            # Any path, any method: LiteLLM's FastAPI `{"detail": ...}` (an unknown path, a method
            # a route does not take) is not an error Claude Code can read.
            self._error(flow)

    def _count_tokens(self, flow: http.HTTPFlow) -> None:
        """Answer with the request addon's estimate when the upstream could not count
        (never in place of LiteLLM's refusal of the caller's key: that stays an error)."""
        response = flow.response
        assert response is not None  # response() checked
        answer = _json(response) if response.status_code == 200 else None
        if isinstance(answer, dict) and count(answer, "input_tokens"):
            return
        if is_key_refusal(response.get_content(strict=False) or b""):
            self._error(flow)
            return
        estimate = count(turn_notes(flow), "input_tokens")
        if estimate:
            upstream = response.status_code
            body = json.dumps({"input_tokens": estimate})
            flow.response = http.Response.make(200, body, {"content-type": "application/json"})
            answered = f"count_tokens: upstream HTTP {upstream} gave no count, answered the estimate {estimate}"
            _record(flow, [Change(ChangeKind.COUNT_ESTIMATED, answered)])
        elif not _is_2xx(response):
            self._error(flow)

    def _message(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        assert response is not None  # response() checked
        if _is_event_stream(response):
            # Events read whole (a request sent again, addons/limit_learner.py): patched as one piece.
            stream = _stream(flow)
            response.content = b"".join([*stream(response.content or b""), *stream(b"")])
            return
        message = _json(response)
        if not is_message(message):
            return
        notes = turn_notes(flow)
        if "safeguard_results" in message:
            notes["safeguard_results"] = message["safeguard_results"]
        changes = fill_message_usage(
            message, count(notes, "input_tokens"), count(notes, "fixed_tokens"), count(notes, "trimmed_tokens")
        )
        if notes.get("think_tags") is True and split_message(message):
            changes.append(THINK_TAGS_SPLIT)
        changes += fill_thinking_signatures(message)
        if (origin := _origin(response, notes)) and wrap_message(message, origin):
            changes.append(Change(ChangeKind.THINKING, f"thinking signatures name their origin, {origin}"))
        cut = cut_call(message)
        if _stream_requested(flow, notes):
            response.headers["content-type"] = SSE_CONTENT_TYPE
            response.content = message_to_sse_events(message, left_open=cut)
            changes.append(Change(ChangeKind.REPAIRED, "streaming request answered with JSON: converted to events"))
            if cut is not None:
                changes.append(CUT_CALL_LEFT_OPEN)
        else:
            if cut is not None:
                del message["content"][cut]
                changes.append(CUT_CALL_DROPPED)
            if changes:
                response.content = json_data(message)
        _record(flow, changes)

    def _cut_call_refusal(self, flow: http.HTTPFlow) -> bool:
        """LiteLLM's 500 for a tool call cut by max_tokens, replaced by the message that stops
        there without it (addons/response/tool_cut.py); whether it was one. Claude Code would
        send the same request again and again, and meet the same cut."""
        response = flow.response
        assert response is not None  # response() checked
        payload = _json(response) if response.status_code == 500 else None
        error = payload.get("error") if isinstance(payload, dict) else None
        words = error.get("message") if isinstance(error, dict) else None
        tool = cut_call_refused(words) if isinstance(words, str) else None
        if tool is None:
            return False
        message = cut_call_message(turn_notes(flow).get("model") or "")
        flow.response = http.Response.make(200, json_data(message), {"content-type": "application/json"})
        cut = f"LiteLLM's 500 for a {tool} call cut by max_tokens -> a max_tokens stop without the call"
        _record(flow, [Change(ChangeKind.REPAIRED, cut)])
        return True

    def _error(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        assert response is not None  # response() checked
        notes = turn_notes(flow)
        reshaped = to_anthropic_error(
            response.status_code,
            response.get_content(strict=False) or b"",
            response.headers.get("content-type", ""),
            count(notes, "input_tokens"),
            count(notes, "context_window"),
            _refusal_context(notes),
        )
        if reshaped is None:
            return
        status, body = reshaped
        upstream = response.status_code
        response.status_code = status
        response.reason = status_codes.RESPONSES.get(status, "")
        response.headers["content-type"] = "application/json"
        response.content = body
        reshaped_error = f"HTTP {upstream} error -> {status} {json.loads(body)['error']['type']}"
        _record(flow, [Change(ChangeKind.UPSTREAM_ERROR, reshaped_error)])


def _is_event_stream(response: http.Response) -> bool:
    return "text/event-stream" in response.headers.get("content-type", "").lower()


def _stream(flow: http.HTTPFlow) -> MitmproxyStream:
    """The stream callable that patches the flow's events as they pass."""
    notes = turn_notes(flow)
    assert flow.response is not None  # called once the response's headers are in
    patcher = StreamPatcher(
        count(notes, "input_tokens"),
        fixed_tokens_estimate=count(notes, "fixed_tokens"),
        refusal=_refusal_context(notes),
        think_tags=notes.get("think_tags") is True,
        origin=_origin(flow.response, notes),
        trimmed_tokens=count(notes, "trimmed_tokens"),
    )
    return MitmproxyStream(patcher, _label(flow), notes)


def _refusal_context(notes: TurnNotes) -> RefusalContext:
    """The model and the policy entry a refusal names (explain_refusal), from the request addon's notes."""
    return RefusalContext(
        notes.get("model"),
        notes.get("policy_file"),
        notes.get("policy_key"),
        notes.get("reasoning_required", False),
        notes.get("signatures_verified", False),
    )


def _origin(response: http.Response, notes: TurnNotes) -> str | None:
    """The provider's model id that wrote the answer: LiteLLM names the deployment that answered
    (x-litellm-model-name, `anthropic/deepseek-flash`), which after a fallback (router_settings.
    fallbacks) is not the one the request named; else the request addon's note. None when the
    request addon noted no origin (option stabilizer_thinking_provenance off): no signature is wrapped."""
    if "origin" not in notes:
        return None
    if deployment := response.headers.get(DEPLOYMENT_HEADER):
        return route_of({"litellm_params": {"model": deployment}}).model_id
    return notes.get("origin")


def _json(message: http.Message) -> Any:
    try:
        return from_json(message.get_content(strict=False) or b"")
    except ValueError:
        return None


def _stream_requested(flow: http.HTTPFlow, notes: TurnNotes) -> bool:
    """What the client asked: the request addon's note, else the request body."""
    if "stream" in notes:
        return bool(notes["stream"])
    request = _json(flow.request)
    return isinstance(request, dict) and request.get("stream") is True
