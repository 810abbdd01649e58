"""The rate and concurrency governor: pure decision tables, then the governor in fake time."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math

import pytest

from devin_async._errors import ConfigurationError
from devin_async._limits import (
    MAX_PAUSE,
    MAX_RECOVERY_STEPS,
    MIN_RATE,
    RECOVERY_GROWTH,
    Governor,
    burst_size,
    decreased_rate,
    may_cut,
    next_cut_at,
    pause_end,
    position,
    recent_rate,
    recovered_rate,
    recovery_steps,
    rolled_window,
    should_drop_cap,
    take_ticket,
    ticket_start,
)

INF = math.inf

# ------------------------------------------------------------------ decisions


@pytest.mark.parametrize(
    ("rate", "observed", "expected"),
    [
        (10.0, 3.0, 5.0),
        (1.0, 100.0, MIN_RATE),
        (0.6, 0.0, MIN_RATE),
        (None, 8.0, 4.0),
        (None, 0.2, MIN_RATE),
        (None, 0.0, MIN_RATE),
    ],
    ids=[
        "capped-halves-the-cap-not-the-demand",
        "capped-floor",
        "capped-near-floor",
        "uncapped-halves-the-demand",
        "uncapped-floor",
        "uncapped-no-demand",
    ],
)
def test_decreased_rate(rate: float | None, observed: float, expected: float) -> None:
    assert decreased_rate(rate, observed) == expected


@pytest.mark.parametrize(
    ("now", "paused_until", "rate", "expected"),
    [(10.0, 0.0, 4.0, 11.0), (10.0, 15.0, 4.0, 16.0), (10.0, 0.0, 0.5, 12.0)],
    ids=["one-second", "after-the-pause", "one-slot-at-low-rates"],
)
def test_next_cut_at(now: float, paused_until: float, rate: float, expected: float) -> None:
    assert next_cut_at(now, paused_until, rate) == expected


@pytest.mark.parametrize(
    ("now", "cut_at", "paused_until", "expected"),
    [
        (10.0, 10.0, 0.0, True),
        (9.9, 10.0, 0.0, False),
        (12.0, 10.0, 13.0, False),
        (13.0, 10.0, 13.0, True),
    ],
    ids=["window-over", "within-window", "during-pause", "pause-over"],
)
def test_may_cut(now: float, cut_at: float, paused_until: float, expected: bool) -> None:
    assert may_cut(now, cut_at, paused_until) is expected


@pytest.mark.parametrize(
    ("paused_until", "retry_after", "expected"),
    [
        (0.0, None, 0.0),
        (0.0, 0.0, 0.0),
        (0.0, -1.0, 0.0),
        (0.0, math.nan, 0.0),
        (0.0, 5.0, 15.0),
        (20.0, 5.0, 20.0),
        (12.0, 5.0, 15.0),
        (0.0, 3600.0, 10.0 + MAX_PAUSE),
        (0.0, INF, 10.0 + MAX_PAUSE),
    ],
    ids=[
        "no-header",
        "zero",
        "negative",
        "nan",
        "starts",
        "shorter-than-current",
        "extends-current",
        "capped",
        "infinite-capped",
    ],
)
def test_pause_end(paused_until: float, retry_after: float | None, expected: float) -> None:
    assert pause_end(10.0, paused_until, retry_after) == expected


@pytest.mark.parametrize(
    ("calm", "expected"),
    [(-5.0, 0), (-0.5, 0), (0.0, 0), (0.99, 0), (1.0, 1), (3.5, 3), (1e9, MAX_RECOVERY_STEPS)],
    ids=["paused", "pause-ending", "none", "almost", "one", "three", "bounded"],
)
def test_recovery_steps(calm: float, expected: int) -> None:
    assert recovery_steps(calm) == expected


@pytest.mark.parametrize(
    ("rate", "steps", "ceiling", "expected"),
    [
        (4.0, 0, 8.0, 4.0),
        (4.0, 1, 8.0, 4.4),
        (4.0, 2, 8.0, 4.84),
        (4.0, MAX_RECOVERY_STEPS, 8.0, 8.0),
        (8.0, 1, 8.0, 8.0),
        (4.0, MAX_RECOVERY_STEPS, INF, 4.0 * RECOVERY_GROWTH**MAX_RECOVERY_STEPS),
    ],
    ids=["no-step", "ten-percent", "compounds", "never-above-cap", "at-cap", "uncapped"],
)
def test_recovered_rate(rate: float, steps: int, ceiling: float, expected: float) -> None:
    assert recovered_rate(rate, steps, ceiling) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("rate", "observed", "configured", "expected"),
    [
        (10.0, 4.0, None, True),
        (10.0, 5.0, None, True),
        (10.0, 6.0, None, False),
        (0.5, 0.0, None, True),
        (100.0, 0.0, 10.0, False),
    ],
    ids=["well-above-demand", "twice-demand", "demand-presses", "idle", "configured-stays"],
)
def test_should_drop_cap(
    rate: float, observed: float, configured: float | None, expected: bool
) -> None:
    assert should_drop_cap(rate, observed, configured) is expected


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (100.5, (100.0, 3, 7)),
        (101.2, (101.0, 7, 0)),
        (102.0, (102.0, 0, 0)),
        (500.0, (500.0, 0, 0)),
    ],
    ids=["young", "next-window", "idle-window", "long-idle"],
)
def test_rolled_window(now: float, expected: tuple[float, int, int]) -> None:
    assert rolled_window(now, 100.0, 3, 7) == expected


@pytest.mark.parametrize(
    ("now", "previous", "current", "expected"),
    [(100.0, 0, 0, 0.0), (100.0, 4, 0, 4.0), (100.5, 10, 5, 10.0), (100.999, 0, 2, 1.0)],
    ids=["nothing", "previous-window", "both-windows", "end-of-window"],
)
def test_recent_rate(now: float, previous: int, current: int, expected: float) -> None:
    assert recent_rate(now, 100.0, previous, current) == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize(
    ("rate", "expected"), [(0.5, 1.0), (1.0, 1.0), (2.5, 2.5), (4.0, 4.0), (100.0, 100.0)]
)
def test_burst_size(rate: float, expected: float) -> None:
    assert burst_size(rate) == expected


@pytest.mark.parametrize(
    ("now", "expected"),
    [(8.0, 5.0), (10.0, 5.0), (12.0, 9.0)],
    ids=["paused", "at-anchor", "advancing"],
)
def test_position(now: float, expected: float) -> None:
    assert position(now, 10.0, 5.0, 2.0) == expected


@pytest.mark.parametrize(
    ("pos", "next_free", "burst", "expected"),
    [(10.0, 3.0, 4.0, 7.0), (10.0, 12.0, 4.0, 12.0), (10.0, -INF, 1.0, 10.0)],
    ids=["idle-keeps-one-burst", "queue-ahead", "fresh-no-burst"],
)
def test_take_ticket(pos: float, next_free: float, burst: float, expected: float) -> None:
    assert take_ticket(pos, next_free, burst) == expected


@pytest.mark.parametrize(
    ("ticket", "paused_until", "expected"),
    [(12.0, 0.0, 11.0), (12.0, 20.0, 20.0), (8.0, 0.0, 9.0), (10.0, 10.0, 10.0)],
    ids=["ahead", "paused", "already-due", "at-anchor"],
)
def test_ticket_start(ticket: float, paused_until: float, expected: float) -> None:
    assert ticket_start(ticket, 10.0, 10.0, 0.5, paused_until) == expected


# ------------------------------------------------------------------ fake time

T0 = 100.0


class FakeTime:
    """A fake monotonic clock and sleep: sleepers wake in deadline order as run() advances.

    ``sleeps`` records the delays the governor asked for; ``hold()`` waits in fake time
    without being recorded (it stands for a request's latency).
    """

    def __init__(self) -> None:
        self.now = T0
        self.sleeps: list[float] = []
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = 0

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        assert delay > 0
        self.sleeps.append(delay)
        await self.hold(delay)

    async def hold(self, delay: float) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._seq += 1
        heapq.heappush(self._timers, (self.now + delay, self._seq, waiter))
        await waiter

    @staticmethod
    async def settle() -> None:
        """Let every runnable task run until it blocks again."""
        for _ in range(20):
            await asyncio.sleep(0)

    async def _fire_next(self) -> None:
        when, _, waiter = heapq.heappop(self._timers)
        self.now = max(self.now, when)
        if not waiter.done():
            waiter.set_result(None)
        await self.settle()

    async def advance(self, seconds: float) -> None:
        """Fire every timer due within ``seconds``, in order; end at now + seconds."""
        end = self.now + seconds
        await self.settle()
        while self._timers and self._timers[0][0] <= end:
            await self._fire_next()
        self.now = end

    async def run(self, *tasks: asyncio.Task[None]) -> None:
        """Advance fake time until every task is done."""
        await self.settle()
        while not all(task.done() for task in tasks):
            assert self._timers, "deadlock: tasks are waiting but no timer is pending"
            await self._fire_next()


class Requests:
    """Requests through one governor, recording when each started and how many overlap."""

    def __init__(self, governor: Governor, fake: FakeTime) -> None:
        self.governor = governor
        self.fake = fake
        self.starts: list[float] = []
        self.order: list[int] = []
        self.active = 0
        self.peak = 0

    async def one(self, index: int = 0, latency: float = 0.0) -> None:
        await self.governor.acquire()
        self.starts.append(self.fake.now)
        self.order.append(index)
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            if latency:
                await self.fake.hold(latency)
        finally:
            self.active -= 1
            self.governor.release()
        self.governor.on_success()

    def spawn(self, count: int, latency: float = 0.0) -> list[asyncio.Task[None]]:
        first = len(self.order)
        return [asyncio.create_task(self.one(first + i, latency)) for i in range(count)]


def make(
    *, requests_per_second: float | None = None, max_in_flight: int = 64
) -> tuple[Governor, FakeTime, Requests]:
    fake = FakeTime()
    governor = Governor(
        requests_per_second=requests_per_second,
        max_in_flight=max_in_flight,
        clock=fake.clock,
        sleep=fake.sleep,
    )
    return governor, fake, Requests(governor, fake)


def gaps(starts: list[float]) -> list[float]:
    return [round(b - a, 9) for a, b in itertools.pairwise(starts)]


# ------------------------------------------------------------------ configuration


@pytest.mark.parametrize(
    "kwargs",
    [
        {"requests_per_second": 0},
        {"requests_per_second": -1.0},
        {"requests_per_second": math.nan},
        {"requests_per_second": INF},
        {"max_in_flight": 0},
        {"max_in_flight": -3},
        {"max_in_flight": 1.5},
        {"max_in_flight": True},
    ],
    ids=[
        "rps-zero",
        "rps-negative",
        "rps-nan",
        "rps-inf",
        "mif-zero",
        "mif-neg",
        "mif-float",
        "mif-bool",
    ],
)
def test_invalid_arguments_raise_configuration_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError) as info:
        Governor(**kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)


def test_defaults_are_uncapped_and_unpaused() -> None:
    fake = FakeTime()
    governor = Governor(clock=fake.clock)
    assert governor.rate is None
    assert governor.paused_until <= fake.now
    assert governor.in_flight == 0
    assert repr(governor) == f"<Governor rate=None in_flight=0/64 paused_until={T0!r}>"


def test_configured_rate_is_the_initial_cap() -> None:
    governor, _, _ = make(requests_per_second=3)
    assert governor.rate == 3.0


async def test_release_without_acquire_raises() -> None:
    governor, _, _ = make()
    await governor.acquire()
    governor.release()
    with pytest.raises(RuntimeError, match="more often"):
        governor.release()


# ------------------------------------------------------------------ rate


@pytest.mark.parametrize(("rate", "spacing"), [(1.0, 1.0), (0.5, 2.0)])
async def test_starts_are_spaced_one_slot_apart(rate: float, spacing: float) -> None:
    governor, fake, requests = make(requests_per_second=rate)
    await fake.run(*requests.spawn(5))
    assert requests.starts == [T0 + i * spacing for i in range(5)]
    assert requests.order == [0, 1, 2, 3, 4]
    assert governor.in_flight == 0


async def test_idle_governor_grants_one_burst_then_spaces_starts() -> None:
    _, fake, requests = make(requests_per_second=4)
    await fake.run(*requests.spawn(8))
    assert requests.starts == [T0] * 4 + [T0 + 0.25, T0 + 0.5, T0 + 0.75, T0 + 1.0]
    # Ten idle seconds earn one burst again, not forty requests' worth.
    await fake.advance(10.0)
    requests.starts.clear()
    await fake.run(*requests.spawn(6))
    assert gaps(requests.starts) == [0.0, 0.0, 0.0, 0.25, 0.25]


async def test_uncapped_governor_without_429_never_sleeps() -> None:
    governor, fake, requests = make(max_in_flight=8)
    await fake.run(*requests.spawn(200, latency=0.01))
    assert fake.sleeps == []
    assert len(requests.starts) == 200
    assert governor.rate is None
    assert governor.in_flight == 0


# ------------------------------------------------------------------ concurrency


async def test_max_in_flight_bounds_concurrency_in_fifo_order() -> None:
    governor, fake, requests = make(max_in_flight=3)
    await fake.run(*requests.spawn(10, latency=1.0))
    assert requests.peak == 3
    assert requests.order == list(range(10))
    assert requests.starts == [T0 + i // 3 for i in range(10)]
    assert governor.in_flight == 0
    assert fake.sleeps == []


async def test_slot_holders_waiting_for_their_rate_slot_count_as_in_flight() -> None:
    governor, fake, requests = make(requests_per_second=1, max_in_flight=2)
    tasks = requests.spawn(4)
    await fake.settle()
    assert requests.starts == [T0]
    # The first finished; the second and third hold slots while they sleep towards
    # T0 + 1 and T0 + 2; the fourth queues for a slot without reserving a rate slot.
    assert governor.in_flight == 2
    await fake.run(*tasks)
    assert requests.starts == [T0, T0 + 1, T0 + 2, T0 + 3]


# ------------------------------------------------------------------ 429: decrease and pause


async def test_retry_after_pauses_every_caller_including_those_already_waiting() -> None:
    governor, fake, requests = make(requests_per_second=1)
    tasks = requests.spawn(6)
    await fake.advance(1.5)
    assert requests.starts == [T0, T0 + 1]
    governor.on_rate_limited(5.0)
    assert governor.paused_until == T0 + 6.5
    assert governor.rate == 0.5
    await fake.run(*tasks)
    later = requests.starts[2:]
    assert len(later) == 4
    assert all(start >= governor.paused_until for start in later)
    assert gaps(later) == [2.0, 2.0, 2.0]  # resumed at the cut rate, without a burst
    assert governor.in_flight == 0


async def test_retry_after_pauses_callers_waiting_for_a_slot() -> None:
    governor, fake, requests = make(max_in_flight=1)
    tasks = requests.spawn(3, latency=1.0)
    await fake.settle()
    assert requests.starts == [T0]
    governor.on_rate_limited(4.0)
    await fake.run(*tasks)
    assert requests.starts[1] >= T0 + 4.0
    assert governor.in_flight == 0


async def test_no_burst_after_a_pause() -> None:
    governor, fake, requests = make(requests_per_second=4)
    governor.on_rate_limited(1.0)
    assert governor.rate == 2.0
    await fake.run(*requests.spawn(4))
    assert requests.starts == [T0 + 1.0, T0 + 1.5, T0 + 2.0, T0 + 2.5]


async def test_a_cut_reschedules_callers_already_waiting() -> None:
    governor, fake, requests = make(requests_per_second=4)
    tasks = requests.spawn(10)
    await fake.advance(0.3)
    assert len(requests.starts) == 5
    governor.on_rate_limited(None)
    assert governor.rate == 2.0
    await fake.run(*tasks)
    assert gaps(requests.starts[5:]) == [0.5] * 4
    assert requests.starts[5] > T0 + 0.5  # the reserved T0 + 0.5 slot moved later


async def test_repeated_429s_in_one_window_cut_once() -> None:
    governor, fake, _ = make(requests_per_second=8)
    for _ in range(5):
        governor.on_rate_limited(None)
    assert governor.rate == 4.0
    fake.now += 0.5
    governor.on_rate_limited(None)
    assert governor.rate == 4.0
    fake.now += 0.5
    governor.on_rate_limited(None)
    assert governor.rate == 2.0


async def test_429s_during_a_pause_do_not_cut_again() -> None:
    governor, fake, _ = make(requests_per_second=8)
    governor.on_rate_limited(10.0)
    assert governor.rate == 4.0
    fake.now += 5.0
    governor.on_rate_limited(None)
    assert governor.rate == 4.0
    fake.now += 5.5  # the pause ended, but the window runs from its end
    governor.on_rate_limited(None)
    assert governor.rate == 4.0
    fake.now += 0.5
    governor.on_rate_limited(None)
    assert governor.rate == 2.0


async def test_a_longer_retry_after_extends_the_pause() -> None:
    governor, fake, _ = make(requests_per_second=8)
    governor.on_rate_limited(2.0)
    fake.now += 1.0
    governor.on_rate_limited(5.0)
    assert governor.paused_until == T0 + 6.0
    governor.on_rate_limited(1.0)
    assert governor.paused_until == T0 + 6.0


async def test_rate_never_falls_below_the_floor() -> None:
    governor, fake, _ = make(requests_per_second=1)
    for _ in range(10):
        governor.on_rate_limited(None)
        fake.now += 5.0
    assert governor.rate == MIN_RATE


async def test_uncapped_429_caps_at_half_the_observed_start_rate() -> None:
    governor, fake, requests = make()
    await fake.run(*requests.spawn(20))
    governor.on_rate_limited(None)
    assert governor.rate == 10.0
    assert fake.sleeps == []


async def test_uncapped_429_always_caps_even_right_after_a_drop() -> None:
    governor, fake, _ = make()
    governor.on_rate_limited(None)  # no demand seen: the floor, cut window 2 s
    assert governor.rate == MIN_RATE
    fake.now += 1.0
    governor.on_success()
    assert governor.rate is None  # no demand: the cap is dropped
    governor.on_rate_limited(None)  # still within the last cut's window
    assert governor.rate == MIN_RATE


# ------------------------------------------------------------------ recovery


async def test_recovery_raises_the_rate_gradually_up_to_the_configured_cap() -> None:
    governor, fake, _ = make(requests_per_second=8)
    governor.on_rate_limited(None)
    seen: list[float] = []
    for _ in range(60):
        fake.now += 0.25
        governor.on_success()
        assert governor.rate is not None
        seen.append(governor.rate)
    assert seen[:3] == [4.0, 4.0, 4.0]
    assert seen[3] == pytest.approx(4.4)
    assert seen == sorted(seen)
    assert max(seen) == 8.0
    assert seen[-1] == 8.0


async def test_recovery_after_a_long_calm_reaches_the_cap_at_once() -> None:
    governor, fake, _ = make(requests_per_second=8)
    governor.on_rate_limited(None)
    fake.now += 3600.0
    governor.on_success()
    assert governor.rate == 8.0


async def test_recovery_counts_from_the_end_of_the_pause() -> None:
    governor, fake, _ = make(requests_per_second=8)
    governor.on_rate_limited(10.0)
    fake.now += 10.9
    governor.on_success()
    assert governor.rate == 4.0
    fake.now += 0.1
    governor.on_success()
    assert governor.rate == pytest.approx(4.4)


async def test_a_429_that_does_not_cut_still_restarts_the_recovery_clock() -> None:
    governor, fake, _ = make(requests_per_second=8)
    governor.on_rate_limited(None)
    fake.now += 0.5
    governor.on_rate_limited(None)
    fake.now += 0.7
    governor.on_success()
    assert governor.rate == 4.0
    fake.now += 0.3
    governor.on_success()
    assert governor.rate == pytest.approx(4.4)


async def test_adaptive_cap_stays_while_demand_presses_then_is_dropped() -> None:
    governor, fake, requests = make()
    await fake.run(*requests.spawn(20))
    governor.on_rate_limited(None)
    assert governor.rate == 10.0
    tasks = requests.spawn(200)
    await fake.advance(4.0)
    assert governor.rate is not None
    assert governor.rate > 10.0  # recovering ...
    assert not all(task.done() for task in tasks)  # ... yet demand still exceeds it
    await fake.run(*tasks)
    fake.now += 2.0
    governor.on_success()
    assert governor.rate is None
    sleeps = len(fake.sleeps)
    await fake.run(*requests.spawn(50))
    assert len(fake.sleeps) == sleeps  # uncapped again: no more waiting


async def test_callers_waiting_when_the_cap_is_dropped_keep_their_slots() -> None:
    governor, fake, requests = make()
    await fake.run(*requests.spawn(1))
    governor.on_rate_limited(None)
    assert governor.rate == MIN_RATE
    tasks = requests.spawn(3)
    await fake.advance(1.0)
    assert len(requests.starts) == 2  # the next slots are T0 + 2 and T0 + 4
    fake.now += 1.0
    governor.on_success()
    assert governor.rate is None
    await fake.run(*tasks)
    # A dropped (or raised) cap does not wake sleepers early, nor make them wait longer.
    assert requests.starts[2:] == [T0 + 2.0, T0 + 4.0]
    assert governor.in_flight == 0
    await fake.run(*requests.spawn(5))
    assert requests.starts[4:] == [T0 + 4.0] * 5


# ------------------------------------------------------------------ cancellation


async def test_cancelled_slot_waiter_frees_its_place() -> None:
    governor, fake, requests = make(max_in_flight=1)
    holder, waiter, last = requests.spawn(3, latency=1.0)
    await fake.settle()
    waiter.cancel()
    await fake.run(holder, last)
    assert waiter.cancelled()
    assert requests.order == [0, 2]
    assert governor.in_flight == 0


async def test_slot_handed_to_a_cancelled_waiter_passes_to_the_next() -> None:
    governor, fake, requests = make(max_in_flight=1)
    await governor.acquire()
    waiter, last = requests.spawn(2)
    await fake.settle()
    governor.release()  # hands the slot to `waiter` ...
    waiter.cancel()  # ... which is cancelled before it could run
    await fake.run(last)
    assert waiter.cancelled()
    assert requests.order == [1]
    assert governor.in_flight == 0


async def test_cancelled_rate_waiter_frees_its_slot() -> None:
    governor, fake, requests = make(requests_per_second=1, max_in_flight=2)
    first, waiter, last = requests.spawn(3)
    await fake.settle()
    assert governor.in_flight == 2  # `waiter` sleeps towards its slot, `last` queues
    waiter.cancel()
    await fake.run(first, last)
    assert waiter.cancelled()
    assert requests.order == [0, 2]
    assert requests.starts[1] <= T0 + 2.0  # at most the lost slot later
    assert governor.in_flight == 0


async def test_cancel_everything_leaves_nothing_held() -> None:
    governor, fake, requests = make(requests_per_second=2, max_in_flight=4)
    tasks = requests.spawn(50)
    await fake.advance(0.6)
    for task in tasks:
        task.cancel()
    await fake.settle()
    assert governor.in_flight == 0
    await fake.run(*requests.spawn(3))
    assert governor.in_flight == 0


# ------------------------------------------------------------------ logging


async def test_decisions_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    governor, fake, requests = make()
    await fake.run(*requests.spawn(4))
    with caplog.at_level(logging.DEBUG, logger="devin_async"):
        governor.on_rate_limited(3.0)
        fake.now += 1.0
        governor.on_rate_limited(5.0)  # extends the pause: no new "pausing" line
        fake.now += 10.0
        governor.on_rate_limited(None)
        fake.now += 100.0
        governor.on_success()
    messages = [r.getMessage() for r in caplog.records if r.name == "devin_async"]
    assert messages == [
        "rate limited: capping requests at 2.00/s",
        "rate limited: pausing all requests for 3.00s",
        "rate limited: request rate cut from 2.00/s to 1.00/s",
        f"request rate recovered: cap dropped ({RECOVERY_GROWTH**64:.2f}/s, observed 0.00/s)",
    ]
