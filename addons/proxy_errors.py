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

Both are done by wrapping two functions of mitmproxy's HTTP/1 server layer
(pinned mitmproxy version; tests/test_proxy_errors.py fails if they move).
"""

from collections.abc import Iterable

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


def error_page(status_code: int, message: str = "") -> bytes:
    """Stands in for mitmproxy's HTML error page."""
    if status_code >= 500:
        response = unavailable_response(f"LiteLLM upstream unavailable: {message}; retry shortly")
    else:
        kind = "request_too_large" if status_code == 413 else "invalid_request_error"
        response = http.Response.make(status_code, error_body(kind, message), {"content-type": "application/json"})
    response.headers["connection"] = "close"
    return http1.assemble_response(response)


def _stream_tail(response: http.Response) -> bytes:
    """What the response's stream callable emits for end-of-stream."""
    if not callable(response.stream):
        return b""
    tail = response.stream(b"")
    return tail if isinstance(tail, bytes) else b"".join(tail if isinstance(tail, Iterable) else [])


def _finish_cut_stream(original_send):
    def send(self: _http1.Http1Server, event):
        response = self.response
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
        if not hasattr(_http1, "make_error_response") or not hasattr(_http1.Http1Server, "send"):
            raise exceptions.AddonManagerError("this mitmproxy has no _http1.make_error_response / Http1Server.send")
        _http1.make_error_response = error_page
        if not hasattr(_http1.Http1Server.send, "wrapped"):
            _http1.Http1Server.send = _finish_cut_stream(_http1.Http1Server.send)
