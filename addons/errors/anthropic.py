"""Anthropic-shaped error bodies: the only error format Claude Code understands.

Claude Code retries 529/503 `overloaded_error` (honouring Retry-After), explains
`invalid_request_error` "prompt is too long: N tokens > M maximum" itself, and
shows anything else raw. Every error this bundle produces goes through here.
"""

import json
from typing import Any, TypeGuard

# The status Anthropic's API uses for each error type.
STATUS_BY_TYPE: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def error_payload(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}}


def error_body(error_type: str, message: str) -> bytes:
    return json.dumps(error_payload(error_type, message)).encode()


def is_anthropic_error(value: Any) -> TypeGuard[dict[str, Any]]:
    """True for `{"type": "error", "error": {"type": str, "message": str}}`."""
    return (
        isinstance(value, dict)
        and value.get("type") == "error"
        and isinstance(value.get("error"), dict)
        and isinstance(value["error"].get("type"), str)
        and isinstance(value["error"].get("message"), str)
    )


def prompt_too_long_message(tokens: int, maximum: int) -> str:
    """The exact wording that makes Claude Code offer /compact."""
    return f"prompt is too long: {tokens} tokens > {maximum} maximum"
