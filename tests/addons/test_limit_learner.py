"""LimitLearner in process: which refusals are sent again (the stack tests: tests/stack/test_learned_limits.py)."""

import asyncio
import json

import pytest
from mitmproxy import http
from mitmproxy.test import taddons, tflow

from addons import limit_learner
from addons.classifier import FlowClassifier
from addons.limit_learner import LimitLearner
from addons.request_shaper import RequestShaper
from tests.conftest import POLICY
from tests.procs import free_port


def error(message: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": "invalid_request_error"}}).encode()


RANGE = error("Invalid max_tokens value, the valid range of max_tokens is [1, 8192]")


@pytest.fixture
def addons(monkeypatch):
    """The request addon and the learner, and the max_tokens of each request sent again."""
    shaper = RequestShaper()
    learner = LimitLearner(shaper)
    resent: list[int] = []

    async def resend(request: http.Request) -> http.Response:
        resent.append(json.loads(request.get_content())["max_tokens"])
        return http.Response.make(200, b"{}", {"content-type": "application/json"})

    monkeypatch.setattr(limit_learner, "_resend", resend)
    with taddons.context(shaper, learner) as tctx:
        tctx.configure(shaper, stabilizer_policy=str(POLICY))
        yield shaper, learner, resent


def refused(shaper: RequestShaper, answer: bytes, max_tokens: int = 32000) -> http.HTTPFlow:
    """A request shaped and sent, and the backend's 400 to it."""
    flow = tflow.tflow()
    flow.request.method, flow.request.path = "POST", "/v1/messages"
    body = {"model": "plain-model", "max_tokens": max_tokens, "messages": [{"role": "user", "content": "hi"}]}
    flow.request.content = json.dumps(body).encode()
    FlowClassifier().requestheaders(flow)
    assert shaper.request(flow) is None
    flow.response = http.Response.make(400, answer, {"content-type": "application/json"})
    return flow


def answered(learner: LimitLearner, flow: http.HTTPFlow) -> None:
    if (pending := learner.response(flow)) is not None:
        asyncio.run(pending)


def test_requests_refused_before_the_first_came_back_are_each_sent_again(addons):
    shaper, learner, resent = addons
    flows = [refused(shaper, RANGE), refused(shaper, RANGE)]  # both went with the default 32000
    for flow in flows:
        answered(learner, flow)
    assert resent == [8192, 8192]
    assert [flow.response.status_code for flow in flows] == [200, 200]
    # The next one keeps to it from the start.
    assert json.loads(refused(shaper, b"{}").request.get_content())["max_tokens"] == 8192


@pytest.mark.parametrize(
    "answer, max_tokens",
    [
        (error("Unrecognized request argument supplied: top_k"), 32000),  # another reason
        (RANGE, 100),  # the range kept already: something else was refused
        (error("This model's maximum context length is 131072 tokens."), 100),  # nothing to trim
    ],
)
def test_nothing_else_is_sent_again(addons, answer, max_tokens):
    shaper, learner, resent = addons
    flow = refused(shaper, answer, max_tokens)
    answered(learner, flow)
    assert resent == [] and flow.response.status_code == 400


def test_a_request_that_cannot_be_sent_again_keeps_its_refusal(caplog):
    # Nothing listens on the port: the resend fails, says why, and the 400 stands.
    shaper = RequestShaper()
    learner = LimitLearner(shaper)
    with taddons.context(shaper, learner) as tctx:
        tctx.configure(shaper, stabilizer_policy=str(POLICY))
        flow = refused(shaper, RANGE)
        flow.request.host, flow.request.port = "127.0.0.1", free_port()
        answered(learner, flow)
    assert flow.response.status_code == 400
    assert json.loads(flow.response.get_content()) == json.loads(RANGE)
    assert "sending it again failed" in caplog.text
