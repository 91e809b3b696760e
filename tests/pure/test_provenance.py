"""Where a thinking block came from (addons/messages/provenance.py), and what each target gets of it
(addons/request/thinking.py: returned_thinking): the signature Claude Code keeps names the model."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from addons.config.policy import DEFAULT_ACCEPTED_KEYS, ModelPolicy, ThinkingPolicy
from addons.config.routes import ANTHROPIC
from addons.flow.change import ChangeKind
from addons.messages.provenance import unwrap, wrap, wrap_message
from addons.request.shaping import shape_request
from addons.request.thinking import provenance_for, returned_thinking
from addons.response.json_to_sse import message_to_sse_events
from addons.response.stream import StreamPatcher
from tests.pure.test_stream import NO_DEADLINE, chunked, sdk_final_message


@given(st.text(), st.text())
def test_an_origin_and_a_signature_come_out_as_they_went_in(origin, signature):
    assert unwrap(wrap(signature, origin)) == (origin, signature)


@pytest.mark.parametrize("signature", ["", "EqQBCkgIARABGAIiQL", None, 7, "stz1", "stz1:no-separator"])
def test_a_signature_the_stack_did_not_wrap_has_no_origin(signature):
    assert unwrap(signature) == (None, signature)


def answer(signature: str | None) -> dict:
    thinking = {"type": "thinking", "thinking": "Compare the tenths.", "signature": signature}
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": [thinking, {"type": "text", "text": "9.8"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 3},
    }


@NO_DEADLINE
@given(st.sampled_from(["3b9e1e1c-uuid", ""]), st.lists(st.integers(0, 5000), max_size=6))
def test_claude_code_receives_the_signature_wrapped_with_its_origin(signature, cuts):
    stream = message_to_sse_events(answer(signature))
    patcher = StreamPatcher(origin="deepseek-flash")
    patched = b"".join(patcher.feed(chunk) for chunk in chunked(stream, cuts)) + patcher.finish()
    (thinking, _) = sdk_final_message(patched).content
    assert thinking.signature == wrap(signature, "deepseek-flash")
    assert unwrap(thinking.signature) == ("deepseek-flash", signature)


def test_a_stream_without_an_origin_keeps_its_signatures():
    stream = message_to_sse_events(answer("sig"))
    patcher = StreamPatcher()
    assert sdk_final_message(patcher.feed(stream) + patcher.finish()).content[0].signature == "sig"


def test_a_json_answer_is_wrapped_once():
    message = answer("sig")
    assert wrap_message(message, "kimi-k2.6") == 1 and wrap_message(message, "kimi-k2.6") == 0
    assert message["content"][0]["signature"] == "stz1:kimi-k2.6:sig"


THOUGHT = "I should read it."


def block(signature) -> dict:
    return {"type": "thinking", "thinking": THOUGHT, "signature": signature}


DEEPSEEK = provenance_for(ThinkingPolicy(), "deepseek-flash")
CLAUDE = provenance_for(ThinkingPolicy(), "claude-sonnet-4-6")
CLAUDE_AS_TEXT = provenance_for(ThinkingPolicy(other_models_thinking="text"), "claude-sonnet-4-6")


@pytest.mark.parametrize(
    "provenance, sent, expected, done",
    [
        # The same model: exactly as it came, signature included.
        (DEEPSEEK, block(wrap("uuid-1", "deepseek-flash")), block("uuid-1"), "unwrapped"),
        (CLAUDE, block(wrap("claude-sig", "claude-sonnet-4-6")), block("claude-sig"), "unwrapped"),
        # Another model's, to a target that does not verify: its writer's own signature.
        (DEEPSEEK, block(wrap("claude-sig", "claude-sonnet-4-6")), block("claude-sig"), "unwrapped"),
        (DEEPSEEK, block(wrap("", "kimi-k2.6")), block(""), "unwrapped"),
        # Another model's, to a target that verifies: dropped, or text by the policy.
        (CLAUDE, block(wrap("uuid-1", "deepseek-flash")), None, "dropped"),
        (
            CLAUDE_AS_TEXT,
            block(wrap("uuid-1", "deepseek-flash")),
            {"type": "text", "text": f"[thinking of deepseek-flash]\n{THOUGHT}"},
            "as text",
        ),
        # Never through the stack: as it is, except to a target that verifies (nothing says it is its own).
        (DEEPSEEK, block("uuid-1"), block("uuid-1"), ""),
        (DEEPSEEK, block(""), block(""), ""),
        (CLAUDE, block("uuid-1"), None, "dropped"),
        (CLAUDE, block(""), None, "dropped"),
    ],
)
def test_each_target_gets_what_it_takes(provenance, sent, expected, done):
    assert returned_thinking(sent, provenance) == (expected, done)


def test_verifying_is_the_policys_word_else_anthropics_models():
    assert not DEEPSEEK.verifies and CLAUDE.verifies
    assert provenance_for(ThinkingPolicy(verifies_signatures=True), "my-gateway-model").verifies
    assert not provenance_for(ThinkingPolicy(verifies_signatures=False), "claude-local-copy").verifies
    assert provenance_for(None, "qwen3-coder-plus") is None


CALL = {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Read", "input": {}}]}
RESULT = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "A"}]}
THINKING_KEPT = ModelPolicy(accepted_keys=DEFAULT_ACCEPTED_KEYS | {"thinking"})


@pytest.mark.parametrize(
    "messages, target, thinks",
    [
        # Another model's call, its thinking dropped for Claude: Claude refuses it with thinking on.
        ([{"role": "user", "content": "read a"}, CALL, RESULT], "claude-sonnet-4-6", False),
        # Claude's own call, its thinking first: thinking stays.
        (
            [{"role": "user", "content": "read a"}, {**CALL, "content": [block(wrap("s", "claude-sonnet-4-6")), *CALL["content"]]}, RESULT],
            "claude-sonnet-4-6",
            True,
        ),
        # A new prompt after another model's call: nothing is being answered.
        ([{"role": "user", "content": "read a"}, CALL, RESULT, {"role": "assistant", "content": "A."}, {"role": "user", "content": "b?"}], "claude-sonnet-4-6", True),
        # A backend that does not check signatures takes any turn.
        ([{"role": "user", "content": "read a"}, CALL, RESULT], "deepseek-flash", True),
    ],
)  # fmt: skip
def test_claude_answers_another_models_tool_call_without_thinking(messages, target, thinks):
    request = {"model": "m", "max_tokens": 100, "thinking": {"type": "adaptive"}, "messages": messages}
    shaped = shape_request(request, THINKING_KEPT, route=ANTHROPIC, target=target)
    assert ("thinking" in shaped.request) is thinks
    off = [change for change in shaped.changes if change.detail.startswith("thinking off for this turn")]
    assert [change.kind for change in off] == ([] if thinks else [ChangeKind.THINKING])
