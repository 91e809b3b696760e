"""2. Streaming delay: how much later each event of a stream reaches the client through the bundle.

The stand-in upstream sends a stream of N events with a fixed gap and stamps
each with the time it was sent; the client notes when each arrives. An
event's delay is arrival - sent; the figures are the delay's p50 and p99 (a)
direct and (c) through the bundle, and (c) - (a).

Held back: an event that arrived only after the upstream had sent the next
one. The streams run in lockstep (tests/bench/upstream.py): the client
acknowledges each event as it arrives and the upstream sends the next one at
its time but not before that acknowledgement, waiting up to 100 ms. A slow
event thus only delays the next one, while an event a proxy keeps until a
later one comes still arrives after that later one was sent: the count
catches holding back by ordering, whatever the timing. With several streams
the requests start spread over one gap, as independent sessions would, not
all in step.

Stock mitmdump is not measured here: without an addon that sets
`flow.response.stream` it buffers a whole event stream (every event but the
last would be held back), which is why the bundle streams.
"""

import asyncio
import itertools
import socket

from tests.bench.client import Connection, Reply, prepare
from tests.bench.stats import Figure, percentile

MODES = ("direct", "bundle")
PATH = "/v1/messages?beta=true"
_tokens = itertools.count(1)


async def _one_stream(port: int, headers: dict[str, str], body: bytes, start_after: float, ack_port: int) -> Reply:
    token = next(_tokens)
    head = prepare(PATH, body, {**headers, "x-bench-ack": str(token)})
    connection = await Connection(port).open()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as acks:
        acks.setblocking(False)

        def acknowledge(seq: int) -> None:
            acks.sendto(b"%d %d" % (token, seq), ("127.0.0.1", ack_port))

        try:
            await asyncio.sleep(start_after)
            return await connection.post(head, body, timed_events=True, on_event=acknowledge)
        finally:
            await connection.close()


async def _streams(
    port: int, headers: dict[str, str], body: bytes, streams: int, events: int, gap_ms: float, ack_port: int
) -> tuple[list[float], int]:
    """Delays of every event of `streams` concurrent streams (ms), and how many were held back."""
    replies = await asyncio.gather(
        *(_one_stream(port, headers, body, k * gap_ms / 1000 / streams, ack_port) for k in range(streams))
    )
    delays: list[float] = []
    held_back = 0
    for reply in replies:
        stamps = sorted(reply.events)
        if reply.status != 200 or [seq for seq, _, _ in stamps] != list(range(events)):
            raise RuntimeError(f"port {port}: HTTP {reply.status}, {len(stamps)} of {events} events")
        delays += [(arrived - sent) / 1e6 for _, sent, arrived in stamps]
        held_back += sum(1 for now, following in zip(stamps, stamps[1:]) if now[2] >= following[1])
    return delays, held_back


async def measure(
    ports: dict[str, int],
    ack_port: int,
    body: bytes,
    headers: dict[str, str],
    *,
    streams: int,
    events: int,
    gap_ms: float,
    rounds: int,
) -> dict:
    headers = {**headers, "x-bench-events": str(events), "x-bench-gap-ms": str(gap_ms)}
    figures = {
        name: Figure()
        for name in (
            "direct p50",
            "direct p99",
            "bundle p50",
            "bundle p99",
            "c-a p50",
            "c-a p99",
            "held back (bundle)",
            "held back (direct)",
        )
    }
    for round_ in range(rounds):
        measured = {}
        for mode in MODES if round_ % 2 == 0 else MODES[::-1]:
            measured[mode] = await _streams(ports[mode], headers, body, streams, events, gap_ms, ack_port)
        p50 = {mode: percentile(measured[mode][0], 50) for mode in MODES}
        p99 = {mode: percentile(measured[mode][0], 99) for mode in MODES}
        for mode in MODES:
            figures[f"{mode} p50"].add(p50[mode])
            figures[f"{mode} p99"].add(p99[mode])
            figures[f"held back ({mode})"].add(measured[mode][1])
        figures["c-a p50"].add(p50["bundle"] - p50["direct"])
        figures["c-a p99"].add(p99["bundle"] - p99["direct"])
    return {"streams": streams, "events": events, "gap_ms": gap_ms, "rounds": rounds, "figures": figures}
