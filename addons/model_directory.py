"""GET /v1/models answered here, for Claude Code's model picker (addons/config/model_directory.py).

It reads the LiteLLM config's model names and their policies from the request
addon, which loads both (options `stabilizer_litellm_config`, `stabilizer_policy`),
so the list and the limits the turns are shaped to never differ. Without a
LiteLLM config the request goes on to LiteLLM, as before. Ordered after
MasterKeyAuth: the list is no public route.
"""

import json

from mitmproxy import http

from addons.config.model_directory import model_page
from addons.flow.answers import answer
from addons.flow.kind import FlowKind, flow_kind
from addons.request_shaper import RequestShaper


class ModelDirectory:
    def __init__(self, shaper: RequestShaper):
        self.shaper = shaper

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow_kind(flow) is not FlowKind.MODELS or not self.shaper.routes:
            return
        body = model_page(self.shaper.routes, self.shaper.policy)
        answer(flow, http.Response.make(200, json.dumps(body), {"content-type": "application/json"}))
