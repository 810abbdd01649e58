"""The chaos soak at a bounded size, and the client bugs it found.

``make soak`` runs the same scenario (tests/soak.py) at 1,000 sessions. Run this one with
``pytest -s tests/test_soak.py`` to see its table; ``DEVIN_SOAK_SESSIONS`` sets its size.
"""

from __future__ import annotations

import os

import pytest
from fakes import FakeTime
from soak import SoakConfig, run

from devin_async import DevinClient
from devin_async.testing import FakeDevinServer

KEY = "cog_soak_key"
ORG = "org-soak"
SESSIONS = int(os.environ.get("DEVIN_SOAK_SESSIONS", "150"))


@pytest.mark.soak
async def test_every_session_survives_random_faults_on_every_route() -> None:
    # The full soak's fault rates, 429s on 5% of requests included: the governor only
    # slows down for 429s that follow its rate, so random ones cost little time.
    report = await run(SoakConfig(sessions=SESSIONS, seed=3))
    print(report.table())
    assert report.problems == [], report.table()
    assert sum(report.outcomes.values()) == SESSIONS - report.unknown
    if SESSIONS >= 100:  # about 13% of create attempts fail ambiguously
        assert report.tally.found > 0, "no create was found by its tag after acting"
        assert report.tally.resent > 0, "no create was sent again after its lookup"


# ---------------------------------------------------------------- bugs found by the soak


async def create_one(server: FakeDevinServer) -> str:
    """Create one session through a client that backs off in no real time."""
    time = FakeTime()
    async with DevinClient(
        KEY, org_id=ORG, base_url=server.url, sleep=time, clock=time.clock
    ) as client:
        return (await client.create_session("do the thing")).session_id


async def test_a_create_answered_with_a_malformed_body_is_looked_up_not_lost() -> None:
    async with FakeDevinServer(KEY, ORG) as server:
        server.inject("malformed", times=1, route="create_session", when="after")
        session_id = await create_one(server)
        assert server.sessions_created == 1
        assert session_id in server.sessions


async def test_a_malformed_tag_lookup_is_retried_not_the_end_of_the_create() -> None:
    async with FakeDevinServer(KEY, ORG) as server:
        server.inject("status", status=500, times=1, route="create_session", when="after")
        server.inject("malformed", times=1, route="list_sessions")
        session_id = await create_one(server)
        assert server.sessions_created == 1
        assert session_id in server.sessions


async def test_a_create_that_acts_on_its_last_attempt_is_found_not_reported_failed() -> None:
    async with FakeDevinServer(KEY, ORG) as server:
        # Three sends refused before acting (each looked up and not found), then the
        # fourth and last (max_retries=3) creates the session and answers 500.
        server.inject("status", status=503, times=3, route="create_session")
        server.inject("status", status=500, times=1, route="create_session", when="after")
        session_id = await create_one(server)
        assert server.count(route="create_session") == 4
        assert server.sessions_created == 1
        assert session_id in server.sessions
