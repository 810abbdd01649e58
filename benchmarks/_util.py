"""Small helpers shared by the benchmarks: statistics and plain-text tables."""

from __future__ import annotations

import gc
import math
import statistics
from collections.abc import Sequence

__all__ = ["GcDelta", "gc_snapshot", "median", "median_ci", "quantile", "table", "verdict"]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile, 0 <= q <= 1."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def median_ci(values: Sequence[float]) -> tuple[float, float]:
    """Distribution-free ~95 % confidence interval of the median (order statistics)."""
    ordered = sorted(values)
    n = len(ordered)
    if n < 6:
        return (ordered[0], ordered[-1]) if ordered else (float("nan"), float("nan"))
    k = max(0, int((n - 1.96 * math.sqrt(n)) / 2))
    return ordered[k], ordered[n - 1 - k]


class GcDelta:
    """Garbage-collector work between two ``gc.get_stats()`` snapshots."""

    __slots__ = ("collected", "collections")

    def __init__(self, collections: tuple[int, int, int], collected: int) -> None:
        self.collections = collections
        self.collected = collected

    @classmethod
    def between(cls, before: list[dict[str, int]], after: list[dict[str, int]]) -> GcDelta:
        col = tuple(a["collections"] - b["collections"] for a, b in zip(after, before, strict=True))
        got = sum(a["collected"] - b["collected"] for a, b in zip(after, before, strict=True))
        return cls((col[0], col[1], col[2]), got)


def gc_snapshot() -> list[dict[str, int]]:
    return gc.get_stats()


def verdict(ratios: Sequence[float], target: float, *, below: bool) -> str:
    """Median of per-round ratios, its ~95 % interval, and where the target falls."""
    mid = median(ratios)
    lo, hi = median_ci(ratios)
    sign = "<=" if below else ">="
    if (hi <= target) if below else (lo >= target):
        word = "met"
    elif (lo > target) if below else (hi < target):
        word = "MISSED"
    else:
        word = "inconclusive at this noise"
    return (
        f"{mid:.2f}x  (95% CI {lo:.2f}-{hi:.2f} over {len(ratios)} rounds)   "
        f"target {sign} {target:g}: {word}"
    )


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], title: str = "") -> str:
    """Render a plain-text table; the first column is left-aligned, the rest right."""
    cells = [list(headers), *[list(r) for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        parts = [
            row[i].ljust(widths[i]) if i == 0 else row[i].rjust(widths[i]) for i in range(len(row))
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    out = [title] if title else []
    out += [line(cells[0]), rule, *(line(r) for r in cells[1:])]
    return "\n".join(out)
