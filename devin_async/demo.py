"""The demo behind ``make demo``: fan out sessions against the embedded fake server.

By default it never touches the network: it starts ``FakeDevinServer`` on 127.0.0.1,
creates about twenty sessions with varied scripted timelines (most finish, some wait
for the user, one errors, one suspends), awaits them all concurrently through one
client, prints a line per session as it settles, and a summary.

``--real`` targets the real API instead (needs ``DEVIN_API_KEY`` and ``DEVIN_ORG_ID``)
and creates only ``--count`` sessions (default 1): real sessions cost ACUs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Sequence

from ._client import DevinClient
from ._errors import DevinError
from ._models import Session
from .testing import ERRORS, FakeDevinServer, Step

__all__ = ["main", "run"]

_TASKS = (
    "Fix the flaky checkout test",
    "Upgrade the CI image to Python 3.13",
    "Add type hints to the billing module",
    "Write unit tests for the rate limiter",
    "Refactor the settings loader",
    "Document the webhook payloads",
    "Migrate the cron jobs to the scheduler",
    "Remove the dead feature flags",
    "Speed up the search query",
    "Review the open dependency bumps",
)


def _timeline(index: int, rng: random.Random) -> list[Step]:
    """Return a scripted timeline: most finish, some wait for the user, one errors/suspends."""

    def hold() -> float:
        return round(rng.uniform(0.2, 1.2), 2)

    start = [Step("claimed", seconds=hold()), Step("running", "working", seconds=hold())]
    if index == 3:
        return [*start, Step("error", "error", message="The VM ran out of disk space.")]
    if index == 7:
        return [*start, Step("suspended", "inactivity")]
    if index % 5 == 1:
        return [*start, Step("running", "waiting_for_user", message="Which branch should I use?")]
    return [
        *start,
        Step("running", "working", seconds=hold()),
        Step(
            "running",
            "finished",
            pull_request=f"https://github.com/acme/app/pull/{100 + index}",
            structured_output={"summary": "done"},
        ),
    ]


def _outcome(session: Session) -> str:
    return str(session.status_detail if session.status == "running" else session.status)


def _line(elapsed: float, session: Session, title: str) -> str:
    state = f"{session.status}/{session.status_detail or '-'}"
    prs = f"  PR {session.pull_requests[0].pr_url}" if session.pull_requests else ""
    return f"{elapsed:6.2f}s  {session.session_id[:18]:<18}  {state:<26} {title}{prs}"


async def _fan_out(client: DevinClient, prompts: Sequence[str], timeout: float) -> list[Session]:
    start = time.monotonic()
    created = await asyncio.gather(*(client.create_session(p, tags=["demo"]) for p in prompts))
    print(f"created {len(created)} sessions in {time.monotonic() - start:.2f}s; waiting...\n")
    titles = {s.session_id: p for s, p in zip(created, prompts, strict=True)}
    waits = [client.await_session(s.session_id, timeout=timeout) for s in created]
    settled = []
    for next_done in asyncio.as_completed(waits):
        session = await next_done
        settled.append(session)
        print(_line(time.monotonic() - start, session, titles[session.session_id]))
    return settled


def _summary(settled: Sequence[Session], wall: float, requests: int | None) -> str:
    counts = Counter(_outcome(s) for s in settled)
    parts = ", ".join(f"{n} {name}" for name, n in counts.most_common())
    lines = [
        "",
        f"settled: {len(settled)} sessions ({parts})",
        f"wall time: {wall:.2f}s",
    ]
    if requests is not None:
        lines.append(
            f"HTTP requests: {requests} ({requests / max(1, len(settled)):.1f} per session)"
        )
    return "\n".join(lines)


async def run(count: int = 20, *, real: bool = False, seed: int = 7) -> int:
    """Run the demo and return a process exit code."""
    rng = random.Random(seed)
    prompts = [f"{_TASKS[i % len(_TASKS)]} (#{i + 1})" for i in range(count)]
    started = time.monotonic()
    if real:
        if not os.environ.get("DEVIN_API_KEY") or not os.environ.get("DEVIN_ORG_ID"):
            print("--real needs DEVIN_API_KEY and DEVIN_ORG_ID in the environment", file=sys.stderr)
            return 2
        async with DevinClient(poll_interval=10.0, max_poll_interval=60.0) as client:
            settled = await _fan_out(client, prompts, timeout=3600.0)
        print(_summary(settled, time.monotonic() - started, None))
        return 0

    async with FakeDevinServer(api_key="cog_demo_key", org_id="org-demo", seed=seed) as server:
        timelines = iter([_timeline(i, rng) for i in range(count)])
        server.timeline_factory = lambda body: next(timelines, ERRORS)
        print(f"fake Devin API on {server.url} (no network needed)")
        async with DevinClient(
            api_key=server.api_key,
            org_id=server.org_id,
            base_url=server.url,
            poll_interval=0.25,
            max_poll_interval=1.0,
        ) as client:
            settled = await _fan_out(client, prompts, timeout=60.0)
        print(_summary(settled, time.monotonic() - started, server.count()))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and run the demo."""
    parser = argparse.ArgumentParser(prog="python -m devin_async.demo", description=__doc__)
    parser.add_argument("--real", action="store_true", help="use the real Devin API")
    parser.add_argument("--count", type=int, default=None, help="sessions to start")
    parser.add_argument("--seed", type=int, default=7, help="seed of the fake timelines")
    args = parser.parse_args(argv)
    count = args.count if args.count is not None else (1 if args.real else 20)
    if count < 1:
        parser.error("--count must be at least 1")
    try:
        return asyncio.run(run(count, real=args.real, seed=args.seed))
    except DevinError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
