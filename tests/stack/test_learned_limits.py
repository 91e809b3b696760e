"""Limits learned from the backend, through real mitmdump and LiteLLM.

A model without a policy entry of its own (plain-model) gets the default
max_output_tokens and context_window. The stand-in takes less and says so in
its provider's words; the request is sent again once, within the stated limit,
and later requests keep to it.
"""

import json
import subprocess
import sys

import pytest

from tests.backend import Text
from tests.backend.provider import openai_error
from tests.conftest import POLICY
from tests.procs import post_json


def ask(url: str, key: str, model: str, messages: list, max_tokens: int, stream: bool = False) -> tuple[int, bytes]:
    status, _, raw = post_json(
        url + "/v1/messages",
        {"model": model, "max_tokens": max_tokens, "messages": messages, "stream": stream},
        {"authorization": f"Bearer {key}", "anthropic-version": "2023-06-01"},
    )
    return status, raw


def sent(backend, key: str) -> list:
    return [exchange.body.get(key) for exchange in backend.exchanges if exchange.method == "POST"]


def answered_text(raw: bytes, stream: bool) -> str:
    if not stream:
        return json.loads(raw)["content"][0]["text"]
    events = [json.loads(line[5:]) for line in raw.decode().splitlines() if line.startswith("data:")]
    return "".join(event["delta"].get("text", "") for event in events if event["type"] == "content_block_delta")


def hi() -> list:
    return [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    "model, stream",
    [
        ("plain-model", False),  # OpenAI's words: "This model supports at most 8192 completion tokens"
        ("deepseek-flash", True),  # DeepSeek's: "the valid range of max_tokens is [1, 8192]"
    ],
)
def test_a_max_tokens_range_is_learned_and_the_request_sent_again(own_proxy, fresh_backend, master_key, model, stream):
    fresh_backend.responder = lambda body: Text("Within the range.")
    with fresh_backend.quirks(max_tokens_limit=8192):
        status, raw = ask(own_proxy.url, master_key, model, hi(), 32000, stream)
        assert status == 200, raw
        assert answered_text(raw, stream) == "Within the range."
        assert sent(fresh_backend, "max_tokens") == [32000, 8192]
        # The next request keeps to it at once.
        assert ask(own_proxy.url, master_key, model, hi(), 32000, stream)[0] == 200
        assert sent(fresh_backend, "max_tokens") == [32000, 8192, 8192]
    output = open(own_proxy.log.name, errors="replace").read()
    assert f"add to {POLICY}: models: {{{model}: {{max_output_tokens: 8192}}}}" in output


def test_a_context_window_stated_in_a_refusal_is_learned_and_the_request_trimmed(own_proxy, fresh_backend, master_key):
    # About 30 000 tokens of history, for a backend that holds 20 000 (the policy's default: 131 072).
    history = []
    for turn in range(30):
        history += [
            {"role": "user", "content": f"part {turn}: " + "lorem ipsum " * 500},
            {"role": "assistant", "content": f"noted {turn}"},
        ]
    history.append({"role": "user", "content": "and the last question?"})
    fresh_backend.responder = lambda body: Text("Fits now.")
    with fresh_backend.quirks(context_window=20000):
        status, raw = ask(own_proxy.url, master_key, "plain-model", history, 1024)
        assert status == 200, raw
        assert answered_text(raw, False) == "Fits now."
    first, second = sent(fresh_backend, "messages")
    assert len(second) < len(first)
    assert second[-1]["content"] == "and the last question?"
    assert "add to" in open(own_proxy.log.name, errors="replace").read()


@pytest.mark.parametrize(
    "refusal",
    [
        # Another reason: an unknown key.
        openai_error("Unrecognized request argument supplied: top_k"),
        # A max_tokens range the request already kept: the backend refused something else.
        openai_error("max_tokens is too large: 9. This model supports at most 8192 completion tokens"),
    ],
)
def test_nothing_else_is_sent_again(own_proxy, fresh_backend, master_key, refusal):
    fresh_backend.script([refusal])
    status, _ = ask(own_proxy.url, master_key, "plain-model", hi(), 100)
    assert status == 400
    assert sent(fresh_backend, "max_tokens") == [100]


def test_the_addons_load_without_httpx():
    # The request sent again goes with httpx, which brings click, rich and pygments: loaded then, not at start.
    probe = "import sys, addons.stabilizer_addons; print(sorted({'httpx', 'click', 'rich'} & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
