"""The aiohttp transport: send one Request, return one Response.

The client's only module that imports aiohttp (the testing kit's server is the other
one); it implements ``_protocol.Transport``, the seam ``DevinClient(transport=...)``
replaces.

aiohttp and socket errors are translated here into ``APIConnectionError`` /
``APITimeoutError``; ``request_sent`` tells the retry policy whether the server could
have seen the request. Redirects are not followed, so the Authorization header can
never be forwarded to another host. TLS verification is aiohttp's default and is never
turned off. A response body larger than ``max_response_bytes`` is refused with
``ResponseValidationError`` without being read to the end, so a broken or hostile
server cannot make the client hold an unbounded body in memory.

An owned ClientSession belongs to the event loop it was created in. It is closed when
that loop finalizes its async generators (the end of ``asyncio.run``) even without
``aclose()``, and a use from any other loop is refused with ``ClientClosedError``
instead of aiohttp's "Event loop is closed" and unclosed-connector warnings.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import platform
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from urllib.parse import urlsplit

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

from ._errors import (
    APIConnectionError,
    APITimeoutError,
    ClientClosedError,
    ConfigurationError,
    ResponseValidationError,
)
from ._multipart import CHUNK, Sink, Upload
from ._protocol import Request, Response, redirect_target, same_origin

__all__ = ["MAX_RESPONSE_BYTES", "Transport", "user_agent"]

# Far above a list page of 200 full sessions, with room for large structured outputs,
# while still bounding what one response can make us hold.
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
# How much of a foreign error's message ours quotes (a parser's can quote a whole line).
_DESCRIPTION = 300


_MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class _SinkFailed(Exception):
    """Writing a download failed: the caller's OSError, raised as itself, not as ours."""

    def __init__(self, error: OSError) -> None:
        super().__init__()
        self.error = error


def user_agent(version: str) -> str:
    """Return the User-Agent sent with every request."""
    return f"devin-async/{version} aiohttp/{aiohttp.__version__} python/{platform.python_version()}"


_OTHER_LOOP = (
    "this DevinClient is bound to the event loop it first ran in, and that loop {state}; "
    "create one DevinClient per asyncio.run (or use `async with DevinClient() as client:` "
    "inside it)"
)


async def _close_with_its_loop(session: aiohttp.ClientSession) -> AsyncGenerator[None, None]:
    """Close ``session`` when this generator is closed.

    Started once in the loop that owns the session, the generator is registered with
    that loop (``sys.set_asyncgen_hooks``), which closes it, and so the session, when it
    shuts down its async generators: ``asyncio.run`` does at its end. That closes the
    pooled connections while their loop still runs, so nothing warns about them later.
    """
    try:
        yield
    finally:
        await session.close()


def _secrets(headers: Mapping[str, str], proxy: str | None = None) -> tuple[str, ...]:
    """The Authorization value and its credential, and the userinfo and password of the
    proxy URL (which aiohttp's proxy errors quote), longest first (replaced in that order).
    """
    found: set[str] = set()
    userinfo = urlsplit(proxy).netloc.rpartition("@")[0] if proxy else ""
    found.update(filter(None, (userinfo, userinfo.partition(":")[2])))
    for name, value in headers.items():
        if name.lower() == "authorization" and value:
            found.add(value)
            credential = value.partition(" ")[2].strip()
            if credential:
                found.add(credential)
    return tuple(sorted(found, key=len, reverse=True))


def _too_large(resp: aiohttp.ClientResponse, limit: int) -> ResponseValidationError:
    # Closed at once: the connection with the unread rest of the body is never reused.
    resp.close()
    # The status says which answer it was; the body is never quoted.
    return ResponseValidationError(
        f"response body exceeds {limit} bytes (HTTP {resp.status})", body=""
    )


async def _read_body(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """Read the body of ``resp``, refusing one of more than ``limit`` bytes.

    Never asks the stream for more than ``limit + 1`` bytes, so a body is refused
    after at most that much of it was read, whatever the server sends: chunked,
    compressed (inflated as it is read, so larger than its Content-Length) or lying
    about its length. A Content-Length above the limit is refused before any read.

    Raises:
        ResponseValidationError: the body is larger than ``limit`` bytes.
    """
    length = resp.content_length
    if length is not None and length > limit:
        raise _too_large(resp, limit)
    content = resp.content
    # A small body is usually all buffered by now: this one read returns it, and is
    # cheaper than resp.read(), which loops and joins.
    chunk = await content.read(limit + 1)
    if content.at_eof() and len(chunk) <= limit:
        return chunk
    chunks = [chunk]
    size = len(chunk)
    while chunk:
        if size > limit:
            raise _too_large(resp, limit)
        chunk = await content.read(limit + 1 - size)
        size += len(chunk)
        chunks.append(chunk)
    return b"".join(chunks)


class Transport:
    """Sends requests over one aiohttp.ClientSession, owned or borrowed.

    Args:
        base_url: scheme and host, no trailing slash.
        headers: sent with every request (Authorization included; never logged).
        timeout: per-request timeout, seconds.
        session: a ClientSession to borrow; it is never closed here.
        max_connections: connection pool size of an owned session.
        max_response_bytes: the largest response body accepted, in bytes (after
            decompression); a larger one raises ResponseValidationError.
        proxy: the http:// proxy URL of an owned session (None: direct); a borrowed
            session keeps its own.

    Raises:
        ConfigurationError: ``max_response_bytes`` is not a positive integer.
    """

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        timeout: float,
        session: aiohttp.ClientSession | None = None,
        max_connections: int = 100,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        proxy: str | None = None,
    ) -> None:
        if session is not None and not isinstance(session, aiohttp.ClientSession):
            raise ConfigurationError(
                f"session must be an aiohttp.ClientSession, not {type(session).__name__}"
            )
        if isinstance(max_response_bytes, bool) or max_response_bytes < 1:
            raise ConfigurationError(
                f"max_response_bytes must be a positive integer, got {max_response_bytes!r}"
            )
        self._base_url = base_url
        # Built once as multidicts: aiohttp converts any other mapping on every request.
        every = CIMultiDictProxy(CIMultiDict(headers))
        # An owned session carries the client's headers as its defaults, which aiohttp
        # copies in C; headers given with a request it merges in Python, every time. Not
        # through a proxy: aiohttp adds the defaults to the proxy's headers too, and sends
        # an Authorization among them to the proxy as Proxy-Authorization. A borrowed
        # session's defaults are its owner's. Either way, every request carries them.
        self._defaults = every if session is None and proxy is None else None
        self._sent = every if self._defaults is None else CIMultiDictProxy(CIMultiDict[str]())
        self._json_headers = CIMultiDictProxy(
            CIMultiDict({**self._sent, "Content-Type": "application/json"})
        )
        self._plain_headers = CIMultiDictProxy(
            CIMultiDict((k, v) for k, v in headers.items() if k.lower() != "authorization")
        )
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        # Header values that no error message may quote (a foreign error could echo one).
        self._secrets = _secrets(headers, proxy)
        self._session = session
        self._owned = session is None
        self._max_connections = max_connections
        self._max_response_bytes = max_response_bytes
        self._proxy = proxy
        self._closed = False
        # The loop of the first use, and the closer of an owned session (see above).
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closer: AsyncGenerator[None, None] | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    async def _usable_session(self) -> aiohttp.ClientSession:
        """The session to send with, created on first use; else why there is none.

        Raises:
            ClientClosedError: the transport was closed, its borrowed session was closed
                by its owner, or this is not the event loop it first ran in.
        """
        if self._closed:
            raise ClientClosedError("the DevinClient is closed; create a new one")
        loop = asyncio.get_running_loop()
        first = self._loop
        if first is not None and first is not loop:
            if first.is_closed():
                await self._drop_session()
                raise ClientClosedError(_OTHER_LOOP.format(state="is closed"))
            raise ClientClosedError(_OTHER_LOOP.format(state="is another one"))
        session = self._session
        if session is None:
            # Created lazily, inside the running loop, on first use.
            connector = aiohttp.TCPConnector(limit=self._max_connections)
            # aiohttp's trust_env stays off: it would also read ~/.netrc, whose Basic
            # credentials clash with our Authorization header. The proxy comes from
            # _settings.env_proxy, chosen once for the base URL.
            session = self._session = aiohttp.ClientSession(
                connector=connector, proxy=self._proxy, headers=self._defaults
            )
            self._loop = loop
            self._closer = _close_with_its_loop(session)
            await self._closer.asend(None)
            return session
        if session.closed:
            if self._owned:
                raise ClientClosedError(
                    "the DevinClient's aiohttp session was closed when its event loop shut "
                    "down; create a new DevinClient"
                )
            raise ClientClosedError(
                "the borrowed aiohttp.ClientSession was closed by its owner; keep it open "
                "until the DevinClient is closed"
            )
        self._loop = loop
        return session

    async def _drop_session(self) -> None:
        """Close the owned session, if its loop is this one or is closed."""
        closer, self._closer = self._closer, None
        self._session = None
        if closer is not None:
            # After asyncio.run the closer already ran; otherwise, with the loop closed,
            # aiohttp's connector drops its connections without touching that loop.
            await closer.aclose()

    async def send(self, request: Request) -> Response:
        """Send one request and read the whole response.

        Args:
            request: what to send.

        Raises:
            APIConnectionError: no response (``request_sent`` False if never sent).
            APITimeoutError: the timeout passed first.
            ClientClosedError: the transport was closed, its borrowed session was closed
                by its owner, or this is not the event loop it first ran in.
            ResponseValidationError: the body is larger than ``max_response_bytes``.
        """
        session = self._session
        if session is None or self._loop is not asyncio.get_running_loop() or session.closed:
            session = await self._usable_session()
        url = self._base_url + request.path
        client_timeout = self._timeout
        if request.timeout is not None and request.timeout < (client_timeout.total or math.inf):
            client_timeout = aiohttp.ClientTimeout(total=request.timeout)
        # Every error is built inside its handler but raised after the try statement:
        # aiohttp's exceptions keep the request's headers (the Authorization header),
        # so none of them may become the __cause__ or __context__ of ours.
        data: object = request.body
        headers = self._sent if request.body is None else self._json_headers
        if request.upload is not None:
            data, headers = self._upload_body(request.upload)
        try:
            if request.sink is not None:
                return await self._stream(session, request, url, client_timeout)
            async with session.request(
                request.method,
                url,
                params=request.query or None,
                data=data,
                headers=headers,
                timeout=client_timeout,
                allow_redirects=False,
            ) as resp:
                body = await _read_body(resp, self._max_response_bytes)
                return Response(resp.status, resp.headers, body)
        except _SinkFailed as failed:
            raise failed.error from None
        except aiohttp.ConnectionTimeoutError:
            error: APIConnectionError = APITimeoutError(
                f"timed out connecting for {request.method} {url}",
                method=request.method,
                url=url,
                request_sent=False,
            )
        except TimeoutError:
            error = APITimeoutError(
                f"{request.method} {url} timed out after {client_timeout.total}s",
                method=request.method,
                url=url,
                request_sent=True,
            )
        except aiohttp.ClientConnectorError as exc:
            # Failed before a connection existed: nothing was sent.
            error = APIConnectionError(
                f"cannot connect for {request.method} {url}: {self._describe(exc.os_error)}",
                method=request.method,
                url=url,
                request_sent=False,
            )
        except (aiohttp.ClientError, OSError, RuntimeError) as exc:
            error = APIConnectionError(
                f"{request.method} {url} failed: {self._describe(exc)}",
                method=request.method,
                url=url,
                request_sent=True,
            )
        except ValueError as exc:
            # aiohttp refused a value before writing the request (a header value with a
            # control character): its message may quote the value, so only its type.
            error = APIConnectionError(
                f"{request.method} {url} was not sent: {type(exc).__name__} "
                "(aiohttp refused a request value; the value is not shown)",
                method=request.method,
                url=url,
                request_sent=False,
            )
        raise error

    async def _stream(
        self,
        session: aiohttp.ClientSession,
        request: Request,
        url: str,
        timeout: aiohttp.ClientTimeout,
    ) -> Response:
        """GET ``url`` into ``request.sink``, following redirects the protocol allows.

        Credentials go only to the base URL's origin: a redirect to another host (a
        presigned storage URL) is followed without the Authorization header, through a
        session on the same connections without the owned session's default headers.
        """
        sink = request.sink
        assert sink is not None
        headers = self._sent
        async with contextlib.AsyncExitStack() as elsewhere:
            for _ in range(_MAX_REDIRECTS + 1):
                async with session.get(
                    url, headers=headers, timeout=timeout, allow_redirects=False
                ) as resp:
                    if resp.status not in _REDIRECTS:
                        return await self._into_sink(resp, sink)
                    location = resp.headers.get("Location")
                    resp.close()
                if not location:
                    raise ResponseValidationError(
                        f"HTTP {resp.status} redirect without a Location", body=""
                    )
                url = redirect_target(url, location)
                if headers is not self._plain_headers and not same_origin(url, self._base_url):
                    headers = self._plain_headers
                    if self._defaults is not None:  # they would go to the other host
                        session = await elsewhere.enter_async_context(
                            aiohttp.ClientSession(
                                connector=session.connector,
                                connector_owner=False,
                                proxy=self._proxy,
                            )
                        )
        raise ResponseValidationError(f"more than {_MAX_REDIRECTS} redirects", body="")

    async def _into_sink(self, resp: aiohttp.ClientResponse, sink: Sink) -> Response:
        """The last answer of a download: a 2xx body written to ``sink``, any other read."""
        if not 200 <= resp.status < 300:
            body = await _read_body(resp, self._max_response_bytes)
            return Response(resp.status, resp.headers, body)
        length = resp.content_length
        if length is not None and length > sink.max_bytes:
            raise _too_large(resp, sink.max_bytes)
        sink.begin()
        size = 0
        async for chunk in resp.content.iter_chunked(CHUNK):
            size += len(chunk)
            if size > sink.max_bytes:
                raise _too_large(resp, sink.max_bytes)
            try:
                sink.write(chunk)
            except OSError as exc:
                raise _SinkFailed(exc) from None
        return Response(resp.status, resp.headers, b"")

    def _upload_body(self, upload: Upload) -> tuple[object, CIMultiDictProxy[str]]:
        """A body that reads ``upload`` from its start, chunk by chunk, and its headers."""

        async def chunks() -> AsyncIterator[bytes]:
            for chunk in upload.chunks():
                yield chunk

        headers = CIMultiDict(self._sent)
        headers["Content-Type"] = upload.media_type
        headers["Content-Length"] = str(upload.length)
        return chunks(), CIMultiDictProxy(headers)

    def _describe(self, exc: BaseException) -> str:
        """The type and message of a foreign error, without any header value we send."""
        text = str(exc)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        if len(text) > _DESCRIPTION:
            text = text[:_DESCRIPTION] + "..."
        return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

    async def aclose(self) -> None:
        """Close the owned ClientSession; a borrowed one is left open."""
        if self._closed:
            return
        self._closed = True
        first = self._loop
        if first is None or first is asyncio.get_running_loop() or first.is_closed():
            await self._drop_session()
        # Else its loop runs elsewhere: the closer closes the session there when that
        # loop ends (or when the closer is collected); it cannot be closed from here.
        self._session = None
