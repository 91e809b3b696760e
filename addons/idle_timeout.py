"""A limit on LiteLLM's silence: no byte from it for N seconds, and the request is given up.

LiteLLM's own timeouts (config/litellm.yaml, router_settings `timeout` and
`stream_timeout`) cover a backend that stalls: LiteLLM answers 408 or ends the
stream with an error event. They cannot cover a LiteLLM that stays silent while
the backend keeps sending, as with an event that never ends (LiteLLM buffers
it, hundreds of MB a minute, and sends nothing on), nor a LiteLLM that hangs.

So every request that goes to LiteLLM is watched: when LiteLLM has sent nothing
for `stabilizer_upstream_idle_timeout` seconds, before its answer or between two
chunks of a stream, the connection to it is closed (mitmproxy has no API for
that: addons/flow/mitmproxy_internals.py does it). What the client gets is what
addons/proxy_errors.py makes of a closed upstream: a 503 overloaded_error before
the answer started, an SSE `error` event (overloaded_error) after; Claude Code
retries both. Closing the connection also makes LiteLLM give up a streaming
request to the backend.

The default (540 s) stays above what LiteLLM's shipped timeouts take to answer a
stalled backend (three tries of `stream_timeout`: 120 s), so their more specific
answer comes first, and below Claude Code's own limit (10 minutes) and mitmproxy's
`tcp_timeout` (600 s, which drops the client without an answer). Set it with
`mitmdump --set stabilizer_upstream_idle_timeout=SECONDS` or, for `stabilizer run`,
in ~/.mitmproxy/config.yaml; 0 turns the watch off.
"""

import asyncio
import logging
import time

from mitmproxy import ctx, exceptions, http

from addons.flow import mitmproxy_internals

logger = logging.getLogger(__name__)

OPTION = "stabilizer_upstream_idle_timeout"
DEFAULT_SECONDS = 540


class _Watch:
    """The silence of one request's upstream, checked when it could first have run out."""

    def __init__(self, flow: http.HTTPFlow, seconds: int, on_silence, loop: asyncio.AbstractEventLoop) -> None:
        self.flow = flow
        self.seconds = seconds
        self.on_silence = on_silence
        self.last_activity = time.monotonic()
        self._loop = loop
        self._timer = self._loop.call_later(seconds, self._check)

    def touch(self) -> None:
        # Only a timestamp per chunk; the timer re-arms itself when it fires early.
        self.last_activity = time.monotonic()

    def cancel(self) -> None:
        self._timer.cancel()

    def _check(self) -> None:
        quiet = time.monotonic() - self.last_activity
        if quiet < self.seconds:
            self._timer = self._loop.call_later(self.seconds - quiet, self._check)
        else:
            self.on_silence(self.flow)


class _Activity:
    """A response's stream callable (or `True`) that reports every chunk to the watch."""

    def __init__(self, stream, watch: _Watch) -> None:
        self.stream = stream
        self.watch = watch

    def __call__(self, chunk: bytes):
        self.watch.touch()
        return self.stream(chunk) if callable(self.stream) else chunk


class UpstreamIdleTimeout:
    def __init__(self) -> None:
        self.seconds = DEFAULT_SECONDS
        self._watches: dict[str, _Watch] = {}

    def load(self, loader):
        mitmproxy_internals.check_version()
        loader.add_option(
            OPTION,
            int,
            DEFAULT_SECONDS,
            "Seconds LiteLLM may send nothing (before its answer, or between two chunks of a stream) "
            "before the request is given up with an Anthropic overloaded_error. 0: no limit. LiteLLM's own "
            "stream_timeout or timeout in its config, when shorter, comes first.",
        )

    def configure(self, updated):
        if OPTION not in updated:
            return
        seconds = getattr(ctx.options, OPTION)
        if seconds < 0:
            raise exceptions.OptionsError(f"{OPTION} must be 0 (no limit) or a number of seconds, not {seconds}")
        self.seconds = seconds

    def request(self, flow: http.HTTPFlow) -> None:
        # Last of the request hooks that may answer: a flow without a response goes upstream.
        if flow.response is not None or not self.seconds:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # hooks driven without a proxy (offline replay, unit tests): nothing to time
            return
        self._watches[flow.id] = _Watch(flow, self.seconds, self._give_up, loop)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        if (watch := self._watches.get(flow.id)) is None:
            return
        watch.touch()
        response = flow.response
        assert response is not None  # mitmproxy calls responseheaders once the headers are in
        if response.stream:
            response.stream = _Activity(response.stream, watch)

    def response(self, flow: http.HTTPFlow) -> None:
        self._forget(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._forget(flow)

    def done(self) -> None:
        for watch in self._watches.values():
            watch.cancel()
        self._watches.clear()

    def _forget(self, flow: http.HTTPFlow) -> None:
        if (watch := self._watches.pop(flow.id, None)) is not None:
            watch.cancel()

    def _give_up(self, flow: http.HTTPFlow) -> None:
        self._forget(flow)
        if not flow.live:
            return
        if not mitmproxy_internals.close_server_connection(flow, f"{OPTION} ({self.seconds} s) reached"):
            logger.warning("%s %s: LiteLLM silent for %d s, but no connection to it to close",
                           flow.request.method, flow.request.path, self.seconds)  # fmt: skip
            return
        logger.warning("%s %s: LiteLLM sent nothing for %d s; closing the connection to it",
                       flow.request.method, flow.request.path, self.seconds)  # fmt: skip
