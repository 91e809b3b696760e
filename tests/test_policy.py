from pathlib import Path

import pytest

from addons.policy import DEFAULT_ACCEPTED_KEYS, ModelPolicy, Policy, PolicyError, load_policy

SHIPPED = Path(__file__).resolve().parent.parent / "config" / "stabilizer.yaml"


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "stabilizer.yaml"
    path.write_text(text)
    return str(path)


def problem(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    message = str(caught.value)
    assert path in message
    return message


def test_shipped_policy_has_the_three_models():
    policy = load_policy(str(SHIPPED))
    assert set(policy.models) == {"demo", "deepseek-chat", "qwen-plus"}
    assert (policy.for_model("deepseek-chat").context_window, policy.for_model("deepseek-chat").max_output_tokens) == (
        131072,
        8192,
    )
    assert (policy.for_model("qwen-plus").context_window, policy.for_model("qwen-plus").max_output_tokens) == (
        131072,
        8192,
    )
    # Settings an entry leaves out come from defaults.
    assert policy.for_model("demo").accepted_keys == policy.defaults.accepted_keys == DEFAULT_ACCEPTED_KEYS


def test_unknown_models_and_odd_names_get_the_defaults():
    policy = load_policy(str(SHIPPED))
    assert policy.for_model("some-other-model") is policy.defaults
    assert policy.for_model(None) is policy.defaults
    assert policy.for_model(["not", "a", "name"]) is policy.defaults


@pytest.mark.parametrize("path", [None, ""])
def test_no_policy_means_built_in_defaults(path):
    assert load_policy(path) == Policy()


def test_empty_file_means_built_in_defaults(tmp_path):
    assert load_policy(write(tmp_path, "# nothing yet\n")) == Policy()


def test_a_given_path_that_does_not_exist_is_an_error(tmp_path):
    missing = str(tmp_path / "typo.yaml")
    with pytest.raises(PolicyError, match="file not found") as caught:
        load_policy(missing)
    assert missing in str(caught.value)


def test_entries_override_only_what_they_set(tmp_path):
    text = "defaults:\n  max_output_tokens: 4096\nmodels:\n  m:\n    accepted_keys: [model, messages]\n  bare:\n"
    policy = load_policy(write(tmp_path, text))
    assert policy.for_model("m").max_output_tokens == 4096
    assert policy.for_model("m").accepted_keys == {"model", "messages"}  # a list replaces the default list
    assert policy.for_model("bare") == policy.defaults


def test_unknown_key_names_its_path_and_the_valid_keys(tmp_path):
    message = problem(tmp_path, "models:\n  deepseek-chat:\n    context_windw: 5\n")
    assert "models.deepseek-chat.context_windw: unknown key" in message
    assert "context_window" in message


def test_unknown_top_level_key(tmp_path):
    assert "model: unknown key" in problem(tmp_path, "model:\n  demo: {}\n")


def test_wrong_type_names_the_key_and_what_is_expected(tmp_path):
    message = problem(tmp_path, "defaults:\n  context_window: '131072'\n")
    assert "defaults.context_window: Input should be a valid integer" in message
    assert "Expected a whole number above 0" in message


def test_booleans_are_not_numbers(tmp_path):
    assert "models.m.max_messages" in problem(tmp_path, "models:\n  m:\n    max_messages: true\n")


def test_negative_number_names_the_key(tmp_path):
    message = problem(tmp_path, "models:\n  deepseek-chat:\n    max_output_tokens: -1\n")
    assert "models.deepseek-chat.max_output_tokens: Input should be greater than 0 (got -1)" in message


def test_a_bad_default_is_reported_once(tmp_path):
    message = problem(tmp_path, "defaults:\n  safety_margin_tokens: -5\nmodels:\n  a: {}\n  b: {}\n")
    assert message.count("safety_margin_tokens") == 1
    assert "defaults.safety_margin_tokens" in message


def test_window_must_leave_room_for_a_prompt(tmp_path):
    message = problem(tmp_path, "models:\n  tiny:\n    context_window: 8000\n")
    assert "models.tiny: context_window (8000) must exceed max_output_tokens + safety_margin_tokens" in message


@pytest.mark.parametrize(
    "entry, expected",
    [
        ("accepted_keys: [model]", "accepted_keys must include messages"),
        ("accepted_block_types: [text, thinking]", "use accepts_thinking: true"),
        ("max_messages: 2\n    keep_first_messages: 1", "max_messages (2) must be 0 or at least"),
        ("low_water_percent: 101", "models.m.low_water_percent: Input should be less than or equal to 100"),
    ],
)
def test_inconsistent_settings(tmp_path, entry, expected):
    assert expected in problem(tmp_path, f"models:\n  m:\n    {entry}\n")


def test_invalid_yaml_and_wrong_shapes(tmp_path):
    assert "not valid YAML" in problem(tmp_path, "defaults: [unclosed\n")
    assert "expected a mapping" in problem(tmp_path, "- just\n- a list\n")
    assert "models.m" in problem(tmp_path, "models:\n  m: 5\n")


def test_budget_uses_the_capped_max_tokens():
    policy = ModelPolicy(context_window=100_000, max_output_tokens=8000, safety_margin_tokens=1000)
    assert policy.input_budget(32000) == 91_000
    assert policy.input_budget(2000) == 97_000
    assert policy.input_budget(None) == policy.input_budget("lots") == 91_000
