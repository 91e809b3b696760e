"""A compressed request body decoded before the request addon reads it.

LiteLLM reads plain bodies only: it would find no `messages` in a gzip body. So
a Messages or count_tokens request with a Content-Encoding (gzip, br, zstd,
deflate, or a list of them) goes on decoded, its Content-Encoding header
removed, within the limit mitmdump puts on the bodies it receives
(`body_size_limit`; addons/wire/bodies.py stops each coding as soon as its
output passes it). Past the limit the request is answered here with Anthropic's
413 request_too_large, a body that is not what its coding says with the 400
invalid_request_error: Claude Code shows both instead of retrying.

Decoding runs in a worker thread, one body at a time: a 0.1 MB bomb inflates to
the whole 32 MB, which on the event loop would hold every other flow.
"""

import asyncio
from collections.abc import Awaitable

from mitmproxy import ctx, http
from mitmproxy.utils import human

from addons.flow.answers import refuse
from addons.flow.kind import KIND, SHAPED
from addons.wire.bodies import DEFAULT_LIMIT, TooLarge, decoded


class BodyDecoder:
    def __init__(self):
        # One body in the worker thread at a time: two would only share the cores.
        self._worker = asyncio.Lock()

    def request(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        if flow.response or flow.metadata.get(KIND) not in SHAPED:
            return None
        if (encoding := flow.request.headers.get("content-encoding")) is None:
            return None
        return self._decode(flow, encoding)

    async def _decode(self, flow: http.HTTPFlow, encoding: str) -> None:
        async with self._worker:
            try:
                body = await asyncio.to_thread(decoded, flow.request.raw_content or b"", encoding, _body_limit())
            except TooLarge as e:
                refuse(flow, f"{e}: send less, or send it uncompressed", "request_too_large")
                return
            except ValueError as e:
                refuse(flow, f"the body cannot be decoded as Content-Encoding: {encoding} ({e})")
                return
        del flow.request.headers["content-encoding"]
        flow.request.content = body


def _body_limit() -> int:
    """What a decoded body may hold: mitmdump's own limit on the bodies it receives."""
    limit = ctx.options.body_size_limit if "body_size_limit" in ctx.options else None
    return (human.parse_size(limit) if limit else None) or DEFAULT_LIMIT
