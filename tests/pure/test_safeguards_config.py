"""The LiteLLM config `stabilizer run` starts LiteLLM with, set up for auto mode (addons/config/safeguards.py)."""

from addons.config.safeguards import CLASSIFIER_ENTRY, CLASSIFIER_SETTING, with_safeguards
from addons.flow.kind import SAFEGUARDS_ROUTE, FlowKind, classify

CONFIG = {
    "model_list": [
        {"model_name": "a", "litellm_params": {"model": "openai/a", "api_key": "os.environ/K"}},
        {
            "model_name": "b",
            "litellm_params": {"model": "anthropic/b", "api_key": "os.environ/K", "additional_drop_params": ["x"]},
        },
    ],
    "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
}


def test_the_classifier_call_comes_back_through_the_front_door():
    derived = with_safeguards(CONFIG, "http://127.0.0.1:4000/")
    entry = derived["model_list"][-1]
    assert derived["general_settings"][CLASSIFIER_SETTING] == entry["model_name"] == CLASSIFIER_ENTRY
    assert entry["litellm_params"]["api_key"] == "os.environ/LITELLM_MASTER_KEY"
    # LiteLLM's anthropic/ provider appends /v1/messages: the route the addons answer it on.
    url = entry["litellm_params"]["api_base"] + "/v1/messages"
    assert url == "http://127.0.0.1:4000" + SAFEGUARDS_ROUTE
    assert classify("POST", SAFEGUARDS_ROUTE) is FlowKind.MESSAGES


def test_no_backend_gets_safeguards_and_the_users_config_is_untouched():
    derived = with_safeguards(CONFIG, "http://127.0.0.1:4000")
    drops = [entry["litellm_params"]["additional_drop_params"] for entry in derived["model_list"][:2]]
    assert drops == [["safeguards"], ["x", "safeguards"]]
    assert "additional_drop_params" not in CONFIG["model_list"][0]["litellm_params"]
    assert CLASSIFIER_SETTING not in CONFIG["general_settings"] and len(CONFIG["model_list"]) == 2


def test_a_classifier_the_user_named_stays():
    mine = {**CONFIG, "general_settings": {**CONFIG["general_settings"], CLASSIFIER_SETTING: "a"}}
    derived = with_safeguards(mine, "http://127.0.0.1:4000")
    assert derived["general_settings"][CLASSIFIER_SETTING] == "a"
    assert [entry["model_name"] for entry in derived["model_list"]] == ["a", "b"]
