"""What every request goes through around its route handler: the record, the rate limit and
``random_429``, injected faults, the credentials and org checks, and error rendering."""

from __future__ import annotations

import asyncio
import math
import random
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.typedefs import Handler

from .faults import _act_out, _Fault, _TokenBucket
from .sessions import RecordedRequest
from .validation import _BODY, _decode, _problem, _Reject

if TYPE_CHECKING:
    from .server import FakeDevinServer


class _Pipeline:
    """The middleware of a ``FakeDevinServer``: it records into and answers for ``server``.

    ``faults`` are the injected rules in order, ``handling`` the tasks still handling a
    request (counting those whose client hung up).
    """

    def __init__(self, server: FakeDevinServer, seed: int, rate_limit: float | None) -> None:
        self._server = server
        self._rng = random.Random(seed)
        self._bucket = None if rate_limit is None else _TokenBucket(rate_limit)
        self._request_count = 0
        self.faults: list[_Fault] = []
        self.handling: set[asyncio.Task[Any]] = set()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Record the request, answer it, and tag the answer with an ``x-request-id``."""
        task = asyncio.current_task()
        assert task is not None
        self.handling.add(task)
        try:
            return await self._record_and_respond(request, handler)
        finally:
            self.handling.discard(task)

    async def _record_and_respond(
        self, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        self._request_count += 1
        request_id = f"req-{self._request_count:06d}"
        route = request.match_info.route.name
        request[_BODY] = body = _decode(await request.read())
        self._server.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                route=route,
                query=tuple(request.query.items()),
                body=None if isinstance(body, ValueError) else body,
                headers=tuple(
                    (k, v) for k, v in request.headers.items() if k.lower() != "authorization"
                ),
                authorized=_bearer(request) == self._server.api_key,
            )
        )
        response = await self._respond(request, handler, route)
        response.headers["x-request-id"] = request_id
        self._server.statuses[route, response.status] += 1
        return response

    async def _respond(
        self, request: web.Request, handler: Handler, route: str | None
    ) -> web.StreamResponse:
        """Apply the rate limit and any fault around the real handling."""
        if self._bucket is not None and (wait := self._bucket.take()) > 0:
            retry_after = str(max(1, math.ceil(wait)))
            return _problem(429, "Rate limit exceeded", request.path, {"Retry-After": retry_after})
        quirks = self._server.quirks
        if quirks.random_429 and self._rng.random() < quirks.random_429:
            retry = quirks.random_429_retry_after
            headers = None if retry is None else {"Retry-After": retry}
            return _problem(429, "Rate limit exceeded", request.path, headers)
        fault = self._pick_fault(request.method, route)
        if fault is not None and fault.when == "before":
            early = await _act_out(fault, request, None)
            if early is not None:
                return early
        response = await self._handle(request, handler)
        if fault is not None and fault.when == "after":
            late = await _act_out(fault, request, response)
            return response if late is None else late
        return response

    async def _handle(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Check credentials and the org, run the route, and render errors."""
        try:
            token = _bearer(request)
            if token is not None and token in self._server.forbidden_keys:
                raise _Reject(403, "Service user lacks required permission")
            if token != self._server.api_key:
                raise _Reject(401, "Invalid or expired API key")
            org_id = request.match_info.get("org_id")
            if org_id is not None and org_id != self._server.org_id:
                raise _Reject(404, f"Organization {org_id} not found")
            return await handler(request)
        except _Reject as exc:
            return exc.response(request.path)
        except web.HTTPException as exc:  # unknown path or method
            return _problem(exc.status, exc.reason, request.path)

    def _pick_fault(self, method: str, route: str | None) -> _Fault | None:
        """Return the first matching rule that fires, using up one of its ``times``."""
        for fault in self.faults:
            if not fault.matches(method, route):
                continue
            if fault.rate is not None and self._rng.random() >= fault.rate:
                continue
            if fault.remaining is not None:
                fault.remaining -= 1
            return fault
        return None


def _bearer(request: web.Request) -> str | None:
    """Return the Bearer token of the request, or None."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None
