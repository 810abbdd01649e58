"""The listing, messaging, tag, attachment and follow endpoints, over sockets against the fake."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import aclosing

import pytest
from fakes import FakeTime

from devin_async import (
    Attachment,
    AwaitTimeoutError,
    ConfigurationError,
    DevinClient,
    InternalServerError,
    MessageSource,
    NotFoundError,
    Session,
    SessionCategory,
    SessionOrigin,
    SessionStatus,
    SessionUpdate,
    StatusDetail,
    WaitState,
    dumps_wait_state,
    loads_wait_state,
)
from devin_async.testing import FINISHES, FakeDevinServer, Step

KEY = "cog_test_key_0123456789"
ORG_PATH = "/v3/organizations/org-test/sessions"
ENTERPRISE_PATH = "/v3/enterprise/sessions"

# Claimed, working, then a question that holds until someone answers it; the answer wakes
# the session, which works and finishes ("All done.").
QUESTION = (
    Step("claimed"),
    Step("running", "working"),
    Step("running", "waiting_for_user", message="Which branch?"),
)
# What a bot following a QUESTION session created with PROMPT sees, answering "main".
PROMPT = "Fix the login bug"
BOT_SEES = [
    f"user: {PROMPT}",
    "claimed/None",
    "running/working",
    "devin: Which branch?",
    "running/waiting_for_user",
    "user: main",
    "running/working",
    "devin: All done.",
    "running/finished",
]


def make_client(
    server: FakeDevinServer, *, org_id: str | None = "org-test", time: FakeTime | None = None
) -> DevinClient:
    # Untagged creates: the exactly-once marker tag would show up in every tag assertion.
    time = time if time is not None else FakeTime()
    return DevinClient(
        KEY,
        org_id=org_id,
        base_url=server.url,
        timeout=5.0,
        exactly_once_create=False,
        sleep=time,
        clock=time.clock,
    )


@pytest.fixture
async def server() -> AsyncIterator[FakeDevinServer]:
    async with FakeDevinServer(api_key=KEY, org_id="org-test") as srv:
        yield srv


@pytest.fixture
def time() -> FakeTime:
    return FakeTime()


@pytest.fixture
async def client(server: FakeDevinServer, time: FakeTime) -> AsyncIterator[DevinClient]:
    async with make_client(server, time=time) as c:
        yield c


@pytest.fixture
async def enterprise(
    server: FakeDevinServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[DevinClient]:
    monkeypatch.delenv("DEVIN_ORG_ID", raising=False)
    async with make_client(server, org_id=None) as c:
        assert c.org_id is None
        yield c


async def create(
    client: DevinClient, server: FakeDevinServer, n: int, **kwargs: object
) -> list[str]:
    """Create ``n`` sessions and return their ids, oldest first; forget the requests."""
    ids = [
        (await client.create_session(f"task {i}", **kwargs)).session_id  # type: ignore[arg-type]
        for i in range(n)
    ]
    server.reset_log()
    return ids


def values(query: tuple[tuple[str, str], ...], key: str) -> list[str]:
    return [v for k, v in query if k == key]


# ---------------------------------------------------------------- list_sessions


async def test_every_list_filter_reaches_the_wire(
    client: DevinClient, server: FakeDevinServer
) -> None:
    await client.list_sessions(
        first=7,
        session_ids=["devin-a", "devin-b"],
        tags=["ci", "nightly"],
        origins=[SessionOrigin.API, "slack"],
        user_ids=["user-1", "user-2"],
        service_user_ids=["su-1", "su-2"],
        repo_names=["o/r1", "o/r2"],
        playbook_id="playbook-1",
        schedule_id="schedule-1",
        category=SessionCategory.BUG_FIXING,
        is_archived=False,
        created_after=100,
        created_before=200,
        updated_after=300,
        updated_before=400,
    ).collect()
    (request,) = server.requests
    assert (request.method, request.path, request.route) == ("GET", ORG_PATH, "list_sessions")
    expected = {
        "session_ids": ["devin-a", "devin-b"],
        "tags": ["ci", "nightly"],
        "origins": ["api", "slack"],
        "user_ids": ["user-1", "user-2"],
        "service_user_ids": ["su-1", "su-2"],
        "repo_names": ["o/r1", "o/r2"],
        "playbook_id": ["playbook-1"],
        "schedule_id": ["schedule-1"],
        "category": ["bug_fixing"],
        "is_archived": ["false"],
        "created_after": ["100"],
        "created_before": ["200"],
        "updated_after": ["300"],
        "updated_before": ["400"],
        "first": ["7"],
    }
    assert {k for k, _ in request.query} == set(expected)
    assert {key: values(request.query, key) for key in expected} == expected


@pytest.mark.parametrize(("given", "sent"), [(True, "true"), (False, "false")], ids=str)
async def test_is_archived_is_sent_as_a_json_bool(
    client: DevinClient, server: FakeDevinServer, given: bool, sent: str
) -> None:
    await client.list_sessions(is_archived=given).collect()
    assert server.requests[0].query == (("is_archived", sent), ("first", "100"))


async def test_list_follows_the_cursor_to_the_end_newest_first(
    client: DevinClient, server: FakeDevinServer
) -> None:
    ids = await create(client, server, 7)
    sessions = await client.list_sessions(first=3).collect()
    assert [s.session_id for s in sessions] == ids[::-1]
    assert all(isinstance(s, Session) for s in sessions)
    requests = [r for r in server.requests if r.route == "list_sessions"]
    assert len(requests) == len(server.requests) == 3
    assert [values(r.query, "first") for r in requests] == [["3"]] * 3
    cursors = [values(r.query, "after") for r in requests]
    assert cursors[0] == []
    assert all(len(c) == 1 for c in cursors[1:])
    assert cursors[1] != cursors[2]


@pytest.mark.parametrize(("limit", "pages"), [(0, 0), (3, 1), (4, 2), (7, 3), (50, 3)])
async def test_list_limit_stops_without_fetching_more_pages(
    client: DevinClient, server: FakeDevinServer, limit: int, pages: int
) -> None:
    ids = await create(client, server, 7)
    sessions = await client.list_sessions(first=3, limit=limit).collect()
    assert [s.session_id for s in sessions] == ids[::-1][:limit]
    assert server.count("list_sessions") == pages


async def test_list_resumes_after_a_cursor(client: DevinClient, server: FakeDevinServer) -> None:
    ids = await create(client, server, 7)
    pages = client.list_sessions(first=3).pages()
    first = await anext(pages)
    await pages.aclose()
    assert [s.session_id for s in first.items] == ids[::-1][:3]
    assert first.has_next_page
    assert first.end_cursor is not None
    assert first.total == 7

    rest = await client.list_sessions(first=3, after=first.end_cursor).collect()
    assert [s.session_id for s in rest] == ids[::-1][3:]
    assert values(server.requests[1].query, "after") == [first.end_cursor]


async def test_list_filters_filter(client: DevinClient, server: FakeDevinServer) -> None:
    a = (await client.create_session("a", tags=["a"])).session_id
    b = (await client.create_session("b", tags=["b"])).session_id
    c = (await client.create_session("c", tags=["c"])).session_id
    ab = (await client.create_session("ab", tags=["a", "b"])).session_id

    async def listed(**filters: object) -> list[str]:
        return [s.session_id async for s in client.list_sessions(**filters)]  # type: ignore[arg-type]

    assert await listed(tags=["a", "b"]) == [ab, b, a]  # any of the tags
    assert await listed(tags=["c"]) == [c]
    assert await listed(session_ids=[a, c]) == [c, a]
    assert await listed(tags=["nope"]) == []

    archived = await client.archive_session(b)
    assert archived.is_archived
    assert await listed(is_archived=True) == [b]
    assert await listed(is_archived=False) == [ab, c, a]
    assert await listed(is_archived=True, tags=["a"]) == []


async def test_enterprise_list_uses_the_enterprise_path_and_org_ids(
    client: DevinClient, enterprise: DevinClient, server: FakeDevinServer
) -> None:
    ids = await create(client, server, 2)
    mine = await enterprise.list_sessions(org_ids=["org-test", "org-other"]).collect()
    assert [s.session_id for s in mine] == ids[::-1]
    others = await enterprise.list_sessions(org_ids=["org-other"]).collect()
    assert others == []
    assert {(r.method, r.path, r.route) for r in server.requests} == {
        ("GET", ENTERPRISE_PATH, "enterprise_list_sessions")
    }
    assert values(server.requests[0].query, "org_ids") == ["org-test", "org-other"]


async def test_enterprise_list_takes_repo_names_category_and_is_archived(
    client: DevinClient, enterprise: DevinClient, server: FakeDevinServer
) -> None:
    # The current SDK's enterprise list request has these three filters (reference 11).
    a = (await client.create_session("a", repos=["o/api"])).session_id
    b = (await client.create_session("b", repos=["o/web"])).session_id
    await client.archive_session(b)
    server.sessions[a].category = SessionCategory.CODE_REVIEW
    server.reset_log()

    async def listed(**filters: object) -> list[str]:
        found = enterprise.list_sessions(**filters)  # type: ignore[arg-type]
        return [s.session_id async for s in found]

    assert await listed(repo_names=["o/api"]) == [a]
    assert await listed(category=SessionCategory.CODE_REVIEW) == [a]
    assert await listed(is_archived=True) == [b]
    assert await listed(repo_names=["o/api", "o/web"], is_archived=False) == [a]
    assert {r.route for r in server.requests} == {"enterprise_list_sessions"}
    assert values(server.requests[0].query, "repo_names") == ["o/api"]
    assert values(server.requests[1].query, "category") == ["code_review"]
    assert values(server.requests[2].query, "is_archived") == ["true"]


async def test_org_ids_on_an_org_client_is_refused_before_any_request(
    client: DevinClient, server: FakeDevinServer
) -> None:
    with pytest.raises(ValueError, match="org_ids"):
        client.list_sessions(org_ids=["org-test"])
    assert server.requests == []


@pytest.mark.parametrize(
    "name", ["session_ids", "tags", "origins", "user_ids", "service_user_ids", "repo_names"]
)
async def test_a_bare_string_for_an_array_filter_is_refused(
    client: DevinClient, server: FakeDevinServer, name: str
) -> None:
    with pytest.raises(TypeError, match=name):
        client.list_sessions(**{name: "ci"})  # type: ignore[arg-type]
    assert server.requests == []


async def test_a_bare_string_for_org_ids_is_refused(
    enterprise: DevinClient, server: FakeDevinServer
) -> None:
    with pytest.raises(TypeError, match="org_ids"):
        enterprise.list_sessions(org_ids="org-test")  # type: ignore[arg-type]
    assert server.requests == []


@pytest.mark.parametrize("first", [0, 201, -1, True], ids=["zero", "201", "negative", "bool"])
async def test_a_page_size_out_of_range_is_refused(
    client: DevinClient, server: FakeDevinServer, first: int
) -> None:
    with pytest.raises(ValueError, match="first"):
        client.list_sessions(first=first)
    with pytest.raises(ValueError, match="first"):
        client.list_messages("devin-abc", first=first)
    assert server.requests == []


@pytest.mark.parametrize("first", [1, 200], ids=["min", "max"])
async def test_page_size_bounds_are_accepted(
    client: DevinClient, server: FakeDevinServer, first: int
) -> None:
    assert await client.list_sessions(first=first).collect() == []
    assert values(server.requests[0].query, "first") == [str(first)]


# ---------------------------------------------------------------- list_messages


async def test_messages_start_with_the_prompt_then_follow_the_timeline(
    client: DevinClient, server: FakeDevinServer
) -> None:
    sid = (await client.create_session(PROMPT)).session_id
    server.set_timeline(
        sid,
        [
            Step("running", "working", message="Looking at it."),
            Step("running", "finished", message="Fixed."),
        ],
    )
    await client.get_session(sid)
    await client.get_session(sid)  # the second read enters the finished step
    messages = await client.list_messages(sid).collect()
    assert [(m.source, m.message) for m in messages] == [
        (MessageSource.USER, PROMPT),
        (MessageSource.DEVIN, "Looking at it."),
        (MessageSource.DEVIN, "Fixed."),
    ]
    assert len({m.event_id for m in messages}) == 3
    assert [m.created_at for m in messages] == sorted(m.created_at for m in messages)
    (request,) = [r for r in server.requests if r.route == "list_messages"]
    assert (request.method, request.path) == ("GET", f"{ORG_PATH}/{sid}/messages")
    assert request.query == (("first", "100"),)


@pytest.mark.parametrize(("first", "pages"), [(1, 4), (3, 2), (4, 1)])
async def test_messages_paginate_oldest_first(
    client: DevinClient, server: FakeDevinServer, first: int, pages: int
) -> None:
    (sid,) = await create(client, server, 1)
    for text in ("one", "two", "three"):
        await client.send_message(sid, text)
    server.reset_log()
    messages = await client.list_messages(sid, first=first).collect()
    assert [m.message for m in messages] == ["task 0", "one", "two", "three"]
    requests = server.requests
    assert len(requests) == pages
    assert [values(r.query, "first") for r in requests] == [[str(first)]] * pages
    assert [len(values(r.query, "after")) for r in requests] == [0] + [1] * (pages - 1)


async def test_messages_accept_a_bare_id_and_a_start_cursor(
    client: DevinClient, server: FakeDevinServer
) -> None:
    (sid,) = await create(client, server, 1)
    await client.send_message(sid, "one")
    pages = client.list_messages(sid.removeprefix("devin-"), first=1).pages()
    first = await anext(pages)
    await pages.aclose()
    rest = await client.list_messages(sid, first=1, after=first.end_cursor).collect()
    assert [m.message for m in (*first.items, *rest)] == ["task 0", "one"]
    assert {r.path for r in server.requests} == {f"{ORG_PATH}/{sid}/messages"}


async def test_enterprise_messages(
    client: DevinClient, enterprise: DevinClient, server: FakeDevinServer
) -> None:
    (sid,) = await create(client, server, 1)
    messages = await enterprise.list_messages(sid).collect()
    assert [m.message for m in messages] == ["task 0"]
    (request,) = server.requests
    assert (request.path, request.route) == (
        f"{ENTERPRISE_PATH}/{sid}/messages",
        "enterprise_list_messages",
    )


# ---------------------------------------------------------------- send_message


async def test_send_message_records_a_user_message(
    client: DevinClient, server: FakeDevinServer
) -> None:
    (sid,) = await create(client, server, 1)
    session = await client.send_message(sid, "Please also add a test.")
    assert isinstance(session, Session)
    assert session.session_id == sid
    (request,) = server.requests
    assert (request.method, request.path, request.route) == (
        "POST",
        f"{ORG_PATH}/{sid}/messages",
        "send_message",
    )
    last = (await client.list_messages(sid).collect())[-1]
    assert (last.source, last.message) == (MessageSource.USER, "Please also add a test.")


@pytest.mark.parametrize(
    ("state", "detail"),
    [("suspended", "inactivity"), ("running", "waiting_for_user")],
    ids=["suspended", "waiting-for-user"],
)
async def test_send_message_resumes_a_session(
    client: DevinClient, server: FakeDevinServer, state: str, detail: str
) -> None:
    (sid,) = await create(client, server, 1)
    server.set_state(sid, state, detail)
    session = await client.send_message(sid, "go on")
    # The answer carries the status only; get fills the detail, as the API does.
    assert (session.status, session.status_detail) == (SessionStatus.RUNNING, None)
    session = await client.get_session(sid)
    assert (session.status, session.status_detail) == (
        SessionStatus.RUNNING,
        StatusDetail.WORKING,
    )


@pytest.mark.parametrize(
    ("kwargs", "body"),
    [
        ({}, {"message": "hi"}),
        ({"message_as_user_id": "user-2"}, {"message": "hi", "message_as_user_id": "user-2"}),
        (
            {"attachment_urls": ["https://files.example/a.txt"]},
            {"message": "hi", "attachment_urls": ["https://files.example/a.txt"]},
        ),
    ],
    ids=["message-only", "as-user", "attachments"],
)
async def test_send_message_body_has_only_the_fields_given(
    client: DevinClient, server: FakeDevinServer, kwargs: dict[str, object], body: object
) -> None:
    (sid,) = await create(client, server, 1)
    await client.send_message(sid, "hi", **kwargs)  # type: ignore[arg-type]
    assert server.requests[0].body == body


@pytest.mark.parametrize("message", ["", "   \n"], ids=["empty", "blank"])
async def test_an_empty_message_is_refused_before_any_request(
    client: DevinClient, server: FakeDevinServer, message: str
) -> None:
    with pytest.raises(ValueError, match="message"):
        await client.send_message("devin-abc", message)
    assert server.requests == []


async def test_a_message_answered_500_is_not_sent_again(
    client: DevinClient, server: FakeDevinServer, time: FakeTime
) -> None:
    (sid,) = await create(client, server, 1)
    server.inject("status", status=500, route="send_message", when="after")
    with pytest.raises(InternalServerError):
        await client.send_message(sid, "only once")
    assert server.count("send_message") == 1
    assert time.delays == []
    # The server acted before failing: a retry would have posted the message twice.
    assert [m["message"] for m in server.sessions[sid].messages].count("only once") == 1


async def test_a_message_answered_429_is_retried(
    client: DevinClient, server: FakeDevinServer, time: FakeTime
) -> None:
    (sid,) = await create(client, server, 1)
    server.inject("rate_limit", retry_after="2", route="send_message")
    session = await client.send_message(sid, "after the wait")
    assert session.session_id == sid
    assert server.count("send_message") == 2
    assert time.delays[0] >= 2.0
    assert [m["message"] for m in server.sessions[sid].messages].count("after the wait") == 1


async def test_enterprise_send_message(
    client: DevinClient, enterprise: DevinClient, server: FakeDevinServer
) -> None:
    (sid,) = await create(client, server, 1)
    await enterprise.send_message(sid, "from the enterprise")
    (request,) = server.requests
    assert (request.method, request.path) == ("POST", f"{ENTERPRISE_PATH}/{sid}/messages")
    assert server.sessions[sid].messages[-1]["message"] == "from the enterprise"


# ---------------------------------------------------------------- terminate and archive


@pytest.mark.parametrize(
    ("archive", "query"), [(False, ()), (True, (("archive", "true"),))], ids=["plain", "archive"]
)
async def test_terminate(
    client: DevinClient,
    server: FakeDevinServer,
    archive: bool,
    query: tuple[tuple[str, str], ...],
) -> None:
    (sid,) = await create(client, server, 1)
    session = await client.terminate_session(sid, archive=archive)
    assert session.status == SessionStatus.EXIT
    assert session.is_archived is archive
    (request,) = server.requests
    assert (request.method, request.path, request.route) == (
        "DELETE",
        f"{ORG_PATH}/{sid}",
        "terminate_session",
    )
    assert request.query == query


async def test_archive(client: DevinClient, server: FakeDevinServer) -> None:
    (sid,) = await create(client, server, 1)
    session = await client.archive_session(sid)
    assert session.is_archived
    assert server.sessions[sid].is_archived
    (request,) = server.requests
    assert (request.method, request.path, request.route) == (
        "POST",
        f"{ORG_PATH}/{sid}/archive",
        "archive_session",
    )


@pytest.mark.parametrize("route", ["archive_session", "terminate_session"])
async def test_archive_and_terminate_are_retried_on_503(
    client: DevinClient, server: FakeDevinServer, time: FakeTime, route: str
) -> None:
    (sid,) = await create(client, server, 1)
    server.inject("status", status=503, route=route)
    if route == "archive_session":
        session = await client.archive_session(sid)
        assert session.is_archived
    else:
        session = await client.terminate_session(sid)
        assert session.status == SessionStatus.EXIT
    assert server.count(route) == 2
    assert len(time.delays) == 1


async def test_terminate_and_archive_need_an_org(
    enterprise: DevinClient, server: FakeDevinServer
) -> None:
    with pytest.raises(ConfigurationError, match="org_id"):
        await enterprise.terminate_session("devin-abc")
    with pytest.raises(ConfigurationError, match="org_id"):
        await enterprise.terminate_session("devin-abc", archive=True)
    with pytest.raises(ConfigurationError, match="org_id"):
        await enterprise.archive_session("devin-abc")
    assert server.requests == []


# ---------------------------------------------------------------- tags


async def test_get_append_and_replace_tags(client: DevinClient, server: FakeDevinServer) -> None:
    (sid,) = await create(client, server, 1, tags=["a"])
    assert await client.get_tags(sid) == ("a",)
    assert await client.append_tags(sid, ["b", "a", "c"]) == ("a", "b", "c")
    assert await client.get_tags(sid) == ("a", "b", "c")
    assert await client.replace_tags(sid, ["z", "y", "z"]) == ("z", "y")
    assert await client.get_tags(sid) == ("z", "y")
    assert await client.replace_tags(sid, []) == ()
    path = f"{ORG_PATH}/{sid}/tags"
    assert [(r.method, r.path, r.route, r.body) for r in server.requests] == [
        ("GET", path, "get_tags", None),
        ("POST", path, "append_tags", {"tags": ["b", "a", "c"]}),
        ("GET", path, "get_tags", None),
        ("PUT", path, "replace_tags", {"tags": ["z", "y", "z"]}),
        ("GET", path, "get_tags", None),
        ("PUT", path, "replace_tags", {"tags": []}),
    ]


async def test_fifty_tags_are_accepted(client: DevinClient, server: FakeDevinServer) -> None:
    (sid,) = await create(client, server, 1)
    tags = [f"t{i}" for i in range(50)]
    assert await client.replace_tags(sid, tags) == tuple(tags)


@pytest.mark.parametrize("method", ["append_tags", "replace_tags"])
async def test_more_than_fifty_tags_are_refused_before_any_request(
    client: DevinClient, server: FakeDevinServer, method: str
) -> None:
    with pytest.raises(ValueError, match="50"):
        await getattr(client, method)("devin-abc", [f"t{i}" for i in range(51)])
    with pytest.raises(TypeError, match="tags"):
        await getattr(client, method)("devin-abc", "a-bare-string")
    assert server.requests == []


async def test_replace_tags_is_retried_and_append_is_not(
    client: DevinClient, server: FakeDevinServer
) -> None:
    (sid,) = await create(client, server, 1, tags=["a"])
    server.inject("status", status=503, route="replace_tags")
    assert await client.replace_tags(sid, ["b"]) == ("b",)
    assert server.count("replace_tags") == 2
    server.inject("status", status=503, route="append_tags", when="after")
    with pytest.raises(InternalServerError):
        await client.append_tags(sid, ["c"])
    assert server.count("append_tags") == 1


@pytest.mark.parametrize(
    ("method", "args", "http", "expected"),
    [
        ("get_tags", (), "GET", ("a",)),
        ("append_tags", (["b"],), "POST", ("a", "b")),
        ("replace_tags", (["c"],), "PUT", ("c",)),
    ],
    ids=["get", "append", "replace"],
)
async def test_enterprise_tags(
    client: DevinClient,
    enterprise: DevinClient,
    server: FakeDevinServer,
    method: str,
    args: tuple[object, ...],
    http: str,
    expected: tuple[str, ...],
) -> None:
    (sid,) = await create(client, server, 1, tags=["a"])
    assert await getattr(enterprise, method)(sid, *args) == expected
    (request,) = server.requests
    assert (request.method, request.path, request.route) == (
        http,
        f"{ENTERPRISE_PATH}/{sid}/tags",
        f"enterprise_{method}",
    )


# ---------------------------------------------------------------- attachments

URLS = ["https://files.example/a/report.pdf", "https://files.example/b/log.txt"]


@pytest.mark.parametrize("envelope", [False, True], ids=["bare-array", "items-envelope"])
async def test_list_attachments(
    client: DevinClient, server: FakeDevinServer, envelope: bool
) -> None:
    server.attachments_envelope = envelope
    (sid,) = await create(client, server, 1, attachment_urls=URLS[:1])
    await client.send_message(sid, "and this one", attachment_urls=URLS[1:])
    attachments = await client.list_attachments(sid)
    assert isinstance(attachments, tuple)
    assert all(isinstance(a, Attachment) for a in attachments)
    assert [(a.name, a.url, a.source, a.content_type) for a in attachments] == [
        ("report.pdf", URLS[0], MessageSource.USER, None),
        ("log.txt", URLS[1], MessageSource.USER, None),
    ]
    assert len({a.attachment_id for a in attachments}) == 2
    assert server.requests[-1].path == f"{ORG_PATH}/{sid}/attachments"


@pytest.mark.parametrize("envelope", [False, True], ids=["bare-array", "items-envelope"])
async def test_no_attachments(
    client: DevinClient, enterprise: DevinClient, server: FakeDevinServer, envelope: bool
) -> None:
    server.attachments_envelope = envelope
    (sid,) = await create(client, server, 1)
    assert await enterprise.list_attachments(sid) == ()
    (request,) = server.requests
    assert (request.path, request.route) == (
        f"{ENTERPRISE_PATH}/{sid}/attachments",
        "enterprise_list_attachments",
    )


# ---------------------------------------------------------------- follow_session


def describe(update: SessionUpdate) -> str:
    if update.message is not None:
        assert update.session is None
        return f"{update.message.source}: {update.message.message}"
    assert update.session is not None
    return f"{update.session.status}/{update.session.status_detail}"


async def run_bot(
    client: DevinClient,
    start: str | WaitState,
    saved: list[str],
    budget: int | None = None,
) -> list[str]:
    """Follow a session like a bot: answer its question with "main", save after each update.

    Returns what it saw; stops after ``budget`` updates (a crash) or once it finished.
    """
    seen: list[str] = []
    state = start
    for _ in range(4):  # one follow per question, and one to the end
        async with aclosing(client.follow_session(state)) as updates:
            async for update in updates:
                seen.append(describe(update))
                if update.session is not None and update.session.status_detail == (
                    StatusDetail.WAITING_FOR_USER
                ):
                    await client.send_message(update.state.session_id, "main")
                saved.append(dumps_wait_state(update.state))
                state = update.state
                if len(seen) == budget:
                    return seen
        assert isinstance(state, WaitState)
        if state.status_detail == StatusDetail.FINISHED:
            return seen
    raise AssertionError(f"the bot never finished: {seen}")


async def test_a_bot_answers_the_question_and_follows_to_the_end(
    client: DevinClient, server: FakeDevinServer
) -> None:
    server.queue_timeline(QUESTION)
    sid = (await client.create_session(PROMPT)).session_id
    saved: list[str] = []
    seen = await run_bot(client, sid, saved)
    assert seen == BOT_SEES
    # The question arrives before the waiting_for_user it caused.
    assert seen.index("devin: Which branch?") < seen.index("running/waiting_for_user")
    assert server.count("send_message") == 1
    final = loads_wait_state(saved[-1])
    assert final == WaitState(
        sid,
        status="running",
        status_detail="finished",
        message_cursor=None,
        last_event_id=server.sessions[sid].messages[-1]["event_id"],
    )


def is_subsequence(part: list[str], whole: list[str]) -> bool:
    rest = iter(whole)
    return all(item in rest for item in part)


@pytest.mark.parametrize("crash_after", range(1, len(BOT_SEES)))
async def test_a_restarted_bot_sees_nothing_twice(
    server: FakeDevinServer, crash_after: int
) -> None:
    server.queue_timeline(QUESTION)
    saved: list[str] = []
    async with make_client(server) as first:
        sid = (await first.create_session(PROMPT)).session_id
        before = await run_bot(first, sid, saved, budget=crash_after)
    assert before == BOT_SEES[:crash_after]

    async with make_client(server) as second:  # a new process: only the saved text survives
        after = await run_bot(second, loads_wait_state(saved[-1]), saved)

    seen = before + after
    messages = [s for s in seen if ": " in s]
    assert messages == [s for s in BOT_SEES if ": " in s]  # every message, exactly once
    states = [s for s in seen if ": " not in s]
    assert all(a != b for a, b in itertools.pairwise(states)), states
    # A restart re-reads the session, which may move the fake on one step: a state may be
    # skipped, never repeated or reordered.
    assert is_subsequence(seen, BOT_SEES), seen
    assert seen[-1] == "running/finished"
    assert server.count("send_message") == 1


async def test_follow_without_messages_yields_only_state_changes(
    client: DevinClient, server: FakeDevinServer
) -> None:
    server.queue_timeline(FINISHES)
    sid = (await client.create_session(PROMPT)).session_id
    updates = [u async for u in client.follow_session(sid, messages=False)]
    assert all(u.message is None for u in updates)
    assert [describe(u) for u in updates] == [
        "claimed/None",
        "running/working",
        "running/finished",
    ]
    assert server.count("list_messages") == 0


async def test_follow_an_unknown_session_raises_not_found(
    client: DevinClient, server: FakeDevinServer
) -> None:
    with pytest.raises(NotFoundError):
        [u async for u in client.follow_session("devin-0000")]
    assert server.count("get_session") == 1


async def test_follow_a_bad_id_is_refused_before_any_request(
    client: DevinClient, server: FakeDevinServer
) -> None:
    with pytest.raises(ValueError, match="session id"):
        client.follow_session("a/b")
    assert server.requests == []


async def test_follow_deadline_raises_with_the_last_session(
    client: DevinClient, server: FakeDevinServer, time: FakeTime
) -> None:
    (sid,) = await create(client, server, 1)
    server.set_state(sid, "running", "working")
    start = time.now
    with pytest.raises(AwaitTimeoutError) as info:
        [u async for u in client.follow_session(sid, timeout=5.0)]
    assert info.value.session is not None
    assert info.value.session.status_detail == StatusDetail.WORKING
    assert info.value.polls == server.count("get_session") >= 2
    assert time.now - start == pytest.approx(5.0)


async def test_replace_tags_from_a_generator_sends_its_tags(
    client: DevinClient, server: FakeDevinServer
) -> None:
    (sid,) = await create(client, server, 1, tags=["a"])
    # create_session accepts any iterable of tags; so should the tag endpoints.
    assert await client.replace_tags(sid, (t for t in ["b", "c"])) == ("b", "c")  # type: ignore[arg-type]
