"""What the benchmark's stand-in servers (upstream.py, provider_upstream.py) share: a
connection's keep-alive HTTP/1.1 requests read and answered in order, and the script's main.
"""

import argparse
import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

MAX_HEAD_BYTES = 64 * 1024
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


class Requests(asyncio.Protocol):
    """One client connection: requests one after another (keep-alive), each handed to
    `respond` once its body is in; a stream it starts in `self.streaming` ends with the connection."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.head: tuple[bytes, bytes, dict[bytes, bytes]] | None = None
        self.length = 0
        self.streaming: asyncio.Task | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        if self.streaming:
            self.streaming.cancel()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if self.head is None:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(self.buffer) > MAX_HEAD_BYTES:
                        self.transport.close()
                    return
                lines = bytes(self.buffer[:end]).split(b"\r\n")
                del self.buffer[: end + 4]
                method, path, _ = lines[0].split(b" ", 2)
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    headers[name.strip().lower()] = value.strip()
                self.head = (method, path, headers)
                self.length = int(headers.get(b"content-length", b"0"))
            if len(self.buffer) < self.length:
                return
            body = bytes(self.buffer[: self.length])
            del self.buffer[: self.length]
            method, path, headers = self.head
            self.head = None
            self.respond(method, path, headers, body)

    def respond(self, method: bytes, path: bytes, headers: dict[bytes, bytes], body: bytes) -> None:
        raise NotImplementedError


def main(serve: Callable[[int], Coroutine[Any, Any, None]], description: str) -> None:
    """`python -m <stand-in> [--port 0]`: serve until interrupted."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.port))
    except KeyboardInterrupt:
        pass
