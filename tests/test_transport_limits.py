"""The transport's maximum response size, over real sockets (pytest-aiohttp servers).

A body is refused from its Content-Length when that is too large, and otherwise after at
most ``limit + 1`` bytes of it have been read: chunked bodies, compressed bodies (which
inflate as they are read) and error bodies alike. The refusal never quotes the body.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from devin_async import ConfigurationError, DevinClient, ResponseValidationError
from devin_async._protocol import Request
from devin_async._transport import MAX_RESPONSE_BYTES, Transport

LIMIT = 1000
HEADERS = {"Authorization": "Bearer cog_test_key", "Accept": "application/json"}
GET = Request("GET", "/body")
MARKER = b"body-marker-7f3a"  # must never appear in an error message

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def serve(aiohttp_server: AiohttpServer) -> Callable[[Handler], Awaitable[str]]:
    """Return a starter: it serves a handler at GET /body (and JSON at GET /ok), gives the URL."""

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_get("/body", handler)
        app.router.add_get("/ok", ok)
        server = await aiohttp_server(app)
        return f"http://{server.host}:{server.port}"

    return start


@pytest.fixture
async def limited() -> AsyncIterator[Callable[[str], Transport]]:
    made: list[Transport] = []

    def make(base_url: str) -> Transport:
        transport = Transport(base_url, HEADERS, 5.0, max_response_bytes=LIMIT)
        made.append(transport)
        return transport

    yield make
    for transport in made:
        await transport.aclose()


def fixed(body: bytes, status: int = 200) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, status=status, content_type="application/json")

    return handler


def chunked(body: bytes, piece: int = 97) -> Handler:
    """Send ``body`` with chunked transfer encoding (no Content-Length), in small pieces."""

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for start in range(0, len(body), piece):
            await resp.write(body[start : start + piece])
        await resp.write_eof()
        return resp

    return handler


def gzipped(body: bytes) -> Handler:
    """Send ``body`` gzip-compressed, with the compressed size as Content-Length."""

    async def handler(request: web.Request) -> web.Response:
        return web.Response(
            body=gzip.compress(body),
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )

    return handler


# ------------------------------------------------------------------ accepted up to the limit


@pytest.mark.parametrize(
    "make_handler",
    [fixed, chunked, gzipped],
    ids=["content-length", "chunked", "gzip"],
)
@pytest.mark.parametrize("size", [0, 1, LIMIT - 1, LIMIT], ids=lambda n: f"{n}-bytes")
async def test_a_body_up_to_the_limit_is_read_whole(
    serve: Callable[[Handler], Awaitable[str]],
    limited: Callable[[str], Transport],
    make_handler: Callable[[bytes], Handler],
    size: int,
) -> None:
    body = (MARKER * (size // len(MARKER) + 1))[:size]
    transport = limited(await serve(make_handler(body)))
    response = await transport.send(GET)
    assert response.status == 200
    assert response.body == body


# ------------------------------------------------------------------ refused beyond it


@pytest.mark.parametrize(
    "make_handler",
    [fixed, chunked, gzipped],
    ids=["content-length", "chunked", "gzip"],
)
@pytest.mark.parametrize("status", [200, 404, 503])
async def test_one_byte_over_the_limit_is_refused_without_quoting_the_body(
    serve: Callable[[Handler], Awaitable[str]],
    limited: Callable[[str], Transport],
    make_handler: Callable[[bytes], Handler],
    status: int,
) -> None:
    body = (MARKER * (LIMIT // len(MARKER) + 2))[: LIMIT + 1]
    handler = fixed(body, status) if make_handler is fixed else make_handler(body)
    transport = limited(await serve(handler))
    with pytest.raises(ResponseValidationError, match=f"exceeds {LIMIT} bytes") as info:
        await transport.send(GET)
    assert info.value.body == ""
    assert MARKER.decode() not in str(info.value)
    # The connection with the unread rest was dropped: the next request gets its own answer.
    assert (await transport.send(Request("GET", "/ok"))).body == b'{"ok": true}'


async def test_too_large_content_length_is_refused_before_reading_the_body(
    serve: Callable[[Handler], Awaitable[str]], limited: Callable[[str], Transport]
) -> None:
    # The server promises 10 GB, sends ten bytes and then waits: reading would hang until
    # the 5 s transport timeout, so an answer within 2 s shows the body was never read.
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.content_length = 10_000_000_000
        await resp.prepare(request)
        await resp.write(b"0123456789")
        await release.wait()
        return resp

    transport = limited(await serve(handler))
    try:
        async with asyncio.timeout(2):
            with pytest.raises(ResponseValidationError, match=r"exceeds 1000 bytes \(HTTP 200\)"):
                await transport.send(GET)
    finally:
        release.set()


async def test_an_endless_chunked_body_is_not_read_to_its_end(
    serve: Callable[[Handler], Awaitable[str]], limited: Callable[[str], Transport]
) -> None:
    # A few bytes alone first (so the client's first read is short and it must go on
    # reading), then up to 64 MiB in 64 KiB chunks. The client stops after LIMIT + 1
    # bytes and drops the connection, so the server's writes fail long before the end.
    chunk, offered = b"x" * 65536, 1024
    written: list[int] = []
    done = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        count = 0
        try:
            await resp.write(b"[1,")
            await asyncio.sleep(0.05)
            for _ in range(offered):
                await resp.write(chunk)
                count += 1
        except (ConnectionError, RuntimeError):  # the client went away
            pass
        finally:
            written.append(count)
            done.set()
        return resp

    transport = limited(await serve(handler))
    async with asyncio.timeout(10):
        with pytest.raises(ResponseValidationError, match="exceeds"):
            await transport.send(GET)
        await done.wait()
    assert written[0] < offered


async def test_a_compression_bomb_is_refused(
    serve: Callable[[Handler], Awaitable[str]], limited: Callable[[str], Transport]
) -> None:
    bomb = b"0" * (LIMIT * 1000)  # ~1 MB that gzips to ~1 KB
    assert len(gzip.compress(bomb)) < 2 * LIMIT
    transport = limited(await serve(gzipped(bomb)))
    with pytest.raises(ResponseValidationError, match="exceeds"):
        await transport.send(GET)


# ------------------------------------------------------------------ the default, end to end


async def test_the_client_refuses_a_body_over_the_default_limit(
    aiohttp_server: AiohttpServer,
) -> None:
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.content_length = MAX_RESPONSE_BYTES + 1
        await resp.prepare(request)
        await release.wait()
        return resp

    app = web.Application()
    app.router.add_get("/v3/organizations/org-1/sessions/devin-1", handler)
    server = await aiohttp_server(app)
    base_url = f"http://{server.host}:{server.port}"
    try:
        async with DevinClient("cog_test_key", org_id="org-1", base_url=base_url) as client:
            async with asyncio.timeout(2):
                with pytest.raises(ResponseValidationError, match=f"exceeds {MAX_RESPONSE_BYTES}"):
                    await client.get_session("devin-1")
    finally:
        release.set()


@pytest.mark.parametrize("limit", [0, -1, True], ids=["zero", "negative", "bool"])
def test_the_limit_must_be_a_positive_integer(limit: int) -> None:
    with pytest.raises(ConfigurationError, match="max_response_bytes"):
        Transport("http://127.0.0.1:1", HEADERS, 5.0, max_response_bytes=limit)
