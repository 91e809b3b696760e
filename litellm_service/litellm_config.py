"""Checks of config/litellm.yaml that LiteLLM itself would only report at request time."""

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from addons.config.routes import ENV_PREFIX


class LiteLLMConfigError(Exception):
    pass


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
    """Parse and check the config; every problem names the file, the key and the fix."""
    environ = os.environ if environ is None else environ
    try:
        config = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise LiteLLMConfigError(f"{path}: file not found (pass --litellm-config PATH)") from None
    except yaml.YAMLError as e:
        raise LiteLLMConfigError(f"{path}: not valid YAML: {e}") from None
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


def model_names(config: dict[str, Any]) -> list[str]:
    return list(dict.fromkeys(entry["model_name"] for entry in config["model_list"]))
