"""The request policy (addons/config/policy.py): the shipped file's entries, an entry found by the name
sent, then by the provider's model id behind it, built-in defaults, and every mistake in a policy
file named by its file, key and fix.
"""

from pathlib import Path

import pytest

from addons.config.policy import DEFAULT_ACCEPTED_KEYS, ModelPolicy, Policy, PolicyError, ThinkingPolicy, load_policy

SHIPPED = Path(__file__).resolve().parent.parent.parent / "config" / "stabilizer.yaml"


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


def test_shipped_policy_has_its_models():
    policy = load_policy(str(SHIPPED))
    assert set(policy.models) == {
        "demo",
        "deepseek-flash",
        "deepseek-v4-pro",
        "qwen-plus",
        "qwen3.8-max",
        "qwen3.7-plus",
        "qwen3.7-max",
        "qwen3-coder-plus",
        "kimi-k3",
        "kimi-k2.6",
        "glm-5.3",
        "glm-5.3-flash",
        "MiniMax-M3",
        "MiniMax-M3.1-Flash-Preview",
    }
    # DeepSeek V4: 1M context, max_tokens up to 393216 (its API's valid range is [1, 393216]).
    for name in ("deepseek-flash", "deepseek-v4-pro"):
        assert (policy.for_model(name).context_window, policy.for_model(name).max_output_tokens) == (
            1000000,
            393216,
        )
    assert (policy.for_model("qwen-plus").context_window, policy.for_model("qwen-plus").max_output_tokens) == (
        131072,
        8192,
    )
    # Settings an entry leaves out come from defaults.
    assert policy.for_model("demo").accepted_keys == policy.defaults.accepted_keys == DEFAULT_ACCEPTED_KEYS
    # Claude Code asks for 32000; the defaults no longer starve a thinking model at 8192.
    assert (policy.defaults.context_window, policy.defaults.max_output_tokens) == (131072, 32000)


def test_shipped_deepseek_thinking():
    policy = load_policy(str(SHIPPED))
    flash, pro = policy.for_model("deepseek-flash"), policy.for_model("deepseek-v4-pro")
    assert (
        flash.thinking
        == pro.thinking
        == ThinkingPolicy(
            enable={"thinking": {"type": "enabled"}},
            disable={"thinking": {"type": "disabled"}},
            effort_field="reasoning_effort",
            efforts={"low": "low", "medium": "high", "high": "high", "xhigh": "high", "max": "max"},
            history="all",
            require_reasoning=True,
        )
    )
    # deepseek-v4-pro takes no images; deepseek-flash does.
    assert "image" in flash.accepted_block_types
    assert pro.accepted_block_types == {"text", "tool_use", "tool_result"}


def test_shipped_provider_profiles():
    policy = load_policy(str(SHIPPED))
    limits = {
        name: (entry.context_window, entry.max_output_tokens, entry.max_tools) for name, entry in policy.models.items()
    }
    assert limits["kimi-k3"] == (1048576, 131072, 128) and limits["kimi-k2.6"] == (262144, 32000, 128)
    assert limits["glm-5.3"] == (1048576, 131072, 128)
    assert limits["MiniMax-M3"] == (1000000, 128000, None)
    assert limits["qwen3.8-max"] == (991808, 131072, None)
    # Models that cannot turn thinking off have no switch; Kimi wants every turn's reasoning back.
    for name in ("kimi-k3", "glm-5.3", "MiniMax-M3.1-Flash-Preview"):
        assert policy.models[name].thinking.disable is None
    assert policy.models["kimi-k3"].thinking.require_reasoning and policy.models["kimi-k2.6"].thinking.require_reasoning
    assert policy.models["qwen3-coder-plus"].thinking is None
    # Text-only models: their images become notes.
    for name in ("qwen3.7-max", "qwen3-coder-plus", "glm-5.3"):
        assert "image" not in policy.models[name].accepted_block_types
    assert "image" in policy.models["glm-5.3-flash"].accepted_block_types


def test_model_references_must_be_litellm_model_names():
    policy = Policy.model_validate({"models": {"a": {"background_model": "b", "vision_model": "c"}}})
    assert policy.unknown_model_names({"a", "b", "c"}) == []
    assert policy.unknown_model_names({"a", "b"}) == [
        "models.a.vision_model: 'c' is not a model_name in the LiteLLM config; add an entry for it there or name "
        "one that is"
    ]


def test_default_thinking_keeps_every_turns_reasoning():
    policy = load_policy(str(SHIPPED))
    assert policy.defaults.thinking == ThinkingPolicy() == ThinkingPolicy(history="all")
    assert policy.defaults.thinking.require_reasoning is False
    assert (policy.defaults.thinking.enable, policy.defaults.thinking.disable) == (None, None)
    assert Policy().defaults.thinking == ThinkingPolicy()


def test_retired_deepseek_ids_have_no_entry():
    policy = load_policy(str(SHIPPED))
    for retired in ("deepseek-chat", "deepseek-reasoner"):
        assert retired not in policy.models
        assert policy.for_model(retired) is policy.defaults


def test_model_found_by_the_provider_id_behind_its_name():
    policy = load_policy(str(SHIPPED))
    # An alias of a LiteLLM config (model_name) finds the entry of the provider's model id.
    assert policy.for_model("my-deepseek", "deepseek-flash") is policy.models["deepseek-flash"]
    # The name Claude Code sends wins over the model id behind it.
    assert policy.for_model("qwen-plus", "deepseek-flash") is policy.models["qwen-plus"]
    # Neither known: the defaults.
    assert policy.for_model("my-model", "unknown-id") is policy.defaults
    assert policy.for_model("my-model", None) is policy.defaults
    assert policy.for_model(None, "deepseek-flash") is policy.models["deepseek-flash"]


def test_unknown_models_and_odd_names_get_the_defaults():
    policy = load_policy(str(SHIPPED))
    assert policy.for_model("some-other-model") is policy.defaults
    assert policy.for_model(None) is policy.defaults
    assert policy.for_model(["not", "a", "name"]) is policy.defaults


def test_built_in_defaults_are_the_shipped_defaults():
    # Running without --policy must not starve a thinking model that the shipped file would not.
    assert Policy().defaults == load_policy(str(SHIPPED)).defaults


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


def test_a_thinking_section_replaces_the_default_one(tmp_path):
    text = (
        "defaults:\n  thinking:\n    effort_field: reasoning_effort\n    efforts: {high: high}\n"
        "models:\n  turns:\n    thinking:\n      history: tool_turns\n  never:\n    thinking: null\n  bare:\n"
    )
    policy = load_policy(write(tmp_path, text))
    # Replaced whole, not merged key by key: the default's effort_field does not leak in.
    assert policy.for_model("turns").thinking == ThinkingPolicy(history="tool_turns")
    assert policy.for_model("never").thinking is None
    assert policy.for_model("bare").thinking == ThinkingPolicy(
        effort_field="reasoning_effort", efforts={"high": "high"}
    )


def test_thinking_null_is_a_model_that_never_thinks(tmp_path):
    policy = load_policy(write(tmp_path, "defaults:\n  thinking: null\nmodels:\n  m:\n    thinking: {}\n"))
    assert policy.defaults.thinking is None
    assert policy.for_model("other").thinking is None
    assert policy.for_model("m").thinking == ThinkingPolicy()


def test_accepts_thinking_is_gone(tmp_path):
    # The old key was replaced by the `thinking` section: an old policy file says so at start-up.
    message = problem(tmp_path, "models:\n  m:\n    accepts_thinking: true\n")
    assert "models.m.accepts_thinking: unknown key" in message
    assert "thinking" in message.split("use one of:")[1]


def test_unknown_key_names_its_path_and_the_valid_keys(tmp_path):
    message = problem(tmp_path, "models:\n  deepseek-flash:\n    context_windw: 5\n")
    assert "models.deepseek-flash.context_windw: unknown key" in message
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
    message = problem(tmp_path, "models:\n  deepseek-flash:\n    max_output_tokens: -1\n")
    assert "models.deepseek-flash.max_output_tokens: Input should be greater than 0 (got -1)" in message


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
        (
            "accepted_block_types: [text, tool_use, tool_result, thinking]",
            "lists thinking: thinking blocks follow the `thinking` section",
        ),
        (
            "accepted_block_types: [text, tool_use, tool_result, redacted_thinking]",
            "lists redacted_thinking: thinking blocks follow the `thinking`",
        ),
        ("accepted_block_types: [text, image]", "accepted_block_types must include tool_result, tool_use: without"),
        ("max_tools: 0", "models.m.max_tools: Input should be greater than 0"),
        ("thinking:\n      efforts: {low: low}", "models.m.thinking: efforts are given but effort_field is null"),
        (
            "thinking:\n      history: tool_turns\n      require_reasoning: true",
            "models.m.thinking: require_reasoning needs history: all",
        ),
        ("thinking:\n      history: some", "models.m.thinking.history: Input should be 'tool_turns' or 'all'"),
        (
            "thinking:\n      histroy: all",
            "models.m.thinking.histroy: unknown key. Fix: remove it or use one of: enable,",
        ),
        (
            "thinking:\n      require_reasoning: 1",
            "models.m.thinking.require_reasoning: Input should be a valid boolean",
        ),
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


def test_the_entry_used_is_found_by_name_then_by_model_id():
    policy = Policy.model_validate({"models": {"deepseek-flash": {}, "mine": {"max_tools": 3}}})
    assert policy.key_for("mine", "deepseek-flash") == "mine"
    assert policy.key_for("my-deepseek", "deepseek-flash") == "deepseek-flash"
    assert policy.key_for("other", "unknown-id") == "other"  # where an entry for it would go
    assert policy.key_for(None, None) is None
    assert policy.for_model("mine", "deepseek-flash").max_tools == 3
    assert policy.for_model("other", "unknown-id") is policy.defaults
