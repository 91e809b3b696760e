"""addons/config/litellm_config.py: what the one reader of LiteLLM's config checks and resolves.

Every problem names the file, the key and the fix, one line; the addons give the same
message at start-up: tests/addons/test_litellm_config.py.
"""

from pathlib import Path

import pytest

from addons.config.litellm_config import (
    CLAUDE_CODE_SETTINGS,
    EveryVariableSet,
    LiteLLMConfigError,
    added_settings,
    litellm_master_key,
    load_litellm_config,
    model_names,
)

SHIPPED = Path(__file__).resolve().parent.parent.parent / "config" / "litellm.yaml"
MODEL = "  - model_name: ds\n    litellm_params:\n      model: openai/deepseek-flash\n"
KEYED = "general_settings:\n  master_key: os.environ/LITELLM_MASTER_KEY\n"


def problem(tmp_path: Path, text: str, environ: dict | None = None) -> str:
    config = tmp_path / "litellm.yaml"
    config.write_text(text)
    with pytest.raises(LiteLLMConfigError) as caught:
        load_litellm_config(config, {"LITELLM_MASTER_KEY": "sk-m"} if environ is None else environ)
    message = str(caught.value)
    assert message.startswith(f"{config}: ") and "\n" not in message
    return message.removeprefix(f"{config}: ")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("- a list\n", "expected a mapping with model_list, litellm_settings, general_settings"),
        (f"model_list: []\n{KEYED}", "model_list: expected a non-empty list of models"),
        (f"model_list:\n{MODEL}  - litellm_params: {{model: openai/x}}\n{KEYED}", "model_list[1].model_name:"),
        (f"model_list:\n  - model_name: ds\n{KEYED}", "model_list[0].litellm_params.model: expected e.g. openai/"),
        (f"model_list:\n{MODEL}", "general_settings.master_key: required"),
    ],
)
def test_each_problem_names_the_file_and_the_key(tmp_path, text, expected):
    assert expected in problem(tmp_path, text)


def test_a_variable_the_config_names_must_be_set(tmp_path):
    text = f"model_list:\n{MODEL}      api_key: os.environ/DEEPSEEK_API_KEY\n{KEYED}"
    assert problem(tmp_path, text).startswith(
        "model_list[0].litellm_params.api_key: environment variable DEEPSEEK_API_KEY is not set; "
        "add DEEPSEEK_API_KEY=... to ~/.config/stabilizer/env"
    )
    config = tmp_path / "litellm.yaml"
    environ = {"LITELLM_MASTER_KEY": "sk-m", "DEEPSEEK_API_KEY": "sk-d"}
    assert load_litellm_config(config, environ)["model_list"][0]["model_name"] == "ds"
    # Listing the models needs no keys.
    assert model_names(load_litellm_config(config, EveryVariableSet())) == ["ds"]


def test_the_shipped_config_loads_and_needs_nothing_added():
    config = load_litellm_config(SHIPPED, {"LITELLM_MASTER_KEY": "sk-m"})
    assert model_names(config) == ["demo"]
    assert added_settings(config) == {}


def test_model_names_are_listed_once_in_their_order():
    config = {"model_list": [{"model_name": name} for name in ("b", "a", "b", "c")]}
    assert model_names(config) == ["b", "a", "c"]


@pytest.mark.parametrize(
    "settings, added",
    [
        (None, CLAUDE_CODE_SETTINGS),
        ({"drop_params": True}, CLAUDE_CODE_SETTINGS),
        ("not a mapping", CLAUDE_CODE_SETTINGS),
        ({"use_chat_completions_url_for_anthropic_messages": False}, {}),  # the user's choice, kept
    ],
)
def test_what_claude_codes_turns_need_is_added_where_the_config_leaves_it_out(settings, added):
    assert added_settings({"litellm_settings": settings}) == added


@pytest.mark.parametrize(
    "config, environ, key",
    [
        ({"general_settings": {"master_key": "sk-literal"}}, {"LITELLM_MASTER_KEY": "sk-env"}, "sk-literal"),
        ({"general_settings": {"master_key": "os.environ/TEAM_KEY"}}, {"TEAM_KEY": "sk-team"}, "sk-team"),
        # Named but unset: LiteLLM then runs without a key, it does not fall back.
        ({"general_settings": {"master_key": "os.environ/TEAM_KEY"}}, {"LITELLM_MASTER_KEY": "sk-env"}, None),
        ({"general_settings": {}}, {"LITELLM_MASTER_KEY": "sk-env"}, "sk-env"),
        ({"model_list": []}, {"LITELLM_MASTER_KEY": "sk-env"}, "sk-env"),
        (None, {"LITELLM_MASTER_KEY": "sk-env"}, "sk-env"),  # no config: the environment's
        (None, {}, None),
    ],
)
def test_the_master_key_is_resolved_as_litellm_resolves_it(config, environ, key):
    # LiteLLM 1.108.14, proxy_server.py load_config: general_settings.get("master_key",
    # get_secret("LITELLM_MASTER_KEY")), then get_secret() of an os.environ/ reference.
    assert litellm_master_key(config, environ) == key
