"""(b) Fan-out: N concurrent waits, batched polling vs one GET per session per tick.

The fake Devin server (``devin_async.testing.FakeDevinServer``) runs in its own process,
pinned to the other CPU, one fresh server per run. Each run is a fresh client process,
so its memory is its own, and creates its N sessions before anything is measured:

- ``batched``: ``client.await_sessions(ids)``: every wait subscribes to the client's
  waiting engine, which reads up to 200 sessions per list request each tick; no task
  per wait. Sessions stay ``running/working`` for ``reads`` polls, then finish.
- ``per-session GET``: the usual hand-written fan-out, one task per session, each doing
  ``get_session`` + sleep until the session settles (same timeline).
- ``watermark``: ``DevinClient(wait_strategy="watermark")``, sessions that stay
  ``working`` for the whole run, aged on the server as if created one per second over
  the past hours (the newest two minutes ago): quiet waits. After the first tick (a
  reconciliation: every session read by id) each tick asks only for the sessions updated
  after the watermark. The run stops after ``ticks`` ticks (the waits are cancelled).
- ``watermark (fresh)``: the same on sessions just created, all within the watermark's
  60 s overlap of each other: a diagnostic of what a freshly started batch costs.
- ``batched`` once more under ``tracemalloc`` (memory only: tracing slows the client):
  the bytes the waits hold at a quiet tick, and the peak of one quiet tick.

Reported per run: HTTP requests (counted where the client hands each to its transport:
an aiohttp ``TraceConfig`` would cost the batched variant a signal per body chunk); the
RSS growth per waiting session (peak RSS while the waits are pending minus RSS before
they start, and the same at the start of tick 4, after two quiet ticks); and client CPU
(``time.process_time``, never wall time) per tick and per session per tick, both over
all ticks (the waiting phase divided by the ticks each session needs: the definition the
earlier figures used) and over quiet ticks only (neither the first tick of a wait nor
the one that settles it). Tick boundaries are marked where each tick starts reading (the
engine's source, or the first GET of each round of N GETs).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import re
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp

from ._util import table

__all__ = ["Config", "main", "report", "run"]

SERVER_SCRIPT = """
import asyncio, os, sys, time
from devin_async.testing import FakeDevinServer, Step
if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 1:
    os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
async def main():
    reads = int(sys.argv[1])
    timeline = [Step("running", "working", reads=reads), Step("running", "finished")]
    async with FakeDevinServer(api_key="cog_bench", org_id="org-bench",
                               default_timeline=timeline) as server:
        print("URL", server.url, flush=True)
        loop = asyncio.get_running_loop()
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            # "age NEWEST SPACING": as if created SPACING s apart, the newest NEWEST s ago.
            _, newest, spacing = line.split()
            now = int(time.time())
            ordered = sorted(server.sessions.values(), key=lambda s: s.seq, reverse=True)
            for rank, s in enumerate(ordered):
                s.created_at = s.updated_at = now - int(newest) - rank * int(spacing)
            print("AGED", len(ordered), flush=True)
asyncio.run(main())
"""

STAY = 10**9  # reads a quiet session stays "working": never finishes during a run
AGE_NEWEST, AGE_SPACING = 120, 1  # seconds: the aged sessions of the watermark run

# Variant names and what their runs are.
BATCHED, NAIVE, WATERMARK, FRESH = "batched", "per-session GET", "watermark", "watermark (fresh)"
MEMORY = "batched (tracemalloc)"


@dataclass(frozen=True)
class Config:
    sessions: int = 10_000
    reads: int = 9  # polls that see "working" before the one that sees "finished"
    interval: float = 0.2  # seconds between polls (fixed: first = max)
    ticks: int = 20  # ticks of the watermark run (the first is a reconciliation)
    fresh_ticks: int = 4  # ticks of the watermark (fresh) run
    memory_reads: int = 3  # reads of the tracemalloc run (held memory read at tick 3)

    @classmethod
    def quick(cls) -> Config:
        return cls(sessions=1_000, reads=5, ticks=4, fresh_ticks=2)


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _site(frame: tracemalloc.Frame) -> str:
    """``package/module.py:line`` of an allocation (the last two path parts)."""
    name = re.sub(r" \d+>$", ">", frame.filename)  # generated code: drop its object id
    parts = name.replace(os.sep, "/").split("/")
    return f"{'/'.join(parts[-2:])}:{frame.lineno}"


async def _variant(name: str, url: str, cfg: Config, *, memory: bool) -> dict[str, Any]:
    from devin_async import DevinClient

    watermark = name in (WATERMARK, FRESH)
    limit = cfg.fresh_ticks if name == FRESH else cfg.ticks
    requests = 0
    # One mark where each tick starts reading: (client CPU, requests, rows listed, CPU in
    # the garbage collector, so far).
    marks: list[tuple[float, int, int, float]] = []
    collector = [0.0, 0.0]  # CPU in collections so far, start of the current one
    own = [0.0]  # CPU of the RSS sampler so far: the benchmark's, not the client's

    def client_cpu() -> float:
        return time.process_time() - own[0]

    def collecting(phase: str, _: object) -> None:
        if phase == "start":
            collector[1] = time.process_time()
        else:
            collector[0] += time.process_time() - collector[1]

    traced: dict[str, Any] = {}
    listed: list[int] = [0]  # rows the list endpoint returned (watermark runs)
    quiet_rss = [0]  # RSS growth at the start of tick 4, KiB
    base = 0
    stop = asyncio.Event()

    def mark() -> None:
        marks.append((client_cpu(), requests, listed[0], collector[0]))
        if len(marks) == 4 and not memory:  # tick 4 starts: ticks 2-3 were quiet
            quiet_rss[0] = _rss_kib() - base
        if memory and len(marks) == 2:  # tick 2 starts: measure its peak
            tracemalloc.reset_peak()
        elif memory and len(marks) == 3:  # tick 3 starts: tick 2 (quiet) is over
            current, peak = tracemalloc.get_traced_memory()
            top = tracemalloc.take_snapshot().statistics("lineno")[:8]
            traced.update(
                held=current,
                peak=peak,
                top=[[_site(s.traceback[0]), s.size, s.count] for s in top],
            )
        if watermark and len(marks) > limit:
            stop.set()

    def count() -> None:
        nonlocal requests
        if name == NAIVE and requests % cfg.sessions == 0:
            mark()  # counts the requests before this one
        requests += 1

    connector = aiohttp.TCPConnector(limit=64)
    async with (
        aiohttp.ClientSession(connector=connector) as http,
        DevinClient(
            "cog_bench",
            org_id="org-bench",
            base_url=url,
            session=http,
            poll_interval=cfg.interval,
            max_poll_interval=cfg.interval,
            max_in_flight=64,
            wait_strategy="watermark" if watermark else "ids",
        ) as client,
    ):
        created = await client.create_sessions(
            [f"task {i}" for i in range(cfg.sessions)], concurrency=64
        )
        ids = [r.unwrap().session_id for r in created]
        print("CREATED", len(ids), flush=True)
        sys.stdin.readline()  # the parent has aged the sessions if this run wants it

        # Mark each tick where the engine's source starts reading (private hooks of the
        # client: a benchmark may look inside; nothing in devin_async is changed).
        source: Any = client._engine.source
        inner = source.read

        async def read(*args: Any) -> Any:
            mark()
            return await inner(*args)

        source.read = read
        transport: Any = client._transport
        send = transport.send

        async def counted_send(request: Any) -> Any:
            count()
            return await send(request)

        transport.send = counted_send
        by_id = getattr(source, "_ids", None)
        if watermark and by_id is not None and by_id.list_page is not None:
            list_page = by_id.list_page

            async def counted(*args: Any) -> Any:
                page = await list_page(*args)
                listed[0] += len(page.keys)
                return page

            by_id.list_page = counted

        requests = 0
        peak = base = _rss_kib()

        async def sample() -> None:
            nonlocal peak
            while True:
                t0 = time.process_time()
                peak = max(peak, _rss_kib())
                own[0] += time.process_time() - t0
                await asyncio.sleep(0.02)

        sampler = asyncio.create_task(sample()) if not memory else None
        if memory:
            tracemalloc.start(1)
        gc.callbacks.append(collecting)
        cpu0, wall0 = client_cpu(), time.perf_counter()
        if name == NAIVE:

            async def one(session_id: str) -> bool:
                while True:
                    session = await client.get_session(session_id)
                    if session.status_detail == "finished":
                        return True
                    await asyncio.sleep(cfg.interval)

            settled = sum(await asyncio.gather(*(one(i) for i in ids)))
        elif watermark:
            waiting = asyncio.create_task(client.await_sessions(ids, timeout=900))
            await stop.wait()
            cpu, wall = client_cpu() - cpu0, time.perf_counter() - wall0
            waiting.cancel()
            await asyncio.gather(waiting, return_exceptions=True)
            settled = 0
        else:
            results = await client.await_sessions(ids, timeout=900)
            settled = sum(1 for r in results if r.ok)
        if not watermark:
            cpu, wall = client_cpu() - cpu0, time.perf_counter() - wall0
        gc.callbacks.remove(collecting)
        if memory:
            tracemalloc.stop()
        if sampler is not None:
            sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)
    # Quiet ticks: from the start of tick 2 to the start of the tick that settles (or of
    # the tick after the last one of a watermark run).
    last = limit if watermark else cfg.reads
    per_tick = [b[1] - a[1] for a, b in itertools.pairwise(marks[: last + 1])]
    listed_quiet = marks[last][2] - marks[1][2]
    return {
        "waits": len(ids),
        "settled": settled,
        "requests": requests,
        "rss_kib": peak - base,
        "quiet_rss_kib": quiet_rss[0],
        "cpu": cpu,
        "wall": wall,
        "ticks": limit if watermark else cfg.reads + 1,
        "quiet_cpu": marks[last][0] - marks[1][0],
        "quiet_ticks": last - 1,
        "quiet_gc": marks[last][3] - marks[1][3],
        "first_requests": per_tick[0],
        "quiet_requests": per_tick[1:],
        "listed_quiet": listed_quiet,
        **traced,
    }


def _child(name: str, url: str, cfg: Config, memory: bool) -> None:
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    print(json.dumps(asyncio.run(_variant(name, url, cfg, memory=memory))))


@contextmanager
def _server(reads: int) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A fresh fake server process whose sessions stay working for ``reads`` reads."""
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER_SCRIPT, str(reads)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline().split()
        if len(line) != 2 or line[0] != "URL":
            raise RuntimeError(f"fake server did not start: {line}")
        yield line[1], server
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=30)


def _run_one(name: str, cfg: Config, *, reads: int, aged: bool = False) -> dict[str, Any]:
    memory = name == MEMORY
    with _server(reads) as (url, server):
        args = [sys.executable, "-m", "benchmarks.bench_fanout", "--child"]
        args += [BATCHED if memory else name, url, f"--sessions={cfg.sessions}"]
        args += [f"--reads={reads}", f"--interval={cfg.interval}", f"--ticks={cfg.ticks}"]
        args += [f"--fresh-ticks={cfg.fresh_ticks}"] + (["--memory"] if memory else [])
        child = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert child.stdin is not None
        assert child.stdout is not None
        assert server.stdin is not None
        assert server.stdout is not None
        created = child.stdout.readline()
        if created.startswith("CREATED") and aged:
            server.stdin.write(f"age {AGE_NEWEST} {AGE_SPACING}\n")
            server.stdin.flush()
            server.stdout.readline()
        if created.startswith("CREATED"):
            child.stdin.write("GO\n")
            child.stdin.flush()
        out, err = child.communicate(timeout=900)
        if child.returncode != 0 or not created.startswith("CREATED"):
            raise RuntimeError(f"{name} run failed ({child.returncode}):\n{err}")
        figures: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return figures


def run(cfg: Config) -> dict[str, dict[str, Any]]:
    """Run each variant in a fresh client process against a fresh server; the figures."""
    return {
        BATCHED: _run_one(BATCHED, cfg, reads=cfg.reads),
        NAIVE: _run_one(NAIVE, cfg, reads=cfg.reads),
        WATERMARK: _run_one(WATERMARK, cfg, reads=STAY, aged=True),
        FRESH: _run_one(FRESH, cfg, reads=STAY),
        MEMORY: _run_one(MEMORY, cfg, reads=cfg.memory_reads),
    }


def _us_session_tick(f: dict[str, Any], *, quiet: bool) -> float:
    if quiet:
        return float(f["quiet_cpu"] / f["quiet_ticks"] / f["waits"] * 1e6)
    return float(f["cpu"] / f["ticks"] / f["waits"] * 1e6)


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def report(figures: dict[str, dict[str, Any]]) -> str:
    rows = []
    for name in (BATCHED, NAIVE):
        f = figures[name]
        n = f["waits"]
        rows.append(
            [
                name,
                f"{int(f['settled']):,}",
                f"{int(f['requests']):,}",
                f"{f['requests'] / n:.3f}",
                f"{f['rss_kib'] / n:.2f}",
                f"{f['cpu'] / f['ticks'] * 1000:.1f}",
                f"{_us_session_tick(f, quiet=False):.1f}",
                f"{f['quiet_cpu'] / f['quiet_ticks'] * 1000:.1f}",
                f"{_us_session_tick(f, quiet=True):.1f}",
                f"{f['quiet_gc'] / f['quiet_ticks'] * 1000:.1f}",
                f"{f['wall']:.1f}",
            ]
        )
    n = figures[BATCHED]["waits"]
    text = table(
        [
            "variant",
            "settled",
            "requests",
            "req/session",
            "KiB RSS/wait",
            "ms CPU/tick",
            "us CPU/session/tick",
            "quiet: ms/tick",
            "quiet: us/session/tick",
            "quiet: gc ms/tick",
            "wall s",
        ],
        rows,
        title=f"(b) fan-out: {n:,} concurrent waits against the fake server (separate process)",
    )
    wrows = []
    for name in (WATERMARK, FRESH):
        f = figures[name]
        quiet = f["quiet_requests"] or [0]
        wrows.append(
            [
                name,
                f"{int(f['waits']):,}",
                f"{int(f['quiet_ticks']) + 1}",
                f"{int(f['first_requests'])}",
                f"{sum(quiet) / len(quiet):.1f}",
                f"{max(quiet)}",
                f"{f['listed_quiet'] / f['quiet_ticks']:,.0f}",
                f"{f['rss_kib'] / f['waits']:.2f}",
                f"{f['quiet_cpu'] / f['quiet_ticks'] * 1000:.1f}",
                f"{_us_session_tick(f, quiet=True):.2f}",
            ]
        )
    wtext = table(
        [
            "variant",
            "waits",
            "ticks",
            "tick 1 req",
            "req/tick after",
            "max",
            "rows listed/tick after",
            "KiB RSS/wait",
            "quiet: ms/tick",
            "quiet: us/session/tick",
        ],
        wrows,
        title='wait_strategy="watermark": quiet waits (tick 1 reconciles by id; no '
        "reconciliation after it within the run)",
    )
    mem = figures[MEMORY]
    mn = mem["waits"]
    held, tick_peak = mem["held"] / mn, mem["peak"] / mn
    sites = table(
        ["allocated at (held at a quiet tick)", "KiB", "B/wait", "blocks"],
        [[s, f"{size / 1024:,.0f}", f"{size / mn:.0f}", f"{c:,}"] for s, size, c in mem["top"]],
    )

    batched, naive, wm = figures[BATCHED], figures[NAIVE], figures[WATERMARK]
    fewer = naive["requests"] / max(1, batched["requests"])
    cpu_all = _us_session_tick(naive, quiet=False) / _us_session_tick(batched, quiet=False)
    cpu_quiet = _us_session_tick(naive, quiet=True) / _us_session_tick(batched, quiet=True)
    rss = batched["rss_kib"] * 1024 / batched["waits"]  # bytes
    quiet_rss = batched["quiet_rss_kib"] * 1024 / batched["waits"]
    wm_max = max(wm["quiet_requests"] or [0])
    lines = [
        text,
        "",
        f"requests: per-session GET / batched = {fewer:.0f}x   target >= 100x: "
        + _met(fewer >= 100),
        f"CPU per session per tick, all ticks: per-session GET / batched = {cpu_all:.1f}x   "
        "target >= 20x: " + _met(cpu_all >= 20) + "   (the target's measure)",
        f"CPU per session per tick, quiet ticks: per-session GET / batched = {cpu_quiet:.1f}x"
        "   target >= 20x: " + _met(cpu_quiet >= 20),
        f"memory per waiting session (batched, {batched['waits']:,} waits), RSS growth at a "
        f"quiet tick: {quiet_rss / 1000:.2f} KB   target <= 1.5 KB: " + _met(quiet_rss <= 1500),
        f"memory per waiting session (batched, {mn:,} waits), tracemalloc held at a quiet "
        f"tick: {held / 1000:.2f} KB   target <= 1.5 KB: " + _met(held <= 1500),
        f"  RSS peak of the whole run (settling, and the caller's results): {rss / 1000:.2f} KB"
        " per wait",
        f"  tracemalloc peak of one quiet tick: {tick_peak / 1000:.2f} KB per wait "
        "(held + what the tick reads and decodes)",
        "",
        wtext,
        "",
        f"watermark, {wm['waits']:,} quiet waits: list requests per tick between "
        f"reconciliations: max {wm_max}   target <= 2: " + _met(wm_max <= 2),
        f"watermark CPU per session per quiet tick: {_us_session_tick(wm, quiet=True):.2f} us"
        f" (batched by id: {_us_session_tick(batched, quiet=True):.2f} us)",
        "",
        sites,
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_fanout")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "URL"), help=argparse.SUPPRESS)
    parser.add_argument("--memory", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sessions", type=int, default=Config.sessions)
    parser.add_argument("--reads", type=int, default=Config.reads)
    parser.add_argument("--interval", type=float, default=Config.interval)
    parser.add_argument("--ticks", type=int, default=Config.ticks)
    parser.add_argument("--fresh-ticks", type=int, default=Config.fresh_ticks)
    args = parser.parse_args(argv)
    cfg = Config(args.sessions, args.reads, args.interval, args.ticks, args.fresh_ticks)
    if args.child:
        _child(args.child[0], args.child[1], cfg, args.memory)
        return 0
    if args.quick:
        cfg = Config.quick()
    print(report(run(cfg)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
