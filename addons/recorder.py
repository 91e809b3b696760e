"""Record finished flows to a mitmproxy flow file, with every secret replaced first.

`--set stabilizer_record=FILE` (`stabilizer run --record FILE`) writes one flow
per finished exchange (its `response` or `error` hook) with mitmproxy.io's
FlowWriter; `mitmweb -r FILE` shows them, tests/addons/test_flows.py replays them.

A written flow holds what ARRIVED, the input of the addons: the request as the
client sent it and the response as the upstream sent it, a streamed body in
full. So replaying the file through the addons (tests/addons/test_flows.py calls their
hooks and drives the stream callable) gives them the same input again. What
the addons SENT ON (the shaped request, the patched response as the client
got it) is kept beside it in flow.metadata["stabilizer_sent"] = {"request":
state, "response": state or None}; http.Request.from_state and
http.Response.from_state rebuild them. The addons' notes stay in
flow.metadata["stabilizer"], and FlowMarker's comment on the flow.

A stream the upstream cut is written at the `error` hook, which mitmproxy
calls before ProxyErrorAnswers ends the client's stream: the closing error
event is not in the recorded copy of what the client got.

Why not `mitmdump -w`: mitmproxy's Save addon writes the flow as the addons
left it (the client's request is gone once shaped) and does not redact.

Redaction, on every message before anything is written:
- the headers authorization, proxy-authorization, x-api-key, api-key, cookie
  and set-cookie;
- in JSON bodies, every string under a key whose last word is key, token,
  secret or password (api_key, apiKey, access_token, client_secret ...), at
  any depth; query parameters named alike;
- every literal occurrence, anywhere in the flow, of the master key
  (LITELLM_MASTER_KEY) and of any environment variable named like a secret
  (DEEPSEEK_API_KEY ...): `stabilizer run` loads the env file into the
  environment of this process, so the provider keys are known here too.

Two addon objects share the work, because the originals must be copied before
the other addons change them and the stream must be tapped after the response
addon installed its patcher: `FlowRecorder().arrivals` goes first in the entry
list, the FlowRecorder itself last.
"""

import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any, BinaryIO

from mitmproxy import ctx, exceptions, http, io

from addons import MASTER_KEY_VAR
from addons.flow.kind import FlowKind, flow_kind
from addons.flow.notes import ORIGINAL, SENT

logger = logging.getLogger(__name__)

PLACEHOLDER = "[redacted]"
SECRET_HEADERS = ("authorization", "proxy-authorization", "x-api-key", "api-key", "cookie", "set-cookie")
SECRET_WORDS = frozenset({"key", "token", "secret", "password", "passwd"})
# Shorter values are too likely to occur by chance (and are no real key).
MIN_SECRET_LENGTH = 8

_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


# --- pure core ---------------------------------------------------------------------


def is_secret_name(name: str) -> bool:
    """True when the last word of a snake, kebab or camel case name is key, token, secret or password."""
    words = _WORDS.findall(name)
    return bool(words) and words[-1].lower() in SECRET_WORDS


def secret_values(environ: Mapping[str, str]) -> list[bytes]:
    """The literal secrets to scrub: the master key and every secret-named variable's value, longest first."""
    values = {
        value
        for name, value in environ.items()
        if (name == MASTER_KEY_VAR or is_secret_name(name)) and len(value) >= MIN_SECRET_LENGTH
    }
    # Longest first, so that a key containing another is replaced whole.
    return sorted((value.encode() for value in values), key=len, reverse=True)


def redact_json(value: Any) -> tuple[Any, bool]:
    """`value` with every string under a secret-named key replaced; whether anything changed.

    Only strings are replaced: a schema object under a property called `key`
    is not a secret and stays as it is.
    """
    if isinstance(value, dict):
        changed = False
        out = {}
        for name, item in value.items():
            if isinstance(item, str) and item and is_secret_name(name):
                out[name], hit = PLACEHOLDER, True
            else:
                out[name], hit = redact_json(item)
            changed |= hit
        return (out, True) if changed else (value, False)
    if isinstance(value, list):
        items = [redact_json(item) for item in value]
        if any(hit for _, hit in items):
            return [item for item, _ in items], True
    return value, False


def scrub(data: bytes, secrets: Iterable[bytes]) -> bytes:
    for secret in secrets:
        data = data.replace(secret, PLACEHOLDER.encode())
    return data


def redact_body(content: bytes, secrets: Iterable[bytes]) -> bytes:
    """A body with secret-named JSON keys and literal secrets replaced (bytes untouched when clean)."""
    stripped = content.lstrip()
    if stripped[:1] in (b"{", b"["):
        try:
            parsed = json.loads(content)
        except ValueError:
            pass
        else:
            parsed, changed = redact_json(parsed)
            if changed:
                content = json.dumps(parsed, ensure_ascii=False).encode()
    return scrub(content, secrets)


def redact_message(message: http.Message, secrets: list[bytes]) -> None:
    """Redact one request or response in place; its body is decoded (content-encoding removed)."""
    for name in SECRET_HEADERS:
        if name in message.headers:
            message.headers[name] = PLACEHOLDER
    message.headers.fields = tuple((name, scrub(value, secrets)) for name, value in message.headers.fields)
    if isinstance(message, http.Request):
        message.path = scrub(message.path.encode(), secrets).decode()
        query = list(message.query.items(multi=True))
        if any(is_secret_name(name) for name, _ in query):
            message.query = [(name, PLACEHOLDER if is_secret_name(name) else value) for name, value in query]
    if message.raw_content is None:
        return
    message.decode(strict=False)
    content = message.raw_content or b""
    redacted = redact_body(content, secrets)
    if redacted != content:
        message.content = redacted


def recorded_flow(
    flow: http.HTTPFlow,
    arrived_request: http.Request,
    arrived_response: http.Response | None,
    tee: "StreamTee | None",
    secrets: list[bytes],
) -> http.HTTPFlow:
    """The flow to write: what arrived as request/response, what was sent in metadata, all redacted."""
    record = flow.copy()
    sent_request, sent_response = record.request, record.response
    if tee is not None and sent_response is not None:
        sent_response.raw_content = bytes(tee.sent)
        arrived_response = sent_response.copy()
        arrived_response.raw_content = bytes(tee.received)
    record.request, record.response = arrived_request, arrived_response
    record.metadata.pop(ORIGINAL, None)
    for message in (record.request, record.response, sent_request, sent_response):
        if message is not None:
            redact_message(message, secrets)
    record.metadata[SENT] = {
        "request": sent_request.get_state(),
        "response": sent_response.get_state() if sent_response is not None else None,
    }
    return record


class StreamTee:
    """Wraps a response's stream callable (or `True`): keeps what came in and what went out."""

    def __init__(self, inner):
        self.inner = inner
        self.received = bytearray()
        self.sent = bytearray()

    def __call__(self, chunk: bytes):
        self.received += chunk
        if not callable(self.inner):
            out: Any = [chunk] if chunk else []
        else:
            out = self.inner(chunk)
            if not isinstance(out, bytes):
                out = list(out)  # a generator could be consumed only once
        self.sent += out if isinstance(out, bytes) else b"".join(out)
        return out


# --- the addons ----------------------------------------------------------------------


class _Copies:
    """Copies the request, and a whole response, before other addons change them."""

    def __init__(self, recorder: "FlowRecorder"):
        self.recorder = recorder

    def request(self, flow: http.HTTPFlow) -> None:
        # Status polls (`stabilizer run` and `doctor` waiting for the stack) are not traffic.
        if flow_kind(flow) is not FlowKind.STATUS:
            self.recorder.arrived[flow.id] = (flow.request.copy(), None)

    def response(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        assert response is not None  # mitmproxy calls response with the response in
        entry = self.recorder.arrived.get(flow.id)
        if entry is not None and not response.stream:
            self.recorder.arrived[flow.id] = (entry[0], response.copy())


class _Writes:
    """Taps streams and writes each finished flow."""

    def __init__(self, recorder: "FlowRecorder"):
        self.recorder = recorder

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        assert response is not None  # mitmproxy calls responseheaders once the headers are in
        if flow.id in self.recorder.arrived and response.stream:
            response.stream = StreamTee(response.stream)

    def response(self, flow: http.HTTPFlow) -> None:
        self.recorder.write(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self.recorder.write(flow)


class _Arrivals:
    """First in the entry list; holds _Copies while recording."""

    def __init__(self):
        self.addons: list[_Copies] = []


class FlowRecorder:
    """Last in the entry list; holds _Writes while recording (see the module docstring).

    The hooks sit in nested addons (mitmproxy calls the hooks of an addon's `addons`
    where it finds them) only while a file is open: a flow that is not recorded pays
    no hook call to the recorder."""

    def __init__(self):
        self.arrivals = _Arrivals()
        self.addons: list[_Writes] = []
        self.arrived: dict[str, tuple[http.Request, http.Response | None]] = {}
        self.secrets: list[bytes] = []
        self.writer: io.FlowWriter | None = None
        self._file: BinaryIO | None = None

    def load(self, loader):
        loader.add_option(
            "stabilizer_record",
            str,
            "",
            "Write every finished flow, secrets replaced, to this mitmproxy flow file (truncated at start). "
            "Request and response as they arrived; what was sent on in metadata (stabilizer run --record). "
            "Empty: no recording.",
        )
        self.secrets = secret_values(os.environ)

    def configure(self, updated):
        if "stabilizer_record" not in updated:
            return
        self._close()
        path = ctx.options.stabilizer_record
        if not path:
            return
        try:
            # The file holds whole conversations: readable by its owner only.
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.fchmod(descriptor, 0o600)  # an existing file keeps its mode through O_CREAT
            self._file = os.fdopen(descriptor, "wb")
        except OSError as e:
            raise exceptions.OptionsError(f"stabilizer_record: cannot write {path}: {e.strerror}") from None
        self.writer = io.FlowWriter(self._file)
        self.arrivals.addons = [_Copies(self)]
        self.addons = [_Writes(self)]
        logger.info("recording flows to %s", path)

    def done(self):
        self._close()

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file = self.writer = None
        self.arrived.clear()
        self.arrivals.addons = []
        self.addons = []

    def write(self, flow: http.HTTPFlow) -> None:
        entry = self.arrived.pop(flow.id, None)  # also makes the write happen once per flow
        if entry is None or self.writer is None or self._file is None:  # (writer and file go together)
            return
        stream = flow.response.stream if flow.response is not None else None
        try:
            record = recorded_flow(flow, *entry, stream if isinstance(stream, StreamTee) else None, self.secrets)
            self.writer.add(record)
            self._file.flush()
        except Exception:  # recording must never break the traffic it records
            logger.exception("could not record %s %s", flow.request.method, flow.request.path)
