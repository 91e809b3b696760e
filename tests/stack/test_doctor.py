"""`stabilizer doctor` against the real session stack, healthy and broken."""

import os
import subprocess

import pytest
import yaml

from litellm_service.stack import DEFAULT_POLICY, venv_tool
from tests.backend.classifier import classifier_question, verdicts
from tests.procs import StabilizerRun, free_port


def doctor(env: dict, *args: str) -> tuple[int, list[str]]:
    done = subprocess.run(
        [venv_tool("stabilizer"), "doctor", "--services", "none", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.stderr == ""
    return done.returncode, done.stdout.splitlines()


def litellm_override_lines(lines: list[str]) -> list[str]:
    """Under `make test LITELLM_VERSION=x.y.z`, the lines that rightly say the LiteLLM is not the
    pinned one (packages) and, for a release without the fix, that it lacks it (litellm)."""
    override = os.environ.get("LITELLM_VERSION")
    if not override:
        return []
    named = (f"problem  packages: litellm {override} (wanted", f"problem  litellm: {override} lacks")
    return [line for line in lines if line.startswith(named)]


def problems(lines: list[str]) -> list[str]:
    """The problem lines, less those that name the LiteLLM of a `make test LITELLM_VERSION=x.y.z`."""
    expected = litellm_override_lines(lines)
    return [line for line in lines if line.startswith("problem") and line not in expected]


@pytest.fixture
def stack_options(stack, litellm, litellm_config, tmp_path) -> list[str]:
    return [
        "--port",
        str(stack.port),
        "--litellm-config",
        str(litellm_config),
        "--policy",
        str(DEFAULT_POLICY),
        "--litellm-log",
        str(litellm.log_file),
        "--env-file",
        str(tmp_path / "env"),
    ]


def test_healthy_stack_is_all_ok(stack_options, child_env, litellm_config, stack, master_key):
    status, lines = doctor(child_env, *stack_options)
    expected = litellm_override_lines(lines)
    assert status == (1 if expected else 0), "\n".join(lines)
    assert lines and all(line.startswith("ok ") or line in expected for line in lines)
    assert any(line.split(":")[0].split()[-1] == "litellm" for line in lines), "doctor names the LiteLLM version"
    # The shipped config's demo model, then the session's (tests/conftest.py), in the config's order.
    models = [entry["model_name"] for entry in yaml.safe_load(litellm_config.read_text())["model_list"]]
    assert models[0] == "demo" and {"deepseek-flash", "deepseek-v4-pro", "qwen-plus", "plain-model"} <= set(models)
    assert [line.split(":")[0].split(None, 1)[1] for line in lines if " model " in line] == [
        f"model {m}" for m in models
    ]
    assert any(f"port {stack.port}: held by this stack" in line for line in lines)
    assert not any(master_key in line for line in lines)


def test_broken_config_is_named_and_fails(stack_options, child_env, tmp_path):
    broken = tmp_path / "litellm.yaml"
    broken.write_text("model_list:\n  - model_name: x\n")
    options = [*stack_options]
    options[options.index("--litellm-config") + 1] = str(broken)
    status, lines = doctor(child_env, *options)
    assert status == 1
    assert problems(lines) == [
        f"problem  litellm config: {broken}: model_list[0].litellm_params.model: expected e.g. openai/deepseek-flash"
    ]


def test_stopped_litellm_is_named_and_fails_at_once(stack_options, child_env, litellm, stack):
    litellm.kill()
    try:
        status, lines = doctor(child_env, *stack_options)
    finally:
        litellm.start()
        stack.wait_upstream(litellm.url)
    assert status == 1
    found = problems(lines)
    assert found[0].startswith("problem  litellm log: LiteLLM at http://127.0.0.1:") and "not answering" in found[0]
    # Not asked: each would wait the stack's 30 s for a restarted LiteLLM.
    assert found[1:] == ["problem  models: not asked: LiteLLM is not answering; fix: fix the problems above first"]


def test_nothing_running_and_a_readable_env_file(child_env, tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("LITELLM_MASTER_KEY=sk-x\n")
    env_file.chmod(0o644)
    status, lines = doctor(
        child_env,
        "--port",
        str(free_port()),
        "--env-file",
        str(env_file),
        "--log-dir",
        str(tmp_path / "logs"),
    )
    assert status == 1
    by_check = {line.split(":")[0].split(None, 1)[1]: line for line in lines}
    assert by_check["env file"].startswith("problem") and f"chmod 600 {env_file}" in by_check["env file"]
    assert by_check["litellm log"].startswith("problem") and "not found" in by_check["litellm log"]
    assert by_check["status"].startswith("problem") and "nothing answers" in by_check["status"]
    assert "free" in next(line for check, line in by_check.items() if check.startswith("port "))


def test_a_model_that_refuses_a_thinking_request_is_named_with_the_fix(stack_options, child_env, fresh_backend):
    # A backend whose max_tokens limit leaves no room for thinking (the probe asks 1024).
    with fresh_backend.quirks(max_tokens_limit=100):
        status, lines = doctor(child_env, *stack_options)
    assert status == 1
    line = next(line for line in problems(lines) if line.startswith("problem  model deepseek-flash:"))
    assert line == (
        "problem  model deepseek-flash: HTTP 400 to one with thinking: deepseek-flash refused the request: Invalid "
        "max_tokens value, the valid range of max_tokens is [1, 100]. Set models.deepseek-flash.max_output_tokens to "
        f"the backend's limit in {DEFAULT_POLICY}.; fix: follow the hint above"
    )
    assert any(line.startswith("ok       model plain-model: answered a request with a tool") for line in lines)


@pytest.fixture(scope="module")
def auto_mode_stack(tmp_path_factory, litellm_config, child_env):
    """`stabilizer run` as a user starts it: auto mode answered, each session's model judging."""
    folder = tmp_path_factory.mktemp("doctor-auto-mode")
    run = StabilizerRun(folder, litellm_config=litellm_config, policy=DEFAULT_POLICY, env=child_env).start()
    yield run
    run.stop()


@pytest.mark.parametrize("answers", [True, False])
def test_the_classifier_is_asked_a_classification(answers, auto_mode_stack, litellm_config, child_env, fresh_backend):
    def respond(body: dict):
        if (question := classifier_question(body)) is not None and answers:
            return verdicts(question, lambda call: None)
        return None  # the stand-in's default answer: words, no verdicts

    fresh_backend.responder = respond
    status, lines = doctor(
        child_env,
        "--port",
        str(auto_mode_stack.port),
        "--litellm-config",
        str(litellm_config),
        "--policy",
        str(DEFAULT_POLICY),
        "--log-dir",
        str(auto_mode_stack.folder / "logs"),
        "--env-file",
        str(auto_mode_stack.folder / "env"),
    )
    judged = [line for line in lines if " auto mode classifier " in line]
    # No policy entry names a background_model: each model of the config judges its own sessions,
    # but the demo model, a mock.
    models = [entry["model_name"] for entry in yaml.safe_load(litellm_config.read_text())["model_list"]]
    assert [line.split(" auto mode classifier ", 1)[1].split(":")[0] for line in judged] == models[1:]
    line = next(line for line in judged if "auto mode classifier deepseek-flash:" in line)
    if answers:
        assert status == 0, "\n".join(problems(lines))
        assert line == "ok       auto mode classifier deepseek-flash: judged a probe tool call (not flagged)"
    else:
        assert line.startswith("problem  auto mode classifier deepseek-flash: no verdict in its answer")
        assert status == 1
