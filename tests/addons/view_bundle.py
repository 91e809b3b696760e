"""The addons the stabilizer view depends on, run in process on test flows, and what mitmweb shows of them.

For the tests of the view and the flow marks (addons/inspection.py), the view's text
(addons/views/turn_view.py) and the changes read back from a flow (addons/flow/change.py);
the `bundle` fixture (tests/addons/conftest.py) runs a Bundle under a flow view.
"""

import asyncio
import json
from pathlib import Path

from mitmproxy import contentviews, http
from mitmproxy.test import tflow, tutils

from addons.classifier import FlowClassifier
from addons.inspection import FlowMarker, TurnKeeper
from addons.request_shaper import RequestShaper
from addons.response_patcher import ResponsePatcher

ROOT = Path(__file__).resolve().parent.parent.parent
REQUEST = json.loads((ROOT / "tests" / "data" / "claude_code_request.json").read_bytes())
MASTER = "sk-master-0123456789abcdef"


class Bundle:
    """The addons the view depends on, hooks called in the entry list's order."""

    def __init__(self):
        self.keeper, self.shaper = TurnKeeper(), RequestShaper()
        self.chain = [FlowClassifier(), self.keeper.arrivals, self.shaper, ResponsePatcher(), self.keeper, FlowMarker()]

    def run(self, flow: http.HTTPFlow, hook: str) -> None:
        for addon in self.chain:
            if (pending := getattr(addon, hook, lambda _: None)(flow)) is not None:
                asyncio.run(pending)  # the shaper's worker thread, for a large body

    def arrive(self, flow: http.HTTPFlow) -> None:
        """The request hooks, as mitmproxy calls them for a request that arrived whole."""
        self.run(flow, "requestheaders")
        self.run(flow, "request")

    def request(self, body: dict, path: str = "/v1/messages?beta=true") -> http.HTTPFlow:
        flow = tflow.tflow(req=tutils.treq(method=b"POST", path=path.encode(), content=json.dumps(body).encode()))
        flow.request.headers["authorization"] = f"Bearer {MASTER}"
        self.arrive(flow)
        return flow

    def answer(
        self, flow: http.HTTPFlow, content_type: str, body: bytes, chunks: list[bytes] | None = None, status: int = 200
    ) -> None:
        flow.response = tutils.tresp(status_code=status, content=body)
        flow.response.headers["content-type"] = content_type
        self.run(flow, "responseheaders")
        if chunks is not None:  # mitmproxy streams: the body never reaches the flow
            flow.response.raw_content = None
            for chunk in [*chunks, b""]:
                flow.response.stream(chunk)
        self.run(flow, "response")


def shown(message: http.Message, flow: http.HTTPFlow) -> str:
    """What mitmweb shows for the message in its "auto" view: the stabilizer view's text."""
    result = contentviews.prettify_message(message, flow)
    assert result.view_name == "stabilizer", result.text[:300]
    return result.text


def marked(stored: list, status: int = 200, answered_here: bool = False) -> http.HTTPFlow:
    """A flow whose notes hold `stored` as changes, through FlowMarker."""
    flow = tflow.tflow(resp=tutils.tresp(status_code=status))
    flow.metadata["stabilizer"] = {"changes": stored}
    if answered_here:
        flow.metadata["stabilizer_answered_here"] = True
    FlowMarker().response(flow)
    return flow
