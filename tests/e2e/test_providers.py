"""The real Claude Code on each provider's thinking model, on each route it serves.

A user runs `stabilizer run` with config/stabilizer.yaml and a LiteLLM entry for
the provider: an OpenAI-compatible one (LiteLLM translates to Chat Completions)
or an Anthropic-compatible one (LiteLLM passes the Messages request through).
The stand-in backend thinks the way each provider documents it (tests/backend/):
DeepSeek, Qwen, Kimi, GLM, MiniMax, vLLM, Ollama and llama-server, each with its
own reasoning field, switch and round-trip rule. Each scenario asserts on Claude
Code's result, on every request the backend received, and on the stream Claude
Code itself received (the flows recorded by `stabilizer run --record`). The
last scenario checks the token counts Claude Code ends a prompt with against
what the backend received, for each way a backend reports usage.
"""

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from mitmproxy import io

from addons.flow.notes import SENT
from tests.backend import Backend, Text, ToolCalls, request_tokens
from tests.claude import ClaudeResult, run_claude
from tests.conftest import POLICY
from tests.procs import StabilizerRun
from tests.streams import streamed_message

# Each provider's route -> (how LiteLLM reaches the backend, the model name Claude Code sends);
# tests/conftest.py writes the LiteLLM entries.
ROUTES = {
    "deepseek-openai": ("openai", "deepseek-flash"),
    "deepseek-anthropic": ("anthropic", "deepseek-flash-anthropic"),
    "qwen-openai": ("openai", "qwen3.8-max"),
    "qwen-anthropic": ("anthropic", "qwen3.7-plus-anthropic"),
    "kimi-openai": ("openai", "kimi-k3"),
    "kimi-anthropic": ("anthropic", "kimi-k2.6-anthropic"),
    "glm-openai": ("openai", "glm-5.3"),
    "glm-anthropic": ("anthropic", "glm-5.3-flash-anthropic"),
    "minimax-anthropic": ("anthropic", "MiniMax-M3"),
    "minimax-openai": ("openai", "minimax-m3-openai"),  # its reasoning inside <think> tags in the text
    "vllm-openai": ("openai", "vllm-qwen3-coder"),
    "ollama-openai": ("openai", "ollama-qwen3-coder"),
    "llamacpp-openai": ("openai", "llamacpp-local"),
    "vllm-anthropic": ("anthropic", "vllm-qwen3-coder-anthropic"),
    "ollama-anthropic": ("anthropic", "ollama-qwen3-coder-anthropic"),
    "llamacpp-anthropic": ("anthropic", "llamacpp-local-anthropic"),
}
# Routes whose backend writes its reasoning inside <think> tags in the text, and wants it back there.
THINK_TAG_ROUTES = {"minimax-openai"}
THINK_TAGS = re.compile(r"<think>\n(.*?)\n</think>", re.DOTALL)
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.fixture(scope="module")
def stack_run(tmp_path_factory, litellm_config, child_env):
    """`stabilizer run --record` with the shipped policy, as a user starts it."""
    folder = tmp_path_factory.mktemp("stabilizer-thinking")
    run = StabilizerRun(
        folder, litellm_config=litellm_config, policy=POLICY, env=child_env, record=folder / "flows.flow"
    ).start()
    yield run
    run.stop()


@dataclass
class Session:
    """One route's conversation: the CLI runs, and what the backend received on that route."""

    name: str  # a key of ROUTES
    run: StabilizerRun
    backend: Backend
    master_key: str
    cwd: Path
    home: Path
    start: float = field(default_factory=time.time)

    @property
    def route(self) -> str:
        return ROUTES[self.name][0]

    @property
    def model(self) -> str:
        return ROUTES[self.name][1]

    def claude(self, prompt: str, *extra_args: str) -> ClaudeResult:
        return run_claude(
            prompt,
            base_url=self.run.url,
            auth_token=self.master_key,
            model=self.model,
            cwd=self.cwd,
            home=self.home,
            extra_args=extra_args,
            timeout=180,
        )

    def requests(self) -> list[dict]:
        """The bodies the backend received, in order, all answered 200."""
        wanted = "/v1/messages" if self.route == "anthropic" else "/v1/chat/completions"
        exchanges = [e for e in self.backend.exchanges if e.method == "POST" and e.path.startswith(wanted)]
        assert [e.status for e in exchanges] == [200] * len(exchanges), [e.status for e in exchanges]
        return [e.body for e in exchanges]

    def tool_results(self, body: dict) -> list[str]:
        """The text of each tool result in a request, in order."""
        if self.route == "openai":
            return [texts(message) for message in body["messages"] if message["role"] == "tool"]
        return [
            texts(block)
            for message in body["messages"]
            if message["role"] == "user"
            for block in blocks(message)
            if block.get("type") == "tool_result"
        ]

    def reasoning(self, body: dict) -> list[str | None]:
        """Each assistant turn's reasoning as the backend got it back (None: none)."""
        turns = [message for message in body["messages"] if message["role"] == "assistant"]
        if self.name in THINK_TAG_ROUTES:
            return [
                match.group(1) if (match := THINK_TAGS.match(message.get("content") or "")) else None
                for message in turns
            ]
        if self.route == "openai":
            return [message.get("reasoning_content") for message in turns]
        return [
            next((block["thinking"] for block in blocks(message) if block.get("type") == "thinking"), None)
            for message in turns
        ]

    def signatures(self, body: dict) -> list[str]:
        return [
            block["signature"]
            for message in body["messages"]
            if message["role"] == "assistant"
            for block in blocks(message)
            if block.get("type") == "thinking"
        ]

    def received_by_claude(self) -> list[dict]:
        """The messages Claude Code received since the session began, as it parsed the streams."""
        with (self.run.folder / "flows.flow").open("rb") as file:
            flows = [
                flow
                for flow in io.FlowReader(file).stream()
                if flow.request.timestamp_start >= self.start and flow.request.path.startswith("/v1/messages")
            ]
        return [streamed_message(flow.metadata[SENT]["response"]["content"]) for flow in flows]


def blocks(message: dict) -> list[dict]:
    content = message.get("content")
    return content if isinstance(content, list) else []


def texts(value: dict) -> str:
    content = value.get("content")
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""


def first_user_text(body: dict) -> str:
    user = next(message for message in body["messages"] if message["role"] == "user")
    return texts(user)


@pytest.fixture(params=list(ROUTES))
def session(request, stack_run, fresh_backend, master_key, tmp_path) -> Session:
    cwd, home = tmp_path / "project", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    return Session(request.param, stack_run, fresh_backend, master_key, cwd, home)


def read_parts_in_order(session: Session, count: int):
    """A model that reads part0.txt .. part<count-1>.txt one tool call at a time, then answers."""
    for index in range(count):
        (session.cwd / f"part{index}.txt").write_text(f"piece {index}: {'ABCDE'[index]}\n")

    def model(body: dict):
        done = len(session.tool_results(body))
        if done < count:
            path = session.cwd / f"part{done}.txt"
            return ToolCalls(
                [("Read", {"file_path": str(path)})],
                text=f"Reading part {done}.",
                reasoning=f"Step {done}: part{done}.txt comes next.",
            )
        return Text("Read all parts: " + "".join("ABCDE"[:count]) + ".", reasoning="All parts are read.")

    return model


def test_three_tool_round_trips_keep_their_reasoning(session):
    session.backend.responder = read_parts_in_order(session, 3)
    result = session.claude("Read part0.txt, part1.txt and part2.txt, one after the other.")

    assert not result["is_error"], result.describe()
    assert result["result"] == "Read all parts: ABC."
    assert result["num_turns"] == 4
    requests = session.requests()
    assert len(requests) == 4
    # Every later request carried every earlier turn's reasoning back, word for word.
    for number, body in enumerate(requests):
        assert session.reasoning(body) == [f"Step {n}: part{n}.txt comes next." for n in range(number)]
    if session.name == "llamacpp-anthropic":
        # llama-server signs nothing (an empty signature, measured): sent back empty.
        assert session.signatures(requests[-1]) == ["", "", ""]
    elif session.route == "anthropic":
        # Signed by the backend (the message id), sent back as Claude Code got them.
        signatures = session.signatures(requests[-1])
        assert len(set(signatures)) == 3 and all(UUID.match(signature) for signature in signatures)

    # The thinking arrived in Claude Code's stream as a thinking block before the text and the call.
    received = session.received_by_claude()
    assert len(received) == 4
    for number, message in enumerate(received[:3]):
        assert [block["type"] for block in message["content"]] == ["thinking", "text", "tool_use"]
        assert message["content"][0]["thinking"] == f"Step {number}: part{number}.txt comes next."
    assert [block["type"] for block in received[3]["content"]] == ["thinking", "text"]


def test_a_follow_up_prompt_continues_the_session(session):
    session.backend.responder = read_parts_in_order(session, 1)
    first = session.claude("Read part0.txt.")
    assert not first["is_error"], first.describe()

    session.backend.script([Text("It said A.", reasoning="The earlier turn read A.")])
    second = session.claude("What did it say?", "--continue")

    assert not second["is_error"], second.describe()
    assert second["result"] == "It said A."
    follow_up = session.requests()[-1]
    assert "What did it say?" in json.dumps(follow_up["messages"][-1])
    # The first prompt's tool turn and answer came back with their reasoning.
    assert session.reasoning(follow_up) == ["Step 0: part0.txt comes next.", "All parts are read."]


@pytest.mark.parametrize("session", ["deepseek-openai", "deepseek-anthropic"], indirect=True)
def test_a_subagent_turn(session):
    subtask = "SUBTASK-7: report the magic number"

    def model(body: dict):
        if subtask in first_user_text(body):  # the subagent's own conversation
            return Text("The magic number is 42.", reasoning="The subagent knows it.")
        if session.tool_results(body):
            return Text("The subagent reported 42.", reasoning="Its report is in.")
        return ToolCalls(
            [
                (
                    "Agent",
                    {
                        "description": "find the number",
                        "prompt": subtask,
                        "subagent_type": "general-purpose",
                        "run_in_background": False,
                    },
                )
            ],
            reasoning="A subagent should do this.",
        )

    session.backend.responder = model
    result = session.claude("Ask a subagent for the magic number.")

    assert not result["is_error"], result.describe()
    assert result["result"] == "The subagent reported 42."
    requests = session.requests()
    subagent = [body for body in requests if subtask in first_user_text(body)]
    assert subagent, "the subagent never reached the backend"
    final = requests[-1]
    assert "42" in "".join(session.tool_results(final))
    assert session.reasoning(final) == ["A subagent should do this."]


# --- usage: what Claude Code counts --------------------------------------------------------


@pytest.mark.parametrize(
    "usage, cached_share",
    [("real", 0.0), ("null", 0.0), ("absent", 0.0), ("zero", 0.0), ("real", 0.8)],
    ids=["real", "null", "absent", "zero", "cached"],
)
def test_claude_code_counts_what_the_backend_received(
    stack_run, fresh_backend, master_key, tmp_path, usage, cached_share
):
    (tmp_path / "project").mkdir()
    (tmp_path / "home").mkdir()
    session = Session("deepseek-openai", stack_run, fresh_backend, master_key, tmp_path / "project", tmp_path / "home")
    session.backend.responder = read_parts_in_order(session, 2)
    with fresh_backend.quirks(usage=usage, cached_share=cached_share):
        result = session.claude("Read part0.txt and part1.txt.")

    assert not result["is_error"], result.describe()
    received = sum(request_tokens(body) for body in session.requests())
    counted = sum(
        result["usage"][key] for key in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    )
    # Summed over the three requests of the prompt, as Claude Code sums them.
    assert abs(counted - received) <= 0.10 * received, (result["usage"], received)
    if cached_share:
        assert result["usage"]["cache_read_input_tokens"] >= 0.7 * received
