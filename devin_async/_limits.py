"""One rate and concurrency governor per client: every HTTP request passes through it.

A fan-out of any size shares one ``Governor``, so thousands of tasks cannot start a 429
storm. The rules (the decisions are the pure functions below; ``Governor`` only keeps
the state and waits):

Concurrency
    At most ``max_in_flight`` requests hold a slot at once, client-wide. Waiters are
    served first come, first served; a slot given back is handed straight to the oldest
    waiter. The default, 64, stays below aiohttp's default connection pool (100), so a
    request never queues inside aiohttp while its own timeout is already running.

Rate (virtual scheduling, GCRA)
    A slot holder (the slot comes first, so at most ``max_in_flight`` reservations are
    ever outstanding) then takes a *ticket*: the next free slot, counted in units of
    ``1 / rate`` seconds. Ticket ``k`` may start at ``anchor_time + (k - anchor_pos) /
    rate``. An idle governor grants a burst: tickets may lag the current position by up
    to ``burst - 1`` slots, with ``burst = max(1, rate * 1 s)``, so one second's worth of
    requests may start at once (like a server-side token bucket holding one second of
    tokens); after that, starts are spaced ``1 / rate`` apart. Taking a ticket is O(1)
    and FIFO; each caller sleeps once towards its slot, with no polling loop. Because
    tickets count slots rather than seconds, a rate change or a pause re-anchors the
    schedule in O(1) and moves every outstanding reservation with it: a caller woken
    from its sleep recomputes its start and sleeps again if it moved later. (A raised
    or dropped cap does not wake sleepers early; they start at their older, later time.)

429: decrease and pause
    A 429 halves the cap: ``max(MIN_RATE, rate / 2)``. Without a cap, it starts an
    adaptive one at half the observed start rate (starts in the last one to two
    seconds), always. One decrease per window: after a cut, further 429s do not cut
    again until ``max(1 s, 1 / rate)`` after the cut (or after the end of the pause it
    started), nor while a pause lasts (their requests started before it), so a burst of
    in-flight 429s halves the rate once, not to the floor. A ``Retry-After`` pauses
    every caller, including those already waiting:
    ``paused_until = max(paused_until, now + min(retry_after, MAX_PAUSE))``; 60 s, like
    the retry policy's ``max_retry_after``, so a wild header cannot freeze the client.
    Neither a cut nor a pause leaves burst credit behind: starts resume at the new rate.

Recovery
    Each full second without a 429 (counted from the end of any pause) raises the cap
    by 10%, never above the configured ``requests_per_second``. Without a configured
    cap, the adaptive one is dropped (back to no cap) once it is twice the observed
    start rate: demand no longer presses against it.

Cost
    With no cap and no pause, ``acquire()`` is an uncontended counter decrement, one
    clock read and a start count; ``release()`` and ``on_success()`` are O(1) and
    allocate nothing. ``sleep`` is only called when a caller must wait.

Cancellation
    A caller cancelled while waiting gives back its slot (or passes a slot handed to it
    on to the next waiter); a ticket it held is simply lost, which delays later callers
    by at most one slot each, and there are never more than ``max_in_flight`` of those.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable

from ._errors import ConfigurationError

__all__ = [
    "BURST_SECONDS",
    "CUT_WINDOW",
    "DROP_FACTOR",
    "MAX_PAUSE",
    "MAX_RECOVERY_STEPS",
    "MIN_RATE",
    "RATE_WINDOW",
    "RECOVERY_GROWTH",
    "RECOVERY_INTERVAL",
    "Governor",
    "burst_size",
    "decreased_rate",
    "may_cut",
    "next_cut_at",
    "pause_end",
    "position",
    "recent_rate",
    "recovered_rate",
    "recovery_steps",
    "rolled_window",
    "should_drop_cap",
    "take_ticket",
    "ticket_start",
]

log = logging.getLogger("devin_async")

MIN_RATE = 0.5
"""Floor of any cap, requests/second: a governor slows down but never stalls."""
BURST_SECONDS = 1.0
"""An idle governor lets this many seconds' worth of requests start at once (at least 1)."""
CUT_WINDOW = 1.0
"""Seconds after a cut (or at least one slot) during which further 429s do not cut again."""
MAX_PAUSE = 60.0
"""Longest pause one Retry-After imposes on every caller, seconds (a defensive bound)."""
RECOVERY_INTERVAL = 1.0
"""Seconds without a 429 that earn one recovery step."""
RECOVERY_GROWTH = 1.1
"""Factor of one recovery step (+10%)."""
MAX_RECOVERY_STEPS = 64
"""Steps applied at once after a long calm; bounds the power so it cannot overflow."""
DROP_FACTOR = 2.0
"""An adaptive cap this many times the observed start rate is dropped."""
RATE_WINDOW = 1.0
"""Length of one start-counting window, seconds; the estimate spans one to two."""


# ------------------------------------------------------------------ decisions


def decreased_rate(rate: float | None, observed: float) -> float:
    """Return the cap after a 429: half the cap, or half the observed rate if uncapped.

    Args:
        rate: the current cap, requests/second, or None for no cap.
        observed: the recent start rate, requests/second.
    """
    base = observed if rate is None else rate
    return max(MIN_RATE, base * 0.5)


def next_cut_at(now: float, paused_until: float, rate: float) -> float:
    """Return the clock time before which a 429 may not cut the (new) ``rate`` again."""
    return max(now, paused_until) + max(CUT_WINDOW, 1.0 / rate)


def may_cut(now: float, cut_at: float, paused_until: float) -> bool:
    """Return True if a 429 received at ``now`` may cut an existing cap.

    Not within the window of the last cut, and not during a pause: nothing starts while
    paused, so a 429 arriving then answers a request that the last decision already
    covered. (Without a cap, a 429 always starts one.)
    """
    return now >= cut_at and now >= paused_until


def pause_end(now: float, paused_until: float, retry_after: float | None) -> float:
    """Return ``paused_until`` after a 429 asking to wait ``retry_after`` seconds."""
    if retry_after is None or not retry_after > 0:
        return paused_until
    return max(paused_until, now + min(retry_after, MAX_PAUSE))


def recovery_steps(calm: float) -> int:
    """Return how many recovery steps ``calm`` seconds without a 429 have earned."""
    return max(0, min(MAX_RECOVERY_STEPS, int(calm / RECOVERY_INTERVAL)))


def recovered_rate(rate: float, steps: int, ceiling: float) -> float:
    """Return ``rate`` raised by ``steps`` recovery steps, never above ``ceiling``."""
    return min(ceiling, rate * RECOVERY_GROWTH**steps)


def should_drop_cap(rate: float, observed: float, configured: float | None) -> bool:
    """Return True when an adaptive cap is no longer needed (never a configured one)."""
    return configured is None and rate >= DROP_FACTOR * observed


def rolled_window(
    now: float, window_start: float, previous: int, current: int
) -> tuple[float, int, int]:
    """Return ``(window_start, previous, current)`` start counts as of ``now``.

    ``current`` counts starts since ``window_start``; ``previous`` those of the
    ``RATE_WINDOW`` before it. A window is rolled once it is ``RATE_WINDOW`` old.
    """
    age = now - window_start
    if age < RATE_WINDOW:
        return window_start, previous, current
    if age < 2 * RATE_WINDOW:
        return window_start + RATE_WINDOW, current, 0
    return now, 0, 0  # idle for a whole window: nothing started in the last one


def recent_rate(now: float, window_start: float, previous: int, current: int) -> float:
    """Return the observed start rate, requests/second, from a rolled window."""
    return (previous + current) / (RATE_WINDOW + max(0.0, now - window_start))


def burst_size(rate: float) -> float:
    """Return how many requests an idle governor lets start at once at ``rate``."""
    return max(1.0, rate * BURST_SECONDS)


def position(now: float, anchor_time: float, anchor_pos: float, rate: float) -> float:
    """Return the schedule's current slot: it advances ``rate`` slots/second after the anchor.

    Before ``anchor_time`` (a pause) the position stands still at ``anchor_pos``.
    """
    if now <= anchor_time:
        return anchor_pos
    return anchor_pos + (now - anchor_time) * rate


def take_ticket(pos: float, next_free: float, burst: float) -> float:
    """Return the slot reserved by the next caller (the caller then frees ``ticket + 1``).

    The next free slot, but never more than ``burst - 1`` slots behind the position:
    unused slots of an idle period are not saved up beyond one burst.
    """
    return max(next_free, pos - burst + 1.0)


def ticket_start(
    ticket: float, anchor_time: float, anchor_pos: float, interval: float, paused_until: float
) -> float:
    """Return the clock time at which ``ticket`` may start (never within a pause)."""
    return max(paused_until, anchor_time + (ticket - anchor_pos) * interval)


# ------------------------------------------------------------------ the governor


class Governor:
    """Bound the concurrency and the start rate of every request of one client.

    Call ``await acquire()`` before a request and ``release()`` after it (in a
    ``finally``), then ``on_success()`` or ``on_rate_limited(retry_after)`` with its
    outcome. See the module docstring for the rules.

    Args:
        requests_per_second: the cap, requests/second; None for no fixed cap (only the
            adaptive slow-down after a 429 applies).
        max_in_flight: the most requests in flight at once.
        clock: a monotonic clock, seconds (injected in tests).
        sleep: the coroutine to wait with (injected in tests).

    Raises:
        ConfigurationError: ``requests_per_second`` is not a positive finite number or
            None, or ``max_in_flight`` is not an int >= 1.
    """

    __slots__ = (
        "_anchor_pos",
        "_anchor_time",
        "_burst",
        "_calm_since",
        "_ceiling",
        "_clock",
        "_configured",
        "_current",
        "_cut_at",
        "_free",
        "_interval",
        "_max_in_flight",
        "_next_free",
        "_paused_until",
        "_previous",
        "_rate",
        "_sleep",
        "_waiters",
        "_window_start",
    )

    def __init__(
        self,
        *,
        requests_per_second: float | None = None,
        max_in_flight: int = 64,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if requests_per_second is not None and not (
            requests_per_second > 0 and math.isfinite(requests_per_second)
        ):
            raise ConfigurationError(
                f"requests_per_second must be a positive number or None, "
                f"got {requests_per_second!r}"
            )
        if (
            isinstance(max_in_flight, bool)
            or not isinstance(max_in_flight, int)
            or max_in_flight < 1
        ):
            raise ConfigurationError(f"max_in_flight must be an int >= 1, got {max_in_flight!r}")
        now = clock()
        self._clock = clock
        self._sleep = sleep
        self._configured = None if requests_per_second is None else float(requests_per_second)
        self._ceiling = math.inf if self._configured is None else self._configured
        self._max_in_flight = max_in_flight
        self._free = max_in_flight
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._paused_until = now
        self._cut_at = now
        self._calm_since = now
        self._window_start = now
        self._previous = 0
        self._current = 0
        # The schedule, in slots: see position(), take_ticket(), ticket_start().
        self._anchor_time = now
        self._anchor_pos = 0.0
        self._next_free = -math.inf  # a fresh governor may start with a full burst
        self._rate: float | None = None
        self._interval = 0.0
        self._burst = 1.0
        if self._configured is not None:
            self._set_rate(now, self._configured)

    def __repr__(self) -> str:
        return (
            f"<Governor rate={self._rate!r} in_flight={self.in_flight}"
            f"/{self._max_in_flight} paused_until={self._paused_until!r}>"
        )

    @property
    def rate(self) -> float | None:
        """The current effective cap, requests/second (None: no cap)."""
        return self._rate

    @property
    def paused_until(self) -> float:
        """The clock time before which no request starts."""
        return self._paused_until

    @property
    def in_flight(self) -> int:
        """How many slots are held (including callers still waiting for their rate slot)."""
        return self._max_in_flight - self._free

    # ------------------------------------------------------------------ slots

    async def acquire(self) -> None:
        """Wait for an in-flight slot, then for the rate schedule and any pause."""
        if self._free > 0:
            self._free -= 1
        else:
            await self._wait_for_slot()
        now = self._clock()
        if self._rate is not None or now < self._paused_until:
            try:
                now = await self._wait_for_turn(now)
            except BaseException:
                self.release()
                raise
        if now - self._window_start >= RATE_WINDOW:
            self._roll(now)
        self._current += 1

    def release(self) -> None:
        """Give the in-flight slot back (to the oldest waiter, if any).

        Raises:
            RuntimeError: more releases than acquires.
        """
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():  # skip waiters cancelled while queued
                waiter.set_result(None)
                return
        if self._free >= self._max_in_flight:
            raise RuntimeError("Governor.release() called more often than acquire()")
        self._free += 1

    async def _wait_for_slot(self) -> None:
        # Invariant: _free is 0 whenever a waiter is queued, so newcomers cannot jump
        # the queue, and cancelled waiters can stay queued until release() skips them
        # (removing each from the deque would cost O(n) per cancellation).
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release()  # a slot was handed to us as we were cancelled: pass it on
            raise

    async def _wait_for_turn(self, now: float) -> float:
        ticket: float | None = None
        while True:
            rate = self._rate
            if rate is None:
                start = self._paused_until
            else:
                if ticket is None:
                    ticket = self._take_ticket(now, rate)
                start = ticket_start(
                    ticket, self._anchor_time, self._anchor_pos, self._interval, self._paused_until
                )
            if now >= start:
                return now
            # Re-checked on waking: a 429 meanwhile may have paused or slowed everyone.
            await self._sleep(start - now)
            now = self._clock()

    def _take_ticket(self, now: float, rate: float) -> float:
        pos = position(now, self._anchor_time, self._anchor_pos, rate)
        ticket = take_ticket(pos, self._next_free, self._burst)
        self._next_free = ticket + 1.0
        return ticket

    # ------------------------------------------------------------------ feedback

    def on_rate_limited(self, retry_after: float | None) -> None:
        """Slow every caller down after a 429, and pause them all for ``retry_after``.

        Args:
            retry_after: the server's Retry-After, seconds, or None if it sent none.
        """
        now = self._clock()
        until = pause_end(now, self._paused_until, retry_after)
        rate = self._rate
        if rate is None or may_cut(now, self._cut_at, self._paused_until):
            self._roll(now)
            new = decreased_rate(rate, self._observed(now))
            if rate is None:
                log.debug("rate limited: capping requests at %.2f/s", new)
            else:
                log.debug("rate limited: request rate cut from %.2f/s to %.2f/s", rate, new)
            self._set_rate(now, new)
            self._next_free = max(self._next_free, self._anchor_pos)  # no burst after a cut
            self._cut_at = next_cut_at(now, until, new)
            rate = new
        if until > self._paused_until:
            if self._paused_until <= now:
                log.debug("rate limited: pausing all requests for %.2fs", until - now)
            self._pause(now, until, rate)
        self._calm_since = max(now, until)

    def on_success(self) -> None:
        """Record a request that completed without a 429 (lets a lowered cap recover)."""
        rate = self._rate
        if rate is None or rate >= self._ceiling:
            return
        now = self._clock()
        steps = recovery_steps(now - self._calm_since)
        if not steps:
            return
        self._calm_since += steps * RECOVERY_INTERVAL
        rate = recovered_rate(rate, steps, self._ceiling)
        self._roll(now)
        observed = self._observed(now)
        if should_drop_cap(rate, observed, self._configured):
            log.debug(
                "request rate recovered: cap dropped (%.2f/s, observed %.2f/s)", rate, observed
            )
            self._set_rate(now, None)
        else:
            self._set_rate(now, rate)

    # ------------------------------------------------------------------ state changes

    def _set_rate(self, now: float, rate: float | None) -> None:
        """Change the cap (None: none), re-anchoring the schedule at its current position."""
        if self._rate is None:
            # Tickets of an earlier capped period all lie below next_free: they stay due.
            pos = max(self._next_free, self._anchor_pos)
            self._anchor_time = max(now, self._paused_until)
        else:
            pos = position(now, self._anchor_time, self._anchor_pos, self._rate)
            self._anchor_time = max(now, self._anchor_time)
        self._anchor_pos = pos
        self._rate = rate
        if rate is not None:
            self._interval = 1.0 / rate
            self._burst = burst_size(rate)

    def _pause(self, now: float, until: float, rate: float) -> None:
        # The schedule stands still until `until`, then resumes where it stopped.
        pos = position(now, self._anchor_time, self._anchor_pos, rate)
        self._paused_until = until
        self._anchor_time = until
        self._anchor_pos = pos
        self._next_free = max(self._next_free, pos)  # no burst right after a pause

    def _roll(self, now: float) -> None:
        self._window_start, self._previous, self._current = rolled_window(
            now, self._window_start, self._previous, self._current
        )

    def _observed(self, now: float) -> float:
        return recent_rate(now, self._window_start, self._previous, self._current)
