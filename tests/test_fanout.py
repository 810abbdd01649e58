"""Batched polling, fan-out helpers, watch, the governor and exactly-once create, end to end."""

from __future__ import annotations

import asyncio
import gc
import logging
import math
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from fakes import FakeTime

from devin_async import (
    AwaitTimeoutError,
    ClientClosedError,
    CreateSessionRequest,
    DevinClient,
    NotFoundError,
    PermissionDeniedError,
    Session,
    SessionResult,
)
from devin_async.testing import FINISHES, WAITS_FOR_USER, FakeDevinServer, Step

KEY = "cog_fanout_key"


@pytest.fixture
async def server() -> AsyncIterator[FakeDevinServer]:
    async with FakeDevinServer(api_key=KEY, org_id="org-fan") as srv:
        yield srv


def make_client(
    server: FakeDevinServer, time: FakeTime | None = None, **kwargs: object
) -> DevinClient:
    """A client on virtual time (``time``, or a fresh ``FakeTime``), default intervals."""
    time = time or FakeTime()
    options: dict[str, object] = {
        "org_id": server.org_id,
        "base_url": server.url,
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


async def assert_nothing_polls(server: FakeDevinServer, client: DevinClient) -> None:
    """No wait is subscribed, and the loop turning many times sends no request."""
    assert client._engine.pending == 0
    polls = server.count()
    for _ in range(500):  # on virtual time a live engine would poll within a few turns
        await asyncio.sleep(0)
    assert server.count() == polls


async def create(client: DevinClient, n: int) -> list[Session]:
    results = await client.create_sessions([f"task {i}" for i in range(n)], concurrency=32)
    return [r.unwrap() for r in results]


def leftover_tasks(before: set[asyncio.Task[object]]) -> list[asyncio.Task[object]]:
    """Tasks started since ``before``, ignoring the fake server's connection handlers."""
    return [
        t
        for t in asyncio.all_tasks() - before
        if not t.get_coro().__qualname__.startswith("RequestHandler.")  # type: ignore[union-attr]
    ]


# ---------------------------------------------------------------- batched polling


async def test_1000_concurrent_awaits_poll_through_the_list_endpoint(
    server: FakeDevinServer,
) -> None:
    server.default_timeline = FINISHES  # settles on its third read
    async with make_client(server) as client:
        created = await create(client, 1000)
        server.reset_log()
        settled = await asyncio.gather(*(client.await_session(s.session_id) for s in created))
    assert [s.session_id for s in settled] == [s.session_id for s in created]
    assert all(s.status_detail == "finished" for s in settled)
    # Every tick reads every pending session once, and FINISHES needs three reads:
    # three ticks of at most ceil(1000 / 200) list requests each, and no GET at all.
    assert server.count(route="get_session") == 0
    assert server.count(route="list_sessions") <= 3 * math.ceil(1000 / 200)
    for request in server.requests:
        ids = [v for k, v in request.query if k == "session_ids"]
        assert 1 <= len(ids) <= 200


async def test_a_lone_wait_uses_get(server: FakeDevinServer) -> None:
    async with make_client(server) as client:
        (session,) = await create(client, 1)
        await client.await_session(session.session_id)
    assert server.count(route="get_session") == 3
    assert server.count(route="list_sessions") == 0


async def test_waits_on_one_id_share_its_polls(server: FakeDevinServer) -> None:
    async with make_client(server) as client:
        (session,) = await create(client, 1)
        results = await asyncio.gather(
            *(client.await_session(session.session_id) for _ in range(5))
        )
    assert {r.status_detail for r in results} == {"finished"}
    assert server.count(route="get_session") == 3  # as for a single wait


async def test_waits_without_an_org_fall_back_to_get(server: FakeDevinServer) -> None:
    async with make_client(server) as client:
        created = await create(client, 3)
    async with make_client(server, org_id=None) as enterprise:
        server.reset_log()
        results = await enterprise.await_sessions([s.session_id for s in created])
    assert all(r.ok for r in results)
    assert server.count(route="list_sessions") == 0
    assert server.count(route="enterprise_list_sessions") == 0
    assert server.count(route="enterprise_get_session") == 9


async def test_a_refused_list_falls_back_to_get_and_says_so(
    server: FakeDevinServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="devin_async")
    async with make_client(server) as client:
        created = await create(client, 4)
        server.inject("status", status=400, times=1, route="list_sessions")
        results = await client.await_sessions([s.session_id for s in created])
    assert all(r.ok for r in results)
    assert server.count(route="list_sessions") == 1
    assert server.count(route="get_session") >= 4 * 3
    assert "polling sessions one GET each" in caplog.text


async def test_a_session_missing_from_the_list_is_read_with_get(
    server: FakeDevinServer,
) -> None:
    async with make_client(server) as client:
        created = await create(client, 2)
        results = await client.await_sessions(
            [created[0].session_id, created[1].session_id, "devin-gone"]
        )
    assert [r.ok for r in results] == [True, True, False]
    assert isinstance(results[2].error, NotFoundError)
    assert results[2].session_id == "devin-gone"


async def test_transient_list_failures_do_not_end_the_waits(server: FakeDevinServer) -> None:
    async with make_client(server) as client:
        created = await create(client, 5)
        server.inject("status", status=503, times=2, route="list_sessions")
        server.inject("malformed", times=1, route="list_sessions")
        server.inject("rate_limit", retry_after="0", times=1, route="list_sessions")
        results = await client.await_sessions([s.session_id for s in created])
    assert all(r.ok for r in results)


# ---------------------------------------------------------------- as_completed / await_sessions


async def test_as_completed_yields_in_settle_order(server: FakeDevinServer) -> None:
    lengths = [5, 2, 4, 1, 3]  # reads of "working" before each session finishes
    for n in lengths:
        server.queue_timeline([Step("running", "working", reads=n), Step("running", "finished")])
    async with make_client(server) as client:
        created = await create(client, len(lengths))
        order = [r.session_id async for r in client.as_completed(s.session_id for s in created)]
    expected = [created[i].session_id for i in sorted(range(len(lengths)), key=lengths.__getitem__)]
    assert order == expected


async def test_await_sessions_keeps_input_order_and_per_item_outcomes(
    server: FakeDevinServer,
) -> None:
    server.queue_timeline([Step("running", "working", reads=4), Step("exit")])
    server.queue_timeline(WAITS_FOR_USER)
    async with make_client(server) as client:
        first, second = await create(client, 2)
        ids = [first.session_id, "devin-unknown", second.session_id, first.session_id]
        results = await client.await_sessions(ids)
    assert [r.session_id for r in results] == ids
    assert results[0].unwrap().status == "exit"
    assert isinstance(results[1].error, NotFoundError)
    with pytest.raises(NotFoundError):
        results[1].unwrap()
    assert results[2].unwrap().status_detail == "waiting_for_user"
    assert results[3].unwrap().status == "exit"


async def test_deadline_turns_the_pending_waits_into_timeout_results(
    server: FakeDevinServer,
) -> None:
    server.queue_timeline([Step("running", "working")])  # never settles
    server.queue_timeline(FINISHES)
    time = FakeTime()
    async with make_client(server, time) as client:
        stuck, done = await create(client, 2)
        start = time.now
        results = await client.await_sessions(
            [stuck.session_id, done.session_id], timeout=60, poll_interval=2, max_poll_interval=2
        )
    assert results[1].ok
    error = results[0].error
    assert isinstance(error, AwaitTimeoutError)
    assert error.session is not None
    assert error.session.status_detail == "working"
    # A poll every 2 s exactly (the cap equals the interval): ticks at 0, 2, ..., 58.
    assert error.polls == 30
    assert error.elapsed == pytest.approx(60.0)
    assert time.now - start == pytest.approx(60.0)
    assert set(time.delays) == {2.0}


async def test_breaking_out_of_as_completed_stops_polling(server: FakeDevinServer) -> None:
    server.default_timeline = [Step("running", "working")]
    server.queue_timeline(FINISHES)
    async with make_client(server) as client:
        created = await create(client, 3)
        before = asyncio.all_tasks()
        async with client.as_completed(s.session_id for s in created) as waits:
            async for result in waits:
                assert result.ok
                break
        assert leftover_tasks(before) == []
        await assert_nothing_polls(server, client)


async def test_an_abandoned_iterator_releases_its_waits(server: FakeDevinServer) -> None:
    server.default_timeline = [Step("running", "working")]
    async with make_client(server) as client:
        created = await create(client, 2)
        waits = client.as_completed(s.session_id for s in created)
        task = asyncio.create_task(waits.__anext__())
        await spin_until(lambda: server.count(route="list_sessions") >= 2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        del waits, task
        gc.collect()
        await assert_nothing_polls(server, client)


async def assert_released(
    server: FakeDevinServer, client: DevinClient, before: set[asyncio.Task[object]]
) -> None:
    """No wait is left: the poller task has ended and nothing polls any more."""
    await client._engine.stopped()
    assert leftover_tasks(before) == []
    await assert_nothing_polls(server, client)


async def cancel_after_first(iterator: AsyncIterator[Any]) -> list[Any]:
    """Iterate in a task without ``async with``, and cancel it inside ``__anext__``.

    Returns the items seen before the cancel (the task waits for the next one then).
    """
    seen: list[Any] = []
    got = asyncio.Event()

    async def follow() -> None:
        async for item in iterator:
            seen.append(item)
            got.set()

    task = asyncio.create_task(follow())
    async with asyncio.timeout(5):
        await got.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return seen


async def test_cancelling_a_task_inside_as_completed_releases_its_waits_at_once(
    server: FakeDevinServer,
) -> None:
    # Issue 9: without ``async with``, only the garbage collector used to release them.
    server.queue_timeline(FINISHES)
    server.queue_timeline([Step("running", "working")])  # never settles
    async with make_client(server) as client:
        created = await create(client, 2)
        before = asyncio.all_tasks()
        waits = client.as_completed(s.session_id for s in created)  # kept referenced
        seen = await cancel_after_first(waits)
        await assert_released(server, client, before)
        assert [r.session_id for r in seen] == [created[0].session_id]
        with pytest.raises(StopAsyncIteration):  # closed, as an async generator would be
            await waits.__anext__()


async def test_cancelling_a_task_inside_watch_session_releases_its_wait_at_once(
    server: FakeDevinServer,
) -> None:
    server.default_timeline = [Step("running", "working")]
    async with make_client(server) as client:
        (session,) = await create(client, 1)
        before = asyncio.all_tasks()
        states = client.watch_session(session.session_id)
        seen = await cancel_after_first(states)
        await assert_released(server, client, before)
        assert [s.status_detail for s in seen] == ["working"]
        with pytest.raises(StopAsyncIteration):
            await states.__anext__()


async def test_cancelling_one_waiter_leaves_the_others_polling(server: FakeDevinServer) -> None:
    server.queue_timeline([Step("running", "working")])
    server.queue_timeline([Step("running", "working", reads=6), Step("running", "finished")])
    async with make_client(server) as client:
        stuck, slow = await create(client, 2)
        before = asyncio.all_tasks()
        doomed = asyncio.create_task(client.await_session(stuck.session_id))
        survivor = asyncio.create_task(client.await_session(slow.session_id))
        await spin_until(lambda: server.count(route="list_sessions") >= 2)
        assert not doomed.done()
        doomed.cancel()
        with pytest.raises(asyncio.CancelledError):
            await doomed
        assert (await survivor).status_detail == "finished"
        assert leftover_tasks(before) == []
    assert server.sessions[stuck.session_id].status == "running"  # the session lives on


async def test_closing_the_client_ends_pending_waits(server: FakeDevinServer) -> None:
    server.default_timeline = [Step("running", "working")]
    client = make_client(server)
    (session,) = await create(client, 1)
    wait = asyncio.create_task(client.await_session(session.session_id))
    await spin_until(lambda: server.count(route="get_session") >= 1)
    assert not wait.done()
    await client.aclose()
    with pytest.raises(ClientClosedError):
        await wait
    with pytest.raises(ClientClosedError):
        await client.await_session(session.session_id)


# ---------------------------------------------------------------- watch


async def test_watch_yields_each_change_and_ends_when_settled(server: FakeDevinServer) -> None:
    server.queue_timeline(
        [
            Step("claimed"),
            Step("running", "working", reads=3),
            Step("running", "waiting_for_approval"),
            Step("running", "finished"),
        ]
    )
    async with make_client(server) as client:
        (session,) = await create(client, 1)
        states = [
            (s.status, s.status_detail) async for s in client.watch_session(session.session_id)
        ]
    assert states == [
        ("claimed", None),
        ("running", "working"),
        ("running", "waiting_for_approval"),
        ("running", "finished"),
    ]


async def test_watch_raises_a_fatal_error(server: FakeDevinServer) -> None:
    async with make_client(server) as client:
        with pytest.raises(NotFoundError):
            async for _ in client.watch_session("devin-nope"):
                pass  # pragma: no cover - nothing arrives


async def test_watch_deadline(server: FakeDevinServer) -> None:
    server.default_timeline = [Step("running", "working")]
    time = FakeTime()
    async with make_client(server, time) as client:
        (session,) = await create(client, 1)
        seen: list[object] = []

        async def follow() -> None:
            watch = client.watch_session(
                session.session_id, timeout=60, poll_interval=2, max_poll_interval=2
            )
            async for state in watch:
                seen.append(state.status_detail)

        with pytest.raises(AwaitTimeoutError) as info:
            await follow()
    assert seen == ["working"]
    assert info.value.session is not None
    assert info.value.session.status_detail == "working"
    assert info.value.polls == 30  # at 0, 2, ..., 58 virtual seconds
    assert info.value.elapsed == pytest.approx(60.0)
    assert server.count(route="get_session") == 30


async def test_await_reports_changes_to_on_change(server: FakeDevinServer) -> None:
    async with make_client(server) as client:
        (session,) = await create(client, 1)
        changes: list[str] = []
        await client.await_session(
            session.session_id, on_change=lambda s: changes.append(f"{s.status}/{s.status_detail}")
        )
    assert changes == ["claimed/None", "running/working", "running/finished"]


async def test_a_failing_callback_ends_only_its_wait(server: FakeDevinServer) -> None:
    def explode(_: Session) -> None:
        raise RuntimeError("bot bug")

    async with make_client(server) as client:
        (session,) = await create(client, 1)
        with pytest.raises(RuntimeError, match="bot bug"):
            await client.await_session(session.session_id, on_change=explode)
        assert (await client.await_session(session.session_id)).status_detail == "finished"


# ---------------------------------------------------------------- create_sessions


async def test_create_sessions_keeps_order_and_failures(server: FakeDevinServer) -> None:
    server.forbidden_keys.clear()
    server.inject("status", status=403, times=1, route="create_session")
    async with make_client(server) as client:
        results = await client.create_sessions(["a", "b", "c"], concurrency=1)
    assert [type(r.error) for r in results] == [PermissionDeniedError, type(None), type(None)]
    assert all(isinstance(r, SessionResult) for r in results)
    assert [r.session_id is not None for r in results] == [False, True, True]
    assert server.sessions_created == 2


async def test_create_sessions_validates_everything_first(server: FakeDevinServer) -> None:
    async with make_client(server) as client:
        with pytest.raises(ValueError, match="prompt"):
            await client.create_sessions(["fine", "  "])
        with pytest.raises(ValueError, match=r"^create_sessions item 2: .*prompt"):
            await client.create_sessions(["fine", "also fine", "  ", "fine"])
        with pytest.raises(ValueError, match="concurrency"):
            await client.create_sessions(["fine"], concurrency=0)
        bad = ["a", "b", CreateSessionRequest(prompt="c"), None]
        with pytest.raises(ValueError, match=r"^create_sessions item 3: prompt must be a non-emp"):
            await client.create_sessions(bad)  # type: ignore[list-item]
    assert server.requests == []


# ---------------------------------------------------------------- the governor under load


async def test_2000_session_fan_out_against_a_rate_limited_server() -> None:
    rate = 1000.0
    async with FakeDevinServer(api_key=KEY, org_id="org-fan", rate_limit=rate) as server:
        # The server's token bucket refills on real time, so the governor that paces the
        # creates against it runs on real time too; the waits run on virtual time.
        async with DevinClient(KEY, org_id=server.org_id, base_url=server.url) as creator:
            created = await create(creator, 2000)
        async with make_client(server) as client:
            results = await client.await_sessions([s.session_id for s in created])
    assert all(r.ok and r.unwrap().status_detail == "finished" for r in results)
    assert server.sessions_created == 2000  # exactly one per create, despite the 429s
    refused = server.count_status(429)
    assert refused <= 0.1 * server.count(), f"{refused} of {server.count()} requests got a 429"


async def test_a_closed_watch_yields_nothing(server: FakeDevinServer) -> None:
    async with make_client(server) as client:
        (session,) = await create(client, 1)
        watch = client.watch_session(session.session_id)
        await watch.aclose()
        with pytest.raises(StopAsyncIteration):
            await watch.__anext__()
    assert server.count(route="get_session") == 0


async def test_a_failing_predicate_in_as_completed_is_raised(server: FakeDevinServer) -> None:
    def broken(_: Session) -> bool:
        raise RuntimeError("predicate bug")

    async with make_client(server) as client:
        created = await create(client, 2)
        with pytest.raises(RuntimeError, match="predicate bug"):
            await client.await_sessions([s.session_id for s in created], until=broken)
