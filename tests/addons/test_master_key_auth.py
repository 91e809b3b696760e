"""addons/master_key_auth.py: the front door refuses a call without the master key."""

import json

from mitmproxy.test import taddons, tflow


def test_master_key_is_required_on_api_paths(monkeypatch):
    from addons.master_key_auth import MasterKeyAuth

    monkeypatch.setenv("LITELLM_MASTER_KEY", "sk-right")
    auth = MasterKeyAuth()
    with taddons.context(auth):
        cases = [
            ({}, "/v1/messages", 401),
            ({"x-api-key": "sk-wrong"}, "/v1/messages/count_tokens", 401),
            ({"authorization": "Bearer sk-wrong"}, "/v1/messages?beta=true", 401),
            ({"x-api-key": "sk-right"}, "/v1/messages", None),
            ({"authorization": "Bearer sk-right"}, "/v1/messages?beta=true", None),
            ({}, "/_stabilizer/status", None),
        ]
        for headers, path, expected in cases:
            flow = tflow.tflow()
            flow.request.path = path
            flow.request.headers.clear()
            flow.request.headers.update(headers)
            auth.request(flow)
            assert (flow.response.status_code if flow.response else None) == expected, (headers, path)
            if expected:
                body = json.loads(flow.response.content)
                assert body["error"]["type"] == "authentication_error" and "sk-" not in body["error"]["message"]
