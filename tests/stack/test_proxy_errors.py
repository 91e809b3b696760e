"""mitmproxy's own failure answers, turned Anthropic-shaped (addons/proxy_errors.py)."""

import http.client
import json
import socket
import threading
import urllib.error
import urllib.request

import pytest

from addons.proxy_errors import proxy_error_response
from addons.wire.sse import SSEDecoder
from tests.hostile.corpus import MESSAGES, valid
from tests.procs import post_json, running_line


def test_error_answers_are_anthropic_json():
    # What they are; that mitmproxy's layer sends them: tests/addons/test_mitmproxy_internals.py.
    for status, expected_status, kind in [
        (502, 503, "overloaded_error"),
        (504, 503, "overloaded_error"),
        (400, 400, "invalid_request_error"),
        (413, 413, "request_too_large"),
    ]:
        response = proxy_error_response(status, "Connect call failed")
        assert response.status_code == expected_status
        assert response.headers["content-type"] == "application/json"
        assert response.headers["connection"] == "close"
        error = json.loads(response.content)["error"]
        assert error["type"] == kind and "Connect call failed" in error["message"]


MESSAGE_START = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message",'
    b'"role":"assistant","model":"m","content":[],"stop_reason":null,"usage":{"input_tokens":0,"output_tokens":0}}}\n\n'
)
HALF_DELTA = b'event: content_block_delta\ndata: {"type":"content_block_del'


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class DyingUpstream:
    """Plays a LiteLLM that is killed in the middle of a stream: headers, one event, half another, close."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self.serve_one, daemon=True)
        self.thread.start()

    def serve_one(self):
        # The Upstream addon's probes come first: connections closed without a request.
        while not (request := self.request_head(connection := self.listener.accept()[0])):
            connection.close()
        with connection:
            head, _, body = request.partition(b"\r\n\r\n")
            length = int(
                next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
            )
            while len(body) < length:
                body += connection.recv(65536)
            connection.sendall(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
                + chunk(MESSAGE_START)
                + chunk(HALF_DELTA)
            )
        self.listener.close()

    @staticmethod
    def request_head(connection: socket.socket) -> bytes:
        """What arrives up to the end of the request's head (and past it); b"" if the connection closes first."""
        request = b""
        while b"\r\n\r\n" not in request:
            if not (data := connection.recv(65536)):
                return b""
            request += data
        return request


def test_stream_cut_by_a_dying_upstream_ends_with_an_error_event(lone_proxy, master_key):
    proxy, log = lone_proxy
    upstream = DyingUpstream()
    log.write_bytes(running_line(f"http://127.0.0.1:{upstream.port}"))
    proxy.wait_upstream(f"http://127.0.0.1:{upstream.port}")

    client = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    request = {"model": "m", "max_tokens": 5, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    client.request(
        "POST",
        "/v1/messages?beta=true",
        json.dumps(request),
        {"x-api-key": master_key, "content-type": "application/json"},
    )
    response = client.getresponse()
    body = response.read()  # http.client raises IncompleteRead if the chunked body is not closed
    upstream.thread.join(10)

    decoder = SSEDecoder()
    events = decoder.feed(body) + decoder.finish()[0]
    assert [event.event for event in events] == ["message_start", "error"]
    assert json.loads(events[-1].data)["error"]["type"] == "overloaded_error"


OVER_LIMIT = 40 << 20  # mitmdump's body_size_limit is 32 MB
# A client fails on its own timeout when the answer never comes: this is the test's.
CLIENT_TIMEOUT = 30


def over_limit_request(key: str, framing: str) -> bytes:
    body = b"x" * OVER_LIMIT
    head = f"POST {MESSAGES} HTTP/1.1\r\nhost: x\r\nx-api-key: {key}\r\ncontent-type: application/json\r\n".encode()
    if framing == "chunked":
        chunks = b"".join(b"%x\r\n%s\r\n" % (1 << 20, body[i : i + (1 << 20)]) for i in range(0, OVER_LIMIT, 1 << 20))
        return head + b"transfer-encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
    return head + b"content-length: %d\r\n\r\n" % OVER_LIMIT + body


def assert_too_large(status: int, body: bytes) -> None:
    assert status == 413, body[:500]
    assert json.loads(body)["error"]["type"] == "request_too_large", body[:500]


def assert_next_request_succeeds(port: int, key: str) -> None:
    status, _, body = post_json(f"http://127.0.0.1:{port}{MESSAGES}", valid(), {"x-api-key": key})
    assert status == 200 and json.loads(body)["type"] == "message", body[:500]


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_over_limit_body_sent_whole_before_reading_gets_413_then_a_close(stack, fresh_backend, master_key, framing):
    # As the Python SDK and urllib do: the whole body out, then the answer read.
    with socket.create_connection(("127.0.0.1", stack.port), timeout=CLIENT_TIMEOUT) as connection:
        connection.sendall(over_limit_request(master_key, framing))
        response = http.client.HTTPResponse(connection, method="POST")
        response.begin()
        assert response.getheader("connection") == "close"
        assert_too_large(response.status, response.read())
        assert connection.recv(1) == b""
    assert_next_request_succeeds(stack.port, master_key)


def test_urllib_gets_the_413_for_an_over_limit_body(stack, fresh_backend, master_key):
    request = urllib.request.Request(
        f"{stack.url}{MESSAGES}",
        data=b"x" * OVER_LIMIT,
        method="POST",
        headers={"x-api-key": master_key, "content-type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=CLIENT_TIMEOUT)
    assert_too_large(refused.value.code, refused.value.read())
    assert_next_request_succeeds(stack.port, master_key)


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_over_limit_body_after_expect_100_continue_gets_413(stack, fresh_backend, master_key, framing):
    # As curl does for bodies over 1 MB: the head, then the body only once the server says go on.
    request = over_limit_request(master_key, framing)
    head, _, body = request.partition(b"\r\n\r\n")
    with socket.create_connection(("127.0.0.1", stack.port), timeout=CLIENT_TIMEOUT) as connection:
        connection.sendall(head + b"\r\nexpect: 100-continue\r\n\r\n")
        first = b""
        while b"\r\n\r\n" not in first:  # http.client would skip a 100 and wait on
            first += connection.recv(1)
        if first.startswith(b"HTTP/1.1 100"):  # a chunked body's size is known only as it comes
            assert framing == "chunked"
            connection.sendall(body)
            first = b""
        answer = first
        while received := connection.recv(65536):  # until the close that follows the 413
            answer += received
    head, _, body = answer.partition(b"\r\n\r\n")
    assert_too_large(int(head.split()[1]), body)
    assert_next_request_succeeds(stack.port, master_key)
