"""Event hooks and the DEBUG log built on them, end to end against the fake server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import pytest
from fakes import FakeTime

from devin_async import (
    AwaitTimeoutError,
    DevinClient,
    Event,
    NotFoundError,
    RateLimitPaused,
    RequestSent,
    ResponseReceived,
    RetryScheduled,
    SessionChanged,
    WaitFinished,
)
from devin_async._events import Hooks, describe
from devin_async.testing import FakeDevinServer, Step

KEY = "cog_events_key_0123"


@pytest.fixture
async def server() -> AsyncIterator[FakeDevinServer]:
    async with FakeDevinServer(api_key=KEY, org_id="org-ev") as srv:
        yield srv


def make_client(
    server: FakeDevinServer, events: list[Event], time: FakeTime | None = None, **kwargs: object
) -> DevinClient:
    """A client on virtual time (``time``, or a fresh ``FakeTime``) telling ``events``."""
    time = time or FakeTime()
    options: dict[str, object] = {
        "org_id": server.org_id,
        "base_url": server.url,
        "hooks": [events.append],
        "sleep": time,
        "clock": time.clock,
    }
    options.update(kwargs)
    return DevinClient(KEY, **options)  # type: ignore[arg-type]


async def spin_until(condition: Callable[[], bool], spins: int = 100_000) -> None:
    """Let the loop run (no timer) until ``condition()`` holds; fail after ``spins`` turns."""
    for _ in range(spins):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


def of(kind: type[Event], events: list[Event]) -> list[Event]:
    return [e for e in events if isinstance(e, kind)]


async def test_each_request_is_sent_and_received_with_ids(server: FakeDevinServer) -> None:
    events: list[Event] = []
    async with make_client(server, events) as client:
        session = await client.create_session("hello", tags=["t"])
        await client.get_session(session.session_id)
    sent = of(RequestSent, events)
    received = of(ResponseReceived, events)
    assert [e.method for e in sent] == ["POST", "GET"]
    assert sent[1] == RequestSent(
        "GET", f"/v3/organizations/org-ev/sessions/{session.session_id}", session.session_id
    )
    assert [e.status for e in received] == [200, 200]
    assert all(e.request_id and e.request_id.startswith("req-") for e in received)
    assert received[1].session_id == session.session_id
    assert all(e.elapsed >= 0 for e in received)


async def test_a_retry_is_announced_with_reason_and_delay(server: FakeDevinServer) -> None:
    events: list[Event] = []
    server.inject("status", status=503, times=1, route="get_session")
    async with make_client(server, events) as client:
        session = await client.create_session("hello")
        await client.get_session(session.session_id)
    (retry,) = of(RetryScheduled, events)
    assert retry.reason == "HTTP 503"
    assert retry.attempt == 1
    assert retry.delay >= 0
    assert retry.request_id is not None
    assert retry.session_id == session.session_id


async def test_an_ambiguous_create_retry_is_announced(server: FakeDevinServer) -> None:
    events: list[Event] = []
    server.inject("status", status=502, times=1, route="create_session", when="before")
    async with make_client(server, events) as client:
        await client.create_session("hello")
    (retry,) = of(RetryScheduled, events)
    assert (retry.method, retry.reason) == ("POST", "HTTP 502")


async def test_a_429_pause_is_announced(server: FakeDevinServer) -> None:
    events: list[Event] = []
    server.inject("rate_limit", retry_after="3", times=1, route="get_session")
    async with make_client(server, events) as client:
        session = await client.create_session("hello")
        await client.get_session(session.session_id)
    (pause,) = of(RateLimitPaused, events)
    assert pause.retry_after == 3.0
    assert 0 < pause.seconds <= 3.0


async def test_session_changes_and_the_finished_wait(server: FakeDevinServer) -> None:
    events: list[Event] = []
    time = FakeTime()
    async with make_client(server, events, time) as client:
        session = await client.create_session("hello")
        await client.await_session(session.session_id, poll_interval=2, max_poll_interval=2)
    changes = [(e.previous_status_detail, e.status_detail) for e in of(SessionChanged, events)]
    assert changes == [(None, None), (None, "working"), ("working", "finished")]
    (done,) = of(WaitFinished, events)
    assert (done.session_id, done.outcome, done.polls) == (session.session_id, "settled", 3)
    assert (done.status, done.status_detail) == ("running", "finished")
    assert done.elapsed == pytest.approx(4.0)  # polls at 0, 2 and 4 virtual seconds


@pytest.mark.parametrize("outcome", ["timeout", "error", "cancelled"])
async def test_a_wait_that_does_not_settle_says_why(server: FakeDevinServer, outcome: str) -> None:
    events: list[Event] = []
    server.default_timeline = [Step("running", "working")]
    async with make_client(server, events) as client:
        session = await client.create_session("hello")
        if outcome == "timeout":
            with pytest.raises(AwaitTimeoutError):
                await client.await_session(
                    session.session_id, timeout=60, poll_interval=2, max_poll_interval=2
                )
        elif outcome == "error":
            with pytest.raises(NotFoundError):
                await client.await_session("devin-missing")
        else:
            task = asyncio.create_task(client.await_session(session.session_id))
            await spin_until(lambda: server.count(route="get_session") >= 2)
            assert not task.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    (done,) = of(WaitFinished, events)
    assert done.outcome == outcome
    if outcome == "timeout":  # a poll every 2 virtual seconds until the deadline
        assert (done.polls, done.elapsed) == (30, pytest.approx(60.0))
        assert (done.status, done.status_detail) == ("running", "working")
    elif outcome == "error":
        assert (done.session_id, done.polls, done.status) == ("devin-missing", 1, None)
    else:
        assert done.polls >= 2
        assert done.status_detail == "working"


async def test_fan_out_waits_and_watches_report_their_end(server: FakeDevinServer) -> None:
    events: list[Event] = []
    async with make_client(server, events) as client:
        first, second = [await client.create_session(p) for p in ("a", "b")]
        results = await client.await_sessions([first.session_id, "devin-gone"])
        async for _ in client.watch_session(second.session_id):
            pass
    assert [r.ok for r in results] == [True, False]
    outcomes = sorted((e.session_id, e.outcome) for e in of(WaitFinished, events))
    assert outcomes == sorted(
        [(first.session_id, "settled"), ("devin-gone", "error"), (second.session_id, "settled")]
    )


async def test_a_hook_that_raises_never_breaks_the_client(
    server: FakeDevinServer, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: Event) -> None:
        raise RuntimeError("metrics are down")

    events: list[Event] = []
    async with make_client(server, events, hooks=[broken, events.append]) as client:
        session = await client.create_session("hello")
        settled = await client.await_session(session.session_id)
    assert settled.status_detail == "finished"
    assert of(WaitFinished, events)  # the later hook still saw everything
    assert "metrics are down" in caplog.text


async def test_hooks_can_be_added_and_removed(server: FakeDevinServer) -> None:
    events: list[Event] = []
    async with make_client(server, [], hooks=()) as client:
        client.add_hook(events.append)
        session = await client.create_session("hello")
        client.remove_hook(events.append)
        await client.get_session(session.session_id)
    assert [type(e) for e in events] == [RequestSent, ResponseReceived]


async def test_the_debug_log_is_built_on_the_events(
    server: FakeDevinServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="devin_async")
    server.inject("status", status=503, times=1, route="get_session")
    async with make_client(server, [], hooks=()) as client:
        session = await client.create_session("hello")
        await client.await_session(session.session_id)
    text = caplog.text
    assert "-> POST /v3/organizations/org-ev/sessions" in text
    assert "<- 200 POST" in text
    assert "retrying GET" not in text  # polls are not retried, they poll again
    assert f"session {session.session_id} is now running/finished" in text
    assert f"wait for {session.session_id} ended: settled" in text


def test_without_hooks_or_debug_logging_no_event_is_built() -> None:
    logger = logging.getLogger("devin_async")
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        assert Hooks().active is False
        assert Hooks([print]).active is True
    finally:
        logger.setLevel(level)


@pytest.mark.parametrize(
    "event",
    [
        RequestSent("GET", "/p", None),
        ResponseReceived("GET", "/p", 200, 0.01, None, None),
        RetryScheduled("GET", "/p", "timeout", 1.0, 2, None, None),
        RateLimitPaused(2.0, 2.0, 5.0),
        SessionChanged("devin-1", "running", "working", None, None),
        WaitFinished("devin-1", "settled", 1.0, 3, "exit", None),
    ],
    ids=lambda e: type(e).__name__,
)
def test_every_event_has_a_one_line_description(event: Event) -> None:
    text = describe(event)
    assert text
    assert "\n" not in text
