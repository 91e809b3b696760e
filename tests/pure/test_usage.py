"""Usage filled in (addons/response/usage.py): estimates for what the backend did not report,
and LiteLLM's stand-in input count told from the backend's."""

import json

import pytest

from addons.flow.change import ChangeKind
from addons.messages.tokens import count_text
from addons.response.usage import MIN_FIXED_TOKENS, fill_message_usage, fill_thinking_signatures, is_substitute_input
from tests.pure.test_stream import ESTIMATE, STREAMS


def test_json_message_without_usage_gets_estimates():
    message = json.loads((STREAMS / "litellm-text-no-usage.json").read_bytes())
    changes = fill_message_usage(message, ESTIMATE)
    assert message["usage"] == {
        "input_tokens": ESTIMATE, "output_tokens": count_text("Plain JSON, no usage."),
        "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
    }  # fmt: skip
    assert changes and changes[0].detail.startswith("message: filled usage input_tokens=")
    assert changes[0].kind is ChangeKind.USAGE_FILLED


def test_json_message_real_usage_is_kept():
    message = json.loads((STREAMS / "litellm-demo-mock.json").read_bytes())
    fill_message_usage(message, ESTIMATE)
    assert (message["usage"]["input_tokens"], message["usage"]["output_tokens"]) == (2095, 503)


# --- LiteLLM's stand-in input count --------------------------------------------------------
# When the backend reports no usage, LiteLLM counts the messages alone (no system prompt, no
# tools): 12 for a request the backend counts as 328 (tests/data/streams, measured). The
# request addon's estimate is 4321 here, of which 3000 are the system prompt and the tools.


@pytest.mark.parametrize(
    "usage, substitute",
    [
        ({"input_tokens": 1100}, True),  # the messages alone: far below the whole
        ({"input_tokens": 2700}, True),  # below the middle between messages-only and whole
        ({"input_tokens": 2900}, False),  # above it: the backend's own, a tokenizer smaller than ours
        ({"input_tokens": 4700}, False),
        ({"input_tokens": 300, "cache_read_input_tokens": 4000}, False),  # mostly read from the cache
        ({"input_tokens": 0}, False),  # not reported at all: filled, not "replaced"
        ({}, False),
    ],
)
def test_a_substitute_input_count_is_told_from_the_backends(usage, substitute):
    assert is_substitute_input(usage, ESTIMATE, 3000) is substitute


def test_without_a_fixed_part_a_small_real_count_survives():
    # A bare request (no system prompt, no tools): nothing tells the two apart, and no need.
    assert not is_substitute_input({"input_tokens": 12}, 15, 0)
    assert not is_substitute_input({"input_tokens": 12}, 15, 3)
    assert not is_substitute_input({"input_tokens": 40}, 200, MIN_FIXED_TOKENS - 1)
    assert is_substitute_input({"input_tokens": 40}, 200, MIN_FIXED_TOKENS)


def test_a_json_message_with_a_substitute_count_gets_the_estimate():
    message = {
        "type": "message",
        "content": [{"type": "text", "text": "hi"}],
        "usage": {"input_tokens": 12, "output_tokens": 1},
    }
    changes = fill_message_usage(message, ESTIMATE, 3000)
    assert message["usage"]["input_tokens"] == ESTIMATE and message["usage"]["output_tokens"] == 1
    assert changes[0].detail.startswith(
        f"message: filled usage input_tokens={ESTIMATE} for LiteLLM's count of the messages alone (12)"
    )


def test_a_null_thinking_signature_becomes_the_empty_string():
    # What LiteLLM 1.108.7 wrote for a Chat Completions backend's reasoning (1.108.14 writes ""
    # itself; a team's LiteLLM behind --upstream may be older). Anthropic's schema wants a string.
    message = {
        "content": [
            {"type": "thinking", "thinking": "a", "signature": None},
            {"type": "thinking", "thinking": "b", "signature": "sig"},
            {"type": "text", "text": "c"},
        ]
    }
    changes = fill_thinking_signatures(message)
    assert [block.get("signature") for block in message["content"]] == ["", "sig", None]
    assert [change.detail for change in changes] == ["thinking signature set to empty x1"]
    assert fill_thinking_signatures(message) == []


def test_trimmed_tokens_are_added_to_a_messages_input_count():
    message = json.loads((STREAMS / "litellm-demo-mock.json").read_bytes())
    changes = fill_message_usage(message, ESTIMATE, trimmed_tokens=5000)
    assert message["usage"]["input_tokens"] == 2095 + 5000
    assert changes[-1].detail.endswith("input_tokens+5000 trimmed from the request")
