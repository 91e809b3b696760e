"""The stack in front of the real llama.cpp llama-server, on both of its routes.

llama-server (`make llama-server` builds it) runs a model of tests/llama/model.py, whose answers
are known in advance: its chat template, tool-call and reasoning parsers, its Anthropic and
OpenAI endpoints and its errors are llama.cpp's own code. Requests go as Claude Code sends them,
to the real mitmdump with the addons and the real LiteLLM, on `openai/` (llama-server's /v1)
and `anthropic/` (its root).
"""

import json
import re
from contextlib import ExitStack

import pytest

from tests.llama.model import AFTER_TOOL, REPLY, THOUGHT, ToolCall, write_model
from tests.llama.server import ANTHROPIC_ROUTE, OPENAI_ROUTE, serve, write_litellm_config, write_policy
from tests.procs import LiteLLM, Mitmdump, post_json
from tests.streams import streamed_message

ROUTES = (OPENAI_ROUTE, ANTHROPIC_ROUTE)
# Small enough that a long question overflows it.
CONTEXT = 2048
# An answer of this many tokens ends inside WEATHER's arguments, after `{"city":`.
CUT = 7
WEATHER = ToolCall("get_weather", {"city": "Paris"})
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(scope="module")
def llama_stack(tmp_path_factory, session_home, child_env):
    """llama-server, a LiteLLM with its two routes and mitmdump in front: the stack's URL, llama-server's
    and LiteLLM's."""
    folder = tmp_path_factory.mktemp("llama")
    # Each process stops even when a later one fails to start.
    with ExitStack() as started:
        model = write_model(folder / "bigram.gguf", WEATHER)
        server = serve(started, model, CONTEXT)
        config = write_litellm_config(folder / "litellm.yaml", server.url)
        litellm = LiteLLM(config, folder / "logs" / "litellm.log", child_env)
        started.callback(litellm.stop)
        litellm.start()
        policy = write_policy(folder / "stabilizer.yaml")
        proxy = Mitmdump(litellm.log_file, policy, child_env, litellm_config=config)
        started.callback(proxy.stop)
        proxy.start()
        proxy.wait_upstream(litellm.url)
        yield proxy.url, server.url, litellm.url


def ask(url: str, master_key: str, model: str, messages: list, **fields) -> tuple[int, bytes]:
    """A streamed /v1/messages request as Claude Code makes it."""
    body = {"model": model, "max_tokens": 32000, "stream": True, "messages": messages, **fields}
    status, _, raw = post_json(url + "/v1/messages", body, {"authorization": f"Bearer {master_key}"})
    return status, raw


@pytest.mark.parametrize("route", ROUTES)
def test_a_plain_answer_comes_with_its_thinking(llama_stack, master_key, route):
    status, raw = ask(llama_stack[0], master_key, route, [{"role": "user", "content": "Say hello."}])
    assert status == 200, raw
    message = streamed_message(raw)
    assert [block["type"] for block in message["content"]] == ["thinking", "text"], message
    assert message["content"][0]["thinking"].strip() == THOUGHT
    assert message["content"][1]["text"] == REPLY
    assert message["stop_reason"] == "end_turn"
    assert message["usage"]["output_tokens"] > 0


@pytest.mark.parametrize("route", ROUTES)
def test_thinking_switched_off_through_the_template_kwargs(llama_stack, master_key, route):
    # Claude Code's `disabled` becomes the policy's chat_template_kwargs, which llama-server
    # honours (its own reading of `thinking: {type: disabled}` is to think anyway). LiteLLM drops
    # them on the Anthropic-compatible route, so that turn goes to the OpenAI-compatible one
    # (thinking_off_model).
    question = [{"role": "user", "content": "Say hello."}]
    status, raw = ask(llama_stack[0], master_key, route, question, thinking={"type": "disabled"})
    assert status == 200, raw
    message = streamed_message(raw)
    assert [(block["type"], block.get("text")) for block in message["content"]] == [("text", REPLY)]


def test_litellm_passes_no_template_kwargs_on_the_anthropic_route(llama_stack, master_key):
    # Why the Anthropic-compatible route has no switch (thinking.anthropic_switch: none): llama-server
    # honours chat_template_kwargs on its Messages route, but LiteLLM drops them there, in the body
    # or in extra_body; and Anthropic's `thinking: {type: disabled}` llama-server ignores.
    _, server, litellm = llama_stack
    question = [{"role": "user", "content": "Say hello."}]
    off = {"chat_template_kwargs": {"enable_thinking": False}}
    direct = {"model": "any", "max_tokens": 100, "messages": question}
    for url, body, thinks in (
        (server, direct | off, False),
        (server, direct | {"thinking": {"type": "disabled"}}, True),
        (litellm, direct | off | {"model": ANTHROPIC_ROUTE}, True),
        (litellm, direct | {"model": ANTHROPIC_ROUTE, "extra_body": off}, True),
    ):
        status, _, raw = post_json(url + "/v1/messages", body, {"authorization": f"Bearer {master_key}"})
        assert status == 200, raw
        assert [block["type"] for block in json.loads(raw)["content"]] == ["thinking", "text"][not thinks :], body


@pytest.mark.parametrize("route", ROUTES)
def test_a_tool_round_trip(llama_stack, master_key, route):
    question = [{"role": "user", "content": "What is the weather in Paris?"}]
    status, raw = ask(llama_stack[0], master_key, route, question, tools=[WEATHER_TOOL])
    assert status == 200, raw
    message = streamed_message(raw)
    thinking, call = message["content"]
    assert call["type"] == "tool_use" and call["name"] == "get_weather"
    assert json.loads(call["input_json"]) == {"city": "Paris"}
    assert message["stop_reason"] == "tool_use"

    # The turn goes back as Claude Code sends it: the thinking as it came, the call's input parsed.
    turn = [thinking, {"type": "tool_use", "id": call["id"], "name": call["name"], "input": {"city": "Paris"}}]
    result = {"type": "tool_result", "tool_use_id": call["id"], "content": "Sunny, 21 degrees."}
    history = question + [{"role": "assistant", "content": turn}, {"role": "user", "content": [result]}]
    status, raw = ask(llama_stack[0], master_key, route, history, tools=[WEATHER_TOOL])
    assert status == 200, raw
    answer = streamed_message(raw)
    assert [block["text"] for block in answer["content"] if block["type"] == "text"] == [AFTER_TOOL]
    assert answer["stop_reason"] == "end_turn"


@pytest.mark.parametrize("route", ROUTES)
def test_a_tool_call_cut_by_max_tokens_reaches_claude_code_unfinished(llama_stack, master_key, route):
    # llama-server streams the cut call's arguments as far as they got, then stops its block;
    # the stack holds that stop back, so Claude Code drops the call instead of running it
    # (addons/response/tool_cut.py).
    question = [{"role": "user", "content": "What is the weather in Paris?"}]
    status, raw = ask(llama_stack[0], master_key, route, question, tools=[WEATHER_TOOL], max_tokens=CUT)
    assert status == 200, raw
    message = streamed_message(raw)
    thinking, call = message["content"]
    assert call["type"] == "tool_use" and call["name"] == "get_weather"
    with pytest.raises(ValueError):
        json.loads(call["input_json"])
    assert message["unfinished"] == [1]
    assert message["stop_reason"] == "max_tokens"


@pytest.mark.parametrize("route", ROUTES)
def test_a_tool_call_cut_by_max_tokens_without_streaming_reaches_claude_code_as_a_stop(llama_stack, master_key, route):
    # Without streaming, llama-server's Messages route gives the cut call `input: {}`, which Claude
    # Code would run; LiteLLM's translation of its chat route answers 500 "Failed to parse tool
    # call arguments", which Claude Code sends again and again. Either way Claude Code gets the
    # max_tokens stop without the call, and asks the model to go on (addons/response/tool_cut.py).
    question = [{"role": "user", "content": "What is the weather in Paris?"}]
    body = {"model": route, "max_tokens": CUT, "messages": question, "tools": [WEATHER_TOOL]}
    status, _, raw = post_json(llama_stack[0] + "/v1/messages", body, {"authorization": f"Bearer {master_key}"})
    assert status == 200, raw
    message = json.loads(raw)
    assert message["stop_reason"] == "max_tokens"
    # The thinking that came before the call, where the route gave it.
    expected = [] if route == OPENAI_ROUTE else [("thinking", THOUGHT)]
    assert [(block["type"], block["thinking"].strip()) for block in message["content"]] == expected
    assert message["usage"]["input_tokens"] > 0


@pytest.mark.parametrize("route", ROUTES)
def test_a_prompt_over_the_window_is_too_long_for_claude_code(llama_stack, master_key, route):
    # One token a byte in this vocabulary: far over the window.
    question = [{"role": "user", "content": "Summarise: " + "lorem ipsum " * CONTEXT}]
    status, raw = ask(llama_stack[0], master_key, route, question)
    assert status == 400, raw
    error = json.loads(raw)["error"]
    assert error["type"] == "invalid_request_error"
    # The request's tokens over what fits: llama-server's -c, read from its own wording; or, once
    # that refusal taught the stack the window (addons/limit_learner.py), the prompt budget the
    # stack answers with itself before llama-server sees the request.
    match = re.fullmatch(r"prompt is too long: (\d+) tokens > (\d+) maximum", error["message"])
    assert match, error
    assert int(match[1]) > CONTEXT and 0 < int(match[2]) <= CONTEXT


@pytest.mark.parametrize("route", ROUTES)
def test_a_malformed_request_is_refused_before_llama_server(llama_stack, master_key, route):
    stack, server, _ = llama_stack
    malformed = [{"role": "user", "content": [{"type": "text"}]}]  # a text block without its text
    # llama-server's own answer is a 500 "server_error", which Claude Code would retry.
    status, _, raw = post_json(server + "/v1/messages", {"model": "any", "max_tokens": 100, "messages": malformed})
    assert status == 500 and json.loads(raw)["error"]["type"] == "server_error", raw

    status, raw = ask(stack, master_key, route, malformed)
    assert status == 400, raw
    assert json.loads(raw)["error"] == {
        "type": "invalid_request_error",
        "message": "messages.0.content.0.text: expected a string",
    }
