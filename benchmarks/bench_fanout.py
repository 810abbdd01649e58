"""(b) Fan-out: N concurrent waits, batched polling vs one GET per session per tick.

The fake Devin server (``devin_async.testing.FakeDevinServer``) runs in its own process,
pinned to the other CPU, with every session scripted to stay ``running/working`` for
``reads`` polls and then finish. Each variant runs in a fresh client process, so its
memory is its own:

- ``batched``: ``client.await_sessions(ids)``: every wait subscribes to the client's
  poller, which reads up to 200 sessions per list request each tick; no task per wait.
- ``per-session GET``: the usual hand-written fan-out, one task per session, each doing
  ``get_session`` + sleep until the session settles.

Reported per variant: HTTP requests per settled session (counted by the client's own
aiohttp trace, so the server's count is not needed), the RSS growth per waiting session
(peak RSS while all N waits are pending minus RSS before they start), and the client CPU
per poll tick and per session per tick (``time.process_time`` over the waiting phase,
divided by the ticks each session needed). Creating the N sessions happens before the
measurement and is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass

import aiohttp

from ._util import table

__all__ = ["Config", "main", "report", "run"]

SERVER_SCRIPT = """
import asyncio, os, sys
from devin_async.testing import FakeDevinServer, Step
if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 1:
    os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
async def main():
    reads = int(sys.argv[1])
    timeline = [Step("running", "working", reads=reads), Step("running", "finished")]
    async with FakeDevinServer(api_key="cog_bench", org_id="org-bench",
                               default_timeline=timeline) as server:
        print("URL", server.url, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
asyncio.run(main())
"""


@dataclass(frozen=True)
class Config:
    sessions: int = 10_000
    reads: int = 9  # polls that see "working" before the one that sees "finished"
    interval: float = 0.2  # seconds between polls (fixed: first = max)

    @classmethod
    def quick(cls) -> Config:
        return cls(sessions=2_000)


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def _variant(name: str, url: str, cfg: Config) -> dict[str, float]:
    from devin_async import DevinClient

    requests = 0

    async def count(*_: object) -> None:
        nonlocal requests
        requests += 1

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(count)
    connector = aiohttp.TCPConnector(limit=64)
    async with (
        aiohttp.ClientSession(connector=connector, trace_configs=[trace]) as http,
        DevinClient(
            "cog_bench",
            org_id="org-bench",
            base_url=url,
            session=http,
            poll_interval=cfg.interval,
            max_poll_interval=cfg.interval,
            max_in_flight=64,
        ) as client,
    ):
        created = await client.create_sessions(
            [f"task {i}" for i in range(cfg.sessions)], concurrency=64
        )
        ids = [r.unwrap().session_id for r in created]
        requests = 0
        peak = base = _rss_kib()

        async def sample() -> None:
            nonlocal peak
            while True:
                peak = max(peak, _rss_kib())
                await asyncio.sleep(0.02)

        sampler = asyncio.create_task(sample())
        cpu0, wall0 = time.process_time(), time.perf_counter()
        if name == "batched":
            results = await client.await_sessions(ids, timeout=600)
            settled = sum(1 for r in results if r.ok)
        else:

            async def one(session_id: str) -> bool:
                while True:
                    session = await client.get_session(session_id)
                    if session.status_detail == "finished":
                        return True
                    await asyncio.sleep(cfg.interval)

            settled = sum(await asyncio.gather(*(one(i) for i in ids)))
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        sampler.cancel()
        await asyncio.gather(sampler, return_exceptions=True)
    ticks = cfg.reads + 1
    return {
        "settled": settled,
        "requests": requests,
        "rss_kib": peak - base,
        "cpu": cpu,
        "wall": wall,
        "ticks": ticks,
    }


def _child(name: str, url: str, cfg: Config) -> None:
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    print(json.dumps(asyncio.run(_variant(name, url, cfg))))


def run(cfg: Config) -> dict[str, dict[str, float]]:
    """Start the server process, then each variant in a fresh process; return the figures."""
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER_SCRIPT, str(cfg.reads)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline().split()
        if len(line) != 2 or line[0] != "URL":
            raise RuntimeError(f"fake server did not start: {line}")
        url = line[1]
        out = {}
        for name in ("batched", "per-session GET"):
            child = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.bench_fanout",
                    "--child",
                    name,
                    url,
                    f"--sessions={cfg.sessions}",
                    f"--reads={cfg.reads}",
                    f"--interval={cfg.interval}",
                ],
                capture_output=True,
                text=True,
                timeout=900,
                check=True,
            )
            out[name] = json.loads(child.stdout.strip().splitlines()[-1])
        return out
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=30)


def report(figures: dict[str, dict[str, float]]) -> str:
    rows = []
    for name, f in figures.items():
        n = f["settled"]
        rows.append(
            [
                name,
                f"{int(n):,}",
                f"{int(f['requests']):,}",
                f"{f['requests'] / n:.3f}",
                f"{f['rss_kib'] * 1024 / n / 1024:.2f}",
                f"{f['cpu'] / f['ticks'] * 1000:.1f}",
                f"{f['cpu'] / f['ticks'] / n * 1e6:.1f}",
                f"{f['wall']:.1f}",
            ]
        )
    text = table(
        [
            "variant",
            "settled",
            "requests",
            "req/session",
            "KiB RSS/wait",
            "ms CPU/tick",
            "us CPU/session/tick",
            "wall s",
        ],
        rows,
        title="(b) fan-out: N concurrent waits against the fake server (separate process)",
    )
    batched, naive = figures["batched"], figures["per-session GET"]
    fewer = naive["requests"] / max(1, batched["requests"])
    cpu = (naive["cpu"] / naive["settled"]) / (batched["cpu"] / batched["settled"])
    per_wait = batched["rss_kib"] / batched["settled"]
    return "\n".join(
        [
            text,
            "",
            f"requests: per-session GET / batched = {fewer:.0f}x   target >= 100x: "
            + ("met" if fewer >= 100 else "MISSED"),
            f"CPU per session per tick: per-session GET / batched = {cpu:.1f}x   "
            "target >= 10x: " + ("met" if cpu >= 10 else "MISSED"),
            f"memory per waiting session (batched): {per_wait:.2f} KiB   target < 3 KB: "
            + ("met" if per_wait * 1.024 < 3 else "MISSED"),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_fanout")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "URL"), help=argparse.SUPPRESS)
    parser.add_argument("--sessions", type=int, default=Config.sessions)
    parser.add_argument("--reads", type=int, default=Config.reads)
    parser.add_argument("--interval", type=float, default=Config.interval)
    args = parser.parse_args(argv)
    cfg = Config(args.sessions, args.reads, args.interval)
    if args.child:
        _child(args.child[0], args.child[1], cfg)
        return 0
    if args.quick:
        cfg = Config.quick()
    print(report(run(cfg)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
