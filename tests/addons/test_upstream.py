"""The Upstream addon and the JSON error pages, without a network."""

import asyncio
import json

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
