"""The token estimate (addons/messages/tokens.py): text counted with cl100k, each block kind by what
reaches the backend, old messages never counted again, a bounded cache that keeps no text.
"""

import json
from pathlib import Path

import pytest

from addons.messages import tokens
from addons.messages.tokens import (
    BLOCK_OVERHEAD,
    IMAGE_TOKENS,
    MESSAGE_OVERHEAD,
    REQUEST_OVERHEAD,
    count_content,
    count_message,
    count_text,
    estimate_message,
    estimate_request,
)

REQUEST = json.loads((Path(__file__).parent.parent / "data" / "claude_code_tool_roundtrip_request.json").read_text())


@pytest.fixture
def tokenizer_calls(monkeypatch):
    """Records every text the tokenizer is asked to count."""
    calls: list[str] = []
    real = tokens.count_text

    def counting(text: str) -> int:
        calls.append(text)
        return real(text)

    monkeypatch.setattr(tokens, "count_text", counting)
    tokens._cache.clear()
    return calls


def test_text_is_counted_with_cl100k():
    assert count_text("hello world") == 2
    assert count_content([{"type": "text", "text": "hello world"}]) == BLOCK_OVERHEAD + 2


def test_each_block_kind_counts_what_reaches_the_backend():
    command = {"command": "ls -la " + "x" * 400}
    tool_use = {"type": "tool_use", "id": "t1", "name": "Bash", "input": command}
    input_json = json.dumps(command, separators=(",", ":"))
    assert count_content([tool_use]) == BLOCK_OVERHEAD + count_text("Bash") + count_text(input_json)
    result = {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "done " * 50}]}
    assert count_content([result]) == 2 * BLOCK_OVERHEAD + count_text("done " * 50)
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "A" * 100_000}}
    assert count_content([image]) == BLOCK_OVERHEAD + IMAGE_TOKENS
    assert count_content("plain string") == count_text("plain string")


def test_request_estimate_includes_system_tools_and_messages():
    system_only = estimate_request({"system": REQUEST["system"], "messages": []})
    tools_only = estimate_request({"tools": REQUEST["tools"], "messages": []})
    messages = sum(count_message(message) for message in REQUEST["messages"])
    assert system_only > 1000 and tools_only > 10_000  # the real Claude Code prompt and its 24 tools
    assert estimate_request(REQUEST) == system_only + tools_only - REQUEST_OVERHEAD + messages


def test_message_estimate_lists_tool_ids():
    assistant, user = REQUEST["messages"][-2:]
    assert estimate_message(assistant).tool_use_ids == ("toolu_01",)
    assert estimate_message(user).answered_ids == ("toolu_01",)
    assert estimate_message(user).tokens == MESSAGE_OVERHEAD + count_content(user["content"])


def test_old_messages_are_not_recounted(tokenizer_calls):
    history = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i} " * 20} for i in range(50)]
    first = estimate_request({"messages": history})
    assert len(tokenizer_calls) == 50

    tokenizer_calls.clear()
    new_turn = [{"role": "assistant", "content": "new"}, {"role": "user", "content": "newer"}]
    grown = json.loads(json.dumps(history)) + new_turn
    second = estimate_request({"messages": grown})
    assert tokenizer_calls == ["new", "newer"]  # a re-parsed copy hits the cache
    assert second == first + count_message(grown[-2]) + count_message(grown[-1])


def test_cache_is_bounded_and_keeps_no_text():
    cache = tokens._EstimateCache(max_entries=3)
    for i in range(5):
        cache.get("message", {"content": "x" * 10_000 + str(i)}, lambda value: 1)
    assert len(cache._estimates) == 3
    assert all(isinstance(part, (int, str)) and len(str(part)) < 30 for key in cache._estimates for part in key)
