"""Following sessions for bots, end to end on virtual time over real sockets.

Every follow here is ``DevinClient.follow_session`` on a client whose sleep and clock are
a ``FakeTime``, against a ``FakeDevinServer`` (or, for message pages no real server gives,
a small scripted aiohttp app). A follow is one more wait on the client's engine: the
tests count the requests each engine tick makes, through the delays ``FakeTime`` records.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from fakes import FakeTime

from devin_async import (
    AwaitTimeoutError,
    DevinClient,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    ResponseValidationError,
    SessionUpdate,
    WaitFinished,
    WaitState,
    dumps_wait_state,
    loads_wait_state,
)
from devin_async._paging import EMPTY_PAGE_LIMIT
from devin_async.testing import FakeDevinServer, FakeSession, Step

KEY = "cog_follow_key_0123456789"
START = 1000.0  # FakeTime's clock when a test begins
WAITS = "devin_async waits"  # the name of the engine's task


class TickTime(FakeTime):
    """FakeTime that calls ``between`` at each sleep: between two ticks of a wait engine."""

    def __init__(self) -> None:
        super().__init__()
        self.between: list[Callable[[], object]] = []

    async def __call__(self, delay: float) -> None:
        for hook in self.between:
            hook()
        await super().__call__(delay)


@pytest.fixture
async def server() -> AsyncIterator[FakeDevinServer]:
    async with FakeDevinServer(api_key=KEY, org_id="org-follow") as srv:
        yield srv


@pytest.fixture
def clock() -> TickTime:
    return TickTime()


def make_client(server: FakeDevinServer, clock: FakeTime, **options: Any) -> DevinClient:
    settings: dict[str, Any] = {
        "org_id": server.org_id,
        "base_url": server.url,
        "sleep": clock,
        "clock": clock.clock,
        "poll_interval": 1.0,
        "max_poll_interval": 8.0,
        "timeout": 5.0,
        **options,
    }
    return DevinClient(KEY, **settings)


def describe(update: SessionUpdate) -> str:
    if update.message is not None:
        return update.message.message
    assert update.session is not None
    return f"{update.session.status}/{update.session.status_detail}"


async def drain(updates: AsyncIterator[SessionUpdate], into: list[SessionUpdate]) -> None:
    """Keep every update in ``into``, also when the follow then raises."""
    async for update in updates:
        into.append(update)


async def follow(client: DevinClient, session: str | WaitState, **options: Any) -> list[str]:
    async with client.follow_session(session, **options) as updates:
        return [describe(u) async for u in updates]


async def started(client: DevinClient, server: FakeDevinServer, *steps: Step) -> str:
    """Create a session on ``steps`` (its prompt is its first message); return its id."""
    server.queue_timeline(steps)
    return (await client.create_session("the prompt")).session_id


def say(fake: FakeSession, text: str) -> None:
    """Add a message of Devin's to a session, changing its updated_at (no new state)."""
    fake.messages.append(
        {
            "created_at": int(time.time()),
            "event_id": f"event-extra-{len(fake.messages) + 1:04d}",
            "message": text,
            "source": "devin",
        }
    )
    fake.updated_at += 1


# ---------------------------------------------------------------- what a follow reports


async def test_messages_arrive_before_the_state_they_cause(
    server: FakeDevinServer, clock: TickTime
) -> None:
    async with make_client(server, clock) as client:
        sid = await started(
            client,
            server,
            Step("running", "working", message="m1"),
            Step("running", "waiting_for_approval", message="m2"),
            Step("running", "waiting_for_user", message="m3"),
        )
        updates = await follow(client, sid)
    assert updates == [
        "the prompt",  # two messages in the first tick, then the state they led to
        "m1",
        "running/working",
        "m2",
        "running/waiting_for_approval",
        "m3",
        "running/waiting_for_user",
    ]


JOURNEY = (
    Step("running", "working", message="m1"),
    Step("running", "waiting_for_approval", message="m2"),
    Step("running", "working", message="m3"),
    Step("exit", message="m4"),
)


async def test_resuming_from_any_saved_state_replays_nothing(
    server: FakeDevinServer, clock: TickTime
) -> None:
    async with make_client(server, clock) as client:
        sid = await started(client, server, *JOURNEY)
        async with client.follow_session(sid) as stream:
            full = [u async for u in stream]
        seen = [describe(u) for u in full]
        assert seen == [
            *("the prompt", "m1", "running/working", "m2", "running/waiting_for_approval"),
            *("m3", "running/working", "m4", "exit/None"),
        ]
        # The session has moved on to its end; a bot that saved any state (as JSON) and
        # restarts gets only what came after it.
        for cut, update in enumerate(full[:-1], start=1):
            saved = loads_wait_state(dumps_wait_state(update.state))
            rest = await follow(client, saved)
            expected = [m for m in seen[cut:] if "/" not in m]
            if saved.status != "exit":
                expected.append("exit/None")
            assert rest == expected, f"resumed after {seen[cut - 1]}"
        # The last state saved has seen everything: it settles at once, reporting nothing.
        assert await follow(client, full[-1].state) == []


async def test_resuming_in_the_middle_of_a_later_page_replays_nothing(
    server: FakeDevinServer, clock: TickTime
) -> None:
    async with make_client(server, clock) as client:
        sid = await started(client, server, Step("exit"))
        fake = server.sessions[sid]
        for n in range(449):  # 450 messages: three pages of (at most) 200
            say(fake, f"n{n}")
        async with client.follow_session(sid) as stream:
            full = [u async for u in stream]
        assert [describe(u) for u in full[-2:]] == ["n448", "exit/None"]
        assert len(full) == 451
        assert server.count(route="list_messages") == 3
        state = full[299].state  # after the 300th message, in the second page
        assert state.message_cursor is not None
        assert state.last_event_id == fake.messages[299]["event_id"]
        rest = await follow(client, state)
    assert rest == [f"n{n}" for n in range(299, 449)] + ["exit/None"]


def test_a_state_survives_json() -> None:
    state = WaitState(
        "devin-1",
        status="running",
        status_detail="working",
        message_cursor="Y3Vyc29yOjI=",
        last_event_id="e3",
    )
    text = dumps_wait_state(state)
    assert isinstance(text, str)
    assert loads_wait_state(text) == state
    assert loads_wait_state(dumps_wait_state(WaitState("devin-2"))) == WaitState("devin-2")


async def test_messages_false_reports_only_states(server: FakeDevinServer, clock: TickTime) -> None:
    async with make_client(server, clock) as client:
        sid = await started(client, server, *JOURNEY)
        updates = await follow(client, sid, messages=False)
    assert updates == [
        "running/working",
        "running/waiting_for_approval",
        "running/working",
        "exit/None",
    ]
    assert server.count(route="list_messages") == 0


# ---------------------------------------------------------------- failures and deadlines


async def test_transient_errors_are_retried_and_fatal_ones_raised(
    server: FakeDevinServer, clock: TickTime
) -> None:
    async with make_client(server, clock) as client:
        sid = await started(
            client, server, Step("running", "working", reads=2), Step("exit", message="bye")
        )
        server.reset_log()
        server.inject("status", status=503, route="get_session")
        server.inject("status", status=502, route="list_messages")
        updates = await follow(client, sid)
        # The failed read is read again: nothing is lost or told twice, and no state
        # is told before the messages that came before it.
        assert updates == ["the prompt", "running/working", "bye", "exit/None"]
        assert server.count_status(503, "get_session") == 1
        assert server.count_status(502, "list_messages") == 1

        server.inject("status", status=404, route="get_session")
        with pytest.raises(NotFoundError):
            await follow(client, sid)
        other = await started(client, server, Step("running", "working"))
        server.inject("status", status=403, route="list_messages")
        with pytest.raises(PermissionDeniedError):
            await follow(client, other)
        assert client._engine.pending == 0


async def test_backoff_grows_while_quiet_and_resets_on_activity(
    server: FakeDevinServer, clock: TickTime
) -> None:
    async with make_client(server, clock, max_poll_interval=100.0) as client:
        sid = await started(
            client,
            server,
            Step("running", "working", reads=4),
            Step("running", "waiting_for_approval", reads=3),
            Step("running", "finished"),
        )
        clock.delays.clear()
        assert await follow(client, sid, messages=False, timeout=100.0) == [
            "running/working",
            "running/waiting_for_approval",
            "running/finished",
        ]
    # Ticks 1-4 show working, 5-7 the approval, 8 the end: each quiet tick doubles the
    # delay (plus a jitter under half the first), each change starts it again.
    delays = clock.delays
    assert len(delays) == 7
    assert 1.0 <= delays[0] <= 1.5
    assert delays[0] < delays[1] < delays[2] < delays[3]
    assert 8.0 <= delays[3] <= 8.5
    assert 1.0 <= delays[4] <= 1.5  # the approval: back to the first interval
    assert delays[4] < delays[5] < delays[6]


async def test_deadline_raises_with_the_last_session(
    server: FakeDevinServer, clock: TickTime
) -> None:
    async with make_client(server, clock) as client:
        sid = await started(client, server, Step("running", "working"))
        start = clock.now
        with pytest.raises(AwaitTimeoutError) as info:
            await follow(client, sid, timeout=10.0)
    error = info.value
    assert error.session is not None
    assert (error.session.status, error.session.status_detail) == ("running", "working")
    assert error.elapsed == pytest.approx(10.0)
    assert clock.now == pytest.approx(start + 10.0)  # never slept past the deadline
    assert error.last_error is None
    assert "last seen: running/working" in str(error)


async def test_deadline_after_failing_polls_names_the_last_failure(
    server: FakeDevinServer, clock: TickTime
) -> None:
    async with make_client(server, clock) as client:
        sid = await started(client, server, Step("running", "working"))
        clock.between.append(
            lambda: server.inject("status", status=500, route="get_session", times=None)
        )
        with pytest.raises(AwaitTimeoutError) as info:
            await follow(client, sid, timeout=10.0)
    error = info.value
    assert isinstance(error.last_error, InternalServerError)
    assert "the last poll failed: InternalServerError" in str(error)
    assert "last seen: running/working" in str(error)
    assert error.polls >= 2


# ---------------------------------------------------------------- pages no real server gives


class PagesApp:
    """One session that never changes, and message pages scripted per request.

    Every page holds ``per_page`` messages (from ``messages`` if given, else new ones
    forever), and promises more while any is left (forever when ``endless``). Each page
    read moves the fake clock on by ``cost`` seconds. A runaway read fails the test.
    """

    def __init__(
        self,
        clock: FakeTime,
        *,
        status: tuple[str, str | None] = ("running", "working"),
        per_page: int = 0,
        cost: float = 0.0,
        total: int | None = None,
        runaway: int = 1000,
    ) -> None:
        self.clock = clock
        self.status = status
        self.per_page = per_page
        self.cost = cost
        self.total = total
        self.runaway = runaway
        self.gets = 0
        self.pages = 0
        self.url = ""
        self._runner: web.AppRunner | None = None

    def message(self, n: int) -> dict[str, Any]:
        return {"event_id": f"e{n}", "message": f"m{n}", "source": "devin", "created_at": n}

    async def handle(self, request: web.Request) -> web.Response:
        if not request.path.endswith("/messages"):
            self.gets += 1
            status, detail = self.status
            return web.json_response(
                {
                    "session_id": SID,
                    "url": "https://app.devin.ai/sessions/" + SID,
                    "status": status,
                    "status_detail": detail,
                    "org_id": "org-follow",
                    "created_at": 1,
                    "updated_at": 1,
                    "acus_consumed": 0.0,
                }
            )
        self.pages += 1
        assert self.pages <= self.runaway, "the follow never stopped reading"
        self.clock.now += self.cost
        start = int(request.query.get("after", "0"))
        stop = start + self.per_page
        if self.total is not None:
            stop = min(stop, self.total)
        more = self.total is None or stop < self.total
        items = [self.message(n) for n in range(start + 1, stop + 1)]
        cursor = str(start + max(self.per_page, 1)) if more else None
        return web.json_response(
            {"items": items, "end_cursor": cursor, "has_next_page": more, "total": None}
        )

    async def __aenter__(self) -> PagesApp:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    def client(self) -> DevinClient:
        return DevinClient(
            KEY,
            org_id="org-follow",
            base_url=self.url,
            sleep=self.clock,
            clock=self.clock.clock,
            poll_interval=1.0,
            max_poll_interval=8.0,
            timeout=5.0,
        )


SID = "devin-0123456789abcdef"


async def test_endless_empty_message_pages_end_at_the_deadline() -> None:
    # Regression (issue 9): follow_session(timeout=2) ran past 10 s and 27,000 requests
    # against empty message pages with fresh cursors.
    clock = FakeTime()
    updates: list[SessionUpdate] = []
    async with PagesApp(clock) as api, api.client() as client:
        with pytest.raises(AwaitTimeoutError) as info:
            await drain(client.follow_session(SID, timeout=2.0), updates)
    assert updates == []  # a tick whose messages failed reports no state
    # Two ticks (t=0 and t=1..1.5), each a GET and EMPTY_PAGE_LIMIT pages; then t=2.
    assert (api.gets, api.pages) == (2, 2 * EMPTY_PAGE_LIMIT)
    assert clock.now == START + 2.0
    assert info.value.polls == 2
    assert isinstance(info.value.last_error, ResponseValidationError)
    assert "empty pages in a row" in str(info.value)


async def test_slow_endless_pages_stop_at_the_deadline() -> None:
    # Regression (issue 9): the pages read within one tick ignored the deadline, so a
    # follow with timeout=2 ran as long as the pages lasted.
    clock = FakeTime()
    async with PagesApp(clock, cost=0.25) as api, api.client() as client:
        with pytest.raises(AwaitTimeoutError) as info:
            await follow(client, SID, timeout=2.0)
    assert (api.gets, api.pages) == (1, 8)  # 8 x 0.25 s: the deadline, before the bound
    assert clock.now == START + 2.0
    assert info.value.elapsed == 2.0
    session = info.value.session
    assert session is not None
    assert (session.session_id, session.status_detail) == (SID, "working")


async def test_a_read_cut_by_the_deadline_reports_no_state_and_resumes() -> None:
    # Messages come before the state they caused even when the deadline cuts the read:
    # the question's state is not reported until every message before it has been.
    clock = FakeTime()
    asks = ("running", "waiting_for_user")
    updates: list[SessionUpdate] = []
    async with PagesApp(clock, status=asks, per_page=2, cost=0.5) as api, api.client() as client:
        with pytest.raises(AwaitTimeoutError):
            await drain(client.follow_session(SID, timeout=2.0), updates)
    assert [describe(u) for u in updates] == [f"m{n}" for n in range(1, 9)]
    assert api.pages == 4
    # Resuming from the last saved state (as JSON) replays nothing and goes on from m9.
    saved = loads_wait_state(dumps_wait_state(updates[-1].state))
    again = FakeTime()
    rest: list[SessionUpdate] = []
    async with PagesApp(again, status=asks, per_page=2, cost=0.5) as api, api.client() as client:
        with pytest.raises(AwaitTimeoutError):
            await drain(client.follow_session(saved, timeout=1.0), rest)
    # The first page read again holds m7 and m8: skipped, not replayed.
    assert [describe(u) for u in rest] == ["m9", "m10"]
    assert api.pages == 2


async def test_a_deadline_after_the_last_page_still_reports_the_state() -> None:
    # The deadline stops only a read that would go on: a read that ended reports its state.
    clock = FakeTime()
    app = PagesApp(clock, status=("exit", None), per_page=2, cost=1.0, total=3)
    async with app as api, api.client() as client:
        updates = await follow(client, SID, timeout=2.0)
    assert updates == ["m1", "m2", "m3", "exit/None"]
    assert api.pages == 2
    assert clock.now == START + 2.0


# ---------------------------------------------------------------- followers share the engine


def tick_counts(
    client: DevinClient, server: FakeDevinServer, clock: TickTime
) -> Callable[[], list[tuple[int, ...]]]:
    """Record (list, messages, get) request counts after each engine tick.

    Returns a function giving the requests of each tick, in order, once the waits ended.
    """
    routes = ("list_sessions", "list_messages", "get_session")
    totals: dict[int, tuple[int, ...]] = {client._engine.ticks: (0, 0, 0)}
    server.reset_log()

    def snap() -> None:
        totals[client._engine.ticks] = tuple(server.count(route=r) for r in routes)

    clock.between.append(snap)

    def ticks() -> list[tuple[int, ...]]:
        snap()
        ordered = [totals[k] for k in sorted(totals)]
        assert sorted(totals) == list(range(min(totals), max(totals) + 1)), "a tick unseen"
        return [
            tuple(b - a for a, b in zip(x, y, strict=True)) for x, y in itertools.pairwise(ordered)
        ]

    return ticks


BOT_TIMELINE = (Step("running", "working", reads=3), Step("running", "finished", message="done"))


@pytest.mark.parametrize("n", [250, 1000])
async def test_followers_are_polled_in_list_batches_and_read_messages_only_on_change(
    server: FakeDevinServer, clock: TickTime, n: int
) -> None:
    server.default_timeline = BOT_TIMELINE
    async with make_client(server, clock, timeout=30.0) as client:
        created = await client.create_sessions([f"task {i}" for i in range(n)], concurrency=32)
        ids = [r.unwrap().session_id for r in created]
        batches = math.ceil(n / 200)

        # The same sessions' cost as plain waits: a list request per 200 each tick.
        others = await client.create_sessions([f"other {i}" for i in range(n)], concurrency=32)
        ticks = tick_counts(client, server, clock)
        results = await client.await_sessions([r.unwrap().session_id for r in others])
        assert all(r.session is not None for r in results)
        waits = ticks()
        assert waits == [(batches, 0, 0)] * 4

        clock.between.clear()
        ticks = tick_counts(client, server, clock)

        async def bot(session_id: str) -> list[str]:
            return await follow(client, session_id)

        reports = await asyncio.gather(*(bot(i) for i in ids))
        follows = ticks()
    assert all(
        r == ["task " + str(i), "running/working", "done", "running/finished"]
        for i, r in enumerate(reports)
    )
    # The first poll reads every session's messages; the two idle ticks read none;
    # the tick where every session finished reads each one's once.
    assert follows == [(batches, n, 0), (batches, 0, 0), (batches, 0, 0), (batches, n, 0)]
    assert [t[0] for t in follows] == [t[0] for t in waits]
    for request in server.requests:
        if request.route == "list_sessions":
            assert 1 <= len([v for k, v in request.query if k == "session_ids"]) <= 200


async def test_a_follower_and_an_await_share_polls(
    server: FakeDevinServer, clock: TickTime
) -> None:
    async with make_client(server, clock) as client:
        sid = await started(
            client,
            server,
            Step("claimed"),
            Step("running", "working"),
            Step("running", "finished", message="All done."),
        )
        ticks = tick_counts(client, server, clock)
        updates, settled = await asyncio.gather(follow(client, sid), client.await_session(sid))
        polls = ticks()
        assert updates == [
            "the prompt",
            "claimed/None",
            "running/working",
            "All done.",
            "running/finished",
        ]
        assert settled.status_detail == "finished"
        # One GET a tick serves both waits (each wait alone would make its own).
        assert [t[2] for t in polls] == [1, 1, 1]
        assert [t[0] for t in polls] == [0, 0, 0]
        assert client._engine.pending == 0


# ---------------------------------------------------------------- replies


ASKS_THEN_WORKS = (
    Step("running", "working"),
    Step("running", "waiting_for_user", message="Which branch?"),
    Step("running", "working", reads=2),
    Step("running", "finished", message="All done."),
)
ASKED = ["the prompt", "running/working", "Which branch?", "running/waiting_for_user"]


async def asked(client: DevinClient, server: FakeDevinServer) -> tuple[str, str]:
    """A session followed until Devin asks; return its id and the state saved as JSON."""
    sid = await started(client, server, *ASKS_THEN_WORKS)
    async with client.follow_session(sid) as stream:
        updates = [u async for u in stream]
    assert [describe(u) for u in updates] == ASKED
    return sid, dumps_wait_state(updates[-1].state)


async def test_a_follow_after_a_reply_does_not_settle_on_the_lagged_question(
    server: FakeDevinServer, clock: TickTime
) -> None:
    server.message_lag_reads = 2
    async with make_client(server, clock) as client:
        sid, saved = await asked(client, server)
        snapshot = await client.send_message(sid, "use main")
        assert (snapshot.status, snapshot.status_detail) == ("running", None)  # get/list only
        ticks = client._engine.ticks
        updates = await follow(client, loads_wait_state(saved))
        # Two lagged reads still show the question; then the work it led to.
        assert updates == ["use main", "running/working", "All done.", "running/finished"]
        assert client._engine.ticks - ticks == 4


async def test_an_answer_within_one_poll_ends_the_follow_on_its_message(
    server: FakeDevinServer, clock: TickTime
) -> None:
    # Devin answers the reply with another question before the state shows anything
    # else: the state never visibly changes, and the new message is the proof.
    server.message_lag_reads = 2
    async with make_client(server, clock) as client:
        sid, saved = await asked(client, server)
        await client.send_message(sid, "use main")

        def answer() -> None:
            clock.between.clear()
            server.set_timeline(sid, [Step("running", "waiting_for_user", message="Which file?")])
            # A second later than the reply: the row is not the reply's lagged copy.
            server.sessions[sid].updated_at += 1

        clock.between.append(answer)  # after the first (lagged) poll of the follow
        start, ticks = clock.now, client._engine.ticks
        updates = await follow(client, loads_wait_state(saved), timeout=60.0)
        assert updates == ["use main", "Which file?"]
        assert client._engine.ticks - ticks == 2
        assert clock.now - start < 5.0  # not the deadline


async def test_follow_since_a_reply_sent_by_another_client(
    server: FakeDevinServer, clock: TickTime
) -> None:
    server.message_lag_reads = 2
    async with make_client(server, clock) as bot, make_client(server, clock) as other:
        sid, saved = await asked(bot, server)
        snapshot = await other.send_message(sid, "use main")
        updates = await follow(bot, loads_wait_state(saved), since=snapshot)
        assert updates == ["use main", "running/working", "All done.", "running/finished"]


async def test_a_reply_sent_during_a_follow_applies_to_it(
    server: FakeDevinServer, clock: TickTime
) -> None:
    # Devin asks and the bot answers between two polls of a running follow: the follow
    # sees the question only in the lagged state, and must not end on it.
    server.message_lag_reads = 2
    async with make_client(server, clock) as client:
        sid = await started(client, server, Step("running", "working"))
        async with client.follow_session(sid, timeout=1000.0) as updates:
            assert [describe(await anext(updates)) for _ in range(2)] == [
                "the prompt",
                "running/working",
            ]
            # Hold the follow's next poll at the server while Devin asks and we answer.
            # (Every GET the server reads from now on waits for the gate.)
            gate = asyncio.Event()
            server.inject("slow", route="get_session", times=None, gate=gate)
            server.set_timeline(sid, ASKS_THEN_WORKS[1:])
            snapshot = await client.send_message(sid, "use main")
            assert (snapshot.status, snapshot.status_detail) == ("running", None)
            server.clear_faults()
            gate.set()
            rest = [describe(u) async for u in updates]
    assert rest == [
        *("Which branch?", "use main", "running/waiting_for_user"),
        *("running/working", "All done.", "running/finished"),
    ]


async def test_since_must_be_a_snapshot_of_the_followed_session(
    server: FakeDevinServer, clock: TickTime
) -> None:
    async with make_client(server, clock) as client:
        one = await started(client, server, Step("exit"))
        two = await client.get_session(await started(client, server, Step("exit")))
        with pytest.raises(ValueError, match="since must be a Session snapshot"):
            client.follow_session(one, since=two)


# ---------------------------------------------------------------- ending early


async def test_cancelling_a_bot_releases_its_follow_at_once(
    server: FakeDevinServer, clock: TickTime
) -> None:
    events: list[object] = []
    async with make_client(server, clock, hooks=[events.append]) as client:
        sid = await started(client, server, Step("running", "working"))
        updates = client.follow_session(sid, timeout=100.0)  # held: no garbage collection
        first = asyncio.Event()

        async def bot() -> None:
            async for update in updates:
                if update.session is not None:
                    first.set()

        task = asyncio.create_task(bot())
        await first.wait()  # the bot now waits inside __anext__ for more
        assert client._engine.pending == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert client._engine.pending == 0
        await client._engine.stopped()
        assert [t for t in asyncio.all_tasks() if t.get_name() == WAITS] == []
        finished = [e for e in events if isinstance(e, WaitFinished)]
        assert [(e.session_id, e.outcome) for e in finished] == [(sid, "cancelled")]
        # The follow is over: iterating it again ends at once.
        assert [u async for u in updates] == []
        assert updates.session_id == sid


async def test_aclose_stops_a_follow_and_the_engine(
    server: FakeDevinServer, clock: TickTime
) -> None:
    async with make_client(server, clock) as client:
        sid = await started(client, server, Step("running", "working"))
        updates = client.follow_session(sid)
        assert describe(await anext(updates)) == "the prompt"
        await updates.aclose()
        assert client._engine.pending == 0
        assert [t for t in asyncio.all_tasks() if t.get_name() == WAITS] == []
        with pytest.raises(StopAsyncIteration):
            await anext(updates)


async def test_devin_finishing_during_the_lag_is_reported_not_the_lagged_question(
    server: FakeDevinServer, clock: TickTime
) -> None:
    # The stock WAITS_FOR_USER story: a reply wakes the session, which works and then
    # finishes with "All done." while two lagged reads still show the question.
    server.message_lag_reads = 2
    async with make_client(server, clock) as client:
        sid = await started(
            client,
            server,
            Step("running", "working"),
            Step("running", "waiting_for_user", message="Which branch?"),
        )
        async with client.follow_session(sid) as stream:
            asked_updates = [u async for u in stream]
        await client.send_message(sid, "use main")
        updates = await follow(client, asked_updates[-1].state)
        assert (server.sessions[sid].status_detail, updates[:2]) == (
            "finished",
            ["use main", "All done."],
        )
        # Not the end: the follow goes on to the state Devin's message came with.
        assert updates == ["use main", "All done.", "running/finished"]


async def test_a_fresh_follow_after_a_reply_does_not_take_the_old_question_as_the_answer(
    server: FakeDevinServer, clock: TickTime
) -> None:
    server.message_lag_reads = 2
    async with make_client(server, clock) as client:
        sid, _ = await asked(client, server)
        fake = server.sessions[sid]
        for message in fake.messages:  # prompt and question in the second of the question
            message["created_at"] = fake.updated_at
        await client.send_message(sid, "use main")
        updates = await follow(client, sid)  # no saved state: the whole history again
        assert updates == [
            *("the prompt", "Which branch?", "use main", "running/waiting_for_user"),
            *("running/working", "All done.", "running/finished"),
        ]
