"""The benchmark's one table (markdown), its targets, and the same as JSON."""

from typing import Any

from tests.bench import whole_stack
from tests.bench.stats import Figure, Target

# Issue 7's targets.
SMALL_ADDED_MS = 1.0
LARGE_ADDED_MS = 25.0
NEXT_TURN_ADDED_MS = 5.0
ONE_STREAM_P50_MS, ONE_STREAM_P99_MS = 2.0, 10.0
MANY_STREAMS_P99_MS = 50.0
THROUGHPUT_SHARE = 0.8
MAX_SLOPE = 1.1
MEMORY_GROWTH = 1.2
# --against: the bundle is called slower than before only beyond what a 2-core shared
# machine moves between rounds: its time over stock exceeds before's by both margins,
# and it was slower than before in at least 2/3 of the rounds.
SLOWER_BY_MS = 0.1
SLOWER_BY_SHARE = 0.05


def targets(results: dict) -> list[Target]:
    found: list[Target] = []
    for case in results.get("latency", []):
        added = case["figures"]["c-b p50"].median
        name = case["case"]
        if name.startswith("76 KB") and "stream=false" not in name:
            found.append(Target(f"added p50 over stock, {name}", added, SMALL_ADDED_MS, "ms"))
        elif name.endswith("repeat"):
            found.append(Target(f"added p50 over stock, {name}", added, LARGE_ADDED_MS, "ms"))
        elif name.endswith("next turn"):
            found.append(Target(f"added p50 over stock, {name}", added, NEXT_TURN_ADDED_MS, "ms"))
    for run in results.get("streaming", []):
        figures, label = run["figures"], f"{run['streams']} stream{'s' if run['streams'] > 1 else ''}"
        if run["streams"] == 1:
            found.append(
                Target(f"event delay over direct p50, {label}", figures["c-a p50"].median, ONE_STREAM_P50_MS, "ms")
            )
            found.append(
                Target(f"event delay over direct p99, {label}", figures["c-a p99"].median, ONE_STREAM_P99_MS, "ms")
            )
        else:
            held = max(figures["held back (bundle)"].values)
            found.append(Target(f"events held back for a later one, {label} (worst round)", held, 0, "events"))
            found.append(
                Target(f"event delay over direct p99, {label}", figures["c-a p99"].median, MANY_STREAMS_P99_MS, "ms")
            )
    for run in results.get("throughput", []):
        found.append(
            Target(
                f"throughput bundle/stock, {run['clients']} clients",
                run["figures"]["c/b"].median,
                THROUGHPUT_SHARE,
                "x",
                at_most=False,
            )
        )
    if costs := results.get("costs"):
        for column, slope in costs["slopes"].items():
            if column != "parse":
                found.append(Target(f"cost curve slope (log-log, >= 100 KB), {column}", slope, MAX_SLOPE, ""))
    if whole := results.get("whole_stack"):
        for way in whole_stack.STACKS:
            route = "anthropic/" if way.endswith("-anthropic") else "openai/"
            for case in whole["cases"]:
                figures = case["figures"]
                if f"{way}-ccr added ttfb" in figures:
                    found.append(
                        Target(
                            f"whole stack ({route}): added time to first byte over claude-code-router's, {case['case']}",
                            figures[f"{way}-ccr added ttfb"].median,
                            whole_stack.TTFB_OVER_CCR_MS,
                            "ms",
                        )
                    )
                    found.append(
                        Target(
                            f"whole stack ({route}): time after the first byte over claude-code-router's, {case['case']}",
                            figures[f"{way}-ccr after"].median,
                            whole_stack.AFTER_OVER_CCR_MS,
                            "ms",
                        )
                    )
    if memory := results.get("memory"):
        rss = memory["bundle"]
        marks = [key for key in rss if key != "0"]
        if len(marks) >= 2:
            growth = rss[marks[-1]] / rss[marks[0]]
            found.append(
                Target(
                    f"bundle RSS after {int(marks[-1]):,} / after {int(marks[0]):,} requests",
                    growth,
                    MEMORY_GROWTH,
                    "x",
                )
            )
    return found


def _pair(figures: dict[str, Figure], mode: str) -> str:
    return f"{figures[f'{mode} p50'].show()} / {figures[f'{mode} p99'].show()}"


def markdown(results: dict, machine: dict, date: str, found: list[Target]) -> str:
    out = [
        f"Measured {date} on {machine['cpus']} x {machine['cpu']}, {machine['os']}, Python {machine['python']}, "
        f"mitmproxy {machine['mitmproxy']}. Figures: median of the rounds ± half their spread (max - min).",
        "",
    ]
    if latency := results.get("latency"):
        out += [
            "**1. Added latency per request** (ms, p50 / p99; (a) direct, (b) stock mitmdump, (c) bundle; "
            "CPU: ms the proxy process used per request)",
            "",
            "| case | requests | (a) direct | (b) stock | (c) bundle | c-b p50 | c-b p99 | c/b p50 | c/a p50 "
            "| CPU (b) / (c) | CPU c-b |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for case in latency:
            f = case["figures"]
            out.append(
                f"| {case['case']} | {case['rounds']} x {case['requests_per_round']} | {_pair(f, 'direct')} | "
                f"{_pair(f, 'stock')} | {_pair(f, 'bundle')} | {f['c-b p50'].show()} | {f['c-b p99'].show()} | "
                f"{f['c/b p50'].show()} | {f['c/a p50'].show()} | {f['stock cpu'].show()} / {f['bundle cpu'].show()} | "
                f"{f['c-b cpu'].show()} |"
            )
        out.append("")
        if against := results.get("against"):
            out += _against(latency, against)
    if streaming := results.get("streaming"):
        out += [
            "**2. Streaming delay per event** (ms, arrival - sent, p50 / p99)",
            "",
            "| streams | events x gap | (a) direct | (c) bundle | c-a p50 | c-a p99 | held back (c) | held back (a) |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for run in streaming:
            f = run["figures"]
            out.append(
                f"| {run['streams']} | {run['events']} x {run['gap_ms']:g} ms | {_pair(f, 'direct')} | {_pair(f, 'bundle')} | "
                f"{f['c-a p50'].show()} | {f['c-a p99'].show()} | {f['held back (bundle)'].show(0)} | "
                f"{f['held back (direct)'].show(0)} |"
            )
        out.append("")
    if throughput := results.get("throughput"):
        out += [
            "**3. Throughput** (76 KB requests per second; (b') stock mitmdump streaming the answer, as the bundle must)",
            "",
            "| clients | (b) stock | (b') stock streaming | (c) bundle | c/b | c/b' |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for run in throughput:
            f = run["figures"]
            over_streaming = f["c/b'"]
            out.append(
                f"| {run['clients']} | {f['stock rps'].show(0)} | {f['stock streaming rps'].show(0)} | "
                f"{f['bundle rps'].show(0)} | {f['c/b'].show()} | {over_streaming.show()} |"
            )
        out.append("")
    if costs := results.get("costs"):
        columns = list(costs["slopes"])
        out += [
            f"**4. Trim and estimate cost alone** (ms of CPU, median of {costs['repeats']}; model {costs['model']}, "
            "128K window)",
            "",
            "| history | messages | tokens | removed by trim | " + " | ".join(columns) + " |",
            "| --- | --- | --- | --- |" + " --- |" * len(columns),
        ]
        for row in costs["rows"]:
            out.append(
                f"| {row['history_kb']:,.0f} KB | {row['messages']} | {row['tokens']:,} | {row['trimmed_messages']} | "
                + " | ".join(f"{row[column]:.2f}" for column in columns)
                + " |"
            )
        out.append(
            "| slope, log-log, >= 100 KB | | | | " + " | ".join(f"{costs['slopes'][c]:.2f}" for c in columns) + " |"
        )
        out.append("")
    if memory := results.get("memory"):
        marks = list(memory["bundle"])
        out += [
            f"**5. Memory** (RSS in MB of a fresh mitmdump, unique 76 KB requests from {memory['clients']} clients)",
            "",
            "| | "
            + " | ".join("at start" if key == "0" else f"after {int(key):,}" for key in marks)
            + f" | after {int(marks[-1]):,} / after {int(marks[1]):,} |",
            "| --- |" + " --- |" * (len(marks) + 1),
        ]
        for name in ("stock", "bundle"):
            rss = memory[name]
            out.append(
                f"| {name} | "
                + " | ".join(f"{rss[key]:.1f}" for key in marks)
                + f" | {rss[marks[-1]] / rss[marks[1]]:.2f} |"
            )
        out.append("")
        if web := memory.get("web"):
            turns = [key for key in web if key.isdigit()]
            out += [
                f"RSS in MB of the bundle under mitmweb (`stabilizer run --web`, its default flow cap), one session "
                f"from 2 MB on, turn after turn (the last request {web['last request MB']:.1f} MB):",
                "",
                "| | " + " | ".join("at start" if key == "0" else f"after {int(key):,} turns" for key in turns) + " |",
                "| --- |" + " --- |" * len(turns),
                "| mitmweb with the addons | " + " | ".join(f"{web[key]:,.0f}" for key in turns) + " |",
                "",
            ]
    if accuracy := results.get("accuracy"):
        out += [
            "**6. Token estimate accuracy** (estimate vs tiktoken on LiteLLM's translation of the shaped request)",
            "",
            "| request | estimate | cl100k | error | o200k | error |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for row in accuracy:
            out.append(
                f"| {row['request']} | {row['estimate']:,} | {row['cl100k']:,} | {row['cl100k error %']:+.1f}% | "
                f"{row['o200k']:,} | {row['o200k error %']:+.1f}% |"
            )
        out.append("")
    if long_sessions := results.get("sessions"):
        out += [
            f"**8. A long session** ({long_sessions['turns']:,} turns of 8-30 KB, a 200K window, a client that "
            'believes 1M tokens and compacts by its count or on "prompt is too long"; in this process)',
            "",
            "| | largest body (MB) | compactions | turns trimmed |",
            "| --- | --- | --- | --- |",
        ]
        for way, label in (("now", "usage counts what was sent, history bounded"), ("without", "without (before)")):
            row = long_sessions[way]
            out.append(
                f"| {label} | {row['largest body MB']:.2f} | {row['compactions']:,} | {row['trimmed turns']:,} |"
            )
        out.append("")
    if whole := results.get("whole_stack"):
        out += _whole_stack(whole)
    if found:
        out += ["**Targets**", ""] + [f"- {target.line()}" for target in found] + [""]
    return "\n".join(out)


def slower_than_before(figures: dict[str, Figure]) -> bool:
    """Whether the bundle (c) is slower than the bundle at the --against revision (r), by the rule above."""
    now, before = figures["c-b p50"].median, figures["r-b p50"].median
    excess = now - before
    rounds = figures["c-r p50"].values
    slower_rounds = sum(difference > 0 for difference in rounds)
    return excess > SLOWER_BY_MS and excess > SLOWER_BY_SHARE * abs(before) and 3 * slower_rounds >= 2 * len(rounds)


def _against(latency: list[dict], against: dict) -> list[str]:
    out = [
        f"**Bundle against {against['revision']} (interleaved)** (ms; (r) the bundle at commit "
        f"{against['commit'][:10]}, a fourth way, shuffled in with (a), (b) and (c) request by request; half the rounds "
        "with (r) started first; p50 differences per "
        "round, median of the rounds ± half their spread; CPU: ms the process used per request. Slower: c-b "
        f"exceeds r-b by more than {SLOWER_BY_MS:g} ms and by more than {SLOWER_BY_SHARE:.0%} of r-b, and (c) was "
        "slower than (r) in at least 2/3 of the rounds)",
        "",
        "| case | (r) before | r-b p50 | c-b p50 | c-r p50 | rounds (c) faster | CPU (r) / (c) | slower than before |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for case in latency:
        f = case["figures"]
        faster = sum(difference < 0 for difference in f["c-r p50"].values)
        out.append(
            f"| {case['case']} | {_pair(f, 'before')} | {f['r-b p50'].show()} | {f['c-b p50'].show()} | "
            f"{f['c-r p50'].show()} | {faster} of {case['rounds']} | {f['before cpu'].show()} / "
            f"{f['bundle cpu'].show()} | {'**slower**' if slower_than_before(f) else 'no'} |"
        )
    slower = [case["case"] for case in latency if slower_than_before(case["figures"])]
    out += ["", f"Slower than before: {'; '.join(slower)}." if slower else "No case slower than before.", ""]
    return out


def _whole_stack(whole: dict) -> list[str]:
    ways, has_ccr = whole["ways"], "ccr" in whole["ways"]
    out = [
        f"**7. Whole stack** (ms; each way's p50 over {whole['requests']} streamed requests a round, interleaved, "
        f"median of {whole['rounds']} rounds ± half their spread; the backend writes {whole['instant_deltas']} text "
        f"deltas back to back; claude-code-router {whole['ccr_version']}; LiteLLM's own `x-litellm-overhead-duration-ms` "
        "where it answers)",
        "",
        "| request | way | reached backend | first byte | added over direct | x ccr | last event | after first byte "
        "| LiteLLM overhead header |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for case in whole["cases"]:
        f = case["figures"]
        for way in ways:
            ratio = f[f"{way}/ccr ttfb"].show() if f"{way}/ccr ttfb" in f else ""
            overhead = f[f"{way} overhead"].show() if f"{way} overhead" in f else ""
            out.append(
                f"| {case['case']} | {whole_stack.LABELS[way]} | {f[f'{way} in'].show()} | {f[f'{way} ttfb'].show()} | "
                f"{f[f'{way} added ttfb'].show()} | {ratio} | {f[f'{way} last'].show()} | {f[f'{way} after'].show()} | "
                f"{overhead} |"
            )
        if has_ccr:
            for way in whole_stack.STACKS:
                if f"{way}-ccr added ttfb" in f:
                    out.append(
                        f"| {case['case']} | **{whole_stack.LABELS[way].split(':')[0]} - ccr** | | "
                        f"{f[f'{way}-ccr added ttfb'].show()} | | | | {f[f'{way}-ccr after'].show()} | |"
                    )
    events = whole["events"]
    out += [
        "",
        "Per-event delay on streams with a gap between the deltas (ms, arrival - sent):",
        "",
        "| way | p50 | p99 | p50 over direct | p99 over direct |",
        "| --- | --- | --- | --- | --- |",
    ]
    for way in ways:
        out.append(
            f"| {whole_stack.LABELS[way]} | {events[f'{way} p50'].show()} | {events[f'{way} p99'].show()} | "
            f"{events[f'{way}-direct p50'].show()} | {events[f'{way}-direct p99'].show()} |"
        )
    if first := whole.get("first_request_ms"):
        out += [
            "",
            "Time to first byte of the very first request after the start (ms, one sample each; LiteLLM alone is "
            "asked first, so it carries LiteLLM's first request and the ways in front of it find LiteLLM warm): "
            + ", ".join(f"{whole_stack.LABELS[way]} {first[way]:,.1f}" for way in ways)
            + ".",
        ]
    out += [f"- {note}" for note in whole.get("notes", [])]
    out.append("")
    return out


def to_json(value: Any) -> Any:
    """Results with every Figure and Target as plain data."""
    if isinstance(value, (Figure, Target)):
        return value.to_json()
    if isinstance(value, dict):
        return {key: to_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_json(item) for item in value]
    return value
