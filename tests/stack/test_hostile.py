"""Hostile and broken input against the real mitmdump with the addons, in front of the real LiteLLM.

For every request of the corpus (tests/hostile/corpus.py): the proxy answers,
with LiteLLM's own answer passed through or an Anthropic-shaped 4xx; never a
5xx, never a traceback; the next valid request succeeds; and mitmdump logs no
traceback for any of it. Compressed bodies are answered like the plain body.
"""

import http.client
import json
import socket
from pathlib import Path

import pytest

from addons.errors.anthropic import is_anthropic_error
from tests.conftest import POLICY
from tests.hostile.corpus import CASES, COUNT_TOKENS, MESSAGES, Case, valid
from tests.procs import Mitmdump

API_PATHS = (MESSAGES.partition("?")[0], COUNT_TOKENS.partition("?")[0])
# Bodies from Python's exception machinery: what a traceback leaks.
TRACEBACK_MARKS = (b"Traceback (most recent call last)", b'File "/')


@pytest.fixture(scope="module")
def hostile_proxy(litellm, child_env):
    """A mitmdump of this module's own, so that its log holds only the corpus."""
    if litellm.process.poll() is not None:
        litellm.start()
    proxy = Mitmdump(litellm.log_file, POLICY, child_env).start()
    proxy.wait_upstream(litellm.url)
    yield proxy
    proxy.stop()


def exchange(port: int, case: Case, key: str, timeout: float = 60) -> tuple[int, dict[str, str], bytes]:
    """Send the case's bytes as they are; read the answer as an HTTP client does."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(case.request_bytes(key))
        response = http.client.HTTPResponse(connection, method=case.method)
        response.begin()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


def assert_next_request_succeeds(port: int, key: str) -> None:
    status, _, body = exchange(port, Case("valid", json.dumps(valid()).encode()), key)
    assert status == 200 and json.loads(body)["type"] == "message", body


def test_the_corpus_is_big_enough():
    assert len(CASES) >= 50


@pytest.mark.parametrize("case", [c for c in CASES if "not HTTP" not in c.name], ids=lambda c: c.name)
def test_hostile_request_is_answered_and_the_stack_keeps_serving(hostile_proxy, fresh_backend, master_key, case):
    status, headers, body = exchange(hostile_proxy.port, case, master_key)
    assert status < 500, (status, body[:500])
    assert not any(mark in body for mark in TRACEBACK_MARKS), body[:2000]
    assert "html" not in headers.get("content-type", "")
    endpoint = case.path.partition("?")[0]
    if status >= 400 and (case.raw is not None or (case.method == "POST" and endpoint in API_PATHS)):
        # Ours (the request addon, mitmproxy's error pages) or LiteLLM's, reshaped by the response addon.
        assert is_anthropic_error(json.loads(body)), body[:500]
    if case.encoded or "valid" in case.tags:
        assert status == 200, body[:500]
        answer = json.loads(body)
        assert answer.get("type") == "message" or answer.get("input_tokens", 0) > 0, answer
    if "answered_by_us" in case.tags:
        assert status == 400 and json.loads(body)["error"]["message"].startswith("prompt is too long")
    assert_next_request_succeeds(hostile_proxy.port, master_key)


def test_bytes_that_are_not_http_do_not_stop_the_proxy(hostile_proxy, master_key):
    (case,) = [c for c in CASES if "not HTTP" in c.name]
    with socket.create_connection(("127.0.0.1", hostile_proxy.port), timeout=5) as connection:
        connection.sendall(case.request_bytes(master_key))
        try:
            connection.recv(65536)  # mitmproxy waits for the rest of a TLS handshake, or gives up
        except TimeoutError:
            pass
    assert_next_request_succeeds(hostile_proxy.port, master_key)


@pytest.mark.parametrize("encoding", ["gzip", "br", "zstd"])
def test_compressed_body_is_answered_like_the_plain_one(hostile_proxy, fresh_backend, master_key, encoding):
    (case,) = [c for c in CASES if c.name == f"{encoding} body"]
    status, _, body = exchange(hostile_proxy.port, case, master_key)
    assert status == 200 and json.loads(body)["content"][0]["text"] == f'You said: "encoded with {encoding}"'
    assert fresh_backend.requests[-1]["messages"][-1]["content"] in (
        f"encoded with {encoding}", [{"type": "text", "text": f"encoded with {encoding}"}])  # fmt: skip


def test_mitmdump_logged_no_traceback(hostile_proxy):
    # Runs after the corpus (pytest keeps the order of the file).
    log = Path(hostile_proxy.log.name).read_text(errors="replace")
    assert "Traceback" not in log, log[-5000:]
    assert "Addon error" not in log, log[-5000:]
