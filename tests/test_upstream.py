"""The Upstream addon and the JSON error pages, without a network."""

import json

from mitmproxy.test import taddons, tflow

from addons.errors import is_anthropic_error
from addons.upstream import Upstream

LINE = b"INFO:     Uvicorn running on http://127.0.0.1:%d (Press CTRL+C to quit)\n"


def test_unknown_port_answers_503_overloaded(tmp_path):
    upstream = Upstream()
    with taddons.context(upstream) as tctx:
        tctx.configure(upstream, stabilizer_litellm_log=str(tmp_path / "absent.log"))
        flow = tflow.tflow()
        upstream.request(flow)
        assert flow.response.status_code == 503
        assert flow.response.headers["retry-after"] == "1"
        body = json.loads(flow.response.content)
        assert is_anthropic_error(body) and body["error"]["type"] == "overloaded_error"


def test_newest_port_wins_and_retargets(tmp_path):
    log = tmp_path / "litellm.log"
    log.write_bytes(LINE % 4001 + b"noise\n" + LINE % 4002)
    upstream = Upstream()
    with taddons.context(upstream) as tctx:
        tctx.configure(upstream, stabilizer_litellm_log=str(log))
        flow = tflow.tflow()
        upstream.request(flow)
        assert flow.response is None
        assert (flow.request.host, flow.request.port, flow.request.scheme) == ("127.0.0.1", 4002, "http")
        with open(log, "ab") as f:
            f.write(LINE % 4003)
        upstream.poll()
        flow = tflow.tflow()
        upstream.request(flow)
        assert flow.request.port == 4003


def test_status_endpoint(tmp_path):
    log = tmp_path / "litellm.log"
    upstream = Upstream()
    with taddons.context(upstream) as tctx:
        tctx.configure(upstream, stabilizer_litellm_log=str(log))
        flow = tflow.tflow()
        flow.request.method, flow.request.path = "GET", "/_stabilizer/status"
        upstream.request(flow)
        status = json.loads(flow.response.content)
        assert status["upstream"] is None and status["learned_at"] is None and status["version"]
        log.write_bytes(LINE % 4005)
        upstream.poll()
        flow = tflow.tflow()
        flow.request.method, flow.request.path = "GET", "/_stabilizer/status?x=1"
        upstream.request(flow)
        status = json.loads(flow.response.content)
        assert status["upstream"] == "http://127.0.0.1:4005" and status["learned_at"]


def test_master_key_is_required_on_api_paths(monkeypatch):
    from addons.auth import MasterKeyAuth

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
