"""The rate and concurrency governor: pure decision tables, then the governor in fake time."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import random

import pytest

from devin_async._errors import ConfigurationError
from devin_async._limits import (
    BACKOFF,
    CUBIC_C,
    MAX_PAUSE,
    MIN_RATE,
    MIN_SAMPLE,
    PRIOR_NOISE,
    UPDATE_INTERVAL,
    Governor,
    burst_size,
    cubic_k,
    cubic_rate,
    decreased_rate,
    learned_noise,
    may_cut,
    next_cut_at,
    overloaded,
    pause_end,
    position,
    rolled_window,
    should_drop_cap,
    take_ticket,
    ticket_start,
    window_rate,
)

INF = math.inf

# ------------------------------------------------------------------ decisions


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (100.5, (100.0, (1, 1, 0), (5, 4, 1))),
        (101.2, (101.0, (5, 4, 1), (9, 7, 2))),
        (102.0, (102.0, (9, 7, 2), (9, 7, 2))),
        (500.0, (500.0, (9, 7, 2), (9, 7, 2))),
    ],
    ids=["young", "next-window", "idle-window", "long-idle"],
)
def test_rolled_window(now: float, expected: tuple[float, object, object]) -> None:
    assert rolled_window(now, 100.0, (1, 1, 0), (5, 4, 1), (9, 7, 2)) == expected


@pytest.mark.parametrize(
    ("count", "now", "window_start", "born", "expected"),
    [
        (50, 100.01, 100.0, 100.0, 50.0),
        (50, 100.9, 100.0, 100.0, 50.0),
        (150, 101.5, 101.0, 100.0, 100.0),
        (150, 101.5, 101.0, 0.0, 100.0),
        (100, 101.0, 101.0, 0.0, 100.0),
        (0, 101.0, 101.0, 0.0, 0.0),
    ],
    ids=["young-counts-per-second", "young-end", "one-and-a-half", "old", "window-start", "none"],
)
def test_window_rate(
    count: int, now: float, window_start: float, born: float, expected: float
) -> None:
    assert window_rate(count, 0, now, window_start, born) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("limited", "answered", "noise", "expected"),
    [
        (1, 1, 0.0, False),
        (2, 2, 0.0, False),
        (3, 3, 0.0, True),
        (3, 100, 0.0, False),
        (6, 100, 0.0, True),
        (10, 50, PRIOR_NOISE, False),
        (11, 51, PRIOR_NOISE, True),
        (5, 100, PRIOR_NOISE, False),
        (500, 10_000, PRIOR_NOISE, False),
        (1_300, 10_000, PRIOR_NOISE, True),
        (2_100, 10_000, 0.2, False),
        (20, 20, 0.99, False),
    ],
    ids=[
        "one-429",
        "two-429s",
        "three-in-a-row",
        "three-of-a-hundred",
        "learned-zero-noise",
        "small-sample-within-prior",
        "small-sample-beyond",
        "random-5pct",
        "random-5pct-large-sample",
        "13pct-large-sample",
        "tolerated-noise",
        "all-refused",
    ],
)
def test_overloaded(limited: int, answered: int, noise: float, expected: bool) -> None:
    assert overloaded(limited, answered, noise) is expected


@pytest.mark.parametrize(
    ("before", "limited", "answered", "strikes", "expected"),
    [
        ((20, 100), 5, MIN_SAMPLE - 1, 0, None),
        ((20, 100), 0, 100, 0, (0.0, 0, False)),
        ((20, 100), 2, 100, 1, (0.0, 0, False)),
        ((20, 100), 20, 100, 0, (PRIOR_NOISE, 1, False)),
        ((20, 100), 20, 100, 1, (0.2, 0, True)),
        ((25, 100), 18, 100, 1, (0.18, 0, True)),
        ((40, 100), 40, 100, 1, (0.0, 0, False)),
    ],
    ids=[
        "too-few",
        "helped",
        "helped-resets-strikes",
        "first-strike",
        "second-strike-undoes",
        "not-clearly-lower",
        "too-many-for-noise",
    ],
)
def test_learned_noise(
    before: tuple[int, int],
    limited: int,
    answered: int,
    strikes: int,
    expected: tuple[float, int, bool] | None,
) -> None:
    assert learned_noise(PRIOR_NOISE, before, limited, answered, strikes) == expected


@pytest.mark.parametrize(
    ("rate", "accepted", "expected"),
    [
        (None, 200.0, 190.0),
        (100.0, 50.0, 47.5),
        (40.0, 50.0, 40.0),
        (None, 0.0, MIN_RATE),
        (10.0, 0.2, MIN_RATE),
    ],
    ids=["uncapped", "capped", "never-raises", "nothing-accepted", "floor"],
)
def test_decreased_rate(rate: float | None, accepted: float, expected: float) -> None:
    assert decreased_rate(rate, accepted) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("w_max", "start", "expected"),
    [
        (10.0, 10.0, 0.0),
        (10.0, 9.5, (0.05 / CUBIC_C) ** (1 / 3)),
        (10.0, 5.0, (0.5 / CUBIC_C) ** (1 / 3)),
        (10.0, 12.0, 0.0),
    ],
    ids=["no-cut", "five-percent", "half", "above"],
)
def test_cubic_k(w_max: float, start: float, expected: float) -> None:
    assert cubic_k(w_max, start) == pytest.approx(expected)


def test_cubic_rate_starts_at_the_cut_flattens_at_w_max_then_probes() -> None:
    k = cubic_k(200.0, 190.0)
    assert k == pytest.approx(3.684, abs=1e-3)
    assert cubic_rate(0.0, 200.0, k) == pytest.approx(190.0)
    assert cubic_rate(-5.0, 200.0, k) == pytest.approx(190.0)  # paused: not started
    assert cubic_rate(k, 200.0, k) == pytest.approx(200.0)
    assert cubic_rate(k + 1.0, 200.0, k) == pytest.approx(200.2)
    assert cubic_rate(k + 10.0, 200.0, k) == pytest.approx(400.0)
    samples = [cubic_rate(t / 10, 200.0, k) for t in range(200)]
    assert samples == sorted(samples)


@pytest.mark.parametrize(
    ("rate", "sending", "w_max", "configured", "expected"),
    [
        (100.0, 40.0, 50.0, None, True),
        (100.0, 40.0, 60.0, None, False),
        (100.0, 60.0, 40.0, None, False),
        (100.0, 0.0, 0.0, 100.0, False),
    ],
    ids=["above-both", "limit-not-doubled", "demand-presses", "configured-stays"],
)
def test_should_drop_cap(
    rate: float, sending: float, w_max: float, configured: float | None, expected: bool
) -> None:
    assert should_drop_cap(rate, sending, w_max, configured) is expected


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


async def test_try_acquire_takes_a_slot_only_when_nothing_would_wait() -> None:
    governor, fake, _ = make(max_in_flight=2)
    assert governor.try_acquire()
    assert governor.in_flight == 1
    await governor.acquire()
    assert not governor.try_acquire()  # no free slot: nothing is taken
    assert governor.in_flight == 2
    governor.release()
    governor.release()
    governor.on_rate_limited(5.0)  # a pause: the caller must wait in acquire()
    assert not governor.try_acquire()
    assert governor.in_flight == 0
    await fake.advance(5.0)
    assert governor.try_acquire()
    governor.release()
    capped, _, _ = make(requests_per_second=10)
    assert not capped.try_acquire()  # a cap's schedule is kept by acquire() alone
    assert capped.in_flight == 0


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


# ------------------------------------------------------------------ 429: is it ours?


def answers(governor: Governor, ok: int = 0, limited: int = 0) -> None:
    """Feed the governor ``ok`` successes, then ``limited`` 429s (no Retry-After)."""
    for _ in range(ok):
        governor.on_success()
    for _ in range(limited):
        governor.on_rate_limited(None)


def mixed(governor: Governor, ok: int, limited: int) -> None:
    """Feed ``ok`` successes and ``limited`` 429s interleaved evenly."""
    total = ok + limited
    for i in range(total):
        if (i + 1) * limited // total > i * limited // total:
            governor.on_rate_limited(None)
        else:
            governor.on_success()


async def test_isolated_429s_never_cut() -> None:
    governor, fake, _ = make()
    for _ in range(30):
        answers(governor, ok=49, limited=1)  # 2 %, spread out
        fake.now += 0.05
    assert governor.rate is None
    capped, fake, _ = make(requests_per_second=100)
    for _ in range(30):
        mixed(capped, ok=95, limited=5)  # 5 %, as random as it gets
        fake.now += 1.0
    assert capped.rate == 100.0


async def test_a_burst_of_429s_caps_at_95_percent_of_the_accepted_rate() -> None:
    governor, _, _ = make()
    answers(governor, ok=40, limited=10)
    assert governor.rate is None  # 10 of 50: not beyond 10 % with confidence
    answers(governor, limited=1)
    assert governor.rate == pytest.approx(BACKOFF * 40)  # 40 accepted in its first second


async def test_a_cut_never_raises_a_configured_cap() -> None:
    governor, _, _ = make(requests_per_second=20)
    answers(governor, ok=40, limited=11)
    assert governor.rate == 20.0
    low, _, _ = make(requests_per_second=100)
    answers(low, ok=40, limited=11)
    assert low.rate == pytest.approx(38.0)


async def test_retry_after_pauses_every_caller_including_those_already_waiting() -> None:
    governor, fake, requests = make(requests_per_second=1)
    tasks = requests.spawn(6)
    await fake.advance(1.5)
    assert requests.starts == [T0, T0 + 1]
    governor.on_rate_limited(5.0)
    assert governor.paused_until == T0 + 6.5
    assert governor.rate == 1.0  # one 429 pauses, but is no evidence of a limit
    await fake.run(*tasks)
    later = requests.starts[2:]
    assert len(later) == 4
    assert all(start >= governor.paused_until for start in later)
    assert gaps(later) == [1.0, 1.0, 1.0]  # resumed without a burst
    assert governor.in_flight == 0


async def test_retry_after_pauses_callers_waiting_for_a_slot() -> None:
    governor, fake, requests = make(max_in_flight=1)
    tasks = requests.spawn(3, latency=1.0)
    await fake.settle()
    assert requests.starts == [T0]
    governor.on_rate_limited(4.0)
    assert governor.rate is None
    await fake.run(*tasks)
    assert requests.starts[1] >= T0 + 4.0
    assert governor.in_flight == 0


async def test_no_burst_after_a_pause() -> None:
    governor, fake, requests = make(requests_per_second=4)
    governor.on_rate_limited(1.0)
    await fake.run(*requests.spawn(4))
    assert requests.starts == [T0 + 1.0, T0 + 1.25, T0 + 1.5, T0 + 1.75]


async def test_a_cut_reschedules_callers_already_waiting() -> None:
    governor, fake, requests = make(requests_per_second=4)
    tasks = requests.spawn(10)
    await fake.settle()
    assert requests.starts == [T0] * 4  # the burst; six wait for T0 + 0.25 ...
    answers(governor, limited=6)  # 4 accepted in the first second: cut to 3.8/s
    assert governor.rate == pytest.approx(3.8)
    await fake.run(*tasks)
    # Spaced at the cut rate, which grows back towards 4/s along its curve.
    assert all(0.25 < gap <= 1 / 3.8 + 1e-9 for gap in gaps(requests.starts[4:]))
    assert requests.starts[4] > T0 + 0.25  # the reserved slot moved later


async def test_one_cut_per_window_and_no_evidence_from_before_it() -> None:
    governor, fake, _ = make(requests_per_second=100)
    answers(governor, ok=40, limited=11)
    assert governor.rate == pytest.approx(38.0)
    fake.now += 0.5
    answers(governor, ok=5, limited=50)  # within the cut window
    assert governor.rate >= 38.0  # (growing back along the curve)
    fake.now += 1.6
    answers(governor, limited=2)  # the window is over, but its 429s are no evidence
    grown = governor.rate
    assert grown >= 38.0
    answers(governor, ok=MIN_SAMPLE, limited=10)  # 12 of 32 since: measured, and a limit
    assert governor.rate is not None
    assert governor.rate < grown


async def test_429s_during_a_pause_are_no_evidence() -> None:
    governor, fake, _ = make()
    governor.on_rate_limited(10.0)
    fake.now += 5.0
    answers(governor, limited=20)
    assert governor.rate is None
    fake.now += 5.5
    answers(governor, ok=30, limited=2)
    assert governor.rate is None
    answers(governor, limited=8)  # 10 of 40 after the pause
    assert governor.rate is not None


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
        answers(governor, limited=MIN_SAMPLE)
        fake.now += 5.0
    assert governor.rate == MIN_RATE


# ------------------------------------------------------------------ learning the noise


async def test_a_cut_that_worked_teaches_that_the_429s_are_ours() -> None:
    governor, fake, _ = make(requests_per_second=100)
    answers(governor, ok=40, limited=11)
    assert governor.noise == PRIOR_NOISE
    fake.now += 1.5
    answers(governor, ok=MIN_SAMPLE)
    fake.now += 5.0
    governor.on_success()  # the plateau is over: no 429 since the cut
    assert governor.noise == 0.0
    before = governor.rate
    answers(governor, ok=20, limited=3)  # now 3 in 23 is a limit
    assert governor.rate is not None
    assert governor.rate < before


async def test_cuts_that_do_not_lower_the_429s_are_undone() -> None:
    governor, fake, _ = make()
    mixed(governor, ok=80, limited=20)
    assert governor.rate is not None  # 20 % random 429s look like a limit at first
    fake.now += 1.5
    mixed(governor, ok=80, limited=20)  # the cut changed nothing: strike one, cut again
    assert governor.rate is not None
    assert governor.noise == PRIOR_NOISE
    fake.now += 1.5
    mixed(governor, ok=80, limited=20)  # strike two: not ours
    assert governor.rate is None
    assert governor.noise == pytest.approx(0.2, abs=0.02)
    fake.now += 1.5
    mixed(governor, ok=800, limited=200)
    assert governor.rate is None  # tolerated from now on


async def test_cuts_are_also_undone_when_the_plateau_ends() -> None:
    governor, fake, _ = make()
    mixed(governor, ok=80, limited=20)
    fake.now += 1.5
    mixed(governor, ok=80, limited=20)  # strike one, cut again
    assert governor.rate is not None
    fake.now += 1.5
    mixed(governor, ok=27, limited=3)  # 10 %: no limit, yet not clearly lower than 20 %
    assert governor.rate is not None
    fake.now += 10.0
    governor.on_success()  # the curve is back at its maximum: strike two
    assert governor.rate is None


async def test_too_many_429s_are_never_taken_for_noise() -> None:
    governor, fake, _ = make()
    for _ in range(5):
        mixed(governor, ok=50, limited=50)
        fake.now += 1.5
    assert governor.rate is not None
    assert governor.noise == 0.0  # a 50 % fraction is never tolerated


async def test_a_random_pattern_does_not_learn_before_the_cut_window_ends() -> None:
    governor, fake, _ = make()
    answers(governor, ok=10, limited=10)
    cut = governor.rate
    fake.now += 0.5
    answers(governor, ok=10, limited=10)
    fake.now += 0.6  # the window is over; the evidence since is too small to learn from
    answers(governor, limited=5)
    assert governor.rate is not None
    assert cut is not None
    assert governor.rate >= cut  # no second cut
    assert governor.noise == PRIOR_NOISE


# ------------------------------------------------------------------ recovery


async def test_recovery_follows_cubic_up_to_the_configured_cap() -> None:
    governor, fake, _ = make(requests_per_second=100)
    answers(governor, ok=40, limited=11)
    k = cubic_k(40.0, 38.0)
    seen: list[float] = []
    for _ in range(400):
        fake.now += 0.05
        governor.on_success()
        assert governor.rate is not None
        seen.append(governor.rate)
    assert seen == sorted(seen)
    assert seen[0] == pytest.approx(38.0, abs=0.1)
    at_k = seen[round(k / 0.05) - 1]
    assert at_k == pytest.approx(40.0, abs=0.1)  # flat around the old maximum
    assert seen[-1] == 100.0  # 20 s: probed on up to the configured cap, never above
    assert max(seen) == 100.0
    updates = len(set(seen))
    assert updates <= 20.0 / UPDATE_INTERVAL + 1


async def test_recovery_waits_for_the_end_of_the_pause() -> None:
    governor, fake, _ = make(requests_per_second=100)
    answers(governor, ok=40, limited=10)
    governor.on_rate_limited(10.0)
    assert governor.rate == pytest.approx(38.0)
    fake.now += 9.0
    governor.on_success()
    assert governor.rate == pytest.approx(38.0)
    fake.now += 1.0 + cubic_k(40.0, 38.0) + 5.0
    governor.on_success()
    assert governor.rate == pytest.approx(
        cubic_rate(cubic_k(40.0, 38.0) + 5.0, 40.0, cubic_k(40.0, 38.0))
    )


async def test_adaptive_cap_is_dropped_once_far_above_demand_and_the_old_limit() -> None:
    governor, fake, requests = make()
    answers(governor, ok=40, limited=11)
    assert governor.rate == pytest.approx(38.0)
    fake.now += 5.0
    governor.on_success()
    assert governor.rate is not None  # back at about 40: not twice the old limit
    fake.now += 10.0
    governor.on_success()
    assert governor.rate is None  # 80/s probed, nothing sent: dropped
    await fake.run(*requests.spawn(50))
    assert fake.sleeps == []


async def test_callers_waiting_when_the_cap_is_dropped_keep_their_slots() -> None:
    governor, fake, requests = make()
    answers(governor, limited=3)
    assert governor.rate == MIN_RATE  # nothing accepted: the floor, one start per 2 s
    tasks = requests.spawn(3)
    await fake.advance(1.0)
    assert len(requests.starts) == 1
    await fake.run(*tasks)
    assert requests.starts == [T0, T0 + 2.0, T0 + 4.0]
    fake.now += 20.0
    governor.on_success()
    assert governor.rate is None
    assert governor.in_flight == 0
    await fake.run(*requests.spawn(5))
    assert requests.starts[3:] == [fake.now] * 5


# ------------------------------------------------------------------ simulations


class Server:
    """A simulated server: a random 429 fraction, or a token bucket of N/s holding 1 s."""

    def __init__(self, fake: FakeTime, *, reject: float = 0.0, limit: float | None = None):
        self.fake = fake
        self.rng = random.Random(8)
        self.reject = reject
        self.limit = limit
        self.tokens = limit or 0.0
        self.last = fake.now
        self.ok: dict[int, int] = {}
        self.limited: dict[int, int] = {}

    def answer(self) -> bool:
        now = self.fake.now
        allowed = self.rng.random() >= self.reject
        if allowed and self.limit is not None:
            self.tokens = min(self.limit, self.tokens + (now - self.last) * self.limit)
            self.last = now
            allowed = self.tokens >= 1.0
            self.tokens -= allowed
        second = int(now - T0)
        counts = self.ok if allowed else self.limited
        counts[second] = counts.get(second, 0) + 1
        return allowed


async def simulate(server: Server, seconds: float, workers: int = 8) -> Governor:
    """Workers sending through one governor, 10 ms per request (800/s at most)."""
    fake = server.fake
    governor = Governor(max_in_flight=workers, clock=fake.clock, sleep=fake.sleep)

    async def worker() -> None:
        while fake.now < T0 + seconds:
            await governor.acquire()
            try:
                await fake.hold(0.01)
            finally:
                governor.release()
            if server.answer():
                governor.on_success()
            else:
                governor.on_rate_limited(None)

    await fake.run(*[asyncio.create_task(worker()) for _ in range(workers)])
    return governor


async def test_random_429s_keep_most_of_the_throughput() -> None:
    # Regression (issue 8, item 4): any 429 used to halve the rate, and 5 % random 429s
    # cut the accepted rate by orders of magnitude.
    fake = FakeTime()
    baseline = Server(fake)
    await simulate(baseline, 20.0)
    fake = FakeTime()
    server = Server(fake, reject=0.05)
    governor = await simulate(server, 20.0)
    unthrottled = sum(baseline.ok.values())
    assert sum(server.ok.values()) >= 0.9 * unthrottled
    assert governor.rate is None


@pytest.mark.parametrize("limit", [20.0, 100.0])
async def test_a_hard_limit_is_tracked_with_few_429s(limit: float) -> None:
    fake = FakeTime()
    server = Server(fake, limit=limit)
    await simulate(server, 40.0)
    settled = range(10, 40)
    ok = [server.ok.get(s, 0) for s in settled]
    limited = sum(server.limited.get(s, 0) for s in settled)
    assert sum(ok) >= 0.9 * limit * len(ok)
    assert limited <= 0.05 * (sum(ok) + limited)
    assert min(ok) >= 0.75 * limit
    assert max(ok) <= 1.25 * limit


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
    governor, fake, _ = make()
    with caplog.at_level(logging.DEBUG, logger="devin_async"):
        answers(governor, ok=40, limited=11)
        governor.on_rate_limited(3.0)
        fake.now += 1.0
        governor.on_rate_limited(5.0)  # extends the pause: no new "pausing" line
        fake.now += 10.0
        answers(governor, limited=MIN_SAMPLE)  # 100 %: never noise, cut again
        fake.now += 1_000.0
        governor.on_success()
    messages = [r.getMessage() for r in caplog.records if r.name == "devin_async"]
    assert messages == [
        "rate limited: capping requests at 38.00/s",
        "rate limited: pausing all requests for 3.00s",
        "rate limited: request rate cut from 38.00/s to 0.50/s",
        f"request rate recovered: cap dropped ({cubic_rate(1_000.0, MIN_RATE, 0.0):.2f}/s, "
        "sending 0.00/s)",
    ]


# ------------------------------------------------------------------ a sleep without a clock


async def test_a_sleep_that_does_not_advance_the_clock_is_called_once_per_wait() -> None:
    # Only ``sleep`` injected: the real clock barely moves while it returns at once.
    # Each caller sleeps towards its start once and then goes: no spinning on the clock.
    calls: list[float] = []

    async def instant(delay: float) -> None:
        calls.append(delay)
        await asyncio.sleep(0)

    governor = Governor(requests_per_second=2.0, max_in_flight=4, sleep=instant)
    for _ in range(12):
        await governor.acquire()
        governor.release()
        governor.on_success()
    # A burst of 2 starts at once; each of the other 10 waits (up to 5 s) with one sleep.
    assert len(calls) == 10
    assert all(delay > 0 for delay in calls)
    governor.on_rate_limited(30.0)  # a pause the clock will not reach during the test
    await governor.acquire()
    governor.release()
    assert len(calls) == 11


async def test_a_start_moved_later_during_a_sleep_sleeps_again() -> None:
    calls: list[float] = []
    governor = Governor(max_in_flight=2, sleep=lambda delay: _pause_then(governor, calls, delay))
    governor.on_rate_limited(10.0)
    await governor.acquire()
    governor.release()
    # The first sleep saw the pause extended by 20 s: one more sleep, then the start.
    assert len(calls) == 2
    assert calls[1] > 10.0


async def _pause_then(governor: Governor, calls: list[float], delay: float) -> None:
    calls.append(delay)
    if len(calls) == 1:
        governor.on_rate_limited(30.0)
    await asyncio.sleep(0)
