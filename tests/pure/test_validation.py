"""addons/request/validation.py: the shape a request must have, each problem named where it is.

Malformed but plausible fields (issue 19, item 6): answered at once with Anthropic's 400
naming the field, not a 500 after LiteLLM's retries (which Claude Code retries ten times);
a system message's text is folded or the request refused, never dropped. Through the real
stack: tests/stack/test_malformed_fields.py."""

import pytest

from addons.config.policy import ModelPolicy
from addons.messages.memo import Memo
from addons.request.shaping import shape_request
from addons.request.validation import request_problem
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


@pytest.mark.parametrize(
    "body, expected",
    [
        ({"messages": []}, "messages: expected a non-empty list of messages"),
        ({"messages": "hello"}, "messages: expected a non-empty list of messages"),
        ({"messages": [*HELLO, 5]}, "messages.1: expected a message object with role and content"),
        (
            {"messages": [{"role": "tool", "content": "x"}]},
            'messages.0.role: expected "user" or "assistant", not \'tool\'',
        ),
        ({"messages": [{"role": "user", "content": {"text": "x"}}]}, "messages.0.content: expected a string or a list"),
        ({"messages": [user(text("a"), 7)]}, "messages.0.content.1: expected a content block"),
        ({"messages": [user({"type": "text", "text": 5})]}, "messages.0.content.0.text: expected a string"),
        ({"messages": HELLO, "system": [{"text": "be brief"}]}, "system.0: expected a content block"),
        ({"messages": HELLO, "tools": {"name": "Read"}}, "tools: expected a list of tool definitions"),
        ({"messages": HELLO, "tool_choice": ["auto"]}, "tool_choice: expected an object"),
        (
            {"messages": [{"role": "x" * 100, "content": "a"}]},
            f'messages.0.role: expected "user" or "assistant", not \'{"x" * 36}...',
        ),
    ],
)
def test_a_malformed_structure_is_named_where_it_is(body, expected):
    assert request_problem(body).startswith(expected)


def test_values_are_left_to_litellm_and_the_backend():
    body = {"model": 5, "messages": [user(text(""))], "max_tokens": -3, "system": "x", "metadata": [1]}
    assert request_problem(body) is None


def test_a_message_found_sound_is_not_checked_again():
    memo = Memo()
    message = user(text("a"))
    assert request_problem({"messages": [message]}, memo) is None
    message["content"] = 5  # the same object: the memo knows it as sound
    assert request_problem({"messages": [message]}, memo) is None
    assert request_problem({"messages": [message]}).startswith("messages.0.content: expected")
