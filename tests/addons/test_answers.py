"""addons/flow/answers.py: the answers the addons give themselves, in Anthropic's error shape,
marked as given here and, for a refusal, recorded as the flow's change."""

import json
import logging

import pytest
from mitmproxy import http
from mitmproxy.test import tflow, tutils

from addons.errors.anthropic import is_anthropic_error
from addons.flow.answers import answer, error_response, refuse, refused, unavailable_response
from addons.flow.change import Change, ChangeKind
from addons.flow.notes import add_changes, changes, turn_notes
from addons.inspection import changes_comment


def request() -> http.HTTPFlow:
    return tflow.tflow(req=tutils.treq(method=b"POST", path=b"/v1/messages?beta=true"))


def error_of(response: http.Response) -> dict:
    assert response.headers["content-type"] == "application/json"
    body = json.loads(response.content)
    assert is_anthropic_error(body)
    return body["error"]


def test_an_answer_given_here_is_not_taken_for_the_upstreams():
    flow = request()
    given = error_response("authentication_error", "invalid API key")
    answer(flow, given)
    assert flow.response is given
    # An error status from upstream earns "upstream error" in the flow's comment; this one is ours.
    assert changes_comment(flow) == ""
    upstream = request()
    upstream.response = error_response("authentication_error", "invalid API key")
    assert changes_comment(upstream) == "[upstream error]"


@pytest.mark.parametrize(
    "error_type, status",
    [("invalid_request_error", 400), ("request_too_large", 413), ("authentication_error", 401)],
)
def test_an_error_response_has_its_types_status_unless_told(error_type, status):
    assert error_response(error_type, "m").status_code == status
    assert error_of(error_response(error_type, "m")) == {"type": error_type, "message": "m"}
    other = error_response(error_type, "m", 502, **{"x-reason": "y"})
    assert other.status_code == 502 and other.headers["x-reason"] == "y"


def test_unavailable_is_a_503_claude_code_retries_after_a_second():
    response = unavailable_response("LiteLLM is starting")
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert error_of(response) == {"type": "overloaded_error", "message": "LiteLLM is starting"}


def test_refused_answers_and_returns_the_change_that_says_so():
    flow = request()
    change = refused(flow, "the request body is over 32 MB", "request_too_large", why=" (mitmproxy's limit)")
    assert change == Change(ChangeKind.REFUSED, "answered 413: the request body is over 32 MB (mitmproxy's limit)")
    assert flow.response.status_code == 413
    assert error_of(flow.response)["message"] == "the request body is over 32 MB"
    assert changes(flow) == []  # the caller records it with its other changes
    assert changes_comment(flow) == ""


def test_refuse_makes_the_refusal_the_flows_one_change_and_logs_it(caplog):
    flow = request()
    add_changes(turn_notes(flow), [Change(ChangeKind.OTHER, "an earlier change")])
    with caplog.at_level(logging.INFO, logger="addons.flow.answers"):
        refuse(flow, "messages: expected a list")
    assert flow.response.status_code == 400
    assert error_of(flow.response) == {"type": "invalid_request_error", "message": "messages: expected a list"}
    assert changes(flow) == [Change(ChangeKind.REFUSED, "answered 400: messages: expected a list")]
    assert changes_comment(flow) == "[refused] answered 400: messages: expected a list"
    assert [record.getMessage() for record in caplog.records] == [
        "POST /v1/messages?beta=true answered 400: messages: expected a list"
    ]
