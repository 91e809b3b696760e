"""LiteLLM's config, read by one reader for the addons and the CLI alike.

The front door takes its master key from it (addons/master_key_auth.py), the
request shaper its routes (addons/config/routes.py), and `stabilizer run`, `key`,
`doctor`, `aliases`, `profiles` and the service install read it here too, so a
config that cannot be read gets one message wherever it is read.
`load_litellm_config` also checks what LiteLLM itself would only report at
request time.
"""

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from addons import MASTER_KEY_VAR
from addons.errors.config import ConfigError

# How a LiteLLM config names an environment variable instead of a value (keys among them).
ENV_PREFIX = "os.environ/"
# What Claude Code's traffic needs of LiteLLM, under litellm_settings: without it LiteLLM sends
# an `openai/` model's /v1/messages turns to the Responses API (`input`, `instructions`,
# `include: ["reasoning.encrypted_content"]`), which DeepSeek, Qwen, Kimi, GLM and the local
# servers do not serve. The stack sets it where a config leaves it out (added_settings); a config
# that sets it false is the user's choice, and the 404 it meets names it (addons/errors/upstream.py).
CHAT_COMPLETIONS_SETTING = "use_chat_completions_url_for_anthropic_messages"
CLAUDE_CODE_SETTINGS: dict[str, Any] = {CHAT_COMPLETIONS_SETTING: True}


class LiteLLMConfigError(ConfigError):
    pass


def read_litellm_config(path: str | Path) -> Any:
    """The LiteLLM config at `path`, parsed but not checked (reading the master key needs no more)."""
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LiteLLMConfigError(
            f"{path}: file not found. Fix: give the LiteLLM config that LiteLLM runs with"
        ) from None
    except UnicodeDecodeError as e:
        raise LiteLLMConfigError(f"{path}: not UTF-8 (byte {e.start}: {e.reason}). Fix: save it as UTF-8") from None
    except OSError as e:
        raise LiteLLMConfigError(f"{path}: cannot read: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise LiteLLMConfigError(f"{path}: not valid YAML: {e}") from None


def _env_refs(value: Any, key_path: str):
    """(key path, NAME) for every `os.environ/NAME` string in the config."""
    if isinstance(value, str) and value.startswith(ENV_PREFIX):
        yield key_path, value.removeprefix(ENV_PREFIX)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _env_refs(item, f"{key_path}.{key}" if key_path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _env_refs(item, f"{key_path}[{index}]")


class EveryVariableSet(dict):
    """An environment in which every `os.environ/NAME` counts as set: listing models needs no keys."""

    def get(self, name, default=None):
        return "set"


def load_litellm_config(path: Path, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Read and check the config; every problem names the file, the key and the fix."""
    environ = os.environ if environ is None else environ
    config = read_litellm_config(path)
    if not isinstance(config, dict):
        raise LiteLLMConfigError(f"{path}: expected a mapping with model_list, litellm_settings, general_settings")
    models = config.get("model_list")
    if not isinstance(models, list) or not models:
        raise LiteLLMConfigError(f"{path}: model_list: expected a non-empty list of models (see the demo entry)")
    for index, entry in enumerate(models):
        if not isinstance(entry, dict) or not isinstance(entry.get("model_name"), str):
            raise LiteLLMConfigError(f"{path}: model_list[{index}].model_name: expected a string")
        if not isinstance(entry.get("litellm_params"), dict) or "model" not in entry["litellm_params"]:
            raise LiteLLMConfigError(
                f"{path}: model_list[{index}].litellm_params.model: expected e.g. openai/deepseek-flash"
            )
    general = config.get("general_settings") or {}
    if not isinstance(general, dict) or not general.get("master_key"):
        raise LiteLLMConfigError(
            f"{path}: general_settings.master_key: required (without it LiteLLM accepts any caller); "
            f"use master_key: {ENV_PREFIX}LITELLM_MASTER_KEY"
        )
    for key_path, name in _env_refs(config, ""):
        if not environ.get(name):
            raise LiteLLMConfigError(
                f"{path}: {key_path}: environment variable {name} is not set; "
                f"add {name}=... to ~/.config/stabilizer/env (mode 0600) or export it"
            )
    return config


def added_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The CLAUDE_CODE_SETTINGS that `config` (a checked one) leaves out of litellm_settings:
    the stack sets them on the LiteLLM it starts."""
    given = config.get("litellm_settings")
    given = given if isinstance(given, dict) else {}
    return {key: value for key, value in CLAUDE_CODE_SETTINGS.items() if key not in given}


def added_settings_note(path: Path, added: dict[str, Any]) -> str:
    """The line that says what the stack set on a config's behalf, and how to write it down."""
    settings = ", ".join(f"{key}: {json.dumps(value)}" for key, value in added.items())
    return (
        f"{path}: litellm_settings lacks what Claude Code's turns need; LiteLLM runs with {settings} "
        f"(openai/ models get Chat Completions, not the Responses API). Add it under litellm_settings to silence this"
    )


def model_names(config: dict[str, Any]) -> list[str]:
    return list(dict.fromkeys(entry["model_name"] for entry in config["model_list"]))


def litellm_master_key(config: Any, environ: Mapping[str, str]) -> str | None:
    """The master key LiteLLM checks, resolved as it resolves it (proxy_server.py, 1.108.7):
    general_settings.master_key, literal or `os.environ/NAME`, else LITELLM_MASTER_KEY.
    The one resolution: the front door checks this key and `stabilizer key` prints it."""
    general = config.get("general_settings") if isinstance(config, dict) else None
    key = general.get("master_key") if isinstance(general, dict) else None
    if not isinstance(key, str) or not key:
        key = environ.get(MASTER_KEY_VAR)
    elif key.startswith(ENV_PREFIX):
        key = environ.get(key.removeprefix(ENV_PREFIX))
    return key or None
