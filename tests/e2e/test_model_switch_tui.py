"""The real Claude Code's interactive TUI (in tmux) on one session, switching with /model:
DeepSeek (Anthropic route), Qwen (Anthropic route), Kimi (OpenAI route), Claude (verifies
thinking signatures), then /model back to DeepSeek. Every turn answers."""

import shutil

import pytest

from tests.claude import claude_env
from tests.e2e.test_many_models import answers_after_one_read
from tests.tui import Terminal, onboarded

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")

# (model name for /model, the provider's model id the stand-in sees)
MODELS = [
    ("deepseek-flash-anthropic", "deepseek-flash"),
    ("qwen3.7-plus-anthropic", "qwen3.7-plus"),
    ("kimi-k3", "kimi-k3"),
    ("claude-sonnet-anthropic", "claude-sonnet-4-6"),
]


def test_model_switches_in_the_tui_answer_every_turn(stack_run, fresh_backend, master_key, tmp_path):
    cwd, home = tmp_path / "project", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    onboarded(home, cwd)
    env = claude_env(base_url=stack_run.url, auth_token=master_key, model=MODELS[0][0], home=home)
    terminal = Terminal(tmp_path / "tmux.sock", env, cwd).start()
    try:
        for step, (model, model_id) in enumerate([*MODELS, MODELS[0]]):
            if step:
                terminal.switch_model(model)
            path = cwd / f"part{step}.txt"
            path.write_text(f"piece {step}\n")
            fresh_backend.reset()
            fresh_backend.responder = answers_after_one_read(step, str(path))
            # The turn ended, not only its text shown: a /model typed while it runs is taken
            # without the line this waits for.
            terminal.say(f"Step {step}: read part{step}.txt.")
            terminal.wait_for(f"Step {step} done.")
            posts = [e for e in fresh_backend.exchanges if e.method == "POST"]
            assert {e.body["model"] for e in posts} == {model_id} and all(e.status == 200 for e in posts)
    finally:
        terminal.stop()
