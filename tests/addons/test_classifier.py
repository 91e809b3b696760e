"""addons/classifier.py: what a request is, noted on the flow as it arrives, before any addon changes it.

What each method and path is: tests/addons/test_kind.py.
"""

import io as bytes_io

from mitmproxy import http, io
from mitmproxy.test import taddons, tflow, tutils

from addons.classifier import FlowClassifier
from addons.flow.kind import KIND, FlowKind, classify, flow_kind
from addons.upstream import Upstream


def arrived(method: bytes, path: bytes) -> http.HTTPFlow:
    flow = tflow.tflow(req=tutils.treq(method=method, path=path))
    FlowClassifier().requestheaders(flow)
    return flow


def test_the_kind_noted_on_arrival_outlives_an_upstream_path_prefix():
    upstream = Upstream()
    with taddons.context(upstream) as tctx:
        tctx.configure(upstream, stabilizer_upstream="http://127.0.0.1:9/litellm")
        flow = arrived(b"POST", b"//v1//messages/?beta=true")
        upstream.request(flow)
    assert flow.response is None and flow.request.path == "/litellm/v1/messages?beta=true"
    assert flow_kind(flow) is FlowKind.MESSAGES
    assert classify(flow.request.method, flow.request.path) is FlowKind.OTHER  # what reading the path would say


def test_the_kind_is_plain_data_in_a_flow_file():
    flow = arrived(b"POST", b"/v1/messages/count_tokens")
    assert type(flow.metadata[KIND]) is str
    buffer = bytes_io.BytesIO()
    io.FlowWriter(buffer).add(flow)
    buffer.seek(0)
    (read,) = io.FlowReader(buffer).stream()
    read.request.path = "/elsewhere"
    assert flow_kind(read) is FlowKind.COUNT_TOKENS
