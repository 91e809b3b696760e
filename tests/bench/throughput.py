"""3. Throughput: requests per second through the bundle as a share of stock mitmdump.

C clients, each on its own kept-alive connection, send the recorded 76 KB
request back to back for a fixed window; requests completed inside the window
count. The proxies take turns round by round, in a rotating order.

Beside stock mitmdump (b), which buffers the answer and sends it in one write,
(b') is stock mitmdump that streams the event stream as the bundle must: c/b'
is what the addons cost on top of streaming, b'/b what streaming costs in
mitmproxy itself. The target is on c/b.
"""

import asyncio

from tests.bench.client import Connection, prepare
from tests.bench.stats import Figure

MODES = ("stock", "stock streaming", "bundle")
WARMUP_SECONDS = 0.5


async def _rate(port: int, head: bytes, body: bytes, clients: int, seconds: float) -> float:
    connections = [await Connection(port).open() for _ in range(clients)]
    loop = asyncio.get_running_loop()
    begin = loop.time() + WARMUP_SECONDS
    end = begin + seconds
    done = 0

    async def client(connection: Connection) -> None:
        nonlocal done
        while loop.time() < end:
            reply = await connection.post(head, body)
            if reply.status != 200:
                raise RuntimeError(f"HTTP {reply.status} from port {port}: {reply.body[:300]!r}")
            if begin <= loop.time() <= end:
                done += 1

    try:
        await asyncio.gather(*(client(connection) for connection in connections))
    finally:
        for connection in connections:
            await connection.close()
    return done / seconds


async def measure(
    ports: dict[str, int],
    body: bytes,
    headers: dict[str, str],
    *,
    clients: tuple[int, ...],
    seconds: float,
    rounds: int,
) -> list[dict]:
    head = prepare("/v1/messages?beta=true", body, headers)
    results = []
    for count in clients:
        figures = {name: Figure() for name in ("stock rps", "stock streaming rps", "bundle rps", "c/b", "c/b'")}
        for round_ in range(rounds):
            rates = {}
            shift = round_ % len(MODES)
            for mode in MODES[shift:] + MODES[:shift]:
                rates[mode] = await _rate(ports[mode], head, body, count, seconds)
            for mode in MODES:
                figures[f"{mode} rps"].add(rates[mode])
            figures["c/b"].add(rates["bundle"] / rates["stock"])
            figures["c/b'"].add(rates["bundle"] / rates["stock streaming"])
        results.append({"clients": count, "seconds": seconds, "rounds": rounds, "figures": figures})
    return results
