"""A session never gets stuck: what the backend cannot take is turned into what it can.

Each case, through the real stack (mitmdump with the addons, the real LiteLLM),
against a stand-in that refuses it the way the provider does (tests/backend/):
first the same turn sent to LiteLLM directly, which the backend refuses, so the
case is real; then the turn and the next two turns of the same session through
the stabilizer, which must all succeed.
"""

import json
import re

import pytest
import yaml

from tests.backend import ToolCalls
from tests.conftest import POLICY
from tests.procs import Mitmdump, post_json
from tests.streams import streamed_message

PNG = {
    "type": "image",
    "source": {
        "type": "base64",
        "media_type": "image/png",
        "data": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BAAQMBAAIAAf+Jo9kAAAAASUVORK5CYII=",
    },
}
PDF = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQK"}}
READ = {
    "name": "Read",
    "description": "read a file",
    "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}},
}


def tool_round(tool_id: str, input_value, result_content, thinking: str | None = None) -> list[dict]:
    """An assistant tool call (after its reasoning, as a thinking model answers) and the user turn answering it."""
    reasoning = [{"type": "thinking", "thinking": thinking, "signature": "3b9e1e1c"}] if thinking else []
    return [
        {
            "role": "assistant",
            "content": [*reasoning, {"type": "tool_use", "id": tool_id, "name": "Read", "input": input_value}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": result_content}]},
    ]


def post(url: str, key: str, body: dict) -> tuple[int, bytes]:
    status, _, raw = post_json(
        url + "/v1/messages", body, {"authorization": f"Bearer {key}", "anthropic-version": "2023-06-01"}
    )
    return status, raw


def three_turns(url: str, key: str, request: dict) -> list[dict]:
    """`request`, then two follow-up prompts in the same session; each answer, all 200."""
    answers = []
    for follow_up in (None, "Go on.", "Anything else?"):
        if follow_up:
            request = {
                **request,
                "messages": [
                    *request["messages"],
                    {"role": "assistant", "content": answers[-1]["content"]},
                    {"role": "user", "content": follow_up},
                ],
            }
        status, raw = post(url, key, request)
        assert status == 200, raw[:600]
        answers.append(json.loads(raw))
    return answers


def refused_directly(litellm, key: str, request: dict, wording: str) -> None:
    """The backend refuses `request` when it comes without the stabilizer, in the provider's words."""
    status, raw = post(f"http://{litellm.address[0]}:{litellm.address[1]}", key, request)
    assert status >= 400 and wording in json.loads(raw)["error"]["message"], (status, raw[:600])


def sent_text(body: dict) -> str:
    return json.dumps(body, ensure_ascii=False)


def sent_by_client(body: dict) -> str:
    """The user and tool messages of a request the backend received, as text."""
    return json.dumps([message for message in body["messages"] if message["role"] != "assistant"])


# --- the shipped policy -----------------------------------------------------------------------


def test_images_to_a_text_only_model_become_notes(stack, litellm, fresh_backend, master_key):
    request = {
        "model": "deepseek-v4-pro",
        "max_tokens": 1024,
        "tools": [READ],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "What is in this picture and in shot.png?"}, PNG]},
            *tool_round("toolu_1", {"file_path": "shot.png"}, [PNG]),
        ],
    }
    refused_directly(litellm, master_key, request, "unknown variant `image_url`, expected `text`")
    fresh_backend.reset()
    three_turns(stack.url, master_key, request)
    assert len(fresh_backend.requests) == 3
    for body in fresh_backend.requests:
        assert "image_url" not in sent_text(body)
        assert sent_by_client(body).count("[image omitted: deepseek-v4-pro does not read images]") == 2


def test_documents_and_newer_blocks_and_fields_on_the_anthropic_route(stack, litellm, fresh_backend, master_key):
    model = "deepseek-flash-anthropic"
    deferred = {
        **READ,
        "name": "Grep",
        "defer_loading": True,
        "cache_control": {"type": "ephemeral", "scope": "global"},
    }
    request = {
        "model": model,
        "max_tokens": 1024,
        "container": "container_1",
        "mcp_servers": [],
        "tools": [READ, deferred, {"type": "web_search_20250305", "name": "web_search"}],
        "tool_choice": {"type": "auto"},
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Summarise the report."},
                    PDF,
                    {
                        "type": "search_result",
                        "title": "Docs",
                        "source": "https://example.com",
                        "content": [{"type": "text", "text": "found it"}],
                    },
                ],
            },
            *tool_round("toolu_1", {"query": "grep"}, [{"type": "tool_reference", "tool_name": "Grep"}], "Find Grep."),
        ],
    }
    cited = {
        "type": "text",
        "text": "The report says so.",
        "citations": [
            {
                "type": "char_location",
                "cited_text": "so",
                "document_index": 0,
                "start_char_index": 0,
                "end_char_index": 2,
            }
        ],
    }
    request["messages"][1]["content"].insert(1, cited)
    refused_directly(litellm, master_key, request, "unknown variant `document`")
    fresh_backend.reset()
    three_turns(stack.url, master_key, request)
    for body in fresh_backend.messages_requests:
        text = sent_text(body)
        assert "[document omitted: deepseek-flash-anthropic does not read documents]" in text
        assert "Docs\\nhttps://example.com\\nfound it" in text and "[tool reference: Grep]" in text
        assert not {"container", "mcp_servers"} & set(body)
        assert [tool["name"] for tool in body["tools"]] == ["Read", "Grep"]
        assert "defer_loading" not in text and "cache_control" not in text
        assert "The report says so." in text and "citations" not in text


def test_tool_arguments_that_are_not_objects_come_back_as_objects(stack, litellm, fresh_backend, master_key):
    # Qwen coder models write single-quoted pseudo-JSON, GLM has sent arrays; Claude Code sends
    # either back as tool_use.input, and Qwen refuses its own output on every later turn.
    request = {
        "model": "qwen-plus",
        "max_tokens": 1024,
        "tools": [READ],
        "messages": [
            {"role": "user", "content": "Read a.txt and b.txt."},
            *tool_round("toolu_1", ["a.txt"], "contents of a"),
            {"role": "assistant", "content": "Next."},
            {"role": "user", "content": "Go on."},
            *tool_round("toolu_2", "{'file_path': 'b.txt'}", "contents of b"),
        ],
    }
    refused_directly(
        litellm, master_key, request, 'The "function.arguments" parameter of the code model must be in JSON'
    )
    fresh_backend.reset()
    three_turns(stack.url, master_key, request)
    for body in fresh_backend.requests:
        calls = [call for message in body["messages"] for call in message.get("tool_calls") or []]
        assert [json.loads(call["function"]["arguments"]) for call in calls] == [
            {
                "invalid_arguments": '["a.txt"]',
                "note": "the model wrote these arguments as something other than a JSON object",
            },
            {"file_path": "b.txt"},
        ]


@pytest.mark.parametrize("model", ["deepseek-flash", "deepseek-flash-anthropic", "llamacpp-local"])
def test_a_tool_call_cut_by_max_tokens_reaches_claude_code_unfinished(stack, fresh_backend, master_key, model):
    # The provider streams the cut arguments and closes the block; Claude Code would run that
    # call. Left unfinished, it drops the call and asks the model to go on (tool_cut.py).
    fresh_backend.script([ToolCalls([("Read", '{"file_path": "notes/da')], finish_reason="length")])
    request = {
        "model": model,
        "max_tokens": 20,
        "stream": True,
        "tools": [READ],
        "messages": [{"role": "user", "content": "Read the notes."}],
    }
    status, raw = post(stack.url, master_key, request)
    assert status == 200, raw[:600]
    message = streamed_message(raw)
    (call,) = [index for index, block in enumerate(message["content"]) if block["type"] == "tool_use"]
    assert message["content"][call]["input_json"] == '{"file_path": "notes/da'
    assert message["unfinished"] == [call] and message["stop_reason"] == "max_tokens"


@pytest.mark.parametrize("model", ["deepseek-flash", "deepseek-flash-anthropic", "llamacpp-local-anthropic"])
def test_a_tool_call_cut_by_max_tokens_without_streaming_is_not_handed_over(stack, fresh_backend, master_key, model):
    # The chat route's cut arguments make LiteLLM's translation answer 500; a Messages route's
    # whole answer carries the call (llama-server: with `input: {}`). Claude Code gets the
    # max_tokens stop without it (tool_cut.py).
    # Every try the same, as a model's answer to the same request is (LiteLLM tries a 500 again).
    cut = ToolCalls([("Read", '{"file_path": "notes/da')], reasoning="Hmm.", finish_reason="length")
    fresh_backend.responder = lambda body: cut
    request = {"model": model, "max_tokens": 20, "tools": [READ], "messages": [{"role": "user", "content": "Read."}]}
    status, raw = post(stack.url, master_key, request)
    assert status == 200, raw[:600]
    message = json.loads(raw)
    assert message["stop_reason"] == "max_tokens", message
    assert "tool_use" not in [block["type"] for block in message["content"]]


def test_a_tool_result_larger_than_the_window_is_shortened(stack, litellm, fresh_backend, master_key):
    # qwen-plus: 131072 tokens in the policy; the stand-in refuses inputs over 129024 (DashScope).
    output = "".join(f"line {i}: value {i * 7} of the build log\n" for i in range(22_000))  # ~260K tokens
    request = {
        "model": "qwen-plus",
        "max_tokens": 1024,
        "tools": [READ],
        "messages": [
            {"role": "user", "content": "Why did the build fail?"},
            *tool_round("toolu_1", {"file_path": "build.log"}, output),
        ],
    }
    refused_directly(litellm, master_key, request, "Range of input length should be")
    fresh_backend.reset()
    status, raw = post(stack.url, master_key, request)
    assert status == 200, raw[:600]
    # The turn that brought it sees it shortened.
    result = next(message["content"] for message in fresh_backend.requests[0]["messages"] if message["role"] == "tool")
    assert result.startswith("line 0: value 0") and result.endswith("line 21999: value 153993 of the build log\n")
    assert "tokens of this tool result were cut here to fit the model's context window" in result
    # A later turn still holding it is over the window before it begins: "prompt is too long",
    # on which Claude Code compacts (the answer's usage counted the cut tokens already).
    follow_up = [{"role": "assistant", "content": json.loads(raw)["content"]}, {"role": "user", "content": "Go on."}]
    status, raw = post(stack.url, master_key, {**request, "messages": [*request["messages"], *follow_up]})
    assert status == 400 and json.loads(raw)["error"]["message"].startswith("prompt is too long: "), raw[:600]
    assert len(fresh_backend.requests) == 1


def test_an_unpredicted_refusal_names_what_the_backend_objected_to_and_the_policy_key(stack, fresh_backend, master_key):
    # plain-model's entry (the defaults) says it reads images; this backend does not.
    request = {
        "model": "plain-model",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, PNG]}],
    }
    with fresh_backend.quirks(images=False):
        status, raw = post(stack.url, master_key, request)
    assert status == 400
    assert json.loads(raw) == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": (
                "plain-model refused the request: Invalid content type. image_url is only supported by certain models. "
                f"Set models.plain-model.accepted_block_types without image in {POLICY} (the stabilizer then replaces "
                "images with a note), or models.plain-model.vision_model to send turns with images to a model that reads "
                "them."
            ),
        },
    }


# --- a policy with a tool limit and a vision model ---------------------------------------------


@pytest.fixture(scope="module")
def capable_proxy(tmp_path_factory, litellm, child_env):
    """mitmdump with the shipped policy plus plain-model limited to 128 tools (as Kimi's coding
    plan) and deepseek-v4-pro sending turns with images to deepseek-flash."""
    policy = yaml.safe_load(POLICY.read_text())
    policy["models"]["plain-model"] = {"max_tools": 128}
    policy["models"]["deepseek-v4-pro"]["vision_model"] = "deepseek-flash"
    # The window the Ollama server was started with (its num_ctx), as config/stabilizer.yaml tells.
    policy["models"]["ollama-qwen3-coder"] = {"context_window": 32768, "max_output_tokens": 4096}
    path = tmp_path_factory.mktemp("capable") / "stabilizer.yaml"
    path.write_text(yaml.safe_dump(policy))
    proxy = Mitmdump(litellm.log_file, path, child_env, litellm_config=litellm.config).start()
    yield proxy
    proxy.stop()


def test_tools_over_the_backends_limit_are_left_out(capable_proxy, stack, litellm, fresh_backend, master_key):
    tools = [{**READ, "name": f"mcp__server__tool_{i}"} for i in range(140)]
    request = {
        "model": "plain-model",
        "max_tokens": 1024,
        "tools": tools,
        "messages": [{"role": "user", "content": "hello"}],
    }
    with fresh_backend.quirks(max_tools=128):
        refused_directly(litellm, master_key, request, "a max of 128 tools can be supported")
        refused = len(fresh_backend.requests)
        capable_proxy.wait_upstream(litellm.url)
        three_turns(capable_proxy.url, master_key, request)
    assert [len(body["tools"]) for body in fresh_backend.requests[refused:]] == [128] * 3


def test_a_turn_that_brings_an_image_goes_to_the_vision_model(capable_proxy, stack, fresh_backend, master_key, litellm):
    request = {
        "model": "deepseek-v4-pro",
        "max_tokens": 1024,
        "tools": [READ],
        "messages": [
            {"role": "user", "content": "What does shot.png show?"},
            *tool_round("toolu_1", {"file_path": "shot.png"}, [PNG]),
        ],
    }
    capable_proxy.wait_upstream(litellm.url)
    three_turns(capable_proxy.url, master_key, request)
    models = [body["model"] for body in fresh_backend.requests]
    assert models == ["deepseek-flash", "deepseek-v4-pro", "deepseek-v4-pro"]
    first, *later = fresh_backend.requests
    assert "image_url" in sent_text(first)
    for body in later:
        assert "image_url" not in sent_text(body)
        assert "[image omitted: deepseek-v4-pro does not read images]" in sent_text(body)


@pytest.mark.parametrize(
    "model",
    [
        "kimi-k3",
        "glm-5.3",
        "MiniMax-M3",
        "vllm-qwen3-coder",
        "llamacpp-local",
        "llamacpp-local-anthropic",
        "qwen3.8-max",
        "deepseek-flash-anthropic",
    ],
)
def test_each_providers_context_refusal_offers_compaction(own_proxy, fresh_backend, master_key, model):
    # The backend holds less than the policy says (a server started with a smaller window): its
    # refusal, in its own words, must reach Claude Code as the sentence it offers /compact on.
    # A mitmdump of its own: the window it learns from the refusal stays with it.
    request = {"model": model, "max_tokens": 1024, "messages": [{"role": "user", "content": "word " * 30_000}]}
    with fresh_backend.quirks(context_window=20_000):
        status, raw = post(own_proxy.url, master_key, request)
    assert status == 400, raw[:600]
    error = json.loads(raw)["error"]
    assert error["type"] == "invalid_request_error"
    assert re.fullmatch(r"prompt is too long: (\d+) tokens > (\d+) maximum", error["message"]), error["message"]
    tokens, maximum = map(int, re.findall(r"\d+", error["message"]))
    assert tokens > maximum


def long_tool_session(turns: int) -> list[dict]:
    """A task and `turns` tool round trips of about 1500 tokens each, ending with a user turn."""
    messages = [{"role": "user", "content": "The task: read every file."}]
    for turn in range(turns):
        messages += tool_round(
            f"toolu_{turn}", {"file_path": f"f{turn}.txt"}, " ".join(f"line {turn}.{i} of the file" for i in range(250))
        )
    return messages


def test_ollama_would_drop_history_silently_but_the_stabilizer_trims_it_visibly(
    capable_proxy, stack, litellm, fresh_backend, master_key
):
    # Past the window with its last round, within it before that round (else "prompt is too long").
    last_round = tool_round("toolu_last", {"file_path": "last.txt"}, " ".join(f"line {i} of it" for i in range(1000)))
    messages = [*long_tool_session(15), *last_round]
    request = {"model": "ollama-qwen3-coder", "max_tokens": 1024, "tools": [READ], "messages": messages}
    # Without a window in the policy (the defaults' 128K), Ollama drops the oldest messages itself.
    status, _ = post(stack.url, master_key, request)
    assert status == 200 and fresh_backend.exchanges[-1].dropped_messages > 0
    # With its window in the policy, the stabilizer trims first, and says so in the history.
    capable_proxy.wait_upstream(litellm.url)
    status, _ = post(capable_proxy.url, master_key, request)
    assert status == 200 and fresh_backend.exchanges[-1].dropped_messages == 0
    assert "earlier messages of this conversation were omitted" in sent_text(fresh_backend.requests[-1])
