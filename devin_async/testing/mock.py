"""``MockTransport``: script a client's answers without sockets (like httpx's).

``DevinClient(api_key="test", transport=MockTransport(handler))`` sends every request to
``handler``, which returns the ``Response`` to give back (``mock_response`` builds one)
or raises ``APIConnectionError``/``APITimeoutError`` to play a request with no answer.
The client's whole pipeline still runs: the rate governor, hooks, decoding, the retry
policy and the waiting engine.
"""

from __future__ import annotations

import inspect
import json as _json
from collections.abc import Awaitable, Callable, Mapping

from multidict import CIMultiDict, CIMultiDictProxy

from .._errors import ClientClosedError
from .._protocol import Request, Response

__all__ = ["Handler", "MockTransport", "mock_response"]

Handler = Callable[[Request], Response | Awaitable[Response]]
"""Answers one request: a function or a coroutine function."""

_NO_JSON = object()


def mock_response(
    status: int = 200,
    json: object = _NO_JSON,
    *,
    content: bytes = b"",
    headers: Mapping[str, str] | None = None,
) -> Response:
    """Build a response: ``json`` encoded as the body, else ``content`` as it is.

    Header names are looked up case-insensitively, as from a real server.
    """
    body = content if json is _NO_JSON else _json.dumps(json).encode()
    return Response(status, CIMultiDictProxy(CIMultiDict(headers or {})), body)


class MockTransport:
    """A transport that answers each request with ``handler(request)``.

    Attributes:
        requests: every request sent, in order.
    """

    def __init__(self, handler: Handler) -> None:
        if not callable(handler):
            raise TypeError(f"handler must be callable, not {type(handler).__name__}")
        self.requests: list[Request] = []
        self.closed = False
        self._handler = handler

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        return f"<MockTransport {len(self.requests)} requests{state}>"

    async def send(self, request: Request, /) -> Response:
        """Record ``request`` and return the handler's answer.

        Raises:
            ClientClosedError: the transport was closed.
            TypeError: the handler answered something other than a Response.
        """
        if self.closed:
            raise ClientClosedError("the MockTransport is closed")
        self.requests.append(request)
        answer = self._handler(request)
        if inspect.isawaitable(answer):
            answer = await answer
        if not isinstance(answer, Response):
            raise TypeError(f"the handler must return a Response, not {type(answer).__name__}")
        headers = answer.headers
        if not isinstance(headers, CIMultiDict | CIMultiDictProxy):
            answer = answer._replace(headers=CIMultiDictProxy(CIMultiDict(headers)))
        return answer

    async def aclose(self) -> None:
        """Refuse further requests (the client calls it when it is closed)."""
        self.closed = True
