"""What the README says of how the fake's timelines advance, on virtual time.

``devin-async fake-server`` says its sessions finish in about 5 s: its steps are
``reads=0`` steps, which run on wall time whether or not anyone polls. Time passes here
by moving a session's ``entered_at`` back (a field tests may adjust), never by sleeping.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from devin_async import DevinClient, Session, cli
from devin_async.testing import FakeDevinServer, Step


@pytest.fixture
async def fake() -> AsyncIterator[FakeDevinServer]:
    async with FakeDevinServer() as server:
        server.timeline_factory = lambda body: cli.fake_timeline(3)
        yield server


async def _unread_for(fake: FakeDevinServer, seconds: float) -> tuple[Session, list[str]]:
    """Create a session, let ``seconds`` pass with nobody reading it, then read it once."""
    async with DevinClient(fake.api_key, org_id=fake.org_id, base_url=fake.url) as client:
        created = await client.create_session("make the tests pass")
        fake.sessions[created.session_id].entered_at -= seconds
        session = await client.get_session(created.session_id)
        texts = [m.message async for m in client.list_messages(created.session_id)]
    return session, texts


async def test_an_unpolled_fake_server_session_has_finished_after_five_seconds(
    fake: FakeDevinServer,
) -> None:
    session, texts = await _unread_for(fake, 5.5)
    assert (session.status, session.status_detail) == ("running", "finished")
    assert [pr.pr_url for pr in session.pull_requests] == ["https://github.com/example/app/pull/3"]
    assert texts[1:] == [  # after the prompt: every step's message, none lost or doubled
        "Looking at the repository.",
        "Running the tests.",
        "Done: I opened a pull request.",
    ]


@pytest.mark.parametrize(
    ("seconds", "detail", "last_message"),
    [
        pytest.param(0.0, None, "make the tests pass", id="claimed-for-the-first-second"),
        pytest.param(1.5, "working", "Looking at the repository.", id="working-from-1s"),
        pytest.param(4.5, "working", "Running the tests.", id="still-working-before-5s"),
    ],
)
async def test_the_fake_server_timeline_follows_wall_time_before_it_finishes(
    fake: FakeDevinServer, seconds: float, detail: str | None, last_message: str
) -> None:
    session, texts = await _unread_for(fake, seconds)
    assert session.status_detail == detail
    assert texts[-1] == last_message


async def test_steps_that_count_reads_are_not_skipped_by_wall_time() -> None:
    steps = [Step("claimed", seconds=1.0), Step("running", "working"), Step("exit")]
    async with FakeDevinServer(default_timeline=steps) as fake:
        session, _ = await _unread_for(fake, 60.0)
    assert (session.status, session.status_detail) == ("claimed", None)  # shown for its read
