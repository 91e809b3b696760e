"""What a request is (addons/flow/kind.py), by its method and path, and read back from a flow.

Noted on the flow as it arrives: tests/addons/test_classifier.py.
"""

from pathlib import Path

import pytest
from mitmproxy import io
from mitmproxy.test import tflow, tutils

from addons.flow.kind import KIND, FlowKind, canonical_path, classify, flow_kind

FLOWS = Path(__file__).parent.parent / "flows"


@pytest.mark.parametrize(
    "method, path, kind",
    [
        ("POST", "/v1/messages", FlowKind.MESSAGES),
        ("POST", "/v1/messages?beta=true", FlowKind.MESSAGES),
        ("POST", "/v1/messages/", FlowKind.MESSAGES),
        ("POST", "//v1//messages?beta=true", FlowKind.MESSAGES),
        ("POST", "/v1/%6D%65ssages", FlowKind.MESSAGES),
        ("POST", "/v1/messages/count_tokens?beta=true", FlowKind.COUNT_TOKENS),
        ("POST", "/v1/messages/count_tokens/", FlowKind.COUNT_TOKENS),
        ("POST", "/v1/messages%2Fcount_tokens", FlowKind.COUNT_TOKENS),
        ("GET", "/v1/messages", FlowKind.NOT_POSTED),
        ("PUT", "/v1/messages/count_tokens?beta=true", FlowKind.NOT_POSTED),
        ("post", "/v1/messages", FlowKind.NOT_POSTED),  # methods are case-sensitive
        ("GET", "/_stabilizer/status", FlowKind.STATUS),
        ("DELETE", "/_stabilizer/status?x=1", FlowKind.STATUS),
        ("HEAD", "/", FlowKind.ROOT),
        ("POST", "/?/v1/messages", FlowKind.ROOT),  # the query string is no part of the route
        ("GET", "//", FlowKind.ROOT),
        ("POST", "/v1/messages%3Fbeta=true", FlowKind.OTHER),  # an encoded `?` is part of the route
        ("POST", "/v2/messages", FlowKind.OTHER),
        ("POST", "/litellm/v1/messages", FlowKind.OTHER),  # a path prefix is added later, never sent
        ("POST", "/v1/messages/batches", FlowKind.OTHER),
        ("GET", "/v1/models", FlowKind.MODELS),
        ("GET", "/v1/models?limit=1000", FlowKind.MODELS),
        ("POST", "/v1/models", FlowKind.OTHER),
        ("GET", "/v1/models/demo", FlowKind.OTHER),
    ],
)
def test_classify(method, path, kind):
    assert classify(method, path) is kind


@pytest.mark.parametrize(
    "path, canonical",
    [
        ("/v1/messages?beta=true", "/v1/messages?beta=true"),
        ("//v1//messages/?beta=true", "/v1/messages?beta=true"),
        ("/v1/%6D%65ssages", "/v1/messages"),
        ("/v1/messages/count_tokens/?a=%2F", "/v1/messages/count_tokens?a=%2F"),  # the query as it came
    ],
)
def test_canonical_path(path, canonical):
    assert canonical_path(path) == canonical


@pytest.mark.parametrize("noted", [None, "teapot", ["messages"]])
def test_a_flow_without_a_kind_is_classified_by_its_request(noted):
    flow = tflow.tflow(req=tutils.treq(method=b"POST", path=b"/v1/messages?beta=true"))
    if noted is not None:
        flow.metadata[KIND] = noted
    assert flow_kind(flow) is FlowKind.MESSAGES


def test_flows_recorded_before_kinds_read_as_the_turns_they_are():
    """A recording holds the request as it arrived: its path names the route (mitmweb -r shows these).
    The recordings in tests/flows are newer than kinds, so their noted kind is removed first."""
    with (FLOWS / "long-session.flow").open("rb") as file:
        flows = list(io.FlowReader(file).stream())
    for flow in flows:
        flow.metadata.pop(KIND, None)
    assert flows and {flow_kind(flow) for flow in flows} == {FlowKind.MESSAGES}
