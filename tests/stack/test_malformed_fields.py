"""Malformed but plausible fields (issue 19, item 6) through the real stack: answered at once
with Anthropic's 400 naming the field, LiteLLM never reached; a system message's text reaches
the backend. The checks themselves: tests/pure/test_validation.py."""

import json

import pytest

from tests.procs import post_json
from tests.pure.test_shaping import system
from tests.pure.test_validation import HELLO

MALFORMED = {
    "tool_choice without type": ({"tool_choice": {"disable_parallel_tool_use": True}}, "tool_choice.type"),
    "max_tokens a numeric string": ({"max_tokens": "100000"}, "max_tokens: Input should be a valid integer"),
    "system message content a number": ({"messages": [*HELLO, system(7)]}, "messages.1.content"),
}


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_field_gets_an_anthropic_400_at_once(stack, fresh_backend, master_key, name):
    fields, named = MALFORMED[name]
    valid = {"model": "deepseek-flash", "max_tokens": 32, "messages": HELLO}
    status, _, body = post_json(stack.url + "/v1/messages", {**valid, **fields}, {"x-api-key": master_key})
    answer = json.loads(body)
    assert status == 400 and answer["type"] == "error", body[:500]
    # The stack's own words: no backend refused it.
    assert answer["error"]["type"] == "invalid_request_error" and answer["error"]["message"].startswith(named)
    assert fresh_backend.requests == []  # answered by the proxy: LiteLLM never saw it, so never retried it
    status, _, body = post_json(stack.url + "/v1/messages", valid, {"x-api-key": master_key})
    assert status == 200, body[:500]


def test_system_message_content_object_reaches_the_backend(stack, fresh_backend, master_key):
    messages = [*HELLO, {"role": "system", "content": {"type": "text", "text": "answer in French"}}]
    request = {"model": "deepseek-flash", "max_tokens": 32, "messages": messages}
    status, _, body = post_json(stack.url + "/v1/messages", request, {"x-api-key": master_key})
    assert status == 200, body[:500]
    assert "answer in French" in json.dumps(fresh_backend.requests[-1]["messages"])
