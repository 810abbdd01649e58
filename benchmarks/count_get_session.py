"""Instructions per request of ``get_session()`` vs raw aiohttp, counted by valgrind.

On demand (``python -m benchmarks --only instructions``), not part of the default run;
skipped when valgrind is not installed. The CPU-time benchmark moves by a few percent
between runs on a shared VM, which is as much as one change to the request path is
worth; an instruction count does not move. Each variant of ``bench_get_session`` runs
in a child process under ``valgrind --tool=callgrind``, once with ``low`` and once with
``high`` requests (200 and 1,200) after the same warm-up, against the canned server
(outside valgrind); the difference divided by ``high - low`` is the count per request,
with start-up and imports cancelled out.

A count is not a cost: CPU time also pays for cache misses and mispredicted branches,
and the library's Python code takes more of them per instruction than aiohttp's hot
paths do. Read it for the split between variants, and the time benchmark for the cost.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
from pathlib import Path

from ._util import table
from .bench_get_session import DEVIN, FACTORIES, RAW, RAW_SAME, _drive
from .canned_server import CannedServer

__all__ = ["main", "run"]

VARIANTS = (RAW, RAW_SAME, DEVIN)
WARMUP = 300
CONCURRENCY = 16
_COLLECTED = re.compile(r"Collected : (\d+)")
_ROOT = Path(__file__).resolve().parent.parent


async def _child(url: str, variant: str, n: int) -> None:
    async with FACTORIES[variant](url) as fetch:
        await _drive(fetch, WARMUP, CONCURRENCY)
        await _drive(fetch, n, CONCURRENCY)


def _count(valgrind: str, url: str, variant: str, n: int) -> int:
    """Instructions the whole child ran, as callgrind reports them."""
    child = ["-m", "benchmarks.count_get_session", "--child", url, variant, str(n)]
    done = subprocess.run(
        [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, *child],
        cwd=_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"{variant} under valgrind failed ({done.returncode}):\n{done.stderr}")
    return int(found.group(1))


def run(low: int = 200, high: int = 1_200) -> str:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return "instructions: skipped (valgrind is not installed)"
    counts: dict[str, float] = {}
    with CannedServer(max_seconds=1_800) as server:
        for variant in VARIANTS:
            extra = _count(valgrind, server.url, variant, high)
            base = _count(valgrind, server.url, variant, low)
            counts[variant] = (extra - base) / (high - low)
    floor = counts[RAW]
    rows = [[v, f"{counts[v]:,.0f}", f"{counts[v] / floor:.3f}x"] for v in VARIANTS]
    head = (
        f"instructions per request (callgrind; {high:,} minus {low:,} requests after "
        f"{WARMUP} warm-up ones, {CONCURRENCY} concurrent tasks)"
    )
    split = (
        f"split: same request / floor = {counts[RAW_SAME] / floor:.3f}x; "
        f"devin / same request = {counts[DEVIN] / counts[RAW_SAME]:.3f}x"
    )
    return "\n".join([table(["variant", "instructions/request", "vs floor"], rows, head), split])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="instructions per session GET (valgrind)")
    parser.add_argument("--child", nargs=3, metavar=("URL", "VARIANT", "N"))
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.child:
        url, variant, n = args.child
        asyncio.run(_child(url, variant, int(n)))
        return 0
    print(run(100, 600) if args.quick else run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
