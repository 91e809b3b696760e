"""`stabilizer profiles`: each policy entry with its limits and the LiteLLM names that reach it."""

import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import POLICY

STABILIZER = str(Path(sys.executable).parent / "stabilizer")


def profiles(*args: str) -> list[list[str]]:
    done = subprocess.run([STABILIZER, "profiles", "--policy", str(POLICY), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return [line.split("  ") for line in done.stdout.splitlines()]


def cells(line: list[str]) -> list[str]:
    return [cell.strip() for cell in line if cell.strip()]


def test_every_shipped_entry_is_listed_with_its_limits():
    table = {cells(line)[0]: cells(line) for line in profiles()}
    assert set(table) == {"model", "(defaults)", *yaml.safe_load(POLICY.read_text())["models"]}
    assert table["kimi-k3"][1:6] == ["1,048,576", "131,072", "backend decides, reasoning required back", "yes", "128"]
    assert table["qwen3-coder-plus"][3:5] == ["never", "no"]
    assert table["demo"][-1] == "demo (openai)"


def test_names_of_a_litellm_config_are_shown_beside_the_entry_that_serves_them(tmp_path):
    config = tmp_path / "litellm.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model_list": [
                    {"model_name": "my-kimi", "litellm_params": {"model": "openai/kimi-k3"}},
                    {"model_name": "glm-anthropic", "litellm_params": {"model": "anthropic/glm-5.3"}},
                    {"model_name": "something-else", "litellm_params": {"model": "openai/unknown"}},
                ],
                "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
            }
        )
    )
    table = {cells(line)[0]: cells(line)[-1] for line in profiles("--litellm-config", str(config))}
    assert table["kimi-k3"] == "my-kimi (openai)"
    assert table["glm-5.3"] == "glm-anthropic (anthropic)"
    assert table["(defaults)"] == "something-else (openai)"
    assert table["MiniMax-M3"] == "-"


def test_a_broken_policy_is_named():
    done = subprocess.run(
        [STABILIZER, "profiles", "--policy", "/nonexistent/policy.yaml"], capture_output=True, text=True
    )
    assert done.returncode == 1 and "/nonexistent/policy.yaml" in done.stderr
