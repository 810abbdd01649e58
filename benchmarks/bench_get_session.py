"""(a) Client CPU per GET: raw aiohttp vs DevinClient.get_session() vs httpx.

All variants fetch the same ~1 KB SessionResponse from the canned server, which runs
in its own process on its own CPU; the client process is pinned to another CPU, and
only its ``time.process_time()`` is counted, so a slow server cannot inflate a
variant's cost (waiting is not CPU).

Variants (each ends with a decoded body, so each does the same work up to the model):

- ``aiohttp (floor)``: ``ClientSession.get`` + ``await resp.json()``, nothing else.
- ``aiohttp + same request``: diagnostic. Exactly the request ``Transport.send`` makes
  (the same headers, as the session's defaults, ``ClientTimeout``,
  ``allow_redirects=False``, ``read()`` then ``json.loads``) with no devin_async code: it
  splits devin's overhead into what aiohttp charges for those options and what the
  library's own layers cost.
- ``DevinClient.get_session``: the public call, returning a ``Session``.
- ``httpx.AsyncClient``: ``get`` + ``.json()``, on the same server.

All clients are opened and warmed up first (connections opened, caches filled). Then
come many short rounds: in each, every variant times one slice of requests driven by
``concurrency`` tasks that each await their requests one after another, in an order
that rotates every round. Each variant reports the median of its slices, and each ratio
is the median of per-round ratios (pairs measured a fraction of a second apart), with a
distribution-free ~95 % interval.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import httpx
from multidict import CIMultiDict, CIMultiDictProxy

from devin_async import DevinClient
from devin_async._transport import user_agent
from devin_async._version import __version__

from ._payload import API_KEY, ORG_ID, SESSION_ID, SESSION_PATH
from ._util import GcDelta, gc_snapshot, median, quantile, table, verdict
from .canned_server import CannedServer, pin_to_cpu, usable_cpus

__all__ = ["Config", "main", "run"]

Fetch = Callable[[], Awaitable[Any]]
Factory = Callable[[str], contextlib.AbstractAsyncContextManager[Fetch]]

RAW = "aiohttp (floor)"
RAW_SAME = "aiohttp + same request"
DEVIN = "DevinClient.get_session"
HTTPX = "httpx.AsyncClient"
GC_PER = 20_000  # gc counts are reported per this many requests


@contextlib.asynccontextmanager
async def _raw(url: str) -> AsyncIterator[Fetch]:
    target = url + SESSION_PATH
    async with aiohttp.ClientSession() as session:

        async def fetch() -> Any:
            async with session.get(target) as resp:
                return await resp.json()

        yield fetch


@contextlib.asynccontextmanager
async def _raw_same(url: str) -> AsyncIterator[Fetch]:
    target = url + SESSION_PATH
    headers = {
        "Authorization": f"Bearer {API_KEY}",
        "Accept": "application/json",
        "User-Agent": user_agent(__version__),
    }
    timeout = aiohttp.ClientTimeout(total=60.0)
    empty = CIMultiDictProxy(CIMultiDict[str]())
    async with aiohttp.ClientSession(headers=headers) as session:

        async def fetch() -> Any:
            async with session.request(
                "GET",
                target,
                params=None,
                data=None,
                headers=empty,
                timeout=timeout,
                allow_redirects=False,
            ) as resp:
                body = await resp.read()
            return json.loads(body)

        yield fetch


@contextlib.asynccontextmanager
async def _devin(url: str) -> AsyncIterator[Fetch]:
    async with DevinClient(api_key=API_KEY, org_id=ORG_ID, base_url=url) as client:

        async def fetch() -> Any:
            return await client.get_session(SESSION_ID)

        yield fetch


@contextlib.asynccontextmanager
async def _httpx(url: str) -> AsyncIterator[Fetch]:
    target = url + SESSION_PATH
    async with httpx.AsyncClient() as client:

        async def fetch() -> Any:
            resp = await client.get(target)
            return resp.json()

        yield fetch


FACTORIES: dict[str, Factory] = {RAW: _raw, RAW_SAME: _raw_same, DEVIN: _devin, HTTPX: _httpx}


@dataclass
class Config:
    """Sizes of one run; ``requests`` is per variant per round.

    This kind of machine (a small VM) drifts by 10-20 % from one 100 ms to the next, so
    the run is many short rounds rather than a few long ones: every round yields one
    devin/raw pair measured a fraction of a second apart, and the medians of those
    pairs are reported. httpx is ~10x slower, so it gets fewer requests per round.
    """

    requests: int = 1_000
    httpx_requests: int = 100
    warmup: int = 300
    concurrency: int = 16
    rounds: int = 100
    budget_s: float = 65.0  # no new round starts once this much wall time is spent
    variants: tuple[str, ...] = (RAW, RAW_SAME, DEVIN, HTTPX)

    @classmethod
    def quick(cls) -> Config:
        return cls(requests=500, httpx_requests=40, warmup=200, rounds=20, budget_s=9.0)

    def n_for(self, variant: str) -> int:
        return self.httpx_requests if variant == HTTPX else self.requests


@dataclass
class Sample:
    n: int
    cpu_s: float
    wall_s: float
    gc: GcDelta

    @property
    def cpu_us(self) -> float:
        return self.cpu_s / self.n * 1e6


@dataclass
class Result:
    config: Config
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    client_cpu: int | None = None
    server_cpu: int | None = None
    served: int | None = None
    sent: int = 0
    rounds_done: int = 0

    def cpu_us(self, variant: str) -> float:
        return median([s.cpu_us for s in self.samples.get(variant, [])])


async def _drive(fetch: Fetch, n: int, concurrency: int) -> None:
    per, extra = divmod(n, concurrency)

    async def worker(count: int) -> None:
        for _ in range(count):
            await fetch()

    await asyncio.gather(*(worker(per + (i < extra)) for i in range(concurrency)))


async def measure(fetch: Fetch, n: int, concurrency: int) -> Sample:
    """Time ``n`` requests of an open, warm client (client CPU only).

    The slice starts from an empty collector (untimed full collection) and ends with a
    timed young-generation collection, so cyclic garbage a variant makes is charged to
    it rather than to whichever variant runs next. ``collections`` counts the automatic
    passes during the requests; ``collected`` includes the closing sweep.
    """
    gc.collect()
    before = gc_snapshot()
    c0, w0 = time.process_time(), time.perf_counter()
    await _drive(fetch, n, concurrency)
    passes = gc_snapshot()
    gc.collect(1)
    c1, w1 = time.process_time(), time.perf_counter()
    after = gc_snapshot()
    automatic = GcDelta.between(before, passes).collections
    return Sample(n, c1 - c0, w1 - w0, GcDelta(automatic, GcDelta.between(before, after).collected))


async def _run_rounds(cfg: Config, url: str, result: Result) -> None:
    start = time.perf_counter()
    variants = list(cfg.variants)
    async with contextlib.AsyncExitStack() as stack:
        fetchers = {}
        for variant in variants:
            fetchers[variant] = fetch = await stack.enter_async_context(FACTORIES[variant](url))
            await _drive(fetch, cfg.warmup, cfg.concurrency)
            result.sent += cfg.warmup
        for r in range(cfg.rounds):
            if r and time.perf_counter() - start > cfg.budget_s:
                break
            order = variants[r % len(variants) :] + variants[: r % len(variants)]
            for variant in order:
                n = cfg.n_for(variant)
                sample = await measure(fetchers[variant], n, cfg.concurrency)
                result.samples.setdefault(variant, []).append(sample)
                result.sent += n
            result.rounds_done = r + 1


def run(cfg: Config) -> Result:
    """Start the server, run the rounds pinned to separate CPUs, stop the server."""
    cpus = usable_cpus()
    client_cpu, server_cpu = (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)
    result = Result(cfg, client_cpu=client_cpu, server_cpu=server_cpu)
    original = set(cpus)
    with CannedServer(cpu=server_cpu, max_seconds=cfg.budget_s * 3 + 60) as server:
        pinned = pin_to_cpu(client_cpu)
        try:
            asyncio.run(_run_rounds(cfg, server.url, result))
        finally:
            if pinned:
                os.sched_setaffinity(0, original)
    result.served = server.served
    return result


def _paired(result: Result, num: str, den: str) -> list[float]:
    """Per-round ratios num/den (both variants ran in every round, seconds apart)."""
    pairs = zip(result.samples.get(num, []), result.samples.get(den, []), strict=False)
    return [a.cpu_us / b.cpu_us for a, b in pairs]


def report(result: Result) -> str:
    cfg = result.config
    rows = []
    for variant in cfg.variants:
        samples = result.samples.get(variant, [])
        if not samples:
            continue
        us = [s.cpu_us for s in samples]
        total = sum(s.n for s in samples)
        scale = GC_PER / total
        gen = [sum(s.gc.collections[g] for s in samples) * scale for g in range(3)]
        freed = sum(s.gc.collected for s in samples) * scale
        vs_raw = _paired(result, variant, RAW)
        rows.append(
            [
                variant,
                f"{samples[0].n:,} x {len(samples)}",
                f"{median(us):.1f}",
                f"{quantile(us, 0.25):.0f}-{quantile(us, 0.75):.0f}",
                f"{median(vs_raw):.2f}x" if vs_raw else "-",
                f"{gen[0]:.0f}/{gen[1]:.0f}/{gen[2]:.0f}",
                f"{freed:,.0f}",
                f"{median([s.n / s.wall_s for s in samples]):,.0f}",
            ]
        )
    pin = (
        f"client pinned to CPU {result.client_cpu}, server to CPU {result.server_cpu}"
        if result.client_cpu is not None
        else "no CPU pinning (fewer than 2 usable CPUs)"
    )
    head = (
        f"(a) GET one session: client CPU (process_time) per request; median of "
        f"{result.rounds_done} interleaved rounds; {cfg.concurrency} concurrent tasks; "
        f"{pin}"
    )
    headers = [
        "variant",
        "requests/round",
        "us CPU/req",
        "IQR",
        "vs floor",
        f"gc gen0/1/2 per {GC_PER // 1000}k",
        f"gc freed per {GC_PER // 1000}k",
        "req/s wall",
    ]
    out = [table(headers, rows, head), ""]
    devin_raw = _paired(result, DEVIN, RAW)
    if devin_raw:
        out.append("devin / raw aiohttp : " + verdict(devin_raw, 1.10, below=True))
    httpx_devin = _paired(result, HTTPX, DEVIN)
    if httpx_devin:
        out.append("httpx / devin       : " + verdict(httpx_devin, 5.0, below=False))
    same_raw, devin_same = _paired(result, RAW_SAME, RAW), _paired(result, DEVIN, RAW_SAME)
    if same_raw and devin_same:
        out.append(
            f"split: aiohttp with devin's request options / floor = {median(same_raw):.2f}x; "
            f"devin / that same request = {median(devin_same):.2f}x (devin_async's own layers)"
        )
    served = "?" if result.served is None else f"{result.served:,}"
    out.append(f"server answered {served} of {result.sent:,} requests sent")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="client CPU per session GET")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--requests", type=int)
    parser.add_argument("--rounds", type=int)
    args = parser.parse_args(argv)
    cfg = Config.quick() if args.quick else Config()
    if args.requests:
        cfg.requests = args.requests
    if args.rounds:
        cfg.rounds = args.rounds
    print(report(run(cfg)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
