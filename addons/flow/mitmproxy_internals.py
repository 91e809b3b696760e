"""Every use the bundle makes of mitmproxy's private internals, for mitmproxy 12.3.x only.

No other module of the bundle touches a private mitmproxy name; the addons that
need one (ProxyErrorAnswers, UpstreamIdleTimeout, LegacyLogEventsOff) call the
functions here. Each of them checks first, at load, that this is the mitmproxy
these functions were written for, and refuses to start on another
(`check_version`): its internals change without notice between releases.

What is reached, and why no public hook does it (checked against 12.3.1):

- `_http1.make_error_response`, replaced while installed: the page mitmproxy
  answers itself when the upstream refuses, fails or times out, or a request
  head is malformed. The `error` and `server_connect_error` hooks see the
  failure but cannot answer it: the layer sends its page after them.
- `Http1Server.send`, wrapped while installed: (1) an answer mitmproxy gives
  before the request arrived whole (413 past `body_size_limit`, also after a
  `100 Continue`) closes the connection with the body unread, which a client
  still sending never reads; the wrap reads the rest and closes after it. (2) A
  response body the upstream cuts: the client connection is closed with the
  chunked body open and the response's stream callable never gets its end call
  (b""); the wrap sends what that call returns and closes the chunked body. No
  hook runs between the layer's decision and the bytes written.
- `_http1.ChunkedReader`, replaced while installed: a chunked request with a
  trailer section makes the reader raise before any hook runs ("HTTP trailers
  are not implemented yet"); the replacement drops the trailer fields.
- `Proxyserver.connections[...].transports[...]`: mitmproxy has no API to close
  one server connection (`flow.kill()` takes effect only when a hook returns,
  not while the layer waits on the upstream).
- the `LegacyLogEvents` handler a master puts on the root logger: no option
  switches it off.

`install_http1_answers` / `restore_http1_answers` are counted: loaded twice,
the names are replaced once and restored when the last holder is done.
"""

import logging
import re
from collections.abc import Callable, Iterable

import h11
from mitmproxy import ctx, exceptions, http, log, version
from mitmproxy.connection import ConnectionState
from mitmproxy.net.http import http1
from mitmproxy.proxy import commands
from mitmproxy.proxy.layers.http import ResponseProtocolError, _http1

WRITTEN_FOR = (12, 3)
PINNED = "constraints.txt"

Answer = Callable[[int, str], http.Response]

# Set on every replacement: the name's value before it.
ORIGINAL = "stabilizer_original"


def check_version(found: str | None = None) -> None:
    """Raise AddonManagerError, saying what to do, unless this is mitmproxy 12.3.x."""
    found = found or version.VERSION
    match = re.match(r"(\d+)\.(\d+)", found)
    if match is None or (int(match[1]), int(match[2])) != WRITTEN_FOR:
        expected = "%d.%d.x" % WRITTEN_FOR
        raise exceptions.AddonManagerError(
            f"the stabilizer addons reach into mitmproxy's internals as mitmproxy {expected} has them "
            f"(addons/flow/mitmproxy_internals.py), but this is mitmproxy {found}. Install the pinned mitmproxy: "
            f"`python -m pip install -c {PINNED} -e .` in the project folder (`make install` does it in .venv)."
        )


# --- the HTTP/1 layer: mitmproxy's own answers ------------------------------------------


def _error_page(answer: Answer):
    def make_error_response(status_code: int, message: str = "") -> bytes:
        return http1.assemble_response(answer(status_code, message))

    return make_error_response


def _trailers_dropped(chunked_reader: type) -> type:
    class TrailersDropped(chunked_reader):
        """h11's reader of a chunked body, which ends it without the trailer fields it read."""

        def __call__(self, buf):
            event = super().__call__(buf)
            return h11.EndOfMessage() if isinstance(event, h11.EndOfMessage) else event

    return TrailersDropped


def _stream_tail(response: http.Response) -> bytes:
    """What the response's stream callable emits for end-of-stream."""
    if not callable(response.stream):
        return b""
    tail = response.stream(b"")
    if not isinstance(tail, Iterable):  # a callable that broke its contract: no tail
        return b""
    return tail if isinstance(tail, bytes) else b"".join(tail)


def _server_send(answer: Answer):
    def wrap(original_send):
        def send(self: _http1.Http1Server, event):
            response = self.response
            if (
                isinstance(event, ResponseProtocolError)
                # A `100 Continue` (Expect: 100-continue) is no answer: the client sends its body on.
                and (response is None or response.status_code == 100)
                and not self.request_done
                and self.conn.state & ConnectionState.CAN_WRITE
                and (status := event.code.http_status_code()) is not None
            ):
                # Answered before the request arrived whole: the body reader goes on to its end,
                # and mark_done closes the connection then (both messages done, Connection: close).
                self.response = answer(status, event.message)
                yield commands.SendData(self.conn, http1.assemble_response(self.response))
                if (
                    response is None
                    and self.request
                    and self.request.headers.get("expect", "").lower() == "100-continue"
                ):
                    # Still waiting for a 100 that never came, the client sends no body: nothing to read.
                    yield commands.CloseConnection(self.conn)
                else:
                    yield from self.mark_done(response=True)
                return
            if (
                isinstance(event, ResponseProtocolError)
                and response is not None
                and self.conn.state & ConnectionState.CAN_WRITE
                and "chunked" in response.headers.get("transfer-encoding", "").lower()
            ):
                tail = _stream_tail(response)
                yield commands.SendData(
                    self.conn, (b"%x\r\n%s\r\n" % (len(tail), tail) if tail else b"") + b"0\r\n\r\n"
                )
            yield from original_send(self, event)

        return send

    return wrap


# Every name replaced in the HTTP/1 layer, as (owner, name).
REPLACED = (
    (_http1, "make_error_response"),
    # make_body_reader looks the name up at each request.
    (_http1, "ChunkedReader"),
    (_http1.Http1Server, "send"),
)

_holders = 0


def install_http1_answers(answer: Answer) -> None:
    """Replace mitmproxy's error answers with `answer(status, message)`'s (see the module's docstring)."""
    global _holders
    check_version()
    if missing := [name for owner, name in REPLACED if not hasattr(owner, name)]:
        raise exceptions.AddonManagerError(f"this mitmproxy's HTTP/1 layer has no {', '.join(missing)}")
    _holders += 1
    makers = (lambda _original: _error_page(answer), _trailers_dropped, _server_send(answer))
    for (owner, name), make in zip(REPLACED, makers):
        original = getattr(owner, name)
        if hasattr(original, ORIGINAL):  # replaced already (by a second copy of this module)
            continue
        replacement = make(original)
        setattr(replacement, ORIGINAL, original)
        setattr(owner, name, replacement)


def restore_http1_answers() -> None:
    """Put back what install_http1_answers replaced, once its last holder is done."""
    global _holders
    if _holders == 0:
        return
    _holders -= 1
    if _holders:
        return
    for owner, name in REPLACED:
        if (original := getattr(getattr(owner, name), ORIGINAL, None)) is not None:
            setattr(owner, name, original)


# --- the proxy server: one server connection closed --------------------------------------


def close_server_connection(flow: http.HTTPFlow, reason: str) -> bool:
    """Close the flow's connection to its server now, as a failed write does; False if there is none."""
    # Cancelling the connection's task is what mitmproxy itself does when a write to a peer fails.
    proxyserver = ctx.master.addons.get("proxyserver")
    handler = proxyserver.connections.get(flow.client_conn.id) if proxyserver else None
    transport = handler.transports.get(flow.server_conn) if handler else None
    if transport is None or transport.handler is None:
        return False
    transport.handler.cancel(reason)
    return True


# --- the master: the deprecated add_log events ------------------------------------------


def legacy_log_events_off(master) -> logging.Handler | None:
    """Take the master's add_log event handler off the root logger; it, or None if it had none."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, log.LegacyLogEvents) and handler.master is master:
            handler.uninstall()
            return handler
    return None


def legacy_log_events_on(handler: logging.Handler | None) -> None:
    """Put back a handler legacy_log_events_off took off."""
    if handler is not None:
        logging.getLogger().addHandler(handler)  # a no-op if it is there
