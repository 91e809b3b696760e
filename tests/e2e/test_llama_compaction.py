"""The real Claude Code compacts in time against the real llama-server's small window.

llama-server runs with -c WINDOW and a model of tests/llama/model.py (one token a byte), the
policy gives the model that window, and Claude Code gets it from `stabilizer aliases`' own
environment. Its usage figures are llama-server's own counts, which the stack completes (the
cached prompt is reported apart): told the window, Claude Code must ask for its summary before
llama-server would refuse a prompt, and every turn must succeed.
"""

import json
from contextlib import ExitStack

import pytest
import yaml
from mitmproxy import io

from addons.config.policy import load_policy
from litellm_service.aliases import claude_code_environment
from tests.claude import session_prompt
from tests.llama.model import REPLY, ToolCall, write_model
from tests.llama.server import MODEL_ID, OPENAI_ROUTE, serve, write_litellm_config, write_policy
from tests.procs import StabilizerRun

WINDOW = 49152
TURN_BYTES = 12000  # tokens too, in this vocabulary
MOST_PROMPTS = 8  # compaction is due by the third; the cap only bounds a failing run
# Claude Code's request for a summary opens its last user message with this (2.1.x).
SUMMARY_REQUEST = "create a detailed summary of the conversation"


def report(turn: int) -> str:
    sentence = f"Paragraph of report {turn} describes one more detail of the project at length. "
    return sentence * (TURN_BYTES // len(sentence)) + "\nJust say noted."


@pytest.fixture(scope="module")
def small_window_run(tmp_path_factory, child_env):
    folder = tmp_path_factory.mktemp("llama-compaction")
    with ExitStack() as started:  # each process stops even when a later one fails to start
        model = write_model(folder / "bigram.gguf", ToolCall("Read", {"file_path": "/dev/null"}))
        server = serve(started, model, WINDOW)
        config = write_litellm_config(folder / "litellm.yaml", server.url)
        policy = write_policy(folder / "stabilizer.yaml")
        text = yaml.safe_load(policy.read_text())
        text["models"][MODEL_ID].update(context_window=WINDOW, max_output_tokens=4096, safety_margin_tokens=2048)
        policy.write_text(yaml.safe_dump(text))
        run = StabilizerRun(folder, litellm_config=config, policy=policy, env=child_env, record=folder / "flows.flow")
        run.start()  # stops itself when it fails to start
        started.callback(run.stop)
        yield run, load_policy(str(policy)).for_model(MODEL_ID)


def test_claude_code_compacts_before_llama_server_refuses(small_window_run, master_key, tmp_path):
    run, limits = small_window_run
    environment = claude_code_environment(OPENAI_ROUTE, limits, run.url)
    (tmp_path / "project").mkdir()
    (tmp_path / "home").mkdir()

    def claude(prompt: str, first: bool = False):
        result = session_prompt(
            prompt,
            first=first,
            base_url=run.url,
            auth_token=master_key,
            model=OPENAI_ROUTE,
            cwd=tmp_path / "project",
            home=tmp_path / "home",
            extra_args=("--bare", "--system-prompt", "You are terse.", "--tools", ""),
            env_extra=environment,
            timeout=180,
        )
        assert result["result"] == REPLY
        return result

    def requests() -> list[tuple[dict, int]]:
        with (run.folder / "flows.flow").open("rb") as file:
            flows = [f for f in io.FlowReader(file).stream() if f.request.path.startswith("/v1/messages")]
        return [(json.loads(flow.request.content), flow.response.status_code) for flow in flows]

    def summarised() -> bool:
        return any(SUMMARY_REQUEST in json.dumps(body["messages"][-1]).lower() for body, _ in requests())

    claude("Say hello.", first=True)
    for turn in range(MOST_PROMPTS):
        claude(report(turn))
        if summarised():
            break
    claude("Say hello again.")

    assert summarised(), f"no compaction in {len(requests())} requests"
    assert [status for _, status in requests()] == [200] * len(requests())
