"""The demo behind ``make demo`` and ``devin-async demo``: fan out sessions against the fake.

By default it never touches the network: it starts ``FakeDevinServer`` on 127.0.0.1,
creates about twenty sessions with varied scripted timelines (most finish, some wait
for the user, one errors, one suspends), awaits them all concurrently through one
client, and shows their progress: on a terminal a table of every session (id, status,
elapsed, title) redrawn in place as they change and settle, otherwise one line per
session as it settles; then a summary (outcomes, wall time, HTTP requests).
``python -m devin_async.demo`` is ``devin-async demo`` (``--json`` prints JSON lines).

``--real`` targets the real API instead (needs ``DEVIN_API_KEY`` and ``DEVIN_ORG_ID``)
and creates only ``--count`` sessions (default 1): real sessions cost ACUs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any, Self, TextIO

import attrs

from ._cli.render import fit
from ._client import DevinClient
from ._events import Event, SessionChanged
from ._models import CreateSessionRequest, Session
from .testing import ERRORS, FakeDevinServer, Step

__all__ = ["Row", "main", "redraw", "render_frame", "render_row", "run", "summary_json"]

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
    detail = session.status_detail if session.status == "running" else None
    return str(detail or session.status)


def _state(session: Session) -> str:
    return f"{session.status}/{session.status_detail or '-'}"


def _line(elapsed: float, session: Session, title: str) -> str:
    prs = f"  PR {session.pull_requests[0].pr_url}" if session.pull_requests else ""
    return f"{elapsed:6.2f}s  {session.session_id[:18]:<18}  {_state(session):<26} {title}{prs}"


# --------------------------------------------------------------------------- live table


@attrs.define
class Row:
    """One session of the live table; times are monotonic seconds."""

    session_id: str
    title: str
    started: float
    state: str = "new/-"
    settled: float | None = None


def render_row(row: Row, now: float) -> str:
    """Render one table row: id, status/detail, elapsed (frozen once settled), title."""
    elapsed = (row.settled if row.settled is not None else now) - row.started
    return f"{row.session_id[:18]:<18}  {row.state:<26} {elapsed:6.1f}s  {row.title}"


def render_frame(
    rows: Sequence[Row], now: float, *, width: int | None = None, height: int | None = None
) -> list[str]:
    """Render the live table as lines: header, rows, and a count of settled sessions.

    Lines are cut to ``width`` (a wrapped line would break redrawing in place). When the
    rows do not fit in ``height`` lines, settled rows give way to pending ones and the
    rest are counted in an "and N more" line.
    """
    shown = list(rows)
    more = 0
    if height is not None and len(rows) > max(1, height - 3):
        room = max(1, height - 4)
        by_pending = sorted(range(len(rows)), key=lambda i: rows[i].settled is not None)
        shown = [rows[i] for i in sorted(by_pending[:room])]
        more = len(rows) - room
    done = sum(row.settled is not None for row in rows)
    lines = [f"{'SESSION':<18}  {'STATUS':<26} {'ELAPSED':>7}  TITLE"]
    lines += [render_row(row, now) for row in shown]
    if more:
        lines.append(f"... and {more} more")
    lines.append(f"{done}/{len(rows)} settled")
    return [fit(line, width) for line in lines]


def redraw(lines: Sequence[str], previous: int) -> str:
    """Return the ANSI text that replaces the ``previous`` lines drawn with ``lines``."""
    up = f"\x1b[{previous}A\r" if previous else ""
    return up + "".join(f"\x1b[2K{line}\n" for line in lines) + "\x1b[J"


# --------------------------------------------------------------------------- views


class _View:
    """How progress is shown; this base prints one line per settled session."""

    def __init__(self) -> None:
        self.titles: dict[str, str] = {}

    def begin(self, created: Sequence[Session], prompts: Sequence[str], seconds: float) -> None:
        self.titles = {s.session_id: p for s, p in zip(created, prompts, strict=True)}
        print(f"created {len(created)} sessions in {seconds:.2f}s; waiting...\n", flush=True)

    def change(self, session_id: str, state: str) -> None:
        """Take a new state (``status/detail``) of a session."""

    def hook(self, event: Event) -> None:
        """The client's event hook: a polled session changed state."""
        if isinstance(event, SessionChanged):
            self.change(event.session_id, f"{event.status}/{event.status_detail or '-'}")

    def settle(self, session: Session, elapsed: float) -> None:
        print(_line(elapsed, session, self.titles[session.session_id]), flush=True)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    def summary(self, settled: Sequence[Session], wall: float, requests: int | None) -> None:
        print(_summary(settled, wall, requests), flush=True)


class _Table(_View):
    """A table of every session, redrawn in place (stdout is a terminal)."""

    def __init__(self, out: TextIO, interval: float = 0.1) -> None:
        super().__init__()
        self.rows: dict[str, Row] = {}
        self._out = out
        self._interval = interval
        self._height = 0
        self._ticker: asyncio.Task[None] | None = None

    def begin(self, created: Sequence[Session], prompts: Sequence[str], seconds: float) -> None:
        super().begin(created, prompts, seconds)
        now = time.monotonic()
        for session, prompt in zip(created, prompts, strict=True):
            self.rows[session.session_id] = Row(session.session_id, prompt, now, _state(session))

    def change(self, session_id: str, state: str) -> None:
        row = self.rows.get(session_id)
        if row is not None and row.settled is None:
            row.state = state

    def settle(self, session: Session, elapsed: float) -> None:
        row = self.rows[session.session_id]
        row.state, row.settled = _state(session), time.monotonic()

    def draw(self) -> None:
        size = shutil.get_terminal_size()
        lines = render_frame(
            list(self.rows.values()), time.monotonic(), width=size.columns - 1, height=size.lines
        )
        self._out.write(redraw(lines, self._height))
        self._out.flush()
        self._height = len(lines)

    async def _tick(self) -> None:
        while True:
            self.draw()
            await asyncio.sleep(self._interval)

    async def __aenter__(self) -> Self:
        self._ticker = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._ticker is not None
        self._ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._ticker
        self.draw()  # the final frame stays on screen


class _JsonLines(_View):
    """One JSON document per line: each settled session, then the summary."""

    def begin(self, created: Sequence[Session], prompts: Sequence[str], seconds: float) -> None:
        self.titles = {s.session_id: p for s, p in zip(created, prompts, strict=True)}

    def settle(self, session: Session, elapsed: float) -> None:
        title = self.titles[session.session_id]
        document = {"event": "settled", "elapsed": round(elapsed, 3), "title": title}
        print(json.dumps({**document, "session": attrs.asdict(session)}), flush=True)

    def summary(self, settled: Sequence[Session], wall: float, requests: int | None) -> None:
        print(json.dumps({"event": "summary", **summary_json(settled, wall, requests)}))


def _view(json_lines: bool, live: bool | None) -> _View:
    if json_lines:
        return _JsonLines()
    if live if live is not None else sys.stdout.isatty():
        return _Table(sys.stdout)
    return _View()


# --------------------------------------------------------------------------- the run


async def _fan_out(
    client: DevinClient, prompts: Sequence[str], timeout: float, view: _View
) -> list[Session]:
    """Start a session per prompt, then show each as it settles, through the fan-out helpers.

    ``create_sessions`` and ``as_completed`` own their tasks and waits, so an interrupt
    (or any error) ends them all at once, without a pending task left behind.
    """
    start = time.monotonic()
    requests = [CreateSessionRequest(prompt=p, tags=["demo"]) for p in prompts]
    results = await client.create_sessions(requests)
    created = [r.session for r in results if r.session is not None]
    failed = [r.error for r in results if r.error is not None]
    if not created and failed:
        raise failed[0]  # nothing started: report why, as one line with its exit code
    for error in failed:
        print(f"could not start a session: {error}", file=sys.stderr, flush=True)
    titles = [p for p, r in zip(prompts, results, strict=True) if r.session is not None]
    view.begin(created, titles, time.monotonic() - start)
    settled = []
    waits = client.as_completed([s.session_id for s in created], timeout=timeout)
    async with view, waits:
        async for result in waits:
            session = result.unwrap()
            settled.append(session)
            view.settle(session, time.monotonic() - start)
    return settled


def summary_json(settled: Sequence[Session], wall: float, requests: int | None) -> dict[str, Any]:
    """Return the summary as a JSON-ready dict: outcomes, wall time, HTTP requests."""
    counts = Counter(_outcome(s) for s in settled)
    return {
        "settled": len(settled),
        "outcomes": dict(counts.most_common()),
        "wall_time": round(wall, 3),
        "http_requests": requests,
    }


def _summary(settled: Sequence[Session], wall: float, requests: int | None) -> str:
    summary = summary_json(settled, wall, requests)
    parts = ", ".join(f"{n} {name}" for name, n in summary["outcomes"].items())
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


async def run(
    count: int = 20,
    *,
    real: bool = False,
    seed: int = 7,
    json_lines: bool = False,
    live: bool | None = None,
    org_id: str | None = None,
    base_url: str | None = None,
) -> int:
    """Run the demo and return a process exit code.

    Args:
        count: sessions to start.
        real: use the real API (``DEVIN_API_KEY`` and an org id needed); else the fake.
        seed: seed of the fake timelines.
        json_lines: print JSON lines (each settled session, then the summary).
        live: redraw a table in place; default: when stdout is a terminal.
        org_id: the organization for ``real`` (default ``$DEVIN_ORG_ID``).
        base_url: the API for ``real`` (default ``$DEVIN_BASE_URL`` or the real API).
    """
    rng = random.Random(seed)
    prompts = [f"{_TASKS[i % len(_TASKS)]} (#{i + 1})" for i in range(count)]
    view = _view(json_lines, live)
    started = time.monotonic()
    if real:
        org_id = org_id or os.environ.get("DEVIN_ORG_ID")
        if not os.environ.get("DEVIN_API_KEY") or not org_id:
            print("--real needs DEVIN_API_KEY and DEVIN_ORG_ID in the environment", file=sys.stderr)
            return 2
        async with DevinClient(
            org_id=org_id,
            base_url=base_url,
            poll_interval=10.0,
            max_poll_interval=60.0,
            hooks=[view.hook],
        ) as client:
            settled = await _fan_out(client, prompts, 3600.0, view)
        view.summary(settled, time.monotonic() - started, None)
        return 0

    async with FakeDevinServer(api_key="cog_demo_key", org_id="org-demo", seed=seed) as server:
        timelines = iter([_timeline(i, rng) for i in range(count)])
        server.timeline_factory = lambda body: next(timelines, ERRORS)
        if not json_lines:
            print(f"fake Devin API on {server.url} (no network needed)")
        async with DevinClient(
            api_key=server.api_key,
            org_id=server.org_id,
            base_url=server.url,
            poll_interval=0.25,
            max_poll_interval=1.0,
            hooks=[view.hook],
        ) as client:
            settled = await _fan_out(client, prompts, 60.0, view)
        view.summary(settled, time.monotonic() - started, server.count())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``devin-async demo`` with ``argv`` (default: the process arguments)."""
    from .cli import main as cli_main

    return cli_main(["demo", *(sys.argv[1:] if argv is None else argv)])
