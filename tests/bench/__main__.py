"""`make bench`: what the bundle costs on the way, against the same work without it.

    python -m tests.bench [--quick] [--only latency,streaming,...] [--out DIR] [--profile] [--rounds N] [--against REV]

Starts a fast stand-in upstream (tests/bench/upstream.py), stock mitmdump in
front of it and mitmdump with the addons, all on loopback, and measures
(see each module): 1 latency, 2 streaming, 3 throughput, 4 costs (in this
process), 5 memory (a fresh bundle), 6 accuracy, 8 sessions (in this process:
the largest body a long session sends); then 7 whole-stack: the
stabilizer with the real LiteLLM against LiteLLM alone, stock mitmdump in
front of it and claude-code-router (installed from npm into .cache/ccr/), all
on one stand-in provider (tests/bench/provider_upstream.py). Prints one markdown table
with every target held or missed, and writes it and the raw figures (every
round) to DIR (bench-results/). A missed target does not fail: the exit
status is 0 whenever the benchmark ran.

The default run takes about five minutes on a 2-core machine: 3 rounds of
150 requests of 76 KB and 20 of 2 MB per case and way, streams of 500 events
10 ms apart (1 stream, then 32), 2-second throughput windows, 10,000 requests
for memory, and 1,000 turns of a 2 MB session under mitmweb; then under two minutes
for the whole stack (3 rounds of 40 streamed requests per size and way, and paced
streams). `--quick` runs everything small
(about a minute) to check that the benchmark itself works; its figures mean little.

`--profile` records the bundle's mitmdump with py-spy while latency,
streaming and throughput run (needs the right to trace processes: root, or
ptrace allowed) and writes a flame graph next to the results: where a missed
target's time goes. With whole-stack, it records LiteLLM too (a second flame
graph) while that section runs.

`--against REV` (a git revision) adds a fourth way to the latency section:
the bundle as it was at REV, checked out with `git worktree` into the
temporary folder (removed at the end) and started with the same command,
taking turns with the other three request by request. Half the rounds run
with the bundle started first, then both are started again, the one at REV
first (servers.Routes.swap_bundles): a mitmdump started earlier measures
slower. Its extra table says
per case whether the bundle is slower than before (report.slower_than_before);
with the default 3 rounds, noise alone makes 2 of 3 go one way about half the
time: give `--rounds 10` or more.
Interleaved in one run, both bundles meet the same moments of a shared
machine; two separate runs differ by more than most changes do.
"""

import argparse
import asyncio
import json
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from tests import workload
from tests.bench import (
    accuracy,
    costs,
    latency,
    memory,
    report,
    servers,
    sessions,
    streaming,
    throughput,
    whole_stack,
)

SECTIONS = ("latency", "streaming", "throughput", "costs", "memory", "accuracy", "sessions", "whole-stack")
RESULTS_DIR = servers.PROJECT_ROOT / "bench-results"


@dataclass
class Plan:
    latency: latency.Settings
    stream_events: int
    stream_gap_ms: float
    stream_counts: tuple[int, ...]
    stream_rounds: int
    throughput_clients: tuple[int, ...]
    throughput_seconds: float
    throughput_rounds: int
    memory_checkpoints: tuple[int, ...]
    web_turns: tuple[int, ...]
    cost_repeats: int
    cost_sizes: tuple[int, ...]
    session_turns: int
    whole_stack: whole_stack.Settings


FULL = Plan(
    latency=latency.Settings(),
    stream_events=500,
    stream_gap_ms=10,
    stream_counts=(1, 32),
    stream_rounds=2,
    throughput_clients=(1, 8, 32),
    throughput_seconds=2.0,
    throughput_rounds=3,
    memory_checkpoints=(1_000, 10_000),
    web_turns=(100, 500, 1_000),
    cost_repeats=5,
    cost_sizes=costs.SIZES,
    session_turns=sessions.TURNS,
    whole_stack=whole_stack.Settings(),
)
QUICK = Plan(
    latency=latency.Settings(rounds=2, small_requests=20, large_requests=3, cold_requests=1),
    stream_events=100,
    stream_gap_ms=5,
    stream_counts=(1, 8),
    stream_rounds=1,
    throughput_clients=(1, 8),
    throughput_seconds=0.5,
    throughput_rounds=1,
    memory_checkpoints=(100, 300),
    web_turns=(10, 30),
    cost_repeats=2,
    cost_sizes=(10_000, 100_000, 300_000, 1_000_000),
    session_turns=100,
    whole_stack=whole_stack.Settings(rounds=2, requests=10, gap_deltas=20, gap_ms=5, gap_streams=1),
)


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def _latency(
    routes: servers.Routes, settings: latency.Settings, folder: Path, key: str, headers: dict, against: str | None
) -> list[dict]:
    """The latency section; with `against`, half its rounds with the bundle started first and half
    with the one at `against` started first (Routes.swap_bundles)."""
    if not against or settings.rounds < 2:
        return await latency.measure(routes.ports, routes.proxy_pids, headers, settings, progress)
    first = await latency.measure(
        routes.ports, routes.proxy_pids, headers, replace(settings, rounds=(settings.rounds + 1) // 2), progress
    )
    progress(f"latency: the bundle and the one at {against[:10]} started again, that one first")
    routes.swap_bundles(folder / "swapped", key, against)
    then = await latency.measure(
        routes.ports, routes.proxy_pids, headers, replace(settings, rounds=settings.rounds // 2), progress
    )
    return latency.merged(first, then)


async def _through_proxies(
    plan: Plan,
    sections: set[str],
    folder: Path,
    key: str,
    results: dict,
    profile: Path | None,
    against: str | None,
) -> None:
    headers = {**workload.claude_code_headers(), "x-api-key": key}
    before = f" and the bundle at {against[:10]}" if against else ""
    progress(f"starting the stand-in upstream, stock mitmdump, the bundle{before}")
    routes = servers.start_routes(folder, key, against)
    profiler = None
    if profile:
        progress(f"profiling the bundle (pid {routes.bundle.pid}) into {profile}")
        profiler = servers.start_py_spy(routes.bundle.pid, 500, profile)
    try:
        if "latency" in sections:
            results["latency"] = await _latency(routes, plan.latency, folder, key, headers, against)
        body = workload.encode(workload.recorded())
        if "streaming" in sections:
            results["streaming"] = []
            for count in plan.stream_counts:
                progress(f"streaming: {count} x {plan.stream_events} events, {plan.stream_gap_ms:g} ms apart")
                results["streaming"].append(
                    await streaming.measure(
                        routes.ports,
                        routes.upstream.ack_port,
                        body,
                        headers,
                        streams=count,
                        events=plan.stream_events,
                        gap_ms=plan.stream_gap_ms,
                        rounds=plan.stream_rounds,
                    )
                )
        if "throughput" in sections:
            progress(f"throughput: {', '.join(map(str, plan.throughput_clients))} clients")
            results["throughput"] = await throughput.measure(
                routes.ports,
                body,
                headers,
                clients=plan.throughput_clients,
                seconds=plan.throughput_seconds,
                rounds=plan.throughput_rounds,
            )
    finally:
        if profiler:
            servers.stop_py_spy(profiler)
        routes.stop()


async def _memory(plan: Plan, folder: Path, key: str) -> dict:
    """RSS of a fresh stock mitmdump and of a fresh bundle under the same requests, one after the other."""
    headers = {**workload.claude_code_headers(), "x-api-key": key}
    upstream = servers.UpstreamProcess(folder)
    results = {"clients": memory.CLIENTS}
    try:
        progress("memory: starting a fresh stock mitmdump")
        stock = servers.StockMitmdump(folder, upstream.url)
        try:
            results["stock"] = await memory.measure(stock.port, stock.pid, headers, plan.memory_checkpoints, progress)
        finally:
            stock.stop()
        progress("memory: starting a fresh bundle")
        (folder / "memory").mkdir()
        bundle = servers.Bundle(folder / "memory", upstream.url, key)
        try:
            results["bundle"] = await memory.measure(
                bundle.port, bundle.pid, headers, plan.memory_checkpoints, progress
            )
        finally:
            bundle.stop()
        progress("memory: starting a fresh bundle under mitmweb")
        (folder / "memory-web").mkdir()
        web = servers.Bundle(folder / "memory-web", upstream.url, key, tool="mitmweb")
        try:
            results["web"] = await memory.web_session(web.port, web.pid, headers, plan.web_turns, progress)
        finally:
            web.stop()
    finally:
        upstream.stop()
    return results


def _against_commit(parser: argparse.ArgumentParser, revision: str | None, sections: set[str]) -> str | None:
    """The commit --against names, or None without it; an argparse error where it cannot apply."""
    if revision is None:
        return None
    if "latency" not in sections:
        parser.error("--against compares the latency section only: add latency to --only")
    if not (commit := servers.commit_of(revision)):
        parser.error(f"--against: {revision!r} names no commit in {servers.PROJECT_ROOT}")
    return commit


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts: checks the benchmark, not the bundle")
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma-separated sections of: {', '.join(SECTIONS)}"
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="where the table and the JSON go")
    parser.add_argument("--profile", action="store_true", help="record the bundle with py-spy (a flame graph)")
    parser.add_argument(
        "--rounds",
        type=int,
        metavar="N",
        help="rounds of the latency section (default 3; 10 or more to compare with --against)",
    )
    parser.add_argument(
        "--against",
        metavar="REV",
        help="a git revision: the latency section measures the bundle as it was there too, interleaved",
    )
    args = parser.parse_args()
    sections = set(args.only.split(","))
    if unknown := sections - set(SECTIONS):
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    against = _against_commit(parser, args.against, sections)
    plan = QUICK if args.quick else FULL
    if args.rounds is not None:
        if args.rounds < 1:
            parser.error("--rounds must be 1 or more")
        plan = replace(plan, latency=replace(plan.latency, rounds=args.rounds))
    started = datetime.now(timezone.utc)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    args.out.mkdir(parents=True, exist_ok=True)
    profile = args.out / f"profile-{stamp}.svg" if args.profile else None
    key = "sk-bench-" + secrets.token_hex(8)
    results: dict = {"against": {"revision": args.against, "commit": against}} if against else {}
    folder = Path(tempfile.mkdtemp(prefix="stabilizer-bench-"))
    try:
        if sections & {"latency", "streaming", "throughput"}:
            asyncio.run(_through_proxies(plan, sections, folder, key, results, profile, against))
        if "memory" in sections:
            results["memory"] = asyncio.run(_memory(plan, folder, key))
        if "costs" in sections:
            results["costs"] = costs.measure(plan.cost_repeats, progress, plan.cost_sizes)
        if "accuracy" in sections:
            results["accuracy"] = accuracy.measure(progress)
        if "sessions" in sections:
            results["sessions"] = sessions.measure(progress, plan.session_turns)
        if "whole-stack" in sections:
            (folder / "whole-stack").mkdir()
            litellm_profile = args.out / f"profile-litellm-{stamp}.svg" if args.profile else None
            results["whole_stack"] = asyncio.run(
                whole_stack.measure(folder / "whole-stack", key, plan.whole_stack, progress, profile=litellm_profile)
            )
    except BaseException:
        print(f"benchmark failed; process logs kept in {folder}", file=sys.stderr)
        raise
    shutil.rmtree(folder, ignore_errors=True)

    machine = servers.machine()
    date = started.strftime("%Y-%m-%d %H:%M UTC")
    found = report.targets(results)
    table = report.markdown(results, machine, date, found)
    print(table)
    json_path = args.out / f"bench-{stamp}.json"
    document = {
        "date": started.isoformat(),
        "quick": args.quick,
        "machine": machine,
        "plan": report.to_json(vars(plan) | {"latency": vars(plan.latency), "whole_stack": vars(plan.whole_stack)}),
        "results": report.to_json(results),
        "targets": report.to_json(found),
        "seconds": (datetime.now(timezone.utc) - started).total_seconds(),
    }
    json_path.write_text(json.dumps(document, indent=2))
    (args.out / "latest.md").write_text(table)
    held = sum(target.holds for target in found)
    print(f"{held} of {len(found)} targets hold; table: {args.out / 'latest.md'}, figures: {json_path}")
    if profile:
        for what, graph in (("the bundle", profile), ("LiteLLM", args.out / f"profile-litellm-{stamp}.svg")):
            if graph.exists():
                print(f"flame graph of {what}: {graph}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
