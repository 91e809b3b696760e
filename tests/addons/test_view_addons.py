"""addons/view_addons.py: the entry file for `mitmweb -r FILE -s addons/view_addons.py`.

Its addons in a master, and recorded flows loaded as mitmweb loads a file's flows (each
through every hook, master.load_flow): the flows keep what was recorded, get their
comment and mark back, and open in the stabilizer view.
"""

import copy
import importlib
import json
from pathlib import Path

import pytest
from mitmproxy import contentviews, flowfilter, http, io
from mitmproxy.test import taddons

ROOT = Path(__file__).resolve().parent.parent.parent
RECORDINGS = sorted((ROOT / "tests" / "flows").glob("*.flow"))


def recorded(name: str) -> list[http.HTTPFlow]:
    with (ROOT / "tests" / "flows" / name).open("rb") as file:
        return list(io.FlowReader(file).stream())


def opened(flows: list[http.HTTPFlow]) -> None:
    """The flows loaded into a master with the entry file's addons, each checked to keep what was recorded."""
    with taddons.context() as tctx:
        tctx.master.addons.add(*importlib.reload(importlib.import_module("addons.view_addons")).addons)
        for flow in flows:
            kept = flow.request.get_state(), flow.response.get_state(), copy.deepcopy(flow.metadata)
            tctx.master.event_loop.run_until_complete(tctx.master.load_flow(flow))
            assert (flow.request.get_state(), flow.response.get_state(), flow.metadata) == kept


@pytest.mark.parametrize("recording", [path.name for path in RECORDINGS])
def test_a_recording_opens_as_recorded_with_its_comments_and_view(recording):
    flows = recorded(recording)
    comments = [flow.comment for flow in flows]
    for flow in flows:
        flow.comment, flow.marked = "", ""
    opened(flows)
    assert [flow.comment for flow in flows] == comments
    for flow in flows:
        assert flowfilter.match("~marked", flow)
        assert contentviews.prettify_message(flow.request, flow).view_name == "stabilizer"
    assert any(flowfilter.match("~comment trimmed", flow) for flow in flows) == (recording == "long-session.flow")


def test_a_whole_answer_to_a_streamed_turn_opens_as_it_came():
    # What a backend that ignores `stream` answers, usage zero: the response addon would
    # turn it into events and fill the usage, in a live proxy.
    (flow,) = recorded("plain-answer.flow")
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "qwen-plus",
        "content": [{"type": "text", "text": "Hello."}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 0, "output_tokens": 0},
    }
    flow.response = http.Response.make(200, json.dumps(message).encode(), {"content-type": "application/json"})
    opened([flow])
    assert json.loads(flow.response.content) == message
