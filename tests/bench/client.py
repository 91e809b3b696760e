"""A lean HTTP/1.1 client for the benchmarks: one kept-alive connection, timed replies.

urllib and the SDKs cost more per request than the proxy under test; this one
writes prepared bytes and reads the answer with asyncio streams, so most of a
measured round trip is the server's. For event streams it notes, per event,
when it arrived (time.monotonic_ns, the clock the stand-in upstream stamps its
`id: <seq> <sent ns>` lines with).
"""

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

READ_SIZE = 1 << 16
TIMEOUT = 60.0


@dataclass
class Reply:
    status: int
    body: bytes
    seconds: float
    # (seq, sent ns, arrived ns) of each event with an `id: <seq> <sent ns>` line
    events: list[tuple[int, int, int]] = field(default_factory=list)


def prepare(path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """The head of a POST; the body goes after it as is."""
    lines = [f"POST {path} HTTP/1.1", "host: 127.0.0.1", "content-type: application/json"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Connection:
    def __init__(self, port: int):
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> "Connection":
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port, limit=READ_SIZE * 4)
        return self

    async def close(self) -> None:
        if self.writer:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass

    async def post(
        self, head: bytes, body: bytes, *, timed_events: bool = False, on_event: Callable[[int], None] | None = None
    ) -> Reply:
        """Send a POST and read the whole reply. With `timed_events`, note each
        stamped event's arrival and tell `on_event` its seq as soon as it is in."""
        start = time.perf_counter()
        self.writer.writelines((head, body))
        status, headers = await asyncio.wait_for(self._head(), TIMEOUT)
        events: list[tuple[int, int, int]] = []
        if headers.get("transfer-encoding", "").lower() == "chunked":
            content = await asyncio.wait_for(self._chunked(events if timed_events else None, on_event), TIMEOUT)
        else:
            content = await asyncio.wait_for(self.reader.readexactly(int(headers.get("content-length", 0))), TIMEOUT)
        return Reply(status, content, time.perf_counter() - start, events)

    async def _head(self) -> tuple[int, dict[str, str]]:
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        return int(lines[0].split(" ", 2)[1]), headers

    async def _chunked(self, events: list | None, on_event: Callable[[int], None] | None) -> bytes:
        parts: list[bytes] = []
        pending = b""
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
            data = await self.reader.readexactly(size + 2)
            if size == 0:
                return b"".join(parts)
            data = data[:-2]
            parts.append(data)
            if events is not None:
                arrived = time.monotonic_ns()
                pending += data
                *complete, pending = pending.split(b"\n\n")
                for event in complete:
                    if stamp := _stamp(event):
                        events.append(stamp + (arrived,))
                        if on_event:
                            on_event(stamp[0])


def _stamp(event: bytes) -> tuple[int, int] | None:
    """(seq, sent ns) from an event's `id: <seq> <sent ns>` line."""
    for line in event.split(b"\n"):
        if line.startswith(b"id: "):
            seq, sent = line[4:].split(b" ")
            return int(seq), int(sent)
    return None
