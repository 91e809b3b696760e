"""The entry list's order, which the flow's stream depends on: each addon that wraps the response's
stream callable wraps what the addons before it installed, so the order decides what each one sees.

Run the way mitmproxy runs them: every addon of addons/stabilizer_addons.py, each hook in list order,
under a flow view (mitmweb) and with a recording on.
"""

import asyncio
import contextlib
import importlib
import json
from pathlib import Path

from mitmproxy import http
from mitmproxy.addonmanager import traverse
from mitmproxy.addons.view import View
from mitmproxy.net.encoding import encode
from mitmproxy.test import taddons, tflow, tutils

from addons.flow.kind import KIND
from addons.flow.notes import ORIGINAL
from tests.conftest import POLICY

STREAM = (Path(__file__).parent.parent / "data" / "streams" / "litellm-text-zero-usage.sse").read_bytes()


@contextlib.contextmanager
def done_at_the_end(addons: list):
    """As mitmproxy ends: every addon's `done`, which puts back what it replaced in mitmproxy."""
    try:
        yield
    finally:
        for addon in addons:
            if done := getattr(addon, "done", None):
                done()


def run_hook(addons: list, name: str, flow: http.HTTPFlow) -> None:
    for addon in traverse(addons):  # as mitmproxy does: nested addons' hooks too
        if hook := getattr(addon, name, None):
            assert hook(flow) is None  # a small request: nothing goes to the worker thread


def test_each_stream_wrapper_sees_what_it_must(tmp_path, monkeypatch):
    monkeypatch.setenv("LITELLM_MASTER_KEY", "sk-order-test-key")
    with taddons.context(View()) as tctx:
        # As mitmweb loads it: the view first, then the script, which sees the view.
        entry = importlib.reload(importlib.import_module("addons.stabilizer_addons"))
        tctx.master.addons.add(*entry.addons)
        with done_at_the_end(entry.addons):
            run_one_turn(entry, tctx, tmp_path)
    written = (tmp_path / "flows").read_bytes()
    assert STREAM.split(b"\n")[0] in written  # the recording holds the stream as it arrived


def run_one_turn(entry, tctx, tmp_path: Path) -> None:
    tctx.options.update(
        stabilizer_policy=str(POLICY),
        stabilizer_record=str(tmp_path / "flows"),
        stabilizer_litellm_log=str(tmp_path / "litellm.log"),
    )
    request = {
        "model": "qwen-plus",
        "max_tokens": 32000,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    flow = tflow.tflow(req=tutils.treq(method=b"POST", path=b"/v1/messages", content=json.dumps(request).encode()))
    flow.request.headers["x-api-key"] = "sk-order-test-key"
    run_hook(entry.addons, "requestheaders", flow)
    assert flow.metadata[KIND] == "messages"
    for addon in traverse(entry.addons):  # (Upstream has no port: call the rest past its 503)
        if type(addon).__name__ != "Upstream" and (hook := getattr(addon, "request", None)):
            assert hook(flow) is None
    assert flow.response is None and json.loads(flow.request.content)["max_tokens"] == 8192
    flow.response = http.Response.make(200, b"", {"content-type": "text/event-stream"})
    run_hook(entry.addons, "responseheaders", flow)

    # Outermost first: the recorder's tee wraps the keeper's, which wraps the patcher's adapter
    # (the idle limit's activity tap, where it is, in between): the recorder and the keeper see
    # what arrived and what Claude Code got, the patcher alone changes the stream.
    sent = b"".join(b"".join(flow.response.stream(chunk)) for chunk in (STREAM, b""))
    assert sent != STREAM and sent.count(b"event: ") == STREAM.count(b"event: ")
    run_hook(entry.addons, "response", flow)

    kept = flow.metadata[ORIGINAL]["stream"]
    assert kept["upstream"] != kept["client"]  # the keeper saw both sides


def test_the_shaper_gets_a_compressed_body_decoded(monkeypatch):
    monkeypatch.setenv("LITELLM_MASTER_KEY", "sk-order-test-key")
    with taddons.context() as tctx:
        entry = importlib.reload(importlib.import_module("addons.stabilizer_addons"))
        tctx.master.addons.add(*entry.addons)
        with done_at_the_end(entry.addons):
            tctx.options.update(stabilizer_policy=str(POLICY))
            request = {"model": "qwen-plus", "max_tokens": 32000, "messages": [{"role": "user", "content": "hi"}]}
            content = encode(json.dumps(request).encode(), "br")
            flow = tflow.tflow(req=tutils.treq(method=b"POST", path=b"/v1/messages", content=content))
            flow.request.headers["content-encoding"] = "br"
            flow.request.headers["x-api-key"] = "sk-order-test-key"
            run_hook(entry.addons, "requestheaders", flow)
            for addon in traverse(entry.addons):  # (Upstream has no port: the rest, past its 503)
                if type(addon).__name__ != "Upstream" and (hook := getattr(addon, "request", None)):
                    if (pending := hook(flow)) is not None:  # the decoder's, in its worker thread
                        asyncio.run(pending)
    assert flow.response is None and "content-encoding" not in flow.request.headers
    assert json.loads(flow.request.content)["max_tokens"] == 8192  # decoded, then shaped (capped)


def test_under_mitmdump_the_addons_for_kept_flows_are_left_out(monkeypatch):
    """mitmdump keeps no flows (no view): nothing for the keeper, KeysHidden and the flow cap
    to tend, and every flow would pay their hook calls."""
    monkeypatch.setenv("LITELLM_MASTER_KEY", "sk-order-test-key")
    with taddons.context():
        entry = importlib.reload(importlib.import_module("addons.stabilizer_addons"))
    names = [type(addon).__name__ for addon in entry.addons]
    web_only = ("TurnKeeper", "_TurnArrivals", "KeysHidden", "FlowCap")
    assert not set(web_only) & set(names)
    # What the request is, noted first; the recorder's first part.
    assert names[:2] == ["FlowClassifier", "_Arrivals"]
    with taddons.context(View()):
        web = [type(addon).__name__ for addon in importlib.reload(entry).addons]
    assert [name for name in web if name not in web_only] == names
