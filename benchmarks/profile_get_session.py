"""Where does ``get_session()`` spend CPU beyond raw aiohttp? (not part of the default run)

Runs the same canned-server GETs as ``bench_get_session`` under ``cProfile`` for two
variants, ``aiohttp + same request`` (exactly the request devin's transport makes, with
no devin_async code) and ``DevinClient.get_session``, and prints:

1. profiled time per request grouped by where the code lives (devin_async, cattrs,
   attrs-generated ``__init__``, aiohttp, yarl/multidict, asyncio, json, ...), side by
   side, with the difference;
2. the top functions of the devin variant by own time, restricted to code that the
   baseline does not run.

cProfile inflates code that makes many small Python calls, so the absolute numbers are
higher than in the benchmark; read it for the split, and use the benchmark for the cost.

    python -m benchmarks --only profile
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
from collections import defaultdict

from ._util import table
from .bench_get_session import DEVIN, FACTORIES, RAW_SAME, _drive
from .canned_server import CannedServer, pin_to_cpu, usable_cpus

__all__ = ["main", "run"]

Key = tuple[str, int, str]

_GROUPS = (
    ("devin_async", ("devin_async",)),
    ("cattrs (incl. generated)", ("cattrs", "<cattrs generated")),
    ("attrs generated __init__", ("<attrs generated",)),
    ("aiohttp", ("aiohttp",)),
    ("yarl / multidict / propcache", ("yarl", "multidict", "propcache")),
    ("asyncio", ("asyncio",)),
    ("json", ("json",)),
    ("re / enum / typing", ("/re/", "enum.py", "typing.py")),
)


def group_of(filename: str, func: str) -> str:
    if filename == "~":
        return "C builtins: " + _builtin_owner(func)
    for name, markers in _GROUPS:
        if any(m in filename for m in markers):
            return name
    if "benchmarks" in filename:
        return "benchmark driver"
    return "other Python"


def _builtin_owner(func: str) -> str:
    # e.g. "<method 'send' of '_socket.socket' objects>" or "<built-in method builtins.isinstance>"
    if "socket" in func or "select" in func or "epoll" in func:
        return "socket / epoll syscalls"
    if "json" in func or "scanner" in func:
        return "json decoder"
    return "other"


def _profile(variant: str, url: str, n: int, warmup: int, concurrency: int) -> pstats.Stats:
    prof = cProfile.Profile()

    async def go() -> None:
        async with FACTORIES[variant](url) as fetch:
            await _drive(fetch, warmup, concurrency)
            prof.enable()
            await _drive(fetch, n, concurrency)
            prof.disable()

    asyncio.run(go())
    return pstats.Stats(prof)


def _raw_stats(stats: pstats.Stats) -> dict[Key, tuple[int, int, float, float]]:
    return {k: v[:4] for k, v in stats.stats.items()}  # type: ignore[attr-defined]


def by_group(stats: pstats.Stats, n: int) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for (filename, _line, func), (_cc, _nc, tt, _ct) in _raw_stats(stats).items():
        out[group_of(filename, func)] += tt / n * 1e6
    return out


def _short(key: Key) -> str:
    filename, line, func = key
    if filename == "~":
        return func
    parts = filename.replace("\\", "/").split("/")
    for anchor in ("site-packages", "devin_async", "benchmarks"):
        if anchor in parts:
            i = parts.index(anchor)
            parts = parts[i + 1 :] if anchor == "site-packages" else parts[i:]
            break
    else:
        parts = parts[-2:]
    return f"{'/'.join(parts)}:{line}({func})"


def extra_functions(base: pstats.Stats, devin: pstats.Stats, n: int, top: int) -> list[list[str]]:
    """Top functions by own time that the baseline never called."""
    seen = set(_raw_stats(base))
    rows = []
    stats = _raw_stats(devin)
    ranked = sorted(((k, v) for k, v in stats.items() if k not in seen), key=lambda kv: -kv[1][2])
    for key, (_cc, nc, tt, ct) in ranked[:top]:
        rows.append([_short(key), f"{nc / n:.1f}", f"{tt / n * 1e6:.2f}", f"{ct / n * 1e6:.2f}"])
    return rows


def run(requests: int = 5_000, warmup: int = 300, concurrency: int = 16, top: int = 20) -> str:
    cpus = usable_cpus()
    client_cpu, server_cpu = (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)
    with CannedServer(cpu=server_cpu, max_seconds=300) as server:
        pinned = pin_to_cpu(client_cpu)
        try:
            base = _profile(RAW_SAME, server.url, requests, warmup, concurrency)
            devin = _profile(DEVIN, server.url, requests, warmup, concurrency)
        finally:
            if pinned:
                os.sched_setaffinity(0, set(cpus))
    g_base, g_devin = by_group(base, requests), by_group(devin, requests)
    names = sorted(set(g_base) | set(g_devin), key=lambda k: -(g_devin.get(k, 0.0)))
    rows = [
        [
            name,
            f"{g_base.get(name, 0.0):.1f}",
            f"{g_devin.get(name, 0.0):.1f}",
            f"{g_devin.get(name, 0.0) - g_base.get(name, 0.0):+.1f}",
        ]
        for name in names
    ]
    rows.append(
        [
            "total",
            f"{sum(g_base.values()):.1f}",
            f"{sum(g_devin.values()):.1f}",
            f"{sum(g_devin.values()) - sum(g_base.values()):+.1f}",
        ]
    )
    out = [
        table(
            ["where (own time)", RAW_SAME, DEVIN, "difference"],
            rows,
            f"profile: us per request under cProfile ({requests:,} requests each)",
        ),
        "",
        table(
            ["function (not called by the baseline)", "calls/req", "own us/req", "cum us/req"],
            extra_functions(base, devin, requests, top),
            f"profile: top {top} functions only the devin variant runs",
        ),
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="profile get_session vs raw aiohttp")
    parser.add_argument("--requests", type=int, default=5_000)
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args(argv)
    print(run(requests=args.requests, top=args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
