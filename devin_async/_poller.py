"""The client-wide poller: every pending wait of a client is refreshed in shared ticks.

One background task per client (started by the first waiter, ended with the last)
polls all waited-for sessions together. A lone session is read with GET; several are
read through the list endpoint (``session_ids``, up to 200 per request, cursor pages
followed), so 1,000 waits cost ceil(1000/200) = 5 requests per tick instead of 1,000.
If the list endpoint is not usable (no org, or it answers a 4xx) the poller falls back
to one GET per session. Two waits on one id share its polls.

A waiter is a future plus a little bookkeeping; deadlines and cancellation belong to
whoever awaits the future, which unsubscribes when it stops waiting. Ticks are timed with
the event loop's own timers (no task per nap): the delay grows with the jittered
backoff of ``_retry.PollBackoff``, resets when any state changes, and never undercuts a
``Retry-After``. A newcomer shortens a long nap to the first poll interval.

A ``Retry-After`` follows the rule of requests (``RetryPolicy.max_retry_after``): up to
that bound it delays the next tick; beyond it, the failure ends the waits it concerns at
once instead of holding every wait of the client for the server's delay.

List endpoint: https://docs.devin.ai/sdk/api/DevinApi/interfaces/SessionsQueryParams.md
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from ._errors import APIStatusError, AwaitTimeoutError, DevinError
from ._models import Session
from ._polling import Predicate, is_transient, wait_timed_out
from ._retry import PollBackoff, RetryPolicy, server_delay

__all__ = ["LIST_BATCH", "MAX_QUERY_BYTES", "Poller", "Waiter", "batches"]

log = logging.getLogger("devin_async")

LIST_BATCH = 200  # the list endpoint's largest page ("first", 1-200)
# Each id travels as "session_ids=<id>&" in the URL; front ends commonly refuse request
# lines past 8-16 KiB, so a batch also stops at this many bytes of ids.
MAX_QUERY_BYTES = 12_000
# A Retry-After beyond this many seconds ends the waits it concerns (the request rule).
MAX_RETRY_AFTER = RetryPolicy().max_retry_after


def batches(
    ids: Sequence[str], size: int = LIST_BATCH, budget: int = MAX_QUERY_BYTES
) -> list[list[str]]:
    """Split ids into list calls of at most ``size`` ids and ``budget`` query bytes."""
    out: list[list[str]] = []
    batch: list[str] = []
    used = 0
    for session_id in ids:
        cost = len("session_ids=&") + len(session_id)
        if batch and (len(batch) == size or used + cost > budget):
            out.append(batch)
            batch, used = [], 0
        batch.append(session_id)
        used += cost
    if batch:
        out.append(batch)
    return out


FetchOne = Callable[[str], Awaitable[Session]]
FetchMany = Callable[[Sequence[str]], Awaitable[list[Session]]]


class Waiter:
    """One pending wait: its predicate, its future, and what it has seen so far."""

    __slots__ = (
        "future",
        "last",
        "last_error",
        "max_poll_interval",
        "on_change",
        "poll_interval",
        "polls",
        "session_id",
        "until",
    )

    def __init__(
        self,
        session_id: str,
        until: Predicate,
        on_change: Callable[[Session], object] | None,
        poll_interval: float,
        max_poll_interval: float,
    ) -> None:
        self.session_id = session_id
        self.until = until
        self.on_change = on_change
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.future: asyncio.Future[Session] = asyncio.get_running_loop().create_future()
        self.last: Session | None = None
        self.last_error: BaseException | None = None
        self.polls = 0

    def observe(self, session: Session) -> bool:
        """Record one poll result; return True if the state changed."""
        self.polls += 1
        last, self.last = self.last, session
        changed = last is None or (last.status, last.status_detail) != (
            session.status,
            session.status_detail,
        )
        if self.future.done():
            return changed
        try:
            if changed and self.on_change is not None:
                self.on_change(session)
            if self.until(session):
                self.future.set_result(session)
        except Exception as exc:  # the caller's predicate or callback failed: their error
            self.future.set_exception(exc)
        return changed

    def fail(self, exc: BaseException, *, fatal: bool) -> None:
        """Record a failed poll; a ``fatal`` one ends the wait with ``exc``."""
        self.polls += 1
        self.last_error = exc
        if fatal:
            self.end(exc)

    def end(self, exc: BaseException) -> None:
        """End the wait with ``exc`` unless it has already ended."""
        if not self.future.done():
            self.future.set_exception(exc)

    def timed_out(self, timeout: float, elapsed: float) -> AwaitTimeoutError:
        """Return the error of this wait's deadline passing."""
        return wait_timed_out(
            self.session_id,
            timeout,
            session=self.last,
            elapsed=elapsed,
            polls=self.polls,
            last_error=self.last_error,
        )


class Poller:
    """Polls every subscribed session in shared ticks.

    Args:
        fetch_one: one GET attempt for a session id.
        fetch_many: one list call for up to LIST_BATCH ids (all pages), or None when
            the list endpoint cannot be used (enterprise scope without an org).
        on_change: told of each session whose (status, status_detail) changed, with
            the state its oldest waiter saw before (None at first).
    """

    def __init__(
        self,
        fetch_one: FetchOne,
        fetch_many: FetchMany | None,
        on_change: Callable[[Session, Session | None], object] | None = None,
    ) -> None:
        self._fetch_one = fetch_one
        self._fetch_many = fetch_many
        self._on_change = on_change
        self._waiters: dict[str, list[Waiter]] = {}
        self._task: asyncio.Task[None] | None = None
        self._finishing: set[asyncio.Task[None]] = set()
        # Newcomers leave their smallest poll interval in ``_joined`` and wake a nap.
        self._wake: asyncio.Future[None] | None = None
        self._joined: float | None = None
        self.ticks = 0

    @property
    def pending(self) -> int:
        """Number of waiters subscribed."""
        return sum(len(ws) for ws in self._waiters.values())

    def subscribe(
        self,
        session_id: str,
        until: Predicate,
        *,
        on_change: Callable[[Session], object] | None = None,
        poll_interval: float,
        max_poll_interval: float,
    ) -> Waiter:
        """Add a waiter; the next tick polls its session."""
        waiter = Waiter(session_id, until, on_change, poll_interval, max_poll_interval)
        self._waiters.setdefault(session_id, []).append(waiter)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="devin_async poller")
        else:  # a newcomer need not wait out a long backoff
            self._joined = min(poll_interval, self._joined or poll_interval)
            if self._wake is not None and not self._wake.done():
                self._wake.set_result(None)
        return waiter

    def unsubscribe(self, waiter: Waiter) -> None:
        """Remove a waiter; the last one out stops the poller task."""
        waiters = self._waiters.get(waiter.session_id)
        if waiters is not None and waiter in waiters:
            waiters.remove(waiter)
            if not waiters:
                del self._waiters[waiter.session_id]
        if not self._waiters and self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            self._finishing.add(task)
            task.add_done_callback(self._finishing.discard)

    async def stopped(self) -> None:
        """Wait until every poller task stopped by a last unsubscribe has ended."""
        if self._finishing:
            # asyncio.wait neither raises the tasks' CancelledError nor hides our own.
            await asyncio.wait(set(self._finishing))

    def close(self, exc: BaseException) -> None:
        """End every wait with ``exc`` and stop polling (the client is closing)."""
        for waiters in list(self._waiters.values()):
            for waiter in list(waiters):
                waiter.end(exc)
                self.unsubscribe(waiter)

    # ------------------------------------------------------------------ the loop

    async def _run(self) -> None:
        backoff: PollBackoff | None = None
        params: tuple[float, float] | None = None
        try:
            while self._waiters:
                self.ticks += 1
                changed, floor = await self._tick()
                waiters = [w for ws in self._waiters.values() for w in ws]
                if not waiters:
                    return
                wanted = (
                    min(w.poll_interval for w in waiters),
                    min(w.max_poll_interval for w in waiters),
                )
                if backoff is None or wanted != params:
                    backoff, params = PollBackoff(*wanted), wanted
                elif changed:
                    backoff.reset()
                await self._nap(backoff.next_delay(), first=wanted[0], floor=floor)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a bug here must reach the waiters, not vanish
            for ws in list(self._waiters.values()):
                for w in ws:
                    w.end(exc)
            raise
        finally:
            if self._task is asyncio.current_task():
                self._task = None

    async def _nap(self, delay: float, *, first: float, floor: float) -> None:
        """Sleep until the next tick: ``max(delay, floor)`` seconds from now.

        A newcomer with poll interval ``p`` brings the tick forward to ``p`` (at most
        ``first``) after it joined, but never before ``floor`` (a server's Retry-After)
        and never later than the tick was already due.
        """
        loop = asyncio.get_running_loop()
        start = loop.time()
        due = start + max(delay, floor)
        if self._joined is None:
            wake = self._wake = loop.create_future()
            timer = loop.call_at(due, _resolve, wake)
            try:
                await wake
            finally:
                timer.cancel()
                self._wake = None
        joined, self._joined = self._joined, None
        if joined is None:
            return
        now = loop.time()
        sooner = min(due, max(now + min(first, joined), start + floor))
        if sooner > now:
            await asyncio.sleep(sooner - now)

    async def _tick(self) -> tuple[bool, float]:
        """Poll every subscribed session once; return (any state changed, delay floor)."""
        ids = list(self._waiters)
        if len(ids) > 1 and self._fetch_many is not None:
            return await self._tick_list(ids)
        return await self._get_each(ids)

    async def _get_each(self, ids: list[str]) -> tuple[bool, float]:
        results = await asyncio.gather(*(self._fetch_one(i) for i in ids), return_exceptions=True)
        changed, floor = False, 0.0
        for session_id, result in zip(ids, results, strict=True):
            if isinstance(result, Session):
                changed |= self._deliver(session_id, result)
            else:
                floor = max(floor, self._failed([session_id], result))
        return changed, floor

    async def _tick_list(self, ids: list[str]) -> tuple[bool, float]:
        assert self._fetch_many is not None
        chunks = batches(ids)
        results = await asyncio.gather(
            *(self._fetch_many(b) for b in chunks), return_exceptions=True
        )
        changed, floor = False, 0.0
        missing: list[str] = []  # read one by one: refused batches, ids not in the list
        for batch, result in zip(chunks, results, strict=True):
            if isinstance(result, BaseException):
                if self._list_refused(result):
                    missing.extend(batch)
                else:
                    floor = max(floor, self._failed(batch, result))
                continue
            seen = {s.session_id: s for s in result}
            for session_id in batch:
                session = seen.get(session_id)
                if session is None:
                    missing.append(session_id)
                else:
                    changed |= self._deliver(session_id, session)
        if missing:
            more_changed, more_floor = await self._get_each(missing)
            changed, floor = changed or more_changed, max(floor, more_floor)
        return changed, floor

    def _list_refused(self, exc: BaseException) -> bool:
        if (
            isinstance(exc, APIStatusError)
            and 400 <= exc.status_code < 500
            and exc.status_code not in (408, 429)
        ):
            log.debug(
                "list endpoint refused (HTTP %s); polling sessions one GET each",
                exc.status_code,
            )
            self._fetch_many = None
            return True
        return False

    def _deliver(self, session_id: str, session: Session) -> bool:
        waiters = self._waiters.get(session_id, ())
        if not waiters:
            return False
        before = waiters[0].last
        changed = False
        for waiter in waiters:
            changed |= waiter.observe(session)
        if (
            self._on_change is not None
            and changed
            and (before is None or (before.status, before.status_detail) != _key(session))
        ):
            self._on_change(session, before)
        return changed

    def _failed(self, ids: Sequence[str], exc: BaseException) -> float:
        """Hand a fatal error to the waiters of ``ids``; return the delay a transient asks.

        A transient failure whose Retry-After exceeds ``MAX_RETRY_AFTER`` is fatal, as it
        is for a request: those waits end at once with it (a RateLimitError's
        ``.retry_after`` says how long the server asked for), and it delays no other wait.
        """
        transient = isinstance(exc, DevinError) and is_transient(exc)
        delay = (server_delay(exc) or 0.0) if transient else 0.0
        if delay > MAX_RETRY_AFTER:
            transient = False
            log.debug(
                "poll of %d session(s) failed (%s) asking for %.0fs, over %.0fs; "
                "ending their waits",
                len(ids),
                exc,
                delay,
                MAX_RETRY_AFTER,
            )
        for session_id in ids:
            for waiter in self._waiters.get(session_id, ()):
                waiter.fail(exc, fatal=not transient)
        if not transient:
            return 0.0
        log.debug("poll of %d session(s) failed (%s); will retry", len(ids), exc)
        return delay


def _key(session: Session) -> tuple[object, object]:
    return session.status, session.status_detail


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
