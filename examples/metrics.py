"""Feed the client's events into metrics: request counts by status, latency, retries.

A hook is any callable taking an event; it runs inline, so it only counts. A real
service would hand these to Prometheus or StatsD counters instead of a Counter.
Runs against the embedded fake server (with a few injected faults); ``--real`` uses the
real API and starts 3 real sessions unless ``--count`` says otherwise.

    python examples/metrics.py [--real] [--count N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections import Counter

from _backend import add_real_option, open_client

from devin_async import (
    Event,
    RateLimitPaused,
    ResponseReceived,
    RetryScheduled,
    SessionChanged,
    WaitFinished,
)
from devin_async.testing import FakeDevinServer


class Metrics:
    """Counters and a latency total, updated from the client's events."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.latency = 0.0

    def __call__(self, event: Event) -> None:
        match event:
            case ResponseReceived(status=status, elapsed=elapsed):
                self.counts[f"http_responses_total{{status={status}}}"] += 1
                self.latency += elapsed
            case RetryScheduled(reason=reason):
                self.counts[f"retries_total{{reason={reason!r}}}"] += 1
            case RateLimitPaused():
                self.counts["rate_limit_pauses_total"] += 1
            case SessionChanged(status=status, status_detail=detail):
                self.counts[f"session_changes_total{{state={status}/{detail}}}"] += 1
            case WaitFinished(outcome=outcome):
                self.counts[f"waits_finished_total{{outcome={outcome}}}"] += 1

    def report(self) -> str:
        responses = sum(n for k, n in self.counts.items() if k.startswith("http_"))
        lines = [f"{name} {value}" for name, value in sorted(self.counts.items())]
        lines.append(f"http_latency_seconds_avg {self.latency / max(1, responses):.4f}")
        return "\n".join(lines)


def _faults(server: FakeDevinServer) -> None:
    server.inject("status", status=503, times=3, route="list_sessions")
    server.inject("rate_limit", retry_after="1", times=1, route="create_session")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_real_option(parser)
    parser.add_argument("--count", type=int, help="sessions to start (10 on the fake, 3 real)")
    args = parser.parse_args()
    count = args.count or (3 if args.real else 10)
    metrics = Metrics()
    async with contextlib.AsyncExitStack() as stack:
        client = await open_client(
            stack, real=args.real, starts=f"{count} sessions", setup=_faults, hooks=[metrics]
        )
        created = await client.create_sessions([f"Task {i}" for i in range(count)])
        await client.await_sessions([r.unwrap().session_id for r in created], timeout=3600)
    print(metrics.report())


if __name__ == "__main__":
    asyncio.run(main())
