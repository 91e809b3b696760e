"""The answers the addons give themselves, as mitmproxy responses in Anthropic's error shape.

Every addon that answers a request instead of LiteLLM (a missing key, a
malformed body, a method a path does not take, LiteLLM away, mitmproxy's own
failures) builds the response here, and gives it with `answer` (or `refused`
and `refuse`, which also make the change record that says so);
addons/errors/anthropic.py has the body and the status of each error type,
without mitmproxy.
"""

import logging

from mitmproxy import http

from addons.errors.anthropic import STATUS_BY_TYPE, error_body
from addons.flow.change import Change, ChangeKind, stored
from addons.flow.notes import ANSWERED_HERE, NOTES, TurnNotes

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 1


def answer(flow: http.HTTPFlow, response: http.Response) -> None:
    """Answer the request here, instead of LiteLLM: marked, so that ResponsePatcher does not
    take the answer for a backend's refusal to explain, nor the stabilizer view for LiteLLM's."""
    flow.response = response
    flow.metadata[ANSWERED_HERE] = True


def refused(flow: http.HTTPFlow, problem: str, error_type: str = "invalid_request_error", why: str = "") -> Change:
    """Answer the request here with Anthropic's error, `problem` its message; the change that says so
    (with `why`, for the flow's own record)."""
    answer(flow, error_response(error_type, problem))
    return Change(ChangeKind.REFUSED, f"answered {STATUS_BY_TYPE[error_type]}: {problem}{why}")


def refuse(flow: http.HTTPFlow, problem: str, error_type: str = "invalid_request_error") -> None:
    """Answer a request that cannot be made right with Anthropic's 400 (or 413), which Claude Code
    shows instead of retrying; the refusal is the flow's one change, and a log line."""
    change = refused(flow, problem, error_type)
    logger.info("%s %s %s", flow.request.method, flow.request.path, change.detail)
    flow.metadata[NOTES] = TurnNotes(changes=stored([change]))


def error_response(error_type: str, message: str, status: int | None = None, **headers: str) -> http.Response:
    """An Anthropic error answer; `status` when it is not the type's own (Anthropic's)."""
    return http.Response.make(
        status or STATUS_BY_TYPE[error_type],
        error_body(error_type, message),
        {"content-type": "application/json", **headers},
    )


def unavailable_response(message: str) -> http.Response:
    """503 overloaded_error with Retry-After: what Claude Code retries about once a second."""
    return error_response("overloaded_error", message, 503, **{"retry-after": str(RETRY_AFTER_SECONDS)})
