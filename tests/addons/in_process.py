"""A real mitmproxy in this process, for the tests of the addons that reach into its internals.

A DumpMaster runs in a thread of this process (so what addons/flow/mitmproxy_internals.py
replaced is what mitmproxy's proxy server and HTTP/1 layer run), raw sockets talk to it,
and a scripted upstream plays LiteLLM.
"""

import asyncio
import http.client
import json
import re
import socket
import threading

from mitmproxy.tools.dump import DumpMaster

TIMEOUT = 10


class Ready:
    """Tells the test where the proxy listens once mitmproxy runs."""

    def __init__(self) -> None:
        self.port: int | None = None
        self.event = threading.Event()

    def running(self):
        from mitmproxy import ctx

        self.port = ctx.master.addons.get("proxyserver").listen_addrs()[0][1]
        self.event.set()


class InProcessProxy:
    """mitmdump's master, in a thread of this process: the given addons, reverse proxy to `upstream_port`."""

    def __init__(self, upstream_port: int, *addons, **options) -> None:
        self.upstream_port = upstream_port
        self.addons = addons
        self.options = options
        self.ready = Ready()
        self.master: DumpMaster | None = None

    def __enter__(self) -> "InProcessProxy":
        self.thread = threading.Thread(target=asyncio.run, args=(self.main(),), daemon=True)
        self.thread.start()
        assert self.ready.event.wait(TIMEOUT), "the in-process mitmproxy did not start"
        return self

    async def main(self) -> None:
        self.master = DumpMaster(None, with_termlog=False, with_dumper=False)
        self.master.addons.add(*self.addons, self.ready)
        self.master.options.update(
            listen_host="127.0.0.1",
            listen_port=0,
            mode=[f"reverse:http://127.0.0.1:{self.upstream_port}"],
            connection_strategy="lazy",
            **self.options,
        )
        await self.master.run()

    def __exit__(self, *exc) -> None:
        self.master.shutdown()
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive(), "the in-process mitmproxy did not stop"

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.ready.port), timeout=TIMEOUT)


class ScriptedUpstream:
    """Plays LiteLLM for one request: reads it whole, then `answer(connection)`."""

    def __init__(self, answer) -> None:
        self.answer = answer
        self.request = b""
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self.serve_one, daemon=True)
        self.thread.start()

    def serve_one(self) -> None:
        connection, _ = self.listener.accept()
        with connection:
            while not self.request_complete():
                if not (data := connection.recv(65536)):
                    return
                self.request += data
            self.answer(connection)
        self.listener.close()

    def request_complete(self) -> bool:
        head, found, body = self.request.partition(b"\r\n\r\n")
        if not found:
            return False
        if b"transfer-encoding: chunked" in head.lower():
            return body.endswith(b"0\r\n\r\n")
        length = re.search(rb"content-length: *(\d+)", head, re.IGNORECASE)
        return len(body) >= (int(length[1]) if length else 0)


def read_answer(connection: socket.socket) -> tuple[http.client.HTTPResponse, bytes]:
    """The answer, its body read whole (http.client raises IncompleteRead on a chunked body left open)."""
    response = http.client.HTTPResponse(connection, method="POST")
    response.begin()
    return response, response.read()


def anthropic_error(response: http.client.HTTPResponse, body: bytes) -> dict:
    assert response.getheader("content-type") == "application/json", body[:300]
    return json.loads(body)["error"]


def post(body: bytes = b"{}", *extra: str) -> bytes:
    head = "\r\n".join(["POST /v1/messages HTTP/1.1", "host: x", "content-type: application/json", *extra])
    return head.encode() + b"\r\n\r\n" + body
