"""FakeDevinServer over real sockets, driven by a plain aiohttp.ClientSession."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import attrs
import pytest
from multidict import CIMultiDictProxy

from devin_async import DevinClient
from devin_async.testing import (
    ERRORS,
    EXITS,
    FINISHES,
    REDACTED,
    SUSPENDS,
    WAITS_FOR_APPROVAL,
    WAITS_FOR_USER,
    FakeDevinServer,
    FaultKind,
    Quirks,
    Step,
    timeline,
)

pytest_plugins = ["pytester"]

KEY = "cog_test_key"
ORG = "org-test"
SESSIONS = f"/v3/organizations/{ORG}/sessions"
ENTERPRISE = "/v3/enterprise/sessions"
AUTH = {"Authorization": f"Bearer {KEY}"}
SESSION_KEYS = {
    "session_id",
    "url",
    "status",
    "status_detail",
    "tags",
    "org_id",
    "created_at",
    "updated_at",
    "acus_consumed",
    "pull_requests",
    "category",
    "subcategory",
    "structured_output",
    "origin",
    "child_session_ids",
    "parent_session_id",
    "is_archived",
    "playbook_id",
    "service_user_id",
    "user_id",
    "title",
}


@attrs.frozen
class Reply:
    status: int
    body: Any
    headers: CIMultiDictProxy[str]


@attrs.define
class Api:
    """Call the fake server and decode its answers."""

    http: aiohttp.ClientSession
    server: FakeDevinServer

    async def __call__(self, method: str, path: str, **kwargs: Any) -> Reply:
        kwargs.setdefault("headers", AUTH)
        async with self.http.request(method, self.server.url + path, **kwargs) as resp:
            text = await resp.text()
            body = json.loads(text) if "json" in resp.content_type else text
            return Reply(resp.status, body, resp.headers)

    async def create(self, prompt: str = "Fix the flaky test", **fields: Any) -> dict[str, Any]:
        reply = await self("POST", SESSIONS, json={"prompt": prompt, **fields})
        assert reply.status == 200, reply.body
        return dict(reply.body)

    async def state(self, session_id: str) -> tuple[str, str | None]:
        reply = await self("GET", f"{SESSIONS}/{session_id}")
        assert reply.status == 200, reply.body
        return reply.body["status"], reply.body["status_detail"]


@pytest.fixture
async def server() -> AsyncIterator[FakeDevinServer]:
    async with FakeDevinServer(api_key=KEY, org_id=ORG) as fake:
        yield fake


@pytest.fixture
async def api(server: FakeDevinServer) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as http:
        yield Api(http, server)


@contextlib.asynccontextmanager
async def serving(**options: Any) -> AsyncIterator[Api]:
    """A fake server built with ``options`` and a plain HTTP client for it."""
    async with (
        FakeDevinServer(api_key=KEY, org_id=ORG, **options) as fake,
        aiohttp.ClientSession() as http,
    ):
        yield Api(http, fake)


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait (at most 5 s) for ``condition``."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting until {what}")


def hung_up(server: FakeDevinServer) -> bool:
    """Tell whether the server saw every client connection close."""
    runner = server._runner
    assert runner is not None
    assert runner.server is not None
    return all(handler.transport is None for handler in runner.server.connections)


def problem(status: int, title: str, detail: str, path: str) -> dict[str, Any]:
    return {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": path,
    }


# --------------------------------------------------------------------------- lifecycle


async def test_server_binds_loopback_and_releases_the_port_on_close() -> None:
    server = FakeDevinServer()
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.url
    await server.start()
    host, port = server.url.removeprefix("http://").split(":")
    assert host == "127.0.0.1"
    with pytest.raises(RuntimeError, match="already started"):
        await server.start()
    await server.close()
    await server.close()  # closing twice is harmless
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect((host, int(port)))


async def test_close_is_fast_with_a_slow_handler_in_flight(api: Api) -> None:
    arrived = asyncio.Event()
    api.server.timeline_factory = lambda body: arrived.set()  # None: the default timeline
    api.server.inject("slow", delay=30, when="after")
    pending = asyncio.create_task(api("POST", SESSIONS, json={"prompt": "p"}))
    await asyncio.wait_for(arrived.wait(), timeout=5)
    started = time.monotonic()
    await api.server.close()
    assert time.monotonic() - started < 1.0
    with pytest.raises(aiohttp.ClientConnectionError):
        await pending


# --------------------------------------------------------------------------- sessions


async def test_create_returns_a_full_session_response(api: Api) -> None:
    prompt = "Refactor the payment module so that it is easier to test"
    body = await api.create(prompt, tags=["a", "b", "a"])
    assert set(body) == SESSION_KEYS
    session_id = body["session_id"]
    assert session_id.startswith("devin-")
    assert len(session_id) == len("devin-") + 32
    assert set(session_id.removeprefix("devin-")) <= set("0123456789abcdef")
    assert body["url"] == f"https://app.devin.ai/sessions/{session_id}"
    assert (body["status"], body["status_detail"]) == ("claimed", None)
    assert body["title"] == "Refactor the payment module so that it i"
    assert body["tags"] == ["a", "b"]
    assert body["org_id"] == ORG
    assert body["origin"] == "api"
    assert isinstance(body["created_at"], int)
    assert isinstance(body["acus_consumed"], float)
    # Only get/list populate these.
    assert (body["category"], body["subcategory"], body["structured_output"]) == (None, None, None)
    assert api.server.sessions_created == 1
    assert api.server.sessions[session_id].body == {"prompt": prompt, "tags": ["a", "b", "a"]}


async def test_create_stores_request_fields(api: Api) -> None:
    body = await api.create(
        title="My title", playbook_id="pb-1", create_as_user_id="user-7", repos=["o/r"]
    )
    assert (body["title"], body["playbook_id"], body["user_id"]) == ("My title", "pb-1", "user-7")
    assert body["service_user_id"] == "service-user-test"
    assert api.server.sessions[body["session_id"]].repos == ["o/r"]


async def test_session_ids_are_deterministic_per_seed() -> None:
    async def first_id(seed: int) -> str:
        async with FakeDevinServer(seed=seed) as fake, aiohttp.ClientSession() as http:
            return str((await Api(http, fake).create())["session_id"])

    assert await first_id(7) == await first_id(7)
    assert await first_id(7) != await first_id(8)


async def test_default_timeline_advances_one_step_per_read(api: Api) -> None:
    created = await api.create()
    session_id = created["session_id"]
    states = [await api.state(session_id) for _ in range(4)]
    assert states == [
        ("claimed", None),
        ("running", "working"),
        ("running", "finished"),
        ("running", "finished"),
    ]
    final = (await api("GET", f"{SESSIONS}/{session_id}")).body
    assert final["acus_consumed"] > created["acus_consumed"]
    assert final["category"] == "other"


async def test_step_reads_holds_a_state_for_that_many_reads(api: Api) -> None:
    api.server.queue_timeline([Step("claimed", reads=3), ("running", "finished")])
    session_id = (await api.create())["session_id"]
    states = [(await api.state(session_id))[0] for _ in range(4)]
    assert states == ["claimed", "claimed", "claimed", "running"]


async def test_step_seconds_holds_a_state_for_that_long(api: Api) -> None:
    api.server.queue_timeline([Step("claimed", reads=0, seconds=0.05), ("exit", None)])
    session_id = (await api.create())["session_id"]
    assert await api.state(session_id) == ("claimed", None)
    assert await api.state(session_id) == ("claimed", None)
    await asyncio.sleep(0.06)
    assert await api.state(session_id) == ("exit", None)


async def test_appearing_in_a_list_page_counts_as_a_read(api: Api) -> None:
    session_id = (await api.create())["session_id"]
    for expected in ("claimed", "running"):
        items = (await api("GET", SESSIONS)).body["items"]
        assert [(i["session_id"], i["status"]) for i in items] == [(session_id, expected)]


async def test_step_effects_message_structured_output_and_pull_request(api: Api) -> None:
    done = Step(
        "running",
        "finished",
        message="PR is up",
        structured_output={"ok": True},
        pull_request="https://github.com/o/r/pull/1",
    )
    api.server.queue_timeline([("claimed", None), done])
    session_id = (await api.create())["session_id"]
    await api.state(session_id)
    body = (await api("GET", f"{SESSIONS}/{session_id}")).body
    assert body["structured_output"] == {"ok": True}
    assert body["pull_requests"] == [
        {"pr_url": "https://github.com/o/r/pull/1", "pr_state": "open"}
    ]
    messages = (await api("GET", f"{ENTERPRISE}/{session_id}/messages")).body["items"]
    assert [(m["source"], m["message"]) for m in messages] == [
        ("user", "Fix the flaky test"),
        ("devin", "PR is up"),
    ]


@pytest.mark.parametrize(
    ("steps", "final"),
    [
        (FINISHES, ("running", "finished")),
        (WAITS_FOR_USER, ("running", "waiting_for_user")),
        (WAITS_FOR_APPROVAL, ("running", "waiting_for_approval")),
        (ERRORS, ("error", None)),
        (SUSPENDS, ("suspended", "inactivity")),
        (EXITS, ("exit", None)),
    ],
    ids=["finishes", "waits_for_user", "waits_for_approval", "errors", "suspends", "exits"],
)
async def test_ready_made_timelines_end_in_their_state(
    api: Api, steps: tuple[Step, ...], final: tuple[str, str | None]
) -> None:
    api.server.default_timeline = steps
    session_id = (await api.create())["session_id"]
    states = [await api.state(session_id) for _ in range(4)]
    assert states[:2] == [("claimed", None), ("running", "working")]
    assert states[2] == states[3] == final


def test_timeline_helper_builds_steps() -> None:
    steps = timeline(("claimed", None), ("running", "finished"), Step("exit"), reads=2)
    assert steps == (Step("claimed", reads=2), Step("running", "finished", reads=2), Step("exit"))
    with pytest.raises(ValueError, match="must be >= 0"):
        Step("claimed", reads=-1)


async def test_queued_timelines_are_taken_first_in_first_out(api: Api) -> None:
    api.server.queue_timeline([("exit", None)])
    api.server.queue_timeline([("error", None)])
    first, second, third = [await api.create() for _ in range(3)]
    assert [first["status"], second["status"], third["status"]] == ["exit", "error", "claimed"]


async def test_timeline_factory_chooses_by_request_and_may_defer(api: Api) -> None:
    seen: list[dict[str, Any]] = []

    def choose(body: dict[str, Any]) -> list[tuple[str, str | None]] | None:
        seen.append(body)
        return [("error", None)] if "broken" in body.get("tags", []) else None

    api.server.timeline_factory = choose
    assert (await api.create(tags=["broken"]))["status"] == "error"
    assert (await api.create())["status"] == "claimed"
    assert [b["prompt"] for b in seen] == ["Fix the flaky test"] * 2


async def test_set_timeline_and_set_state_jump(api: Api) -> None:
    session_id = (await api.create())["session_id"]
    api.server.set_state(session_id, "suspended", "out_of_credits")
    assert [await api.state(session_id) for _ in range(2)] == [("suspended", "out_of_credits")] * 2
    api.server.set_timeline(session_id, [("resuming", None), ("running", "working")])
    assert api.server.sessions[session_id].status == "resuming"
    assert [await api.state(session_id) for _ in range(2)] == [
        ("resuming", None),
        ("running", "working"),
    ]
    with pytest.raises(ValueError, match="at least one step"):
        api.server.set_timeline(session_id, [])


async def test_terminate_exits_and_archives_on_request(api: Api) -> None:
    keep, drop = (await api.create())["session_id"], (await api.create())["session_id"]
    plain = await api("DELETE", f"{SESSIONS}/{keep}")
    assert (plain.status, plain.body["status"], plain.body["is_archived"]) == (200, "exit", False)
    archived = await api("DELETE", f"{SESSIONS}/{drop}", params={"archive": "true"})
    assert (archived.body["status"], archived.body["is_archived"]) == ("exit", True)
    assert await api.state(keep) == ("exit", None)
    bad = await api("DELETE", f"{SESSIONS}/{keep}", params={"archive": "maybe"})
    assert bad.status == 422
    assert bad.body["detail"][0]["loc"] == ["query", "archive"]


async def test_archive_marks_archived_and_suspends_a_running_session(api: Api) -> None:
    api.server.queue_timeline([("running", "working")])
    session_id = (await api.create())["session_id"]
    reply = await api("POST", f"{SESSIONS}/{session_id}/archive")
    assert reply.status == 200
    assert (reply.body["is_archived"], reply.body["status"]) == (True, "suspended")
    assert api.server.sessions[session_id].status_detail == "user_request"


# --------------------------------------------------------------------------- messages, tags


async def test_message_resumes_a_suspended_session_then_finishes(api: Api) -> None:
    api.server.queue_timeline([("suspended", "inactivity")])
    session_id = (await api.create())["session_id"]
    reply = await api(
        "POST",
        f"{SESSIONS}/{session_id}/messages",
        json={"message": "Carry on", "attachment_urls": ["https://files.example/log.txt"]},
    )
    assert reply.status == 200
    assert (reply.body["status"], reply.body["status_detail"]) == ("running", None)
    assert [await api.state(session_id) for _ in range(2)] == [
        ("running", "working"),
        ("running", "finished"),
    ]
    attachments = (await api("GET", f"{SESSIONS}/{session_id}/attachments")).body
    assert [(a["name"], a["source"], a["url"]) for a in attachments] == [
        ("log.txt", "user", "https://files.example/log.txt")
    ]


async def test_message_wakes_a_session_waiting_for_the_user(api: Api) -> None:
    api.server.queue_timeline([*WAITS_FOR_USER[2:], Step("exit")])
    session_id = (await api.create())["session_id"]
    reply = await api("POST", f"{SESSIONS}/{session_id}/messages", json={"message": "main"})
    assert reply.status == 200
    assert (reply.body["status"], reply.body["status_detail"]) == ("running", None)
    assert [await api.state(session_id) for _ in range(2)] == [
        ("running", "working"),
        ("exit", None),
    ]


async def test_messages_page_chronologically_to_the_end(api: Api) -> None:
    session_id = (await api.create("m0"))["session_id"]
    for n in range(1, 5):
        await api("POST", f"{ENTERPRISE}/{session_id}/messages", json={"message": f"m{n}"})
    seen, after = [], None
    while True:
        params = {"first": "2"} if after is None else {"first": "2", "after": after}
        page = (await api("GET", f"{SESSIONS}/{session_id}/messages", params=params)).body
        assert page["total"] == 5
        seen += [m["message"] for m in page["items"]]
        if not page["has_next_page"]:
            assert page["end_cursor"] is None
            break
        after = page["end_cursor"]
    assert seen == ["m0", "m1", "m2", "m3", "m4"]
    assert all(set(m) == {"created_at", "event_id", "message", "source"} for m in page["items"])


async def test_attachments_bare_array_or_envelope(api: Api) -> None:
    session_id = (await api.create(attachment_urls=["https://f.example/a.png"]))["session_id"]
    bare = (await api("GET", f"{SESSIONS}/{session_id}/attachments")).body
    assert isinstance(bare, list)
    assert bare[0]["content_type"] is None
    api.server.attachments_envelope = True
    wrapped = (await api("GET", f"{ENTERPRISE}/{session_id}/attachments")).body
    assert wrapped == {"items": bare}


@pytest.mark.parametrize("base", [SESSIONS, ENTERPRISE], ids=["org", "enterprise"])
async def test_tags_get_append_dedupes_and_put_replaces(api: Api, base: str) -> None:
    session_id = (await api.create(tags=["a"]))["session_id"]
    url = f"{base}/{session_id}/tags"
    assert (await api("GET", url)).body == {"tags": ["a"]}
    assert (await api("POST", url, json={"tags": ["b", "a", "b"]})).body == {"tags": ["a", "b"]}
    assert (await api("PUT", url, json={"tags": ["z"]})).body == {"tags": ["z"]}
    assert api.server.sessions[session_id].tags == ["z"]
    fifty = [str(n) for n in range(50)]
    assert (await api("PUT", url, json={"tags": fifty})).body == {"tags": fifty}
    too_many = await api("PUT", url, json={"tags": [*fifty, "one more"]})
    assert too_many.status == 422
    assert too_many.body["detail"][0]["type"] == "too_long"
    assert too_many.body["detail"][0]["loc"] == ["body", "tags"]


# --------------------------------------------------------------------------- enterprise scope


async def test_enterprise_get_honours_the_org_id_filter(api: Api) -> None:
    session_id = (await api.create())["session_id"]
    plain = await api("GET", f"{ENTERPRISE}/{session_id}")
    assert (plain.status, plain.body["session_id"]) == (200, session_id)
    same_org = await api("GET", f"{ENTERPRISE}/{session_id}", params={"org_id": ORG})
    assert same_org.status == 200
    other_org = await api("GET", f"{ENTERPRISE}/{session_id}", params={"org_id": "org-other"})
    assert other_org.status == 404
    assert api.server.count("enterprise_get_session") == 3


async def test_enterprise_list_filters_by_org_ids(api: Api) -> None:
    ours, theirs = (await api.create())["session_id"], (await api.create())["session_id"]
    api.server.sessions[theirs].org_id = "org-other"
    listed = await api("GET", ENTERPRISE, params=[("org_ids", "org-other")])
    assert [i["session_id"] for i in listed.body["items"]] == [theirs]
    everything = await api("GET", ENTERPRISE)
    assert {i["session_id"] for i in everything.body["items"]} == {ours, theirs}
    # The org scope only shows its own org's sessions, and ignores org_ids.
    org_scope = await api("GET", SESSIONS, params=[("org_ids", "org-other")])
    assert [i["session_id"] for i in org_scope.body["items"]] == [ours]


# --------------------------------------------------------------------------- list filters


async def test_list_filters(api: Api) -> None:
    api.server.default_timeline = [("claimed", None)]  # reads leave updated_at alone
    a = (await api.create(tags=["x", "y"], repos=["o/a"], playbook_id="pb-1"))["session_id"]
    b = (await api.create(tags=["y"], create_as_user_id="user-2"))["session_id"]
    c = (await api.create(tags=["z"]))["session_id"]
    fakes = api.server.sessions
    fakes[a].created_at, fakes[b].created_at, fakes[c].created_at = 100, 200, 300
    await api("POST", f"{SESSIONS}/{b}/archive")
    fakes[a].updated_at, fakes[b].updated_at, fakes[c].updated_at = 100, 250, 300
    fakes[c].origin, fakes[c].schedule_id, fakes[c].category = "slack", "sch-1", "bug_fixing"
    cases: list[tuple[list[tuple[str, str]], set[str]]] = [
        ([("tags", "x"), ("tags", "z")], {a, c}),  # any of the given tags
        ([("session_ids", a), ("session_ids", b)], {a, b}),
        ([("repo_names", "o/a")], {a}),
        ([("user_ids", "user-2")], {b}),
        ([("service_user_ids", "service-user-test")], {a, b, c}),
        ([("service_user_ids", "nobody")], set()),
        ([("origins", "slack"), ("origins", "teams")], {c}),
        ([("created_after", "200")], {b, c}),
        ([("created_before", "200")], {a}),
        ([("created_after", "150"), ("created_before", "300")], {b}),
        ([("updated_before", "260"), ("updated_after", "240")], {b}),
        ([("is_archived", "true")], {b}),
        ([("is_archived", "false")], {a, c}),
        ([("playbook_id", "pb-1")], {a}),
        ([("schedule_id", "sch-1")], {c}),
        ([("category", "bug_fixing")], {c}),
    ]
    for params, expected in cases:
        reply = await api("GET", SESSIONS, params=params)
        assert reply.status == 200, params
        assert {i["session_id"] for i in reply.body["items"]} == expected, params
        assert reply.body["total"] == len(expected)


async def test_list_pages_newest_first_to_the_end(api: Api) -> None:
    created = [(await api.create(f"task {n}"))["session_id"] for n in range(5)]
    seen, after, pages = [], None, 0
    while True:
        params = {"first": "2"} if after is None else {"first": "2", "after": after}
        page = (await api("GET", ENTERPRISE, params=params)).body
        pages += 1
        assert page["total"] == 5
        seen += [i["session_id"] for i in page["items"]]
        if not page["has_next_page"]:
            break
        after = page["end_cursor"]
    assert pages == 3
    assert seen == created[::-1]


@pytest.mark.parametrize(
    ("params", "loc", "error_type"),
    [
        ({"first": "0"}, ["query", "first"], "greater_than_equal"),
        ({"first": "201"}, ["query", "first"], "less_than_equal"),
        ({"first": "ten"}, ["query", "first"], "int_parsing"),
        ({"created_after": "yesterday"}, ["query", "created_after"], "int_parsing"),
        ({"is_archived": "perhaps"}, ["query", "is_archived"], "bool_parsing"),
        ({"after": "not-a-cursor"}, ["query", "after"], "value_error"),
    ],
    ids=["first-too-small", "first-too-big", "first-not-int", "bad-int", "bad-bool", "bad-cursor"],
)
async def test_bad_query_values_are_422(
    api: Api, params: dict[str, str], loc: list[str], error_type: str
) -> None:
    reply = await api("GET", SESSIONS, params=params)
    assert reply.status == 422
    assert reply.headers["Content-Type"].startswith("application/json")
    [error] = reply.body["detail"]
    assert (error["loc"], error["type"]) == (loc, error_type)
    assert error["input"] == next(iter(params.values()))


# --------------------------------------------------------------------------- errors


async def test_missing_or_wrong_key_is_401_problem(api: Api) -> None:
    for headers in ({}, {"Authorization": "Bearer cog_wrong"}, {"Authorization": KEY}):
        reply = await api("GET", SESSIONS, headers=headers)
        assert reply.status == 401
        assert reply.headers["Content-Type"].startswith("application/problem+json")
        assert reply.body == problem(401, "Unauthorized", "Invalid or expired API key", SESSIONS)
    assert [r.authorized for r in api.server.requests] == [False, False, False]


async def test_forbidden_key_is_403_problem(api: Api) -> None:
    api.server.forbidden_keys.add("cog_viewer")
    reply = await api(
        "POST", SESSIONS, json={"prompt": "x"}, headers={"Authorization": "Bearer cog_viewer"}
    )
    assert reply.status == 403
    assert reply.body["title"] == "Forbidden"
    assert reply.headers["Content-Type"].startswith("application/problem+json")
    assert api.server.sessions_created == 0


async def test_not_found_shapes(api: Api) -> None:
    missing = f"{SESSIONS}/devin-{'0' * 32}"
    for path in ("/v3/organizations/org-nope/sessions", missing, "/v3/nothing-here"):
        reply = await api("GET", path)
        assert reply.status == 404, path
        assert reply.headers["Content-Type"].startswith("application/problem+json")
        assert (reply.body["status"], reply.body["instance"]) == (404, path)


async def test_devin_id_without_prefix_is_rejected(api: Api) -> None:
    reply = await api("GET", f"{SESSIONS}/abc123")
    assert reply.status == 422
    assert reply.body["detail"][0]["loc"] == ["path", "devin_id"]


async def test_every_response_has_a_sequential_request_id(api: Api) -> None:
    replies = [
        await api("GET", SESSIONS),
        await api("GET", SESSIONS, headers={}),
        await api("POST", SESSIONS, data=b"{"),
    ]
    assert [r.headers["x-request-id"] for r in replies] == [
        "req-000001",
        "req-000002",
        "req-000003",
    ]


@pytest.mark.parametrize(
    ("body", "loc", "error_type"),
    [
        ({}, ["body", "prompt"], "missing"),
        ({"prompt": 3}, ["body", "prompt"], "string_type"),
        ({"prompt": None}, ["body", "prompt"], "string_type"),
        ({"prompt": "p", "tags": "a"}, ["body", "tags"], "list_type"),
        ({"prompt": "p", "tags": ["a", 2]}, ["body", "tags", 1], "string_type"),
        ({"prompt": "p", "max_acu_limit": "5"}, ["body", "max_acu_limit"], "int_type"),
        ({"prompt": "p", "max_acu_limit": True}, ["body", "max_acu_limit"], "int_type"),
        ({"prompt": "p", "bypass_approval": "yes"}, ["body", "bypass_approval"], "bool_type"),
        ({"prompt": "p", "resumable": None}, ["body", "resumable"], "bool_type"),
        (
            {"prompt": "p", "structured_output_schema": []},
            ["body", "structured_output_schema"],
            "dict_type",
        ),
        (
            {"prompt": "p", "session_secrets": [{"key": "", "value": "v"}]},
            ["body", "session_secrets", 0, "key"],
            "string_too_short",
        ),
        (
            {"prompt": "p", "session_secrets": [{"key": "k" * 257, "value": "v"}]},
            ["body", "session_secrets", 0, "key"],
            "string_too_long",
        ),
        (
            {"prompt": "p", "session_secrets": [{"value": "v"}]},
            ["body", "session_secrets", 0, "key"],
            "missing",
        ),
        (["prompt"], ["body"], "model_attributes_type"),
    ],
    ids=[
        "prompt-missing",
        "prompt-int",
        "prompt-null",
        "tags-not-list",
        "tag-not-str",
        "acu-str",
        "acu-bool",
        "bypass-str",
        "resumable-null",
        "schema-list",
        "secret-key-empty",
        "secret-key-long",
        "secret-key-missing",
        "body-array",
    ],
)
async def test_create_validation_errors_look_like_fastapi(
    api: Api, body: Any, loc: list[Any], error_type: str
) -> None:
    reply = await api("POST", SESSIONS, json=body)
    assert reply.status == 422
    assert reply.headers["Content-Type"].startswith("application/json")
    [error] = reply.body["detail"]
    assert (error["loc"], error["type"]) == (loc, error_type)
    assert {"msg", "input"} <= set(error)
    assert api.server.sessions_created == 0


async def test_nullable_fields_accept_null(api: Api) -> None:
    body = await api.create(title=None, tags=None, max_acu_limit=None, session_secrets=None)
    assert body["title"] == "Fix the flaky test"


@pytest.mark.parametrize(
    ("data", "error_type", "loc"),
    [(b'{"prompt": ', "json_invalid", ["body", 11]), (b"", "missing", ["body"])],
    ids=["truncated", "empty"],
)
async def test_unparseable_body_is_422(
    api: Api, data: bytes, error_type: str, loc: list[Any]
) -> None:
    headers = {**AUTH, "Content-Type": "application/json"}
    reply = await api("POST", SESSIONS, data=data, headers=headers)
    assert reply.status == 422
    assert (reply.body["detail"][0]["type"], reply.body["detail"][0]["loc"]) == (error_type, loc)
    assert api.server.requests[-1].body is None


async def test_secret_values_are_never_echoed_nor_stored(api: Api) -> None:
    secret = "hunter2-very-secret"
    bad = {
        "session_secrets": [
            {"key": "A", "value": secret, "sensitive": "no"},
            secret,
            {"key": 1, "value": 5},
        ]
    }
    reply = await api("POST", SESSIONS, json=bad)  # no prompt, so the whole body is echoed
    assert reply.status == 422
    raw = json.dumps(reply.body)
    assert secret not in raw
    errors = {tuple(e["loc"]): e for e in reply.body["detail"]}
    assert errors[("body", "prompt")]["input"]["session_secrets"][0]["value"] == REDACTED
    assert errors[("body", "session_secrets", 1)]["input"] == REDACTED
    assert errors[("body", "session_secrets", 2, "value")]["input"] == REDACTED
    assert errors[("body", "session_secrets", 2, "key")]["input"] == 1
    assert errors[("body", "session_secrets", 0, "sensitive")]["type"] == "bool_type"
    not_a_list = await api(
        "POST", SESSIONS, json={"prompt": "p", "session_secrets": {"value": secret}}
    )
    assert not_a_list.body["detail"][0]["input"] == REDACTED
    good = await api.create(session_secrets=[{"key": "TOKEN", "value": secret}])
    assert secret not in json.dumps(good)
    assert api.server.sessions[good["session_id"]].body["session_secrets"] == [
        {"key": "TOKEN", "value": REDACTED}
    ]
    # The request log keeps the wire exactly, so tests can check what the client sent.
    assert api.server.requests[-1].body["session_secrets"][0]["value"] == secret


# --------------------------------------------------------------------------- faults


async def test_status_fault_answers_problem_then_stops(api: Api) -> None:
    api.server.inject("status", status=502)
    failed = await api("GET", SESSIONS)
    assert failed.status == 502
    assert failed.body["status"] == 502
    assert failed.headers["Content-Type"].startswith("application/problem+json")
    assert "Retry-After" not in failed.headers
    assert (await api("GET", SESSIONS)).status == 200


@pytest.mark.parametrize("retry_after", ["2", "Wed, 21 Oct 2015 07:28:00 GMT", None])
async def test_rate_limit_fault_sends_retry_after(api: Api, retry_after: str | None) -> None:
    api.server.inject("rate_limit", retry_after=retry_after)
    reply = await api("GET", SESSIONS)
    assert reply.status == 429
    assert reply.headers.get("Retry-After") == retry_after


@pytest.mark.parametrize(
    ("kind", "told", "header"),
    [
        ("status", True, "true"),
        ("status", False, "false"),
        ("rate_limit", True, "true"),
        ("status", None, None),
    ],
    ids=["status-true", "status-false", "429-true", "none"],
)
async def test_status_faults_send_x_should_retry(
    api: Api, kind: FaultKind, told: bool | None, header: str | None
) -> None:
    api.server.inject(kind, status=409, should_retry=told)
    reply = await api("GET", SESSIONS)
    assert reply.status == (429 if kind == "rate_limit" else 409)
    assert reply.headers.get("x-should-retry") == header


async def test_faults_match_method_and_route_first_rule_wins(api: Api) -> None:
    api.server.inject("status", status=500, route="get_session", times=None)
    api.server.inject("status", status=504, method="post", times=2)
    api.server.inject("status", status=408, times=None)
    session = await api("POST", SESSIONS, json={"prompt": "p"})
    tags = await api("POST", f"{SESSIONS}/devin-x/tags", json={"tags": []})
    statuses = [session.status, tags.status]
    statuses += [(await api("GET", f"{SESSIONS}/devin-x")).status for _ in range(2)]
    statuses.append((await api("GET", SESSIONS)).status)
    assert statuses == [504, 504, 500, 500, 408]
    api.server.clear_faults()
    assert (await api("GET", SESSIONS)).status == 200


async def test_fault_rate_is_drawn_from_the_seed() -> None:
    async def pattern(seed: int) -> list[int]:
        async with FakeDevinServer(seed=seed) as fake, aiohttp.ClientSession() as http:
            fake.inject("status", times=None, rate=0.5)
            return [(await Api(http, fake)("GET", SESSIONS)).status for _ in range(20)]

    first = await pattern(3)
    assert first == await pattern(3)
    assert {200, 503} == set(first)


async def test_fault_times_bounds_rate_hits(api: Api) -> None:
    api.server.inject("status", times=2, rate=1.0)
    assert [(await api("GET", SESSIONS)).status for _ in range(3)] == [503, 503, 200]


async def test_invalid_fault_rules_are_rejected(server: FakeDevinServer) -> None:
    with pytest.raises(ValueError, match="unknown route"):
        server.inject("status", route="get_sesion")
    with pytest.raises(ValueError, match="unknown fault kind"):
        server.inject("explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="when must be"):
        server.inject("status", when="during")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="probability"):
        server.inject("status", rate=1.5)
    for kind in ("drop", "slow", "malformed"):
        with pytest.raises(ValueError, match="should_retry"):
            server.inject(kind, should_retry=True)  # type: ignore[arg-type]
    assert "enterprise_list_sessions" in server.route_names
    assert server.count() == 0


async def test_slow_fault_delays_the_answer(api: Api) -> None:
    api.server.inject("slow", delay=0.2)
    started = time.monotonic()
    reply = await api("GET", SESSIONS)
    assert reply.status == 200
    assert time.monotonic() - started >= 0.2


async def test_drop_fault_disconnects_without_an_answer(api: Api) -> None:
    api.server.inject("drop", method="POST")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api("POST", SESSIONS, json={"prompt": "p"})
    assert api.server.sessions_created == 0
    # aiohttp retries an idempotent request once after a disconnection: drop it twice.
    api.server.inject("drop", times=2)
    with pytest.raises(aiohttp.ClientConnectionError):
        await api("GET", SESSIONS)
    assert api.server.count("list_sessions", "GET") == 2


async def test_malformed_fault_sends_truncated_json(api: Api) -> None:
    api.server.inject("malformed")
    async with api.http.get(api.server.url + SESSIONS, headers=AUTH) as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        with pytest.raises(json.JSONDecodeError):
            json.loads(await resp.text())


@pytest.mark.parametrize("kind", ["status", "drop", "slow"])
async def test_fault_after_really_creates_the_session(api: Api, kind: Any) -> None:
    api.server.inject(kind, when="after", route="create_session", delay=0.05)
    try:
        reply = await api("POST", SESSIONS, json={"prompt": "ambiguous"})
    except aiohttp.ServerDisconnectedError:
        assert kind == "drop"
    else:
        assert reply.status == (503 if kind == "status" else 200)
    assert api.server.sessions_created == 1
    assert [s.body["prompt"] for s in api.server.sessions.values()] == ["ambiguous"]


async def test_server_rate_limit_answers_429_beyond_the_rate() -> None:
    async with FakeDevinServer(rate_limit=2) as fake, aiohttp.ClientSession() as http:
        api = Api(http, fake)
        statuses = [(await api("GET", SESSIONS)) for _ in range(3)]
    assert [r.status for r in statuses] == [200, 200, 429]
    assert statuses[2].headers["Retry-After"] == "1"
    assert fake.rate_limited == Counter({"list_sessions": 1})
    with pytest.raises(ValueError, match="positive"):
        FakeDevinServer(rate_limit=0)


# --------------------------------------------------------------------------- real-server quirks


@pytest.mark.parametrize("cancel", [False, True], ids=["default-keeps-working", "cancel"])
async def test_a_create_the_client_gave_up_on_still_happens_unless_cancelled(
    cancel: bool,
) -> None:
    gate = asyncio.Event()
    async with serving(handler_cancellation=cancel) as api:
        api.server.inject("slow", route="create_session", gate=gate)
        with pytest.raises(TimeoutError):
            await api(
                "POST", SESSIONS, json={"prompt": "p"}, timeout=aiohttp.ClientTimeout(total=0.05)
            )
        await until(lambda: hung_up(api.server), "the server saw the client hang up")
        if cancel:  # the hang-up cancels the handler
            await asyncio.wait_for(api.server.wait_idle(), 5)
        assert api.server.in_flight == (0 if cancel else 1)
        idle = asyncio.create_task(api.server.wait_idle())
        await asyncio.sleep(0.01)
        assert idle.done() == cancel  # the orphaned handler waits for its gate
        gate.set()
        await asyncio.wait_for(idle, 5)
        assert api.server.in_flight == 0
        assert api.server.sessions_created == len(api.server.sessions) == (0 if cancel else 1)
        assert api.server.count_status(200, "create_session") == (0 if cancel else 1)


async def test_close_ends_handlers_whose_client_hung_up() -> None:
    async with serving() as api:
        api.server.inject("slow", route="create_session", gate=asyncio.Event())  # never set
        with pytest.raises(TimeoutError):
            await api(
                "POST", SESSIONS, json={"prompt": "p"}, timeout=aiohttp.ClientTimeout(total=0.05)
            )
        await until(lambda: hung_up(api.server), "the server saw the client hang up")
        handling = set(api.server._pipeline.handling)
        assert len(handling) == api.server.in_flight == 1
        await asyncio.wait_for(api.server.close(), 5)
        assert all(task.done() for task in handling)
        assert api.server.in_flight == 0
        assert api.server.sessions_created == 0
        await asyncio.sleep(0)  # let aiohttp's connection task see its handler end
        assert not [t for t in asyncio.all_tasks() if "RequestHandler" in repr(t.get_coro())]
    await asyncio.wait_for(api.server.wait_idle(), 5)  # nothing left: returns at once


async def test_list_lag_reads_leaves_a_new_session_out_of_lists_only() -> None:
    async with serving(list_lag_reads=2) as api:
        session_id = (await api.create(tags=["a"]))["session_id"]
        unrelated = await api("GET", SESSIONS, params={"tags": "b"})  # does not count
        assert unrelated.body["items"] == []
        assert (await api("GET", f"{SESSIONS}/{session_id}")).status == 200  # never lagged
        for path in (SESSIONS, ENTERPRISE):  # both scopes lag, and both count
            lagging = await api("GET", path)
            assert (lagging.body["items"], lagging.body["total"]) == ([], 0)
        listed = await api("GET", SESSIONS, params={"tags": "a"})
        assert [i["session_id"] for i in listed.body["items"]] == [session_id]
        assert listed.body["total"] == 1
        api.server.quirks.list_lag_reads = 1  # sessions listed before stay listed
        assert (await api("GET", ENTERPRISE)).body["total"] == 1


async def test_list_lag_seconds_holds_with_the_reads_and_can_change_any_time(api: Api) -> None:
    api.server.list_lag_seconds = 3600.0
    api.server.list_lag_reads = 1
    session_id = (await api.create())["session_id"]
    for _ in range(3):
        assert (await api("GET", SESSIONS)).body["items"] == []
    api.server.list_lag_seconds = 0.0
    listed = (await api("GET", SESSIONS)).body["items"]
    assert [i["session_id"] for i in listed] == [session_id]


# A session waiting for the user (from its creation), whose reply makes it work, then finish.
ASKS_THEN_FINISHES = (
    Step("running", "waiting_for_user", message="Which branch?"),
    Step("running", "finished", message="Merged."),
)


async def lagging_session(api: Api) -> str:
    """Create an ``ASKS_THEN_FINISHES`` session whose (visible) updated_at is 100."""
    api.server.queue_timeline(ASKS_THEN_FINISHES)
    session_id = (await api.create())["session_id"]
    api.server.sessions[session_id].updated_at = 100
    return session_id


def shown(item: dict[str, Any]) -> tuple[str, str | None, int]:
    return item["status"], item["status_detail"], item["updated_at"]


async def test_message_lag_reads_shows_the_state_before_the_message_for_n_gets() -> None:
    async with serving(message_lag_reads=2) as api:
        session_id = await lagging_session(api)
        fake = api.server.sessions[session_id]
        reply = await api("POST", f"{SESSIONS}/{session_id}/messages", json={"message": "main"})
        assert reply.status == 200
        assert shown(reply.body) == ("running", None, 100)  # no detail: get/list only
        assert (fake.status, fake.status_detail) == ("running", "working")  # the real state
        assert fake.updated_at > 100
        lagged = [(await api("GET", f"{SESSIONS}/{session_id}")).body for _ in range(2)]
        assert [shown(b) for b in lagged] == [("running", "waiting_for_user", 100)] * 2
        # The timeline went on underneath: the second lagged read entered "finished".
        assert (fake.status_detail, fake.step_index) == ("finished", 1)
        messages = (await api("GET", f"{SESSIONS}/{session_id}/messages")).body["items"]
        assert [(m["source"], m["message"]) for m in messages] == [
            ("user", "Fix the flaky test"),
            ("devin", "Which branch?"),
            ("user", "main"),
            ("devin", "Merged."),
        ]
        after = (await api("GET", f"{ENTERPRISE}/{session_id}")).body  # straight to finished
        assert shown(after) == ("running", "finished", fake.updated_at)
        assert after["updated_at"] > 100
        assert await api.state(session_id) == ("running", "finished")
        assert api.server.count("get_session") + api.server.count("enterprise_get_session") == 4


async def test_message_lag_reads_applies_to_list_answers_that_include_the_session() -> None:
    async with serving(message_lag_reads=3) as api:
        session_id = await lagging_session(api)
        other = (await api.create())["session_id"]  # the default timeline, never lagged
        await api("POST", f"{ENTERPRISE}/{session_id}/messages", json={"message": "main"})
        messages = (await api("GET", f"{ENTERPRISE}/{session_id}/messages")).body["items"]
        assert messages[-1]["message"] == "main"  # the message list is never lagged
        # A list leaving the session out is no read of it: no lagged read is used up.
        assert (await api("GET", SESSIONS, params={"session_ids": other})).body["total"] == 1
        # The index still has the old updated_at: filters compare what the answer shows.
        since = await api("GET", SESSIONS, params={"updated_after": "101"})
        assert [i["session_id"] for i in since.body["items"]] == [other]
        states = []
        for path in (SESSIONS, ENTERPRISE, SESSIONS, ENTERPRISE, SESSIONS):
            items = {i["session_id"]: i for i in (await api("GET", path)).body["items"]}
            states.append(shown(items[session_id]))
        real = api.server.sessions[session_id].updated_at
        assert real > 100
        assert states == [
            *[("running", "waiting_for_user", 100)] * 3,  # both scopes lag, and both count
            ("running", "finished", real),  # "working" went by during the lag
            ("running", "finished", real),
        ]
        since = await api("GET", SESSIONS, params={"updated_after": "101"})
        assert {i["session_id"] for i in since.body["items"]} == {session_id, other}


async def test_a_message_during_a_lag_restarts_it_from_the_oldest_state() -> None:
    async with serving(message_lag_reads=2) as api:
        session_id = await lagging_session(api)
        url = f"{SESSIONS}/{session_id}"
        first = await api("POST", f"{url}/messages", json={"message": "main"})
        assert shown(first.body) == ("running", None, 100)
        assert await api.state(session_id) == ("running", "waiting_for_user")  # lagged read 1
        again = await api("POST", f"{url}/messages", json={"message": "and rebase"})
        assert shown(again.body) == ("running", None, 100)  # still the oldest
        assert api.server.sessions[session_id].status_detail == "working"
        states = [await api.state(session_id) for _ in range(3)]  # two more lagged reads
        assert states == [
            ("running", "waiting_for_user"),
            ("running", "waiting_for_user"),
            ("running", "finished"),
        ]
        messages = (await api("GET", f"{url}/messages")).body["items"]
        assert [m["message"] for m in messages][-3:] == ["main", "and rebase", "Merged."]


async def test_a_message_after_the_lag_snapshots_the_state_shown_then() -> None:
    async with serving(message_lag_reads=1) as api:
        api.server.queue_timeline([ASKS_THEN_FINISHES[0], Step("suspended", "inactivity")])
        session_id = (await api.create())["session_id"]
        url = f"{SESSIONS}/{session_id}"
        await api("POST", f"{url}/messages", json={"message": "main"})
        assert await api.state(session_id) == ("running", "waiting_for_user")  # lagged
        assert await api.state(session_id) == ("suspended", "inactivity")  # the lag is over
        resumed = await api("POST", f"{url}/messages", json={"message": "wake up"})
        # The new snapshot is the state shown last, not the one the first lag showed.
        assert (resumed.body["status"], resumed.body["status_detail"]) == ("suspended", None)
        assert api.server.sessions[session_id].status_detail == "working"
        assert await api.state(session_id) == ("suspended", "inactivity")  # lagged
        assert await api.state(session_id) == ("running", "finished")


async def test_a_new_timeline_ends_a_message_lag() -> None:
    async with serving(message_lag_reads=5) as api:
        session_id = await lagging_session(api)
        url = f"{SESSIONS}/{session_id}"
        await api("POST", f"{url}/messages", json={"message": "main"})
        assert await api.state(session_id) == ("running", "waiting_for_user")
        api.server.set_state(session_id, "running", "blocked")
        assert await api.state(session_id) == ("running", "blocked")
        await api("POST", f"{url}/messages", json={"message": "go on"})  # not woken, lags
        assert await api.state(session_id) == ("running", "blocked")
        terminated = await api("DELETE", url)
        assert (terminated.body["status"], terminated.body["status_detail"]) == ("exit", None)
        assert await api.state(session_id) == ("exit", None)


@pytest.mark.parametrize("options", [{}, {"message_lag_reads": 0}], ids=["default", "zero"])
async def test_no_message_lag_shows_the_woken_state_at_once(options: dict[str, Any]) -> None:
    async with serving(**options) as api:
        session_id = await lagging_session(api)
        reply = await api("POST", f"{SESSIONS}/{session_id}/messages", json={"message": "main"})
        assert (reply.body["status"], reply.body["status_detail"]) == ("running", None)
        assert reply.body["updated_at"] == api.server.sessions[session_id].updated_at > 100
        assert [await api.state(session_id) for _ in range(2)] == [
            ("running", "working"),
            ("running", "finished"),
        ]


async def test_a_client_sees_the_message_lag() -> None:
    async with serving(message_lag_reads=1) as api:
        session_id = await lagging_session(api)
        async with DevinClient(KEY, org_id=ORG, base_url=api.server.url) as client:
            sent = await client.send_message(session_id, "main")
            lagged = await client.get_session(session_id)
            caught_up = await client.get_session(session_id)
        assert (sent.status, sent.status_detail) == ("running", None)  # get/list only
        assert lagged.status_detail == "waiting_for_user"
        assert caught_up.status_detail == "finished"  # it never saw "working"
        assert api.server.count("send_message") == 1


async def test_allowed_tags_refuse_other_tags_with_a_422_naming_them() -> None:
    async with serving(allowed_tags=["ci", "nightly"]) as api:
        marker = "devin-async-create:0123"
        refused = await api("POST", SESSIONS, json={"prompt": "p", "tags": ["ci", marker]})
        assert refused.status == 422
        assert refused.headers["Content-Type"].startswith("application/json")
        assert refused.body == {
            "detail": [
                {
                    "type": "value_error",
                    "loc": ["body", "tags", 1],
                    "msg": f"Tag '{marker}' is not in the organization's allowed tags",
                    "input": marker,
                }
            ]
        }
        assert (api.server.sessions_created, api.server.sessions) == (0, {})
        session_id = (await api.create(tags=["ci"]))["session_id"]
        url = f"{ENTERPRISE}/{session_id}/tags"
        for method in ("POST", "PUT"):
            reply = await api(method, url, json={"tags": ["nightly", "x", "y"]})
            assert reply.status == 422, method
            assert [e["loc"] for e in reply.body["detail"]] == [
                ["body", "tags", 1],
                ["body", "tags", 2],
            ]
        assert api.server.sessions[session_id].tags == ["ci"]
        assert (await api("PUT", url, json={"tags": ["nightly"]})).body == {"tags": ["nightly"]}
        api.server.allowed_tags = None
        assert (await api("POST", url, json={"tags": ["x"]})).body == {"tags": ["nightly", "x"]}


async def test_an_ignored_filter_answers_as_if_it_were_absent(api: Api) -> None:
    mine = (await api.create(tags=["mine"]))["session_id"]
    theirs = (await api.create(tags=["theirs"]))["session_id"]
    api.server.ignored_filters = {"tags", "created_after"}
    reply = await api("GET", SESSIONS, params={"tags": "mine"})
    assert {i["session_id"] for i in reply.body["items"]} == {mine, theirs}
    unread = await api("GET", SESSIONS, params={"created_after": "yesterday"})  # not even checked
    assert unread.status == 200
    only = await api("GET", SESSIONS, params={"session_ids": mine})  # other filters still work
    assert [i["session_id"] for i in only.body["items"]] == [mine]
    async with DevinClient(KEY, org_id=ORG, base_url=api.server.url) as client:
        found = [s.session_id async for s in client.list_sessions(tags=["mine"])]
    assert found == [theirs, mine]  # a client must check the tag itself
    assert ("tags", "mine") in api.server.requests[-1].query


async def test_comma_array_encoding_reads_the_last_value_split_on_commas(api: Api) -> None:
    a, b, c = [(await api.create(tags=[tag]))["session_id"] for tag in "abc"]
    api.server.array_encoding = "comma"

    async def listed(params: list[tuple[str, str]]) -> set[str]:
        reply = await api("GET", SESSIONS, params=params)
        assert reply.status == 200, params
        return {i["session_id"] for i in reply.body["items"]}

    assert await listed([("tags", "a"), ("tags", "b")]) == {b}
    assert await listed([("tags", "a,c")]) == {a, c}
    assert await listed([("session_ids", f"{a},{b}")]) == {a, b}
    assert await listed([("origins", "slack,api")]) == {a, b, c}
    async with DevinClient(KEY, org_id=ORG, base_url=api.server.url) as client:
        found = [s.session_id async for s in client.list_sessions(tags=["a", "b"])]
    assert found == [b]
    api.server.array_encoding = "repeat"
    assert await listed([("tags", "a"), ("tags", "b")]) == {a, b}
    assert await listed([("tags", "a,c")]) == set()  # one tag named "a,c"


async def test_random_429_is_drawn_from_the_seed_and_counted_per_route() -> None:
    async def pattern(seed: int) -> list[int]:
        async with serving(seed=seed, random_429=0.5, random_429_retry_after="2") as api:
            replies = [await api("GET", SESSIONS) for _ in range(20)]
            limited = [r for r in replies if r.status == 429]
            assert {r.headers["Retry-After"] for r in limited} == {"2"}
            assert limited[0].body["detail"] == "Rate limit exceeded"
            assert api.server.rate_limited == Counter({"list_sessions": len(limited)})
            return [r.status for r in replies]

    first = await pattern(5)
    assert first == await pattern(5)
    assert set(first) == {200, 429}


async def test_random_429_joins_the_bucket_and_injected_429s(api: Api) -> None:
    api.server.inject("rate_limit", route="get_session")
    assert (await api("GET", f"{SESSIONS}/devin-x")).status == 429
    api.server.random_429 = 1.0
    always = await api("POST", SESSIONS, json={"prompt": "p"})
    assert (always.status, always.headers.get("Retry-After")) == (429, None)
    assert api.server.sessions_created == 0
    assert api.server.rate_limited == Counter({"get_session": 1, "create_session": 1})
    api.server.quirks.random_429 = 0.0
    assert (await api("GET", SESSIONS)).status == 200
    assert api.server.rate_limited == Counter({"get_session": 1, "create_session": 1})


async def test_unknown_devin_mode_is_a_422_enum_error(api: Api) -> None:
    reply = await api("POST", SESSIONS, json={"prompt": "p", "devin_mode": "turbo"})
    assert reply.status == 422
    expected = "'normal', 'fast', 'lite', 'ultra' or 'fusion'"
    assert reply.body["detail"] == [
        {
            "type": "enum",
            "loc": ["body", "devin_mode"],
            "msg": f"Input should be {expected}",
            "input": "turbo",
            "ctx": {"expected": expected},
        }
    ]
    assert (await api("POST", SESSIONS, json={"prompt": "p", "devin_mode": 1})).status == 422
    for mode in ("normal", "fast", "lite", "ultra", "fusion", None):
        await api.create(devin_mode=mode)
    assert api.server.sessions_created == 6


async def test_unknown_platform_is_a_400_listing_the_platform_labels() -> None:
    async with serving(platforms=["linux", "Windows-ARM"]) as api:
        reply = await api("POST", SESSIONS, json={"prompt": "p", "platform": "macos"})
        assert reply.status == 400
        assert reply.headers["Content-Type"].startswith("application/problem+json")
        assert (reply.body["title"], reply.body["instance"]) == ("Bad Request", SESSIONS)
        assert reply.body["detail"] == (
            "Unknown platform 'macos'; available platforms: linux, Windows-ARM"
        )
        assert reply.body["available_platforms"] == ["linux", "Windows-ARM"]
        assert api.server.sessions_created == 0
        for platform in ("LINUX", "windows-arm", "inherit", "Default", None):
            await api.create(platform=platform)
        assert api.server.sessions_created == 5
        typed = await api("POST", SESSIONS, json={"prompt": "p", "platform": 3})
        assert (typed.status, typed.body["detail"][0]["type"]) == (422, "string_type")
    assert FakeDevinServer().quirks.platforms == ("linux", "windows")


def test_quirks_default_to_a_production_like_server() -> None:
    quirks = FakeDevinServer().quirks
    assert quirks == Quirks()
    assert quirks.handler_cancellation is False
    assert (quirks.list_lag_reads, quirks.list_lag_seconds) == (0, 0.0)
    assert quirks.message_lag_reads == 0
    assert (quirks.allowed_tags, quirks.ignored_filters, quirks.array_encoding) == (
        None,
        (),
        "repeat",
    )
    assert (quirks.random_429, quirks.random_429_retry_after) == (0.0, None)
    built = FakeDevinServer(ignored_filters=["tags", "tags"], allowed_tags={"ci"}).quirks
    assert (built.ignored_filters, built.allowed_tags) == (("tags",), ("ci",))


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"array_encoding": "csv"}, ValueError),
        ({"random_429": 1.5}, ValueError),
        ({"random_429": -0.1}, ValueError),
        ({"random_429": math.nan}, ValueError),
        ({"list_lag_reads": -1}, ValueError),
        ({"list_lag_seconds": -1.0}, ValueError),
        ({"message_lag_reads": -1}, ValueError),
        ({"ignored_filters": ["tag"]}, ValueError),
        ({"ignored_filters": "tags"}, TypeError),
        ({"allowed_tags": "ci"}, TypeError),
        ({"platforms": [1]}, TypeError),
    ],
    ids=lambda value: str(value) if not isinstance(value, type) else value.__name__,
)
def test_invalid_quirks_are_refused(options: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        FakeDevinServer(**options)


def test_quirk_assignments_are_validated_on_the_server_and_its_quirks() -> None:
    server = FakeDevinServer()
    quirks = server.quirks
    with pytest.raises(ValueError, match="unknown list filters"):
        quirks.ignored_filters = {"tagz"}  # type: ignore[assignment]
    with pytest.raises(ValueError, match="random_429"):
        server.random_429 = 2.0
    server.allowed_tags = ["a", "b", "a"]
    assert server.allowed_tags == quirks.allowed_tags == ("a", "b")
    quirks.list_lag_seconds = 1.5
    assert server.list_lag_seconds == 1.5
    server.handler_cancellation = True
    assert quirks.handler_cancellation is True
    server.message_lag_reads = 3
    assert quirks.message_lag_reads == 3
    with pytest.raises(ValueError, match="message_lag_reads"):
        server.message_lag_reads = -1
    with pytest.raises(ValueError, match="message_lag_reads"):
        Quirks(message_lag_reads=-2)
    assert server.message_lag_reads == 3
    assert FakeDevinServer(message_lag_reads=4).message_lag_reads == 4
    assert FakeDevinServer.platforms.name == "platforms"  # the class holds the descriptor


# --------------------------------------------------------------------------- recording


async def test_requests_are_recorded_without_the_key(api: Api) -> None:
    params = [("tags", "a"), ("first", "5"), ("tags", "b")]
    await api("GET", ENTERPRISE, params=params, headers={**AUTH, "X-Trace": "t1"})
    await api.create()
    listed, created = api.server.requests
    assert (listed.method, listed.path, listed.route) == (
        "GET",
        ENTERPRISE,
        "enterprise_list_sessions",
    )
    assert listed.query == (("tags", "a"), ("first", "5"), ("tags", "b"))
    assert listed.body is None
    assert listed.authorized
    assert listed.header("x-trace") == "t1"
    assert listed.header("Authorization") is None
    assert KEY not in repr(api.server.requests)
    assert created.body == {"prompt": "Fix the flaky test"}
    assert api.server.count() == 2
    assert api.server.count("create_session") == api.server.count(method="post") == 1
    api.server.reset_log()
    assert (api.server.requests, api.server.sessions_created) == ([], 0)
    assert len(api.server.sessions) == 1


async def test_unknown_paths_are_recorded_without_a_route(api: Api) -> None:
    await api("GET", "/v3/nowhere")
    assert api.server.requests[0].route is None


# --------------------------------------------------------------------------- pytest plugin


def test_fake_devin_fixture_serves_a_started_server(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        """
        import aiohttp
        import pytest

        @pytest.mark.asyncio
        async def test_it(fake_devin):
            url = fake_devin.url + "/v3/enterprise/sessions"
            headers = {"Authorization": "Bearer cog_test_key"}
            async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as r:
                assert r.status == 200
            assert fake_devin.count("enterprise_list_sessions") == 1
        """
    )
    # Load exactly the plugins under test, whether or not devin_async is installed.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    result = pytester.runpytest_inprocess(
        "-p",
        "pytest_asyncio.plugin",
        "-p",
        "devin_async.pytest_plugin",
        "-W",
        "error",
        "-o",
        "asyncio_default_fixture_loop_scope=function",
    )
    result.assert_outcomes(passed=1)


def test_the_fake_reads_every_list_filter_the_client_knows() -> None:
    from devin_async._filters import ARRAY_FILTERS, LIST_FILTERS
    from devin_async.testing import queries

    arrays = {*queries._ONE_OF, *queries._ANY_OF}
    scalars = {*queries._SINCE, *queries._UNTIL, *queries._EQUAL, "is_archived"}
    assert arrays == ARRAY_FILTERS
    assert arrays | scalars == LIST_FILTERS
