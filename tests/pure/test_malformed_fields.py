"""Malformed but plausible fields (issue 19, item 6): answered at once with Anthropic's 400
naming the field, not a 500 after LiteLLM's retries (which Claude Code retries ten times);
a system message's text is folded or the request refused, never dropped."""

import json

import pytest

from addons.config.policy import ModelPolicy
from addons.request.shaping import shape_request
from addons.request.validation import request_problem
from tests.procs import post_json
from tests.pure.test_shaping import reminder, system, text, user

HELLO = [user(text("hello"))]


def problem_of(**fields) -> str | None:
    """The 400 message for a request with `fields`, as the request addon finds it (after shaping)."""
    return request_problem(shape_request({"model": "m", "messages": HELLO, **fields}, ModelPolicy()).request)


@pytest.mark.parametrize("choice", [{"disable_parallel_tool_use": True}, {}, {"type": "sometimes"}, {"type": None}])
def test_tool_choice_without_a_known_type_is_refused(choice):
    assert problem_of(tool_choice=choice).startswith('tool_choice.type: expected "auto", "any", "tool" or "none"')


def test_tool_choice_of_a_tool_needs_its_name():
    assert problem_of(tool_choice={"type": "tool"}).startswith("tool_choice.name:")
    assert problem_of(tool_choice={"type": "tool", "name": "Read"}) is None


@pytest.mark.parametrize("choice", ["auto", "any", "none"])
def test_tool_choice_with_its_options_passes(choice):
    assert problem_of(tool_choice={"type": choice, "disable_parallel_tool_use": True}) is None


@pytest.mark.parametrize("value", ["8192", "lots", 1.5, True, [1], {"n": 1}])
def test_max_tokens_that_is_not_an_integer_is_refused(value):
    assert problem_of(max_tokens=value).startswith("max_tokens: Input should be a valid integer")


def test_max_tokens_integer_passes_and_is_capped():
    assert problem_of(max_tokens=10**6) is None
    assert shape_request({"messages": HELLO, "max_tokens": 10**6}, ModelPolicy()).request["max_tokens"] == 32000


@pytest.mark.parametrize(
    "content",
    [{"type": "text", "text": "be brief"}, {"text": "be brief"}, [{"type": "text", "text": "be brief"}], "be brief"],
)
def test_system_message_with_text_is_folded_whatever_holds_it(content):
    shaped = shape_request({"messages": [*HELLO, {"role": "system", "content": content}]}, ModelPolicy())
    assert shaped.request["messages"] == [user(text("hello"), reminder("be brief"))]
    assert request_problem(shaped.request) is None


@pytest.mark.parametrize("content", [{"type": "image", "source": {}}, 5, None, [text("a"), {"type": "image"}]])
def test_system_message_without_text_is_refused_not_dropped(content):
    request = {"messages": [*HELLO, system(content)]}
    shaped = shape_request(request, ModelPolicy())
    assert shaped.request["messages"][-1] == system(content)  # kept, for validation to refuse
    assert request_problem(shaped.request).startswith(
        "messages.1.content: a system message's content must be text (a string or text blocks), not "
    )


def test_empty_system_message_has_nothing_to_fold():
    shaped = shape_request({"messages": [*HELLO, system(""), system([])]}, ModelPolicy())
    assert shaped.request["messages"] == HELLO and request_problem(shaped.request) is None


# --- through the real stack -----------------------------------------------------------------

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
