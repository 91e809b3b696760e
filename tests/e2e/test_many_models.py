"""The real Claude Code on one session written by five models, both routes, with --continue:
DeepSeek's Anthropic-compatible route, a second Anthropic-compatible provider (Qwen), a thinking
model on the OpenAI-compatible route (Kimi), Anthropic's own Claude (it verifies thinking
signatures), then back to DeepSeek. Claude Code drops the other models' thinking from the
history it sends; the stand-ins enforce each provider's rule (tests/backend/). Every turn answers.
"""

import pytest

from tests.backend import Text, ToolCalls
from tests.claude import run_claude
from tests.conftest import POLICY
from tests.procs import StabilizerRun

# (model name Claude Code sends, the provider's model id the stand-in sees, its route)
SESSION = [
    ("deepseek-flash-anthropic", "deepseek-flash", "anthropic"),
    ("qwen3.7-plus-anthropic", "qwen3.7-plus", "anthropic"),
    ("kimi-k3", "kimi-k3", "openai"),
    ("claude-sonnet-anthropic", "claude-sonnet-4-6", "anthropic"),
    ("deepseek-flash-anthropic", "deepseek-flash", "anthropic"),
]


@pytest.fixture(scope="module")
def stack_run(tmp_path_factory, litellm_config, child_env):
    folder = tmp_path_factory.mktemp("stabilizer-many-models")
    run = StabilizerRun(folder, litellm_config=litellm_config, policy=POLICY, env=child_env).start()
    yield run
    run.stop()


def answers_after_one_read(step: int, path: str):
    """A model that reads `path` once, then answers: the turn's own tool round trip."""

    def model(body: dict):
        last = body["messages"][-1]
        content = last.get("content")
        after_result = last["role"] == "tool" or (
            isinstance(content, list) and any(block.get("type") == "tool_result" for block in content)
        )
        if after_result:
            return Text(f"Step {step} done.", reasoning=f"Step {step}: the file is read.")
        return ToolCalls([("Read", {"file_path": path})], text=f"Reading for step {step}.", reasoning="Read it.")

    return model


def test_one_session_across_five_models_answers_every_turn(stack_run, fresh_backend, master_key, tmp_path):
    cwd, home = tmp_path / "project", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    for step, (model, model_id, route) in enumerate(SESSION):
        path = cwd / f"part{step}.txt"
        path.write_text(f"piece {step}\n")
        fresh_backend.reset()
        fresh_backend.responder = answers_after_one_read(step, str(path))
        result = run_claude(
            f"Step {step}: read part{step}.txt.",
            base_url=stack_run.url,
            auth_token=master_key,
            model=model,
            cwd=cwd,
            home=home,
            extra_args=["--continue"] if step else [],
            timeout=180,
        )
        assert not result["is_error"], (model, result.describe())
        assert result["result"] == f"Step {step} done.", model
        wanted = "/v1/messages" if route == "anthropic" else "/v1/chat/completions"
        sent = [e for e in fresh_backend.exchanges if e.method == "POST" and e.path.startswith(wanted)]
        assert sent and all(e.status == 200 for e in sent), (model, [e.status for e in sent])
        assert {e.body["model"] for e in sent} == {model_id}
        # The whole session so far went to this model: each earlier step's tool turn is in it.
        last = sent[-1].body
        assert sum(f"part{earlier}.txt" in str(last["messages"]) for earlier in range(step + 1)) == step + 1
