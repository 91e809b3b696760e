"""6. Token estimate accuracy: addons/messages/tokens.py's estimate against a real tokenizer.

The reference is what LiteLLM itself would count: the shaped request
translated to OpenAI Chat Completions by LiteLLM's own adapter (as the
bundle's upstream does), then counted by litellm.token_counter with tiktoken,
both cl100k_base (the estimator's encoding; gpt-4) and o200k_base (gpt-4o),
tool definitions included in OpenAI's function format. The backends' own
tokenizers (DeepSeek, Qwen) are not available offline; o200k shows how much
a different vocabulary moves the count.

Error = (estimate - reference) / reference, in percent: positive means the
estimate is high (trimming then cuts a little early, never late).
"""

import os

from addons.config.policy import load_policy
from addons.messages.tokens import estimate_request
from addons.request.shaping import shape_request
from tests import workload
from tests.bench.servers import POLICY

# A 128K model of the shipped policy: the generated session is trimmed to it before it is counted.
MODEL = "qwen-plus"
LONG_SESSION_BYTES = 500_000
REFERENCES = {"cl100k": "gpt-4", "o200k": "gpt-4o"}


def _litellm():
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.disable_hf_tokenizer_download = True
    litellm.suppress_debug_info = True
    from litellm.llms.anthropic.pass_through.adapters.transformation import LiteLLMAnthropicMessagesAdapter

    return litellm, LiteLLMAnthropicMessagesAdapter()


def measure(progress) -> list[dict]:
    progress("accuracy: importing litellm")
    litellm, adapter = _litellm()
    policy = load_policy(str(POLICY)).for_model(MODEL)
    requests = {
        "recorded first request (76 KB)": workload.recorded(),
        "recorded tool round trip (77 KB)": workload.roundtrip(),
        f"generated session ({LONG_SESSION_BYTES // 1000} KB)": workload.long_session(LONG_SESSION_BYTES),
    }
    rows = []
    for name, request in requests.items():
        shaped = shape_request({**request, "model": MODEL}, policy).request
        estimate = estimate_request(shaped)
        openai, _ = adapter.translate_anthropic_to_openai(shaped)
        row = {"request": name, "estimate": estimate}
        for reference, model in REFERENCES.items():
            counted = litellm.token_counter(model=model, messages=openai["messages"], tools=openai.get("tools"))
            row[reference] = counted
            row[f"{reference} error %"] = (estimate - counted) / counted * 100
        rows.append(row)
    return rows
