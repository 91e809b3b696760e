"""Keep a fixed endpoint in front of a LiteLLM proxy whose port changes on every start.

The Upstream addon follows LiteLLM's log file, learns the newest listening port
from uvicorn's "running on" line and, once that port takes a connection,
retargets every request to it. A line of an earlier LiteLLM (the log is appended
to across restarts) names a port that never answers, so it is never used. While
no port is known it answers 503 overloaded_error itself, which Claude Code retries.

A LiteLLM that refuses a connection has died and is being restarted (by
`stabilizer run`, launchd or systemd; it takes 8-14 s to start). The request
that met the refusal gets a 503; requests after it wait for the new port, for up
to RESTART_WAIT_SECONDS after that first refusal, instead of each failing at once:
Claude Code honours Retry-After: 1 and gives up after 10 tries, about 10 s, less
than a restart takes. After that window, a LiteLLM that is still away gets
503s at once again.

With `stabilizer_upstream` set (`stabilizer run --upstream URL`) there is no log:
every request goes to that LiteLLM, http or https (TLS verified by mitmproxy;
`ssl_verify_upstream_trusted_ca` for a private CA), under its path prefix and
with its Host. One that cannot be reached is marked down: requests get 503
overloaded_error at once, and a probe every second marks it up again. Nothing
here belongs to one front door: several can stand in front of one LiteLLM.
"""

import asyncio
import json
import logging
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from mitmproxy import ctx, exceptions, http
from mitmproxy.proxy.server_hooks import ServerConnectionHookData

from addons import __version__, http_url, upstream_target
from addons.flow.answers import answer, error_response, unavailable_response
from addons.flow.kind import PUBLIC, SHAPED, STATUS_PATH, FlowKind, canonical_path, endpoint, flow_kind
from addons.wire.logfollow import LogFollower, listening_address

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.2
RESTART_WAIT_SECONDS = 30.0
# How often a LiteLLM of --upstream that could not be reached is tried again.
PROBE_SECONDS = 1.0
PROBE_TIMEOUT_SECONDS = 2.0


async def takes_connection(address: tuple[str, int]) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(*address), PROBE_TIMEOUT_SECONDS)
    except (OSError, asyncio.TimeoutError):
        return False
    writer.close()
    return True


def _method_not_allowed(request: http.Request, allowed: str) -> http.Response:
    message = f"{request.method} {endpoint(request.path)} is not served; use {allowed}"
    return error_response("invalid_request_error", message, 405, allow=allowed)


class Upstream:
    def __init__(self, extra_status: Callable[[], dict[str, Any]] | None = None):
        # More for the status endpoint, under its own keys (auto mode's verdicts: addons/safeguards.py).
        self.extra_status = extra_status
        self.follower: LogFollower | None = None
        # --upstream: (scheme, host, port, prefix) of a LiteLLM that runs elsewhere, and whether it is down.
        self.fixed: tuple[str, str, int, str] | None = None
        self.down = False
        self.address: tuple[str, int] | None = None
        # The newest address of the log, until it takes a connection and becomes `address`.
        self.candidate: tuple[str, int] | None = None
        self.learned_at: float | None = None
        # When the learned address first refused a connection (None: it did not).
        self.refused_at: float | None = None
        self._poller: asyncio.Task | None = None

    def load(self, loader):
        loader.add_option(
            "stabilizer_litellm_log",
            str,
            "",
            "LiteLLM's log file; its newest 'Uvicorn running on' line says where to send requests, once that "
            "port takes a connection (a line of an earlier LiteLLM in an appended log is never used).",
        )
        loader.add_option(
            "stabilizer_upstream",
            str,
            "",
            "A LiteLLM that runs elsewhere (http[s]://host[:port][/prefix], stabilizer run --upstream): "
            "requests go there, no log is followed.",
        )

    def configure(self, updated):
        if "stabilizer_upstream" in updated and ctx.options.stabilizer_upstream:
            try:
                self.fixed = upstream_target(ctx.options.stabilizer_upstream)
            except ValueError as e:
                raise exceptions.OptionsError(f"stabilizer_upstream: {e}") from None
            self.address, self.learned_at, self.down = self.fixed[1:3], time.time(), False
            return
        if "stabilizer_litellm_log" not in updated or self.fixed:
            return
        if self.follower:
            self.follower.close()
        path = ctx.options.stabilizer_litellm_log
        if not path:
            self.follower = None
            logger.warning("stabilizer_litellm_log is not set: every request gets 503 until it is")
            return
        self.follower = LogFollower(path)
        self.address = self.candidate = self.learned_at = None
        self.poll()

    async def running(self):
        self._poller = asyncio.create_task(self._poll_forever())

    def done(self):
        if self._poller:
            self._poller.cancel()
        if self.follower:
            self.follower.close()

    async def _poll_forever(self):
        while True:
            await asyncio.sleep(PROBE_SECONDS if self.fixed else POLL_SECONDS)
            if self.fixed:
                await self._probe()
                continue
            try:
                self.poll()
            except OSError as e:
                assert self.follower is not None  # poll() reads only with a follower
                logger.warning("cannot read %s: %s", self.follower.path, e)
            await self.confirm()

    async def _probe(self) -> None:
        """A LiteLLM of --upstream that was down is up again once it takes a connection."""
        if self.down and self.address is not None and await takes_connection(self.address):
            self.down = False
            logger.info("upstream: %s answers again", self._url())

    def poll(self) -> None:
        """Read what the log gained; its last address is the candidate."""
        if not self.follower:
            return
        for line in self.follower.read_lines():
            if address := listening_address(line):
                # The same port again is news only if it had refused: it may answer now.
                self.candidate = address if address != self.address or self.refused_at is not None else None

    async def confirm(self) -> None:
        """The candidate becomes the address once it takes a connection."""
        if self.candidate is None or not await takes_connection(self.candidate):
            return
        self.address, self.candidate = self.candidate, None
        self.learned_at, self.refused_at = time.time(), None
        logger.info("upstream: LiteLLM at %s:%d", *self.address)

    def _url(self) -> str | None:
        if self.fixed:
            return ctx.options.stabilizer_upstream.rstrip("/")
        return http_url(*self.address) if self.address else None

    def status(self) -> dict:
        return {
            "version": __version__,
            "upstream": self._url(),
            "mode": "upstream" if self.fixed else "log",
            "reachable": not self.down,
            "waiting_for": http_url(*self.candidate) if self.candidate else None,
            "learned_at": datetime.fromtimestamp(self.learned_at, timezone.utc).isoformat()
            if self.learned_at
            else None,
            "litellm_log": self.follower.path if self.follower else None,
            **(self.extra_status() if self.extra_status else {}),
        }

    def server_connect_error(self, data: ServerConnectionHookData) -> None:
        if self.fixed and data.server.address == self.address:
            if not self.down:
                logger.warning(
                    "upstream: %s cannot be reached (%s); 503 until it answers", self._url(), data.server.error
                )
            self.down = True
            return
        if self.address is not None and data.server.address == self.address and self.refused_at is None:
            self.refused_at = time.monotonic()
            logger.warning(
                "upstream: LiteLLM at %s:%d refuses connections; requests wait up to %.0f s for its new port",
                *self.address,
                RESTART_WAIT_SECONDS,
            )

    def request(self, flow: http.HTTPFlow):
        if flow.response:
            return None
        if (local := self._local_answer(flow)) is not None:
            answer(flow, local)
            return None
        if self.address is None:
            answer(
                flow,
                unavailable_response(
                    f"LiteLLM at {http_url(*self.candidate)} does not answer yet; retry shortly"
                    if self.candidate
                    else "LiteLLM is not running yet (no port in its log); retry shortly"
                ),
            )
            return None
        if self.down:
            answer(flow, unavailable_response(f"LiteLLM at {self._url()} cannot be reached; retry shortly"))
            return None
        if self.refused_at is not None and time.monotonic() < self.refused_at + RESTART_WAIT_SECONDS:
            # Awaited by mitmproxy for this flow only; every other request goes on meanwhile.
            return self._route_after_restart(flow)
        self._route(flow)
        return None

    def _local_answer(self, flow: http.HTTPFlow) -> http.Response | None:
        """What the front door answers itself: the public kinds (never LiteLLM's landing page,
        and nothing without a key reaches it), and a method the shaped routes do not take."""
        kind = flow_kind(flow)
        if kind in PUBLIC:
            if flow.request.method in ("GET", "HEAD"):
                body = self.status() if kind is FlowKind.STATUS else {"name": "stabilizer", "status": STATUS_PATH}
                return http.Response.make(200, json.dumps(body), {"content-type": "application/json"})
            return _method_not_allowed(flow.request, "GET, HEAD")
        if kind is FlowKind.NOT_POSTED:
            return _method_not_allowed(flow.request, "POST")
        return None

    async def _route_after_restart(self, flow: http.HTTPFlow) -> None:
        while self.refused_at is not None and time.monotonic() < self.refused_at + RESTART_WAIT_SECONDS:
            await asyncio.sleep(POLL_SECONDS)
        if self.address is None:  # stabilizer_litellm_log changed meanwhile: no port to go to yet
            answer(flow, unavailable_response("LiteLLM is not running yet (no port in its log); retry shortly"))
            return
        # The new port; or, if none came, the old one, whose refusal becomes a 503.
        self._route(flow)

    def _route(self, flow: http.HTTPFlow) -> None:
        if flow_kind(flow) in SHAPED:
            # A variant goes on as the path that was shaped: LiteLLM would redirect
            # `/v1/messages/` to its own port, and decode `%6D` itself.
            flow.request.path = canonical_path(flow.request.path)
        if self.fixed:
            scheme, host, port, prefix = self.fixed
            flow.request.scheme, flow.request.host, flow.request.port = scheme, host, port
            flow.request.path = prefix + flow.request.path
            # A LiteLLM behind a load balancer or a TLS front is found by its name.
            default = 443 if scheme == "https" else 80
            flow.request.headers["host"] = host if port == default else f"{host}:{port}"
            return
        assert self.address is not None  # request() and _route_after_restart answer 503 without one
        flow.request.scheme = "http"
        flow.request.host, flow.request.port = self.address

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        """A redirect of LiteLLM's points at the stack's own address, never at LiteLLM's port."""
        response = flow.response
        location = response.headers.get("location") if response else None
        if response is None or not location or self.address is None:
            return
        upstream = self._url()
        if upstream and location.startswith(upstream) and flow.client_conn.sockname:
            here = http_url(*flow.client_conn.sockname[:2])
            response.headers["location"] = here + location[len(upstream) :]
