"""The settled predicates and the wait loop, on a fake clock (no real waiting)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from multidict import CIMultiDict

from devin_async._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AwaitTimeoutError,
    RateLimitError,
    ResponseValidationError,
)
from devin_async._models import Session, SessionStatus, StatusDetail
from devin_async._polling import (
    Predicate,
    is_settled,
    is_settled_or_awaiting_approval,
    wait_for_session,
)
from devin_async._protocol import Request, Response, status_error

URL = "https://api.devin.ai/v3/organizations/org-1/sessions/devin-1"

# The user's design card, written out independently of the module's constants.
SETTLED_STATUSES = {"exit", "error", "suspended"}
SETTLED_DETAILS = {"finished", "waiting_for_user"}

STATUSES: list[SessionStatus | str] = [*SessionStatus, "some_new_state"]
DETAILS: list[StatusDetail | str | None] = [*StatusDetail, None, "some_new_detail"]
PAIRS = [(status, detail) for status in STATUSES for detail in DETAILS]


def make_session(status: str = "running", detail: str | None = "working") -> Session:
    return Session(
        session_id="devin-1",
        url="https://app.devin.ai/sessions/1",
        status=status,
        org_id="org-1",
        created_at=1,
        updated_at=2,
        acus_consumed=0.0,
        status_detail=detail,
    )


def http_error(status: int, **headers: str) -> APIStatusError:
    request = Request("GET", "/v3/organizations/org-1/sessions/devin-1")
    return status_error(request, Response(status, CIMultiDict(headers), b""), URL)


# ------------------------------------------------------------------ predicates


@pytest.mark.parametrize(("status", "detail"), PAIRS, ids=[f"{s}/{d}" for s, d in PAIRS])
def test_is_settled(status: str, detail: str | None) -> None:
    expected = status in SETTLED_STATUSES or detail in SETTLED_DETAILS
    assert is_settled(make_session(status, detail)) is expected


@pytest.mark.parametrize(("status", "detail"), PAIRS, ids=[f"{s}/{d}" for s, d in PAIRS])
def test_is_settled_or_awaiting_approval(status: str, detail: str | None) -> None:
    expected = (
        status in SETTLED_STATUSES or detail in SETTLED_DETAILS or detail == "waiting_for_approval"
    )
    assert is_settled_or_awaiting_approval(make_session(status, detail)) is expected


def test_waiting_for_approval_is_not_settled_by_default() -> None:
    session = make_session("running", "waiting_for_approval")
    assert is_settled(session) is False
    assert is_settled_or_awaiting_approval(session) is True


@pytest.mark.parametrize(
    ("status", "detail", "expected"),
    [("exit", None, True), ("running", "finished", True), ("running", "working", False)],
    ids=["exit", "finished", "working"],
)
def test_plain_strings_behave_like_members(status: str, detail: str, expected: bool) -> None:
    # A session built by hand (or a value the converter kept as str) still compares.
    session = make_session(str(status), detail)
    assert type(session.status) is str
    assert is_settled(session) is expected


# ------------------------------------------------------------------ the wait loop


class FakeTime:
    """A monotonic clock and a sleep that only moves it forward."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self.sleep_starts: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        assert delay >= 0
        self.sleeps.append(delay)
        self.sleep_starts.append(self.now)
        self.now += delay


class Fetch:
    """A scripted poll: plays outcomes in order, repeating the last; raises exceptions."""

    def __init__(
        self, outcomes: Sequence[Session | BaseException], time: FakeTime, cost: float = 0.0
    ) -> None:
        self.outcomes = list(outcomes)
        self.time = time
        self.cost = cost  # seconds each request takes on the fake clock
        self.timeouts: list[float] = []

    @property
    def calls(self) -> int:
        return len(self.timeouts)

    async def __call__(self, timeout: float) -> Session:
        outcome = self.outcomes[min(self.calls, len(self.outcomes) - 1)]
        self.timeouts.append(timeout)
        self.time.now += self.cost
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


async def wait(
    fetch: Fetch,
    time: FakeTime,
    *,
    until: Predicate = is_settled,
    timeout: float = 600.0,
    poll_interval: float = 1.0,
    max_poll_interval: float = 8.0,
) -> Session:
    return await wait_for_session(
        fetch,
        session_id="devin-1",
        until=until,
        timeout=timeout,
        poll_interval=poll_interval,
        max_poll_interval=max_poll_interval,
        sleep=time.sleep,
        clock=time.clock,
    )


WORKING = make_session("running", "working")
APPROVAL = make_session("running", "waiting_for_approval")
FINISHED = make_session("running", "finished")


async def test_returns_the_settled_session() -> None:
    time = FakeTime()
    finished = make_session("running", "finished")
    fetch = Fetch([WORKING, WORKING, finished], time)
    assert await wait(fetch, time) is finished
    assert fetch.calls == 3
    assert len(time.sleeps) == 2


async def test_already_settled_returns_without_sleeping() -> None:
    time = FakeTime()
    fetch = Fetch([make_session("exit", None)], time)
    assert (await wait(fetch, time)).status == "exit"
    assert fetch.calls == 1
    assert time.sleeps == []


async def test_waiting_for_approval_does_not_end_the_default_wait() -> None:
    time = FakeTime()
    fetch = Fetch([APPROVAL, APPROVAL, FINISHED], time)
    assert await wait(fetch, time) is FINISHED
    assert fetch.calls == 3


async def test_custom_until() -> None:
    time = FakeTime()
    fetch = Fetch([WORKING, APPROVAL, FINISHED], time)
    assert await wait(fetch, time, until=is_settled_or_awaiting_approval) is APPROVAL
    assert fetch.calls == 2


async def test_custom_until_can_ignore_the_default_rule() -> None:
    time = FakeTime()
    tagged = make_session("running", "working")
    fetch = Fetch([FINISHED, FINISHED, tagged], time)
    assert await wait(fetch, time, until=lambda s: s is tagged) is tagged
    assert fetch.calls == 3


async def test_the_first_poll_gets_the_whole_deadline_as_request_timeout() -> None:
    time = FakeTime()
    fetch = Fetch([WORKING, WORKING, FINISHED], time, cost=0.5)
    await wait(fetch, time, timeout=30.0)
    assert fetch.timeouts[0] == 30.0
    # Later polls only get what is left of the deadline.
    assert fetch.timeouts[1] == pytest.approx(30.0 - 0.5 - time.sleeps[0])


@pytest.mark.parametrize(
    "error",
    [
        APIConnectionError("refused", method="GET", url=URL, request_sent=False),
        APIConnectionError("reset", method="GET", url=URL, request_sent=True),
        APITimeoutError("slow", method="GET", url=URL, request_sent=True),
        http_error(408),
        http_error(429),
        http_error(500),
        http_error(502),
        http_error(503),
        http_error(504),
        ResponseValidationError("not JSON", body="<html>"),
    ],
    ids=["refused", "reset", "timeout", "408", "429", "500", "502", "503", "504", "bad-body"],
)
async def test_transient_errors_do_not_end_the_wait(error: Exception) -> None:
    time = FakeTime()
    fetch = Fetch([WORKING, error, error, FINISHED], time)
    assert await wait(fetch, time) is FINISHED
    assert fetch.calls == 4
    assert len(time.sleeps) == 3


async def test_rate_limit_retry_after_raises_the_sleep_floor() -> None:
    time = FakeTime()
    limited = http_error(429, **{"Retry-After": "20"})
    assert isinstance(limited, RateLimitError)
    fetch = Fetch([limited, FINISHED], time)
    assert await wait(fetch, time, poll_interval=1.0, max_poll_interval=8.0) is FINISHED
    assert time.sleeps == [20.0]


async def test_retry_after_on_503_raises_the_sleep_floor() -> None:
    time = FakeTime()
    fetch = Fetch([http_error(503, **{"Retry-After": "15"}), FINISHED], time)
    await wait(fetch, time)
    assert time.sleeps == [15.0]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
async def test_permanent_errors_end_the_wait_at_once(status: int) -> None:
    time = FakeTime()
    error = http_error(status)
    fetch = Fetch([WORKING, error, FINISHED], time)
    with pytest.raises(APIStatusError) as info:
        await wait(fetch, time)
    assert info.value is error
    assert fetch.calls == 2
    assert len(time.sleeps) == 1


async def test_foreign_exception_ends_the_wait() -> None:
    time = FakeTime()
    fetch = Fetch([KeyError("bug"), FINISHED], time)
    with pytest.raises(KeyError):
        await wait(fetch, time)
    assert fetch.calls == 1


async def test_deadline_raises_with_the_last_session() -> None:
    time = FakeTime()
    first, last = make_session("running", "working"), make_session("claimed", None)
    fetch = Fetch([first, last], time)
    with pytest.raises(AwaitTimeoutError) as info:
        await wait(fetch, time, timeout=30.0, poll_interval=1.0, max_poll_interval=4.0)
    err = info.value
    assert err.session is last
    assert err.elapsed == pytest.approx(30.0)
    assert err.polls == fetch.calls
    assert err.polls > 2
    assert "devin-1" in str(err)
    assert "claimed" in str(err)
    assert isinstance(err, TimeoutError)


async def test_deadline_without_any_successful_poll() -> None:
    time = FakeTime()
    error = APIConnectionError("refused", method="GET", url=URL, request_sent=False)
    fetch = Fetch([error], time)
    with pytest.raises(AwaitTimeoutError) as info:
        await wait(fetch, time, timeout=10.0)
    assert info.value.session is None
    assert info.value.polls == fetch.calls
    assert "last seen" not in str(info.value)


async def test_zero_timeout_raises_without_polling() -> None:
    time = FakeTime()
    fetch = Fetch([FINISHED], time)
    with pytest.raises(AwaitTimeoutError) as info:
        await wait(fetch, time, timeout=0.0)
    assert info.value.polls == 0
    assert fetch.calls == 0


@pytest.mark.parametrize(
    "outcomes",
    [
        [WORKING],
        [http_error(429, **{"Retry-After": "50"})],
        [WORKING, http_error(503, **{"Retry-After": "45"})],
    ],
    ids=["backoff", "retry-after", "mixed"],
)
async def test_sleeps_never_overshoot_the_deadline(outcomes: list[Session | Exception]) -> None:
    time = FakeTime()
    deadline = time.now + 60.0
    fetch = Fetch(outcomes, time, cost=0.25)
    with pytest.raises(AwaitTimeoutError):
        await wait(fetch, time, timeout=60.0, poll_interval=3.0, max_poll_interval=40.0)
    assert time.sleeps
    for start, delay in zip(time.sleep_starts, time.sleeps, strict=True):
        assert delay <= max(0.0, deadline - start) + 1e-9
    assert all(t <= 60.0 for t in fetch.timeouts)
    assert time.now == pytest.approx(deadline, abs=0.25)


async def test_backoff_grows_while_state_is_unchanged() -> None:
    time = FakeTime()
    fetch = Fetch([WORKING] * 5 + [FINISHED], time)
    await wait(fetch, time, poll_interval=1.0, max_poll_interval=64.0)
    ranges = [(1.0, 1.5), (2.0, 2.5), (4.0, 4.5), (8.0, 8.5), (16.0, 16.5)]
    assert len(time.sleeps) == len(ranges)
    for delay, (low, high) in zip(time.sleeps, ranges, strict=True):
        assert low <= delay <= high


async def test_backoff_resets_on_a_status_change() -> None:
    time = FakeTime()
    fetch = Fetch([WORKING] * 4 + [APPROVAL, APPROVAL, FINISHED], time)
    await wait(fetch, time, poll_interval=1.0, max_poll_interval=64.0)
    # working x4 grows; waiting_for_approval is a change, so the delay starts over.
    ranges = [(1.0, 1.5), (2.0, 2.5), (4.0, 4.5), (8.0, 8.5), (1.0, 1.5), (2.0, 2.5)]
    assert len(time.sleeps) == len(ranges)
    for delay, (low, high) in zip(time.sleeps, ranges, strict=True):
        assert low <= delay <= high


async def test_errors_do_not_reset_the_backoff() -> None:
    time = FakeTime()
    error = http_error(503)
    fetch = Fetch([WORKING, error, WORKING, error, FINISHED], time)
    await wait(fetch, time, poll_interval=1.0, max_poll_interval=64.0)
    ranges = [(1.0, 1.5), (2.0, 2.5), (4.0, 4.5), (8.0, 8.5)]
    for delay, (low, high) in zip(time.sleeps, ranges, strict=True):
        assert low <= delay <= high


async def test_cancelled_error_from_fetch_propagates() -> None:
    time = FakeTime()
    fetch = Fetch([WORKING, asyncio.CancelledError(), FINISHED], time)
    with pytest.raises(asyncio.CancelledError):
        await wait(fetch, time)
    assert fetch.calls == 2


async def test_cancelling_the_waiting_task_ends_the_wait() -> None:
    time = FakeTime()
    parked = asyncio.Event()

    async def park(delay: float) -> None:
        parked.set()
        await asyncio.Event().wait()  # never set: only cancellation ends this

    fetch = Fetch([WORKING], time)
    task = asyncio.create_task(
        wait_for_session(
            fetch,
            session_id="devin-1",
            until=is_settled,
            timeout=600.0,
            poll_interval=1.0,
            max_poll_interval=8.0,
            sleep=park,
            clock=time.clock,
        )
    )
    await parked.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    assert fetch.calls == 1
