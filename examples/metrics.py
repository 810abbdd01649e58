"""Feed the client's events into metrics: request counts by status, latency, retries.

A hook is any callable taking an event; it runs inline, so it only counts. A real
service would hand these to Prometheus or StatsD counters instead of a Counter.
Runs against the embedded fake server (with a few injected faults) unless
DEVIN_API_KEY is set.

    python examples/metrics.py
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import Counter

from devin_async import (
    DevinClient,
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


async def main() -> None:
    metrics = Metrics()
    async with contextlib.AsyncExitStack() as stack:
        if os.environ.get("DEVIN_API_KEY"):
            client = await stack.enter_async_context(DevinClient(hooks=[metrics]))
        else:
            server = await stack.enter_async_context(FakeDevinServer())
            server.inject("status", status=503, times=3, route="list_sessions")
            server.inject("rate_limit", retry_after="1", times=1, route="create_session")
            client = await stack.enter_async_context(
                DevinClient(
                    server.api_key,
                    org_id=server.org_id,
                    base_url=server.url,
                    poll_interval=0.1,
                    max_poll_interval=0.5,
                    hooks=[metrics],
                )
            )
        created = await client.create_sessions([f"Task {i}" for i in range(10)])
        await client.await_sessions([r.unwrap().session_id for r in created], timeout=3600)
    print(metrics.report())


if __name__ == "__main__":
    asyncio.run(main())
