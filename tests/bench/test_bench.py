"""The benchmark's own machinery: the stand-in upstream, the timed client, the held-back check, the report.

Nothing here times the bundle (timings are never asserted); these tests make
sure `make bench` measures what it says it measures.
"""

import asyncio
import json

import pytest

from tests.bench import report, streaming, workload
from tests.bench.client import Connection, prepare
from tests.bench.servers import UpstreamProcess
from tests.bench.stats import Figure, Target, loglog_slope, percentile


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    server = UpstreamProcess(tmp_path_factory.mktemp("upstream"))
    yield server
    server.stop()


async def _post(port: int, body: dict, headers: dict[str, str] | None = None, **options):
    data = workload.encode(body)
    connection = await Connection(port).open()
    try:
        return await connection.post(prepare("/v1/messages", data, headers or {}), data, **options)
    finally:
        await connection.close()


def test_upstream_answers_json_and_a_stamped_stream(upstream):
    reply = asyncio.run(_post(upstream.port, {"model": "m", "messages": []}))
    assert reply.status == 200 and json.loads(reply.body)["type"] == "message"

    headers = {"x-bench-events": "20", "x-bench-gap-ms": "1"}
    reply = asyncio.run(_post(upstream.port, {"stream": True}, headers, timed_events=True))
    assert reply.status == 200
    assert [seq for seq, _, _ in reply.events] == list(range(20))
    assert all(arrived >= sent for _, sent, arrived in reply.events)
    assert reply.body.count(b"event: content_block_delta") == 15 and reply.body.endswith(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")


async def _relay(upstream_port: int, hold: bool) -> asyncio.Server:
    """A proxy on loopback; with `hold`, it keeps each piece of the answer until the next one comes
    (or 0.3 s pass), as a proxy that waits for more bytes before passing an event on would."""

    async def pipe(reader, writer, holding: bool):
        held = b""
        try:
            while True:
                try:
                    data = await asyncio.wait_for(reader.read(65536), 0.3 if held else None)
                except TimeoutError:
                    writer.write(held)
                    held = b""
                    continue
                if not data:
                    break
                if holding:
                    writer.write(held)
                    held = data
                else:
                    writer.write(data)
        finally:
            writer.write(held)
            writer.close()

    async def connect(client_reader, client_writer):
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        await asyncio.gather(pipe(client_reader, server_writer, False), pipe(server_reader, client_writer, hold))

    return await asyncio.start_server(connect, "127.0.0.1", 0)


@pytest.mark.parametrize("hold", [False, True])
def test_held_back_events_are_counted_by_order(upstream, hold):
    async def run():
        relay = await _relay(upstream.port, hold)
        port = relay.sockets[0].getsockname()[1]
        headers = {"x-bench-events": "12", "x-bench-gap-ms": "2"}
        try:
            return await streaming._streams(port, headers, b'{"stream":true}', 2, 12, 2, upstream.ack_port)
        finally:
            relay.close()

    delays, held_back = asyncio.run(run())
    assert len(delays) == 24
    if hold:
        assert held_back >= 10  # every event waits for the next one
    else:
        assert held_back == 0


def test_long_session_is_deterministic_and_grows_by_one_turn():
    session = workload.long_session(200_000)
    size = len(workload.encode(session))
    assert 200_000 <= size < 210_000
    assert workload.encode(workload.long_session(200_000)) == workload.encode(session)
    assert workload.encode(workload.long_session(200_000, salt="other")) != workload.encode(session)
    assert any(message["role"] == "system" for message in session["messages"])  # folded by the bundle

    later = workload.next_turn(session, 1)
    assert later["messages"][:-3] == session["messages"][:-1]
    assert [m["role"] for m in later["messages"][-2:]] == ["assistant", "user"]
    marked = [block for m in later["messages"] for block in m["content"] if "cache_control" in block]
    assert marked == [later["messages"][-1]["content"][-1]]


def test_statistics():
    assert percentile([5, 1, 4, 2, 3], 50) == 3
    assert percentile(list(range(1, 101)), 99) == 99
    assert loglog_slope([(1, 2), (10, 20), (100, 200)]) == pytest.approx(1)
    assert loglog_slope([(1, 1), (10, 100), (100, 10_000)]) == pytest.approx(2)
    figure = Figure([3.0, 1.0, 2.0])
    assert (figure.median, figure.spread, figure.show()) == (2.0, 2.0, "2.00 ±1.00")


def test_a_missed_target_is_printed_as_missed():
    def latency(name: str, added: float) -> dict:
        return {"case": name, "figures": {"c-b p50": Figure([added])}}

    results = {"latency": [latency("76 KB recorded request (streaming)", 1.5), latency("2 MB session, whole, next turn", 4.0)]}
    found = report.targets(results)
    assert [(target.holds, target.limit) for target in found] == [(False, 1.0), (True, 5.0)]
    assert found[0].line().startswith("MISSED") and "1.50 ms" in found[0].line()
    assert Target("throughput", 0.9, 0.8, "x", at_most=False).holds
