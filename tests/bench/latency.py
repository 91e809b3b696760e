"""1. Added latency per request: the same requests (a) direct, (b) through stock mitmdump, (c) through the bundle.

With `--against REV`, a fourth way: (r) through the bundle as it was at REV.
Requests go one at a time, each way over its own kept-alive connection, and
the ways take turns request by request (in an order shuffled per request), so their
distributions are measured side by side. A reply is timed from the
first byte written to the last byte read; the upstream answers instantly.
Beside the times, the CPU time each proxy process used per request: on a
shared machine it moves less than the times do, which also hold the waits
for a CPU.

Cases:
- the recorded 76 KB Claude Code request as sent (streaming; the answer is a
  short event stream, which the bundle streams and patches and stock mitmdump
  buffers), and the same with `"stream": false` (a JSON answer, so both
  proxies buffer it: only the addons' own work differs);
- a 2 MB long session, sent again unchanged ("repeat") and grown by one turn
  per request ("next turn": the same history plus an assistant tool call and
  its result, so only two messages are new to the estimate cache), for a
  model whose 128K window makes the bundle trim it (qwen-plus in the shipped
  policy) and for one whose 1M window holds it whole, plain and as DeepSeek V4
  has it (deepseek-flash: every assistant turn with its reasoning, which the
  thinking section keeps and checks);
- the 2 MB session seen for the first time (every message new to the cache:
  after a restart), trimmed.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from tests import workload
from tests.bench.client import Connection, prepare
from tests.bench.servers import LONG_WINDOW_MODEL, cpu_seconds
from tests.bench.stats import Figure, percentile, shuffled_orders

MODES = ("direct", "stock", "bundle")
# (r): the bundle at an earlier revision (servers.BundleAt), when the routes have it.
BEFORE = "before"
PATH = "/v1/messages?beta=true"
# A 128K window in the shipped policy: the 2 MB session is trimmed. It goes as Claude Code's
# compaction request (workload.as_summary_request): an ordinary turn of a history past the window is
# answered "prompt is too long" (the bound of addons/request/trim.py).
TRIMMED_MODEL = "qwen-plus"
THINKING_MODEL = "deepseek-flash"


@dataclass
class Case:
    name: str
    # request bodies for round r (same count each round); built when the case runs
    bodies: Callable[[int], list[bytes]]
    warmup: list[bytes]


@dataclass
class Settings:
    rounds: int = 3
    small_requests: int = 150  # per round and way, 76 KB
    large_requests: int = 20  # per round and way, 2 MB
    cold_requests: int = 4  # per round and way, 2 MB first seen
    large_bytes: int = 2_000_000


def cases(settings: Settings) -> list[Case]:
    small = workload.recorded()
    small_body = workload.encode(small)
    small_json = workload.encode({**small, "stream": False})
    per_round, large = settings.large_requests, settings.large_bytes

    def repeat(body: bytes, count: int) -> Callable[[int], list[bytes]]:
        return lambda _round: [body] * count

    def session(model: str) -> dict:
        return {**workload.long_session(large), "model": model}

    def next_turns(
        model: str, first_turn: int, sent=lambda request: request
    ) -> tuple[list[bytes], Callable[[int], list[bytes]]]:
        bodies, request = [], session(model)
        for turn in range(first_turn, first_turn + 2 + settings.rounds * per_round):
            request = workload.next_turn(request, turn)
            bodies.append(workload.encode(sent(request)))
        return bodies[:2], lambda r: bodies[2 + r * per_round : 2 + (r + 1) * per_round]

    def first_seen(round_: int) -> list[bytes]:
        return [
            workload.encode(
                workload.as_summary_request(
                    {**workload.long_session(large, salt=f"r{round_}s{i}x"), "model": TRIMMED_MODEL}
                )
            )
            for i in range(settings.cold_requests)
        ]

    trimmed = workload.encode(workload.as_summary_request(session(TRIMMED_MODEL)))
    whole = workload.encode(session(LONG_WINDOW_MODEL))
    trimmed_warmup, trimmed_next = next_turns(TRIMMED_MODEL, 10_000, workload.as_summary_request)
    whole_warmup, whole_next = next_turns(LONG_WINDOW_MODEL, 20_000)
    # The same whole session as DeepSeek V4 (1M window) has it: every assistant turn with its
    # reasoning; the thinking section writes the switch and the effort and checks every turn.
    thinking_warmup, thinking_next = next_turns(THINKING_MODEL, 30_000, workload.with_reasoning)
    mb = large / 1e6
    return [
        Case("76 KB recorded request (streaming)", repeat(small_body, settings.small_requests), [small_body] * 10),
        Case("76 KB recorded request, stream=false", repeat(small_json, settings.small_requests), [small_json] * 10),
        Case(f"{mb:g} MB session, trimmed (128K window), repeat", repeat(trimmed, per_round), [trimmed] * 2),
        Case(f"{mb:g} MB session, trimmed, next turn", trimmed_next, trimmed_warmup),
        Case(f"{mb:g} MB session, whole (1M window), repeat", repeat(whole, per_round), [whole] * 2),
        Case(f"{mb:g} MB session, whole, next turn", whole_next, whole_warmup),
        Case(f"{mb:g} MB session, whole, {THINKING_MODEL} (thinking), next turn", thinking_next, thinking_warmup),
        Case(f"{mb:g} MB session, trimmed, first seen (cold cache)", first_seen, []),
    ]


async def measure(
    ports: dict[str, int], pids: dict[str, int], headers: dict[str, str], settings: Settings, progress
) -> list[dict]:
    # In the order of `ports`: each way's connection is opened in turn.
    modes = tuple(mode for mode in ports if mode in (*MODES, BEFORE))
    connections = {mode: await Connection(ports[mode]).open() for mode in modes}
    results = []
    try:
        for case in cases(settings):
            progress(f"latency: {case.name}")
            results.append(await _run_case(case, connections, pids, headers, settings.rounds))
    finally:
        for connection in connections.values():
            await connection.close()
    return results


def merged(results: list[dict], later: list[dict]) -> list[dict]:
    """The figures of two runs of the same cases, as one run of all their rounds."""
    for case, more in zip(results, later, strict=True):
        assert case["case"] == more["case"]
        case["rounds"] += more["rounds"]
        for name, figure in case["figures"].items():
            figure.values += more["figures"][name].values
    return results


async def _post(connection: Connection, body: bytes, headers: dict[str, str]) -> float:
    reply = await connection.post(prepare(PATH, body, headers), body)
    if reply.status != 200:
        raise RuntimeError(f"HTTP {reply.status} from port {connection.port}: {reply.body[:300]!r}")
    return reply.seconds * 1000


def _figure_names(modes: tuple[str, ...]) -> list[str]:
    names = [
        *(f"{mode} {p}" for p in ("p50", "p99") for mode in modes),
        "c-b p50",
        "c-b p99",
        "c/b p50",
        "c/a p50",
        "stock cpu",
        "bundle cpu",
        "c-b cpu",
    ]
    if BEFORE in modes:
        names += ["r-b p50", "c-r p50", "before cpu"]
    return names


async def _run_case(
    case: Case, connections: dict[str, Connection], pids: dict[str, int], headers: dict[str, str], rounds: int
) -> dict:
    modes = tuple(connections)
    for body in case.warmup:
        for mode in modes:
            await _post(connections[mode], body, headers)
    figures = {name: Figure() for name in _figure_names(modes)}
    requests = 0
    # One run of orders through all the rounds: begun again each round, every round would
    # repeat the same orders, and whatever they favour, every round's figure would carry.
    orders = shuffled_orders(list(modes))
    for round_ in range(rounds):
        bodies = case.bodies(round_)
        requests = len(bodies)
        cpu_at_start = {mode: cpu_seconds(pid) for mode, pid in pids.items()}
        times = await _shuffled(bodies, connections, headers, orders)
        cpu = {mode: (cpu_seconds(pid) - cpu_at_start[mode]) * 1000 / requests for mode, pid in pids.items()}
        _add_round(figures, times, cpu)
    return {"case": case.name, "requests_per_round": requests, "rounds": rounds, "figures": figures}


async def _shuffled(
    bodies: list[bytes], connections: dict[str, Connection], headers: dict[str, str], orders: Iterator[list[str]]
) -> dict[str, list[float]]:
    """Each body every way, in the next of `orders` (stats.shuffled_orders): ms per reply, per way."""
    times: dict[str, list[float]] = {mode: [] for mode in connections}
    for body, order in zip(bodies, orders):
        for mode in order:
            times[mode].append(await _post(connections[mode], body, headers))
    return times


def _add_round(figures: dict[str, Figure], times: dict[str, list[float]], cpu: dict[str, float]) -> None:
    p50 = {mode: percentile(values, 50) for mode, values in times.items()}
    p99 = {mode: percentile(values, 99) for mode, values in times.items()}
    for mode in times:
        figures[f"{mode} p50"].add(p50[mode])
        figures[f"{mode} p99"].add(p99[mode])
    for mode in cpu:
        figures[f"{mode} cpu"].add(cpu[mode])
    figures["c-b cpu"].add(cpu["bundle"] - cpu["stock"])
    figures["c-b p50"].add(p50["bundle"] - p50["stock"])
    figures["c-b p99"].add(p99["bundle"] - p99["stock"])
    figures["c/b p50"].add(p50["bundle"] / p50["stock"])
    figures["c/a p50"].add(p50["bundle"] / p50["direct"])
    if BEFORE in p50:
        figures["r-b p50"].add(p50[BEFORE] - p50["stock"])
        figures["c-r p50"].add(p50["bundle"] - p50[BEFORE])
