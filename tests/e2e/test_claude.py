"""The real Claude Code CLI through `stabilizer run`: the five scenarios of the project's issue 5.

One `stabilizer run` (LiteLLM, and mitmdump with the addons, recording flows)
serves the module on a free port, in front of the session's stand-in backend,
which plays each scenario's answers with its provider's quirks switched on.
Every scenario runs `claude -p ... --output-format json` and asserts on the
CLI's result and on what the backend received; then it checks the flows the
scenario left in the recording (there, streamed bodies included, no key in
them) and keeps them.

Recording tests/flows/ again (after a Claude Code upgrade, or a change of the
addons): `make flows`, which runs this module with STABILIZER_RECORD_FLOWS=DIR;
each scenario that passed then has its /v1/messages flows written to
DIR/<scenario>.flow when the module ends.
"""

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from mitmproxy import http, io

from addons.config.policy import load_policy
from addons.flow.change import ChangeKind
from addons.flow.notes import SENT, changes
from addons.messages.tokens import count_text
from addons.recorder import PLACEHOLDER
from tests.backend import DEEPSEEK_KEYS, Text, ToolCalls, request_tokens
from tests.claude import ClaudeResult, run_claude
from tests.procs import StabilizerRun
from tests.streams import streamed_message

ROOT = Path(__file__).resolve().parent.parent.parent
POLICY = ROOT / "tests" / "data" / "policy-small.yaml"
RECORD_FLOWS_VAR = "STABILIZER_RECORD_FLOWS"
MESSAGES_PATH = "/v1/messages"
# The names under which the scenarios keep their flows (tests/flows/<name>.flow).
SCENARIOS = frozenset({"plain-answer", "tool-round-trip", "long-session", "context-error", "system-text"})


@dataclass
class Recording:
    """The module's flow file, and the flows each passing scenario kept."""

    path: Path
    secrets: list[bytes]
    kept: dict[str, list[http.HTTPFlow]] = field(default_factory=dict)

    def messages_flows_since(self, start: float) -> list[http.HTTPFlow]:
        with self.path.open("rb") as file:
            return [
                flow
                for flow in io.FlowReader(file).stream()
                if flow.request.timestamp_start >= start and flow.request.path.startswith(MESSAGES_PATH)
            ]

    def keep(self, name: str, start: float) -> list[http.HTTPFlow]:
        """The scenario's /v1/messages flows, checked: complete, redacted. Kept for `make flows`."""
        flows = self.messages_flows_since(start)
        assert flows, "the scenario left no /v1/messages flow in the recording"
        raw = self.path.read_bytes()
        for secret in self.secrets:
            assert secret not in raw, "a key reached the flow file"
        for flow in flows:
            sent = http.Request.from_state(flow.metadata[SENT]["request"])
            for request in (flow.request, sent):
                assert request.headers.get("authorization", PLACEHOLDER) == PLACEHOLDER
                assert request.headers.get("x-api-key", PLACEHOLDER) == PLACEHOLDER
            assert flow.response is not None and flow.response.content, "the upstream's body is missing"
            assert flow.metadata[SENT]["response"]["content"], "the body the client got is missing"
        self.kept[name] = flows
        return flows

    def write_kept(self, folder: Path) -> None:
        """All scenarios' flows, or none: a partial set would mix two recordings."""
        if missing := SCENARIOS - set(self.kept):
            raise RuntimeError(f"scenarios without flows: {', '.join(sorted(missing))}; {folder} left as it was")
        folder.mkdir(parents=True, exist_ok=True)
        for name, flows in self.kept.items():
            with (folder / f"{name}.flow").open("wb") as file:
                writer = io.FlowWriter(file)
                for flow in flows:
                    writer.add(flow)


@dataclass
class RunningStack:
    url: str
    recording: Recording


@pytest.fixture(scope="module")
def stabilizer(tmp_path_factory, litellm_config, child_env, master_key, provider_key):
    """`stabilizer run --record` on a free port, with the e2e policy, until the module ends."""
    folder = tmp_path_factory.mktemp("stabilizer-run")
    record = folder / "flows.flow"
    run = StabilizerRun(folder, litellm_config=litellm_config, policy=POLICY, env=child_env, record=record).start()
    recording = Recording(record, [master_key.encode(), provider_key.encode()])
    try:
        yield RunningStack(run.url, recording)
    finally:
        run.stop()
    if folder_out := os.environ.get(RECORD_FLOWS_VAR):
        recording.write_kept(Path(folder_out))


@dataclass
class Scenario:
    stack: RunningStack
    master_key: str
    cwd: Path
    start: float = field(default_factory=time.time)

    def claude(self, prompt: str, model: str, **kwargs) -> ClaudeResult:
        return run_claude(
            prompt, base_url=self.stack.url, auth_token=self.master_key, model=model, cwd=self.cwd, **kwargs
        )

    def keep_flows(self, name: str) -> list[http.HTTPFlow]:
        return self.stack.recording.keep(name, self.start)


@pytest.fixture
def scenario(stabilizer, fresh_backend, master_key, tmp_path) -> Scenario:
    cwd = tmp_path / "project"
    cwd.mkdir()
    return Scenario(stabilizer, master_key, cwd)


def texts(message: dict) -> str:
    """All the text of an OpenAI chat message (string or parts), tool calls excluded."""
    content = message.get("content")
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""


def conversation(request: dict) -> list[dict]:
    return [message for message in request["messages"] if message["role"] != "system"]


def assert_valid_conversation(request: dict) -> None:
    """User and assistant turns alternate from a user turn to a final user (or tool) turn;
    every tool message answers a tool call of the assistant turn before it."""
    turns = conversation(request)
    assert turns[0]["role"] == "user" and turns[-1]["role"] in ("user", "tool")
    open_calls: set[str] = set()
    previous = None
    for message in turns:
        role = message["role"]
        if role == "tool":
            assert message["tool_call_id"] in open_calls, "a tool result answers no kept tool call"
            open_calls.discard(message["tool_call_id"])
        else:
            assert not open_calls, "a tool call lost its result"
            assert role != previous, f"two {role} turns in a row"
            open_calls = {call["id"] for call in message.get("tool_calls") or []}
        previous = role if role != "tool" else "user"


# --- 1. a plain answer, streaming -----------------------------------------------------------


def test_plain_answer_streams_with_usage_filled(scenario, fresh_backend):
    answer = "Paris is the capital of France, on the Seine."
    # DeepSeek V4 (strict keys, thinking by default) sending no usage at all, in awkward chunks.
    fresh_backend.script([Text(answer, reasoning="The capital of France is Paris.")])
    with fresh_backend.quirks(usage="absent", chunking="odd"):
        result = scenario.claude("What is the capital of France?", "deepseek-flash")

    assert not result["is_error"], result.describe()
    assert result["result"] == answer
    # The backend said nothing about usage: the count Claude Code got is the stabilizer's estimate.
    assert result["usage"]["input_tokens"] > 1000 and result["usage"]["output_tokens"] > 0

    (exchange,) = [e for e in fresh_backend.exchanges if e.method == "POST"]
    assert exchange.status == 200
    assert exchange.body["stream"] is True
    assert set(exchange.body) <= set(DEEPSEEK_KEYS)
    assert exchange.body["max_tokens"] == 32000  # Claude Code's own, within DeepSeek V4's 393216

    (flow,) = scenario.keep_flows("plain-answer")
    received = streamed_message(flow.metadata[SENT]["response"]["content"])
    # The model's reasoning reached Claude Code as a thinking block, before the answer.
    assert [block["type"] for block in received["content"]] == ["thinking", "text"]
    assert received["content"][0]["thinking"] == "The capital of France is Paris."


# --- 2. a tool round trip -------------------------------------------------------------------


def test_tool_round_trip_reads_the_file_and_quotes_it(scenario, fresh_backend):
    content = "The launch code is TANGERINE-42."
    notes = scenario.cwd / "notes.txt"
    notes.write_text(content + "\n")

    def model(body: dict):
        results = [message for message in body["messages"] if message["role"] == "tool"]
        if results:
            return Text(f"The file says: {texts(results[-1])}")
        return ToolCalls([("Read", {"file_path": str(notes)})], text="Let me read it.")

    fresh_backend.responder = model
    # Qwen: an empty id and the type on every tool-call fragment; usage null on every chunk.
    with fresh_backend.quirks(usage="null", chunking="odd"):
        result = scenario.claude("What does notes.txt say?", "qwen-plus")

    assert not result["is_error"], result.describe()
    assert content in result["result"]
    assert result["num_turns"] == 2

    first, second = fresh_backend.requests
    assert "Read" in {tool["function"]["name"] for tool in first["tools"]}
    call_turn, tool_result = conversation(second)[-2:]
    (call,) = call_turn["tool_calls"]
    assert call["function"]["name"] == "Read" and str(notes) in call["function"]["arguments"]
    assert tool_result["role"] == "tool" and tool_result["tool_call_id"] == call["id"]
    assert content in texts(tool_result)
    assert_valid_conversation(second)

    assert len(scenario.keep_flows("tool-round-trip")) == 2


# --- 3. a long session, resumed past the model's window --------------------------------------


def filler(tokens: int, topic: str) -> str:
    """Plain prose of about `tokens` tokens, every sentence different."""
    sentence = "Paragraph {} of the " + topic + " describes one more detail of the project at length."
    per_sentence = count_text(sentence.format(1000))
    return " ".join(sentence.format(1000 + i) for i in range(tokens // per_sentence))


def test_long_session_is_trimmed_to_a_valid_conversation(scenario, fresh_backend, tmp_path):
    model = "plain-model"
    policy = load_policy(str(POLICY)).for_model(model)
    budget = policy.input_budget(policy.max_output_tokens)  # Claude Code's 32000 is capped to this
    # The backend's own limit: an untrimmed history over the budget is over it too.
    backend_window = policy.context_window - policy.safety_margin_tokens
    home = tmp_path / "home"

    with fresh_backend.quirks(context_window=backend_window, usage="zero"):
        fresh_backend.script([Text("Noted: the word is ORCHID.")])
        first = scenario.claude("Remember the word ORCHID for later.", model, home=home)
        assert not first["is_error"], first.describe()
        # What is left of the window after Claude Code's system prompt and tools.
        room = budget - request_tokens(fresh_backend.requests[-1])
        document = filler(room * 65 // 100, "first report")
        question = filler(room * 55 // 100, "second report") + "\n\nWhich word did I ask you to remember?"

        fresh_backend.script([Text("I have read it all.")])
        second = scenario.claude(document, model, home=home, extra_args=["--resume", first["session_id"]])
        assert not second["is_error"], second.describe()
        assert document in texts(conversation(fresh_backend.requests[-1])[-1])  # it still fitted whole

        fresh_backend.script([Text("The word was ORCHID.")])
        third = scenario.claude(question, model, home=home, extra_args=["--resume", first["session_id"]])

    assert not third["is_error"], third.describe()
    assert third["result"] == "The word was ORCHID."
    received = fresh_backend.exchanges[-1]
    assert received.status == 200
    request = received.body
    # Untrimmed, the backend would have refused it: the document alone tips it over.
    assert request_tokens(request) + count_text(document) + request["max_tokens"] > backend_window
    turns = conversation(request)
    everything = "\n".join(texts(message) for message in turns)
    assert "ORCHID" in texts(turns[0])  # the task stays
    assert "first report" not in everything  # the middle went
    assert "I have read it all." in everything  # the last turn stays whole
    assert question in everything
    assert re.search(r"\d+ earlier messages of this conversation were omitted", everything)
    assert_valid_conversation(request)

    flows = scenario.keep_flows("long-session")
    assert any(change.kind is ChangeKind.TRIMMED for change in changes(flows[-1]))


# --- 4. the backend's own context-length 400 ------------------------------------------------


def test_context_length_400_becomes_claude_codes_prompt_too_long(scenario, fresh_backend):
    # DeepSeek's real limit check, with a window smaller than Claude Code's first request:
    # it answers 400 in its own (OpenAI) wording, which the policy's 131072 did not foresee.
    with fresh_backend.quirks(context_window=8000):
        result = scenario.claude("say hi", "deepseek-flash")

    assert result["is_error"]
    assert result["api_error_status"] == 400
    assert "Prompt is too long" in result["result"], result.describe()
    assert "API Error: 400" not in result["result"]
    (exchange,) = [e for e in fresh_backend.exchanges if e.method == "POST"]  # not retried
    assert exchange.status == 400

    (flow,) = scenario.keep_flows("context-error")
    assert b"maximum context length" in flow.response.content  # as the upstream worded it


# --- 5. mid-conversation system text --------------------------------------------------------


def test_mid_conversation_system_text_reaches_the_backend(scenario, fresh_backend):
    result = scenario.claude("say hi", "qwen-plus")
    assert not result["is_error"], result.describe()

    (flow,) = scenario.keep_flows("system-text")
    sent_by_claude = flow.request.json()["messages"]
    (system,) = [message for message in sent_by_claude if message["role"] == "system"]
    system_text = system["content"] if isinstance(system["content"], str) else system["content"][0]["text"]
    first_line = system_text.splitlines()[0]
    assert first_line  # e.g. "Available agent types for the Agent tool:"

    (request,) = fresh_backend.requests
    user_text = "\n".join(texts(message) for message in conversation(request))
    assert first_line in user_text
