"""5. Memory: resident size of a fresh bundle after 1,000 and after 10,000 requests of 76 KB;
and of the bundle under mitmweb (`stabilizer run --web`) over a long session of 2 MB turns.

Each request is the recorded one with its own question, as the first request
of 10,000 different sessions would be, so every request brings new messages
to the estimate cache: what grows with traffic shows. A fresh stock mitmdump
gets the same requests, for comparison: Python's and the C library's
allocators settle over the first thousands of requests in both.

mitmweb keeps every flow it shows, up to `stabilizer_max_flows` (1000 by
default), with what Claude Code sent kept beside each for the stabilizer view:
one session of 1,000 turns from 2 MB on, one turn after the other as Claude
Code sends them, shows what that costs.
"""

import asyncio

from tests import workload
from tests.bench.client import Connection, prepare
from tests.bench.servers import rss_bytes

CLIENTS = 8


async def _send(port: int, headers: dict[str, str], numbers: range) -> None:
    base = workload.recorded()
    pending = iter(numbers)
    connections = [await Connection(port).open() for _ in range(CLIENTS)]

    async def client(connection: Connection) -> None:
        for number in pending:
            body = workload.encode(workload.unique_first_request(base, number))
            reply = await connection.post(prepare("/v1/messages?beta=true", body, headers), body)
            if reply.status != 200:
                raise RuntimeError(f"HTTP {reply.status}: {reply.body[:300]!r}")

    try:
        await asyncio.gather(*(client(connection) for connection in connections))
    finally:
        for connection in connections:
            await connection.close()


async def measure(
    port: int, pid: int, headers: dict[str, str], checkpoints: tuple[int, ...], progress
) -> dict[str, float]:
    """RSS (MB) at start ("0") and after each checkpoint (cumulative request counts)."""
    rss = {"0": rss_bytes(pid) / 2**20}
    sent = 0
    for checkpoint in checkpoints:
        progress(f"memory: requests {sent + 1}-{checkpoint}")
        await _send(port, headers, range(sent, checkpoint))
        sent = checkpoint
        rss[str(checkpoint)] = rss_bytes(pid) / 2**20
    return rss


async def web_session(
    port: int, pid: int, headers: dict[str, str], checkpoints: tuple[int, ...], progress
) -> dict[str, float]:
    """RSS (MB) of mitmweb with the addons at start and after each checkpoint of a 2 MB session's turns."""
    request = workload.long_session(2 << 20, salt="web")
    rss = {"0": rss_bytes(pid) / 2**20}
    connection = await Connection(port).open()
    try:
        turn = 0
        for checkpoint in checkpoints:
            progress(f"memory: mitmweb, turns {turn + 1}-{checkpoint}")
            while turn < checkpoint:
                request = workload.next_turn(request, turn)
                # As Claude Code's compaction request: an ordinary turn of a history past the
                # window is answered "prompt is too long" (the bound of addons/request/trim.py).
                body = workload.encode(workload.as_summary_request(request))
                reply = await connection.post(prepare("/v1/messages?beta=true", body, headers), body)
                if reply.status != 200:
                    raise RuntimeError(f"HTTP {reply.status}: {reply.body[:300]!r}")
                turn += 1
            rss[str(checkpoint)] = rss_bytes(pid) / 2**20
    finally:
        await connection.close()
    rss["last request MB"] = len(body) / 2**20
    return rss
