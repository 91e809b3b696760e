"""A LiteLLM config of the user's own, with only model_list and the master key.

Without litellm_settings.use_chat_completions_url_for_anthropic_messages LiteLLM
sends an `openai/` model's turns to the Responses API, which the stand-in, like
the open-weight providers, does not serve (it answers /chat/completions only).
The LiteLLM the stack starts gets the setting from the stack; a LiteLLM of
--upstream, whose config the stack cannot see, meets the provider's 404, which
the front door turns into an error naming the setting.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from addons.config.litellm_config import CHAT_COMPLETIONS_SETTING
from litellm_service.cli import stop
from tests.backend import Text
from tests.conftest import POLICY
from tests.procs import STARTUP_TIMEOUT, StabilizerRun, free_port, get_json, poll_until, post_json

MODEL = "plain-model"


def minimal_config(path: Path, backend_url: str, master_key: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "model_list": [
                    {
                        "model_name": MODEL,
                        "litellm_params": {"model": f"openai/{MODEL}", "api_base": backend_url, "api_key": "sk-fake"},
                    }
                ],
                "general_settings": {"master_key": master_key},
            }
        )
    )
    return path


def posted(backend) -> list[str]:
    """The paths the stand-in was sent requests to (LiteLLM also asks it for its models)."""
    return [exchange.path for exchange in backend.exchanges if exchange.method == "POST"]


def ask(url: str, key: str) -> tuple[int, dict]:
    status, _, raw = post_json(
        url + "/v1/messages",
        {"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]},
        {"authorization": f"Bearer {key}", "anthropic-version": "2023-06-01"},
    )
    return status, json.loads(raw)


def test_the_litellm_the_stack_starts_gets_what_claude_code_needs(tmp_path, child_env, fresh_backend, master_key):
    config = minimal_config(tmp_path / "litellm.yaml", fresh_backend.base_url, master_key)
    fresh_backend.responder = lambda body: Text("Over Chat Completions.")
    run = StabilizerRun(tmp_path, litellm_config=config, policy=POLICY, env=child_env).start()
    try:
        status, body = ask(run.url, master_key)
        assert status == 200, body
        assert body["content"][0]["text"] == "Over Chat Completions."
        assert posted(fresh_backend) == ["/v1/chat/completions"]
    finally:
        run.stop()
    # Said at start, on the terminal and in LiteLLM's log, with the line to add.
    note = f"LiteLLM runs with {CHAT_COMPLETIONS_SETTING}: true"
    assert note in "".join(run.stderr.seen)
    assert note in (tmp_path / "logs" / "litellm.log").read_text()


@pytest.fixture
def plain_litellm(tmp_path, child_env, fresh_backend, master_key):
    """LiteLLM started by its own CLI, as a user starts it elsewhere, on the minimal config."""
    config = minimal_config(tmp_path / "plain-litellm.yaml", fresh_backend.base_url, master_key)
    port = free_port()
    env = dict(child_env, LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_TELEMETRY="False")
    with (tmp_path / "plain-litellm.log").open("wb") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "litellm"), "--config", str(config), "--host", "127.0.0.1",
             "--port", str(port)],
            env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        poll_until(lambda: process.poll() is None and liveness(url), STARTUP_TIMEOUT, "the plain LiteLLM")
        yield url
    finally:
        stop(process)


def liveness(url: str) -> bool:
    try:
        return get_json(url + "/health/liveliness")[0] == 200
    except OSError:
        return False


def test_upstream_the_responses_404_names_the_setting(tmp_path, child_env, fresh_backend, master_key, plain_litellm):
    env = {key: value for key, value in child_env.items() if key != "CONFIG_FILE_PATH"}
    run = StabilizerRun(
        tmp_path, litellm_config=None, policy=POLICY, env=env, extra_args=("--upstream", plain_litellm)
    ).start()
    try:
        status, body = ask(run.url, master_key)
    finally:
        run.stop()
    assert posted(fresh_backend) == ["/v1/responses"]
    assert body["type"] == "error", body
    message = body["error"]["message"]
    assert f"litellm_settings.{CHAT_COMPLETIONS_SETTING}: true" in message, message
    assert status == 404
