"""mitmproxy's own answers to failures, made into something Claude Code understands.

Two things mitmproxy writes itself, after every addon hook has run, with no hook
to change them: the HTML error page it answers when the upstream refuses, dies or
times out before a response started, and the bare connection close when the
upstream cuts a response body it had started. The first becomes Anthropic JSON
(503 overloaded_error with Retry-After, which Claude Code retries); for the
second, the response's stream callable gets its end-of-stream call (b"") that
mitmproxy otherwise skips, so the SSE patcher can end the stream with an
`error` event instead of a cut that looks like a network failure, and the
chunked body is closed properly.

Two more are mended in the same layer. When mitmproxy answers before the
request has arrived whole (413 past `body_size_limit`), it closes at once with
the rest of the body unread: the client, still sending, gets a reset, or (when
the close lands while the connection's task waits for the event lock,
proxy/server.py handle_connection) a socket left open that nobody reads. A
client that sends its whole body before reading (the Python SDK, urllib) never
sees the answer. Here the rest of the body is read and dropped, and the
connection closes when it ends, as after any answer with `Connection: close`.
And a chunked request with a trailer section makes mitmproxy's HTTP/1 reader
raise ("HTTP trailers are not implemented yet"): no answer at all. The trailer
fields are dropped, as a recipient that removes the chunked coding may
(RFC 9112, 7.1.2); LiteLLM reads none.

All of it is done by replacing or wrapping three names of mitmproxy's HTTP/1
layer (pinned mitmproxy version; tests/test_proxy_errors.py fails if they move).
"""

from collections.abc import Iterable

import h11
from h11._readers import ChunkedReader
from mitmproxy import exceptions, http
from mitmproxy.connection import ConnectionState
from mitmproxy.net.http import http1
from mitmproxy.proxy import commands
from mitmproxy.proxy.layers.http import _http1
from mitmproxy.proxy.layers.http._events import ResponseProtocolError

from addons.errors import error_body

RETRY_AFTER_SECONDS = 1


def unavailable_response(message: str) -> http.Response:
    """503 overloaded_error with Retry-After: what Claude Code retries about once a second."""
    return http.Response.make(
        503,
        error_body("overloaded_error", message),
        {"content-type": "application/json", "retry-after": str(RETRY_AFTER_SECONDS)},
    )


def error_response(status_code: int, message: str = "") -> http.Response:
    """The Anthropic answer for one of mitmproxy's error statuses; the connection closes after it."""
    if status_code >= 500:
        response = unavailable_response(f"LiteLLM upstream unavailable: {message}; retry shortly")
    else:
        kind = "request_too_large" if status_code == 413 else "invalid_request_error"
        response = http.Response.make(status_code, error_body(kind, message), {"content-type": "application/json"})
    response.headers["connection"] = "close"
    return response


def error_page(status_code: int, message: str = "") -> bytes:
    """Stands in for mitmproxy's HTML error page."""
    return http1.assemble_response(error_response(status_code, message))


class TrailersDropped(ChunkedReader):
    """h11's reader of a chunked body, which ends it without the trailer fields it read."""

    def __call__(self, buf):
        event = super().__call__(buf)
        return h11.EndOfMessage() if isinstance(event, h11.EndOfMessage) else event


def _stream_tail(response: http.Response) -> bytes:
    """What the response's stream callable emits for end-of-stream."""
    if not callable(response.stream):
        return b""
    tail = response.stream(b"")
    return tail if isinstance(tail, bytes) else b"".join(tail if isinstance(tail, Iterable) else [])


def _server_send(original_send):
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
            self.response = error_response(status, event.message)
            yield commands.SendData(self.conn, http1.assemble_response(self.response))
            if response is None and self.request and self.request.headers.get("expect", "").lower() == "100-continue":
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
            yield commands.SendData(self.conn, (b"%x\r\n%s\r\n" % (len(tail), tail) if tail else b"") + b"0\r\n\r\n")
        yield from original_send(self, event)

    send.wrapped = original_send
    return send


class ProxyErrorAnswers:
    def load(self, loader):
        if not all(hasattr(_http1, name) for name in ("make_error_response", "ChunkedReader", "Http1Server")):
            raise exceptions.AddonManagerError(
                "this mitmproxy has no _http1.make_error_response / ChunkedReader / Http1Server")
        _http1.make_error_response = error_page
        # make_body_reader looks the name up at each request.
        _http1.ChunkedReader = TrailersDropped
        if not hasattr(_http1.Http1Server.send, "wrapped"):
            _http1.Http1Server.send = _server_send(_http1.Http1Server.send)
