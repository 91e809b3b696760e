"""A compressed request body decoded before the request addon reads it (addons/body_decoder.py): every
coding, 400 and 413 in Anthropic's shape, off the event loop.
"""

import asyncio
import gzip
import json
import threading

import pytest
from mitmproxy.addons.proxyserver import Proxyserver
from mitmproxy.net.encoding import encode
from mitmproxy.test import taddons, tflow

from addons import body_decoder
from addons.body_decoder import BodyDecoder
from addons.classifier import FlowClassifier
from addons.flow.notes import changes

BODY = json.dumps({"model": "qwen-plus", "max_tokens": 32000, "messages": [{"role": "user", "content": "hi"}]}).encode()


@pytest.fixture
def decoder():
    addon = BodyDecoder()
    with taddons.context(addon):
        yield addon


def post(raw: bytes, encoding: str, path: str = "/v1/messages", method: str = "POST"):
    flow = tflow.tflow()
    flow.request.method, flow.request.path = method, path
    flow.request.headers["content-encoding"] = encoding
    flow.request.raw_content = raw
    FlowClassifier().requestheaders(flow)
    return flow


def handle(addon, flow) -> None:
    if (pending := addon.request(flow)) is not None:
        asyncio.run(pending)


@pytest.mark.parametrize("encoding", ["gzip", "br", "zstd", "deflate", "gzip, br"])
@pytest.mark.parametrize("path", ["/v1/messages?beta=true", "/v1/messages/count_tokens"])
def test_a_compressed_body_goes_on_decoded(decoder, encoding, path):
    # LiteLLM does not decode request bodies: it would find no `messages` in a compressed one.
    raw = BODY
    for coding in encoding.split(", "):
        raw = encode(raw, coding)
    flow = post(raw, encoding, path)
    handle(decoder, flow)
    assert flow.response is None and "content-encoding" not in flow.request.headers
    assert flow.request.raw_content == BODY


def test_an_undecodable_body_is_answered_400(decoder):
    flow = post(BODY, "gzip")  # says gzip, is not
    handle(decoder, flow)
    assert flow.response.status_code == 400
    error = json.loads(flow.response.content)["error"]
    assert error["type"] == "invalid_request_error" and "Content-Encoding: gzip" in error["message"]
    assert [change.kind for change in changes(flow)] == ["refused"]


def test_a_body_decoding_past_mitmdumps_limit_is_answered_413():
    decoder = BodyDecoder()
    with taddons.context(decoder, Proxyserver()) as tctx:  # the option is mitmproxy's proxy server's
        tctx.configure(decoder, body_size_limit="1m")
        flow = post(gzip.compress(b" " * (2 << 20)), "gzip")
        handle(decoder, flow)
    assert flow.response.status_code == 413
    assert json.loads(flow.response.content)["error"]["type"] == "request_too_large"
    assert "more than 1048576 bytes" in changes(flow)[0].detail


@pytest.mark.parametrize(("method", "path"), [("POST", "/v1/complete"), ("GET", "/v1/messages")])
def test_other_requests_are_left_as_they_came(decoder, method, path):
    flow = post(encode(BODY, "gzip"), "gzip", path, method)
    assert decoder.request(flow) is None
    assert flow.request.headers["content-encoding"] == "gzip"


def test_decoding_runs_off_the_event_loop(decoder, monkeypatch):
    # A 0.1 MB bomb inflates to the whole limit: on the loop it would hold every other flow.
    threads = []
    real = body_decoder.decoded

    def decoded(*args):
        threads.append(threading.get_ident())
        return real(*args)

    monkeypatch.setattr(body_decoder, "decoded", decoded)
    handle(decoder, post(encode(BODY, "gzip"), "gzip"))
    assert threads and threading.get_ident() not in threads
