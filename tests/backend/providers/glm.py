"""GLM (`glm*`): Z.ai: thinks (5.3 always), string-coded `{"error": {"code", "message"}}` errors,
zero usage in the Anthropic message_start (docs.z.ai/api-reference/api-code, zai-org/GLM-5#139;
read 2026-11-26). Its thinking switch is the common one, `thinking.type` "disabled"
(https://docs.z.ai/guides/capabilities/thinking-mode, read 2026-11-26)."""

from __future__ import annotations

from tests.backend.core import Error
from tests.backend.provider import Provider


def zai_error(code: str, message: str) -> Error:
    """Z.ai's envelope, the code a string: `{"error":{"code":"1261","message":"Prompt exceeds max
    length"}}` (https://github.com/zeroclaw-labs/zeroclaw/issues/4124; codes:
    https://docs.z.ai/api-reference/api-code; read 2026-11-26)."""
    return Error(400, {"error": {"code": code, "message": message}})


PROVIDER = Provider(
    name="glm",
    prefix="glm",
    # GLM-5.x: max_tokens up to 131072 (https://github.com/diegosouzapw/OmniRoute/pull/4518); 1,048,576 tokens
    # for glm-5.3 (https://openrouter.ai/z-ai/glm-5.3); 5.2 thinks unless disabled
    # (https://docs.bigmodel.cn/cn/guide/capabilities/thinking-mode.md). Read 2026-11-26.
    profile={"thinking": True, "max_tokens_limit": 131072, "context_window": 1_048_576},
    model_quirks={
        # glm-5.3: thinking only, text only; glm-5.3-flash takes images
        # (https://dev.to/aihubmix/glm-53-api-guide-always-on-thinking-3-effort-levels-and-the-support-matrix-1d8e,
        # https://runware.ai/docs/models/zai-glm-5-3-flash.md, read 2026-11-26).
        "glm-5.3": {"always_thinks": True, "images": False},
        "glm-5.3-flash": {"images": True},
    },
    # Z.ai's code 1210 as quoted in https://github.com/TriDefender/zcode-api/pull/26 (read 2026-11-26).
    content_part_error=lambda kind, index, number, raw: zai_error(
        "1210", "messages.content.type 参数非法，取值范围 ['text']"
    ),
    # Seen through a relay, upstream HTTP 400 (https://github.com/diegosouzapw/OmniRoute/pull/4518, read
    # 2026-11-26); the code is the table's 1214 "Invalid ${field} parameter"
    # (https://docs.z.ai/api-reference/api-code, read 2026-11-26).
    max_tokens_error=lambda value, limit: zai_error(
        "1214", f"The max_tokens parameter is illegal.：限制数值范围[1,{limit}]"
    ),
    # The window bounds the prompt alone: "Prompt exceeds max length", the global API's live answer
    # (https://github.com/openclaw/openclaw/pull/111744, read 2026-11-26).
    window_counts_completion=False,
    context_error=lambda window, prompt, completion: zai_error("1261", "Prompt exceeds max length"),
    # message_start's usage is always zero, the real counts come in the last message_delta
    # (https://github.com/zai-org/GLM-5/issues/139, glm-5.3, read 2026-11-26).
    zero_usage_at_start=True,
)
