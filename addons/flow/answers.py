"""The answers the addons give themselves, as mitmproxy responses in Anthropic's error shape.

Every addon that answers a request instead of LiteLLM (a missing key, a
malformed body, a method a path does not take, LiteLLM away, mitmproxy's own
failures) builds the response here, and gives it with `answer`;
addons/errors/anthropic.py has the body and the status of each error type,
without mitmproxy.
"""

from mitmproxy import http

from addons.errors.anthropic import STATUS_BY_TYPE, error_body
from addons.flow.notes import ANSWERED_HERE

RETRY_AFTER_SECONDS = 1


def answer(flow: http.HTTPFlow, response: http.Response) -> None:
    """Answer the request here, instead of LiteLLM: marked, so that ResponsePatcher does not
    take the answer for a backend's refusal to explain, nor the stabilizer view for LiteLLM's."""
    flow.response = response
    flow.metadata[ANSWERED_HERE] = True


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
