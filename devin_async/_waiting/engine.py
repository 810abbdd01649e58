"""The client-wide waiting engine: every wait of a client is one subscription here.

One background task per client (started by the first wait, ended with the last) reads
every waited-for session in shared ticks, through a ``Source`` (``sources.py``): a lone
session with GET, many through the list endpoint, 200 per request. It is the one place
that decides when to poll, ends waits at their deadlines, and builds their
``AwaitTimeoutError``; the waits themselves (``views.py``, ``follow.py``) only read
their futures and streams.

Time is the client's injected ``clock`` and ``sleep`` alone, so any wait runs on
virtual time in tests. Between ticks the engine sleeps until the next tick or the
nearest deadline, whichever comes first. The delay grows by ``poll_delay`` while nothing
changes and starts again when something does; a server's ``Retry-After`` delays the
next tick, or, above ``max_retry_after``, ends the waits it concerns at once (the rule
of requests). A newcomer brings a long nap forward to its own poll interval. A tick's
requests never outlast the nearest deadline of the waits they serve.

A session whose state and ``updated_at`` did not change since the last tick is not
decoded again: the source compares each row's raw key with the state its waits saw
(``seen``), and hands over only the rows that changed (``take``), as pages arrive.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import Counter
from collections.abc import Callable, Collection, Iterator

from .._errors import DevinError
from .._models import Session
from .._retry import Sleep, poll_delay, poll_retry_delay
from .messages import MessageReader, ReadPage, retry_messages
from .rows import Row, RowKey, shared
from .settle import Wait, state_key, wait_timed_out
from .sources import Source
from .waits import Deadlines, Entry, Replies, Waiter, outcome

__all__ = ["Engine", "Entry", "Waiter"]

log = logging.getLogger("devin_async")

Structure = Callable[[Row], Session]
# Told of each session whose (status, status_detail) changed, with its state before.
OnChange = Callable[[Session, Session | None], object]
# Told once when a wait ends: the waiter and its outcome.
OnFinish = Callable[["Waiter", str], object]

MIN_TIMEOUT = 0.001  # seconds: a request timeout is never cut to nothing


class Engine:
    """Polls every subscribed session in shared ticks, and ends waits at their deadlines.

    Args:
        source: reads rows of sessions by id (``sources.IdsSource`` or a strategy).
        structure: builds a ``Session`` from a row (only for rows that changed).
        read_messages: reads one page of a session's messages (for ``since`` and bots).
        clock, sleep: the client's time.
        max_retry_after: a ``Retry-After`` above this many seconds ends the waits it
            concerns with the failure that carried it.
        on_change: told of each (status, status_detail) change of a session.
        on_finish: told once of each wait that ends, with its outcome ("settled",
            "timeout", "error" or "cancelled").
    """

    def __init__(
        self,
        source: Source,
        structure: Structure,
        read_messages: ReadPage,
        *,
        clock: Callable[[], float],
        sleep: Sleep,
        max_retry_after: float,
        on_change: OnChange | None = None,
        on_finish: OnFinish | None = None,
    ) -> None:
        self.source = source
        self._structure = structure
        self._messages = MessageReader(read_messages, clock)
        self._clock = clock
        self._sleep = sleep
        self._max_retry_after = max_retry_after
        self._on_change = on_change
        self._on_finish = on_finish
        self._entries: dict[str, Entry] = {}
        self._deadlines = Deadlines()
        self._intervals: Counter[tuple[float, float]] = Counter()
        self._replies = Replies()
        self._task: asyncio.Task[None] | None = None
        self._finishing: set[asyncio.Task[None]] = set()
        self._wake: asyncio.Future[None] | None = None
        self._due = 0.0  # when the next tick starts (clock seconds)
        self._soonest = math.inf  # when the newcomers since the last tick began want one
        self._newcomers: list[Waiter] = []  # not yet told of a state
        # Waits that read messages even when their row did not change: after a reply
        # (until it is seen acted on), or after a failed read.
        self._asking: set[Waiter] = set()
        self._floor_until = 0.0  # no tick before this: the server's Retry-After
        self._quiet = 0  # ticks in a row that changed nothing
        self._changed: list[Entry] = []  # during a tick: the entries whose row changed
        self._floor = 0.0  # during a tick: the delay its failures ask for
        self.ticks = 0

    @property
    def pending(self) -> int:
        """Number of waits subscribed."""
        return sum(len(entry.waiters) for entry in self._entries.values())

    # ------------------------------------------------------------------ subscriptions

    def subscribe(
        self,
        session_id: str,
        wait: Wait,
        *,
        on_change: Callable[[Session], object] | None = None,
        since: Session | None = None,
        factory: Callable[..., Waiter] = Waiter,
        start: float | None = None,
    ) -> Waiter:
        """Add a wait; it is polled at once if it is the first, else within its interval.

        ``start`` (default: now) is when its timeout began: the waits of one call share it.
        """
        now = self._clock() if start is None else start
        entry = self._entries.get(session_id)
        if entry is None:
            entry = self._entries[session_id] = Entry(session_id)
        waiter: Waiter = factory(entry, wait, now, on_change, since)
        waiter.first_tick = self.ticks
        entry.waiters.append(waiter)
        self._deadlines.add(waiter)
        self._intervals[wait.poll_interval, wait.max_poll_interval] += 1
        self._newcomers.append(waiter)
        if waiter.since is not None:  # after a reply (given, or saved in a follower's state)
            self._asking.add(waiter)
        if self._task is None:
            self._due, self._quiet = now, 0
            self._task = asyncio.create_task(self._run(), name="devin_async waits")
        else:  # a newcomer need not wait out a long backoff, even one set mid-tick
            self._soonest = min(self._soonest, now + wait.poll_interval)
            self._due = min(self._due, max(self._soonest, self._floor_until))
            self._quiet = 0
            self._nudge()
        return waiter

    def unsubscribe(self, waiter: Waiter) -> None:
        """Remove a wait (it has ended, or its caller stopped); the last one stops the task."""
        entry = self._entries.get(waiter.session_id)
        if entry is None or waiter not in entry.waiters:
            return
        entry.waiters.remove(waiter)
        self._asking.discard(waiter)
        if not entry.waiters:
            del self._entries[entry.session_id]
            self.source.forget(entry.session_id)
        pair = (waiter.wait.poll_interval, waiter.wait.max_poll_interval)
        self._intervals[pair] -= 1
        if not self._intervals[pair]:
            del self._intervals[pair]
        if self._on_finish is not None:
            self._on_finish(waiter, outcome(waiter.future))
        if not self._entries:
            self._deadlines.clear()
            self._newcomers.clear()
            if self._task is not None:
                task, self._task = self._task, None
                task.cancel()
                self._finishing.add(task)
                task.add_done_callback(self._finishing.discard)

    def now(self) -> float:
        """The engine's clock."""
        return self._clock()

    async def pause(self, delay: float) -> None:
        """Sleep ``delay`` seconds with the client's sleep (the clock ``now`` reads)."""
        await self._sleep(delay)

    def polls(self, waiter: Waiter) -> int:
        """How many ticks have polled ``waiter``'s session since it subscribed."""
        return self.ticks - waiter.first_tick

    def elapsed(self, waiter: Waiter) -> float:
        return self._clock() - waiter.start

    def replied(self, session_id: str, snapshot: Session) -> None:
        """A message was just sent to ``session_id``: its waits must see it move on.

        Followers of the session (and those that start following it later) do not
        settle on ``snapshot``'s state until the session shows it acted on the reply.
        """
        self._replies.add(session_id, snapshot)
        entry = self._entries.get(session_id)
        for waiter in entry.waiters if entry is not None else ():
            if waiter.takes_replies():
                waiter.after_reply(state_key(snapshot), snapshot.updated_at)
                self._asking.add(waiter)

    def take_reply(self, session_id: str) -> Session | None:
        """Return (and forget) the snapshot of a recent reply to ``session_id``, if any."""
        return self._replies.take(session_id)

    async def stopped(self) -> None:
        """Wait until every task stopped by a last unsubscribe has ended."""
        if self._finishing:
            # asyncio.wait neither raises the tasks' CancelledError nor hides our own.
            await asyncio.wait(set(self._finishing))

    def close(self, exc: BaseException) -> None:
        """End every wait with ``exc`` and stop polling (the client is closing)."""
        for waiter in list(self._waiters()):
            waiter.end(exc)
            self.unsubscribe(waiter)

    def _waiters(self) -> Iterator[Waiter]:
        for entry in self._entries.values():
            yield from entry.waiters

    def _nudge(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def _finish(self, waiter: Waiter) -> None:
        """Unsubscribe a wait whose future is done (it is never polled again)."""
        self.unsubscribe(waiter)

    # ------------------------------------------------------------------ the loop

    async def _run(self) -> None:
        try:
            while True:
                now = self._clock()
                self._expire(now)
                if not self._entries:
                    return
                if now >= self._due:
                    self.ticks += 1
                    self._soonest = math.inf  # the newcomers so far are in this tick
                    changed, floor = await self._tick()
                    if not self._entries:  # the tick ended every wait
                        return
                    now = self._clock()
                    self._quiet = 0 if changed else self._quiet + 1
                    first, cap = self._cadence()
                    self._floor_until = now + floor
                    delay = poll_delay(self._quiet + 1, first, cap)
                    self._due = min(now + max(delay, floor), max(self._soonest, now + floor))
                    continue
                await self._nap(min(self._due, self._nearest_deadline()) - now)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a bug here must reach the waits, not vanish
            for waiter in list(self._waiters()):
                waiter.end(exc)
            raise
        finally:
            if self._task is asyncio.current_task():
                self._task = None

    def _time_left(self) -> float:
        """The timeout of a request now: the time left to the nearest deadline."""
        return max(self._nearest_deadline() - self._clock(), MIN_TIMEOUT)

    def _cadence(self) -> tuple[float, float]:
        """The smallest poll interval and cap of the waits subscribed."""
        return min(p for p, _ in self._intervals), min(c for _, c in self._intervals)

    def _nearest_deadline(self) -> float:
        return self._deadlines.nearest()

    def _expire(self, now: float) -> None:
        """End every wait whose deadline has come, naming what it last saw."""
        for waiter in self._deadlines.due(now):
            waiter.end(
                wait_timed_out(
                    waiter.session_id,
                    waiter.wait.timeout,
                    session=waiter.last,
                    elapsed=now - waiter.start,
                    polls=self.polls(waiter),
                    last_error=waiter.entry.last_error,
                )
            )
            self._finish(waiter)

    async def _nap(self, delay: float) -> None:
        """Sleep ``delay`` (> 0) seconds on the injected sleep, or until a newcomer nudges."""
        wake = self._wake = asyncio.get_running_loop().create_future()
        sleeper = asyncio.ensure_future(self._sleep(delay))
        try:
            await asyncio.wait((sleeper, wake), return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._wake = None
            if sleeper.done():
                sleeper.result()  # an injected sleep that failed is a bug to see
            else:
                sleeper.cancel()

    # ------------------------------------------------------------------ one tick

    async def _tick(self) -> tuple[bool, float]:
        """Poll every subscribed session once; return (anything changed, delay floor)."""
        entries = self._entries
        newcomers, self._newcomers = self._newcomers, []
        for entry in entries.values():  # read now: an older failure is no longer the last word
            if entry.last_error is not None:
                entry.last_error = None
        self._changed, self._floor = [], 0.0
        failures = await self.source.read(list(entries), self._time_left, self)
        changed, floor = self._changed, self._floor
        for failed_ids, exc in failures:
            floor = max(floor, self._failed(failed_ids, exc))
        informed = await self._read_messages(changed, newcomers)
        for entry in changed:
            for waiter in tuple(entry.waiters):
                self._tell(waiter, True)
        for waiter in (*newcomers, *informed):  # not changed, but new to tell
            self._tell(waiter, False)
        return bool(changed or informed), floor

    # The sink of the source's rows during a tick (``sources.Sink``).

    def seen(self, key: RowKey) -> bool:
        """Whether the waits on ``key``'s session already saw the state it shows.

        The raw values compare equal to the structured ones (open enums are ``str``).
        A session no wait is on counts as seen: there is nobody to tell.
        """
        entry = self._entries.get(key.session_id)
        if entry is None:
            return True
        session = entry.session
        return (
            session is not None
            and key.updated_at == session.updated_at
            and key.status == session.status
            and key.status_detail == session.status_detail
        )

    def take(self, session_id: str, row: Row) -> None:
        """Take a changed row of ``session_id`` (its waits are told after the read)."""
        entry = self._entries.get(session_id)
        if entry is None:
            return
        try:
            self._update(entry, row)
        except DevinError as exc:  # a row that does not decode: a failed poll
            self._floor = max(self._floor, self._failed([session_id], exc))
        else:
            self._changed.append(entry)

    def _tell(self, waiter: Waiter, changed: bool) -> None:
        """Tell a wait its session's state; unsubscribe it if that ended it."""
        session = waiter.entry.session
        if session is None or waiter.future.done():
            return
        try:
            waiter.observe(session, changed)
        except Exception as exc:  # the caller's predicate or callback failed
            waiter.end(exc)
        if waiter.future.done():
            self._finish(waiter)

    def _update(self, entry: Entry, row: Row) -> None:
        """Take a session's changed row: build its Session, and report a state change."""
        session = self._structure(shared(row, entry.session_id))
        before, entry.session = entry.session, session
        if self._on_change is not None and (
            before is None or state_key(before) != state_key(session)
        ):
            self._on_change(session, before)

    async def _read_messages(self, changed: list[Entry], newcomers: list[Waiter]) -> list[Waiter]:
        """Let each wait that asks for them read messages; return those that got news.

        Only the waits of changed sessions, newcomers, and waits that asked to read
        again (after a reply or a failed read) are asked: a quiet tick costs nothing
        per wait here.
        """
        readers = [w for entry in changed for w in entry.waiters if w.wants_messages(True)]
        asked = set(readers)
        readers.extend(
            w
            for w in dict.fromkeys((*self._asking, *newcomers))
            if w not in asked and w.entry.session is not None and w.wants_messages(False)
        )
        if not readers:
            return []
        informed, failed = await self._messages.read(readers, self._time_left)
        for waiter, exc in failed:
            if retry_messages(exc):
                if isinstance(exc, DevinError):
                    waiter.entry.last_error = exc
                waiter.read_failed()
                self._asking.add(waiter)  # read again next tick, changed or not
            else:  # a fatal failure, or a bug in a caller's callback: the wait's end
                waiter.end(exc)
                self._finish(waiter)
        return informed

    def _failed(self, ids: Collection[str], exc: BaseException) -> float:
        """Hand a fatal error to the waits of ``ids``; return the delay a transient asks.

        The rule of requests (``_retry.poll_retry_delay``): a Retry-After above
        ``max_retry_after`` is fatal, ending those waits at once and delaying no other.
        """
        delay = poll_retry_delay(exc, self._max_retry_after)
        log.debug(
            "poll of %d session(s) failed (%s); %s",
            len(ids),
            exc,
            "ending their waits" if delay is None else "will retry",
        )
        for session_id in ids:
            entry = self._entries.get(session_id)
            if entry is None:
                continue
            entry.last_error = exc
            if delay is None:
                for waiter in tuple(entry.waiters):
                    waiter.end(exc)
                    self._finish(waiter)
        return delay or 0.0
