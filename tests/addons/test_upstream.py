"""The Upstream addon and the JSON error pages, without a network."""

import asyncio
import json

import pytest
from mitmproxy.test import taddons, tflow

from addons.errors.anthropic import is_anthropic_error
from addons.upstream import Upstream
from tests.procs import free_port, listening

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


def routed_port(upstream: Upstream) -> int | None:
    flow = tflow.tflow()
    upstream.request(flow)
    return None if flow.response else flow.request.port


def test_newest_port_wins_once_it_answers(tmp_path):
    log = tmp_path / "litellm.log"
    with listening() as first, listening() as second, listening() as third:
        log.write_bytes(LINE % first + b"noise\n" + LINE % second)
        upstream = Upstream()
        with taddons.context(upstream) as tctx:
            tctx.configure(upstream, stabilizer_litellm_log=str(log))
            assert routed_port(upstream) is None  # read, not yet tried
            asyncio.run(upstream.confirm())
            assert routed_port(upstream) == second
            with open(log, "ab") as f:
                f.write(LINE % third)
            upstream.poll()
            assert routed_port(upstream) == second
            asyncio.run(upstream.confirm())
            assert routed_port(upstream) == third


def test_a_port_of_an_earlier_litellm_is_never_used(tmp_path):
    # The log is appended to across restarts: its last line may be a LiteLLM that is gone.
    log = tmp_path / "litellm.log"
    stale = free_port()
    log.write_bytes(LINE % stale)
    upstream = Upstream()
    with taddons.context(upstream) as tctx:
        tctx.configure(upstream, stabilizer_litellm_log=str(log))
        asyncio.run(upstream.confirm())
        flow = tflow.tflow()
        upstream.request(flow)
        assert flow.response.status_code == 503
        assert json.loads(flow.response.content)["error"]["message"] == (
            f"LiteLLM at http://127.0.0.1:{stale} does not answer yet; retry shortly"
        )
        assert upstream.status()["waiting_for"] == f"http://127.0.0.1:{stale}"
        with listening() as fresh:
            with open(log, "ab") as f:
                f.write(LINE % fresh)
            upstream.poll()
            asyncio.run(upstream.confirm())
            assert routed_port(upstream) == fresh and upstream.status()["waiting_for"] is None


def test_status_endpoint(tmp_path):
    log = tmp_path / "litellm.log"
    upstream = Upstream()
    with taddons.context(upstream) as tctx, listening() as port:
        tctx.configure(upstream, stabilizer_litellm_log=str(log))
        flow = tflow.tflow()
        flow.request.method, flow.request.path = "GET", "/_stabilizer/status"
        upstream.request(flow)
        status = json.loads(flow.response.content)
        assert status["upstream"] is None and status["learned_at"] is None and status["version"]
        log.write_bytes(LINE % port)
        upstream.poll()
        asyncio.run(upstream.confirm())
        flow = tflow.tflow()
        flow.request.method, flow.request.path = "GET", "/_stabilizer/status?x=1"
        upstream.request(flow)
        status = json.loads(flow.response.content)
        assert status["upstream"] == f"http://127.0.0.1:{port}" and status["learned_at"]


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


def test_the_front_door_and_the_shaper_refuse_a_config_that_is_not_utf8_alike(tmp_path, monkeypatch):
    """One reader of LiteLLM's config: the same message as `stabilizer run` gives, as mitmproxy's OptionsError."""
    from mitmproxy import exceptions

    from addons.master_key_auth import MasterKeyAuth
    from addons.request_shaper import RequestShaper

    monkeypatch.setenv("LITELLM_MASTER_KEY", "sk-right")  # as the stack runs: no "no master key" warning
    config = tmp_path / "litellm.yaml"
    config.write_bytes("model_list:\n  - model_name: café\n".encode("latin-1"))
    message = f"{config}: not UTF-8 (byte 31: invalid continuation byte). Fix: save it as UTF-8"
    for addon in (MasterKeyAuth(), RequestShaper()):
        with taddons.context(addon) as tctx:
            if not hasattr(tctx.options, "stabilizer_litellm_config"):  # RequestShaper declares it
                tctx.options.add_option("stabilizer_litellm_config", str, "", "")
            with pytest.raises(exceptions.OptionsError) as caught:
                tctx.configure(addon, stabilizer_litellm_config=str(config))
        assert str(caught.value) == message, addon
