"""GET /v1/models answered from the LiteLLM config and the policy, for Claude Code's model picker."""

import json

import yaml
from mitmproxy.test import taddons, tflow, tutils

from addons.classifier import FlowClassifier
from addons.config.model_directory import PICKER_PREFIX, description, window_words
from addons.config.policy import ModelPolicy, ThinkingPolicy
from addons.model_directory import ModelDirectory
from addons.request_shaper import RequestShaper
from tests.conftest import POLICY


def models_flow(method: str = "GET", path: str = "/v1/models?limit=1000"):
    flow = tflow.tflow(req=tutils.treq(method=method.encode(), path=path.encode(), content=b""))
    FlowClassifier().requestheaders(flow)
    return flow


def directory_with(tmp_path, model_names: list[str]):
    config = tmp_path / "litellm.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model_list": [
                    {"model_name": name, "litellm_params": {"model": f"openai/{name}", "api_key": "none"}}
                    for name in model_names
                ]
            }
        )
    )
    shaper = RequestShaper()
    return shaper, ModelDirectory(shaper), str(config)


def test_the_list_is_the_configs_models_with_their_limits(tmp_path):
    shaper, directory, config = directory_with(tmp_path, ["deepseek-flash", "kimi-k3", "plain-model"])
    with taddons.context(shaper, directory) as tctx:
        tctx.configure(shaper, stabilizer_policy=str(POLICY), stabilizer_litellm_config=config)
        flow = models_flow()
        directory.request(flow)
    assert flow.response.status_code == 200
    page = json.loads(flow.response.content)
    names = ["deepseek-flash", "kimi-k3", "plain-model"]
    # Claude Code lists no id without "claude" or "anthropic" in it; it shows the display name.
    assert [model["id"] for model in page["data"]] == [PICKER_PREFIX + name for name in names]
    assert [model["display_name"] for model in page["data"]] == names
    assert "anthropic" in PICKER_PREFIX
    assert (page["first_id"], page["last_id"], page["has_more"]) == (
        PICKER_PREFIX + "deepseek-flash",
        PICKER_PREFIX + "plain-model",
        False,
    )
    by_id = {model["display_name"]: model for model in page["data"]}
    assert by_id["deepseek-flash"]["description"] == description(shaper.policy.for_model("deepseek-flash"))
    assert by_id["kimi-k3"]["description"] == description(shaper.policy.for_model("kimi-k3"))
    assert by_id["plain-model"]["description"] == description(shaper.policy.defaults)
    assert all(model["type"] == "model" for model in page["data"])


def test_a_picked_model_goes_on_under_its_own_name(tmp_path):
    shaper, _, config = directory_with(tmp_path, ["plain-model"])
    with taddons.context(shaper) as tctx:
        tctx.configure(shaper, stabilizer_litellm_config=config)
        for picked, sent in [(PICKER_PREFIX + "plain-model", "plain-model"), (PICKER_PREFIX + "gone", None)]:
            body = {"model": picked, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
            flow = tflow.tflow(req=tutils.treq(method=b"POST", path=b"/v1/messages", content=json.dumps(body).encode()))
            FlowClassifier().requestheaders(flow)
            shaper.request(flow)
            # A name the config does not have stays as it came: LiteLLM names the unknown model.
            assert json.loads(flow.request.content)["model"] == (sent or picked)


def test_without_a_config_litellm_answers(tmp_path):
    shaper, directory, _ = directory_with(tmp_path, [])
    with taddons.context(shaper, directory):
        flow = models_flow()
        directory.request(flow)
    assert flow.response is None


def test_other_routes_and_methods_go_on(tmp_path):
    shaper, directory, config = directory_with(tmp_path, ["plain-model"])
    with taddons.context(shaper, directory) as tctx:
        tctx.configure(shaper, stabilizer_litellm_config=config)
        for method, path in [("POST", "/v1/models"), ("GET", "/v1/models/plain-model"), ("GET", "/v1/messages")]:
            flow = models_flow(method, path)
            directory.request(flow)
            assert flow.response is None, (method, path)


def test_a_description_says_window_thinking_and_images():
    assert description(ModelPolicy()) == "128K window, thinks, reads images"
    text_only = ModelPolicy(
        context_window=1_000_000,
        accepted_block_types=frozenset({"text", "tool_use", "tool_result"}),
        thinking=None,
        vision_model="kimi-k3",
    )
    assert description(text_only) == "1M window, no thinking, images go to kimi-k3"
    blind = text_only.model_copy(update={"vision_model": None, "thinking": ThinkingPolicy()})
    assert description(blind) == "1M window, thinks, no images"


def test_windows_read_the_way_providers_write_them():
    assert [window_words(n) for n in (131072, 1_048_576, 1_000_000, 200_000, 65536, 61440, 130_500, 512)] == [
        "128K",
        "1M",
        "1M",
        "200K",
        "64K",
        "60K",
        "130K",
        "512",
    ]
