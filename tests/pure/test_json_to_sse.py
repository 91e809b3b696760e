"""A whole JSON message as the event stream Anthropic would have sent (addons/response/json_to_sse.py)."""

import json

from hypothesis import given
from hypothesis import strategies as st

from addons.response.json_to_sse import message_to_sse_events
from addons.response.usage import fill_message_usage
from tests.pure.test_stream import ESTIMATE, NO_DEADLINE, SAFEGUARD_RESULTS, patch, sdk_final_message

BLOCKS = st.one_of(
    st.builds(lambda text: {"type": "text", "text": text}, st.text(max_size=40)),
    st.builds(
        lambda index, command: {"type": "tool_use", "id": f"toolu_{index}", "name": "Bash", "input": {"command": command}},
        st.integers(0, 99), st.text(max_size=30),
    ),
    st.builds(
        lambda thinking, signature: {"type": "thinking", "thinking": thinking, "signature": signature},
        st.text(max_size=30), st.text("abcdef0123456789", min_size=1, max_size=16),
    ),
)  # fmt: skip


@NO_DEADLINE
@given(st.lists(BLOCKS, max_size=4), st.sampled_from(["end_turn", "tool_use", "max_tokens"]), st.integers(0, 10**6))
def test_json_message_becomes_the_stream_the_sdk_reassembles(blocks, stop_reason, input_tokens):
    message = {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "demo", "content": blocks,
        "stop_reason": stop_reason, "stop_sequence": None, "usage": {"input_tokens": input_tokens, "output_tokens": 0},
    }  # fmt: skip
    fill_message_usage(message, ESTIMATE)
    sse = message_to_sse_events(message)
    assembled = sdk_final_message(sse)
    assert [block.model_dump(exclude_none=True) for block in assembled.content] == blocks
    assert assembled.stop_reason == stop_reason
    assert assembled.usage.input_tokens == (input_tokens or ESTIMATE)
    assert assembled.usage.output_tokens == message["usage"]["output_tokens"]
    assert patch([sse])[0] == sse  # a complete, well-formed stream: nothing to patch


def test_a_json_messages_verdicts_come_with_the_stop_in_the_stream():
    message = {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "demo",
        "content": [{"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls | wc -l"}}],
        "stop_reason": "tool_use", "stop_sequence": None, "usage": {"input_tokens": 5, "output_tokens": 3},
        "safeguard_results": SAFEGUARD_RESULTS,
    }  # fmt: skip
    events = [
        json.loads(line[6:]) for line in message_to_sse_events(message).split(b"\n") if line.startswith(b"data: ")
    ]
    assert "safeguard_results" not in events[0]["message"]
    delta = next(event for event in events if event["type"] == "message_delta")
    assert delta["delta"]["safeguard_results"] == SAFEGUARD_RESULTS
