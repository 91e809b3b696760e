"""addons/errors/config.py: ConfigError, the one base class of the problems that stop a start.

The CLI says one after `stabilizer: ` and exits non-zero, without a traceback; an addon
raises it again as mitmproxy's OptionsError: tests/addons/test_litellm_config.py.
"""

import os
import stat

import pytest

from addons.config.litellm_config import LiteLLMConfigError
from addons.config.policy import PolicyError
from addons.errors.config import ConfigError
from litellm_service.cli import StartupError, main
from litellm_service.envfile import EnvFileError
from litellm_service.service import ServiceError
from litellm_service.stack import PortUnavailable, UpstreamUnavailable


@pytest.mark.parametrize(
    "problem",
    [LiteLLMConfigError, PolicyError, EnvFileError, StartupError, ServiceError, PortUnavailable, UpstreamUnavailable],
)
def test_every_start_up_problem_is_a_config_error(problem):
    assert issubclass(problem, ConfigError) and issubclass(problem, Exception)


@pytest.fixture
def environ(monkeypatch):
    """The process environment, put back after the test: `stabilizer key` loads the env file into it."""
    monkeypatch.setattr(os, "environ", dict(os.environ))
    os.environ["LITELLM_MASTER_KEY"] = "sk-set"  # no key generated into the env file


@pytest.mark.parametrize("broken", ["litellm config", "env file"])
def test_the_cli_says_the_problem_and_exits_without_a_traceback(tmp_path, capsys, environ, broken):
    config, env = tmp_path / "litellm.yaml", tmp_path / "env"
    config.write_text("general_settings:\n  master_key: os.environ/LITELLM_MASTER_KEY\n")
    if broken == "litellm config":
        config.write_bytes("model_list:\n  - model_name: café\n".encode("latin-1"))
        message = f"{config}: not UTF-8 (byte 31: invalid continuation byte). Fix: save it as UTF-8"
    else:
        env.write_text("LITELLM_MASTER_KEY=sk-file\n")
        env.chmod(stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IROTH)
        message = f"{env} is readable by other users (mode 0644) and holds API keys; fix it with: chmod 600 {env}"
    assert main(["key", "--litellm-config", str(config), "--env-file", str(env)]) == 1
    assert capsys.readouterr() == ("", f"stabilizer: {message}\n")
