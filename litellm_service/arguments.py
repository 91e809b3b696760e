"""The flags several `stabilizer` commands share, declared once.

Each function adds one group of flags to a command's parser, with the same
default and the same help in every command. (Not argparse's parent parsers:
those share their Action objects, so one command's set_defaults would change
another's default. The defaults that depend on the environment, the env file
and the log folder, are read when the parser is built.)
"""

import argparse
from pathlib import Path

from litellm_service import stack
from litellm_service.envfile import default_env_file


def address(parser: argparse.ArgumentParser) -> None:
    """Where the stack listens."""
    parser.add_argument("--host", default="127.0.0.1", help="address the stack listens on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=4000, help="port Claude Code talks to (default 4000)")


def configs(parser: argparse.ArgumentParser, litellm_config: Path | None = stack.DEFAULT_LITELLM_CONFIG) -> None:
    """LiteLLM's config and the addons' policy."""
    shown = stack.DEFAULT_LITELLM_CONFIG.relative_to(stack.PROJECT_ROOT)
    parser.add_argument(
        "--litellm-config", type=Path, default=litellm_config, help=f"LiteLLM's config (default {shown})"
    )
    parser.add_argument(
        "--policy",
        type=Path,
        default=stack.DEFAULT_POLICY,
        help=f"the addons' settings (default {stack.DEFAULT_POLICY.relative_to(stack.PROJECT_ROOT)})",
    )


def env_file(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--env-file",
        type=Path,
        default=default_env_file(),
        help=f"API keys and the master key, mode 0600 (default {default_env_file()})",
    )


def log_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-dir",
        type=Path,
        default=stack.default_log_dir(),
        help=f"where the logs are (default {stack.default_log_dir()})",
    )


def upstream(parser: argparse.ArgumentParser) -> None:
    """A LiteLLM that runs elsewhere."""
    parser.add_argument(
        "--upstream",
        metavar="URL",
        help="start only mitmdump, in front of the LiteLLM at URL (http or https, e.g. a team's): "
        "keys (virtual keys too) are left to it",
    )
    parser.add_argument(
        "--upstream-ca",
        type=Path,
        metavar="FILE",
        help="with --upstream: the CA certificate(s) the upstream's TLS certificate is checked against",
    )


def classifier(parser: argparse.ArgumentParser) -> None:
    """Which model judges auto mode's tool calls (addons/safeguards.py)."""
    parser.add_argument(
        "--classifier-model",
        metavar="NAME",
        default="auto",
        help="the model of the LiteLLM config that judges Claude Code's tool calls in auto mode (say, a cheap "
        "fast one); default auto: the background_model of the session's policy entry, else the session's model",
    )


def stack_arguments(parser: argparse.ArgumentParser) -> None:
    """Everything that says which stack: its address, configs, logs and keys."""
    address(parser)
    configs(parser)
    log_dir(parser)
    env_file(parser)
