"""Note on every flow what its request is (addons/flow/kind.py), before any addon changes it.

The other addons read the note (flow_kind(), addons/flow/kind.py) instead of
the path, which Upstream rewrites: under an --upstream path prefix
(`https://host/litellm`) the path no longer names the route the request came
for. `requestheaders` comes before every addon's `request` hook; it is this
addon's only hook, since every hook costs every flow a call.
"""

from mitmproxy import http

from addons.flow.kind import KIND, classify


class FlowClassifier:
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        # The string, not the enum: mitmproxy writes flow.metadata into flow files as plain data.
        flow.metadata[KIND] = classify(flow.request.method, flow.request.path).value
