"""Security rules as tests: credentials stay secret, hostile input makes no request.

The run-wide check that no log record shows a credential lives in conftest.py
(``pytest_sessionfinish``); the tests here prove it sees records and exercise the paths
that could leak: errors, retries, reprs, redirects.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from fakes import FakeTime
from leaks import leaks
from pytest_aiohttp import AiohttpServer

from devin_async import (
    APIStatusError,
    AuthenticationError,
    ConfigurationError,
    CreateSessionRequest,
    DevinClient,
    DevinError,
    SessionSecret,
    UnprocessableEntityError,
)
from devin_async.testing import FakeDevinServer

KEY = "cog_security_key_4242"
SECRET = "s3cr3t-db-password"


@pytest.fixture
async def server() -> AsyncIterator[FakeDevinServer]:
    async with FakeDevinServer(api_key=KEY, org_id="org-sec") as srv:
        yield srv


def make_client(server: FakeDevinServer, key: str = KEY) -> DevinClient:
    time = FakeTime()
    return DevinClient(key, org_id=server.org_id, base_url=server.url, sleep=time, clock=time.clock)


def test_the_run_wide_recorder_sees_client_debug_records(log_recorder: object) -> None:
    before = log_recorder.count  # type: ignore[attr-defined]
    logging.getLogger("devin_async").debug("probe %s", "record")
    assert log_recorder.count == before + 1  # type: ignore[attr-defined]


async def test_errors_reprs_and_logs_never_show_the_key_or_a_secret(
    server: FakeDevinServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.inject("status", status=503, times=2, route="get_session")
    server.inject("rate_limit", retry_after="0", times=1, route="create_session")
    texts: list[str] = []
    async with make_client(server) as client:
        texts.append(repr(client))
        request = CreateSessionRequest(
            prompt="deploy", session_secrets=[SessionSecret("DB_PASSWORD", SECRET)]
        )
        texts.append(repr(request))
        session = await client.create_session(request)
        texts.append(repr(session))
        await client.get_session(session.session_id)
        with pytest.raises(UnprocessableEntityError) as bad:
            await client.create_session(
                "x",
                session_secrets=[SessionSecret("K", SECRET)],
                max_acu_limit="many",  # type: ignore[arg-type]
            )
        texts += [str(bad.value), repr(bad.value), repr(bad.value.errors)]
    async with make_client(server, key="cog_wrong_key_1111") as wrong:
        with pytest.raises(AuthenticationError) as denied:
            await wrong.get_session(session.session_id)
        texts += [str(denied.value), repr(denied.value), repr(dict(denied.value.headers))]
    texts += [r.getMessage() for r in caplog.records]
    for text in texts:
        for needle in (KEY, "cog_wrong_key_1111", SECRET, "Bearer "):
            assert needle not in text, f"{needle!r} in {text[:200]!r}"


@pytest.mark.parametrize(
    "base_url",
    [
        "http://api.devin.ai",
        "http://10.1.2.3",
        "http://192.168.0.10:8080",
        "http://localhost.example.com",
        "http://127.0.0.1.nip.io",
        "http://[2001:db8::1]",
    ],
)
def test_credentials_are_never_sent_over_plain_http_to_a_remote_host(base_url: str) -> None:
    with pytest.raises(ConfigurationError, match="http"):
        DevinClient(KEY, base_url=base_url)


# Every message path of check_base_url, each with a password (or a token) in the URL.
# Passwords holding "/", "?" or "#" make urlsplit cut the URL in the wrong place, so the
# "userinfo" it sees is not the whole secret: the messages must not echo any of it.
LEAKY_BASE_URLS = {
    "bad-scheme": "ftp://user:hunter2@api.devin.ai",
    "no-host": "https://user:hunter2@",
    "no-host-slash": "https://user:hunter2@/v3",
    "no-scheme": "user:hunter2@api.devin.ai",
    "bad-port": "https://user:hunter2@api.devin.ai:abc",
    "password-with-slash": "https://user:x/hunter2@api.devin.ai",
    "password-with-query-mark": "https://user:x?hunter2@api.devin.ai",
    "password-with-hash": "https://user:hunter2#x@api.devin.ai",
    "password-with-hash-bad-scheme": "ftp://user:x#hunter2@api.devin.ai",
    "username-only": "https://hunter2@api.devin.ai",
    "credentials-over-http": "http://user:hunter2@api.devin.ai",
    "credentials-loopback": "http://user:hunter2@127.0.0.1:8080",
    "token-in-query-bad-scheme": "ftp://api.devin.ai/?token=hunter2",
    "token-in-fragment-no-host": "https:///#hunter2",
    "key-passed-as-base-url": "hunter2",
    "key-and-path-as-base-url": "hunter2/v3",
    # urlsplit sees host "user" and path "/hunter2@api.devin.ai": not a valid base URL.
    "password-with-slash-valid-port": "https://user/hunter2@api.devin.ai",
}


@pytest.mark.parametrize("base_url", LEAKY_BASE_URLS.values(), ids=LEAKY_BASE_URLS.keys())
def test_base_url_messages_never_echo_userinfo(base_url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        DevinClient(KEY, base_url=base_url)
    assert "base_url" in str(info.value)
    # Nothing reachable from it either: urlsplit's port error names the bad port.
    assert leaks(info.value, "hunter2") == []


@pytest.mark.parametrize(
    ("base_url", "shown"),
    [
        ("ftp://api.devin.ai", "'ftp://api.devin.ai'"),
        ("ftp://user:hunter2@api.devin.ai/v3", "'ftp://***@api.devin.ai/v3'"),
        ("https://api.devin.ai:abc", "'https://api.devin.ai:abc'"),
        ("https://user:hunter2@api.devin.ai:abc", "'https://***@api.devin.ai:abc'"),
        ("ftp://api.devin.ai/x?token=hunter2", "'ftp://api.devin.ai/x?...'"),
    ],
)
def test_base_url_messages_still_show_the_safe_parts(base_url: str, shown: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        DevinClient(KEY, base_url=base_url)
    assert shown in str(info.value)


HOSTILE_IDS = [
    "../../organizations/org-other/sessions",
    "..",
    "devin-abc/../../x",
    "devin-abc?archive=true",
    "devin-abc#frag",
    "devin-abc%2F..%2Fx",
    "devin-abc%00",
    "devin-abc\r\nX-Injected: 1",
    "devin-abc def",
    "devin-\u0430bc",  # Cyrillic a
    "devin-abc\u200b",  # zero-width space
    "devin-ａｂｃ",  # fullwidth letters  # noqa: RUF001
    "\u202edevin-abc",  # right-to-left override
]

CALLS: dict[str, Callable[[DevinClient, str], Awaitable[object]]] = {
    "get_session": lambda c, i: c.get_session(i),
    "await_session": lambda c, i: c.await_session(i),
    "send_message": lambda c, i: c.send_message(i, "hi"),
    "terminate_session": lambda c, i: c.terminate_session(i),
    "archive_session": lambda c, i: c.archive_session(i),
    "get_tags": lambda c, i: c.get_tags(i),
    "append_tags": lambda c, i: c.append_tags(i, ["t"]),
    "replace_tags": lambda c, i: c.replace_tags(i, ["t"]),
    "list_attachments": lambda c, i: c.list_attachments(i),
    "list_messages": lambda c, i: c.list_messages(i).collect(),
    "await_sessions": lambda c, i: c.await_sessions([i]),
    "list_sessions": lambda c, i: c.list_sessions(session_ids=[i]).collect(),
}


@pytest.mark.parametrize("call", sorted(CALLS))
@pytest.mark.parametrize("hostile", HOSTILE_IDS)
async def test_hostile_ids_are_refused_before_any_request(
    server: FakeDevinServer, call: str, hostile: str
) -> None:
    async with make_client(server) as client:
        with pytest.raises(ValueError, match="session id"):
            await CALLS[call](client, hostile)
    assert server.requests == []


async def test_a_redirect_never_carries_the_key_to_another_host(
    aiohttp_server: AiohttpServer,
) -> None:
    seen: list[str | None] = []

    async def elsewhere(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.json_response({})

    other = await aiohttp_server(_app(elsewhere), host="127.0.0.1")
    target = str(other.make_url("/steal")).replace("127.0.0.1", "localhost")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(target)

    origin = await aiohttp_server(_app(redirect), host="127.0.0.1")
    async with DevinClient(KEY, org_id="org-sec", base_url=str(origin.make_url(""))) as client:
        with pytest.raises(APIStatusError) as info:
            await client.get_session("devin-abc")
    assert info.value.status_code == 307
    assert isinstance(info.value, DevinError)
    assert seen == []  # the other host was never contacted, let alone with the key


def _app(handler: Callable[[web.Request], Awaitable[web.Response]]) -> web.Application:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


async def test_an_error_body_that_echoes_a_session_secret_is_redacted(
    aiohttp_server: AiohttpServer,
) -> None:
    # Regression (the test failed before the fix): a FastAPI server echoes the failing
    # input in a 422, so the session secret's value came back in the error's body.
    async def echo(request: web.Request) -> web.Response:
        body = await request.json()
        detail = [
            {
                "type": "string_too_long",
                "loc": ["body", "session_secrets", 0],
                "msg": f"bad secret {body['session_secrets'][0]['value']}",
                "input": body["session_secrets"][0],
            }
        ]
        return web.json_response({"detail": detail}, status=422)

    server = await aiohttp_server(_app(echo), host="127.0.0.1")
    secret = "s3cr3t-echoed-value"
    async with DevinClient(
        KEY, org_id="org-sec", base_url=str(server.make_url("")), exactly_once_create=False
    ) as client:
        with pytest.raises(UnprocessableEntityError) as info:
            await client.create_session("p", session_secrets=[SessionSecret("TOKEN", secret)])
    assert leaks(info.value, secret, KEY) == []
    assert "TOKEN" in repr(info.value.body)  # the rest of the body is kept
