"""Proxies from the environment (``trust_env``), over real sockets on 127.0.0.1.

A recording proxy (a pytest-aiohttp server that forwards what it receives to the fake
Devin server) shows which requests went through it: ``HTTP_PROXY`` sends them there,
``NO_PROXY`` and ``trust_env=False`` bypass it, a remote proxy never sees a plain-http
request (it would read the key in clear), and ``~/.netrc`` never touches a header.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from devin_async import APIConnectionError, ConfigurationError, DevinClient
from devin_async._settings import Settings, env_proxy
from devin_async.testing import FakeDevinServer

_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "REQUEST_METHOD")


@pytest.fixture(autouse=True)
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start every test without proxy variables, whatever the machine has set."""
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


class RecordingProxy:
    """An HTTP proxy that records each request it is sent and forwards it."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.url = ""
        self._client: aiohttp.ClientSession | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append((request.method, str(request.url), dict(request.headers)))
        hop = {"Host", "Proxy-Authorization", "Proxy-Connection", "Connection"}
        headers = {k: v for k, v in request.headers.items() if k not in hop}
        assert self._client is not None
        async with self._client.request(
            request.method, request.url, headers=headers, data=await request.read()
        ) as resp:
            body = await resp.read()
            return web.Response(status=resp.status, body=body, content_type=resp.content_type)

    async def start(self, aiohttp_server: AiohttpServer) -> None:
        self._client = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        server = await aiohttp_server(app)
        self.url = f"http://127.0.0.1:{server.port}"

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()


@pytest.fixture
async def proxy(aiohttp_server: AiohttpServer) -> AsyncIterator[RecordingProxy]:
    recorder = RecordingProxy()
    await recorder.start(aiohttp_server)
    yield recorder
    await recorder.close()


@pytest.fixture
async def fake() -> AsyncIterator[FakeDevinServer]:
    async with FakeDevinServer() as server:
        yield server


async def _create_and_get(fake: FakeDevinServer, **options: object) -> None:
    """Create a session and read it back through a new client; both must be authorized."""
    async with DevinClient(
        fake.api_key, org_id=fake.org_id, base_url=fake.url, **options
    ) as client:
        session = await client.create_session("through whatever the environment says")
        assert (await client.get_session(session.session_id)).session_id == session.session_id
    assert fake.requests
    assert all(r.authorized for r in fake.requests)


async def test_http_proxy_carries_the_requests(
    fake: FakeDevinServer, proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    await _create_and_get(fake)
    methods = [(method, url.removeprefix(fake.url)) for method, url, _ in proxy.seen]
    assert [m for m, _ in methods] == [r.method for r in fake.requests]
    assert all(url.startswith("/v3/") for _, url in methods)  # absolute-form, to the fake


async def test_no_proxy_bypasses_it(
    fake: FakeDevinServer, proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    await _create_and_get(fake)
    assert proxy.seen == []


async def test_trust_env_false_ignores_the_environment(
    fake: FakeDevinServer, proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    await _create_and_get(fake, trust_env=False)
    assert proxy.seen == []


async def test_a_borrowed_session_keeps_its_own_proxy_settings(
    fake: FakeDevinServer, proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    async with aiohttp.ClientSession() as borrowed:  # trust_env off: no proxy
        await _create_and_get(fake, session=borrowed)
    assert proxy.seen == []


async def test_a_remote_proxy_never_sees_a_plain_http_request(
    fake: FakeDevinServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Through it the key would cross the network in clear: the loopback URL goes direct
    # (were the proxy used, its name would not resolve and every request would fail).
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    await _create_and_get(fake)


@pytest.fixture
def netrc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ~/.netrc with credentials for 127.0.0.1, found through NETRC and HOME."""
    path = tmp_path / ".netrc"
    path.write_text("machine 127.0.0.1\n  login netrc-user\n  password netrc-password\n")
    path.chmod(0o600)
    monkeypatch.setenv("NETRC", str(path))
    monkeypatch.setenv("HOME", str(tmp_path))
    return path


@pytest.mark.usefixtures("netrc")
async def test_netrc_neither_replaces_our_authorization_nor_authenticates_to_the_proxy(
    fake: FakeDevinServer, proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # aiohttp's own trust_env reads .netrc: its Basic credentials for the API host would
    # clash with the Bearer header (every request refused), and those for the proxy host
    # would go to the proxy.
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    await _create_and_get(fake)
    assert proxy.seen
    for _, _, headers in proxy.seen:
        assert headers["Authorization"] == f"Bearer {fake.api_key}"
        assert "Proxy-Authorization" not in headers


@pytest.mark.usefixtures("netrc")
async def test_netrc_is_not_read_without_a_proxy(fake: FakeDevinServer) -> None:
    await _create_and_get(fake)


def _settings(base_url: str, trust_env: bool = True) -> Settings:
    return Settings.read("cog_key", "org-1", base_url, 60, 2, 30, trust_env)


@pytest.mark.parametrize(
    ("env", "base_url", "expected"),
    [
        pytest.param({}, "https://api.devin.ai", None, id="no-proxy-set"),
        pytest.param(
            {"HTTPS_PROXY": "http://proxy.corp:3128"},
            "https://api.devin.ai",
            "http://proxy.corp:3128",
            id="https-base-through-a-remote-proxy",
        ),
        pytest.param(
            {"https_proxy": "http://proxy.corp:3128"},
            "https://api.devin.ai",
            "http://proxy.corp:3128",
            id="lower-case-name",
        ),
        pytest.param(
            {"HTTP_PROXY": "http://proxy.corp:3128"},
            "https://api.devin.ai",
            None,
            id="http-proxy-is-not-for-https",
        ),
        pytest.param(
            {"HTTPS_PROXY": "proxy.corp:3128"},
            "https://api.devin.ai",
            "http://proxy.corp:3128",
            id="host-and-port-without-a-scheme",
        ),
        pytest.param(
            {"HTTP_PROXY": "socks5://proxy.corp:1080"},
            "http://127.0.0.1:8000",
            None,
            id="plain-http-skips-a-remote-proxy-of-any-kind",
        ),
        pytest.param(
            {"HTTPS_PROXY": "http://proxy.corp:3128", "NO_PROXY": ".devin.ai"},
            "https://api.devin.ai",
            None,
            id="no-proxy-domain",
        ),
        pytest.param(
            {"HTTPS_PROXY": "http://proxy.corp:3128", "NO_PROXY": "*"},
            "https://api.devin.ai",
            None,
            id="no-proxy-star",
        ),
        pytest.param(
            {"HTTP_PROXY": "http://127.0.0.1:3128"},
            "http://127.0.0.1:8000",
            "http://127.0.0.1:3128",
            id="plain-http-through-a-loopback-proxy",
        ),
        pytest.param(
            {"HTTP_PROXY": "http://proxy.corp:3128"},
            "http://localhost:8000",
            None,
            id="plain-http-never-through-a-remote-proxy",
        ),
    ],
)
def test_env_proxy_chooses_like_requests_and_httpx(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], base_url: str, expected: str | None
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert env_proxy(base_url) == expected
    assert _settings(base_url).proxy == expected
    assert _settings(base_url, trust_env=False).proxy is None


@pytest.mark.parametrize(
    "value",
    [
        "socks5://user:s3cret-pw@proxy.corp:1080",
        "https://proxy.corp",
        "http://:3128",
    ],
)
def test_an_unusable_proxy_is_refused_without_showing_it(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", value)
    with pytest.raises(ConfigurationError, match="HTTPS_PROXY") as caught:
        DevinClient("cog_key", org_id="org-1")
    assert value not in str(caught.value)
    assert "proxy.corp" not in str(caught.value)
    assert DevinClient("cog_key", org_id="org-1", trust_env=False).base_url


def test_the_proxy_and_its_password_stay_out_of_the_settings_repr(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://user:proxy-s3cret@proxy.corp:3128")
    settings = _settings("https://api.devin.ai")
    assert settings.proxy == "http://user:proxy-s3cret@proxy.corp:3128"
    assert "proxy-s3cret" not in repr(settings)


def test_trust_env_must_be_a_bool() -> None:
    with pytest.raises(ConfigurationError, match="trust_env must be a bool"):
        DevinClient("cog_key", org_id="org-1", trust_env="no")  # type: ignore[arg-type]


async def test_a_proxy_password_never_shows_in_an_error(
    aiohttp_server: AiohttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy that refuses every CONNECT: aiohttp's error quotes the proxy URL.
    server = await aiohttp_server(web.Application())
    monkeypatch.setenv("HTTPS_PROXY", f"http://me:proxy-s3cret@127.0.0.1:{server.port}")
    async with DevinClient("cog_key", org_id="org-1", max_retries=0) as client:
        with pytest.raises(APIConnectionError) as caught:
            await client.get_session("devin-1")  # https: tunnelled, and refused
    assert f"127.0.0.1:{server.port}" in str(caught.value)
    assert "proxy-s3cret" not in f"{caught.value} {caught.value!r} {caught.value.__dict__}"
