"""The benchmark's own machinery: the stand-in upstream, the timed client, the held-back check, the report.

Nothing here times the bundle (timings are never asserted); these tests make
sure `make bench` measures what it says it measures.
"""

import asyncio
import collections
import itertools
import json
import os
import socket
import subprocess
import sys

import pytest

from tests import workload
from tests.bench import latency, provider_upstream, report, servers, sessions, stats, streaming, whole_stack
from tests.bench.client import Connection, Reply, prepare
from tests.bench.servers import PROJECT_ROOT, UpstreamProcess
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
    assert reply.body.count(b"event: content_block_delta") == 15 and reply.body.endswith(
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    )


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

    results = {
        "latency": [latency("76 KB recorded request (streaming)", 1.5), latency("2 MB session, whole, next turn", 4.0)]
    }
    found = report.targets(results)
    assert [(target.holds, target.limit) for target in found] == [(False, 1.0), (True, 5.0)]
    assert found[0].line().startswith("MISSED") and "1.50 ms" in found[0].line()
    assert Target("throughput", 0.9, 0.8, "x", at_most=False).holds


def test_slower_than_before_needs_both_margins_and_two_thirds_of_the_rounds():
    def figures(now: list[float], before: list[float]) -> dict[str, Figure]:
        return {
            "c-b p50": Figure(now),
            "r-b p50": Figure(before),
            "c-r p50": Figure([a - b for a, b in zip(now, before)]),
        }

    assert report.slower_than_before(figures([1.3, 1.3, 1.3], [1.0, 1.0, 1.4]))
    assert not report.slower_than_before(figures([1.3, 1.3, 1.3], [1.0, 1.4, 1.4]))  # slower in 1 of 3 rounds
    assert not report.slower_than_before(figures([1.05, 1.05, 1.05], [1.0, 1.0, 1.0]))  # within 0.1 ms
    assert not report.slower_than_before(figures([310, 310, 310], [300, 300, 300]))  # within 5%


def test_against_a_revision_measures_it_interleaved_and_leaves_no_worktree(tmp_path):
    command = [
        sys.executable,
        "-m",
        "tests.bench",
        "--quick",
        "--only",
        "latency",
        "--rounds",
        "3",
        "--against",
        "HEAD",
    ]
    run = subprocess.run([*command, "--out", str(tmp_path)], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "**Bundle against HEAD (interleaved)**" in run.stdout
    extra_table = run.stdout.split("**Bundle against HEAD (interleaved)**")[1].split("\n\n")[1]
    rows = extra_table.splitlines()[2:]
    cases = json.loads(next(tmp_path.glob("bench-*.json")).read_text())["results"]["latency"]
    assert cases and [row.split(" | ")[0].removeprefix("| ") for row in rows] == [case["case"] for case in cases]
    assert all(len(case["figures"]["c-r p50"]["rounds"]) == 3 for case in cases)  # --rounds 3 (quick: 2)
    worktrees = subprocess.run(["git", "worktree", "list"], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert "stabilizer-bench-" not in worktrees.stdout


@pytest.fixture(scope="module")
def provider_backend(tmp_path_factory):
    server = whole_stack.Backend(tmp_path_factory.mktemp("provider-upstream"))
    yield server
    server.stop()


def test_stand_in_provider_streams_stamped_deltas_in_the_shape_set(provider_backend):
    async def post(path: str, body: dict):
        connection = await whole_stack.Connection(provider_backend.port).open()
        try:
            return await connection.post(path, workload.encode(body), {})
        finally:
            await connection.close()

    provider_backend.shape(5, 1)
    try:
        reply = asyncio.run(post(whole_stack.OPENAI_PATH, {"model": "m", "stream": True, "messages": []}))
        anthropic = asyncio.run(post("/v1/messages", {"model": "m", "stream": True, "messages": []}))
    finally:
        provider_backend.shape(whole_stack.INSTANT_DELTAS, 0)
    assert reply.status == 200 and reply.headers["content-type"] == "text/event-stream"
    assert [seq for seq, _, _ in reply.stamps] == list(range(5))
    assert all(arrived >= sent for _, sent, arrived in reply.stamps)
    events = [event.removeprefix(b"data: ") for event in reply.body.split(b"\n\n") if event]
    assert events[-1] == b"[DONE]"
    finish = json.loads(events[-2])
    assert finish["choices"][0]["finish_reason"] == "stop" and finish["usage"]["completion_tokens"] == 5
    assert 0 < reply.first_byte_ms <= reply.last_event_ms

    assert [seq for seq, _, _ in anthropic.stamps] == list(range(5))
    names = [event.split(b"\n")[0].removeprefix(b"event: ") for event in anthropic.body.split(b"\n\n") if event]
    assert names == [
        b"message_start",
        b"content_block_start",
        *[b"content_block_delta"] * 5,
        b"content_block_stop",
        b"message_delta",
        b"message_stop",
    ]

    answer = asyncio.run(post("/v1/chat/completions", {"model": "m", "messages": []}))
    assert answer.status == 200 and json.loads(answer.body)["choices"][0]["message"]["content"] == "Hi."
    assert json.loads(asyncio.run(post("/v1/messages", {"model": "m"})).body)["type"] == "message"
    assert asyncio.run(post("/v1/responses", {"stream": True})).status == 404


def test_openai_stand_in_writes_with_tcp_nodelay():
    async def run() -> int:
        made: list[provider_upstream.Backend] = []

        def factory():
            made.append(provider_upstream.Backend())
            return made[-1]

        server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        while not made:
            await asyncio.sleep(0.01)
        flag = made[0].transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        writer.close()
        server.close()
        return flag

    assert asyncio.run(run()) != 0


def test_whole_stack_table_and_targets():
    ways = list(whole_stack.WAYS)

    def case(name: str, stack_ttfb: float, stack_after: float) -> dict:
        figures = {}
        for way in ways:
            ttfb = {"direct": 0.4, "ccr": 5.0, "stack": stack_ttfb, "stack-anthropic": stack_ttfb}.get(way, 15.0)
            after = {"direct": 0.2, "ccr": 1.0, "stack": stack_after, "stack-anthropic": stack_after}.get(way, 10.0)
            figures[f"{way} ttfb"] = Figure([ttfb])
            figures[f"{way} added ttfb"] = Figure([ttfb - 0.4])
            figures[f"{way} last"] = Figure([ttfb + after])
            figures[f"{way} in"] = Figure([ttfb / 2])
            figures[f"{way} after"] = Figure([after])
            if way in whole_stack.LITELLM_WAYS:
                figures[f"{way} overhead"] = Figure([8.0])
            if way != "ccr":
                figures[f"{way}/ccr ttfb"] = Figure([ttfb / 5.0])
        for stack in whole_stack.STACKS:
            figures[f"{stack}-ccr added ttfb"] = Figure([stack_ttfb - 5.0])
            figures[f"{stack}-ccr after"] = Figure([stack_after - 1.0])
        return {"case": name, "bytes": 100, "figures": figures}

    events = {f"{way}{part} p{share}": Figure([1.0]) for way in ways for part in ("", "-direct") for share in (50, 99)}
    results = {
        "whole_stack": {
            "ways": ways,
            "cases": [case("small", 9.0, 2.5), case("recorded", 20.0, 4.0)],
            "events": events,
            "ccr_version": whole_stack.CCR_VERSION,
            "notes": [],
            "instant_deltas": 10,
            "requests": 40,
            "rounds": 3,
        }
    }
    found = report.targets(results)
    assert [(target.holds, target.limit) for target in found] == [
        (True, 5.0),
        (True, 2.0),
        (False, 5.0),
        (False, 2.0),
    ] * 2
    assert found[2].what == "whole stack (openai/): added time to first byte over claude-code-router's, recorded"
    assert found[4].what.startswith("whole stack (anthropic/): added time")
    table = report.markdown(
        results, {"cpus": "2", "cpu": "x", "os": "y", "python": "3", "mitmproxy": "12"}, "now", found
    )
    assert "**7. Whole stack**" in table and "| small | claude-code-router | 2.50 | 5.00 |" in table
    assert "| recorded | **stabilizer - ccr** | | 15.00 |" in table and "MISSED  whole stack" in table
    assert "| small | **stabilizer (anthropic/) - ccr** | | 4.00 |" in table


def test_shuffled_orders_let_each_way_follow_every_other_about_as_often():
    ways = ["direct", "stock", "bundle", "before"]
    orders = list(itertools.islice(stats.shuffled_orders(ways), 1200))
    assert all(sorted(order) == sorted(ways) for order in orders)
    assert orders[:50] == list(itertools.islice(stats.shuffled_orders(ways), 50))  # seeded: every run alike
    sequence = [way for order in orders for way in order]
    follows = collections.Counter(zip(sequence, sequence[1:]))
    pairs = [(a, b) for a in ways for b in ways if a != b]
    expected = sum(follows[pair] for pair in pairs) / len(pairs)
    # A fixed rotation never lets "stock" follow "bundle" within an order; shuffled, every pair comes.
    assert all(0.8 * expected < follows[pair] < 1.2 * expected for pair in pairs), follows


def test_latency_rounds_go_on_through_the_orders_instead_of_repeating_them():
    """Each round's figure is a p50 of its requests: rounds that repeated the same orders would
    all carry whatever those orders favour (which way follows which), and the bundle was once
    found slower than itself in 14 of 20 rounds."""
    ways = [*latency.MODES, latency.BEFORE]
    sent: list[str] = []

    class Recording:
        def __init__(self, way: str):
            self.way = way

        async def post(self, request: bytes, body: bytes) -> Reply:
            sent.append(self.way)
            return Reply(200, b"", 0.001)

    case = latency.Case("case", lambda round_: [b"{}"] * 5, [])
    pids = dict.fromkeys(ways[1:], os.getpid())  # the proxies
    asyncio.run(latency._run_case(case, {way: Recording(way) for way in ways}, pids, {}, rounds=4))
    rounds = [sent[i : i + 20] for i in range(0, len(sent), 20)]
    assert len(rounds) == 4 and len({tuple(round_) for round_ in rounds}) == 4
    assert sent == [way for order in itertools.islice(stats.shuffled_orders(ways), 20) for way in order]


def test_the_bundles_swap_their_start_order_and_their_places_in_the_ports(monkeypatch, tmp_path):
    running: list[str] = []

    class Started:
        def __init__(self, name: str):
            self.name, self.port, self.pid, self.url = name, len(running), len(running), "url"
            running.append(name)

        def stop(self) -> None:
            running.remove(self.name)

    monkeypatch.setattr(servers, "UpstreamProcess", lambda folder: Started("upstream"))
    monkeypatch.setattr(servers, "StockMitmdump", lambda folder, url, streaming=False: Started(f"stock {streaming}"))
    monkeypatch.setattr(servers, "BundleAt", lambda folder, url, key, commit: Started(f"bundle at {commit}"))
    monkeypatch.setattr(servers, "Bundle", lambda folder, url, key: Started("bundle"))
    routes = servers.start_routes(tmp_path, "key", against="abc")
    assert running[-2:] == ["bundle", "bundle at abc"]
    assert list(routes.ports)[-2:] == ["bundle", "before"]
    routes.swap_bundles(tmp_path / "swapped", "key", "abc")
    assert running[-2:] == ["bundle at abc", "bundle"] and len(running) == 5
    assert list(routes.ports)[-2:] == ["before", "bundle"]
    assert routes.ports["bundle"] == routes.bundle.port == 4 and routes.ports["before"] == 3
    routes.stop()
    assert running == []


def test_two_runs_of_the_latency_cases_merge_into_one_of_all_their_rounds():
    def run(values: list[float]) -> list[dict]:
        return [{"case": "c", "rounds": len(values), "figures": {"c-r p50": Figure(list(values))}}]

    merged = latency.merged(run([1.0, 2.0]), run([3.0]))
    assert merged[0]["rounds"] == 3 and merged[0]["figures"]["c-r p50"].values == [1.0, 2.0, 3.0]


def test_a_long_sessions_body_stays_bounded_only_with_the_bound():
    now, before = sessions.run(150, bounded=True), sessions.run(150, bounded=False)
    assert now["compactions"] >= 3 and before["compactions"] == 0
    assert now["largest body MB"] < 1 < before["largest body MB"]
