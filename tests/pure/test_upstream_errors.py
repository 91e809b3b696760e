"""Upstream errors in Anthropic's shape (addons/errors/upstream.py): context errors in every
provider's words, refusals explained, key refusals told apart."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from addons.errors.anthropic import error_body, is_anthropic_error
from addons.errors.upstream import RefusalContext, explain_refusal, is_key_refusal, stated_limit, to_anthropic_error
from addons.flow.change import Change, ChangeKind
from addons.response.stream import StreamPatcher
from tests.pure.test_stream import NO_DEADLINE, STREAMS, sdk_events

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


def test_litellms_class_name_alone_does_not_make_a_context_error():
    # LiteLLM files OpenAI's refusal of a long tool-call id under ContextWindowExceededError;
    # taken for an overflow, Claude Code would compact the session away instead of the id being fixed.
    message = (
        "litellm.ContextWindowExceededError: litellm.BadRequestError: ContextWindowExceededError: OpenAIException - "
        "Invalid 'messages[2].tool_calls[0].id': string too long. Expected a string with maximum length 40, but got "
        "a string with length 46 instead."
    )
    status, kind, said = error_of(to_anthropic_error(400, openai_error(message), "application/json", 50_000, 1_000))
    assert (status, kind) == (400, "invalid_request_error")
    assert said.startswith("the backend refused the request: Invalid 'messages[2].tool_calls[0].id'")
    assert "Set models.<model>.tool_ids" in said


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
        ("messages.1.content.1.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'",
         "deepseek-flash refused the request: messages.1.content.1.tool_use.id: String should match pattern "
         f"'^[a-zA-Z0-9_-]+$'. Set models.deepseek-flash.tool_ids to the backend's rule (anthropic, openai or mistral) in {POLICY}."),
        ("Tool call id was functions.Read:0 but must be a-z, A-Z, 0-9, with a length of 9.",
         "deepseek-flash refused the request: Tool call id was functions.Read:0 but must be a-z, A-Z, 0-9, with a length "
         f"of 9. Set models.deepseek-flash.tool_ids to the backend's rule (anthropic, openai or mistral) in {POLICY}."),
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


@pytest.mark.parametrize(
    "backend_words",
    [
        '{"error":{"message":"Not found: /v1/responses","type":"invalid_request_error","code":"not_found"}}',
        '{"detail":"Not Found"}',  # FastAPI (vLLM)
        "404 page not found",  # Go (Ollama)
        '{"error":{"code":404,"message":"File Not Found","type":"not_found_error"}}',  # llama-server
    ],
)
def test_a_turns_404_names_the_litellm_setting_that_avoids_the_responses_api(backend_words):
    # LiteLLM's /v1/messages error, Anthropic-shaped, around the backend's words.
    body = error_body(
        "not_found_error",
        f"litellm.NotFoundError: OpenAIException - {backend_words}\n\n"
        "LiteLLM: model group 'plain-model' failed with the error above. No fallback was attempted.",
    )
    status, error_type, message = error_of(
        to_anthropic_error(404, body, "application/json", 0, 0, RefusalContext("plain-model", POLICY))
    )
    assert (status, error_type) == (404, "not_found_error")
    assert message.startswith(f"plain-model refused the request: {backend_words.rstrip('. ')}. LiteLLM sends")
    assert "litellm_settings.use_chat_completions_url_for_anthropic_messages: true" in message


def test_a_404_for_a_model_or_outside_a_turn_is_not_blamed_on_the_responses_api():
    missing_model = openai_error("The model `gpt-9` does not exist or you do not have access to it.", "model_not_found")
    _, _, message = error_of(to_anthropic_error(404, missing_model, "", 0, 0, RefusalContext("m", POLICY)))
    assert "litellm_settings" not in message
    unknown_path = b'{"detail":"Not Found"}'  # LiteLLM's own, for a path it lacks: no turn notes
    assert "litellm_settings" not in error_of(to_anthropic_error(404, unknown_path, ""))[2]


@pytest.mark.parametrize(
    "status, body, expected",
    [
        # The stand-ins' wordings (tests/backend/providers/), as LiteLLM passes them on.
        (400, litellm_error("OpenAIException - Invalid max_tokens value, the valid range of max_tokens is [1, 8192]"),
         ("max_output_tokens", 8192)),
        (400, openai_error("Range of max_tokens should be [1, 8192]"), ("max_output_tokens", 8192)),
        (400, openai_error("The max_tokens parameter is illegal.：限制数值范围[1,131072]"),
         ("max_output_tokens", 131072)),
        (400, openai_error("max_tokens is too large: 32000. This model supports at most 4096 completion tokens, "
                           "whereas you provided 32000."), ("max_output_tokens", 4096)),
        (400, litellm_error(DEEPSEEK_CONTEXT), ("context_window", 131072)),
        (400, openai_error("Range of input length should be [1, 129024]"), ("context_window", 129024)),
        # A context error that names no window, another refusal, another status: nothing stated.
        (400, openai_error("Prompt exceeds max length"), None),
        (400, openai_error("Unrecognized request argument supplied: top_k"), None),
        (429, openai_error("Range of max_tokens should be [1, 8192]"), None),
    ],
)  # fmt: skip
def test_the_limit_a_refusal_states(status, body, expected):
    assert stated_limit(status, body) == expected


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


def test_litellm_without_a_key_database_refusing_a_key_is_an_authentication_error():
    # LiteLLM (1.108.7, 1.108.14) answers a key that is not its master key with 400 "No connected db." when
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
