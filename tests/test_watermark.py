"""wait_strategy="watermark" end to end: what changed is listed, and a server that ignores it."""

from __future__ import annotations

import logging

import pytest
from fakes import FakeTime

from devin_async import ConfigurationError, DevinClient
from devin_async.testing import FakeDevinServer, Step

KEY = "cog_test_key_0123456789"
# Quiet for a while, then done: most ticks see no change at all.
SLOW = (Step("running", "working", reads=6), Step("running", "finished"))


def make_client(server: FakeDevinServer, **options: object) -> DevinClient:
    time = FakeTime()
    return DevinClient(
        KEY,
        org_id="org-test",
        base_url=server.url,
        exactly_once_create=False,
        wait_strategy="watermark",
        sleep=time,
        clock=time.clock,
        **options,  # type: ignore[arg-type]
    )


def list_queries(server: FakeDevinServer) -> list[dict[str, list[str]]]:
    queries = []
    for request in server.requests:
        if request.route == "list_sessions":
            query: dict[str, list[str]] = {}
            for name, value in request.query:
                query.setdefault(name, []).append(value)
            queries.append(query)
    return queries


async def test_after_the_first_tick_waits_ask_only_what_changed() -> None:
    async with FakeDevinServer(api_key=KEY, default_timeline=SLOW) as server:
        async with make_client(server) as client:
            ids = [(await client.create_session(f"task {i}")).session_id for i in range(30)]
            server.reset_log()
            results = await client.await_sessions(ids, poll_interval=2, max_poll_interval=2)
        queries = list_queries(server)
    assert all(r.ok and r.session is not None for r in results)
    assert {r.session.status_detail for r in results if r.session} == {"finished"}
    assert "session_ids" in queries[0]  # the first tick reads every id
    later = queries[1:]
    assert later
    assert all("session_ids" not in q and "updated_after" in q for q in later)
    assert server.count("get_session") == 0
    assert len(queries) <= 10  # one request per tick: 30 waits, about 8 ticks


async def test_a_server_that_ignores_updated_after_is_detected_and_ids_are_listed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with FakeDevinServer(
        api_key=KEY, default_timeline=SLOW, ignored_filters={"updated_after"}
    ) as server:
        async with make_client(server) as client:
            old = await client.create_session("finished long ago")
            server.sessions[old.session_id].updated_at -= 3_600  # older than any watermark
            ids = [(await client.create_session(f"task {i}")).session_id for i in range(5)]
            server.reset_log()
            with caplog.at_level(logging.WARNING, logger="devin_async"):
                results = await client.await_sessions(ids, poll_interval=2)
        queries = list_queries(server)
    assert all(r.ok for r in results)
    warnings = [r for r in caplog.records if "ignored updated_after" in r.getMessage()]
    assert len(warnings) == 1
    asked = [i for i, q in enumerate(queries) if "updated_after" in q]
    assert len(asked) == 1  # asked once, saw it ignored, went back to ids for good
    assert all("session_ids" in q for q in queries[asked[0] + 1 :])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"wait_strategy": "fastest"}, "wait_strategy must be one of ids, watermark"),
        ({"reconcile_interval": 0}, "reconcile_interval"),
    ],
)
def test_bad_strategy_settings_are_refused(options: dict[str, object], message: str) -> None:
    settings: dict[str, object] = {"org_id": "org-test", "wait_strategy": "watermark", **options}
    with pytest.raises(ConfigurationError, match=message):
        DevinClient(KEY, **settings)  # type: ignore[arg-type]


def test_watermark_needs_an_org(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEVIN_ORG_ID", raising=False)
    with pytest.raises(ConfigurationError, match="needs an org_id"):
        DevinClient(KEY, wait_strategy="watermark")
