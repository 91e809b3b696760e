"""addons/errors/anthropic.py: error bodies in the shape, with the status and the words, Anthropic's API uses.

Where the bundle's errors come from, each made with these: tests/pure/test_upstream_errors.py
(a backend's or LiteLLM's error reshaped), tests/addons/test_answers.py (an addon's own answer).
"""

import json

import pytest

from addons.errors.anthropic import (
    STATUS_BY_TYPE,
    error_body,
    error_payload,
    is_anthropic_error,
    prompt_too_long_message,
)

# The listing of https://platform.claude.com/docs/en/api/errors, "HTTP errors" (read 2026-12-06).
ERRORS_PAGE = """
400 - invalid_request_error
401 - authentication_error
402 - billing_error
403 - permission_error
404 - not_found_error
409 - conflict_error
413 - request_too_large
429 - rate_limit_error
500 - api_error
504 - timeout_error
529 - overloaded_error
"""
ANTHROPIC_STATUSES = {
    kind: int(status) for status, _, kind in (line.split() for line in ERRORS_PAGE.split("\n") if line)
}
# Types the bundle never answers with.
NOT_ANSWERED_HERE = {"billing_error", "conflict_error"}

# A context overflow as Anthropic's API answered it (claude-opus-4-5), quoted in
# earendil-works/pi#102 (read 2026-12-06): Claude Code offers /compact on these words.
ANTHROPIC_CONTEXT_ERROR = (
    b'{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 219898 tokens > '
    b'200000 maximum"},"request_id":"req_011CVjxiYzEFcAQC4Fk87zw2"}'
)


def test_each_error_type_has_anthropics_status():
    assert STATUS_BY_TYPE.items() <= ANTHROPIC_STATUSES.items()
    assert set(ANTHROPIC_STATUSES) - set(STATUS_BY_TYPE) == NOT_ANSWERED_HERE


def test_the_context_error_is_worded_as_anthropics():
    anthropic = json.loads(ANTHROPIC_CONTEXT_ERROR)
    ours = json.loads(error_body("invalid_request_error", prompt_too_long_message(219898, 200000)))
    assert ours == {key: anthropic[key] for key in ("type", "error")}
    assert is_anthropic_error(anthropic) and is_anthropic_error(ours)


@pytest.mark.parametrize("error_type", sorted(STATUS_BY_TYPE))
def test_every_body_made_here_is_an_anthropic_error(error_type):
    message = 'quotes " and \\ and ünïcode'
    body = json.loads(error_body(error_type, message))
    assert body == error_payload(error_type, message)
    assert is_anthropic_error(body) and body["error"] == {"type": error_type, "message": message}


@pytest.mark.parametrize(
    "value",
    [
        None,
        "error",
        [{"type": "error"}],
        {"type": "error"},
        {"type": "error", "error": "overloaded"},
        {"type": "error", "error": {"type": "api_error"}},
        {"type": "error", "error": {"message": "x"}},
        {"type": "error", "error": {"type": 500, "message": "x"}},
        {"type": "error", "error": {"type": "api_error", "message": None}},
        {"type": "message", "error": {"type": "api_error", "message": "x"}},
        {"error": {"message": "x", "type": "invalid_request_error", "code": 400}},  # OpenAI's shape
        {"detail": "Internal Server Error"},  # LiteLLM's own
    ],
)
def test_anything_short_of_the_shape_is_not_an_anthropic_error(value):
    assert not is_anthropic_error(value)
