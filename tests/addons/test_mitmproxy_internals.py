"""addons/flow/mitmproxy_internals.py: the private mitmproxy names, wired into a real mitmproxy and put back.

That mitmdump itself refuses another mitmproxy: tests/stack/test_mitmproxy_internals.py.
The answers are checked through mitmproxy's real proxy server and HTTP/1 layer, in
this process (tests/addons/in_process.py). After the master stops, the replaced names
must be mitmproxy's again. The idle limit's closing of a connection: tests/addons/test_idle_timeout.py.
"""

import json
import re
import socket
import tomllib
from pathlib import Path

import pytest
from mitmproxy import exceptions, version
from mitmproxy.proxy.layers.http import _http1
from mitmproxy.test import taddons

from addons.flow import mitmproxy_internals
from addons.idle_timeout import UpstreamIdleTimeout
from addons.legacy_log_events import LegacyLogEventsOff
from addons.proxy_errors import ProxyErrorAnswers
from tests.addons.in_process import InProcessProxy, ScriptedUpstream, anthropic_error, post, read_answer
from tests.procs import free_port

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
# The names replaced, as mitmproxy has them.
ORIGINALS = {(owner, name): getattr(owner, name) for owner, name in mitmproxy_internals.REPLACED}


def assert_mitmproxy_s_own() -> None:
    for (owner, name), original in ORIGINALS.items():
        assert getattr(owner, name) is original, f"{name} is not mitmproxy's own"


# --- the version check ---------------------------------------------------------------


def test_the_pinned_mitmproxy_is_the_one_the_module_was_written_for():
    pinned = re.search(r"^mitmproxy==([\d.]+)$", (PROJECT_ROOT / "constraints.txt").read_text(), re.MULTILINE)[1]
    dependencies = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"mitmproxy=={pinned}" in dependencies
    mitmproxy_internals.check_version(pinned)
    mitmproxy_internals.check_version(version.VERSION)


@pytest.mark.parametrize("found", ["13.0.0", "12.2.1", "11.1.3", "dev"])
def test_another_mitmproxy_is_refused_saying_what_to_install(found):
    with pytest.raises(exceptions.AddonManagerError) as refused:
        mitmproxy_internals.check_version(found)
    message = str(refused.value)
    assert f"this is mitmproxy {found}" in message and "mitmproxy 12.3.x" in message
    assert "pip install -c constraints.txt" in message


@pytest.mark.parametrize("addon", [ProxyErrorAnswers, UpstreamIdleTimeout, LegacyLogEventsOff])
def test_each_addon_checks_the_version_at_load(addon, monkeypatch):
    monkeypatch.setattr(version, "VERSION", "13.0.0")
    with pytest.raises(exceptions.AddonManagerError, match="this is mitmproxy 13.0.0"):
        with taddons.context(addon()):
            pass
    assert_mitmproxy_s_own()


# --- installed and put back ----------------------------------------------------------


def test_the_names_are_replaced_once_and_put_back_by_the_last_holder():
    first, second = ProxyErrorAnswers(), ProxyErrorAnswers()
    with taddons.context(first):
        replaced = {key: getattr(*key) for key in ORIGINALS}
        assert all(replaced[key] is not original for key, original in ORIGINALS.items())
        with taddons.context(second):
            assert {key: getattr(*key) for key in ORIGINALS} == replaced  # not wrapped twice
        first.done()
        assert {key: getattr(*key) for key in ORIGINALS} == replaced  # `second` still holds them
        first.done()  # done twice: no second release
        assert {key: getattr(*key) for key in ORIGINALS} == replaced
        second.done()
    assert_mitmproxy_s_own()


def test_a_stopped_master_leaves_mitmproxy_as_it_was():
    with InProcessProxy(free_port(), ProxyErrorAnswers()):
        assert _http1.make_error_response is not ORIGINALS[(_http1, "make_error_response")]
    assert_mitmproxy_s_own()


# --- mitmproxy's own answers, through the real HTTP/1 layer ------------------------------


def test_a_refused_upstream_gets_a_retryable_503():
    with InProcessProxy(free_port(), ProxyErrorAnswers()) as proxy, proxy.connect() as client:
        client.sendall(post())
        response, body = read_answer(client)
    assert response.status == 503 and response.getheader("retry-after") == "1"
    error = anthropic_error(response, body)
    assert error["type"] == "overloaded_error" and "retry shortly" in error["message"]


def test_without_the_addon_mitmproxy_answers_its_html_page():
    # What the test above would see if the replacement were not wired in.
    with InProcessProxy(free_port()) as proxy, proxy.connect() as client:
        client.sendall(post())
        response, _ = read_answer(client)
    assert response.status == 502 and response.getheader("content-type") == "text/html"


def test_an_upstream_that_closes_before_answering_gets_a_503():
    upstream = ScriptedUpstream(lambda connection: None)
    with InProcessProxy(upstream.port, ProxyErrorAnswers()) as proxy, proxy.connect() as client:
        client.sendall(post())
        response, body = read_answer(client)
    assert response.status == 503 and anthropic_error(response, body)["type"] == "overloaded_error"


def test_a_malformed_request_head_gets_a_json_400():
    with InProcessProxy(free_port(), ProxyErrorAnswers()) as proxy, proxy.connect() as client:
        client.sendall(b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-length: twelve\r\n\r\n")
        response, body = read_answer(client)
    assert response.status == 400 and anthropic_error(response, body)["type"] == "invalid_request_error"


class StreamEnd:
    """A response stream callable, as ResponsePatcher's: chunks pass, the end call adds a last one."""

    def responseheaders(self, flow):
        flow.response.stream = lambda chunk: chunk if chunk else b"[end of stream]"


def test_a_cut_stream_gets_its_end_call_and_a_closed_chunked_body():
    def head_one_chunk_and_close(connection: socket.socket) -> None:
        connection.sendall(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n6\r\nfirst \r\n"
        )

    upstream = ScriptedUpstream(head_one_chunk_and_close)
    with InProcessProxy(upstream.port, ProxyErrorAnswers(), StreamEnd()) as proxy, proxy.connect() as client:
        client.sendall(post())
        response, body = read_answer(client)
    assert response.status == 200 and body == b"first [end of stream]"


def test_a_chunked_request_with_trailers_goes_upstream_without_them():
    upstream = ScriptedUpstream(
        lambda connection: connection.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
    )
    with InProcessProxy(upstream.port, ProxyErrorAnswers()) as proxy, proxy.connect() as client:
        client.sendall(post(b"2\r\n{}\r\n0\r\nx-checksum: abc\r\n\r\n", "transfer-encoding: chunked"))
        response, body = read_answer(client)
    assert (response.status, body) == (200, b"ok")
    assert upstream.request.endswith(b"\r\n\r\n2\r\n{}\r\n0\r\n\r\n")  # chunked on, with no trailer section


LIMIT = 1 << 10
OVER_LIMIT = 2 << 20


def test_an_over_limit_body_sent_whole_gets_a_413_then_a_close():
    with (
        InProcessProxy(free_port(), ProxyErrorAnswers(), body_size_limit=str(LIMIT)) as proxy,
        proxy.connect() as client,
    ):
        client.sendall(post(b"x" * OVER_LIMIT, f"content-length: {OVER_LIMIT}"))  # all of it, then the answer
        response, body = read_answer(client)
        assert response.getheader("connection") == "close"
        assert client.recv(1) == b""
    assert response.status == 413 and anthropic_error(response, body)["type"] == "request_too_large"


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_an_over_limit_body_announced_with_expect_100_continue_gets_a_413(framing):
    with (
        InProcessProxy(free_port(), ProxyErrorAnswers(), body_size_limit=str(LIMIT)) as proxy,
        proxy.connect() as client,
    ):
        size = f"content-length: {OVER_LIMIT}" if framing == "content-length" else "transfer-encoding: chunked"
        client.sendall(post(b"", size, "expect: 100-continue"))  # the head only
        first = b""
        while b"\r\n\r\n" not in first:  # http.client would skip a 100 and wait on
            first += client.recv(1)
        if first.startswith(b"HTTP/1.1 100"):  # a chunked body's size is known only as it comes
            assert framing == "chunked"
            client.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (OVER_LIMIT, b"x" * OVER_LIMIT))
            first = b""
        answer = first
        while received := client.recv(65536):  # until the close that follows the 413
            answer += received
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ") and b"\r\ncontent-type: application/json\r\n" in head.lower()
    assert json.loads(body)["error"]["type"] == "request_too_large"
