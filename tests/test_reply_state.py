"""A reply saved in a bot's WaitState survives a restart: no stale settle, no question twice."""

from __future__ import annotations

from contextlib import aclosing

from fakes import FakeTime

from devin_async import (
    DevinClient,
    SessionUpdate,
    StatusDetail,
    WaitState,
    dumps_wait_state,
    loads_wait_state,
)
from devin_async.testing import FakeDevinServer, Step

KEY = "cog_test_key_0123456789"
QUESTION = (
    Step("claimed"),
    Step("running", "working"),
    Step("running", "waiting_for_user", message="Which branch?"),
)


def new_client(server: FakeDevinServer) -> DevinClient:
    """A client on virtual time, as a restarted bot would make."""
    time = FakeTime()
    return DevinClient(
        api_key=KEY, org_id="org-test", base_url=server.url, sleep=time, clock=time.clock
    )


def describe(update: SessionUpdate) -> str:
    if update.message is not None:
        return f"{update.message.source}: {update.message.message}"
    assert update.session is not None
    return f"{update.session.status}/{update.session.status_detail}"


async def follow(client: DevinClient, state: WaitState) -> tuple[list[str], WaitState]:
    seen: list[str] = []
    async with aclosing(client.follow_session(state)) as updates:
        async for update in updates:
            seen.append(describe(update))
            state = update.state
    return seen, state


async def asked_and_replied(server: FakeDevinServer) -> str:
    """Follow a new session to its question and answer it; return the saved state."""
    async with new_client(server) as client:
        server.queue_timeline(QUESTION)
        session = await client.create_session("Fix the login bug")
        seen, state = await follow(client, WaitState(session.session_id))
        assert seen[-1] == "running/waiting_for_user"
        snapshot = await client.send_message(session.session_id, "main")
        assert (snapshot.status, snapshot.status_detail) == ("running", None)  # get/list only
        return dumps_wait_state(state.after_reply(snapshot))


async def test_a_bot_restarted_after_its_reply_follows_past_the_lagged_question() -> None:
    async with FakeDevinServer(api_key=KEY, message_lag_reads=2) as server:
        saved = await asked_and_replied(server)
        state = loads_wait_state(saved)
        assert state.replied_at is not None
        async with new_client(server) as client:  # a new process: nothing in memory
            seen, final = await follow(client, state)
    # The lag hides "working" (both lagged reads advanced the timeline underneath).
    assert seen == ["user: main", "devin: All done.", "running/finished"]
    assert final.status_detail == StatusDetail.FINISHED
    assert final.replied_at is None  # moved on: the reply is no longer pending


async def test_without_the_reply_in_the_state_a_restarted_follow_ends_on_the_stale_state() -> None:
    # Why after_reply exists: the plain saved state ends the next follow at once.
    async with FakeDevinServer(api_key=KEY, message_lag_reads=2) as server:
        saved = loads_wait_state(await asked_and_replied(server))
        plain = WaitState(
            saved.session_id,
            status=saved.status,
            status_detail=saved.status_detail,
            message_cursor=saved.message_cursor,
            last_event_id=saved.last_event_id,
        )
        async with new_client(server) as client:
            seen, final = await follow(client, plain)
    assert seen == ["user: main"]  # and it ended on the lagged question
    assert final.status_detail == StatusDetail.WAITING_FOR_USER


async def test_the_same_client_remembers_its_reply_without_after_reply() -> None:
    async with (
        FakeDevinServer(api_key=KEY, message_lag_reads=2) as server,
        new_client(server) as client,
    ):
        server.queue_timeline(QUESTION)
        session = await client.create_session("Fix the login bug")
        _, state = await follow(client, WaitState(session.session_id))
        await client.send_message(session.session_id, "main")
        seen, final = await follow(client, state)
    assert seen == ["user: main", "devin: All done.", "running/finished"]
    assert final.status_detail == StatusDetail.FINISHED


def test_replied_at_survives_json_and_old_states_still_load() -> None:
    state = WaitState("devin-1", status="running", status_detail="waiting_for_user", replied_at=7)
    assert loads_wait_state(dumps_wait_state(state)) == state
    old = '{"session_id":"devin-1","status":"running","status_detail":"working"}'
    assert loads_wait_state(old).replied_at is None
