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
    Session,
    WaitState,
)
from devin_async._follow import SessionUpdate, follow, page_fetcher
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
