"""The pure response patches: stream patcher, JSON usage, JSON -> events, errors.

Recorded streams live in tests/data/streams (`litellm-*` from the real LiteLLM
proxy, see record.py there; the others written by hand). The Anthropic SDK is
the client-side oracle: what it reads from the patched bytes is what Claude
Code reads.
"""

import json
from pathlib import Path

import anthropic
import httpx2
import pytest
from anthropic._streaming import SSEDecoder as SDKDecoder
from hypothesis import given, settings
from hypothesis import strategies as st

from addons.errors.anthropic import error_body, is_anthropic_error
from addons.errors.upstream import RefusalContext, explain_refusal, is_key_refusal, to_anthropic_error
from addons.flow.change import Change, ChangeKind
from addons.messages.tokens import count_text
from addons.response.json_to_sse import message_to_sse_events
from addons.response.stream import TRUNCATED_STREAM_MESSAGE, StreamPatcher
from addons.response.usage import MIN_FIXED_TOKENS, fill_message_usage, is_substitute_input

STREAMS = Path(__file__).parent.parent / "data" / "streams"
SSE_FILES = sorted(STREAMS.glob("*.sse"))
NOT_ANTHROPIC = {"not-sse.sse"}
ESTIMATE = 4321
# Hypothesis deadlines are timings: never asserted here.
NO_DEADLINE = settings(deadline=None)


def patch(chunks: list[bytes], estimate: int = ESTIMATE) -> tuple[bytes, StreamPatcher]:
    patcher = StreamPatcher(estimate)
    out = [patcher.feed(chunk) for chunk in chunks]
    return b"".join(out) + patcher.finish(), patcher


def patch_file(name: str, estimate: int = ESTIMATE) -> tuple[bytes, StreamPatcher]:
    return patch([(STREAMS / name).read_bytes()], estimate)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted({cut % (len(data) + 1) for cut in cuts}), len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


def sdk_events(data: bytes) -> list[tuple[str | None, str]]:
    return [(sse.event, sse.data) for sse in SDKDecoder().iter_bytes(iter([data]))]


def sdk_client(body: bytes, status: int = 200, content_type: str = "text/event-stream") -> anthropic.Anthropic:
    def handler(request):
        return httpx2.Response(status, headers={"content-type": content_type}, content=body)

    return anthropic.Anthropic(
        api_key="test", base_url="http://upstream.test", max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )  # fmt: skip


def sdk_final_message(sse: bytes) -> anthropic.types.Message:
    """The message Anthropic's SDK assembles from a stream, as Claude Code would."""
    messages = [{"role": "user", "content": "hi"}]
    with sdk_client(sse).messages.stream(model="m", max_tokens=10, messages=messages) as stream:
        return stream.get_final_message()


def text_of(message) -> str:
    return "".join(block.text for block in message.content if block.type == "text")


# --- the stream patcher over recorded streams ------------------------------------


@pytest.mark.parametrize("path", SSE_FILES, ids=lambda p: p.name)
@NO_DEADLINE
@given(cuts=st.lists(st.integers(min_value=0), max_size=40))
def test_any_chunking_patches_like_the_whole_body(path, cuts):
    body = path.read_bytes()
    assert patch(chunked(body, cuts))[0] == patch([body])[0]


@pytest.mark.parametrize("path", SSE_FILES, ids=lambda p: p.name)
def test_one_byte_at_a_time_patches_like_the_whole_body(path):
    body = path.read_bytes()
    assert patch([body[i : i + 1] for i in range(len(body))])[0] == patch([body])[0]


@pytest.mark.parametrize("path", [p for p in SSE_FILES if p.name not in NOT_ANTHROPIC], ids=lambda p: p.name)
def test_no_event_lost_reordered_or_duplicated_and_all_json(path):
    body = path.read_bytes()
    out, patcher = patch([body])
    before, after = sdk_events(body), sdk_events(out)
    # Unnamed events are named after their JSON type; a cut stream gets one error event more.
    expected = [(name or json.loads(data)["type"] if data.startswith("{") else name, data) for name, data in before]
    if not any(name in ("message_stop", "error") for name, _ in expected):
        expected.append(("error", None))
    assert [name for name, _ in after] == [name for name, _ in expected]
    for (name, data), (_, original) in zip(after, expected):
        if data == "[DONE]":
            continue
        payload = json.loads(data)  # every event is JSON
        assert payload["type"] == name
        if name not in ("message_start", "message_delta", "error"):
            assert data == original  # untouched events: byte for byte
        elif name == "message_start":
            assert {**payload["message"], "usage": None} == {**json.loads(original)["message"], "usage": None}
        elif name == "message_delta":
            assert payload["delta"] == json.loads(original)["delta"]


@pytest.mark.parametrize(
    "name, text",
    [
        ("usage-null.sse", "Hello there, friend."),
        ("usage-missing-zero.sse", "Zeros everywhere."),
        ("crlf-ping-comments.sse", "CRLF line ends."),
        ("cr-multiline-data.sse", "Lone CR."),
        ("data-only-done.sse", "No event lines."),
        ("litellm-text-zero-usage.sse", "Zero usage here."),
    ],
)
def test_missing_usage_is_filled_with_estimates(name, text):
    message = sdk_final_message(patch_file(name)[0])
    assert text_of(message) == text
    assert message.usage.input_tokens == ESTIMATE
    assert message.usage.output_tokens == count_text(text)
    assert message.usage.cache_creation_input_tokens == 0
    assert message.usage.cache_read_input_tokens == 0


def test_tool_input_counts_as_output():
    message = sdk_final_message(patch_file("usage-empty.sse")[0])
    assert message.content[0].input == {"file_path": "/etc/hosts"}
    assert message.usage.output_tokens == count_text('{"file_path": "/etc/hosts"}')
    assert message.usage.input_tokens == ESTIMATE


def test_litellm_zero_message_start_gets_the_estimate_and_real_figures_stay():
    out, patcher = patch_file("litellm-text-usage.sse")
    start = json.loads(sdk_events(out)[0][1])
    assert start["message"]["usage"] == {
        "input_tokens": ESTIMATE, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
    }  # fmt: skip
    message = sdk_final_message(out)
    # The backend's own figures: output counts the answer's 20 tokens and the reasoning's 13.
    assert (message.usage.input_tokens, message.usage.output_tokens) == (10, 33)
    assert message.content[0].type == "thinking"
    assert patcher.changes == [Change(ChangeKind.USAGE_FILLED, f"message_start: filled usage input_tokens={ESTIMATE}")]


def test_anthropic_stream_with_real_usage_passes_byte_for_byte():
    body = (STREAMS / "anthropic-real-usage.sse").read_bytes()
    out, patcher = patch([body])
    assert out == body
    assert patcher.changes == []


def test_message_delta_input_follows_a_real_message_start_figure():
    body = (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","type":"message","role":"assistant",'
        b'"model":"x","content":[],"stop_reason":null,"usage":{"input_tokens":900,"output_tokens":1}}}\n\n'
        b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"input_tokens":0,"output_tokens":3}}\n\n'
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    )
    usage = sdk_final_message(patch([body])[0]).usage
    assert (usage.input_tokens, usage.output_tokens) == (900, 3)


def test_rewritten_events_keep_crlf_line_ends():
    out, _ = patch_file("crlf-ping-comments.sse")
    assert b"\n" not in out.replace(b"\r\n", b"")


def test_truncated_stream_ends_with_an_overloaded_error_the_sdk_raises():
    out, patcher = patch_file("truncated-mid-event.sse")
    assert out.endswith(
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"'
        + TRUNCATED_STREAM_MESSAGE.encode() + b'"}}\n\n'
    )  # fmt: skip
    assert out.count(b"event: content_block_delta") == 1  # the half event was dropped
    with pytest.raises(anthropic.APIStatusError, match="overloaded_error"):
        sdk_final_message(out)


def test_upstream_error_event_is_kept_and_nothing_is_added():
    body = (STREAMS / "litellm-cut-mid-event.sse").read_bytes()
    out, _ = patch([body])
    assert sdk_events(out)[-1] == sdk_events(body)[-1]
    assert out.count(b"event: error") == 1


def test_openai_shaped_error_event_is_reshaped_in_place():
    out, _ = patch_file("mid-stream-openai-error.sse")
    name, data = sdk_events(out)[-1]
    assert name == "error"
    assert json.loads(data) == {"type": "error", "error": {"type": "api_error", "message": "Internal server error"}}
    with pytest.raises(anthropic.APIStatusError, match="Internal server error"):
        sdk_final_message(out)


def test_a_body_that_is_not_sse_passes_unchanged():
    body = (STREAMS / "not-sse.sse").read_bytes()
    out, patcher = patch([body])
    assert out == body
    assert patcher.changes == []


def test_last_event_without_its_empty_line_is_completed():
    body = (STREAMS / "litellm-text-usage.sse").read_bytes().rstrip(b"\n")
    out, _ = patch([body])
    assert out.endswith(b'data: {"type": "message_stop"}\n\n')
    assert text_of(sdk_final_message(out)).startswith("Hello!")


def test_nothing_is_emitted_before_an_event_is_complete():
    patcher = StreamPatcher(ESTIMATE)
    assert patcher.feed(b"event: ping\ndata: {") == b""
    assert patcher.feed(b'"type":"ping"}\n') == b""
    assert patcher.feed(b"\n") == b'event: ping\ndata: {"type":"ping"}\n\n'


@NO_DEADLINE
@given(st.binary(max_size=300).filter(lambda b: b"message_start" not in b and b"error" not in b and b"{" not in b))
def test_arbitrary_bytes_never_raise_and_pass_through(data):
    assert patch([data])[0] == data


# --- non-streaming messages and JSON -> events ------------------------------------------


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


# --- errors ----------------------------------------------------------------------


def error_of(result: tuple[int, bytes] | None) -> tuple[int, str, str]:
    assert result is not None
    status, body = result
    payload = json.loads(body)
    assert is_anthropic_error(payload)
    return status, payload["error"]["type"], payload["error"]["message"]


def openai_error(message: str, code: str | None = None) -> bytes:
    error = {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    return json.dumps({"error": error}).encode()


DEEPSEEK_CONTEXT = (
    "This model's maximum context length is 131072 tokens. However, you requested 140000 tokens "
    "(131000 in the messages, 9000 in the completion). Please reduce the length of the messages or completion."
)


@pytest.mark.parametrize(
    "body, estimate, window, expected",
    [
        (openai_error(DEEPSEEK_CONTEXT, "context_length_exceeded"), 0, 0, "prompt is too long: 140000 tokens > 131072 maximum"),
        (openai_error("litellm.BadRequestError: OpenAIException - " + DEEPSEEK_CONTEXT, "400"), 0, 0,
         "prompt is too long: 140000 tokens > 131072 maximum"),
        ((STREAMS / "litellm-context-error.json").read_bytes(), 0, 0, "prompt is too long: 138001 tokens > 131072 maximum"),
        ((STREAMS / "litellm-qwen-context-error.json").read_bytes(), 135000, 129024, "prompt is too long: 135000 tokens > 129024 maximum"),
        # our tokenizer counted less than Qwen's: the number still says "too long"
        ((STREAMS / "litellm-qwen-context-error.json").read_bytes(), 120000, 129024, "prompt is too long: 129025 tokens > 129024 maximum"),
        (b"<400> InternalError.Algo.InvalidParameter: Range of input length should be [1, 98304]", 99000, 0,
         "prompt is too long: 99000 tokens > 98304 maximum"),
        (openai_error("input length is too long"), 70000, 65536, "prompt is too long: 70000 tokens > 65536 maximum"),
        (openai_error("too long", "context_length_exceeded"), 70000, 65536, "prompt is too long: 70000 tokens > 65536 maximum"),
        (openai_error("This model's maximum context length is 4096 tokens. However, you requested 900 output tokens and your "
                      "prompt contains at least 3300 input tokens, for a total of at least 4200 tokens."), 0, 0,
         "prompt is too long: 4200 tokens > 4096 maximum"),
        (openai_error("input length is too long"), 0, 0, "prompt is too long (input length is too long)"),
        # Kimi (kimi-cli#2011), GLM global and Coding Plan (openclaw#111744), MiniMax (MiniMax-M2#119),
        # vLLM (renderers/params.py), llama-server, Ollama (llm/llama_server.go); read 2026-11-26.
        (openai_error("Invalid request: Your request exceeded model token limit: 262144 (requested: 269030)"), 0, 0,
         "prompt is too long: 269030 tokens > 262144 maximum"),
        (json.dumps({"error": {"code": "1261", "message": "Prompt exceeds max length"}}).encode(), 1_100_000,
         1_048_576, "prompt is too long: 1100000 tokens > 1048576 maximum"),
        (json.dumps({"error": {"code": "1210", "message": "tokens in request more than max tokens allowed"}}).encode(),
         1_100_000, 1_048_576, "prompt is too long: 1100000 tokens > 1048576 maximum"),
        (json.dumps({"type": "error", "error": {"type": "bad_request_error", "http_code": "400",
                                                 "message": "invalid params, context window exceeds limit (2013)"}}).encode(),
         1_010_000, 1_000_000, "prompt is too long: 1010000 tokens > 1000000 maximum"),
        (openai_error("You passed 40000 input tokens and requested 4096 output tokens. However, the model's context "
                      "length is only 32768 tokens, resulting in a maximum input length of 28672 tokens. Please reduce "
                      "the length of the input prompt."), 0, 0, "prompt is too long: 40000 tokens > 28672 maximum"),
        (json.dumps({"error": {"code": 400, "type": "exceed_context_size_error", "n_prompt_tokens": 9177, "n_ctx": 4096,
                               "message": "request (9177 tokens) exceeds the available context size (4096 tokens), try "
                                          "increasing it"}}).encode(), 0, 0, "prompt is too long: 9177 tokens > 4096 maximum"),
        (openai_error("the prompt is longer than the context length currently available to the model; shorten the "
                      "prompt, adjust the context length in settings, or use a model with a longer context length"),
         40000, 32768, "prompt is too long: 40000 tokens > 32768 maximum"),
    ],
)  # fmt: skip
def test_context_errors_become_prompt_is_too_long(body, estimate, window, expected):
    result = to_anthropic_error(400, body, "application/json", estimate, window)
    assert error_of(result) == (400, "invalid_request_error", expected)


@pytest.mark.parametrize(
    "status, body, content_type, expected",
    [
        (401, openai_error("Authentication Error, Invalid proxy server token passed."), "application/json",
         (401, "authentication_error", "Authentication Error, Invalid proxy server token passed.")),
        (404, b'{"detail":"Not Found"}', "application/json", (404, "not_found_error", "Not Found")),
        (429, b'{"error": "rate limited, slow down"}', "application/json", (429, "rate_limit_error", "rate limited, slow down")),
        (500, openai_error("litellm.APIConnectionError: APIConnectionError: OpenAIException - Connection error."), "application/json",
         (529, "overloaded_error", "litellm.APIConnectionError: APIConnectionError: OpenAIException - Connection error.")),
        (500, openai_error("something broke"), "application/json", (500, "api_error", "something broke")),
        (503, b"upstream connect error", "text/plain", (529, "overloaded_error", "upstream connect error")),
        (504, b"", "text/plain", (504, "timeout_error", "upstream answered HTTP 504")),
        (502, b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>", "text/html",
         (529, "overloaded_error", "502 Bad Gateway")),
    ],
)  # fmt: skip
def test_other_errors_keep_status_and_text(status, body, content_type, expected):
    assert error_of(to_anthropic_error(status, body, content_type)) == expected


# --- refusals: a client error explained ---------------------------------------------

POLICY = "/etc/stabilizer/policy.yaml"
DEEPSEEK_IMAGE = (
    "litellm.BadRequestError: OpenAIException - Failed to deserialize the JSON body into the target type: "
    "messages[3]: unknown variant `image_url`, expected `text` at line 1 column 173667"
)


def litellm_error(message: str) -> bytes:
    """A backend 400 as LiteLLM passes it on: its wording wrapped around the backend's, code "400"."""
    return json.dumps({"error": {"message": message, "type": None, "param": None, "code": "400"}}).encode()


@pytest.mark.parametrize(
    "message, expected",
    [
        (DEEPSEEK_IMAGE,
         "deepseek-flash refused the request: Failed to deserialize the JSON body into the target type: messages[3]: "
         "unknown variant `image_url`, expected `text` at line 1 column 173667. Set models.deepseek-flash."
         f"accepted_block_types without image in {POLICY} (the stabilizer then replaces images with a note), "
         "or models.deepseek-flash.vision_model to send turns with images to a model that reads them."),
        ("Failed to deserialize the JSON body into the target type: messages[1]: unknown variant `document`, expected `text`",
         "deepseek-flash refused the request: Failed to deserialize the JSON body into the target type: messages[1]: "
         "unknown variant `document`, expected `text`. Set models.deepseek-flash.accepted_block_types without document "
         f"in {POLICY} (the stabilizer then replaces documents with a note)."),
        ("litellm.BadRequestError: DeepseekException - The reasoning_content in the thinking mode must be passed back to the API.",
         "deepseek-flash refused the request: The reasoning_content in the thinking mode must be passed back to the API. "
         f"Set models.deepseek-flash.thinking.require_reasoning: true in {POLICY}."),
        ("thinking is enabled but reasoning_content is missing in assistant tool call message at index 2",
         "deepseek-flash refused the request: thinking is enabled but reasoning_content is missing in assistant tool call "
         f"message at index 2. Set models.deepseek-flash.thinking.require_reasoning: true in {POLICY}."),
        ("litellm.BadRequestError: OpenAIException - Invalid max_tokens value, the valid range of max_tokens is [1, 393216]",
         "deepseek-flash refused the request: Invalid max_tokens value, the valid range of max_tokens is [1, 393216]. "
         f"Set models.deepseek-flash.max_output_tokens to the backend's limit in {POLICY}."),
        ("Unrecognized request argument supplied: foo",
         "deepseek-flash refused the request: Unrecognized request argument supplied: foo. "
         f"Remove foo from models.deepseek-flash.accepted_keys in {POLICY}."),
        ("Unrecognized request arguments supplied: foo, bar",
         "deepseek-flash refused the request: Unrecognized request arguments supplied: foo, bar. "
         f"Remove foo, bar from models.deepseek-flash.accepted_keys in {POLICY}."),
        ("Failed to deserialize the JSON body into the target type: tool_choice: unknown variant `any`, expected one of `none`, `auto`",
         "deepseek-flash refused the request: Failed to deserialize the JSON body into the target type: tool_choice: "
         "unknown variant `any`, expected one of `none`, `auto`. "
         f"Remove tool_choice from models.deepseek-flash.accepted_keys in {POLICY}."),
        ("Failed to deserialize the JSON body into the target type: unknown field `top_k`, expected one of `model`",
         "deepseek-flash refused the request: Failed to deserialize the JSON body into the target type: unknown field "
         f"`top_k`, expected one of `model`. Remove top_k from models.deepseek-flash.accepted_keys in {POLICY}."),
        ("Extra inputs are not permitted",
         f"deepseek-flash refused the request: Extra inputs are not permitted. Remove it from models.deepseek-flash.accepted_keys in {POLICY}."),
        ("litellm.BadRequestError: OpenAIException - tools length must be less than or equal to 128\n\n"
         "LiteLLM: model group 'deepseek-flash' failed with the error above. No fallback was attempted.",
         "deepseek-flash refused the request: tools length must be less than or equal to 128. "
         f"Set models.deepseek-flash.max_tools to the backend's limit in {POLICY}."),
        # nested deeper than a top-level key: accepted_keys cannot avoid it, so no hint
        ("Failed to deserialize the JSON body into the target type: messages[0]: unknown field `cache_control`",
         "deepseek-flash refused the request: Failed to deserialize the JSON body into the target type: messages[0]: "
         "unknown field `cache_control`"),
        # Kimi's generic answer (reported with large tool histories on kimi-for-coding): nothing to hint
        ("litellm.BadRequestError: OpenAIException - Invalid request Error",
         "deepseek-flash refused the request: Invalid request Error"),
    ],
)  # fmt: skip
def test_a_backend_refusal_names_what_it_objected_to_and_the_policy_key(message, expected):
    result = to_anthropic_error(
        400, litellm_error(message), "application/json", 5000, 131072, RefusalContext("deepseek-flash", POLICY)
    )
    assert error_of(result) == (400, "invalid_request_error", expected)


def test_a_refusal_names_the_entry_that_applies_to_an_alias():
    message = explain_refusal(
        "The reasoning_content in the thinking mode must be passed back to the API.",
        RefusalContext("my-deepseek", "/srv/policy.yaml", "deepseek-flash"),
    )
    assert message.startswith("my-deepseek refused the request: The reasoning_content")
    assert message.endswith("Set models.deepseek-flash.thinking.require_reasoning: true in /srv/policy.yaml.")


def test_a_reasoning_refusal_does_not_ask_for_a_setting_already_made():
    message = explain_refusal(
        "The `content[].thinking` in the thinking mode must be passed back to the API.",
        RefusalContext("ds", "/srv/policy.yaml", "deepseek-flash", reasoning_required=True),
    )
    assert "Set models.deepseek-flash.thinking.require_reasoning" not in message
    assert "models.deepseek-flash.thinking.require_reasoning is already true in /srv/policy.yaml" in message


def test_a_signature_refusal_points_to_verifies_signatures():
    message = explain_refusal(
        "messages.1.content.0: Invalid `signature` in `thinking` block",
        RefusalContext("my-gateway", "/srv/policy.yaml", "gateway-model"),
    )
    assert message.endswith(
        "Set models.gateway-model.thinking.verifies_signatures: true in /srv/policy.yaml (other models' "
        "thinking then never reaches it)."
    )


def test_a_signature_refusal_asks_for_nothing_already_in_effect():
    words = "messages.1.content.0: Invalid `signature` in `thinking` block"
    message = explain_refusal(words, RefusalContext("claude", "/srv/policy.yaml", "claude-x", signatures_verified=True))
    assert message == f"claude refused the request: {words}"


def test_a_refusal_under_the_built_in_defaults_points_to_a_policy_file():
    message = explain_refusal(
        "Invalid max_tokens value, the valid range of max_tokens is [1, 8192]", RefusalContext("qwen", "")
    )
    assert message.endswith(
        "Set models.qwen.max_output_tokens to the backend's limit in a policy file (stabilizer run --policy)."
    )


def test_a_refusal_without_request_notes_still_says_who_refused():
    assert error_of(to_anthropic_error(400, openai_error("Unrecognized request argument supplied: top_k"))) == (
        400, "invalid_request_error",
        "the backend refused the request: Unrecognized request argument supplied: top_k. "
        "Remove top_k from models.<model>.accepted_keys in a policy file (stabilizer run --policy).",
    )  # fmt: skip
    assert error_of(to_anthropic_error(422, b'{"detail": [{"loc": ["body"], "msg": "field required"}]}')) == (
        422, "invalid_request_error", 'the backend refused the request: [{"loc": ["body"], "msg": "field required"}]'
    )  # fmt: skip


def test_a_context_error_is_not_explained_as_a_refusal():
    body = litellm_error("litellm.BadRequestError: OpenAIException - " + DEEPSEEK_CONTEXT)
    result = to_anthropic_error(400, body, "application/json", 0, 0, RefusalContext("deepseek-flash", POLICY))
    assert error_of(result) == (400, "invalid_request_error", "prompt is too long: 140000 tokens > 131072 maximum")


@pytest.mark.parametrize("status", [401, 403, 404, 429])
def test_key_route_and_quota_errors_are_not_explained(status):
    _, _, message = error_of(
        to_anthropic_error(
            status, openai_error("Unrecognized request argument supplied: foo"), "", 0, 0, RefusalContext("m", POLICY)
        )
    )
    assert message == "Unrecognized request argument supplied: foo"


def test_anthropics_max_tokens_overflow_keeps_the_words_claude_code_parses():
    body = error_body(
        "invalid_request_error",
        "input length and `max_tokens` exceed context limit: 186433 + 20000 > 200000, "
        "decrease input length or `max_tokens` and try again",
    )
    assert to_anthropic_error(400, body, "application/json", 0, 0, RefusalContext("m", POLICY)) is None


def test_litellms_anthropic_shaped_refusal_is_explained():
    # LiteLLM answers /v1/messages errors Anthropic-shaped, its wording inside (tests/data/streams/README.md).
    body = error_body(
        "invalid_request_error",
        DEEPSEEK_IMAGE + "\n\nLiteLLM: model group 'deepseek-flash' failed with the error above.",
    )
    _, _, message = error_of(
        to_anthropic_error(400, body, "application/json", 0, 0, RefusalContext("deepseek-flash", POLICY))
    )
    assert (
        message.startswith("deepseek-flash refused the request: Failed to deserialize")
        and "column 173667. Set " in message
    )


def test_a_refusal_error_event_in_a_stream_is_explained():
    event = b'event: error\ndata: {"type":"error","error":{"type":"invalid_request_error","message":"Unsupported parameter: \'top_k\'"}}\n\n'
    patcher = StreamPatcher(refusal=RefusalContext("kimi", POLICY))
    out = patcher.feed(event) + patcher.finish()
    assert json.loads(sdk_events(out)[-1][1])["error"] == {
        "type": "invalid_request_error",
        "message": f"kimi refused the request: Unsupported parameter: 'top_k'. Remove top_k from models.kimi.accepted_keys in {POLICY}.",
    }
    assert patcher.changes == [Change(ChangeKind.UPSTREAM_ERROR, "error event reshaped to invalid_request_error")]


def test_anthropic_errors_are_left_alone():
    overloaded = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    assert to_anthropic_error(529, overloaded, "application/json") is None
    too_long = b'{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 140000 tokens > 131072 maximum"}}'
    assert to_anthropic_error(400, too_long, "application/json", 5, 6) is None


@NO_DEADLINE
@given(st.integers(400, 599), st.one_of(st.binary(max_size=200), st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(["error", "message", "detail", "type", "code"]), children, max_size=3),
).map(lambda value: json.dumps(value).encode())), st.integers(0, 10**6), st.integers(0, 10**6))  # fmt: skip
def test_any_error_body_becomes_an_anthropic_error(status, body, estimate, window):
    result = to_anthropic_error(status, body, "application/json", estimate, window)
    if result is None:
        assert is_anthropic_error(json.loads(body))
    else:
        new_status, _, _ = error_of(result)
        assert 400 <= new_status <= 599


def test_stream_cut_inside_an_oversized_event_still_ends_with_a_parsable_error():
    start = (STREAMS / "usage-null.sse").read_bytes().split(b"\n\n", 1)[0] + b"\n\n"
    patcher = StreamPatcher(ESTIMATE, max_event_bytes=100)
    endless = b'event: content_block_delta\ndata: {"x": "' + b"y" * 500
    out = patcher.feed(start) + patcher.feed(endless) + patcher.finish()
    assert out.endswith(b'y\n\nevent: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"'
                        + TRUNCATED_STREAM_MESSAGE.encode() + b'"}}\n\n')  # fmt: skip
    assert sdk_events(out)[-1][0] == "error"
    assert Change(ChangeKind.OTHER, "an event over 100 bytes passed on unpatched") in patcher.changes


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


def delta_stream(usage: dict) -> bytes:
    start = {
        "type": "message_start",
        "message": {
            "id": "m",
            "type": "message",
            "role": "assistant",
            "model": "x",
            "content": [],
            "stop_reason": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        },
    }
    delta = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": usage}
    return (
        f"event: message_start\ndata: {json.dumps(start)}\n\n"
        f"event: message_delta\ndata: {json.dumps(delta)}\n\n"
        'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    ).encode()


@pytest.mark.parametrize(
    "reported, delivered",
    [
        ({"input_tokens": 12, "output_tokens": 22}, {"input_tokens": ESTIMATE, "output_tokens": 22}),
        ({"input_tokens": 4400, "output_tokens": 22}, {"input_tokens": 4400, "output_tokens": 22}),
        (
            {"input_tokens": 1100, "output_tokens": 22, "cache_read_input_tokens": 3300},
            {"input_tokens": 1100, "output_tokens": 22, "cache_read_input_tokens": 3300},
        ),
    ],
)
def test_the_stream_delivers_the_backends_count_or_the_estimate(reported, delivered):
    patcher = StreamPatcher(ESTIMATE, fixed_tokens_estimate=3000)
    out = patcher.feed(delta_stream(reported)) + patcher.finish()
    message = sdk_final_message(out)
    assert {key: getattr(message.usage, key) for key in delivered} == delivered
    replaced = [change for change in patcher.changes if "LiteLLM's count of the messages alone" in change.detail]
    assert bool(replaced) is (delivered["input_tokens"] != reported["input_tokens"])


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


def test_litellm_without_a_key_database_refusing_a_key_is_an_authentication_error():
    # LiteLLM 1.108.7 answers a key that is not its master key with 400 "No connected db." when
    # it has no database of virtual keys.
    for status in (400, 401):
        result = to_anthropic_error(status, litellm_error("No connected db."), "application/json")
        assert error_of(result) == (
            401,
            "authentication_error",
            "invalid API key: LiteLLM has no database of virtual keys, so only its master key is accepted",
        )


def test_a_refused_caller_key_is_told_from_a_provider_key_litellm_lacks():
    assert is_key_refusal(
        litellm_error("Authentication Error, Invalid proxy server token passed. Received API Key = sk-...abcd")
    )
    assert is_key_refusal(litellm_error("No connected db."))
    # LiteLLM cannot count for a deployment without its provider key: the estimate may answer instead.
    assert not is_key_refusal(litellm_error("No OpenAI API key is set for model demo, so tokens can't be counted."))
