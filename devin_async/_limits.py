"""One rate and concurrency governor per client: every HTTP request passes through it.

A fan-out of any size shares one ``Governor``, so thousands of tasks cannot start a 429
storm, while 429s that do not follow our rate (random ones) do not slow them down. The
rules (the decisions are the pure functions below; ``Governor`` keeps the state, waits):

Concurrency
    At most ``max_in_flight`` requests hold a slot at once, client-wide. Waiters are
    served first come, first served; a slot given back is handed straight to the oldest
    waiter. ``DevinClient`` sizes the connection pool of the aiohttp session it creates
    to ``max_in_flight`` (``TCPConnector(limit=max_in_flight)``), so every slot holder
    finds a connection and no request queues inside aiohttp while its own timeout is
    already running. A borrowed session keeps its own pool: if that is smaller than
    ``max_in_flight``, requests can wait for a connection inside aiohttp, on their timeout.

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

Measurement
    The governor counts starts, accepted answers (anything but a 429) and 429s. Rates
    are counted over the last one to two seconds (two ``RATE_WINDOW`` windows; in its
    first second, a governor counts per second, as if idle before): the *send rate*
    and the *accepted rate*, what the server let through. (botocore's adaptive mode
    measures the rate it was sending at when throttled; against a limit, the accepted
    rate is the better estimate of it.) The *evidence* is the 429s and answers since the
    later of the start of the previous window and the end of the last cut window (or
    pause): answers to requests sent before a cut or a pause never count.

429: is it ours? (``overloaded``)
    A 429 cuts only when the evidence holds more 429s than the *tolerated fraction*
    ``p = noise + MARGIN`` explains, with ``Z`` standard deviations to spare:
    ``limited >= MIN_LIMITED`` and ``limited > p * answered + Z * sqrt(p * (1 - p) *
    answered)``. This is the client-side throttling of Google's SRE book (chapter
    "Handling Overload": a client throttles itself when its requests exceed ``K`` times
    the accepts), with ``K = 1 / (1 - p)`` and a significance test, so that a small
    sample cannot trigger it. ``noise`` starts at ``PRIOR_NOISE`` (10 %): isolated 429s,
    and random ones up to about 10 %, never cut.

Learning from a cut (``learned_noise``)
    After a cut, the 429 fraction is measured from the end of the cut window over at
    least ``MIN_SAMPLE`` answers, and judged at the next would-be cut, or when the curve
    is back at its old maximum (``K``, below), whichever comes first; until it is
    measured, no further cut. If the fraction fell by ``Z`` standard deviations (a
    two-proportion test, since the evidence that cut was picked for being high), or is
    above ``MAX_NOISE`` (30 %), the 429s follow our rate: the noise becomes 0, so the
    next overshoot is caught after a few 429s. If it did not, that is a strike; after
    ``STRIKES`` (2) cuts in a row that did not help (one may fall short when the
    server's bucket had saved tokens), the 429s are not ours: their fraction becomes the
    noise, tolerated from then on, and the cuts are undone (the cap goes back to what it
    was before them; TCP undoes spurious window reductions the same way, RFC 3522).

429: decrease and pause
    A cut sets the cap to ``BACKOFF`` (95 %) of the accepted rate (never above the
    current cap, nor below ``MIN_RATE``): against a limit of N requests/second the server
    accepts about N while we overshoot, so one cut lands just below N, however far above
    it we were. (CUBIC and botocore multiply the send rate by 0.7 instead: a deeper dip
    that would cost a per-second rate 30 % below N.) Without a cap, the first cut
    starts an adaptive one. One decrease per window: no cut until ``max(CUT_WINDOW, 1 /
    rate)`` after the last one (or after the end of the pause it started), nor while a
    pause lasts. A ``Retry-After`` pauses every caller, including those already waiting:
    ``paused_until = max(paused_until, now + min(retry_after, MAX_PAUSE))``; 60 s, like
    the retry policy's ``max_retry_after``, so a wild header cannot freeze the client.
    Its 429 counts as evidence like any other; 429s received during the pause do not.
    Neither a cut nor a pause leaves burst credit behind: starts resume at the new rate.

Recovery (CUBIC)
    After a cut the cap grows along CUBIC's curve (RFC 8312; botocore's
    ``botocore/retries/throttling.py`` applies it to request rates), scaled to the rate:
    ``rate(t) = w_max * (1 + CUBIC_C * (t - K)**3)``, with ``t`` the seconds since the
    cut (or since the end of its pause), ``w_max`` the accepted rate at the cut and
    ``K = cbrt((1 - start / w_max) / CUBIC_C)``, so the curve starts at the cut rate,
    flattens out at ``w_max`` after ``K`` (3.7 s after a 5 % cut) and probes above it
    ever faster (+5 % after another 3.7 s, doubling after another 10 s). The cap is
    updated at most every ``UPDATE_INTERVAL`` on a success, never above the configured
    ``requests_per_second``. Without a configured cap, the adaptive one is dropped (back
    to no cap) once the curve is ``DROP_FACTOR`` times both the send rate (demand no
    longer presses against it; botocore bounds its rate by twice the measured one) and
    ``w_max`` (that limit seems gone).

Sources: botocore ``botocore/retries/adaptive.py`` (``RateClocker``,
``ClientRateLimiter``) and ``botocore/retries/throttling.py`` (``CubicCalculator``);
RFC 8312 (CUBIC); "Handling Overload" in Google's SRE book
(https://sre.google/sre-book/handling-overload/), section "Client-side throttling".

Cost
    With no cap and no pause, ``acquire()`` is an uncontended counter decrement, one
    clock read and a start count; ``release()`` is O(1) and ``on_success()`` one count.
    None of them allocates beyond the counters; a window is rolled once per second.
    ``sleep`` is only called when a caller must wait, and once per wait: a caller that
    slept towards its start takes it as reached, even if ``clock`` did not advance (a
    ``sleep`` injected without a ``clock``); it sleeps again only if its start moved later.

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
from ._protocol import check_count, check_positive

__all__ = [
    "BACKOFF",
    "BURST_SECONDS",
    "CUBIC_C",
    "CUT_WINDOW",
    "DROP_FACTOR",
    "MARGIN",
    "MAX_NOISE",
    "MAX_PAUSE",
    "MIN_LIMITED",
    "MIN_RATE",
    "MIN_SAMPLE",
    "PRIOR_NOISE",
    "RATE_WINDOW",
    "STRIKES",
    "UPDATE_INTERVAL",
    "Governor",
    "Meter",
    "Slots",
    "Z",
    "burst_size",
    "cubic_k",
    "cubic_rate",
    "decreased_rate",
    "learned_noise",
    "may_cut",
    "next_cut_at",
    "overloaded",
    "pause_end",
    "position",
    "rolled_window",
    "should_drop_cap",
    "take_ticket",
    "ticket_start",
    "window_rate",
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
RATE_WINDOW = 1.0
"""Length of one counting window, seconds; rates and evidence span one to two."""
BACKOFF = 0.95
"""A cut sets the cap to this fraction of the measured accepted rate."""
CUBIC_C = 0.001
"""CUBIC's scale, as a fraction of ``w_max`` per second cubed."""
UPDATE_INTERVAL = 0.1
"""Seconds between two updates of a growing cap."""
DROP_FACTOR = 2.0
"""An adaptive cap this many times the send rate is dropped."""
PRIOR_NOISE = 0.10
"""The 429 fraction tolerated before any cut taught the governor better."""
MARGIN = 0.02
"""Tolerated 429 fraction above the learned noise."""
Z = 2.0
"""Standard deviations the evidence must exceed the tolerated fraction by."""
MIN_LIMITED = 3
"""429s the evidence must hold before it may cut."""
MIN_SAMPLE = 20
"""Answers after a cut needed to learn the noise from it."""
MAX_NOISE = 0.3
"""The largest 429 fraction ever tolerated as noise."""
STRIKES = 2
"""Cuts in a row that did not help before their 429s are tolerated as noise."""

Counts = tuple[int, int, int]
"""Running totals ``(sent, accepted, limited)``; a window keeps them as of its start."""


# ------------------------------------------------------------------ decisions


def rolled_window(
    now: float, window_start: float, previous: Counts, current: Counts, totals: Counts
) -> tuple[float, Counts, Counts]:
    """Return ``(window_start, previous, current)`` as of ``now``.

    ``previous`` and ``current`` hold the running totals at the start of the previous
    and the current window. A window is rolled once it is ``RATE_WINDOW`` old.
    """
    age = now - window_start
    if age < RATE_WINDOW:
        return window_start, previous, current
    if age < 2 * RATE_WINDOW:
        return window_start + RATE_WINDOW, current, totals
    return now, totals, totals  # idle for a whole window: nothing happened in the last one


def window_rate(count: int, base: int, now: float, window_start: float, born: float) -> float:
    """Return a rate, per second, from a running total and its value a window earlier.

    Over the previous and the current window, or over one second for a governor younger
    than that (``born``: its creation): a server's bucket typically holds one second.
    """
    span = min(RATE_WINDOW + max(0.0, now - window_start), now - born)
    return (count - base) / max(RATE_WINDOW, span)


def overloaded(limited: int, answered: int, noise: float) -> bool:
    """Return True if ``limited`` 429s of ``answered`` answers show a real limit.

    More 429s than the tolerated fraction ``noise + MARGIN`` explains, by ``Z``
    standard deviations, and at least ``MIN_LIMITED`` of them.
    """
    if limited < MIN_LIMITED:
        return False
    p = min(1.0, noise + MARGIN)
    return limited > p * answered + Z * math.sqrt(p * (1.0 - p) * answered)


def learned_noise(
    previous: float, before: tuple[int, int], limited: int, answered: int, strikes: int
) -> tuple[float, int, bool] | None:
    """Return ``(noise, strikes, undo)`` learned from the answers after a cut.

    None: too few answers yet. ``before`` is the evidence ``(limited, answered)`` that
    caused the cut. The cut helped if the 429 fraction after it is lower by ``Z``
    standard deviations (a two-proportion test: the evidence was picked for being high,
    so lower is not enough), or if it is still above ``MAX_NOISE`` (that many 429s are
    never taken for noise); ``strikes`` counts the cuts in a row that did not. After
    ``STRIKES`` of them the 429s are not caused by our rate: their
    fraction becomes the noise, and ``undo`` says to undo those cuts. (One is not enough:
    a first cut can fall short when the server's bucket had saved up tokens.) A cut that
    helped shows that the 429s follow our rate: the strikes and the noise drop to 0, so
    any 429s left over are taken for the limit they are.
    """
    if answered < MIN_SAMPLE:
        return None
    after = limited / answered
    was = before[0] / before[1]
    pooled = (before[0] + limited) / (before[1] + answered)
    spread = Z * math.sqrt(pooled * (1.0 - pooled) * (1.0 / before[1] + 1.0 / answered))
    if was - after > spread or after > MAX_NOISE:
        return 0.0, 0, False
    if strikes + 1 >= STRIKES:
        return after, 0, True
    return previous, strikes + 1, False


def decreased_rate(rate: float | None, accepted: float) -> float:
    """Return the cap after a cut: ``BACKOFF`` of the accepted rate, never above ``rate``."""
    new = max(MIN_RATE, accepted * BACKOFF)
    return new if rate is None else min(rate, new)


def cubic_k(w_max: float, start: float) -> float:
    """Return CUBIC's K: the seconds the curve takes from ``start`` up to ``w_max``."""
    return math.cbrt(max(0.0, 1.0 - start / w_max) / CUBIC_C)


def cubic_rate(elapsed: float, w_max: float, k: float) -> float:
    """Return the cap ``elapsed`` seconds into a CUBIC epoch (its start before 0)."""
    return w_max * (1.0 + CUBIC_C * (max(0.0, elapsed) - k) ** 3)


def should_drop_cap(rate: float, sending: float, w_max: float, configured: float | None) -> bool:
    """Return True when an adaptive cap is no longer needed (never a configured one).

    The cap has grown to ``DROP_FACTOR`` times both the send rate (demand does not press
    against it) and the accepted rate at the last cut (that limit seems gone).
    """
    return configured is None and rate >= DROP_FACTOR * max(sending, w_max)


def next_cut_at(now: float, paused_until: float, rate: float) -> float:
    """Return the clock time before which a 429 may not cut the (new) ``rate`` again."""
    return max(now, paused_until) + max(CUT_WINDOW, 1.0 / rate)


def may_cut(now: float, cut_at: float, paused_until: float) -> bool:
    """Return True if a 429 received at ``now`` may cut (if the evidence says so).

    Not within the window of the last cut, and not during a pause: nothing starts while
    paused, so a 429 arriving then answers a request that the last decision already
    covered.
    """
    return now >= cut_at and now >= paused_until


def pause_end(now: float, paused_until: float, retry_after: float | None) -> float:
    """Return ``paused_until`` after a 429 asking to wait ``retry_after`` seconds."""
    if retry_after is None or not retry_after > 0:
        return paused_until
    return max(paused_until, now + min(retry_after, MAX_PAUSE))


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


# ------------------------------------------------------------------ the counts


class Meter:
    """The governor's running totals, their two windows and the evidence snapshot."""

    __slots__ = (
        "accepted",
        "born",
        "current",
        "evidence_due",
        "limited",
        "previous",
        "sent",
        "snapshot",
        "window_start",
    )

    def __init__(self, now: float) -> None:
        self.sent = self.accepted = self.limited = 0
        self.born = self.window_start = now
        self.previous: Counts = (0, 0, 0)  # the totals at the start of each window
        self.current: Counts = (0, 0, 0)
        # The totals at the end of the last cut window or pause: taken at the first
        # event after the governor's `_cut_at` while `evidence_due`.
        self.snapshot: Counts = (0, 0, 0)
        self.evidence_due = False

    def roll(self, now: float) -> None:
        self.window_start, self.previous, self.current = rolled_window(
            now,
            self.window_start,
            self.previous,
            self.current,
            (self.sent, self.accepted, self.limited),
        )

    def catch_up(self, now: float, cut_at: float) -> None:
        """Roll the windows and take the snapshot that fell due."""
        if now - self.window_start >= RATE_WINDOW:
            self.roll(now)
        if self.evidence_due and now >= cut_at:
            self.snapshot = (self.sent, self.accepted, self.limited)
            self.evidence_due = False

    def rate(self, now: float, which: int) -> float:
        """Return the send (``which`` 0) or accepted (1) rate, per second."""
        count = self.accepted if which else self.sent
        return window_rate(count, self.previous[which], now, self.window_start, self.born)

    def evidence(self) -> tuple[int, int]:
        """Return ``(limited, answered)`` since the evidence base (totals only grow)."""
        base_accepted = max(self.previous[1], self.snapshot[1])
        limited = self.limited - max(self.previous[2], self.snapshot[2])
        return limited, limited + self.accepted - base_accepted

    def since_snapshot(self) -> tuple[int, int]:
        """Return ``(limited, answered)`` since the end of the last cut window."""
        limited = self.limited - self.snapshot[2]
        return limited, limited + self.accepted - self.snapshot[1]


# ------------------------------------------------------------------ the governor


class Slots:
    """The in-flight slots: a FIFO semaphore whose uncontended take is inlined by callers.

    Take one with ``if slots.free > 0: slots.free -= 1`` else ``await slots.wait()``, and
    give it back with ``release()``.
    """

    __slots__ = ("_waiters", "free", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.free = size
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def held(self) -> int:
        """How many slots are taken."""
        return self.size - self.free

    def release(self) -> None:
        """Give a slot back (to the oldest waiter, if any).

        Raises:
            RuntimeError: more releases than takes.
        """
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():  # skip waiters cancelled while queued
                waiter.set_result(None)
                return
        if self.free >= self.size:
            raise RuntimeError("Governor.release() called more often than acquire()")
        self.free += 1

    async def wait(self) -> None:
        """Wait for a slot to be handed over (call only when ``free`` is 0)."""
        # Invariant: free is 0 whenever a waiter is queued, so newcomers cannot jump
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


class Governor:
    """Bound the concurrency and the start rate of every request of one client.

    Call ``await acquire()`` (or first ``try_acquire()``) before a request and
    ``release()`` after it (in a ``finally``), then ``on_success()`` or
    ``on_rate_limited(retry_after)`` with its outcome. See the module docstring for the
    rules.

    Args:
        requests_per_second: the cap, requests/second; None for no fixed cap (only the
            adaptive slow-down after 429s applies).
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
        "_before",
        "_burst",
        "_ceiling",
        "_clock",
        "_configured",
        "_cut_at",
        "_epoch",
        "_interval",
        "_k",
        "_learning",
        "_meter",
        "_next_free",
        "_next_update",
        "_noise",
        "_paused_until",
        "_rate",
        "_sleep",
        "_slots",
        "_strikes",
        "_undo",
        "_w_max",
    )

    def __init__(
        self,
        *,
        requests_per_second: float | None = None,
        max_in_flight: int = 64,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if requests_per_second is not None:
            requests_per_second = check_positive(
                "requests_per_second", requests_per_second, "requests/second", ConfigurationError
            )
        check_count("max_in_flight", max_in_flight, 1, ConfigurationError)
        now = clock()
        self._clock = clock
        self._sleep = sleep
        self._configured = None if requests_per_second is None else float(requests_per_second)
        self._ceiling = math.inf if self._configured is None else self._configured
        self._slots = Slots(max_in_flight)
        self._paused_until = now
        # Running totals, and their values at the start of the two windows (measurement).
        self._meter = Meter(now)
        self._cut_at = now
        self._noise = PRIOR_NOISE
        self._learning = False  # measuring the 429 fraction after the last cut
        self._before = (0, 1)  # the evidence (limited, answered) that caused the last cut
        self._strikes = 0  # cuts in a row that did not lower the 429 fraction
        self._undo: float | None = None  # the cap before the first of those cuts
        # The CUBIC epoch of the last cut.
        self._epoch = now
        self._w_max = 0.0
        self._k = 0.0
        self._next_update = now
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
            f"/{self._slots.size} paused_until={self._paused_until!r}>"
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
        return self._slots.held

    @property
    def noise(self) -> float:
        """The 429 fraction currently tolerated as not caused by our rate (see overloaded)."""
        return self._noise

    # ------------------------------------------------------------------ slots

    def try_acquire(self) -> bool:
        """Take a slot and count a start if nothing makes the caller wait, else nothing.

        The uncontended case of ``acquire`` without its coroutine: call ``acquire`` when
        this returns False.
        """
        slots = self._slots
        if slots.free <= 0 or self._rate is not None:
            return False
        now = self._clock()
        if now < self._paused_until:
            return False
        slots.free -= 1
        self._count_start(now)
        return True

    async def acquire(self) -> None:
        """Wait for an in-flight slot, then for the rate schedule and any pause."""
        slots = self._slots
        if slots.free > 0:
            slots.free -= 1
        else:
            await slots.wait()
        now = self._clock()
        if self._rate is not None or now < self._paused_until:
            try:
                now = await self._wait_for_turn(now)
            except BaseException:
                self.release()
                raise
        self._count_start(now)

    def _count_start(self, now: float) -> None:
        meter = self._meter
        if now - meter.window_start >= RATE_WINDOW:
            meter.roll(now)
        meter.sent += 1

    def release(self) -> None:
        """Give the in-flight slot back (to the oldest waiter, if any).

        Raises:
            RuntimeError: more releases than acquires.
        """
        self._slots.release()

    async def _wait_for_turn(self, now: float) -> float:
        """Wait for this caller's start; return the clock's time then."""
        ticket: float | None = None
        real = now
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
                return real
            # Re-checked on waking: a 429 meanwhile may have paused or slowed everyone.
            # Having slept towards ``start`` counts as reaching it even if the clock says
            # otherwise (an injected sleep that does not advance the clock): only a start
            # that moved later meanwhile sleeps again, so the loop never spins.
            await self._sleep(start - now)
            real = self._clock()
            now = max(real, start)

    def _take_ticket(self, now: float, rate: float) -> float:
        pos = position(now, self._anchor_time, self._anchor_pos, rate)
        ticket = take_ticket(pos, self._next_free, self._burst)
        self._next_free = ticket + 1.0
        return ticket

    # ------------------------------------------------------------------ feedback

    def on_rate_limited(self, retry_after: float | None) -> None:
        """Count a 429, cut the cap if the evidence shows a limit, pause for ``retry_after``.

        Args:
            retry_after: the server's Retry-After, seconds, or None if it sent none.
        """
        now = self._clock()
        self._meter.catch_up(now, self._cut_at)
        self._meter.limited += 1
        until = pause_end(now, self._paused_until, retry_after)
        if may_cut(now, self._cut_at, self._paused_until) and self._confirmed(now):
            self._cut(now, until)
        if until > self._paused_until:
            if self._paused_until <= now:
                log.debug("rate limited: pausing all requests for %.2fs", until - now)
            self._pause(now, until, self._rate)

    def on_success(self) -> None:
        """Count an answer other than a 429 (and let a lowered cap grow back)."""
        rate = self._rate
        meter = self._meter
        if meter.evidence_due or (rate is not None and rate < self._ceiling):
            now = self._clock()
            meter.catch_up(now, self._cut_at)  # first: this answer comes after the snapshot
            meter.accepted += 1
            if self._rate is not None and self._rate < self._ceiling and now >= self._next_update:
                self._grow(now)
        else:
            meter.accepted += 1

    # ------------------------------------------------------------------ decisions applied

    def _confirmed(self, now: float) -> bool:
        """Return True if the evidence shows a limit, after learning from the last cut."""
        limited, answered = self._meter.evidence()
        if not overloaded(limited, answered, self._noise):
            return False
        if self._learning:
            if not self._learn(now):
                return False  # the last cut's effect is not measured yet: wait for it
            return overloaded(limited, answered, self._noise)
        return True

    def _learn(self, now: float) -> bool:
        """Learn from the answers since the last cut window; return False if too few."""
        meter = self._meter
        if meter.evidence_due:
            return False  # the cut window is not over: nothing measured yet
        limited, answered = meter.since_snapshot()
        learned = learned_noise(self._noise, self._before, limited, answered, self._strikes)
        if learned is None:
            return False
        self._noise, self._strikes, undo = learned
        self._learning = False
        if undo:  # the cuts did not lower the 429s: they were not ours
            log.debug(
                "rate limited: 429s do not follow our rate; tolerating %.1f%%, cuts undone",
                self._noise * 100,
            )
            self._set_rate(now, self._undo)
            self._w_max = 0.0 if self._undo is None else self._undo
            self._k = 0.0
            self._epoch = now
        return True

    def _cut(self, now: float, until: float) -> None:
        limited, answered = self._meter.evidence()
        accepted = self._meter.rate(now, 1)
        rate = self._rate
        if not self._strikes:
            self._undo = rate
        new = min(self._ceiling, decreased_rate(rate, accepted))
        if rate is None:
            log.debug("rate limited: capping requests at %.2f/s", new)
        else:
            log.debug("rate limited: request rate cut from %.2f/s to %.2f/s", rate, new)
        self._set_rate(now, new)
        self._next_free = max(self._next_free, self._anchor_pos)  # no burst after a cut
        self._cut_at = next_cut_at(now, until, new)
        self._meter.evidence_due = True
        self._learning = True
        self._before = (limited, answered)
        self._epoch = max(now, until)
        self._w_max = max(accepted, new)
        self._k = cubic_k(self._w_max, new)
        self._next_update = self._epoch

    def _grow(self, now: float) -> None:
        """Move a lowered cap along its CUBIC curve (or drop it)."""
        assert self._rate is not None
        self._next_update = now + UPDATE_INTERVAL
        if self._learning and now - self._epoch >= self._k:
            self._learn(now)  # the plateau is over: what did the cut do to the 429s?
            if self._rate is None:
                return  # the cuts were undone
        elapsed = now - self._epoch
        target = min(self._ceiling, cubic_rate(elapsed, self._w_max, self._k))
        sending = self._meter.rate(now, 0)
        if should_drop_cap(target, sending, self._w_max, self._configured):
            log.debug(
                "request rate recovered: cap dropped (%.2f/s, sending %.2f/s)", target, sending
            )
            self._set_rate(now, None)
        elif target > self._rate:
            self._set_rate(now, target)

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

    def _pause(self, now: float, until: float, rate: float | None) -> None:
        # The schedule stands still until `until`, then resumes where it stopped.
        if rate is not None:
            pos = position(now, self._anchor_time, self._anchor_pos, rate)
            self._anchor_time = until
            self._anchor_pos = pos
            self._next_free = max(self._next_free, pos)  # no burst right after a pause
        self._paused_until = until
        # 429s answering requests sent before the pause are no evidence.
        self._cut_at = max(self._cut_at, until)
        self._meter.evidence_due = True
