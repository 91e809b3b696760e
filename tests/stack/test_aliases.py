"""`stabilizer aliases`: eval'd in a real shell, with a stand-in `claude` that reports its environment."""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from addons import MASTER_KEY_VAR
from addons.config.policy import ModelPolicy, load_policy
from litellm_service import aliases, stack

SHELLS = [
    "bash",
    pytest.param("zsh", marks=pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")),
]
HOSTILE_NAMES = [
    "x'; touch PWNED; '",
    "$(touch PWNED)",
    "`touch PWNED`",
    'a"; touch PWNED; "b',
    "line\n touch PWNED",
    "${IFS}touch${IFS}PWNED",
    "qwen2.5/coder:7b",
    "qwen2.5-coder-7b",  # the same function name as the one above once made valid
    "!!!",
]
FILE_KEY = "sk-from-the-env-file"
PORT = 4123
CLAUDE_VARIABLES = {
    "ANTHROPIC_MODEL",
    "ANTHROPIC_DEFAULT_HAIKU_MODEL",
    "ANTHROPIC_DEFAULT_SONNET_MODEL",
    "ANTHROPIC_DEFAULT_OPUS_MODEL",
    "CLAUDE_CODE_SUBAGENT_MODEL",
}
FUNCTION_NAME = re.compile(r"claude-[A-Za-z0-9_-]+")


@pytest.fixture
def setup(tmp_path) -> dict:
    """A config with ordinary and hostile model names, a policy, an env file and a stand-in claude."""
    models = ["deepseek-flash", "plain-model", *HOSTILE_NAMES]
    config = tmp_path / "litellm.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model_list": [
                    # A key nobody set: listing models must not need it.
                    {
                        "model_name": name,
                        "litellm_params": {"model": "openai/x", "api_key": "os.environ/UNSET_PROVIDER_KEY"},
                    }
                    for name in models
                ],
                "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
            }
        )
    )
    policy = tmp_path / "stabilizer.yaml"
    policy.write_text(
        yaml.safe_dump(
            {
                "defaults": {"context_window": 100000, "max_output_tokens": 5000},
                "models": {"deepseek-flash": {"context_window": 65536, "max_output_tokens": 4000}},
            }
        )
    )
    env_file = tmp_path / "env"
    env_file.write_text(f"{MASTER_KEY_VAR}={FILE_KEY}\n")
    env_file.chmod(0o600)
    tools = tmp_path / "bin"
    tools.mkdir()
    claude = tools / "claude"
    claude.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        "print(json.dumps({'argv': sys.argv[1:], 'env': dict(os.environ)}))\n"
    )
    claude.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE_", "LITELLM_"))}
    env.update(
        PATH=f"{tools}{os.pathsep}/usr/bin{os.pathsep}/bin",
        HOME=str(tmp_path),
        ANTHROPIC_API_KEY="sk-ant-must-not-reach-claude",
        ANTHROPIC_MODEL="left-alone",
    )
    return {"models": models, "config": config, "policy": policy, "env_file": env_file, "work": work, "env": env}


def aliases_command(setup) -> list[str]:
    return [
        stack.venv_tool("stabilizer"),
        "aliases",
        "--litellm-config",
        str(setup["config"]),
        "--policy",
        str(setup["policy"]),
        "--env-file",
        str(setup["env_file"]),
        "--port",
        str(PORT),
    ]


def aliases_text(setup) -> str:
    done = subprocess.run(aliases_command(setup), env=setup["env"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def in_shell(shell: str, setup, script: str) -> str:
    """`script` run after `eval "$(stabilizer aliases ...)"`, the documented use, in an empty directory."""
    done = subprocess.run(
        [shell, "-c", f'eval "$({shlex.join(aliases_command(setup))})"\n{script}'],
        env=setup["env"],
        cwd=setup["work"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("shell", SHELLS)
def test_functions_set_what_claude_code_needs(setup, shell):
    policy = load_policy(str(setup["policy"]))
    names = aliases.function_names(setup["models"])
    for model in ("deepseek-flash", "plain-model"):
        seen = json.loads(in_shell(shell, setup, f'{names[model]} --resume "two words"'))
        env = seen["env"]
        assert seen["argv"] == ["--resume", "two words"]
        assert "ANTHROPIC_API_KEY" not in env
        assert env["ANTHROPIC_BASE_URL"] == f"http://127.0.0.1:{PORT}"
        assert env["ANTHROPIC_AUTH_TOKEN"] == FILE_KEY
        assert {name: env[name] for name in CLAUDE_VARIABLES} == dict.fromkeys(CLAUDE_VARIABLES, model)
        limits = policy.for_model(model)
        assert env["CLAUDE_CODE_MAX_CONTEXT_TOKENS"] == str(aliases.claude_code_window(limits))
        assert env["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] == str(limits.max_output_tokens)
        # `/model` lists the stack's models (GET /v1/models), not Anthropic's.
        assert env["CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY"] == "1"
    assert policy.for_model("deepseek-flash").context_window == 65536  # its own entry, not the defaults


def test_an_alias_gets_the_limits_of_the_model_behind_it(setup):
    # The policy promises one entry for every LiteLLM alias of a model: the window Claude Code
    # compacts at must be the one the request addon trims to.
    config = yaml.safe_load(setup["config"].read_text())
    config["model_list"].append(
        {
            "model_name": "my-deepseek",
            "litellm_params": {"model": "openai/deepseek-flash", "api_key": "os.environ/UNSET_PROVIDER_KEY"},
        }
    )
    setup["config"].write_text(yaml.safe_dump(config))
    name = aliases.function_names([*setup["models"], "my-deepseek"])["my-deepseek"]
    env = json.loads(in_shell("bash", setup, name))["env"]
    assert (env["CLAUDE_CODE_MAX_CONTEXT_TOKENS"], env["CLAUDE_CODE_MAX_OUTPUT_TOKENS"]) == ("61440", "4000")


def test_claude_code_is_left_with_the_request_addons_budget():
    # Claude Code reserves min(max output, 20000) of the window it is told; the rest must be
    # exactly what the request addon lets through untrimmed.
    for window, output, margin in [(48_000, 4096, 2048), (131_072, 32_000, 4096), (1_000_000, 393_216, 4096)]:
        limits = ModelPolicy(context_window=window, max_output_tokens=output, safety_margin_tokens=margin)
        told = aliases.claude_code_window(limits)
        assert told - min(output, 20_000) == limits.input_budget(output)
        environment = aliases.claude_code_environment("m", limits, "http://127.0.0.1:4000")
        # Under 100K Claude Code would read the auto-compact window as 100K and warn at start.
        assert environment.get("CLAUDE_CODE_AUTO_COMPACT_WINDOW") == (str(told) if told >= 100_000 else None)


def test_the_key_is_read_when_the_function_runs_not_printed(setup):
    text = aliases_text(setup)
    assert FILE_KEY not in text
    setup["env_file"].write_text(f"{MASTER_KEY_VAR}=sk-changed-later\n")
    names = aliases.function_names(setup["models"])
    done = subprocess.run(
        ["bash", "-c", f'eval "$ALIASES"; {names["plain-model"]}'],
        env={**setup["env"], "ALIASES": text},
        capture_output=True,
        text=True,
    )
    assert json.loads(done.stdout)["env"]["ANTHROPIC_AUTH_TOKEN"] == "sk-changed-later"


def test_a_refused_env_file_stops_the_function_before_claude(setup):
    setup["env_file"].chmod(0o644)
    names = aliases.function_names(setup["models"])
    done = subprocess.run(
        ["bash", "-c", f'eval "$ALIASES"; {names["plain-model"]}'],
        env={**setup["env"], "ALIASES": aliases_text(setup)},
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and done.stdout == ""
    assert "chmod 600" in done.stderr


@pytest.mark.parametrize("shell", SHELLS)
def test_the_calling_shell_keeps_its_environment(setup, shell):
    names = aliases.function_names(setup["models"])
    out = in_shell(
        shell, setup, f'{names["plain-model"]} >/dev/null; printf "%s|%s" "$ANTHROPIC_MODEL" "$ANTHROPIC_API_KEY"'
    )
    assert out == "left-alone|sk-ant-must-not-reach-claude"


@pytest.mark.parametrize("shell", SHELLS)
def test_hostile_model_names_cannot_inject(setup, shell):
    names = aliases.function_names(setup["models"])
    assert all(FUNCTION_NAME.fullmatch(name) for name in names.values())
    assert len(set(names.values())) == len(names)
    calls = "\n".join(names[model] for model in HOSTILE_NAMES)
    seen = [json.loads(line)["env"]["ANTHROPIC_MODEL"] for line in in_shell(shell, setup, calls).splitlines()]
    assert seen == HOSTILE_NAMES
    assert list(setup["work"].iterdir()) == []  # no PWNED anywhere the commands could have written
    assert not (Path(setup["env"]["HOME"]) / "PWNED").exists()


# Any text a YAML string can hold and a shell variable can carry (no NUL, no lone surrogate).
model_name = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)


@settings(max_examples=60, deadline=None)
@given(st.lists(model_name, min_size=1, max_size=4, unique=True))
def test_any_model_names_eval_to_themselves(models):
    text = aliases.render([(m, ModelPolicy()) for m in models], "http://127.0.0.1:4000", ["printf", "%s", "k"])
    names = aliases.function_names(models)
    # A shell function stands in for claude here: one bash per example, no process per call.
    script = "claude() { printf '%s\\0' \"$ANTHROPIC_MODEL\"; }\n" + text + "\n".join(names[m] for m in models)
    done = subprocess.run(
        ["bash", "-c", script], capture_output=True, env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"}
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split(b"\0")[:-1] == [m.encode() for m in models]


def test_a_broken_config_prints_nothing_to_eval(setup):
    setup["config"].write_text("model_list: []\n")
    done = subprocess.run(aliases_command(setup), env=setup["env"], capture_output=True, text=True)
    assert done.returncode == 1 and done.stdout == ""
    assert "model_list" in done.stderr


def test_function_names_are_valid_and_unique():
    names = aliases.function_names(["a.b", "a-b", "a b", "", "ü", "claude"])
    assert list(names.values()) == [
        "claude-a-b",
        "claude-a-b-2",
        "claude-a-b-3",
        "claude-model",
        "claude-model-2",
        "claude-claude",
    ]


def test_a_name_no_shell_variable_can_hold_is_skipped_with_a_warning(setup):
    config = yaml.safe_load(setup["config"].read_text())
    config["model_list"][0]["model_name"] = "nul\0inside"
    setup["config"].write_text(yaml.safe_dump(config))
    done = subprocess.run(aliases_command(setup), env=setup["env"], capture_output=True, text=True)
    assert done.returncode == 0 and "\0" not in done.stdout
    assert "skipped model 'nul\\x00inside'" in done.stderr
    assert done.stdout.count("function claude-") == len(setup["models"]) - 1


def test_roles_named_in_the_policy_get_their_own_models(setup):
    policy = yaml.safe_load(setup["policy"].read_text())
    policy["models"]["deepseek-flash"].update(background_model="plain-model", subagent_model="qwen2.5-coder-7b")
    setup["policy"].write_text(yaml.safe_dump(policy))
    name = aliases.function_names(setup["models"])["deepseek-flash"]
    env = json.loads(in_shell("bash", setup, name))["env"]
    assert {variable: env[variable] for variable in CLAUDE_VARIABLES} == {
        "ANTHROPIC_MODEL": "deepseek-flash",
        "ANTHROPIC_DEFAULT_SONNET_MODEL": "deepseek-flash",
        "ANTHROPIC_DEFAULT_OPUS_MODEL": "deepseek-flash",
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": "plain-model",
        "CLAUDE_CODE_SUBAGENT_MODEL": "qwen2.5-coder-7b",
    }


def test_a_role_naming_a_model_not_in_the_config_prints_nothing_to_eval(setup):
    policy = yaml.safe_load(setup["policy"].read_text())
    policy["models"]["deepseek-flash"]["background_model"] = "glm-4.5-air"
    setup["policy"].write_text(yaml.safe_dump(policy))
    done = subprocess.run(aliases_command(setup), env=setup["env"], capture_output=True, text=True)
    assert done.returncode == 1 and done.stdout == ""
    assert (
        f"{setup['policy']}: models.deepseek-flash.background_model: 'glm-4.5-air' is not a model_name" in done.stderr
    )
