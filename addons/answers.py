"""The answers the addons give themselves, as mitmproxy responses in Anthropic's error shape.

Every addon that answers a request instead of LiteLLM (a missing key, a
malformed body, a method a path does not take, LiteLLM away, mitmproxy's own
failures) builds the response here; addons/anthropic_errors.py has the body and the
status of each error type, without mitmproxy.
"""

from mitmproxy import http

from addons.anthropic_errors import STATUS_BY_TYPE, error_body

RETRY_AFTER_SECONDS = 1


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
