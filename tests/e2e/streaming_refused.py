"""A mitmproxy script for tests: every streaming /v1/messages request answered 404, as by a gateway
that serves no streaming. Claude Code 2.1.332 then sends the request again without streaming
(its retry rule: a 404 to a streaming request is tried once without), so its non-streaming path
can be driven. Loaded after the bundle (`-s`), it answers before the upstream is asked."""

import json

from mitmproxy import http

NOT_FOUND = {"type": "error", "error": {"type": "not_found_error", "message": "streaming is not served here"}}


def request(flow: http.HTTPFlow) -> None:
    if flow.request.method != "POST" or not flow.request.path.startswith("/v1/messages?"):
        return
    try:
        body = json.loads(flow.request.content or b"")
    except ValueError:
        return
    if isinstance(body, dict) and body.get("stream") is True:
        flow.response = http.Response.make(404, json.dumps(NOT_FOUND), {"content-type": "application/json"})
