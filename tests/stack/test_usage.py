"""Usage truth: what Claude Code counts is what the backend holds, however the backend reports it.

The official SDK sends the recorded Claude Code requests (the 76 KB first request
and the tool round trip) through the real LiteLLM and mitmdump to the stand-in,
streamed and not, for each way a backend reports usage: its own counts, null,
nothing, zeros, or counts with a prompt-cache hit. The input figure the client
ends with (input + cache read + cache creation, as Anthropic splits it) is
compared with what the stand-in counted of what it received.
"""

import json

import anthropic
import pytest

from addons.messages.tokens import count_text
from tests import workload
from tests.backend import Text, request_tokens

# Usage modes of the stand-in: the `usage` quirk, and the share of the prompt read from its cache.
MODES = {
    "real": ("real", 0.0),
    "null": ("null", 0.0),
    "absent": ("absent", 0.0),
    "zero": ("zero", 0.0),
    "cached": ("real", 0.8),
}
REQUESTS = {"first request": workload.recorded, "tool round trip": workload.roundtrip}
TOLERANCE = 0.10


def input_figure(usage) -> int:
    return usage.input_tokens + (usage.cache_read_input_tokens or 0) + (usage.cache_creation_input_tokens or 0)


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
@pytest.mark.parametrize("recorded", REQUESTS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("model", ["deepseek-flash", "qwen-plus"])
def test_the_input_count_is_within_ten_percent_of_the_backends(
    anthropic_client, fresh_backend, model, mode, recorded, stream
):
    usage, cached_share = MODES[mode]
    # Claude Code's body as it is: its own fields (thinking, context_management, ...) ride in extra_body.
    recorded_body = {key: value for key, value in REQUESTS[recorded]().items() if key != "stream"}
    request = {
        "model": model,
        "max_tokens": recorded_body.pop("max_tokens"),
        "messages": recorded_body.pop("messages"),
        "extra_body": {key: value for key, value in recorded_body.items() if key != "model"},
    }
    fresh_backend.script([Text("Hello.", reasoning="A greeting will do.")])
    with fresh_backend.quirks(usage=usage, cached_share=cached_share):
        if stream:
            with anthropic_client.messages.stream(**request) as events:
                message = events.get_final_message()
        else:
            message = anthropic_client.messages.create(**request)

    (received,) = fresh_backend.requests
    truth = request_tokens(received)
    assert abs(input_figure(message.usage) - truth) <= TOLERANCE * truth, (message.usage, truth)
    if mode == "cached":
        # As Anthropic reports a cache hit: the part read from the cache, and the uncached rest.
        assert message.usage.cache_read_input_tokens == int(truth * cached_share)
        assert message.usage.input_tokens == truth - int(truth * cached_share)
    if model.startswith("deepseek"):
        # Output counts the reasoning the model streamed, whoever counted it.
        assert message.content[0].type == "thinking"
        assert message.usage.output_tokens >= count_text("A greeting will do.") + count_text("Hello.")


def test_without_the_stabilizer_the_count_is_litellms_stand_in(litellm, fresh_backend, master_key):
    # The side that must fail: straight to LiteLLM, a backend without usage gets a count of
    # the messages alone, a fraction of what the backend holds.
    client = anthropic.Anthropic(base_url=litellm.url, api_key=master_key, max_retries=0, timeout=60)
    request = {
        k: v
        for k, v in {**workload.recorded(), "model": "deepseek-flash"}.items()
        if k in ("model", "max_tokens", "messages", "system", "tools")
    }
    fresh_backend.script([Text("Hello.")])
    with fresh_backend.quirks(usage="null"):
        with client.messages.stream(**request) as events:
            message = events.get_final_message()
    truth = request_tokens(fresh_backend.requests[0])
    assert input_figure(message.usage) < truth / 4, json.dumps(message.usage.model_dump())


def test_a_zero_input_count_in_message_start_is_filled_in(anthropic_client, fresh_backend):
    # Z.ai's Anthropic-compatible route reports 0 input tokens in message_start and the real
    # count only in the last message_delta (zai-org/GLM-5#139): Claude Code's context meter
    # reads message_start.
    fresh_backend.responder = lambda body: Text("Hello.")
    with anthropic_client.messages.stream(
        model="glm-5.3-flash-anthropic", max_tokens=1024, messages=[{"role": "user", "content": "word " * 3000}]
    ) as stream:
        events = list(stream)
    start = next(event for event in events if event.type == "message_start")
    received = fresh_backend.messages_requests[-1]
    sent = count_text("word " * 3000)
    assert received["model"] == "glm-5.3-flash"
    assert abs(start.message.usage.input_tokens - sent) <= TOLERANCE * sent, start.message.usage
