"""The client-wide poller, with fake fetch coroutines: batching, sharing, failures, lifecycle.

No HTTP here: ``FakeApi`` plays a scripted timeline per session id through ``fetch_one``
and ``fetch_many`` and records every call. Real loop timers with millisecond intervals
keep the tests fast; outcomes are checked through fetch counts and futures.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence

import pytest
from multidict import CIMultiDict

from devin_async._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    AwaitTimeoutError,
    ClientClosedError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseValidationError,
)
from devin_async._fanout import SessionWaits
from devin_async._models import Session
from devin_async._poller import LIST_BATCH, MAX_QUERY_BYTES, Poller, Waiter, batches
from devin_async._polling import Predicate, is_settled
from devin_async._protocol import Request, Response, status_error
from devin_async._retry import RetryPolicy

URL = "https://api.devin.ai/v3/organizations/org-1/sessions"
TASK_NAME = "devin_async poller"
FAST = {"poll_interval": 0.001, "max_poll_interval": 0.002}

State = tuple[str, str | None]
WORKING: State = ("running", "working")
APPROVAL: State = ("running", "waiting_for_approval")
FINISHED: State = ("running", "finished")


def make_session(session_id: str, state: State = WORKING, acus: float = 0.0) -> Session:
    status, detail = state
    return Session(
        session_id=session_id,
        url=f"https://app.devin.ai/sessions/{session_id}",
        status=status,
        org_id="org-1",
        created_at=1,
        updated_at=2,
        acus_consumed=acus,
        status_detail=detail,
    )


def http_error(status: int, **headers: str) -> APIStatusError:
    request = Request("GET", "/v3/organizations/org-1/sessions")
    return status_error(request, Response(status, CIMultiDict(headers), b""), URL)


def rate_limited(retry_after: float | None) -> RateLimitError:
    headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
    err = http_error(429, **headers)
    assert isinstance(err, RateLimitError)
    return err


def never(session: Session) -> bool:
    return False


def poller_tasks() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name() == TASK_NAME]


async def eventually(condition: Callable[[], bool], within: float = 5.0) -> None:
    """Return once ``condition()`` holds; fail with TimeoutError after ``within`` seconds."""
    # Polling a plain condition: the fakes have no event for every fact a test checks.
    async with asyncio.timeout(within):
        while True:
            if condition():
                return
            await asyncio.sleep(0.001)


async def outcome(waiter: Waiter) -> Session:
    """The waiter's result (or its exception), with a safety deadline."""
    async with asyncio.timeout(5):
        return await waiter.future


Outcome = State | Session | BaseException


class FakeApi:
    """Scripted sessions behind ``fetch_one``/``fetch_many``; every call is recorded.

    Each id plays its timeline one read at a time (the last entry repeats); an entry is a
    (status, detail) state, a ready Session, or an exception to raise. Ids without a
    timeline keep answering ``default``.
    """

    def __init__(self, default: State = WORKING) -> None:
        self.default = default
        self.timelines: dict[str, list[Outcome]] = {}
        self.reads: Counter[str] = Counter()
        self.one_calls: list[str] = []
        self.one_times: list[tuple[str, float]] = []
        self.many_calls: list[list[str]] = []
        self.many_failures: list[BaseException] = []  # raised by the next list calls
        self.failing_batches: dict[str, BaseException] = {}  # a batch with this id raises
        self.hidden: set[str] = set()  # left out of every list result
        self.pause_at: tuple[str, int] | None = None  # (id, read number) to hold
        self.paused = asyncio.Event()
        self.resume = asyncio.Event()

    def script(self, session_id: str, *timeline: Outcome) -> None:
        self.timelines[session_id] = list(timeline)

    def _next(self, session_id: str) -> Session:
        timeline = self.timelines.get(session_id) or [self.default]
        item = timeline[min(self.reads[session_id], len(timeline) - 1)]
        self.reads[session_id] += 1
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, Session):
            return item
        return make_session(session_id, item)

    async def fetch_one(self, session_id: str) -> Session:
        self.one_calls.append(session_id)
        self.one_times.append((session_id, asyncio.get_running_loop().time()))
        if self.pause_at == (session_id, self.one_calls.count(session_id)):
            self.paused.set()
            await self.resume.wait()
        await asyncio.sleep(0)
        return self._next(session_id)

    async def fetch_many(self, session_ids: Sequence[str]) -> list[Session]:
        self.many_calls.append(list(session_ids))
        await asyncio.sleep(0)
        if self.many_failures:
            raise self.many_failures.pop(0)
        for session_id in session_ids:
            if session_id in self.failing_batches:
                raise self.failing_batches[session_id]
        return [self._next(i) for i in session_ids if i not in self.hidden]

    def one_count(self, session_id: str) -> int:
        return self.one_calls.count(session_id)


class Harness:
    """A Poller over a FakeApi that remembers its waiters, so teardown can release them."""

    def __init__(self, api: FakeApi, *, list_endpoint: bool) -> None:
        self.api = api
        self.poller = Poller(api.fetch_one, api.fetch_many if list_endpoint else None)
        self.waiters: list[Waiter] = []

    def wait(
        self,
        session_id: str,
        until: Predicate = is_settled,
        *,
        on_change: Callable[[Session], object] | None = None,
        poll_interval: float = FAST["poll_interval"],
        max_poll_interval: float = FAST["max_poll_interval"],
    ) -> Waiter:
        waiter = self.poller.subscribe(
            session_id,
            until,
            on_change=on_change,
            poll_interval=poll_interval,
            max_poll_interval=max_poll_interval,
        )
        self.waiters.append(waiter)
        return waiter

    async def release(self) -> None:
        for waiter in self.waiters:
            self.poller.unsubscribe(waiter)
            future = waiter.future
            if not future.done():
                future.cancel()
            elif not future.cancelled():
                future.exception()  # retrieved: no "exception was never retrieved" log
        await self.poller.stopped()


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
async def harness(api: FakeApi) -> AsyncIterator[Harness]:
    """A poller with both fetchers (org scope)."""
    h = Harness(api, list_endpoint=True)
    yield h
    await h.release()
    assert poller_tasks() == []


@pytest.fixture
async def get_only(api: FakeApi) -> AsyncIterator[Harness]:
    """A poller without the list endpoint (enterprise scope): one GET per session."""
    h = Harness(api, list_endpoint=False)
    yield h
    await h.release()
    assert poller_tasks() == []


def ids(n: int) -> list[str]:
    return [f"devin-{i:032x}" for i in range(n)]


# ------------------------------------------------------------------ batches


@pytest.mark.parametrize(
    ("given", "kwargs", "sizes"),
    [
        ([], {}, []),
        (["devin-a"], {}, [1]),
        (ids(LIST_BATCH), {}, [LIST_BATCH]),
        (ids(LIST_BATCH + 1), {}, [LIST_BATCH, 1]),
        (ids(2 * LIST_BATCH + 50), {}, [LIST_BATCH, LIST_BATCH, 50]),
        (ids(1000), {}, [200] * 5),
        # 87-character ids cost 100 bytes each ("session_ids=" + id + "&"): 120 per budget.
        (["x" * 87] * 250, {}, [120, 120, 10]),
        (["aa", "bb", "cc"], {"budget": 30}, [2, 1]),
        (["aa", "bb", "cc"], {"budget": 29}, [1, 1, 1]),
        (list("abcde"), {"size": 2}, [2, 2, 1]),
        (["x" * 20_000], {}, [1]),
        (["a", "x" * 20_000, "b"], {}, [1, 1, 1]),
    ],
    ids=[
        "empty",
        "one",
        "exactly-200",
        "201",
        "450",
        "1000-real-ids",
        "byte-budget",
        "small-budget-fits-two",
        "small-budget-fits-one",
        "size",
        "single-long-id",
        "long-id-between-short-ones",
    ],
)
def test_batches(given: list[str], kwargs: dict[str, int], sizes: list[int]) -> None:
    out = batches(given, **kwargs)
    assert [len(b) for b in out] == sizes
    assert [i for b in out for i in b] == given  # every id once, in order
    budget = kwargs.get("budget", MAX_QUERY_BYTES)
    for batch in out:
        cost = sum(len("session_ids=&") + len(i) for i in batch)
        assert cost <= budget or len(batch) == 1  # only a lone oversized id may exceed it


# ------------------------------------------------------------------ who is read how


async def test_a_lone_waiter_is_read_with_fetch_one(harness: Harness, api: FakeApi) -> None:
    api.script("devin-a", WORKING, WORKING, FINISHED)
    api.pause_at = ("devin-a", 4)  # hold the read after the settling one
    waiter = harness.wait("devin-a")
    settled = await outcome(waiter)
    assert (settled.session_id, settled.status_detail) == ("devin-a", "finished")
    assert api.reads["devin-a"] == 3
    assert set(api.one_calls) == {"devin-a"}
    assert api.many_calls == []
    assert waiter.polls == 3
    assert waiter.last is settled


async def test_several_ids_are_read_with_fetch_many_in_batches(
    harness: Harness, api: FakeApi
) -> None:
    api.default = FINISHED
    wanted = ids(2 * LIST_BATCH + 50)
    waiters = [harness.wait(i, poll_interval=10, max_poll_interval=10) for i in wanted]
    settled = await asyncio.gather(*(outcome(w) for w in waiters))
    assert [s.session_id for s in settled] == wanted
    # One tick: three list calls cover every id once, and nothing is read with GET.
    assert [len(b) for b in api.many_calls] == [LIST_BATCH, LIST_BATCH, 50]
    assert [i for b in api.many_calls for i in b] == wanted
    assert api.one_calls == []
    assert all(w.polls == 1 for w in waiters)


async def test_two_waiters_on_one_id_share_each_fetch(harness: Harness, api: FakeApi) -> None:
    api.script("devin-a", WORKING, WORKING, FINISHED)
    api.pause_at = ("devin-a", 4)  # hold the read after the settling one
    first, second = harness.wait("devin-a"), harness.wait("devin-a")
    one, two = await asyncio.gather(outcome(first), outcome(second))
    assert one is two
    assert api.reads["devin-a"] == 3  # three fetches served both waiters
    assert first.polls == second.polls == 3


async def test_a_shared_id_appears_once_per_list_call(harness: Harness, api: FakeApi) -> None:
    api.script("devin-a", WORKING, FINISHED)
    api.script("devin-b", WORKING, WORKING, FINISHED)
    waiters = [harness.wait("devin-a"), harness.wait("devin-a"), harness.wait("devin-b")]
    await asyncio.gather(*(outcome(w) for w in waiters))
    assert len(api.many_calls) >= 3
    assert all(call == ["devin-a", "devin-b"] for call in api.many_calls)
    assert api.one_calls == []
    assert waiters[0].polls == waiters[1].polls


async def test_ids_missing_from_a_list_result_are_read_with_fetch_one(
    harness: Harness, api: FakeApi
) -> None:
    api.default = FINISHED
    api.hidden = {"devin-c"}  # archived, or in another org: the list leaves it out
    waiters = [harness.wait(i) for i in ("devin-a", "devin-b", "devin-c")]
    settled = await asyncio.gather(*(outcome(w) for w in waiters))
    assert [s.session_id for s in settled] == ["devin-a", "devin-b", "devin-c"]
    assert api.many_calls[0] == ["devin-a", "devin-b", "devin-c"]
    assert set(api.one_calls) == {"devin-c"}


async def test_a_lone_waiter_left_after_others_go_is_read_with_fetch_one(
    harness: Harness, api: FakeApi
) -> None:
    api.script("devin-a", FINISHED)
    api.script("devin-b", WORKING, WORKING, WORKING, FINISHED)
    a, b = harness.wait("devin-a"), harness.wait("devin-b")
    await outcome(a)
    harness.poller.unsubscribe(a)
    calls_before = len(api.many_calls)
    await outcome(b)
    assert len(api.many_calls) == calls_before
    assert "devin-b" in api.one_calls
    assert "devin-a" not in api.one_calls


# ------------------------------------------------------------------ on_change and until


async def test_on_change_sees_the_first_state_and_each_change_only(
    harness: Harness, api: FakeApi
) -> None:
    api.script(
        "devin-a",
        make_session("devin-a", WORKING, acus=1.0),
        make_session("devin-a", WORKING, acus=2.0),  # only the ACUs moved: not a change
        APPROVAL,
        APPROVAL,
        ("blocked", None),
        WORKING,
        FINISHED,
    )
    api.pause_at = ("devin-a", 8)  # hold the read after the settling one
    seen: list[State] = []
    waiter = harness.wait(
        "devin-a", on_change=lambda s: seen.append((str(s.status), s.status_detail))
    )
    settled = await outcome(waiter)
    assert settled.status_detail == "finished"
    assert seen == [WORKING, APPROVAL, ("blocked", None), WORKING, FINISHED]
    assert waiter.polls == 7


async def test_the_predicate_decides_when_the_wait_ends(harness: Harness, api: FakeApi) -> None:
    api.script("devin-a", WORKING, APPROVAL, FINISHED)
    default = harness.wait("devin-a")
    custom = harness.wait("devin-a", lambda s: s.status_detail == "waiting_for_approval")
    assert (await outcome(custom)).status_detail == "waiting_for_approval"
    assert not default.future.done()
    assert (await outcome(default)).status_detail == "finished"


@pytest.mark.parametrize("where", ["until", "on_change"])
async def test_a_failing_callback_ends_only_its_own_waiter(
    harness: Harness, api: FakeApi, where: str
) -> None:
    api.script("devin-a", WORKING, WORKING, FINISHED)
    bug = ValueError("the caller's bug")

    def boom(session: Session) -> bool:
        raise bug

    broken = harness.wait("devin-a", **{where: boom})  # type: ignore[arg-type]
    healthy = harness.wait("devin-a")
    with pytest.raises(ValueError, match="the caller's bug") as info:
        await outcome(broken)
    assert info.value is bug
    assert (await outcome(healthy)).status_detail == "finished"
    assert api.one_calls == ["devin-a"] * 3  # still one fetch per tick for both


# ------------------------------------------------------------------ list refused


@pytest.mark.parametrize("status", [400, 403, 404, 405, 422])
async def test_a_refused_list_switches_to_fetch_one_for_good(
    harness: Harness, api: FakeApi, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    api.many_failures = [http_error(status)] * 10  # it would keep refusing
    api.script("devin-a", WORKING, WORKING, FINISHED)
    api.script("devin-b", WORKING, WORKING, WORKING, FINISHED)
    with caplog.at_level(logging.DEBUG, logger="devin_async"):
        a, b = harness.wait("devin-a"), harness.wait("devin-b")
        assert (await outcome(a)).status_detail == "finished"
        assert (await outcome(b)).status_detail == "finished"
    assert len(api.many_calls) == 1  # asked once, never again
    assert api.one_count("devin-a") >= 3  # the refused tick itself was read with GET
    assert api.one_count("devin-b") == 4
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert any(f"HTTP {status}" in m and "polling sessions one GET each" in m for m in messages)


@pytest.mark.parametrize(
    "error",
    [http_error(408), rate_limited(None), http_error(500), http_error(503)],
    ids=["408", "429", "500", "503"],
)
async def test_a_transient_list_failure_is_not_a_refusal(
    harness: Harness, api: FakeApi, error: APIStatusError
) -> None:
    api.many_failures = [error]
    api.script("devin-a", WORKING, FINISHED)
    api.script("devin-b", WORKING, WORKING, FINISHED)
    a, b = harness.wait("devin-a"), harness.wait("devin-b")
    await asyncio.gather(outcome(a), outcome(b))
    assert len(api.many_calls) >= 3  # failed once, then used again
    assert api.one_calls == []
    assert a.polls >= 3  # the failed read counts as a poll


# ------------------------------------------------------------------ transient and fatal


TRANSIENT = [
    APIConnectionError("reset", method="GET", url=URL, request_sent=True),
    APIConnectionError("refused", method="GET", url=URL, request_sent=False),
    APITimeoutError("slow", method="GET", url=URL, request_sent=True),
    http_error(408),
    rate_limited(None),
    rate_limited(0),
    http_error(500),
    http_error(502),
    http_error(503),
    http_error(504),
    ResponseValidationError("not JSON", body="<html>"),
]
TRANSIENT_IDS = [
    "reset",
    "refused",
    "timeout",
    "408",
    "429",
    "429-retry-after-0",
    "500",
    "502",
    "503",
    "504",
    "bad-body",
]


@pytest.mark.parametrize("error", TRANSIENT, ids=TRANSIENT_IDS)
async def test_transient_get_failures_keep_waiting(
    get_only: Harness, api: FakeApi, error: Exception
) -> None:
    api.script("devin-a", error, WORKING, error, error, FINISHED)
    api.pause_at = ("devin-a", 6)
    waiter = get_only.wait("devin-a")
    assert (await outcome(waiter)).status_detail == "finished"
    assert waiter.polls == 5
    assert waiter.last is not None
    assert waiter.last.status_detail == "finished"


@pytest.mark.parametrize("error", TRANSIENT, ids=TRANSIENT_IDS)
async def test_transient_list_failures_keep_waiting(
    harness: Harness, api: FakeApi, error: Exception
) -> None:
    api.many_failures = [error, error]
    api.script("devin-a", FINISHED)
    api.script("devin-b", WORKING, FINISHED)
    a, b = harness.wait("devin-a"), harness.wait("devin-b")
    await asyncio.gather(outcome(a), outcome(b))
    assert len(api.many_calls) >= 4
    assert api.one_calls == []


@pytest.mark.parametrize(
    "error",
    [rate_limited(30), http_error(503, **{"Retry-After": "30"})],
    ids=["429", "503-with-retry-after"],
)
@pytest.mark.parametrize("path", ["get", "list"])
async def test_retry_after_is_the_floor_of_the_nap(
    harness: Harness, api: FakeApi, error: APIStatusError, path: str
) -> None:
    if path == "list":
        api.many_failures = [error]
        harness.wait("devin-b")
    else:
        api.script("devin-a", error, WORKING)
    harness.wait("devin-a")
    await eventually(lambda: len(api.one_calls) + len(api.many_calls) == 1)
    await asyncio.sleep(0.1)  # about a hundred poll intervals
    assert len(api.one_calls) + len(api.many_calls) == 1


async def test_without_retry_after_a_429_is_retried_at_the_poll_interval(
    harness: Harness, api: FakeApi
) -> None:
    # The control for the test above: the same failure without the header is read again.
    api.script("devin-a", rate_limited(None), WORKING)
    harness.wait("devin-a")
    await eventually(lambda: api.one_count("devin-a") >= 3)


async def test_a_newcomer_does_not_cut_a_retry_after_nap(harness: Harness, api: FakeApi) -> None:
    api.script("devin-a", rate_limited(30), WORKING)
    harness.wait("devin-a")
    await eventually(lambda: api.one_calls == ["devin-a"])
    await asyncio.sleep(0.01)
    harness.wait("devin-b")
    await asyncio.sleep(0.1)
    assert api.one_calls == ["devin-a"]
    assert api.many_calls == []


# The request retry policy's bound: a longer Retry-After is raised at once, not slept on.
MAX_RETRY_AFTER = RetryPolicy().max_retry_after
BEYOND = [
    rate_limited(MAX_RETRY_AFTER + 1),
    rate_limited(3600),
    http_error(503, **{"Retry-After": "3600"}),
]
BEYOND_IDS = ["429-just-beyond", "429-an-hour", "503-an-hour"]


@pytest.mark.parametrize("error", BEYOND, ids=BEYOND_IDS)
async def test_a_retry_after_beyond_the_bound_ends_the_waits_of_its_id_at_once(
    get_only: Harness, api: FakeApi, error: APIStatusError
) -> None:
    # Issue 9: one 429 asking for an hour froze every wait on the client until its
    # deadline. The waits of the refused id end with that error; the others go on.
    api.script("devin-a", error, WORKING)
    api.script("devin-b", WORKING, WORKING, FINISHED)
    limited = [get_only.wait("devin-a"), get_only.wait("devin-a")]
    other = get_only.wait("devin-b")
    for waiter in limited:
        with pytest.raises(type(error)) as info:
            await outcome(waiter)
        assert info.value is error
        assert waiter.last_error is error
        get_only.poller.unsubscribe(waiter)  # as await_session does when the wait ends
    assert (await outcome(other)).status_detail == "finished"  # not held for the hour
    assert api.one_count("devin-a") == 1  # the refused id was not read again
    assert api.one_count("devin-b") == 3


@pytest.mark.parametrize("error", BEYOND, ids=BEYOND_IDS)
async def test_a_retry_after_beyond_the_bound_ends_the_waits_of_its_batch_at_once(
    harness: Harness, api: FakeApi, error: APIStatusError
) -> None:
    api.many_failures = [error]
    slow = {"poll_interval": 10, "max_poll_interval": 10}  # no second tick in this test
    waiters = [harness.wait("devin-a", **slow), harness.wait("devin-b", **slow)]
    for waiter in waiters:
        with pytest.raises(type(error)) as info:
            await outcome(waiter)
        assert info.value is error
    assert len(api.many_calls) == 1
    assert api.one_calls == []


async def test_a_retry_after_at_the_bound_is_still_waited_for(
    harness: Harness, api: FakeApi
) -> None:
    # The same rule as requests: up to max_retry_after the server's delay is honoured.
    api.script("devin-a", rate_limited(MAX_RETRY_AFTER), WORKING)
    waiter = harness.wait("devin-a")
    await eventually(lambda: api.one_calls == ["devin-a"])
    await asyncio.sleep(0.05)  # about fifty poll intervals
    assert api.one_calls == ["devin-a"]
    assert not waiter.future.done()
    assert isinstance(waiter.last_error, RateLimitError)


async def test_a_retry_after_nap_does_not_keep_a_wait_past_its_deadline(
    harness: Harness, api: FakeApi
) -> None:
    # The poller naps 30 s on the server's word; a wait's deadline belongs to whoever
    # awaits it (await_session's asyncio.timeout), which ends it on time regardless.
    api.script("devin-a", rate_limited(30), WORKING)
    waiter = harness.wait("devin-a")
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await waiter.future
    timed_out = waiter.timed_out(0.05, loop.time() - start)
    harness.poller.unsubscribe(waiter)
    await harness.poller.stopped()  # the last one out ends the nap, too
    assert poller_tasks() == []
    assert isinstance(timed_out.last_error, RateLimitError)
    assert waiter.polls == 1
    assert api.one_calls == ["devin-a"]


async def test_a_retry_after_nap_does_not_keep_a_fan_out_past_its_deadline(
    harness: Harness, api: FakeApi
) -> None:
    # The same for the fan-out iterators, whose deadline is anyio.fail_after.
    api.many_failures = [rate_limited(30)]
    waits = SessionWaits(
        harness.poller,
        ["devin-a", "devin-b"],
        until=is_settled,
        timeout=0.05,
        **FAST,
    )
    async with asyncio.timeout(5):  # a safety net, far beyond the deadline under test
        results = [result async for result in waits]
    await waits.aclose()
    assert [r.session_id for r in results] == ["devin-a", "devin-b"]
    for result in results:
        assert isinstance(result.error, AwaitTimeoutError)
        assert isinstance(result.error.last_error, RateLimitError)
    assert len(api.many_calls) == 1
    assert poller_tasks() == []


async def test_a_retry_after_beyond_the_bound_ends_a_fan_out_item_at_once(
    harness: Harness, api: FakeApi
) -> None:
    error = rate_limited(3600)
    api.hidden = {"devin-a"}  # read with GET, which is refused for an hour
    api.script("devin-a", error)
    api.script("devin-b", WORKING, FINISHED)
    waits = SessionWaits(
        harness.poller, ["devin-a", "devin-b"], until=is_settled, timeout=5, **FAST
    )
    async with waits:
        results = {r.session_id: r async for r in waits}
    assert results["devin-a"].error is error
    session = results["devin-b"].session
    assert session is not None
    assert session.status_detail == "finished"
    assert api.one_count("devin-a") == 1


@pytest.mark.parametrize(
    ("error", "cls"),
    [
        (http_error(401), AuthenticationError),
        (http_error(403), PermissionDeniedError),
        (http_error(404), NotFoundError),
    ],
    ids=["401", "403", "404"],
)
async def test_a_fatal_get_error_fails_only_the_waiters_of_its_id(
    harness: Harness, api: FakeApi, error: APIStatusError, cls: type[APIStatusError]
) -> None:
    api.hidden = {"devin-gone"}  # so it is read with GET, which fails
    api.script("devin-gone", error)
    api.script("devin-ok", WORKING, WORKING, FINISHED)
    gone = [harness.wait("devin-gone"), harness.wait("devin-gone")]
    ok = harness.wait("devin-ok")
    for waiter in gone:
        with pytest.raises(cls) as info:
            await outcome(waiter)
        assert info.value is error
    assert (await outcome(ok)).status_detail == "finished"


async def test_a_fatal_error_of_a_lone_waiter_ends_it(get_only: Harness, api: FakeApi) -> None:
    api.script("devin-a", WORKING, http_error(404))
    api.pause_at = ("devin-a", 3)
    waiter = get_only.wait("devin-a")
    with pytest.raises(NotFoundError):
        await outcome(waiter)
    assert waiter.polls == 2
    assert waiter.last is not None
    assert waiter.last.status_detail == "working"


async def test_a_fatal_list_failure_fails_only_its_batch(harness: Harness, api: FakeApi) -> None:
    api.default = FINISHED
    wanted = ids(LIST_BATCH + 1)
    closed = ClientClosedError("gone")  # a DevinError that polling cannot fix
    api.failing_batches = {wanted[-1]: closed}  # the second batch fails
    waiters = [harness.wait(i) for i in wanted]
    for waiter in waiters[:LIST_BATCH]:
        assert (await outcome(waiter)).status_detail == "finished"
    with pytest.raises(ClientClosedError) as info:
        await outcome(waiters[-1])
    assert info.value is closed
    assert api.one_calls == []


@pytest.mark.parametrize("path", ["get", "list"])
async def test_a_foreign_exception_from_a_fetch_reaches_the_waiters(
    harness: Harness, api: FakeApi, path: str
) -> None:
    bug = TypeError("a bug in the fetch")
    if path == "list":
        api.many_failures = [bug]
        others = [harness.wait("devin-b")]
    else:
        api.script("devin-a", bug)
        others = []
    waiter = harness.wait("devin-a")
    for w in [waiter, *others]:
        with pytest.raises(TypeError, match="a bug in the fetch") as info:
            await outcome(w)
        assert info.value is bug


class LoopBug(BaseException):
    """Not an Exception: escapes the per-waiter guard, like a bug in the loop itself."""


async def test_a_bug_inside_the_loop_reaches_every_waiter(harness: Harness, api: FakeApi) -> None:
    bug = LoopBug("escaped")
    api.script("devin-b", WORKING, FINISHED)

    def explode(session: Session) -> bool:
        if session.status_detail == "finished":
            raise bug
        return False

    healthy, exploding = harness.wait("devin-a"), harness.wait("devin-b", explode)
    (task,) = poller_tasks()
    for waiter in (healthy, exploding):
        with pytest.raises(LoopBug):
            await outcome(waiter)
    await asyncio.wait((task,))
    assert task.exception() is bug  # the task ends with it too (retrieved here)
    # The broken task is forgotten: the next subscriber starts a fresh one.
    api.script("devin-c", FINISHED)
    assert (await outcome(harness.wait("devin-c"))).status_detail == "finished"


# ------------------------------------------------------------------ lifecycle


async def test_pending_counts_waiters(harness: Harness, api: FakeApi) -> None:
    poller = harness.poller
    assert poller.pending == 0
    a1, a2 = harness.wait("devin-a"), harness.wait("devin-a")
    b = harness.wait("devin-b")
    assert poller.pending == 3
    poller.unsubscribe(a1)
    assert poller.pending == 2
    poller.unsubscribe(a1)  # twice is harmless
    assert poller.pending == 2
    poller.unsubscribe(a2)
    poller.unsubscribe(b)
    assert poller.pending == 0


async def test_the_task_stops_after_the_last_unsubscribe(harness: Harness, api: FakeApi) -> None:
    poller = harness.poller
    await poller.stopped()  # nothing started yet: returns at once
    assert poller_tasks() == []
    a, b = harness.wait("devin-a"), harness.wait("devin-b")
    assert len(poller_tasks()) == 1  # one task for every waiter
    await eventually(lambda: poller.ticks >= 2)
    poller.unsubscribe(a)
    await asyncio.sleep(0.01)
    assert len(poller_tasks()) == 1
    poller.unsubscribe(b)
    await poller.stopped()
    assert poller_tasks() == []
    reads = sum(api.reads.values())
    await asyncio.sleep(0.02)
    assert sum(api.reads.values()) == reads  # nothing polls any more


async def test_the_task_stops_even_mid_fetch(get_only: Harness, api: FakeApi) -> None:
    api.pause_at = ("devin-a", 1)
    waiter = get_only.wait("devin-a")
    await eventually(api.paused.is_set)
    get_only.poller.unsubscribe(waiter)
    await get_only.poller.stopped()
    assert poller_tasks() == []
    assert not waiter.future.done()


async def test_a_waiter_leaving_from_its_own_callback_stops_the_poller(
    harness: Harness, api: FakeApi
) -> None:
    mine: list[Waiter] = []

    def leave(session: Session) -> bool:
        harness.poller.unsubscribe(mine[0])  # e.g. a bot that stops watching on a state
        return True

    mine.append(harness.wait("devin-a", leave))
    assert (await outcome(mine[0])).status_detail == "working"
    await harness.poller.stopped()
    assert poller_tasks() == []
    assert api.reads["devin-a"] == 1


async def test_a_poller_restarts_for_a_new_subscriber(harness: Harness, api: FakeApi) -> None:
    api.default = FINISHED
    first = harness.wait("devin-a")
    await outcome(first)
    harness.poller.unsubscribe(first)
    await harness.poller.stopped()
    assert poller_tasks() == []
    second = harness.wait("devin-b")
    assert len(poller_tasks()) == 1
    assert (await outcome(second)).session_id == "devin-b"


async def test_close_fails_every_waiter(harness: Harness, api: FakeApi) -> None:
    waiters = [harness.wait("devin-a"), harness.wait("devin-a"), harness.wait("devin-b")]
    await eventually(lambda: harness.poller.ticks >= 1)
    closed = ClientClosedError("the client was closed")
    harness.poller.close(closed)
    assert harness.poller.pending == 0
    for waiter in waiters:
        with pytest.raises(ClientClosedError) as info:
            await outcome(waiter)
        assert info.value is closed
    await harness.poller.stopped()
    assert poller_tasks() == []


async def test_close_keeps_results_already_settled(harness: Harness, api: FakeApi) -> None:
    api.script("devin-a", FINISHED)
    settled = harness.wait("devin-a")
    pending = harness.wait("devin-b")
    await outcome(settled)
    harness.poller.close(ClientClosedError("closed"))
    assert (await outcome(settled)).status_detail == "finished"
    with pytest.raises(ClientClosedError):
        await outcome(pending)


# ------------------------------------------------------------------ naps and newcomers


async def grow_the_nap(h: Harness, api: FakeApi, reads: int = 10) -> Waiter:
    """Subscribe a waiter that never changes until its nap has doubled to ~0.5 s.

    Naps go 1, 2, 4, ... ms without a change; after the 10th read the poller sleeps
    about 0.001 * 2**9 = 0.512 s.
    """
    waiter = h.wait("devin-a", never, poll_interval=0.001, max_poll_interval=60)
    await eventually(lambda: api.one_count("devin-a") >= reads)
    return waiter


async def test_a_newcomer_during_a_long_nap_is_polled_soon(get_only: Harness, api: FakeApi) -> None:
    await grow_the_nap(get_only, api)
    await asyncio.sleep(0.01)  # the tick is over; the ~0.5 s nap has begun
    get_only.wait("devin-b", poll_interval=0.001, max_poll_interval=60)
    await eventually(lambda: "devin-b" in api.one_calls, within=0.25)


async def test_a_newcomer_during_a_tick_is_polled_soon(get_only: Harness, api: FakeApi) -> None:
    api.pause_at = ("devin-a", 10)  # hold the read that precedes the ~0.5 s nap
    await grow_the_nap(get_only, api)
    await eventually(api.paused.is_set)
    get_only.wait("devin-b", poll_interval=0.001, max_poll_interval=60)
    api.resume.set()
    await eventually(lambda: "devin-b" in api.one_calls, within=0.25)


async def test_a_newcomer_with_a_shorter_interval_is_polled_at_its_interval(
    get_only: Harness, api: FakeApi
) -> None:
    get_only.wait("devin-a", never, poll_interval=5, max_poll_interval=60)
    await eventually(lambda: api.one_count("devin-a") == 1)
    await asyncio.sleep(0.01)
    get_only.wait("devin-b", poll_interval=0.001, max_poll_interval=0.002)
    await eventually(lambda: "devin-b" in api.one_calls, within=0.5)


async def test_a_newcomer_never_delays_the_next_tick(get_only: Harness, api: FakeApi) -> None:
    # First nap: 0.4 s plus up to 0.2 s of jitter. B arrives 0.36 s in; the tick that
    # reads it must still come by the end of that nap (0.6 s), not 0.4 s after B.
    get_only.wait("devin-a", never, poll_interval=0.4, max_poll_interval=60)
    await eventually(lambda: api.one_count("devin-a") == 1)
    first = api.one_times[0][1]
    loop = asyncio.get_running_loop()
    await asyncio.sleep(first + 0.36 - loop.time())
    get_only.wait("devin-b", poll_interval=0.4, max_poll_interval=60)
    await eventually(lambda: "devin-b" in api.one_calls, within=2)
    (read_b,) = [t for i, t in api.one_times if i == "devin-b"]
    assert read_b - first <= 0.6 + 0.08


async def test_a_refusal_in_a_later_batch_reads_each_session_once(
    harness: Harness, api: FakeApi
) -> None:
    api.default = FINISHED
    wanted = ids(LIST_BATCH + 1)
    api.failing_batches = {wanted[-1]: http_error(400)}  # the second batch is refused
    waiters = [harness.wait(i, poll_interval=10, max_poll_interval=10) for i in wanted]
    await asyncio.gather(*(outcome(w) for w in waiters))
    assert [w.polls for w in waiters] == [1] * len(wanted)
    assert api.one_calls == [wanted[-1]]
