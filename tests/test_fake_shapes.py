"""Only get and list answers carry status_detail, category, subcategory and structured output.

The fake leaves them null in the answers of create, send message, terminate and archive,
as the API documents; these tests catch a client that takes such an answer for a full
snapshot of the session's state.
"""

from __future__ import annotations

import pytest
from fakes import KEY, FakeTime

from devin_async import DevinClient, Event, SessionChanged, is_settled
from devin_async.testing import WAITS_FOR_USER, FakeDevinServer, Step

ORG = "org-test"
DETAILS = ("status_detail", "category", "subcategory", "structured_output")
WORKS_THEN_FINISHES = (
    Step("running", "working", reads=2),
    Step("running", "finished", structured_output={"summary": "done"}),
)


def make_client(server: FakeDevinServer, sleep: FakeTime, **options: object) -> DevinClient:
    return DevinClient(
        KEY, org_id=ORG, base_url=server.url, sleep=sleep, clock=sleep.clock, **options
    )


def details(session: object) -> tuple[object, ...]:
    return tuple(getattr(session, name) for name in DETAILS)


async def test_only_get_and_list_answers_carry_the_details(
    client: DevinClient, server: FakeDevinServer
) -> None:
    server.queue_timeline([Step("running", "finished", structured_output={"ok": True})])
    created = await client.create_session("Fix the login bug")
    assert created.status == "running"
    assert details(created) == (None, None, None, None)
    got = await client.get_session(created.session_id)
    assert details(got) == ("finished", "other", "Other", {"ok": True})
    listed = [s async for s in client.list_sessions(session_ids=[created.session_id])]
    assert [details(s) for s in listed] == [details(got)]
    sent = await client.send_message(created.session_id, "Thanks")
    archived = await client.archive_session(created.session_id)
    assert (sent.status, archived.status) == ("running", "suspended")
    assert details(sent) == details(archived) == (None, None, None, None)
    assert (await client.get_session(created.session_id)).status_detail == "user_request"
    terminated = await client.terminate_session(created.session_id)
    assert (terminated.status, details(terminated)) == ("exit", (None, None, None, None))
    assert server.sessions[created.session_id].category == "other"  # kept, just not shown


async def test_a_running_create_answer_is_neither_settled_nor_a_first_state(
    server: FakeDevinServer, sleep: FakeTime
) -> None:
    # The create answer shows "running" without a detail; a wait or watch starts from
    # its first poll, so "working" is its first state and no change is reported twice.
    events: list[Event] = []
    async with make_client(server, sleep, hooks=[events.append]) as client:
        server.queue_timeline(WORKS_THEN_FINISHES)
        created = await client.create_session("Fix the login bug")
        assert (created.status, created.status_detail) == ("running", None)
        assert not is_settled(created)
        async with client.watch_session(created.session_id, poll_interval=2) as watch:
            states = [(s.status, s.status_detail) async for s in watch]
    assert states == [("running", "working"), ("running", "finished")]
    changes = [
        (e.previous_status, e.previous_status_detail, e.status, e.status_detail)
        for e in events
        if isinstance(e, SessionChanged)
    ]
    assert changes == [
        (None, None, "running", "working"),
        ("running", "working", "running", "finished"),
    ]
    assert server.count(route="get_session") == 3  # working twice, then finished


async def test_a_wait_after_a_create_that_shows_a_question_polls_first(
    client: DevinClient, server: FakeDevinServer
) -> None:
    # Only a get tells the question apart from work: the wait does not end untold.
    server.queue_timeline(WAITS_FOR_USER[1:])
    created = await client.create_session("Fix the login bug")
    server.reset_log()
    settled = await client.await_session(created.session_id, poll_interval=2)
    assert settled.status_detail == "waiting_for_user"
    assert server.count(route="get_session") == 2


async def test_a_wait_on_a_terminated_session_ends_on_its_first_poll(
    client: DevinClient, server: FakeDevinServer
) -> None:
    created = await client.create_session("Fix the login bug")
    terminated = await client.terminate_session(created.session_id)
    assert is_settled(terminated)  # exit says it all, detail or not
    server.reset_log()
    settled = await client.await_session(created.session_id)
    assert (settled.status, settled.status_detail) == ("exit", None)
    assert server.count(route="get_session") == 1


@pytest.mark.parametrize("lag", [0, 2])
async def test_a_wait_since_a_reply_from_elsewhere_learns_the_state_it_answered(
    server: FakeDevinServer, sleep: FakeTime, lag: int
) -> None:
    # The reply's answer says "running" only. Lagged reads show the question (the state
    # the reply answered) and must not end the wait; without a lag, the session is at
    # work at once, and Devin finishing in the same wall-clock second still ends it.
    server.message_lag_reads = lag
    server.queue_timeline(WAITS_FOR_USER)
    async with make_client(server, sleep) as bot:
        session_id = (await bot.create_session("Fix the login bug")).session_id
        asked = await bot.await_session(session_id, poll_interval=2)
        assert asked.status_detail == "waiting_for_user"
    async with make_client(server, sleep) as other:  # knows nothing of the question
        snapshot = await other.send_message(session_id, "Use main.")
        assert (snapshot.status, snapshot.status_detail) == ("running", None)
        settled = await other.await_session(session_id, since=snapshot, timeout=60)
        assert (settled.status, settled.status_detail) == ("running", "finished")
