"""Run the benchmarks and print plain-text tables: ``python -m benchmarks`` (``make bench``).

    python -m benchmarks                    # all but the two below, about 8 minutes
    python -m benchmarks --quick            # smoke run, about 20 seconds
    python -m benchmarks --only decode      # one benchmark (repeatable)
    python -m benchmarks --only profile     # cProfile split of get_session vs raw aiohttp
    python -m benchmarks --only instructions  # instructions per GET, by valgrind
    python -m benchmarks --only governor    # the 429 governor: 5 scenarios x 60 s + plot
    python -m benchmarks --only plugin_import  # what loading the pytest plugin costs

Nothing here asserts a timing: every ratio is against a baseline measured in the same
run, and each target is printed next to its measurement.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import sys
import time
from collections.abc import Callable

from . import (
    bench_create,
    bench_decode,
    bench_fanout,
    bench_get_session,
    bench_governor,
    bench_plugin_import,
    count_get_session,
    profile_get_session,
)

DEFAULT = ("get_session", "fanout", "decode", "create", "governor", "plugin_import")


def _get_session(quick: bool) -> str:
    cfg = bench_get_session.Config.quick() if quick else bench_get_session.Config()
    return bench_get_session.report(bench_get_session.run(cfg))


def _decode(quick: bool) -> str:
    cfg = bench_decode.Config.quick() if quick else bench_decode.Config()
    return bench_decode.report(bench_decode.run(cfg))


def _fanout(quick: bool) -> str:
    cfg = bench_fanout.Config.quick() if quick else bench_fanout.Config()
    return bench_fanout.report(bench_fanout.run(cfg))


def _create(quick: bool) -> str:
    cfg = bench_create.Config.quick() if quick else bench_create.Config()
    return bench_create.report(bench_create.run(cfg))


def _governor(quick: bool) -> str:
    cfg = bench_governor.Config.quick() if quick else bench_governor.Config()
    return bench_governor.report(bench_governor.run(cfg))


def _plugin_import(quick: bool) -> str:
    cfg = bench_plugin_import.Config.quick() if quick else bench_plugin_import.Config()
    return bench_plugin_import.report(bench_plugin_import.run(cfg))


def _profile(quick: bool) -> str:
    return profile_get_session.run(requests=1_000 if quick else 5_000)


def _instructions(quick: bool) -> str:
    return count_get_session.run(100, 600) if quick else count_get_session.run()


BENCHMARKS: dict[str, Callable[[bool], str]] = {
    "get_session": _get_session,
    "fanout": _fanout,
    "decode": _decode,
    "create": _create,
    "governor": _governor,
    "plugin_import": _plugin_import,
    "profile": _profile,
    "instructions": _instructions,
}


def _versions() -> str:
    names = ("aiohttp", "httpx", "cattrs", "pydantic", "msgspec", "tenacity")
    parts = []
    for name in names:
        try:
            parts.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            parts.append(f"{name} ?")
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{cpus} usable CPUs; " + ", ".join(parts)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description="devin_async benchmarks (plain-text tables)"
    )
    parser.add_argument("--quick", action="store_true", help="short smoke run (~20 s)")
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(BENCHMARKS),
        metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}",
    )
    args = parser.parse_args(argv)
    names = args.only or list(DEFAULT)
    print(_versions())
    print("mode:", "quick" if args.quick else "full", "| benchmarks:", ", ".join(names))
    start = time.perf_counter()
    for name in names:
        t0 = time.perf_counter()
        print()
        print(BENCHMARKS[name](args.quick))
        print(f"[{name}: {time.perf_counter() - t0:.1f} s]")
    print(f"\ntotal {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
