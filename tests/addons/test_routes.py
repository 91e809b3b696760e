"""addons/config/routes.py through the request addon: a model name of the LiteLLM config gets the
policy entry of its provider's model id, and its route's thinking fields.

The routes themselves: tests/pure/test_routes.py.
"""

from mitmproxy.test import taddons

from addons.request_shaper import RequestShaper
from tests.addons.test_request_shaper import post, sent
from tests.addons.test_thinking import DEEPSEEK, ROOT, claude_request


def test_a_model_found_under_its_provider_id(tmp_path):
    config = tmp_path / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: ds\n    litellm_params: {model: openai/deepseek-flash}\n"
        "  - model_name: ds-anthropic\n    litellm_params: {model: anthropic/deepseek-flash}\n"
    )
    addon = RequestShaper()
    with taddons.context(addon) as tctx:
        tctx.configure(
            addon, stabilizer_policy=str(ROOT / "config" / "stabilizer.yaml"), stabilizer_litellm_config=str(config)
        )
        adaptive = {"thinking": {"type": "adaptive"}, "output_config": {"effort": "max"}}
        flow = post("/v1/messages", claude_request(model="ds", **adaptive))
        addon.request(flow)
        assert sent(flow)["extra_body"] == {"thinking": {"type": "enabled"}, "reasoning_effort": "max"}
        assert flow.metadata["stabilizer"]["context_window"] == DEEPSEEK.context_window
        flow = post("/v1/messages", claude_request(model="ds-anthropic", **adaptive))
        addon.request(flow)
        assert sent(flow)["thinking"] == {"type": "enabled"} and "extra_body" not in sent(flow)
        # A name neither the policy nor the LiteLLM config knows gets the defaults.
        flow = post("/v1/messages", claude_request(model="other", **adaptive))
        addon.request(flow)
        assert "extra_body" not in sent(flow) and "thinking" not in sent(flow)
