"""(e) Exactly-once create against a server slower than the request timeout.

The fake Devin server takes ``delay`` seconds to create a session and, like production
stacks, keeps working after the client hangs up (``handler_cancellation=False``). Each
scenario makes ``calls`` concurrent ``create_session`` calls with a request timeout
shorter than ``delay``, so every POST times out on the client's side while the server
goes on to create its session. Counted afterwards, on the server: sessions per create
(by the marker tag each call carried) and how many calls returned their session.

Targets (issue 8): no call leaves more than one session on the server, and at least 90%
of the calls return their session when the server finishes within the grace window
(10 s by default). The untagged client (``exactly_once_create=False``) is the baseline:
it never sends a create twice, and raises on every timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from dataclasses import dataclass

from devin_async import CREATE_TAG_PREFIX, CreateOutcomeUnknownError, DevinClient, DevinError
from devin_async.testing import FakeDevinServer

from ._util import table

__all__ = ["Config", "Outcome", "main", "report", "run"]

KEY = "cog_bench_create"


@dataclass(frozen=True)
class Config:
    calls: int = 50
    # (server delay, client request timeout), seconds: the three scenarios
    scenarios: tuple[tuple[float, float], ...] = ((0.5, 0.3), (1.0, 0.3), (3.0, 1.0))

    @classmethod
    def quick(cls) -> Config:
        return cls(calls=10, scenarios=((0.5, 0.3),))


@dataclass(frozen=True)
class Outcome:
    client: str
    delay: float
    timeout: float
    calls: int
    returned: int
    unknown: int
    other_errors: int
    sessions: int
    duplicated_calls: int
    seconds: float


async def _scenario(calls: int, delay: float, timeout: float, *, exactly_once: bool) -> Outcome:
    async with FakeDevinServer(api_key=KEY, org_id="org-bench") as server:
        server.inject("slow", delay=delay, times=None, route="create_session")
        started = time.perf_counter()
        async with DevinClient(
            KEY,
            org_id=server.org_id,
            base_url=server.url,
            timeout=timeout,
            exactly_once_create=exactly_once,
        ) as client:
            results = await client.create_sessions(
                [f"task {i}" for i in range(calls)], concurrency=calls
            )
        seconds = time.perf_counter() - started
        # Let the server finish what it is still working on before counting: every
        # handler started by now ends within its delay.
        await asyncio.sleep(delay + 0.5)
        per_marker = Counter(
            t for s in server.sessions.values() for t in s.tags if t.startswith(CREATE_TAG_PREFIX)
        )
        errors = [r.error for r in results if r.error is not None]
        unknown = sum(isinstance(e, CreateOutcomeUnknownError) for e in errors)
        return Outcome(
            client="exactly-once" if exactly_once else "untagged",
            delay=delay,
            timeout=timeout,
            calls=calls,
            returned=sum(r.ok for r in results),
            unknown=unknown,
            other_errors=sum(isinstance(e, DevinError) for e in errors) - unknown,
            sessions=server.sessions_created,
            duplicated_calls=sum(n > 1 for n in per_marker.values()),
            seconds=seconds,
        )


async def _run(cfg: Config) -> list[Outcome]:
    outcomes = []
    for delay, timeout in cfg.scenarios:
        for exactly_once in (True, False):
            outcomes.append(await _scenario(cfg.calls, delay, timeout, exactly_once=exactly_once))
    return outcomes


def run(cfg: Config) -> list[Outcome]:
    return asyncio.run(_run(cfg))


def report(outcomes: list[Outcome]) -> str:
    rows = []
    for o in outcomes:
        if o.client == "exactly-once":
            met = o.duplicated_calls == 0 and o.returned >= 0.9 * o.calls
            verdict = "met" if met else "MISSED"
        else:
            verdict = "baseline"
        rows.append(
            [
                f"{o.client}, server {o.delay:g}s / timeout {o.timeout:g}s",
                str(o.calls),
                str(o.sessions),
                str(o.duplicated_calls),
                f"{o.returned} ({o.returned / o.calls:.0%})",
                str(o.unknown),
                str(o.other_errors),
                f"{o.seconds:.1f}",
                verdict,
            ]
        )
    headers = [
        "scenario",
        "calls",
        "sessions",
        ">1 session",
        "returned",
        "outcome unknown",
        "other errors",
        "wall s",
        "targets",
    ]
    title = (
        "Exactly-once create vs a server slower than the timeout "
        "(targets: 0 calls with >1 session, >= 90% returned)"
    )
    return table(headers, rows, title=title)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(report(run(Config.quick() if args.quick else Config())))


if __name__ == "__main__":
    main()
