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

All of it is done in mitmproxy's HTTP/1 layer, where no hook reaches:
addons/flow/mitmproxy_internals.py replaces the names while this addon is loaded and
puts them back when it is done; this module says what the answers are.
"""

from mitmproxy import http

from addons.flow import mitmproxy_internals
from addons.flow.answers import error_response, unavailable_response


def proxy_error_response(status_code: int, message: str = "") -> http.Response:
    """The Anthropic answer for one of mitmproxy's error statuses; the connection closes after it."""
    if status_code >= 500:
        response = unavailable_response(f"LiteLLM upstream unavailable: {message}; retry shortly")
    else:
        kind = "request_too_large" if status_code == 413 else "invalid_request_error"
        response = error_response(kind, message, status_code)
    response.headers["connection"] = "close"
    return response


class ProxyErrorAnswers:
    def __init__(self) -> None:
        self.installed = False

    def load(self, loader):
        mitmproxy_internals.install_http1_answers(proxy_error_response)
        self.installed = True

    def done(self):
        if self.installed:
            self.installed = False
            mitmproxy_internals.restore_http1_answers()
