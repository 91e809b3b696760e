"""The real Claude Code through the stack to the real llama.cpp llama-server, on both routes.

llama-server (`make llama-server`) runs a model of tests/llama/model.py: it thinks a fixed word,
answers a fixed sentence, calls the Read tool once when tools are offered and answers after
the result; cut by max_tokens inside that call, it answers in text when Claude Code asks it to go
on. The CLI runs with --bare, a one-line system prompt and only the tools a scenario
needs: the model's vocabulary is one token a byte, and Claude Code's full prompt would take a
minute a request on two cores. Claude Code's path without streaming is driven by refusing its
streaming requests (tests/e2e/streaming_refused.py), on which it sends each again without.
"""

import json
from contextlib import ExitStack
from pathlib import Path

import pytest
from mitmproxy import io

from addons.flow.notes import SENT
from tests.claude import ClaudeResult, run_claude
from tests.conftest import POLICY
from tests.llama.model import AFTER_TOOL, REPLY, RESUME, THOUGHT, ToolCall, write_model
from tests.llama.server import ANTHROPIC_ROUTE, OPENAI_ROUTE, serve, write_litellm_config
from tests.procs import LiteLLM, Mitmdump, StabilizerRun
from tests.streams import streamed_message

ROUTES = (OPENAI_ROUTE, ANTHROPIC_ROUTE)
# Claude Code's --bare prompt with the Read tool is about 10K bytes, one token each.
CONTEXT = 16384
NOTES = "The notes say: water the plants."
# Words in the notes' path: each a token of the Read call's arguments, so that an answer of CUT
# tokens ends inside them (after ` the`), while REPLY (8 tokens and the end) fits.
NOTES_PATH = ("field notes", "from the garden.txt")
CUT = 10


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The folder Claude Code works in, with the file the model reads."""
    folder = tmp_path_factory.mktemp("project")
    (folder / NOTES_PATH[0]).mkdir()
    folder.joinpath(*NOTES_PATH).write_text(NOTES + "\n")
    return folder


@pytest.fixture(scope="module")
def llama_run(tmp_path_factory, project, child_env):
    """llama-server and `stabilizer run --record` in front of it, as a user starts them."""
    folder = tmp_path_factory.mktemp("llama-claude")
    with ExitStack() as started:  # each process stops even when a later one fails to start
        model = write_model(folder / "bigram.gguf", ToolCall("Read", {"file_path": str(project.joinpath(*NOTES_PATH))}))
        server = serve(started, model, CONTEXT)
        config = write_litellm_config(folder / "litellm.yaml", server.url)
        run = StabilizerRun(folder, litellm_config=config, policy=POLICY, env=child_env, record=folder / "flows.flow")
        run.start()  # stops itself when it fails to start
        started.callback(run.stop)
        yield run


def claude(
    run: StabilizerRun, master_key: str, cwd, model: str, prompt: str, tools: str, env_extra: dict | None = None
) -> ClaudeResult:
    return run_claude(
        prompt,
        base_url=run.url,
        auth_token=master_key,
        model=model,
        cwd=cwd,
        extra_args=("--bare", "--system-prompt", "You are terse.", "--tools", tools),
        env_extra=env_extra,
        timeout=180,
    )


def message_flows(run: StabilizerRun) -> list:
    """Every /v1/messages flow so far (oldest first)."""
    with (run.folder / "flows.flow").open("rb") as file:
        return [flow for flow in io.FlowReader(file).stream() if flow.request.path.startswith("/v1/messages")]


def received_by_claude(run: StabilizerRun) -> list[dict]:
    """Every message Claude Code received so far, as it parsed the streams (oldest first)."""
    return [streamed_message(flow.metadata[SENT]["response"]["content"]) for flow in message_flows(run)]


@pytest.mark.parametrize("route", ROUTES)
def test_a_plain_answer_with_its_thinking(llama_run, master_key, project, route):
    result = claude(llama_run, master_key, project, route, "Say hello.", tools="")

    assert not result["is_error"], result.describe()
    assert result["result"] == REPLY
    last = received_by_claude(llama_run)[-1]
    assert [block["type"] for block in last["content"]] == ["thinking", "text"]
    assert last["content"][0]["thinking"].strip() == THOUGHT


@pytest.mark.parametrize("route", ROUTES)
def test_a_tool_round_trip(llama_run, master_key, project, route):
    result = claude(llama_run, master_key, project, route, "Read the notes.", tools="Read")

    assert not result["is_error"], result.describe()
    assert result["result"] == AFTER_TOOL
    assert result["num_turns"] == 2
    call, answer = received_by_claude(llama_run)[-2:]
    (use,) = [block for block in call["content"] if block["type"] == "tool_use"]
    assert use["name"] == "Read" and json.loads(use["input_json"]) == {"file_path": str(project.joinpath(*NOTES_PATH))}
    assert [block["type"] for block in answer["content"]] == ["thinking", "text"]


@pytest.mark.parametrize("route", ROUTES)
def test_a_tool_call_cut_by_max_tokens_is_dropped_and_the_model_goes_on(llama_run, master_key, project, route):
    # llama-server streams the cut Read call with its block stopped; run as it came, Claude Code
    # would answer it "could not be parsed as JSON" and keep the broken call in the history.
    result = claude(
        llama_run, master_key, project, route, "Read the notes.", tools="Read",
        env_extra={"CLAUDE_CODE_MAX_OUTPUT_TOKENS": str(CUT)},
    )  # fmt: skip

    assert not result["is_error"], result.describe()
    assert result["result"] == REPLY
    cut_flow, resumed_flow = message_flows(llama_run)[-2:]
    cut = streamed_message(cut_flow.metadata[SENT]["response"]["content"])
    assert [block["type"] for block in cut["content"]] == ["thinking", "tool_use"]
    assert cut["unfinished"] == [1] and cut["stop_reason"] == "max_tokens"
    # Claude Code dropped the unfinished call, ran nothing, and asked the model to go on.
    resumed = json.loads(resumed_flow.request.content)
    assert "tool_use" not in json.dumps(resumed["messages"]) and "tool_result" not in json.dumps(resumed["messages"])
    assert RESUME in json.dumps(resumed["messages"][-1])


@pytest.mark.parametrize("route", ROUTES)
def test_a_prompt_over_the_window_is_too_long(llama_run, master_key, project, route):
    # One token a byte: the question alone is over llama-server's window.
    result = claude(llama_run, master_key, project, route, "Summarise: " + "lorem ipsum " * (CONTEXT // 8), tools="")

    assert result["is_error"]
    assert result["api_error_status"] == 400
    assert "Prompt is too long" in result["result"], result.describe()
    # Claude Code read llama-server's window from the stack's sentence: what it compacts to.
    assert f"tokens (limit {CONTEXT})" in result["result"], result.describe()


@pytest.fixture(scope="module")
def no_streaming(tmp_path_factory, project, child_env):
    """llama-server, LiteLLM and mitmdump with the bundle, behind which every streaming turn is
    refused (tests/e2e/streaming_refused.py): Claude Code sends each turn again without streaming.
    (the stack's URL, the recorded flows)"""
    folder = tmp_path_factory.mktemp("llama-no-streaming")
    with ExitStack() as started:  # each process stops even when a later one fails to start
        model = write_model(folder / "bigram.gguf", ToolCall("Read", {"file_path": str(project.joinpath(*NOTES_PATH))}))
        server = serve(started, model, CONTEXT)
        config = write_litellm_config(folder / "litellm.yaml", server.url)
        litellm = LiteLLM(config, folder / "logs" / "litellm.log", child_env)
        started.callback(litellm.stop)
        litellm.start()
        proxy = Mitmdump(litellm.log_file, POLICY, child_env, litellm_config=config)
        started.callback(proxy.stop)
        proxy.start(extra_args=("-s", str(Path(__file__).parent / "streaming_refused.py"), "-w", str(folder / "flows")))
        proxy.wait_upstream(litellm.url)
        yield proxy.url, folder / "flows"


@pytest.mark.parametrize("route", ROUTES)
def test_without_streaming_a_tool_call_cut_by_max_tokens_is_not_run(no_streaming, master_key, project, route):
    # Without streaming, llama-server's Messages route gives the cut Read call `input: {}` and LiteLLM's
    # translation of its chat route answers 500: Claude Code would run a Read without its path, or
    # send the same request until it gives up. It gets the max_tokens stop without the call.
    url, flows = no_streaming
    result = run_claude(
        "Read the notes.", base_url=url, auth_token=master_key, model=route, cwd=project,
        extra_args=("--bare", "--system-prompt", "You are terse.", "--tools", "Read"),
        env_extra={"CLAUDE_CODE_MAX_OUTPUT_TOKENS": str(CUT)}, timeout=180,
    )  # fmt: skip

    assert not result["is_error"], result.describe()
    assert result["result"] == REPLY
    with flows.open("rb") as file:
        answered = [flow for flow in io.FlowReader(file).stream() if flow.response.status_code != 404]
    cut, resumed = answered[-2:]
    assert json.loads(cut.request.content)["stream"] is False
    message = json.loads(cut.response.content)
    assert message["stop_reason"] == "max_tokens"
    assert "tool_use" not in [block["type"] for block in message["content"]]
    # Claude Code ran nothing and asked the model to go on.
    asked = json.loads(resumed.request.content)
    assert "tool_result" not in json.dumps(asked["messages"]) and RESUME in json.dumps(asked["messages"][-1])
