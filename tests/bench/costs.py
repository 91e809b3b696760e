"""4. Trim and estimate cost alone, in this process, as a function of history size.

For histories from 10 KB to 4 MB (the recorded system prompt and tools plus
generated turns), under the shipped policy for qwen-plus (128K window and
max_tokens capped to 8192, so the larger ones are trimmed):

- parse: the body to Python objects (from_json), for scale;
- estimate, cold: estimate_request with an empty estimate cache (every
  message tokenized);
- shape+trim, cold: shape_request + trim_request with an empty cache;
- shape+trim, repeat: the same request again (every estimate cached);
- shape+trim, next turn: the history plus one turn after the previous was seen;
- request hook, next turn: what the request addon does with that next turn's
  bytes: parse it from the previous turn (addons/request/history.py), shape, check and
  trim with the parse's memo, and write the result (history.encode).

The shape+trim columns call the transforms alone, as a client whose bodies are
not canonical JSON gets them (estimates found in the cache by hashing); the
request hook column is the path of Claude Code's canonical bodies.

Each is timed in CPU time of this thread (what other processes on a shared
machine do moves it much less than wall time) and with cyclic garbage
collection off, as the request addon runs them (addons/request_shaper.py):
otherwise a collection that happens to fall into a timing scans this
process's whole heap, test data included.

The curve is judged by the least-squares slope of log(time) over log(size)
on the histories of 100 KB and more (below that the fixed part dominates):
1 is linear, less is better than linear.
"""

import gc
import statistics
import time
from collections.abc import Callable

from addons.config.policy import load_policy
from addons.messages import tokens
from addons.messages.tokens import estimate_request
from addons.request.history import History, encode
from addons.request.shaping import shape_request
from addons.request.trim import trim_request
from addons.request.validation import request_problem
from addons.wire.json_codec import from_json
from tests import workload
from tests.bench.servers import POLICY
from tests.bench.stats import loglog_slope

SIZES = (10_000, 30_000, 100_000, 300_000, 1_000_000, 2_000_000, 4_000_000)
# A model with a 128K window in the shipped policy (DeepSeek V4's is 1M: nothing would be trimmed).
MODEL = "qwen-plus"
SLOPE_FROM_BYTES = 100_000
COLUMNS = (
    "parse",
    "estimate cold",
    "shape+trim cold",
    "shape+trim repeat",
    "shape+trim next turn",
    "request hook next turn",
)


def _once(action: Callable[[], object]) -> float:
    gc.disable()
    try:
        start = time.thread_time_ns()
        action()
        return (time.thread_time_ns() - start) / 1e6
    finally:
        gc.enable()


def measure(repeats: int, progress, sizes: tuple[int, ...] = SIZES) -> dict:
    """The costs per history size; the rounds go over all sizes in turn, so a
    moment when the machine is busy spreads over the sizes instead of bending
    the curve at one of them."""
    policy = load_policy(str(POLICY)).for_model(MODEL)
    tokens.count_text("load the encoding before anything is timed")
    fixed = len(workload.encode({**workload.roundtrip(), "messages": []}))

    def shape_and_trim(request: dict):
        shaped = shape_request(request, policy)
        return trim_request(shaped.request, policy, shaped.reminders)

    def request_hook(history: History, body: bytes) -> bytes:
        parsed = history.parse(body)
        shaped = shape_request(parsed.body, policy, memo=parsed.memo)
        request_problem(shaped.request, parsed.memo)
        trimmed = trim_request(shaped.request, policy, shaped.reminders, parsed.memo)
        return encode(trimmed.request, parsed)

    progress(f"costs: building histories of {', '.join(f'{size // 1000} KB' for size in sizes)}")
    cases = []
    for size in sizes:
        request = {**workload.long_session(fixed + size, salt=f"cost{size}x"), "model": MODEL}
        turns = [request]
        for turn in range(repeats):
            turns.append(workload.next_turn(turns[-1], 50_000 + turn))
        cases.append((request, workload.encode(request), shape_request(request, policy).request, turns))
    turn_bodies = [[workload.encode(turn) for turn in turns] for _, _, _, turns in cases]
    histories = [History() for _ in cases]
    times: dict[tuple[int, str], list[float]] = {
        (index, column): [] for index in range(len(sizes)) for column in COLUMNS
    }

    progress("costs: cold (every estimate computed)")
    for _ in range(max(1, repeats // 2)):
        for index, (request, _, shaped, _) in enumerate(cases):
            tokens._cache.clear()
            times[index, "estimate cold"].append(_once(lambda: estimate_request(shaped)))
            tokens._cache.clear()
            times[index, "shape+trim cold"].append(_once(lambda: shape_and_trim(request)))
    progress("costs: parse, repeat and next turn")
    for index, (request, _, _, _) in enumerate(cases):
        shape_and_trim(request)  # every estimate cached
        request_hook(histories[index], turn_bodies[index][0])
    for round_ in range(repeats):
        for index, (request, body, _, turns) in enumerate(cases):
            times[index, "parse"].append(_once(lambda: from_json(body)))
            times[index, "shape+trim repeat"].append(_once(lambda: shape_and_trim(request)))
            # turns[round_] was seen in the round before (turns[0] is the request itself)
            times[index, "shape+trim next turn"].append(_once(lambda: shape_and_trim(turns[round_ + 1])))
            next_body = turn_bodies[index][round_ + 1]
            times[index, "request hook next turn"].append(_once(lambda: request_hook(histories[index], next_body)))

    rows = []
    for index, (request, _, shaped, _) in enumerate(cases):
        row = {
            "history_kb": len(workload.encode(request["messages"])) / 1000,
            "messages": len(request["messages"]),
            "tokens": estimate_request(shaped),
            "trimmed_messages": shape_and_trim(request).removed,
        }
        row.update({column: statistics.median(times[index, column]) for column in COLUMNS})
        rows.append(row)
    slopes = {
        column: loglog_slope(
            [(row["history_kb"], row[column]) for row in rows if row["history_kb"] * 1000 >= SLOPE_FROM_BYTES]
        )
        for column in COLUMNS
    }
    return {"model": MODEL, "repeats": repeats, "rows": rows, "slopes": slopes}
