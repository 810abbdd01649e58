"""(g) What loading the pytest plugin costs a test run that does not use it.

pytest imports every ``pytest11`` entry point at start-up, so ``devin_async.pytest_plugin``
is imported by every pytest run in an environment where the package is installed. The
cost is measured as the wall time of ``python -c "import devin_async.pytest_plugin"``
minus that of ``python -c pass`` (the interpreter's own start-up), both run in fresh
processes, interleaved round by round, so drift of the machine affects both alike. The
per-round differences are summarised by their median. Target: at most 20 ms.

The plugin imports pytest, which a pytest run has loaded before any plugin, so the
target applies to the difference to ``python -c "import pytest"``, run in the same rounds:
the plugin's own cost. The difference to ``pass`` is printed too (pytest included).

    python -m benchmarks --only plugin_import
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass

from ._util import median, median_ci, table

__all__ = ["Config", "main", "run"]

TARGET_MS = 20.0
BASELINE = "import pytest"
PLUGIN = "import devin_async.pytest_plugin"
BARE = "pass"


@dataclass(frozen=True)
class Config:
    rounds: int = 40

    @classmethod
    def quick(cls) -> Config:
        return cls(rounds=8)


def _once(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=os.environ.copy())
    return time.perf_counter() - start


def run(cfg: Config) -> dict[str, list[float]]:
    """Wall seconds per round of each command, run interleaved (rotated each round)."""
    codes = {BARE: BARE, BASELINE: BASELINE, PLUGIN: PLUGIN}
    times: dict[str, list[float]] = {name: [] for name in codes}
    for code in codes.values():  # warm the OS file cache before measuring
        _once(code)
    order = list(codes)
    for i in range(cfg.rounds):
        shift = i % len(order)
        for name in order[shift:] + order[:shift]:
            times[name].append(_once(codes[name]))
    return times


def report(times: dict[str, list[float]]) -> str:
    rows = []
    for name, values in times.items():
        lo, hi = median_ci(values)
        rows.append([name, f"{median(values) * 1e3:.1f}", f"{lo * 1e3:.1f}-{hi * 1e3:.1f}"])
    plugin = [p - b for p, b in zip(times[PLUGIN], times[BASELINE], strict=True)]
    total = median([p - b for p, b in zip(times[PLUGIN], times[BARE], strict=True)]) * 1e3
    lo, hi = median_ci(plugin)
    cost = median(plugin) * 1e3
    if hi * 1e3 <= TARGET_MS:
        word = "met"
    else:
        word = "MISSED" if lo * 1e3 > TARGET_MS else "inconclusive at this noise"
    out = table(
        ["command (python -c ...)", "median ms", "95% CI ms"],
        rows,
        title=f"plugin import: fresh processes, {len(plugin)} interleaved rounds",
    )
    return (
        f"{out}\nplugin vs 'pass' (pytest included): {total:.1f} ms\n"
        f"plugin's own cost (per-round difference to 'import pytest'): {cost:.1f} ms "
        f"(95% CI {lo * 1e3:.1f}-{hi * 1e3:.1f})   target <= {TARGET_MS:.0f} ms: {word}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    print(report(run(Config.quick() if args.quick else Config())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
