"""Downloads over real sockets against servers that redirect badly, loop, or overflow.

The API host and a second "storage" host are pytest-aiohttp servers on 127.0.0.1 (two
ports: two origins). Each records the Authorization header of every request it gets.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from devin_async import ResponseValidationError
from devin_async._multipart import FileSink
from devin_async._protocol import Request
from devin_async._transport import Transport

KEY = "Bearer cog_download_key"


class Hosts:
    """The API and storage servers, and the Authorization each request carried."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []
        self.api = ""
        self.storage = ""

    def recorded(self, handler: Callable[[web.Request], Any]) -> Callable[[web.Request], Any]:
        async def record(request: web.Request) -> Any:
            self.seen.append(
                (f"{request.host}{request.path}", request.headers.get("Authorization"))
            )
            return await handler(request)

        return record


@pytest.fixture
async def hosts(aiohttp_server: AiohttpServer) -> Hosts:
    found = Hosts()

    async def no_location(_: web.Request) -> web.Response:
        return web.Response(status=302)

    async def loop(_: web.Request) -> web.Response:
        raise web.HTTPFound("/v3/loop")

    async def to_storage(_: web.Request) -> web.Response:
        raise web.HTTPFound(found.storage + "/bounce")

    async def bounce_back(_: web.Request) -> web.Response:
        raise web.HTTPFound(found.api + "/v3/file")

    async def file(_: web.Request) -> web.Response:
        return web.Response(body=b"the file")

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(64):
            await response.write(b"x" * 1024)
        await response.write_eof()
        return response

    api = web.Application()
    for path, handler in [
        ("/v3/no-location", no_location),
        ("/v3/loop", loop),
        ("/v3/to-storage", to_storage),
        ("/v3/file", file),
        ("/v3/chunked", chunked),
    ]:
        api.router.add_get(path, found.recorded(handler))
    storage = web.Application()
    storage.router.add_get("/bounce", found.recorded(bounce_back))
    api_server = await aiohttp_server(api)
    storage_server = await aiohttp_server(storage)
    found.api = f"http://{api_server.host}:{api_server.port}"
    found.storage = f"http://{storage_server.host}:{storage_server.port}"
    return found


@pytest.fixture(params=["owned", "borrowed"])
async def transport(request: pytest.FixtureRequest, hosts: Hosts) -> AsyncIterator[Transport]:
    headers = {"Authorization": KEY, "Accept": "application/json"}
    if request.param == "owned":
        owned = Transport(hosts.api, headers, 5.0)
        yield owned
        await owned.aclose()
        return
    async with aiohttp.ClientSession() as session:
        borrowed = Transport(hosts.api, headers, 5.0, session=session)
        yield borrowed
        await borrowed.aclose()


def _download(path: str, sink: FileSink) -> Request:
    return Request("GET", path, sink=sink)


async def test_a_redirect_without_a_location_is_refused(hosts: Hosts, transport: Transport) -> None:
    with pytest.raises(ResponseValidationError, match="302 redirect without a Location"):
        await transport.send(_download("/v3/no-location", FileSink(io.BytesIO())))


async def test_a_redirect_loop_ends_after_five_redirects(
    hosts: Hosts, transport: Transport
) -> None:
    with pytest.raises(ResponseValidationError, match="more than 5 redirects"):
        await transport.send(_download("/v3/loop", FileSink(io.BytesIO())))
    assert len(hosts.seen) == 6
    assert {auth for _, auth in hosts.seen} == {KEY}  # the same origin throughout


async def test_after_another_host_the_key_is_not_sent_even_back_home(
    hosts: Hosts, transport: Transport
) -> None:
    out = io.BytesIO()
    response = await transport.send(_download("/v3/to-storage", FileSink(out)))
    assert (response.status, out.getvalue()) == (200, b"the file")
    assert [auth for _, auth in hosts.seen] == [KEY, None, None]


async def test_a_chunked_body_over_the_limit_is_cut_off(hosts: Hosts, transport: Transport) -> None:
    out = io.BytesIO()
    with pytest.raises(ResponseValidationError, match="exceeds 1000 bytes"):
        await transport.send(_download("/v3/chunked", FileSink(out, max_bytes=1000)))
    assert len(out.getvalue()) <= 1000


async def test_a_failing_sink_raises_its_own_error(hosts: Hosts, transport: Transport) -> None:
    class Full(io.BytesIO):
        def write(self, chunk: Any, /) -> int:
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left") as caught:
        await transport.send(_download("/v3/file", FileSink(Full())))
    assert caught.type is OSError
    assert caught.value.__cause__ is None
