"""Limits learned from the backend: a request refused for a limit it states is sent again, once, within it.

A model without a policy entry gets the default max_output_tokens (32000) and
context_window (131072). A backend that takes less answers 400 in its own words
("the valid range of max_tokens is [1, 8192]", "maximum context length is 65536
tokens"; addons/errors/upstream.py, stated_limit). Then the request addon keeps
that limit for the model's policy entry while mitmdump runs (addons/config/learned.py),
the request as it was sent is fitted into it (max_tokens capped, messages trimmed:
RequestShaper.refit) and sent again to the same upstream, and its answer replaces
the refusal. The log names the policy line that keeps the limit for good.

Nothing else is sent again: not a doctor's probe (PROBE_HEADER), not a refusal for another reason, not a request that
kept the limit already (the backend refused something else: the refit leaves it
as it was), and never twice. A 400 never arrives as a stream (the
response addon streams 2xx answers only), so its body is here whole; the answer
to the second try is read whole too, and the response addon patches it as one
piece (a streaming request's events included).
"""

import asyncio
import logging
from collections.abc import Awaitable

from mitmproxy import ctx, http

from addons import PROBE_HEADER
from addons.errors.upstream import stated_limit
from addons.flow.change import Change, ChangeKind
from addons.flow.kind import FlowKind, flow_kind
from addons.flow.notes import ANSWERED_HERE, add_changes, turn_notes
from addons.request_shaper import RequestShaper

logger = logging.getLogger(__name__)

# Claude Code's own limit for a whole answer.
RESEND_TIMEOUT_SECONDS = 600.0
# Set by the client for the request sent again, or describing the body as it was.
_NOT_RESENT = frozenset({"content-length", "transfer-encoding", "connection"})
# httpx hands over the body decoded and whole.
_NOT_COPIED = frozenset({"content-length", "transfer-encoding", "content-encoding", "connection"})


class LimitLearner:
    def __init__(self, shaper: RequestShaper) -> None:
        self.shaper = shaper

    def response(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        response = flow.response
        if response is None or response.stream or flow.metadata.get(ANSWERED_HERE):
            return None
        if PROBE_HEADER in flow.request.headers:
            return None
        if flow_kind(flow) is not FlowKind.MESSAGES:
            return None
        stated = stated_limit(response.status_code, response.get_content(strict=False) or b"")
        notes = turn_notes(flow)
        key = notes.get("policy_key") or notes.get("model")
        if stated is None or not key:
            return None
        setting, value = stated
        if self.shaper.learn(key, setting, value):
            policy = ctx.options.stabilizer_policy or "a policy file (stabilizer run --policy)"
            logger.warning(
                "%s: the backend takes %s up to %d; later requests keep to it until mitmdump stops. "
                "To keep it, add to %s: models: {%s: {%s: %d}}",
                notes.get("model") or key, setting, value, policy, key, setting, value,
            )  # fmt: skip
        # Learned now or by a request refused just before (both went before either came back):
        # sent again if the request did not keep to it.
        return self._send_again(flow, f"HTTP 400 stated {setting} {value}")

    async def _send_again(self, flow: http.HTTPFlow, reason: str) -> None:
        # Off the loop: the refit may count and trim a long history.
        if not await asyncio.to_thread(self.shaper.refit, flow) or flow.metadata.get(ANSWERED_HERE):
            return
        answer = await _resend(flow.request)
        if isinstance(answer, str):
            logger.warning("%s: sending it again failed (%s); the refusal stands", reason, answer)
            return
        flow.response = answer
        sent_again = f"{reason}: sent again within it, answered HTTP {flow.response.status_code}"
        add_changes(turn_notes(flow), [Change(ChangeKind.UPSTREAM_ERROR, sent_again)])


async def _resend(request: http.Request) -> http.Response | str:
    """`request` sent to where it went (the Upstream addon's target), its answer read whole; or why it
    could not be sent."""
    # Imported for the rare request sent again: with the click, rich and pygments it imports at once,
    # its modules would be in mitmdump from its start, their objects walked by every full garbage
    # collection.
    import httpx

    trusted = ctx.options.ssl_verify_upstream_trusted_ca if "ssl_verify_upstream_trusted_ca" in ctx.options else None
    headers = [(name, value) for name, value in request.headers.fields if name.decode().lower() not in _NOT_RESENT]
    try:
        async with httpx.AsyncClient(verify=trusted or True, timeout=RESEND_TIMEOUT_SECONDS) as client:
            answer = await client.request(request.method, request.url, headers=headers, content=request.raw_content)
    except httpx.HTTPError as e:
        return str(e)
    kept = [(name, value) for name, value in answer.headers.raw if name.decode().lower() not in _NOT_COPIED]
    return http.Response.make(answer.status_code, answer.content, kept)
