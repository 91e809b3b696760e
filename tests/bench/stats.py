"""Figures with a spread, and the targets they are held against.

Every figure is measured once per round (the rounds interleave the ways a
request can go, so a machine that slows down slows all of them); the table
shows the median of the rounds and their spread (max - min).
"""

import math
import random
import statistics
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

ORDER_SEED = 20261126


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (share in 0..100) of non-empty `values`."""
    ordered = sorted(values)
    rank = max(1, math.ceil(share / 100 * len(ordered)))
    return ordered[rank - 1]


def shuffled_orders(ways: Sequence[str], seed: int = ORDER_SEED) -> Iterator[list[str]]:
    """Endless orders of `ways`, one per request, shuffled (seeded: the same every run).

    A process's work after its reply (freeing a 2 MB flow, LiteLLM's logging after a stream)
    competes with the request that follows it, to whichever way. In a fixed rotation each way
    always follows the same other one and carries that one's tail; shuffled, each way follows
    every other one about as often."""
    order = random.Random(seed)
    while True:
        yield order.sample(list(ways), len(ways))


@dataclass
class Figure:
    """One quantity, measured once per round."""

    values: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(value)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def spread(self) -> float:
        return max(self.values) - min(self.values)

    def show(self, digits: int = 2) -> str:
        if len(self.values) == 1:
            return f"{self.median:.{digits}f}"
        return f"{self.median:.{digits}f} ±{self.spread / 2:.{digits}f}"

    def to_json(self) -> dict:
        return {"median": self.median, "spread": self.spread, "rounds": self.values}


@dataclass
class Target:
    """A figure held against a limit: `at_most` or `at_least`."""

    what: str
    figure: float
    limit: float
    unit: str
    at_most: bool = True

    @property
    def holds(self) -> bool:
        return self.figure <= self.limit if self.at_most else self.figure >= self.limit

    def line(self) -> str:
        sign = "<=" if self.at_most else ">="
        state = "holds " if self.holds else "MISSED"
        unit = f" {self.unit}" if self.unit else ""
        # Ratios near their limit need the third decimal to show which side they are on.
        digits = 2 if self.unit in ("ms", "events") else 3
        return f"{state}  {self.what}: {self.figure:.{digits}f}{unit} (target {sign} {self.limit:g}{unit})"

    def to_json(self) -> dict:
        return {
            "what": self.what,
            "figure": self.figure,
            "limit": self.limit,
            "unit": self.unit,
            "at_most": self.at_most,
            "holds": self.holds,
        }


def loglog_slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of log(y) over log(x): 1 is linear, below 1 better."""
    xs = [math.log(x) for x, _ in points]
    ys = [math.log(y) for _, y in points]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sum((x - mean_x) ** 2 for x in xs)
