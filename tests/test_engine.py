"""The waiting engine and its sources, on virtual time, with fake reads.

No HTTP and no real time here: ``FakeApi`` plays a scripted timeline of raw rows per
session id through ``get_one``/``list_page`` (the signatures ``IdsSource`` takes) and
records every call with the virtual time and the request timeout it was given. ``Org``
plays an organization's sessions for ``WatermarkSource``. ``VirtualClock`` (tests/fakes.py)
is the engine's clock and sleep: time moves only when every task sleeps, to the nearest
sleeper, so naps, deadlines and Retry-After are checked to the second.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest
from fakes import VirtualClock
from multidict import CIMultiDict

from devin_async._convert import structure_session
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
from devin_async._models import Message, Page, Session
from devin_async._protocol import Request, Response, status_error
from devin_async._waiting.engine import Engine
from devin_async._waiting.rows import Listed, Row
from devin_async._waiting.settle import Predicate, Wait, is_settled
from devin_async._waiting.sources import (
    LIST_BATCH,
    MAX_CHANGED_PAGES,
    MAX_QUERY_BYTES,
    WATERMARK_OVERLAP,
    IdsSource,
    Source,
    WatermarkSource,
    batches,
)
from devin_async._waiting.views import SessionWaits
from devin_async._waiting.waits import REPLIES_KEPT, Waiter

URL = "https://api.devin.ai/v3/organizations/org-1/sessions"
TASK_NAME = "devin_async waits"
MAX_RETRY_AFTER = 60.0

State = tuple[str, str | None]
WORKING: State = ("running", "working")
APPROVAL: State = ("running", "waiting_for_approval")
FINISHED: State = ("running", "finished")
WAITING: State = ("running", "waiting_for_user")
BLOCKED: State = ("blocked", None)


def make_row(
    session_id: str, state: State = WORKING, *, updated_at: int = 2, acus: float = 0.0
) -> Row:
    """A raw SessionResponse, as a poll hands it to the engine."""
    status, detail = state
    return {
        "session_id": session_id,
        "url": f"https://app.devin.ai/sessions/{session_id}",
        "status": status,
        "status_detail": detail,
        "org_id": "org-1",
        "created_at": 1,
        "updated_at": updated_at,
        "acus_consumed": acus,
        "tags": [],
    }


def make_session(session_id: str, state: State = WORKING, *, updated_at: int = 2) -> Session:
    return structure_session(make_row(session_id, state, updated_at=updated_at))


def http_error(status: int, **headers: str) -> APIStatusError:
    request = Request("GET", "/v3/organizations/org-1/sessions")
    return status_error(request, Response(status, CIMultiDict(headers), b""), URL)


def rate_limited(retry_after: float | None) -> RateLimitError:
    headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
    err = http_error(429, **headers)
    assert isinstance(err, RateLimitError)
    return err


def message(event_id: str, source: str, created_at: int) -> Message:
    return Message(
        event_id=event_id, message=f"text {event_id}", source=source, created_at=created_at
    )


def never(session: Session) -> bool:
    return False


def engine_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name() == TASK_NAME]


def ids(n: int) -> list[str]:
    return [f"devin-{i:032x}" for i in range(n)]


def state_of(session: Session) -> State:
    return str(session.status), session.status_detail


Outcome = State | Row | BaseException
MessageOutcome = Page[Message] | BaseException


class FakeApi:
    """Scripted raw rows behind ``get_one``/``list_page``/``read_messages``; calls recorded.

    Each id plays its timeline one read at a time (the last entry repeats); an entry is a
    state (made into a row whose ``updated_at`` is its position in the timeline, so equal
    neighbours compare equal raw), a ready row, or an exception to raise. Ids without a
    timeline keep answering ``default``. Each call is recorded with the virtual time and
    the timeout it was given.
    """

    def __init__(self, vt: VirtualClock, default: State = WORKING) -> None:
        self.vt = vt
        self.default = default
        self.timelines: dict[str, list[Outcome]] = {}
        self.reads: Counter[str] = Counter()
        self.gets: list[tuple[str, float, float]] = []  # id, time, timeout
        self.lists: list[tuple[list[str], str | None, float, float]] = []  # ids, cursor, t, timeout
        self.list_failures: list[BaseException] = []  # raised by the next list calls
        self.failing_batches: dict[str, BaseException] = {}  # a batch with this id raises
        self.hidden: set[str] = set()  # left out of every list result
        self.page_size: int | None = None  # list pages of this many ids, cursors followed
        self.looping_cursor = False  # every list page promises another, with one cursor
        self.holds: dict[tuple[str, int], asyncio.Event] = {}  # (id, nth GET) held until set
        self.held = asyncio.Event()
        self.latency = 0.0  # virtual seconds each read takes
        self.messages: dict[str, list[MessageOutcome]] = {}
        self.message_reads: list[tuple[str, str | None, float, float]] = []  # id, cursor, t, to
        self.message_latency = 0.0

    def script(self, session_id: str, *timeline: Outcome) -> None:
        self.timelines[session_id] = list(timeline)

    def _next(self, session_id: str) -> Row:
        timeline = self.timelines.get(session_id) or [self.default]
        index = min(self.reads[session_id], len(timeline) - 1)
        item = timeline[index]
        self.reads[session_id] += 1
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, dict):
            return item
        return make_row(session_id, item, updated_at=index + 2)

    async def get_one(self, session_id: str, timeout: float) -> Row:
        self.gets.append((session_id, self.vt.now, timeout))
        hold = self.holds.get((session_id, self.get_count(session_id)))
        if hold is not None:
            self.held.set()
            await hold.wait()
        if self.latency:
            await self.vt(self.latency)
        await asyncio.sleep(0)
        return self._next(session_id)

    async def list_page(
        self,
        session_ids: Sequence[str] | None,
        updated_after: int | None,
        cursor: str | None,
        timeout: float,
    ) -> Listed:
        assert session_ids is not None  # IdsSource lists by id
        assert updated_after is None
        batch = list(session_ids)
        self.lists.append((batch, cursor, self.vt.now, timeout))
        if self.latency:
            await self.vt(self.latency)
        await asyncio.sleep(0)
        if self.list_failures:
            raise self.list_failures.pop(0)
        for session_id in batch:
            if session_id in self.failing_batches:
                raise self.failing_batches[session_id]
        if self.looping_cursor:
            return Listed.of([self._next(i) for i in batch if i not in self.hidden], "again", True)
        start = int(cursor or 0)
        size = self.page_size or len(batch)
        page = batch[start : start + size]
        more = start + size < len(batch)
        rows = [self._next(i) for i in page if i not in self.hidden]
        return Listed.of(rows, str(start + size) if more else None, more)

    async def read_messages(self, session_id: str, cursor: str | None, timeout: float) -> Any:
        self.message_reads.append((session_id, cursor, self.vt.now, timeout))
        if self.message_latency:
            await self.vt(self.message_latency)
        script = self.messages.get(session_id) or [Page(items=())]
        count = sum(1 for i, *_ in self.message_reads if i == session_id)
        item = script[min(count - 1, len(script) - 1)]
        if isinstance(item, BaseException):
            raise item
        return item

    def get_count(self, session_id: str) -> int:
        return sum(1 for i, *_ in self.gets if i == session_id)

    def get_ids(self) -> list[str]:
        return [i for i, *_ in self.gets]

    def list_ids(self) -> list[list[str]]:
        return [batch for batch, *_ in self.lists]

    def request_times(self) -> list[float]:
        return sorted([t for _, t, _ in self.gets] + [t for _, _, t, _ in self.lists])


class Structure:
    """``structure_session`` that counts its calls per session id."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def __call__(self, row: Row) -> Session:
        self.calls[row["session_id"]] += 1
        return structure_session(row)

    @property
    def total(self) -> int:
        return sum(self.calls.values())


class Harness:
    """An Engine over a source, on a VirtualClock, that remembers its waits for teardown."""

    def __init__(
        self,
        vt: VirtualClock,
        api: FakeApi,
        source: Source,
        *,
        sleep: Callable[[float], Any] | None = None,
    ) -> None:
        self.vt = vt
        self.api = api
        self.source = source
        self.structure = Structure()
        self.changes: list[tuple[str, State | None, State]] = []  # engine on_change
        self.finished: list[tuple[str, str]] = []  # on_finish: (session id, outcome)
        self.engine = Engine(
            source,
            self.structure,
            api.read_messages,
            clock=vt.clock,
            sleep=sleep or vt,
            max_retry_after=MAX_RETRY_AFTER,
            on_change=self._changed,
            on_finish=self._finished,
        )
        self.polls_at_end: dict[Waiter, int] = {}  # engine.polls(waiter) when it ended
        self.waiters: list[Waiter] = []

    def _finished(self, waiter: Waiter, outcome: str) -> None:
        self.finished.append((waiter.session_id, outcome))
        self.polls_at_end[waiter] = self.engine.polls(waiter)

    def _changed(self, session: Session, before: Session | None) -> None:
        self.changes.append(
            (session.session_id, None if before is None else state_of(before), state_of(session))
        )

    def wait(
        self,
        session_id: str,
        until: Predicate = is_settled,
        *,
        timeout: float = 3600.0,
        poll_interval: float = 1.0,
        max_poll_interval: float = 10.0,
        on_change: Callable[[Session], object] | None = None,
        since: Session | None = None,
        factory: Callable[..., Waiter] = Waiter,
    ) -> Waiter:
        waiter = self.engine.subscribe(
            session_id,
            Wait(until, timeout, poll_interval, max_poll_interval),
            on_change=on_change,
            since=since,
            factory=factory,
        )
        self.waiters.append(waiter)
        return waiter

    async def outcome(self, waiter: Waiter) -> Session:
        """The wait's result (or its exception), moving virtual time on as needed."""
        return await self.vt.run(waiter.future)

    async def until(self, condition: Callable[[], bool]) -> None:
        await self.vt.until(condition)

    async def release(self) -> None:
        for waiter in self.waiters:
            self.engine.unsubscribe(waiter)
            future = waiter.future
            if not future.done():
                future.cancel()
            elif not future.cancelled():
                future.exception()  # retrieved: no "exception was never retrieved" log
        await self.engine.stopped()
        await self.vt.settle()


async def no_task_left() -> None:
    assert engine_tasks() == []
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert others == []


@pytest.fixture
def vt() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def api(vt: VirtualClock) -> FakeApi:
    return FakeApi(vt)


@pytest.fixture
async def harness(vt: VirtualClock, api: FakeApi) -> AsyncIterator[Harness]:
    """An engine reading by id with both GET and the list endpoint (org scope)."""
    h = Harness(vt, api, IdsSource(api.get_one, api.list_page))
    yield h
    await h.release()
    await no_task_left()


@pytest.fixture
async def get_only(vt: VirtualClock, api: FakeApi) -> AsyncIterator[Harness]:
    """An engine without the list endpoint (enterprise scope): one GET per session."""
    h = Harness(vt, api, IdsSource(api.get_one, None))
    yield h
    await h.release()
    await no_task_left()


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


async def test_a_lone_wait_is_read_with_get(harness: Harness, api: FakeApi) -> None:
    api.script("devin-a", WORKING, WORKING, FINISHED)
    waiter = harness.wait("devin-a")
    settled = await harness.outcome(waiter)
    assert (settled.session_id, settled.status_detail) == ("devin-a", "finished")
    assert api.get_ids() == ["devin-a"] * 3
    assert api.lists == []
    assert harness.polls_at_end[waiter] == 3
    assert waiter.last is settled
    assert harness.finished == [("devin-a", "settled")]


async def test_many_waits_are_read_with_the_list_in_batches(harness: Harness, api: FakeApi) -> None:
    api.default = FINISHED
    wanted = ids(2 * LIST_BATCH + 50)
    waiters = [harness.wait(i, poll_interval=10, max_poll_interval=10) for i in wanted]
    settled = [await harness.outcome(w) for w in waiters]
    assert [s.session_id for s in settled] == wanted
    # One tick: three list calls cover every id once, and nothing is read with GET.
    assert [len(b) for b in api.list_ids()] == [LIST_BATCH, LIST_BATCH, 50]
    assert [i for b in api.list_ids() for i in b] == wanted
    assert api.gets == []
    assert harness.engine.ticks == 1
    assert all(harness.polls_at_end[w] == 1 for w in waiters)
    assert harness.structure.total == len(wanted)


async def test_two_waits_on_one_id_share_each_read(harness: Harness, api: FakeApi) -> None:
    api.script("devin-a", WORKING, WORKING, FINISHED)
    first, second = harness.wait("devin-a"), harness.wait("devin-a")
    one = await harness.outcome(first)
    two = await harness.outcome(second)
    assert one is two
    assert api.reads["devin-a"] == 3  # three reads served both waits
    assert api.get_ids() == ["devin-a"] * 3
    assert harness.polls_at_end[first] == harness.polls_at_end[second] == 3


async def test_a_shared_id_appears_once_per_list_call(harness: Harness, api: FakeApi) -> None:
    api.script("devin-a", WORKING, FINISHED)
    api.script("devin-b", WORKING, WORKING, FINISHED)
    waiters = [harness.wait("devin-a"), harness.wait("devin-a"), harness.wait("devin-b")]
    for waiter in waiters:
        await harness.outcome(waiter)
    assert api.list_ids() == [["devin-a", "devin-b"]] * 2
    # Once both waits of devin-a have settled, devin-b is alone: read with GET.
    assert api.get_ids() == ["devin-b"]
    assert harness.polls_at_end[waiters[0]] == harness.polls_at_end[waiters[1]] == 2


async def test_ids_missing_from_a_list_read_are_read_with_get(
    harness: Harness, api: FakeApi
) -> None:
    api.default = FINISHED
    api.hidden = {"devin-c"}  # archived, or in another org: the list leaves it out
    waiters = [harness.wait(i) for i in ("devin-a", "devin-b", "devin-c")]
    settled = [await harness.outcome(w) for w in waiters]
    assert [s.session_id for s in settled] == ["devin-a", "devin-b", "devin-c"]
    assert api.list_ids() == [["devin-a", "devin-b", "devin-c"]]
    assert api.get_ids() == ["devin-c"]


async def test_a_lone_wait_left_after_others_go_is_read_with_get(
    harness: Harness, api: FakeApi
) -> None:
    api.script("devin-a", FINISHED)
    api.script("devin-b", WORKING, WORKING, WORKING, FINISHED)
    a, b = harness.wait("devin-a"), harness.wait("devin-b")
    await harness.outcome(a)
    await harness.outcome(b)
    assert api.list_ids() == [["devin-a", "devin-b"]]
    assert api.get_ids() == ["devin-b"] * 3


async def test_a_list_read_follows_its_cursor_pages(harness: Harness, api: FakeApi) -> None:
    api.default = FINISHED
    api.page_size = 3
    waiters = [harness.wait(i) for i in ids(5)]
    for waiter in waiters:
        await harness.outcome(waiter)
    assert [cursor for _, cursor, _, _ in api.lists] == [None, "3"]
    assert api.gets == []


async def test_a_list_whose_cursors_loop_is_read_a_bounded_number_of_pages(
    harness: Harness, api: FakeApi
) -> None:
    api.looping_cursor = True  # every page promises another, forever
    waiters = [harness.wait(i, never) for i in ids(3)]
    await harness.until(lambda: harness.engine.ticks >= 1 and harness.vt.sleeping > 0)
    # len(batch) // LIST_BATCH + 2 pages at most, then the tick goes on.
    assert [cursor for _, cursor, _, _ in api.lists] == [None, "again"]
    assert all(w.last is not None for w in waiters)
    assert api.gets == []


# ------------------------------------------------------------------ what waits are told


async def test_per_wait_on_change_sees_the_first_state_and_each_change_only(
    harness: Harness, api: FakeApi
) -> None:
    api.script(
        "devin-a",
        make_row("devin-a", WORKING, updated_at=2, acus=1.0),
        make_row("devin-a", WORKING, updated_at=2, acus=2.0),  # same raw key: not new
        make_row("devin-a", APPROVAL, updated_at=3),
        make_row("devin-a", APPROVAL, updated_at=3),
        make_row("devin-a", BLOCKED, updated_at=4),
        make_row("devin-a", WORKING, updated_at=5),
        make_row("devin-a", FINISHED, updated_at=6),
    )
    seen: list[State] = []
    waiter = harness.wait("devin-a", on_change=lambda s: seen.append(state_of(s)))
    settled = await harness.outcome(waiter)
    assert settled.status_detail == "finished"
    assert seen == [WORKING, APPROVAL, BLOCKED, WORKING, FINISHED]
    assert harness.polls_at_end[waiter] == 7
    assert harness.structure.calls == {"devin-a": 5}  # the two repeats were not structured
    assert harness.changes == [
        ("devin-a", None, WORKING),
        ("devin-a", WORKING, APPROVAL),
        ("devin-a", APPROVAL, BLOCKED),
        ("devin-a", BLOCKED, WORKING),
        ("devin-a", WORKING, FINISHED),
    ]


async def test_an_unchanged_row_is_not_structured_again_nor_told(
    harness: Harness, api: FakeApi
) -> None:
    same = make_row("devin-a", WORKING, updated_at=7, acus=1.0)
    # Other fields may differ: only (status, status_detail, updated_at) is compared.
    later = make_row("devin-a", WORKING, updated_at=7, acus=9.0)
    api.script("devin-a", same, later, later, later, make_row("devin-a", FINISHED, updated_at=8))
    looked_at: list[float] = []

    def until(session: Session) -> bool:
        looked_at.append(session.acus_consumed)
        return is_settled(session)

    changes: list[State] = []
    waiter = harness.wait("devin-a", until, on_change=lambda s: changes.append(state_of(s)))
    assert (await harness.outcome(waiter)).status_detail == "finished"
    assert harness.polls_at_end[waiter] == 5
    assert harness.structure.calls == {"devin-a": 2}
    assert looked_at == [1.0, 0.0]  # the predicate saw only the first and the last row
    assert changes == [WORKING, FINISHED]


async def test_an_updated_at_change_alone_rebuilds_the_session_but_is_no_state_change(
    harness: Harness, api: FakeApi
) -> None:
    api.script(
        "devin-a",
        make_row("devin-a", WORKING, updated_at=2, acus=1.0),
        make_row("devin-a", WORKING, updated_at=3, acus=2.0),
        make_row("devin-a", WORKING, updated_at=3, acus=2.0),
        make_row("devin-a", FINISHED, updated_at=4, acus=3.0),
    )
    looked_at: list[float] = []

    def until(session: Session) -> bool:
        looked_at.append(session.acus_consumed)
        return is_settled(session)

    changes: list[State] = []
    waiter = harness.wait("devin-a", until, on_change=lambda s: changes.append(state_of(s)))
    assert (await harness.outcome(waiter)).acus_consumed == 3.0
    assert harness.structure.calls == {"devin-a": 3}
    assert looked_at == [1.0, 2.0, 3.0]  # the rebuilt Session is what the wait sees
    assert changes == [WORKING, FINISHED]  # per-wait on_change: (status, detail) only
    assert harness.changes == [("devin-a", None, WORKING), ("devin-a", WORKING, FINISHED)]


async def test_a_newcomer_on_a_polled_id_is_told_its_state_though_the_row_is_unchanged(
    harness: Harness, api: FakeApi
) -> None:
    harness.wait("devin-a", never)
    await harness.until(lambda: api.reads["devin-a"] == 2)
    late = harness.wait("devin-a", lambda s: s.status_detail == "working")
    assert (await harness.outcome(late)).status_detail == "working"
    assert api.reads["devin-a"] == 3
    assert harness.structure.calls == {"devin-a": 1}


async def test_the_predicate_decides_when_the_wait_ends(harness: Harness, api: FakeApi) -> None:
    api.script("devin-a", WORKING, APPROVAL, FINISHED)
    default = harness.wait("devin-a")
    custom = harness.wait("devin-a", lambda s: s.status_detail == "waiting_for_approval")
    assert (await harness.outcome(custom)).status_detail == "waiting_for_approval"
    assert not default.future.done()
    assert (await harness.outcome(default)).status_detail == "finished"
    assert api.reads["devin-a"] == 3


@pytest.mark.parametrize("where", ["until", "on_change"])
async def test_a_failing_callback_ends_only_its_own_wait(
    harness: Harness, api: FakeApi, where: str
) -> None:
    api.script("devin-a", WORKING, WORKING, FINISHED)
    bug = ValueError("the caller's bug")

    def boom(session: Session) -> bool:
        raise bug

    broken = harness.wait("devin-a", **{where: boom})  # type: ignore[arg-type]
    healthy = harness.wait("devin-a")
    with pytest.raises(ValueError, match="the caller's bug") as info:
        await harness.outcome(broken)
    assert info.value is bug
    assert harness.polls_at_end[broken] == 1
    assert (await harness.outcome(healthy)).status_detail == "finished"
    assert api.get_ids() == ["devin-a"] * 3  # still one read per tick for both
    assert harness.finished == [("devin-a", "error"), ("devin-a", "settled")]


# ------------------------------------------------------------------ list refused


@pytest.mark.parametrize("status", [400, 403, 404, 405, 422])
async def test_a_refused_list_switches_to_get_for_good(
    harness: Harness, api: FakeApi, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    api.list_failures = [http_error(status)] * 10  # it would keep refusing
    api.script("devin-a", WORKING, WORKING, FINISHED)
    api.script("devin-b", WORKING, WORKING, WORKING, FINISHED)
    with caplog.at_level(logging.DEBUG, logger="devin_async"):
        a, b = harness.wait("devin-a"), harness.wait("devin-b")
        assert (await harness.outcome(a)).status_detail == "finished"
        assert (await harness.outcome(b)).status_detail == "finished"
    assert len(api.lists) == 1  # asked once, never again
    assert api.get_count("devin-a") == 3  # the refused tick itself was read with GET
    assert api.get_count("devin-b") == 4
    assert harness.polls_at_end[a] == 3
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
    api.list_failures = [error]
    api.script("devin-a", WORKING, FINISHED)
    api.script("devin-b", WORKING, WORKING, FINISHED)
    a, b = harness.wait("devin-a"), harness.wait("devin-b")
    await harness.outcome(a)
    await harness.outcome(b)
    assert api.list_ids() == [["devin-a", "devin-b"]] * 3  # failed once, then used again
    assert api.get_ids() == ["devin-b"]  # alone at the end
    assert harness.polls_at_end[a] == 3  # the failed read counts as a poll


async def test_a_refusal_in_a_later_batch_reads_each_session_once(
    harness: Harness, api: FakeApi
) -> None:
    api.default = FINISHED
    wanted = ids(LIST_BATCH + 1)
    api.failing_batches = {wanted[-1]: http_error(400)}  # the second batch is refused
    waiters = [harness.wait(i, poll_interval=10, max_poll_interval=10) for i in wanted]
    for waiter in waiters:
        await harness.outcome(waiter)
    assert [harness.polls_at_end[w] for w in waiters] == [1] * len(wanted)
    assert api.get_ids() == [wanted[-1]]
    assert harness.source.list_page is None  # type: ignore[attr-defined]


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
    waiter = get_only.wait("devin-a")
    assert (await get_only.outcome(waiter)).status_detail == "finished"
    assert get_only.polls_at_end[waiter] == 5
    assert api.get_count("devin-a") == 5
    assert waiter.last is not None
    assert waiter.last.status_detail == "finished"
    assert waiter.entry.last_error is None  # the last poll succeeded


@pytest.mark.parametrize("error", TRANSIENT, ids=TRANSIENT_IDS)
async def test_transient_list_failures_keep_waiting(
    harness: Harness, api: FakeApi, error: Exception
) -> None:
    api.list_failures = [error, error]
    api.script("devin-a", FINISHED)
    api.script("devin-b", WORKING, FINISHED)
    a, b = harness.wait("devin-a"), harness.wait("devin-b")
    await harness.outcome(a)
    await harness.outcome(b)
    assert api.list_ids() == [["devin-a", "devin-b"]] * 3
    assert api.get_ids() == ["devin-b"]


async def test_a_row_that_does_not_decode_is_a_transient_failure(
    harness: Harness, api: FakeApi
) -> None:
    broken = {"session_id": "devin-a", "status": "running"}  # no url, no timestamps
    api.script("devin-a", broken, FINISHED)
    api.script("devin-b", WORKING, WORKING, FINISHED)
    a, b = harness.wait("devin-a"), harness.wait("devin-b")
    await harness.vt.advance(0)
    assert isinstance(a.entry.last_error, ResponseValidationError)
    assert not a.future.done()
    assert b.last is not None
    assert (await harness.outcome(a)).status_detail == "finished"
    assert harness.polls_at_end[a] == 2
    assert a.entry.last_error is None
    assert harness.structure.calls["devin-a"] == 2  # the broken row, then the good one
    await harness.outcome(b)


@pytest.mark.parametrize(
    "error",
    [rate_limited(30), http_error(503, **{"Retry-After": "30"})],
    ids=["429", "503-with-retry-after"],
)
@pytest.mark.parametrize("path", ["get", "list"])
async def test_retry_after_is_the_floor_of_the_next_tick(
    harness: Harness, api: FakeApi, vt: VirtualClock, error: APIStatusError, path: str
) -> None:
    start = vt.now
    if path == "list":
        api.list_failures = [error]
        harness.wait("devin-b")
    else:
        api.script("devin-a", error, WORKING)
    harness.wait("devin-a")
    await vt.advance(29.9)
    assert api.request_times() == [start]
    await vt.advance(0.1)
    assert api.request_times() == [start, start + 30]
    assert vt.delays[0] == 30  # slept once, the server's delay


async def test_without_retry_after_a_429_is_retried_at_the_poll_interval(
    harness: Harness, api: FakeApi, vt: VirtualClock
) -> None:
    # The control for the test above: the same failure without the header is read again.
    api.script("devin-a", rate_limited(None), WORKING)
    harness.wait("devin-a")
    await harness.until(lambda: api.get_count("devin-a") == 2)
    first, second = api.request_times()
    # A failed tick changed nothing: poll_delay(2, 1, 10), 2 s plus up to 0.5 s of jitter.
    assert 2.0 <= second - first <= 2.5


async def test_a_newcomer_does_not_cut_a_retry_after_nap(
    harness: Harness, api: FakeApi, vt: VirtualClock
) -> None:
    api.script("devin-a", rate_limited(30), WORKING)
    start = vt.now
    harness.wait("devin-a")
    await vt.advance(5)
    harness.wait("devin-b")
    await harness.until(lambda: len(api.lists) == 1)
    assert api.get_ids() == ["devin-a"]
    assert [(batch, t) for batch, _, t, _ in api.lists] == [(["devin-a", "devin-b"], start + 30)]


BEYOND = [
    rate_limited(MAX_RETRY_AFTER + 1),
    rate_limited(3600),
    http_error(503, **{"Retry-After": "3600"}),
]
BEYOND_IDS = ["429-just-beyond", "429-an-hour", "503-an-hour"]


@pytest.mark.parametrize("error", BEYOND, ids=BEYOND_IDS)
async def test_a_retry_after_beyond_the_bound_ends_the_waits_of_its_id_at_once(
    get_only: Harness,
    api: FakeApi,
    vt: VirtualClock,
    caplog: pytest.LogCaptureFixture,
    error: APIStatusError,
) -> None:
    # One 429 asking for an hour must not freeze every wait of the client: the waits of
    # the refused id end with that error; the others go on.
    api.script("devin-a", error, WORKING)
    api.script("devin-b", WORKING, WORKING, FINISHED)
    start = vt.now
    with caplog.at_level(logging.DEBUG, logger="devin_async"):
        limited = [get_only.wait("devin-a"), get_only.wait("devin-a")]
        other = get_only.wait("devin-b")
        await vt.advance(0)
    assert vt.now == start
    for waiter in limited:
        assert waiter.future.done()
        with pytest.raises(type(error)) as info:
            await get_only.outcome(waiter)
        assert info.value is error
        assert waiter.entry.last_error is error
    assert (await get_only.outcome(other)).status_detail == "finished"  # not held for the hour
    assert vt.now < start + 10
    assert api.get_count("devin-a") == 1  # the refused id was not read again
    assert api.get_count("devin-b") == 3
    assert get_only.finished[:2] == [("devin-a", "error")] * 2
    assert any("ending their waits" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("error", BEYOND, ids=BEYOND_IDS)
async def test_a_retry_after_beyond_the_bound_ends_the_waits_of_its_batch_at_once(
    harness: Harness, api: FakeApi, vt: VirtualClock, error: APIStatusError
) -> None:
    api.list_failures = [error]
    start = vt.now
    waiters = [harness.wait("devin-a"), harness.wait("devin-b")]
    for waiter in waiters:
        with pytest.raises(type(error)) as info:
            await harness.outcome(waiter)
        assert info.value is error
    assert vt.now == start
    assert len(api.lists) == 1
    assert api.gets == []
    assert engine_tasks() == []


async def test_a_retry_after_at_the_bound_is_still_waited_for(
    harness: Harness, api: FakeApi, vt: VirtualClock
) -> None:
    # The same rule as requests: up to max_retry_after the server's delay is honoured.
    api.script("devin-a", rate_limited(MAX_RETRY_AFTER), WORKING)
    waiter = harness.wait("devin-a")
    await vt.advance(MAX_RETRY_AFTER - 0.5)
    assert api.get_count("devin-a") == 1
    assert not waiter.future.done()
    assert isinstance(waiter.entry.last_error, RateLimitError)
    await vt.advance(0.5)
    assert api.get_count("devin-a") == 2
    assert waiter.entry.last_error is None


async def test_a_retry_after_nap_does_not_keep_a_wait_past_its_deadline(
    harness: Harness, api: FakeApi, vt: VirtualClock
) -> None:
    api.script("devin-a", rate_limited(30), WORKING)
    start = vt.now
    waiter = harness.wait("devin-a", timeout=10)
    with pytest.raises(AwaitTimeoutError) as info:
        await harness.outcome(waiter)
    assert vt.now == start + 10  # the deadline, not the server's 30 s
    error = info.value
    assert error.session is None
    assert error.polls == 1
    assert error.elapsed == 10
    assert isinstance(error.last_error, RateLimitError)
    assert "the last poll failed: RateLimitError" in str(error)
    assert api.get_count("devin-a") == 1
    assert harness.finished == [("devin-a", "timeout")]
    await harness.engine.stopped()
    assert engine_tasks() == []


async def test_a_retry_after_nap_does_not_keep_a_fan_out_past_its_deadline(
    harness: Harness, api: FakeApi, vt: VirtualClock
) -> None:
    api.list_failures = [rate_limited(30)]
    start = vt.now
    waits = SessionWaits(harness.engine, ["devin-a", "devin-b"], Wait(is_settled, 10, 1, 10))

    async def collect() -> list[Any]:
        async with waits:
            return [result async for result in waits]

    results = await vt.run(collect())
    assert vt.now == start + 10
    assert [r.session_id for r in results] == ["devin-a", "devin-b"]
    for result in results:
        assert isinstance(result.error, AwaitTimeoutError)
        assert isinstance(result.error.last_error, RateLimitError)
    assert len(api.lists) == 1


async def test_a_retry_after_beyond_the_bound_ends_a_fan_out_item_at_once(
    harness: Harness, api: FakeApi, vt: VirtualClock
) -> None:
    error = rate_limited(3600)
    api.hidden = {"devin-a"}  # read with GET, which is refused for an hour
    api.script("devin-a", error)
    api.script("devin-b", WORKING, FINISHED)
    waits = SessionWaits(harness.engine, ["devin-a", "devin-b"], Wait(is_settled, 600, 1, 10))

    async def collect() -> dict[str, Any]:
        async with waits:
            return {r.session_id: r async for r in waits}

    results = await vt.run(collect())
    assert results["devin-a"].error is error
    session = results["devin-b"].session
    assert session is not None
    assert session.status_detail == "finished"
    assert api.get_count("devin-a") == 1


@pytest.mark.parametrize(
    ("error", "cls"),
    [
        (http_error(401), AuthenticationError),
        (http_error(403), PermissionDeniedError),
        (http_error(404), NotFoundError),
    ],
    ids=["401", "403", "404"],
)
async def test_a_fatal_get_error_fails_only_the_waits_of_its_id(
    harness: Harness, api: FakeApi, error: APIStatusError, cls: type[APIStatusError]
) -> None:
    api.hidden = {"devin-gone"}  # so it is read with GET, which fails
    api.script("devin-gone", error)
    api.script("devin-ok", WORKING, WORKING, FINISHED)
    gone = [harness.wait("devin-gone"), harness.wait("devin-gone")]
    ok = harness.wait("devin-ok")
    for waiter in gone:
        with pytest.raises(cls) as info:
            await harness.outcome(waiter)
        assert info.value is error
    assert (await harness.outcome(ok)).status_detail == "finished"
    assert api.get_count("devin-gone") == 1


async def test_a_fatal_error_of_a_lone_wait_ends_it(get_only: Harness, api: FakeApi) -> None:
    api.script("devin-a", WORKING, http_error(404))
    waiter = get_only.wait("devin-a")
    with pytest.raises(NotFoundError):
        await get_only.outcome(waiter)
    assert get_only.polls_at_end[waiter] == 2
    assert waiter.last is not None
    assert waiter.last.status_detail == "working"
    assert get_only.finished == [("devin-a", "error")]


async def test_a_fatal_list_failure_fails_only_its_batch(harness: Harness, api: FakeApi) -> None:
    api.default = FINISHED
    wanted = ids(LIST_BATCH + 1)
    closed = ClientClosedError("gone")  # a DevinError that polling cannot fix
    api.failing_batches = {wanted[-1]: closed}  # the second batch fails
    waiters = [harness.wait(i) for i in wanted]
    for waiter in waiters[:LIST_BATCH]:
        assert (await harness.outcome(waiter)).status_detail == "finished"
    with pytest.raises(ClientClosedError) as info:
        await harness.outcome(waiters[-1])
    assert info.value is closed
    assert api.gets == []
    assert harness.engine.ticks == 1


@pytest.mark.parametrize("path", ["get", "list"])
async def test_a_foreign_exception_from_a_read_reaches_the_waits(
    harness: Harness, api: FakeApi, path: str
) -> None:
    bug = TypeError("a bug in the read")
    if path == "list":
        api.list_failures = [bug]
        others = [harness.wait("devin-b")]
    else:
        api.script("devin-a", bug)
        others = []
    waiter = harness.wait("devin-a")
    for w in [waiter, *others]:
        with pytest.raises(TypeError, match="a bug in the read") as info:
            await harness.outcome(w)
        assert info.value is bug
    assert harness.engine.ticks == 1


async def test_a_deadline_names_the_last_state_the_polls_and_the_last_failure(
    get_only: Harness, api: FakeApi, vt: VirtualClock
) -> None:
    failure = http_error(502)
    api.script("devin-a", WORKING, failure)
    start = vt.now
    waiter = get_only.wait("devin-a", timeout=20, poll_interval=1, max_poll_interval=2)
    with pytest.raises(AwaitTimeoutError) as info:
        await get_only.outcome(waiter)
    error = info.value
    assert vt.now == start + 20
    assert error.session is waiter.last
    assert error.session is not None
    assert error.session.status_detail == "working"
    assert error.polls == api.get_count("devin-a") == get_only.engine.ticks
    assert 8 <= error.polls <= 20  # naps of 1 to 2 s over 20 s
    assert error.last_error is failure
    assert error.elapsed == get_only.engine.elapsed(waiter) == 20
    assert str(error) == (
        f"session devin-a did not settle within 20s (last seen: running/working); "
        f"the last poll failed: InternalServerError: {failure}"
    )


async def test_a_failure_followed_by_successful_polls_is_not_named_at_the_deadline(
    get_only: Harness, api: FakeApi
) -> None:
    row = make_row("devin-a", WORKING, updated_at=2)
    api.script("devin-a", row, http_error(502), row)  # the same row before and after
    waiter = get_only.wait("devin-a", timeout=20, poll_interval=1, max_poll_interval=2)
    with pytest.raises(AwaitTimeoutError) as info:
        await get_only.outcome(waiter)
    assert info.value.polls > 3  # every poll after the third one succeeded
    assert info.value.last_error is None
    assert "the last poll failed" not in str(info.value)


# ------------------------------------------------------------------ bugs in the loop


class LoopBug(BaseException):
    """Not an Exception: escapes the per-wait guard, like a bug in the loop itself."""


async def test_a_bug_inside_the_loop_reaches_every_wait(harness: Harness, api: FakeApi) -> None:
    bug = LoopBug("escaped")
    api.script("devin-b", WORKING, FINISHED)

    def explode(session: Session) -> bool:
        if session.status_detail == "finished":
            raise bug
        return False

    healthy, exploding = harness.wait("devin-a"), harness.wait("devin-b", explode)
    (task,) = engine_tasks()
    for waiter in (healthy, exploding):
        with pytest.raises(LoopBug):
            await harness.outcome(waiter)
    await asyncio.wait((task,))
    assert task.exception() is bug  # the task ends with it too (retrieved here)
    assert engine_tasks() == []
    # The broken task is forgotten: the next subscriber starts a fresh one.
    api.script("devin-c", FINISHED)
    assert (await harness.outcome(harness.wait("devin-c"))).status_detail == "finished"


async def test_a_failing_sleep_reaches_every_wait(vt: VirtualClock, api: FakeApi) -> None:
    bug = RuntimeError("the injected sleep broke")

    async def broken_sleep(delay: float) -> None:
        await asyncio.sleep(0)
        raise bug

    h = Harness(vt, api, IdsSource(api.get_one, api.list_page), sleep=broken_sleep)
    waiters = [h.wait("devin-a"), h.wait("devin-b")]
    (task,) = engine_tasks()
    for waiter in waiters:
        with pytest.raises(RuntimeError) as info:
            await h.outcome(waiter)
        assert info.value is bug
    await asyncio.wait((task,))
    assert task.exception() is bug
    await h.release()
    assert h.finished == [("devin-a", "error"), ("devin-b", "error")]
    await no_task_left()


async def test_a_cancel_raised_by_a_read_itself_stops_the_task_and_a_newcomer_revives_it(
    get_only: Harness, api: FakeApi
) -> None:
    # A CancelledError is never taken for a failed poll: it stops the engine's task. The
    # waits it held are not ended (nothing failed), and the next subscriber restarts it.
    api.script("devin-a", asyncio.CancelledError(), FINISHED)
    waiter = get_only.wait("devin-a")
    (task,) = engine_tasks()
    await get_only.vt.settle()
    assert task.cancelled()
    assert not waiter.future.done()
    assert get_only.engine.pending == 1
    assert get_only.engine.ticks == 1
    revived = get_only.wait("devin-b", lambda s: True)
    assert len(engine_tasks()) == 1
    assert (await get_only.outcome(revived)).session_id == "devin-b"
    assert (await get_only.outcome(waiter)).status_detail == "finished"
    assert api.get_ids() == ["devin-a", "devin-a", "devin-b"]  # one tick read both


# ------------------------------------------------------------------ lifecycle


async def test_pending_counts_waits(harness: Harness) -> None:
    engine = harness.engine
    assert engine.pending == 0
    a1, a2 = harness.wait("devin-a"), harness.wait("devin-a")
    b = harness.wait("devin-b")
    assert engine.pending == 3
    engine.unsubscribe(a1)
    assert engine.pending == 2
    engine.unsubscribe(a1)  # twice is harmless
    assert engine.pending == 2
    assert harness.finished == [("devin-a", "cancelled")]
    engine.unsubscribe(a2)
    engine.unsubscribe(b)
    assert engine.pending == 0
    engine.unsubscribe(b)  # after its entry is gone, too
    assert len(harness.finished) == 3


async def test_the_task_stops_after_the_last_unsubscribe(
    harness: Harness, api: FakeApi, vt: VirtualClock
) -> None:
    engine = harness.engine
    await engine.stopped()  # nothing started yet: returns at once
    assert engine_tasks() == []
    a, b = harness.wait("devin-a", never), harness.wait("devin-b", never)
    assert len(engine_tasks()) == 1  # one task for every wait
    await harness.until(lambda: engine.ticks >= 2)
    engine.unsubscribe(a)
    await vt.advance(5)
    assert len(engine_tasks()) == 1
    assert api.get_ids()[-1] == "devin-b"  # b alone now
    engine.unsubscribe(b)
    await engine.stopped()
    assert engine_tasks() == []
    reads = sum(api.reads.values())
    await vt.advance(600)
    assert sum(api.reads.values()) == reads  # nothing polls any more
    assert vt.sleeping == 0


async def test_the_task_stops_even_mid_read(get_only: Harness, api: FakeApi) -> None:
    hold = api.holds["devin-a", 1] = asyncio.Event()
    waiter = get_only.wait("devin-a")
    await get_only.until(api.held.is_set)
    get_only.engine.unsubscribe(waiter)
    await get_only.engine.stopped()
    assert engine_tasks() == []
    assert not waiter.future.done()
    assert not hold.is_set()
    assert api.reads["devin-a"] == 0  # the read never completed
    assert get_only.finished == [("devin-a", "cancelled")]


async def test_a_wait_leaving_from_its_own_predicate_stops_the_engine(
    harness: Harness, api: FakeApi
) -> None:
    mine: list[Waiter] = []

    def leave(session: Session) -> bool:
        harness.engine.unsubscribe(mine[0])  # e.g. a bot that stops watching on a state
        return True

    mine.append(harness.wait("devin-a", leave))
    assert (await harness.outcome(mine[0])).status_detail == "working"
    await harness.engine.stopped()
    assert engine_tasks() == []
    assert api.reads["devin-a"] == 1
    assert harness.finished == [("devin-a", "cancelled")]  # it left before it settled


async def test_the_engine_restarts_for_a_new_subscriber(harness: Harness, api: FakeApi) -> None:
    api.default = FINISHED
    first = harness.wait("devin-a")
    await harness.outcome(first)
    await harness.engine.stopped()
    assert engine_tasks() == []
    second = harness.wait("devin-b")
    assert len(engine_tasks()) == 1
    assert (await harness.outcome(second)).session_id == "devin-b"
    assert api.get_ids() == ["devin-a", "devin-b"]


async def test_close_fails_every_wait(harness: Harness, api: FakeApi) -> None:
    waiters = [harness.wait("devin-a"), harness.wait("devin-a"), harness.wait("devin-b")]
    await harness.until(lambda: harness.engine.ticks >= 1)
    closed = ClientClosedError("the client was closed")
    harness.engine.close(closed)
    assert harness.engine.pending == 0
    for waiter in waiters:
        with pytest.raises(ClientClosedError) as info:
            await harness.outcome(waiter)
        assert info.value is closed
    await harness.engine.stopped()
    assert engine_tasks() == []
    assert [outcome for _, outcome in harness.finished] == ["error"] * 3


async def test_close_keeps_results_already_settled(harness: Harness, api: FakeApi) -> None:
    api.script("devin-a", FINISHED)
    settled = harness.wait("devin-a")
    pending = harness.wait("devin-b")
    await harness.outcome(settled)
    harness.engine.close(ClientClosedError("closed"))
    assert (await harness.outcome(settled)).status_detail == "finished"
    with pytest.raises(ClientClosedError):
        await harness.outcome(pending)
    settled.end(ClientClosedError("again"))  # ending an ended wait changes nothing
    assert settled.future.result().status_detail == "finished"


async def test_on_finish_names_each_outcome(get_only: Harness, api: FakeApi) -> None:
    api.script("devin-settles", FINISHED)
    api.script("devin-fails", http_error(404))
    settles = get_only.wait("devin-settles")
    fails = get_only.wait("devin-fails")
    times_out = get_only.wait("devin-slow", timeout=5)
    leaves = get_only.wait("devin-left")
    await get_only.outcome(settles)
    with pytest.raises(NotFoundError):
        await get_only.outcome(fails)
    get_only.engine.unsubscribe(leaves)
    with pytest.raises(AwaitTimeoutError):
        await get_only.outcome(times_out)
    assert sorted(get_only.finished) == [
        ("devin-fails", "error"),
        ("devin-left", "cancelled"),
        ("devin-settles", "settled"),
        ("devin-slow", "timeout"),
    ]


async def test_a_wait_that_leaves_mid_tick_is_neither_told_nor_failed(
    get_only: Harness, api: FakeApi
) -> None:
    api.script("devin-b", http_error(404))
    api.holds["devin-b", 1] = hold = asyncio.Event()
    api.holds["devin-c", 1] = hold
    told: list[str] = []
    a = get_only.wait("devin-a", never)
    b = get_only.wait("devin-b")
    c = get_only.wait("devin-c", on_change=lambda s: told.append(s.session_id))
    await get_only.until(api.held.is_set)
    get_only.engine.unsubscribe(b)
    get_only.engine.unsubscribe(c)
    hold.set()
    await get_only.until(lambda: get_only.engine.ticks == 1 and get_only.vt.sleeping == 1)
    assert not b.future.done()  # its 404 came after it left: nobody to fail
    assert not c.future.done()
    assert told == []
    assert a.last is not None
    assert get_only.structure.calls == {"devin-a": 1}


# ------------------------------------------------------------------ naps and newcomers


async def grow_the_nap(h: Harness, reads: int = 9) -> Waiter:
    """Subscribe a wait on devin-a that never changes, until its nap is ~256 s long.

    Naps go 1, 2, 4, ... s (plus jitter) without a change; after the 9th read the engine
    naps poll_delay(9, 1, 1000) = 256 s plus up to 0.5 s.
    """
    waiter = h.wait("devin-a", never, poll_interval=1, max_poll_interval=1000)
    await h.until(lambda: h.api.reads["devin-a"] >= reads)
    await h.vt.settle()
    assert 256 <= h.vt.delays[-1] <= 256.5
    return waiter


async def test_a_newcomer_during_a_long_nap_is_polled_at_its_own_interval(
    get_only: Harness, api: FakeApi, vt: VirtualClock
) -> None:
    await grow_the_nap(get_only)
    await vt.advance(10)  # well inside the nap
    joined = vt.now
    get_only.wait("devin-b", poll_interval=1, max_poll_interval=1000)
    await get_only.until(lambda: "devin-b" in api.get_ids())
    assert [(i, t) for i, t, _ in api.gets[-2:]] == [
        ("devin-a", joined + 1),
        ("devin-b", joined + 1),
    ]


async def test_a_newcomer_during_a_tick_is_polled_at_its_own_interval(
    get_only: Harness, api: FakeApi, vt: VirtualClock
) -> None:
    api.holds["devin-a", 9] = hold = asyncio.Event()  # hold the read before the long nap
    get_only.wait("devin-a", never, poll_interval=1, max_poll_interval=1000)
    await get_only.until(api.held.is_set)
    joined = vt.now
    get_only.wait("devin-b", poll_interval=1, max_poll_interval=1000)
    hold.set()
    await get_only.until(lambda: "devin-b" in api.get_ids())
    (read_b,) = [t for i, t, _ in api.gets if i == "devin-b"]
    assert read_b == joined + 1  # its own interval, not the ~256 s nap nor poll_delay(2)


async def test_a_newcomer_with_a_shorter_interval_is_polled_at_its_interval(
    get_only: Harness, api: FakeApi, vt: VirtualClock
) -> None:
    get_only.wait("devin-a", never, poll_interval=5, max_poll_interval=60)
    await get_only.until(lambda: api.reads["devin-a"] == 1)
    await vt.advance(0.5)
    joined = vt.now
    get_only.wait("devin-b", never, poll_interval=1, max_poll_interval=2)
    await get_only.until(lambda: "devin-b" in api.get_ids())
    assert api.gets[-1][1] == joined + 1
    # From then on the ticks keep to the smallest interval and cap of the waits.
    await get_only.until(lambda: api.get_count("devin-b") >= 6)
    times = [t for i, t, _ in api.gets if i == "devin-b"]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(1 <= gap <= 2 for gap in gaps)


async def test_a_newcomer_never_delays_the_next_tick(
    get_only: Harness, api: FakeApi, vt: VirtualClock
) -> None:
    # The first nap is 4 s plus up to 2 s of jitter. B arrives 3.6 s in: the tick that
    # reads it comes at the end of that nap, not 4 s after B.
    get_only.wait("devin-a", never, poll_interval=4, max_poll_interval=60)
    await get_only.until(lambda: api.reads["devin-a"] == 1)
    first = api.gets[0][1]
    nap = vt.delays[0]
    assert 4 <= nap <= 6
    await vt.advance(3.6)
    get_only.wait("devin-b", never, poll_interval=4, max_poll_interval=60)
    await get_only.until(lambda: "devin-b" in api.get_ids())
    assert [(i, t) for i, t, _ in api.gets[1:]] == [
        ("devin-a", first + nap),
        ("devin-b", first + nap),
    ]


# ------------------------------------------------------------------ backoff


def tick_gaps(api: FakeApi, session_id: str) -> list[float]:
    times = [t for i, t, _ in api.gets if i == session_id]
    return [round(b - a, 6) for a, b in itertools.pairwise(times)]


async def test_backoff_grows_while_quiet_and_starts_again_after_a_change(
    get_only: Harness, api: FakeApi, vt: VirtualClock
) -> None:
    quiet = make_row("devin-a", WORKING, updated_at=2)
    moved = make_row("devin-a", APPROVAL, updated_at=3)
    api.script("devin-a", quiet, quiet, quiet, quiet, quiet, moved, moved, moved)
    get_only.wait("devin-a", never, poll_interval=1, max_poll_interval=100)
    await get_only.until(lambda: api.reads["devin-a"] == 8)
    gaps = tick_gaps(api, "devin-a")
    # After read 1 (new), 2, 3, 4, 5 (quiet), 6 (changed), 7 (quiet): 2**n s plus jitter.
    floors = [1, 2, 4, 8, 16, 1, 2]
    assert len(gaps) == len(floors)
    for gap, floor in zip(gaps, floors, strict=True):
        assert floor <= gap <= floor + 0.5  # jitter: up to first / 2
    assert [round(d, 6) for d in vt.delays[: len(gaps)]] == gaps  # one nap per gap


async def test_backoff_is_capped_at_the_max_poll_interval(
    get_only: Harness, api: FakeApi, vt: VirtualClock
) -> None:
    get_only.wait("devin-a", never, poll_interval=1, max_poll_interval=3)
    await get_only.until(lambda: api.reads["devin-a"] == 8)
    gaps = tick_gaps(api, "devin-a")
    assert all(1 <= gap <= 3 for gap in gaps)
    assert gaps[3:] == [3.0] * 4  # 8, 16, 32, 64 s, each cut to the cap


async def test_the_cadence_is_the_smallest_interval_and_cap_of_the_waits(
    get_only: Harness, api: FakeApi, vt: VirtualClock
) -> None:
    slow = [get_only.wait("devin-a", never, poll_interval=5, max_poll_interval=5) for _ in "ab"]
    fast = get_only.wait("devin-b", never, poll_interval=1, max_poll_interval=2)
    await get_only.until(lambda: api.reads["devin-a"] == 5)
    assert all(1 <= gap <= 2 for gap in tick_gaps(api, "devin-a"))
    get_only.engine.unsubscribe(fast)
    get_only.engine.unsubscribe(slow[0])  # the other keeps the (5, 5) cadence alive
    before = api.reads["devin-a"]
    await get_only.until(lambda: api.reads["devin-a"] == before + 3)
    assert tick_gaps(api, "devin-a")[-2:] == [5.0, 5.0]


# ------------------------------------------------------------------ request timeouts


async def test_the_request_timeout_never_exceeds_the_time_left(
    harness: Harness, api: FakeApi, vt: VirtualClock
) -> None:
    start = vt.now
    harness.wait("devin-a", never, timeout=10, max_poll_interval=2)
    harness.wait("devin-b", never, timeout=25, max_poll_interval=2)
    harness.wait("devin-c", never, timeout=40, max_poll_interval=2)
    done = harness.wait("devin-d", timeout=5)  # settles at once: its deadline then stops counting
    api.script("devin-d", FINISHED)
    await harness.outcome(done)
    await harness.until(lambda: harness.engine.pending == 0)
    deadlines = [start + 10, start + 25, start + 40]
    calls = [(t, timeout) for _, _, t, timeout in api.lists] + [(t, to) for _, t, to in api.gets]
    assert len(calls) > 15
    assert calls[0] == (start, 5)  # devin-d's deadline while it was waited for
    for t, timeout in calls[1:]:
        left = min(d for d in deadlines if d > t)
        assert timeout == pytest.approx(left - t)  # exactly the time left, never more


async def test_message_reads_after_a_slow_read_keep_to_the_deadline(
    get_only: Harness, api: FakeApi, vt: VirtualClock
) -> None:
    api.default = FINISHED
    api.latency = 8  # the GET takes 8 of the wait's 10 s
    start = vt.now
    since = make_session("devin-a", FINISHED, updated_at=100)
    get_only.wait("devin-a", timeout=10, since=since)
    await get_only.until(lambda: len(api.message_reads) == 1)
    _, _, at, timeout = api.message_reads[0]
    assert at == start + 8
    assert timeout <= start + 10 - at  # 2 s left


async def test_a_get_after_a_slow_list_keeps_to_the_deadline(
    harness: Harness, api: FakeApi, vt: VirtualClock
) -> None:
    api.latency = 8
    api.hidden = {"devin-b"}
    start = vt.now
    harness.wait("devin-a", timeout=10)
    harness.wait("devin-b", timeout=10)
    await harness.until(lambda: len(api.gets) == 1)
    _, at, timeout = api.gets[0]
    assert at == start + 8
    assert timeout <= start + 10 - at


# ------------------------------------------------------------------ since: after a reply


SINCE = make_session("devin-a", FINISHED, updated_at=100)  # the state a reply was sent in


async def test_since_does_not_settle_on_the_replied_state_until_it_changes(
    get_only: Harness, api: FakeApi
) -> None:
    same = make_row("devin-a", FINISHED, updated_at=100)
    api.script(
        "devin-a",
        same,
        same,
        same,
        make_row("devin-a", WORKING, updated_at=101),
        make_row("devin-a", FINISHED, updated_at=102),
    )
    waiter = get_only.wait("devin-a", since=SINCE)
    settled = await get_only.outcome(waiter)
    assert settled.updated_at == 102
    assert get_only.polls_at_end[waiter] == 5
    # Messages were read while the state was the replied one (no Devin answer in them).
    assert [cursor for _, cursor, _, _ in api.message_reads] == [None, None, None]


async def test_since_settles_once_messages_show_devin_answered_the_reply(
    get_only: Harness, api: FakeApi
) -> None:
    # The state lags: still the replied one, a later copy of it (the reply's own copy,
    # updated_at=100, is never settled on: see the next test).
    api.script("devin-a", make_row("devin-a", FINISHED, updated_at=101))
    api.messages["devin-a"] = [
        Page(items=(message("m1", "user", 90), message("m2", "devin", 95)), end_cursor="c1"),
        Page(items=(message("m3", "user", 100),), end_cursor="c2"),  # the reply
        Page(items=(message("m4", "devin", 100),), end_cursor="c3"),  # its answer
    ]
    waiter = get_only.wait("devin-a", since=SINCE)
    settled = await get_only.outcome(waiter)
    assert settled.status_detail == "finished"
    assert get_only.polls_at_end[waiter] == 3
    assert [cursor for _, cursor, _, _ in api.message_reads] == [None, "c1", "c2"]
    assert get_only.structure.calls == {"devin-a": 1}


async def test_a_proven_reply_does_not_settle_on_the_replys_own_copy_of_the_state(
    get_only: Harness, api: FakeApi
) -> None:
    copy = make_row("devin-a", FINISHED, updated_at=100)  # what the reply's answer showed
    api.script("devin-a", copy, copy, make_row("devin-a", FINISHED, updated_at=104))
    api.messages["devin-a"] = [Page(items=(message("m1", "devin", 101),))]
    waiter = get_only.wait("devin-a", since=SINCE)
    settled = await get_only.outcome(waiter)
    assert settled.updated_at == 104
    assert get_only.polls_at_end[waiter] == 3
    assert len(api.message_reads) == 1  # proven on the first tick: not read again


@pytest.mark.parametrize(
    ("messages", "proves"),
    [
        ((message("m1", "devin", 101),), True),  # Devin wrote after the reply's time
        ((message("m1", "devin", 100),), False),  # at the same second, with no reply seen
        ((message("m1", "user", 99), message("m2", "devin", 100)), False),  # an older message
    ],
    ids=["devin-later", "devin-same-second", "user-before"],
)
async def test_which_messages_prove_the_reply_was_acted_on(
    get_only: Harness, api: FakeApi, messages: tuple[Message, ...], proves: bool
) -> None:
    api.script("devin-a", make_row("devin-a", FINISHED, updated_at=101))
    api.messages["devin-a"] = [Page(items=messages)]
    waiter = get_only.wait("devin-a", since=SINCE, timeout=30)
    if proves:
        await get_only.outcome(waiter)
        assert get_only.polls_at_end[waiter] == 1
    else:
        with pytest.raises(AwaitTimeoutError):
            await get_only.outcome(waiter)
        assert len(api.message_reads) == get_only.polls_at_end[waiter] > 1


async def test_since_on_a_state_that_would_not_settle_reads_no_messages(
    get_only: Harness, api: FakeApi
) -> None:
    api.script("devin-a", WORKING, WORKING, FINISHED)
    waiter = get_only.wait("devin-a", since=make_session("devin-a", WORKING, updated_at=2))
    assert (await get_only.outcome(waiter)).status_detail == "finished"
    assert api.message_reads == []


@pytest.mark.parametrize(
    ("failure", "ends"),
    [(http_error(503), False), (http_error(404), True), (TypeError("bug"), True)],
    ids=["transient", "fatal", "bug"],
)
async def test_a_failed_message_read(
    get_only: Harness, api: FakeApi, failure: Exception, ends: bool
) -> None:
    api.script("devin-a", make_row("devin-a", FINISHED, updated_at=101))
    api.messages["devin-a"] = [failure, Page(items=(message("m1", "devin", 101),))]
    waiter = get_only.wait("devin-a", since=SINCE)
    if ends:
        with pytest.raises(type(failure)) as info:
            await get_only.outcome(waiter)
        assert info.value is failure
        assert len(api.message_reads) == 1
    else:
        await get_only.outcome(waiter)  # read again on the next tick, and proven
        assert get_only.polls_at_end[waiter] == 2
        assert len(api.message_reads) == 2
        assert waiter.entry.last_error is None  # the second read answered


async def test_a_deadline_while_message_pages_are_left_ends_the_wait(
    get_only: Harness, api: FakeApi, vt: VirtualClock
) -> None:
    api.script("devin-a", make_row("devin-a", FINISHED, updated_at=100))
    api.message_latency = 4  # each page takes 4 s of the wait's 10
    api.messages["devin-a"] = [
        Page(items=(message(f"m{n}", "user", 50),), end_cursor=f"c{n}", has_next_page=True)
        for n in range(10)
    ]
    start = vt.now
    waiter = get_only.wait("devin-a", since=SINCE, timeout=10)
    with pytest.raises(AwaitTimeoutError) as info:
        await get_only.outcome(waiter)
    assert len(api.message_reads) == 3  # 12 s in: no fourth page past the deadline
    assert vt.now == start + 12
    assert info.value.polls == 1


# ------------------------------------------------------------------ replies


class Replying(Waiter):
    """A wait that takes replies sent through the client (as followers do)."""

    def takes_replies(self) -> bool:
        return True


async def test_replied_applies_since_to_the_waits_that_take_replies(
    get_only: Harness, api: FakeApi
) -> None:
    waiting = make_row("devin-a", WAITING, updated_at=5)
    api.script("devin-a", WORKING, waiting)
    plain = get_only.wait("devin-a")
    replying = get_only.wait("devin-a", factory=Replying)
    await get_only.until(lambda: get_only.engine.ticks == 1)
    snapshot = make_session("devin-a", WAITING, updated_at=3)
    get_only.engine.replied("devin-a", snapshot)
    get_only.engine.replied("devin-none", snapshot)  # nobody waits on it: only remembered
    api.messages["devin-a"] = [Page(items=()), Page(items=(message("m1", "devin", 4),))]
    assert (await get_only.outcome(plain)).status_detail == "waiting_for_user"
    assert get_only.polls_at_end[plain] == 2
    assert (await get_only.outcome(replying)).status_detail == "waiting_for_user"
    assert get_only.polls_at_end[replying] == 3  # proven by the message of the third tick
    assert len(api.message_reads) == 2
    assert get_only.engine.take_reply("devin-a") is snapshot


def test_take_reply_returns_a_reply_once_and_keeps_the_latest_ones(api: FakeApi) -> None:
    engine = Engine(
        IdsSource(api.get_one, None),
        structure_session,
        api.read_messages,
        clock=api.vt.clock,
        sleep=api.vt,
        max_retry_after=MAX_RETRY_AFTER,
    )
    first, second = make_session("devin-0"), make_session("devin-0", FINISHED)
    engine.replied("devin-0", first)
    assert engine.take_reply("devin-0") is first
    assert engine.take_reply("devin-0") is None
    for n in range(REPLIES_KEPT):
        engine.replied(f"devin-{n}", first)
    engine.replied("devin-0", second)  # replied again: now the newest
    engine.replied("devin-new", first)  # one too many: the oldest (devin-1) is forgotten
    assert engine.take_reply("devin-1") is None
    assert engine.take_reply("devin-0") is second
    assert engine.take_reply("devin-2") is first
    assert engine.take_reply("devin-new") is first


# ------------------------------------------------------------------ the watermark source


BASE = 1_700_000_000


class Org:
    """An organization's sessions as the API lists them, for WatermarkSource.

    ``rows`` holds each session's current row; session ``n`` of ``ids(count)`` was last
    updated at ``BASE + n``. A list by ids answers the rows asked for; a list by
    ``updated_after`` answers every row updated after it (or every row, when the server
    ignores the filter), ``page_size`` per page. Calls are recorded with the engine's tick.
    """

    def __init__(self, count: int) -> None:
        self.rows: dict[str, Row] = {
            i: make_row(i, WORKING, updated_at=BASE + n) for n, i in enumerate(ids(count))
        }
        self.calls: list[tuple[int, str, Any]] = []  # tick, "get"/"ids"/"changes", argument
        self.engine: Engine | None = None
        self.ignores_filter = False
        self.page_size = LIST_BATCH
        self.failures: list[BaseException] = []  # raised by the next "changes" lists

    def set(self, session_id: str, state: State, updated_at: int) -> None:
        self.rows[session_id] = make_row(session_id, state, updated_at=updated_at)

    def _record(self, kind: str, argument: Any) -> None:
        assert self.engine is not None
        self.calls.append((self.engine.ticks, kind, argument))

    async def get_one(self, session_id: str, timeout: float) -> Row:
        self._record("get", session_id)
        return self.rows[session_id]

    async def list_page(
        self,
        session_ids: Sequence[str] | None,
        updated_after: int | None,
        cursor: str | None,
        timeout: float,
    ) -> Listed:
        if session_ids is not None:
            self._record("ids", len(session_ids))
            return Listed.of([self.rows[i] for i in session_ids])
        self._record("changes", updated_after)
        if self.failures:
            raise self.failures.pop(0)
        assert updated_after is not None
        rows = sorted(self.rows.values(), key=lambda r: r["updated_at"])
        if not self.ignores_filter:
            rows = [r for r in rows if r["updated_at"] > updated_after]
        start = int(cursor or 0)
        end = start + self.page_size
        more = end < len(rows)
        return Listed.of(rows[start:end], str(end) if more else None, more)

    def per_tick(self, tick: int) -> list[tuple[str, Any]]:
        return [(kind, arg) for t, kind, arg in self.calls if t == tick]


def watermark_harness(
    vt: VirtualClock, api: FakeApi, org: Org, *, reconcile: float = 300, lists: bool = True
) -> tuple[Harness, WatermarkSource]:
    source = WatermarkSource(
        IdsSource(org.get_one, org.list_page if lists else None), vt.clock, reconcile
    )
    h = Harness(vt, api, source)
    org.engine = h.engine
    return h, source


@pytest.fixture
async def cleanup() -> AsyncIterator[list[Harness]]:
    made: list[Harness] = []
    yield made
    for h in made:
        await h.release()
    await no_task_left()


async def test_watermark_costs_one_request_per_tick_for_10000_quiet_waits(
    vt: VirtualClock, api: FakeApi, cleanup: list[Harness]
) -> None:
    org = Org(10_000)
    h, _ = watermark_harness(vt, api, org)
    cleanup.append(h)
    waiters = [h.wait(i, max_poll_interval=2) for i in org.rows]
    await h.until(lambda: h.engine.ticks == 6 and vt.sleeping == 1)
    newest = BASE + 9_999
    assert org.per_tick(1) == [("ids", LIST_BATCH)] * 50  # first tick: every id
    for tick in range(2, 7):  # then only what changed since the watermark
        assert org.per_tick(tick) == [("changes", newest - WATERMARK_OVERLAP)]
    assert h.structure.total == 10_000  # the re-listed rows were not structured again
    # One session finishes: seen on the next tick, and the watermark moves on.
    last = ids(10_000)[17]
    org.set(last, FINISHED, updated_at=newest + 5)
    assert (await h.outcome(waiters[17])).status_detail == "finished"
    await h.until(lambda: h.engine.ticks == 8 and vt.sleeping == 1)
    assert org.per_tick(8) == [("changes", newest + 5 - WATERMARK_OVERLAP)]
    assert max(len(org.per_tick(t)) for t in range(1, 9)) <= 50
    assert all(len(org.per_tick(t)) <= 2 for t in range(2, 9))
    assert h.structure.total == 10_001


async def test_watermark_reads_newcomers_by_id(
    vt: VirtualClock, api: FakeApi, cleanup: list[Harness]
) -> None:
    org = Org(10)
    h, _ = watermark_harness(vt, api, org)
    cleanup.append(h)
    every = list(org.rows)
    h.wait(every[0], never)
    h.wait(every[1], never)
    await h.until(lambda: h.engine.ticks == 2)
    late = h.wait(every[2], lambda s: True)
    await h.outcome(late)
    assert org.per_tick(3) == [("changes", BASE + 9 - WATERMARK_OVERLAP), ("get", every[2])]
    h.wait(every[3], never)
    h.wait(every[4], never)
    await h.until(lambda: h.engine.ticks == 4)
    await vt.settle()
    assert org.per_tick(4) == [("changes", BASE + 9 - WATERMARK_OVERLAP), ("ids", 2)]


async def test_watermark_reconciles_by_id_every_interval_and_sees_missed_changes(
    vt: VirtualClock, api: FakeApi, cleanup: list[Harness]
) -> None:
    org = Org(3)
    h, _ = watermark_harness(vt, api, org, reconcile=30)
    cleanup.append(h)
    start = vt.now
    every = list(org.rows)
    waiter = h.wait(every[0], max_poll_interval=2)
    h.wait(every[1], never, max_poll_interval=2)
    await h.until(lambda: h.engine.ticks == 2)
    # A change the watermark misses (its updated_at is older than the overlap).
    org.set(every[0], FINISHED, updated_at=BASE - 1000)
    await h.outcome(waiter)
    by_id = [t for t, kind, _ in org.calls if kind == "ids"]
    assert len(by_id) == 2  # the first tick, then the reconciliation that saw it
    settled_at = vt.now
    assert start + 30 <= settled_at <= start + 32


async def test_a_server_that_ignores_updated_after_is_read_by_id_with_one_warning(
    vt: VirtualClock, api: FakeApi, cleanup: list[Harness], caplog: pytest.LogCaptureFixture
) -> None:
    org = Org(200)
    org.ignores_filter = True
    org.set(ids(200)[5], FINISHED, updated_at=BASE - 1000)  # not waited for, and old
    h, source = watermark_harness(vt, api, org)
    cleanup.append(h)
    for i in list(org.rows)[:2]:
        h.wait(i, never)
    with caplog.at_level(logging.WARNING, logger="devin_async"):
        await h.until(lambda: h.engine.ticks == 5)
        await vt.settle()
    assert org.per_tick(1) == [("ids", 2)]
    # The watermark is the newest row read (of the two waited): BASE + 1.
    assert org.per_tick(2) == [("changes", BASE + 1 - WATERMARK_OVERLAP), ("ids", 2)]
    assert [org.per_tick(t) for t in (3, 4, 5)] == [[("ids", 2)]] * 3  # for good
    assert source.enabled is False
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "ignored updated_after" in warnings[0].getMessage()


async def test_more_than_max_changed_pages_reads_by_id_that_tick(
    vt: VirtualClock, api: FakeApi, cleanup: list[Harness]
) -> None:
    org = Org(15)
    org.page_size = 3
    h, source = watermark_harness(vt, api, org)
    cleanup.append(h)
    every = list(org.rows)
    h.wait(every[0], never)
    h.wait(every[1], never)
    await h.until(lambda: h.engine.ticks == 2)
    await vt.settle()
    # 15 sessions updated after the watermark: MAX_CHANGED_PAGES pages of 3, usable.
    assert [kind for kind, _ in org.per_tick(2)] == ["changes"] * MAX_CHANGED_PAGES
    for n, i in enumerate(ids(18)):  # 18 sessions change: one page too many
        org.set(i, WORKING, updated_at=BASE + 100 + n)
    await h.until(lambda: h.engine.ticks == 3)
    await vt.settle()
    assert [kind for kind, _ in org.per_tick(3)] == ["changes"] * MAX_CHANGED_PAGES + ["ids"]
    assert source.enabled is True  # not given up: only that tick was read by id


@pytest.mark.parametrize(
    ("failure", "ends"), [(http_error(503), False), (ClientClosedError("closed"), True)]
)
async def test_a_failed_changes_list_is_a_failed_poll_of_every_wait(
    vt: VirtualClock, api: FakeApi, cleanup: list[Harness], failure: Exception, ends: bool
) -> None:
    org = Org(3)
    h, _ = watermark_harness(vt, api, org)
    cleanup.append(h)
    every = list(org.rows)
    waiters = [h.wait(every[0], never), h.wait(every[1], never)]
    await h.until(lambda: h.engine.ticks == 1)
    org.failures = [failure]
    await h.until(lambda: h.engine.ticks == 3 or h.engine.pending == 0)
    await vt.settle()
    assert [w.future.done() for w in waiters] == [ends, ends]
    if ends:
        assert all(w.entry.last_error is failure for w in waiters)
        assert h.engine.pending == 0
    else:  # the next list answered (and re-listed them): the failure is no longer the last
        assert org.per_tick(3) == [("changes", BASE + 1 - WATERMARK_OVERLAP)]
        assert all(w.entry.last_error is None for w in waiters)


async def test_watermark_without_a_list_endpoint_reads_by_id(
    vt: VirtualClock, api: FakeApi, cleanup: list[Harness]
) -> None:
    org = Org(3)
    h, _ = watermark_harness(vt, api, org, lists=False)
    cleanup.append(h)
    every = list(org.rows)
    h.wait(every[0], never)
    h.wait(every[1], never)
    await h.until(lambda: h.engine.ticks == 3)
    await vt.settle()
    assert {kind for _, kind, _ in org.calls} == {"get"}
    assert len(org.per_tick(3)) == 2


async def test_a_failed_reconciliation_is_tried_again_on_the_next_tick(
    vt: VirtualClock, api: FakeApi, cleanup: list[Harness]
) -> None:
    org = Org(3)
    h, _ = watermark_harness(vt, api, org, lists=False)
    cleanup.append(h)
    every = list(org.rows)
    failing = {"n": 1}
    get_one = org.get_one

    async def flaky(session_id: str, timeout: float) -> Row:
        if session_id == every[1] and failing["n"]:
            failing["n"] -= 1
            org._record("get", session_id)
            raise http_error(503)
        return await get_one(session_id, timeout)

    h.source._ids._get_one = flaky  # type: ignore[attr-defined]
    h.wait(every[0], never)
    b = h.wait(every[1], never)
    await h.until(lambda: h.engine.ticks == 2)
    await vt.settle()
    assert org.per_tick(2) == [("get", every[0]), ("get", every[1])]  # by id again
    assert b.last is not None
    assert b.entry.last_error is None


async def test_a_new_wait_on_an_id_waited_for_before_is_read_by_id(
    vt: VirtualClock, api: FakeApi, cleanup: list[Harness]
) -> None:
    org = Org(3)
    every = list(org.rows)
    org.set(every[0], FINISHED, updated_at=BASE - 1000)  # finished long ago
    h, _ = watermark_harness(vt, api, org)
    cleanup.append(h)
    h.wait(every[1], never)
    first = h.wait(every[0])
    await h.outcome(first)
    await h.until(lambda: h.engine.ticks == 3)
    joined = vt.now
    again = h.wait(every[0])
    await h.outcome(again)
    assert vt.now <= joined + 2  # about one poll interval, not the 300 s reconciliation


async def test_a_refused_changes_list_falls_back_to_ids(
    vt: VirtualClock, api: FakeApi, cleanup: list[Harness]
) -> None:
    org = Org(3)
    h, _ = watermark_harness(vt, api, org)
    cleanup.append(h)
    every = list(org.rows)
    waiters = [h.wait(every[0], never), h.wait(every[1], never)]
    await h.until(lambda: h.engine.ticks == 1)
    org.failures = [http_error(422)]
    await h.until(lambda: h.engine.ticks == 3 or h.engine.pending == 0)
    await vt.settle()
    assert [w.future.done() for w in waiters] == [False, False]  # today: both end with 422
    assert [kind for kind, _ in org.per_tick(3)] == ["ids"]


@pytest.mark.parametrize("path", ["messages", "watermark"])
async def test_a_cancel_raised_by_another_read_stops_the_task_too(
    vt: VirtualClock, api: FakeApi, cleanup: list[Harness], path: str
) -> None:
    if path == "messages":
        h = Harness(vt, api, IdsSource(api.get_one, None))
        api.script("devin-a", make_row("devin-a", FINISHED, updated_at=101))
        api.messages["devin-a"] = [asyncio.CancelledError()]
        waiter = h.wait("devin-a", since=SINCE)
    else:
        org = Org(3)
        h, _ = watermark_harness(vt, api, org)
        org.failures = [asyncio.CancelledError()]
        waiter = h.wait(ids(3)[0], never)
    cleanup.append(h)
    (task,) = engine_tasks()
    await h.until(task.done)
    assert task.cancelled()
    assert h.engine.ticks == (1 if path == "messages" else 2)
    assert not waiter.future.done()


async def test_an_engine_without_callbacks(api: FakeApi, vt: VirtualClock) -> None:
    engine = Engine(
        IdsSource(api.get_one, None),
        structure_session,
        api.read_messages,
        clock=vt.clock,
        sleep=vt,
        max_retry_after=MAX_RETRY_AFTER,
    )
    api.script("devin-a", WORKING, FINISHED)
    waiter = engine.subscribe("devin-a", Wait(is_settled, 60, 1, 10))
    assert (await vt.run(waiter.future)).status_detail == "finished"
    await engine.stopped()
    await no_task_left()


async def test_a_wait_answered_by_a_read_that_outlasted_its_deadline_settles(
    get_only: Harness, api: FakeApi, vt: VirtualClock
) -> None:
    api.latency = 8  # each read takes 8 s
    api.script("devin-a", FINISHED)
    start = vt.now
    late = get_only.wait("devin-a", timeout=5)
    other = get_only.wait("devin-b", never, timeout=60)
    assert (await get_only.outcome(late)).status_detail == "finished"
    assert vt.now == start + 8  # the answer came after its deadline: it still counts
    await get_only.until(lambda: get_only.engine.ticks == 2)
    assert not other.future.done()
    assert get_only.finished == [("devin-a", "settled")]
