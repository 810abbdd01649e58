"""Session insights end to end, over real sockets against FakeDevinServer, on virtual time."""

from __future__ import annotations

import pickle
from collections.abc import AsyncIterator

import pytest
from fakes import KEY, FakeTime

from devin_async import (
    AwaitTimeoutError,
    ConfigurationError,
    DevinClient,
    InsightsGeneration,
    InsightsStatus,
    NotFoundError,
    PermissionDeniedError,
    ResponseValidationError,
    SessionInsights,
    _convert,
)
from devin_async.testing import FakeDevinServer

UNKNOWN = "devin-" + "0" * 32


@pytest.fixture
async def enterprise(server: FakeDevinServer, sleep: FakeTime) -> AsyncIterator[DevinClient]:
    async with DevinClient(
        KEY, base_url=server.url, sleep=sleep, clock=sleep.clock, timeout=5.0
    ) as c:
        yield c


async def test_generate_then_get_shows_the_analysis_after_the_polls(
    client: DevinClient, server: FakeDevinServer
) -> None:
    session = await client.create_session("fix the flaky test")
    before = await client.get_insights(session.session_id)
    assert isinstance(before, SessionInsights)
    assert before.analysis is None
    assert not before.ready
    assert before.session_id == session.session_id
    assert before.num_user_messages == 1

    generated = await client.generate_insights(session.session_id)
    assert generated == InsightsGeneration(session.session_id, InsightsStatus.STARTED)

    seen = [await client.get_insights(session.session_id) for _ in range(server.insights.polls)]
    assert [s.ready for s in seen] == [False] * (server.insights.polls - 1) + [True]
    assert seen[-1].analysis is not None
    assert "summary" in seen[-1].analysis
    assert seen[-1].session_size == "xs"


async def test_a_second_generate_answers_already_exists(client: DevinClient) -> None:
    session = await client.create_session("write docs")
    first = await client.generate_insights(session.session_id)
    second = await client.generate_insights(session.session_id)
    assert (first.status, second.status) == ("started", "already_exists")
    assert second.status is InsightsStatus.ALREADY_EXISTS


async def test_unknown_sessions_are_not_found(client: DevinClient) -> None:
    with pytest.raises(NotFoundError):
        await client.get_insights(UNKNOWN)
    with pytest.raises(NotFoundError):
        await client.generate_insights(UNKNOWN)
    with pytest.raises(NotFoundError):
        await client.await_insights(UNKNOWN)


async def test_await_insights_generates_and_waits_several_polls(
    client: DevinClient, server: FakeDevinServer, sleep: FakeTime
) -> None:
    session = await client.create_session("refactor")
    server.reset_log()
    insights = await client.await_insights(
        session.session_id, timeout=60, poll_interval=1, max_poll_interval=3
    )
    assert insights.ready
    assert insights.session_id == session.session_id
    assert server.count("generate_insights") == 1
    assert server.count("get_insights") == 1 + server.insights.polls
    assert sleep.delays == [1, 2, 3]  # doubling up to the cap, all virtual


async def test_await_insights_returns_at_once_when_ready(
    client: DevinClient, server: FakeDevinServer, sleep: FakeTime
) -> None:
    session = await client.create_session("ready")
    await client.await_insights(session.session_id, poll_interval=1)
    server.reset_log()
    sleep.delays.clear()
    assert (await client.await_insights(session.session_id)).ready
    assert server.count("generate_insights") == 0
    assert sleep.delays == []


async def test_await_insights_times_out_on_the_injected_clock(
    client: DevinClient, server: FakeDevinServer, sleep: FakeTime
) -> None:
    server.insights.polls = 1000
    session = await client.create_session("slow analysis")
    start = sleep.now
    with pytest.raises(AwaitTimeoutError) as caught:
        await client.await_insights(session.session_id, timeout=10, poll_interval=2)
    error = caught.value
    assert isinstance(error.session, SessionInsights)
    assert not error.session.ready
    assert error.elapsed == pytest.approx(10)
    assert sleep.now - start == pytest.approx(10)
    assert error.polls == server.count("get_insights") >= 3
    assert KEY not in str(error)
    assert KEY not in repr(error)
    again = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert isinstance(again, AwaitTimeoutError)
    assert str(again) == str(error)


async def test_enterprise_generates_but_cannot_read(
    enterprise: DevinClient, client: DevinClient, server: FakeDevinServer
) -> None:
    session = await client.create_session("enterprise")
    generated = await enterprise.generate_insights(session.session_id)
    assert generated.status == "started"
    assert (await enterprise.generate_insights(session.session_id)).status == "already_exists"
    with pytest.raises(NotFoundError):
        await enterprise.generate_insights(UNKNOWN)
    server.reset_log()
    with pytest.raises(ConfigurationError):
        await enterprise.get_insights(session.session_id)
    with pytest.raises(ConfigurationError):
        await enterprise.await_insights(session.session_id)
    assert server.requests == []


async def test_a_malformed_answer_is_a_validation_error(
    client: DevinClient, server: FakeDevinServer
) -> None:
    session = await client.create_session("bad answers")
    server.inject("malformed", route="get_insights", times=None)
    with pytest.raises(ResponseValidationError):
        await client.get_insights(session.session_id)
    server.inject("malformed", route="generate_insights", times=None)
    with pytest.raises(ResponseValidationError):
        await client.generate_insights(session.session_id)


@pytest.mark.parametrize(
    "body",
    [
        {"session_id": "devin-x"},  # no status
        {"session_id": 1, "status": "started"},
        ["started"],
    ],
)
def test_a_bad_generate_body_is_a_validation_error(body: object) -> None:
    with pytest.raises(ResponseValidationError):
        _convert.structure_insights_generation(body)


def test_a_bad_insights_body_is_a_validation_error() -> None:
    row = {
        "session_id": "devin-x",
        "url": "u",
        "status": "running",
        "org_id": "org-test",
        "created_at": 1,
        "updated_at": 2,
        "acus_consumed": 0.0,
        "num_devin_messages": 1,
        "num_user_messages": 1,
        "session_size": "xs",
        "analysis": None,
        "unknown_field": {"ignored": True},
    }
    assert not _convert.structure_insights(row).ready
    for broken in ({**row, "analysis": "done"}, {**row, "num_user_messages": "1"}):
        with pytest.raises(ResponseValidationError):
            _convert.structure_insights(broken)
    missing = dict(row)
    del missing["session_size"]
    with pytest.raises(ResponseValidationError):
        _convert.structure_insights(missing)


async def test_await_insights_polls_again_after_a_transient_failure(
    client: DevinClient, server: FakeDevinServer, sleep: FakeTime
) -> None:
    session = await client.create_session("flaky proxy")
    await client.generate_insights(session.session_id)
    server.inject("status", status=503, route="get_insights", times=1, retry_after="5")
    # The first read (before any poll) retries inside the request; then the polls.
    server.inject("status", status=503, route="get_insights", times=None, retry_after="7")
    with pytest.raises(AwaitTimeoutError) as caught:
        await client.await_insights(session.session_id, timeout=30, poll_interval=1)
    assert caught.value.last_error is not None
    assert "503" in str(caught.value)
    server.clear_faults()
    assert (await client.await_insights(session.session_id, timeout=60)).ready


async def test_await_insights_ends_on_a_fatal_failure(
    client: DevinClient, server: FakeDevinServer
) -> None:
    session = await client.create_session("revoked key")
    await client.generate_insights(session.session_id)
    server.inject("status", status=403, route="get_insights", times=None)
    with pytest.raises(PermissionDeniedError):
        await client.await_insights(session.session_id, timeout=30, poll_interval=1)
