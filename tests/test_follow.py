"""Following a session for a bot: messages and changes, resumable, on fake time."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from devin_async import (
    APIConnectionError,
    AwaitTimeoutError,
    Message,
    NotFoundError,
    Page,
    ResponseValidationError,
    Session,
    WaitState,
)
from devin_async._follow import SessionUpdate, follow, page_fetcher
from devin_async._paging import EMPTY_PAGE_LIMIT
from devin_async._polling import is_settled

SID = "devin-1"


def session(status: str, detail: str | None = None) -> Session:
    return Session(
        session_id=SID,
        url="u",
        status=status,
        org_id="o",
        created_at=1,
        updated_at=1,
        acus_consumed=0.0,
        status_detail=detail,
    )


def message(n: int, source: str = "devin") -> Message:
    return Message(event_id=f"e{n}", message=f"m{n}", source=source, created_at=n)


class FakeApi:
    """Scripted states (one per GET) and messages that arrive tick by tick, two per page.

    ``arrivals[i]`` are the messages that exist from tick ``i`` on (a tick ends with a sleep).
    """

    def __init__(self, states: list[Session | Exception], arrivals: list[list[Message]]) -> None:
        self.states = states
        self.arrivals = arrivals
        self.messages: list[Message] = list(arrivals[0]) if arrivals else []
        self.ticks = 0
        self.gets = 0
        self.now = 0.0
        self.sleeps: list[float] = []

    async def get_session(self, session_id: str) -> Session:
        assert session_id == SID
        result = self.states[min(self.gets, len(self.states) - 1)]
        self.gets += 1
        if isinstance(result, Exception):
            raise result
        return result

    async def page(self, after: str | None) -> Page[Message]:
        start = 0 if after is None else int(after)
        chunk = self.messages[start : start + 2]
        more = start + 2 < len(self.messages)
        return Page(
            tuple(chunk), end_cursor=str(start + 2) if len(chunk) == 2 else None, has_next_page=more
        )

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.now += delay
        self.ticks += 1
        if self.ticks < len(self.arrivals):
            self.messages.extend(self.arrivals[self.ticks])

    def clock(self) -> float:
        return self.now

    def follow(
        self, state: WaitState, *, messages: bool = True, timeout: float = 100.0
    ) -> AsyncIterator[SessionUpdate]:
        return follow(
            state,
            get_session=self.get_session,
            message_pages=page_fetcher(self.page) if messages else None,
            until=is_settled,
            timeout=timeout,
            poll_interval=1.0,
            max_poll_interval=8.0,
            sleep=self.sleep,
            clock=self.clock,
        )


def describe(update: SessionUpdate) -> str:
    if update.message is not None:
        return update.message.message
    assert update.session is not None
    return f"{update.session.status}/{update.session.status_detail}"


async def test_messages_arrive_before_the_state_they_cause() -> None:
    api = FakeApi(
        [session("running", "working"), session("running", "waiting_for_user")],
        [[message(1)], [message(2), message(3)]],
    )
    updates = [describe(u) async for u in api.follow(WaitState(SID))]
    assert updates == ["m1", "running/working", "m2", "m3", "running/waiting_for_user"]


async def test_resuming_from_any_saved_state_replays_nothing() -> None:
    states = [session("running", "working")] * 3 + [session("exit")]
    arrivals = [[message(1), message(2), message(3)], [message(4)], [message(5)]]
    api = FakeApi(states, arrivals)
    full = [u async for u in api.follow(WaitState(SID))]
    seen = [describe(u) for u in full]
    assert seen == ["m1", "m2", "m3", "running/working", "m4", "m5", "exit/None"]
    for cut, update in enumerate(full[:-1], start=1):
        replay = FakeApi(states, arrivals)
        replay.gets = 4  # the session has moved on; every message exists already
        replay.messages = [message(n) for n in range(1, 6)]
        rest = [describe(u) async for u in replay.follow(update.state)]
        expected = [m for m in seen[cut:] if m.startswith("m")]
        assert [m for m in rest if m.startswith("m")] == expected, f"after {seen[cut - 1]}"


async def test_a_state_survives_json() -> None:
    from devin_async import dumps_wait_state, loads_wait_state

    state = WaitState(
        SID, status="running", status_detail="working", message_cursor="2", last_event_id="e3"
    )
    assert loads_wait_state(dumps_wait_state(state)) == state


async def test_transient_errors_are_retried_and_fatal_ones_raised() -> None:
    flaky = APIConnectionError("down", method="GET", url="u", request_sent=True)
    api = FakeApi([flaky, session("exit")], [])
    assert [describe(u) async for u in api.follow(WaitState(SID), messages=False)] == ["exit/None"]
    gone = NotFoundError(
        "gone", status_code=404, body=None, headers={}, request_id=None, method="GET", url="u"
    )
    with pytest.raises(NotFoundError):
        [u async for u in FakeApi([gone], []).follow(WaitState(SID))]


async def test_backoff_grows_while_quiet_and_resets_on_activity() -> None:
    quiet = [session("running", "working")] * 4
    api = FakeApi([*quiet, session("running", "finished")], [[], [], [], [message(1)]])
    [u async for u in api.follow(WaitState(SID))]
    assert api.sleeps[1] > api.sleeps[0]
    assert api.sleeps[2] > api.sleeps[1]
    assert api.sleeps[3] <= 1.5  # a message arrived: back to the first interval


async def test_deadline_raises_with_the_last_session() -> None:
    api = FakeApi([session("running", "working")], [])
    with pytest.raises(AwaitTimeoutError) as info:
        [u async for u in api.follow(WaitState(SID), timeout=10.0)]
    assert info.value.session is not None
    assert info.value.elapsed >= 10.0
    assert max(api.now, 0) <= 10.0 + 1e-9  # never slept past the deadline


async def test_deadline_after_failing_polls_names_the_last_failure() -> None:
    # Regression (the test failed before the fix): after polls that kept failing, the
    # error said only "did not settle within 10.0s".
    failure = APIConnectionError("proxy said no", method="GET", url="u", request_sent=True)
    api = FakeApi([session("running", "working"), failure], [])
    with pytest.raises(AwaitTimeoutError) as info:
        [u async for u in api.follow(WaitState(SID), timeout=10.0)]
    assert info.value.last_error is failure
    assert "the last poll failed: APIConnectionError: proxy said no" in str(info.value)
    assert "last seen: running/working" in str(info.value)


class EndlessApi(FakeApi):
    """A session that keeps working, and message pages that never end.

    Every page holds ``per_page`` new messages (none by default) and a fresh cursor that
    promises more; each page read takes ``cost`` seconds of fake time. ``pages`` counts the
    page reads, and a runaway read fails the test instead of hanging it.
    """

    def __init__(
        self, state: Session, *, per_page: int = 0, cost: float = 0.0, runaway: int = 1000
    ) -> None:
        super().__init__([state], [])
        self.per_page = per_page
        self.cost = cost
        self.runaway = runaway
        self.pages = 0

    async def page(self, after: str | None) -> Page[Message]:
        self.pages += 1
        assert self.pages <= self.runaway, "the follow never stopped reading"
        self.now += self.cost
        start = 0 if after is None else int(after)
        chunk = tuple(message(n) for n in range(start + 1, start + 1 + self.per_page))
        return Page(chunk, end_cursor=str(start + max(self.per_page, 1)), has_next_page=True)


async def drain(updates: AsyncIterator[SessionUpdate], into: list[SessionUpdate]) -> None:
    """Keep every update in ``into``, also when the follow then raises."""
    async for update in updates:
        into.append(update)


async def test_endless_empty_message_pages_end_at_the_deadline() -> None:
    # Regression (issue 9; the test failed before the fix): follow_session(timeout=2) ran
    # past 10 s and 27,000 requests against empty message pages with fresh cursors.
    api = EndlessApi(session("running", "working"))
    updates: list[SessionUpdate] = []
    with pytest.raises(AwaitTimeoutError) as info:
        await drain(api.follow(WaitState(SID), timeout=2.0), updates)
    assert updates == []  # a tick whose messages failed reports no state
    # Two ticks (t=0 and t=1..1.5), each a GET and EMPTY_PAGE_LIMIT pages; then t=2.
    assert (api.gets, api.pages) == (2, 2 * EMPTY_PAGE_LIMIT)
    assert api.now == 2.0
    assert info.value.polls == 2
    assert isinstance(info.value.last_error, ResponseValidationError)
    assert "empty pages in a row" in str(info.value)


async def test_slow_endless_pages_stop_at_the_deadline() -> None:
    # Regression (issue 9; the test failed before the fix): the pages read within one tick
    # ignored the deadline, so a follow with timeout=2 ran as long as the pages lasted.
    api = EndlessApi(session("running", "working"), cost=0.25)
    with pytest.raises(AwaitTimeoutError) as info:
        [u async for u in api.follow(WaitState(SID), timeout=2.0)]
    assert (api.gets, api.pages) == (1, 8)  # 8 x 0.25 s: the deadline, before the bound
    assert api.now == 2.0
    assert info.value.elapsed == 2.0
    assert info.value.session == session("running", "working")


async def test_a_read_cut_by_the_deadline_reports_no_state_and_resumes() -> None:
    # Messages come before the state they caused even when the deadline cuts the read:
    # the question's state is not reported until every message before it has been.
    asks = session("running", "waiting_for_user")
    api = EndlessApi(asks, per_page=2, cost=0.5)
    updates: list[SessionUpdate] = []
    with pytest.raises(AwaitTimeoutError):
        await drain(api.follow(WaitState(SID), timeout=2.0), updates)
    assert [describe(u) for u in updates] == [f"m{n}" for n in range(1, 9)]
    assert api.pages == 4
    # Resuming from the last saved state replays nothing and goes on from m9.
    again = EndlessApi(asks, per_page=2, cost=0.5)
    rest: list[SessionUpdate] = []
    with pytest.raises(AwaitTimeoutError):
        await drain(again.follow(updates[-1].state, timeout=1.0), rest)
    # The first page read again holds m7 and m8: skipped, not replayed.
    assert [describe(u) for u in rest] == ["m9", "m10"]


async def test_a_deadline_after_the_last_page_still_reports_the_state() -> None:
    # The deadline stops only a read that would go on: a read that ended reports its state.
    api = FakeApi([session("exit")], [[message(1), message(2), message(3)]])

    async def slow(after: str | None) -> Page[Message]:
        api.now += 1.0
        return await api.page(after)

    updates = follow(
        WaitState(SID),
        get_session=api.get_session,
        message_pages=page_fetcher(slow),
        until=is_settled,
        timeout=2.0,
        poll_interval=1.0,
        max_poll_interval=8.0,
        sleep=api.sleep,
        clock=api.clock,
    )
    assert [describe(u) async for u in updates] == ["m1", "m2", "m3", "exit/None"]
    assert api.now == 2.0


async def test_follow_session_against_endless_empty_pages_ends_at_its_deadline() -> None:
    # Regression (issue 9; the test failed before the fix), end to end over a socket.
    from aiohttp import web
    from fakes import FakeTime

    from devin_async import DevinClient

    asked: list[str] = []
    body = {
        "session_id": SID,
        "url": "https://app.devin.ai/sessions/" + SID,
        "status": "running",
        "status_detail": "working",
        "org_id": "org-test",
        "created_at": 1,
        "updated_at": 1,
        "acus_consumed": 0.0,
    }

    async def handle(request: web.Request) -> web.Response:
        asked.append(request.path)
        assert len(asked) <= 1000, "the follow never stopped reading"
        if request.path.endswith("/messages"):
            page = {"items": [], "end_cursor": f"c{len(asked)}", "has_next_page": True}
            return web.json_response({**page, "total": None})
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    time = FakeTime()
    try:
        async with DevinClient(
            "cog_test_key_0123456789", org_id="org-test", base_url=url, sleep=time, clock=time.clock
        ) as client:
            with pytest.raises(AwaitTimeoutError):
                [u async for u in client.follow_session(SID, timeout=2.0, poll_interval=1.0)]
    finally:
        await runner.cleanup()
    assert time.now == 1002.0
    messages = [path for path in asked if path.endswith("/messages")]
    assert (len(asked) - len(messages), len(messages)) == (2, 2 * EMPTY_PAGE_LIMIT)
