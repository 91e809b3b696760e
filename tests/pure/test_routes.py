"""addons/config/routes.py: the route and the provider's model id behind each model name of a LiteLLM config.

The shaper's use of them (a policy entry found under the provider's id): tests/addons/test_routes.py.
"""

from pathlib import Path

import pytest

from addons.config.litellm_config import LiteLLMConfigError, read_litellm_config
from addons.config.routes import ANTHROPIC, OPENAI, UNKNOWN, Route, load_routes, route_of, routes_of

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.mark.parametrize(
    "deployment, route",
    [
        ({"litellm_params": {"model": "openai/deepseek-flash"}}, Route(OPENAI, "deepseek-flash")),
        ({"litellm_params": {"model": "anthropic/deepseek-flash"}}, Route(ANTHROPIC, "deepseek-flash")),
        ({"litellm_params": {"model": "deepseek/deepseek-v4-pro"}}, Route(ANTHROPIC, "deepseek-v4-pro")),
        ({"litellm_params": {"model": "bedrock/anthropic.claude-opus"}}, Route(ANTHROPIC, "anthropic.claude-opus")),
        ({"litellm_params": {"model": "bedrock/meta.llama3"}}, Route(OPENAI, "meta.llama3")),
        (
            {"litellm_params": {"model": "openai/qwen3"}, "model_info": {"supported_endpoints": ["/v1/messages"]}},
            Route(ANTHROPIC, "qwen3"),
        ),
        ({"litellm_params": {"model": "hosted_vllm/org/model-x"}}, Route(OPENAI, "org/model-x")),
        ({"litellm_params": {}}, UNKNOWN),
    ],
)
def test_route_of_a_deployment(deployment, route):
    assert route_of(deployment) == route


def test_shipped_litellm_config_routes(tmp_path):
    shipped = str(ROOT / "config" / "litellm.yaml")
    routes = load_routes(read_litellm_config(shipped), shipped)
    assert routes == {"demo": Route(OPENAI, "demo")}
    with pytest.raises(LiteLLMConfigError, match="file not found"):
        read_litellm_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("model_list: 5\n")
    with pytest.raises(LiteLLMConfigError, match="model_list: expected a list"):
        load_routes(read_litellm_config(tmp_path / "bad.yaml"), str(tmp_path / "bad.yaml"))


def test_the_first_entry_of_a_name_wins_and_others_are_passed_over():
    model_list = [
        {"model_name": "ds", "litellm_params": {"model": "anthropic/deepseek-flash"}},
        {"model_name": "ds", "litellm_params": {"model": "openai/deepseek-flash"}},  # a second deployment
        {"model_name": 5, "litellm_params": {"model": "openai/x"}},
        "not an entry",
        {"model_name": "custom", "litellm_params": {"model": "qwen3", "custom_llm_provider": "anthropic"}},
    ]
    assert routes_of(model_list) == {"ds": Route(ANTHROPIC, "deepseek-flash"), "custom": Route(ANTHROPIC, "qwen3")}
