"""The real Claude Code's interactive TUI (in tmux) on one session, switching with /model:
DeepSeek (Anthropic route), Qwen (Anthropic route), Kimi (OpenAI route), Claude (verifies
thinking signatures), then /model back to DeepSeek. Every turn answers."""

import json
import shutil
import subprocess
import time

import pytest

from tests.claude import claude_binary, claude_env
from tests.conftest import POLICY
from tests.e2e.test_many_models import answers_after_one_read
from tests.procs import StabilizerRun

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")

# (model name for /model, the provider's model id the stand-in sees)
MODELS = [
    ("deepseek-flash-anthropic", "deepseek-flash"),
    ("qwen3.7-plus-anthropic", "qwen3.7-plus"),
    ("kimi-k3", "kimi-k3"),
    ("claude-sonnet-anthropic", "claude-sonnet-4-6"),
]


@pytest.fixture(scope="module")
def stack_run(tmp_path_factory, litellm_config, child_env):
    folder = tmp_path_factory.mktemp("stabilizer-tui")
    run = StabilizerRun(folder, litellm_config=litellm_config, policy=POLICY, env=child_env).start()
    yield run
    run.stop()


class Tmux:
    def __init__(self, name: str):
        self.name = name

    def send(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def type(self, text: str) -> None:
        self.send("-l", text)
        self.send("Enter")

    def screen(self) -> str:
        return subprocess.run(
            ["tmux", "capture-pane", "-p", "-t", self.name, "-S", "-200"], check=True, capture_output=True, text=True
        ).stdout

    def wait_for(self, text: str, timeout: float = 90) -> str:
        """The pane once it shows `text` (polled: the TUI gives no other signal); an API error
        shown first fails at once."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in (screen := self.screen()):
                return screen
            if "API Error" in screen:
                raise AssertionError(f"an API error instead of {text!r}; the pane:\n{screen}")
            time.sleep(0.3)
        raise AssertionError(f"{text!r} never appeared; the pane:\n{self.screen()}")


def test_model_switches_in_the_tui_answer_every_turn(stack_run, fresh_backend, master_key, tmp_path):
    cwd, home = tmp_path / "project", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    # A first run's onboarding and the folder's trust dialog, answered as a user has before.
    (home / ".claude.json").write_text(
        json.dumps({"hasCompletedOnboarding": True, "projects": {str(cwd): {"hasTrustDialogAccepted": True}}})
    )
    env = claude_env(base_url=stack_run.url, auth_token=master_key, model=MODELS[0][0], home=home)
    name = f"stz-tui-{tmp_path.name}"
    command = " ".join(["env", "-i", *(f"{k}={v!r}" for k, v in env.items()), str(claude_binary())])
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", name, "-x", "200", "-y", "50", "-c", str(cwd), command], check=True
    )
    tmux = Tmux(name)
    try:
        tmux.wait_for("❯", 60)
        for step, (model, model_id) in enumerate([*MODELS, MODELS[0]]):
            if step:
                tmux.type(f"/model {model}")
                # Claude Code asks before a switch that re-reads the cached history.
                tmux.wait_for(f"Yes, switch to {model}")
                tmux.send("Enter")
                tmux.wait_for(f"Set model to {model}")
            path = cwd / f"part{step}.txt"
            path.write_text(f"piece {step}\n")
            fresh_backend.reset()
            fresh_backend.responder = answers_after_one_read(step, str(path))
            tmux.type(f"Step {step}: read part{step}.txt.")
            tmux.wait_for(f"Step {step} done.")
            posts = [e for e in fresh_backend.exchanges if e.method == "POST"]
            assert {e.body["model"] for e in posts} == {model_id} and all(e.status == 200 for e in posts)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], check=False)
