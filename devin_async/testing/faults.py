"""Injected faults (``FakeDevinServer.inject``) and the server-wide token bucket."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection
from typing import Literal

import attrs
from aiohttp import web

from .validation import _problem

__all__ = ["FaultKind"]

FaultKind = Literal["status", "rate_limit", "slow", "drop", "malformed"]
_FAULT_KINDS = frozenset({"status", "rate_limit", "slow", "drop", "malformed"})
_MALFORMED_BODY = '{"session_id": '


@attrs.define
class _Fault:
    """One injected fault rule; ``remaining`` None means unbounded."""

    kind: FaultKind
    remaining: int | None
    rate: float | None
    method: str | None
    route: str | None
    status: int
    retry_after: str | None
    delay: float
    when: Literal["before", "after"]
    gate: asyncio.Event | None
    should_retry: bool | None = None

    def matches(self, method: str, route: str | None) -> bool:
        """Tell whether this rule still applies to a request."""
        return self.remaining != 0 and self.method in (None, method) and self.route in (None, route)


@attrs.define
class _TokenBucket:
    """Server-wide request rate limit: ``rate`` per second, in bursts of up to ``rate``."""

    rate: float
    capacity: float = attrs.field(init=False)
    tokens: float = attrs.field(init=False)
    stamp: float = attrs.field(init=False, factory=time.monotonic)

    def __attrs_post_init__(self) -> None:
        self.capacity = self.tokens = max(1.0, self.rate)

    def take(self) -> float:
        """Take one token; return 0.0, or the seconds until one is available."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


def _new_fault(
    kind: FaultKind,
    *,
    times: int | None,
    rate: float | None,
    method: str | None,
    route: str | None,
    status: int,
    retry_after: str | None,
    delay: float,
    when: Literal["before", "after"],
    gate: asyncio.Event | None,
    route_names: Collection[str],
    should_retry: bool | None = None,
) -> _Fault:
    """Check the arguments of ``FakeDevinServer.inject`` and build its rule."""
    if kind not in _FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}")
    if should_retry is not None and kind not in ("status", "rate_limit"):
        raise ValueError(f"should_retry is a header of an answer: a {kind!r} fault sends none")
    if route is not None and route not in route_names:
        raise ValueError(f"unknown route {route!r}; known: {sorted(route_names)}")
    if kind == "rate_limit":
        kind, status = "status", 429
    if when not in ("before", "after"):
        raise ValueError(f"when must be 'before' or 'after', not {when!r}")
    if rate is not None and not 0.0 <= rate <= 1.0:
        raise ValueError("rate must be a probability between 0 and 1")
    method = None if method is None else method.upper()
    return _Fault(
        kind, times, rate, method, route, status, retry_after, delay, when, gate, should_retry
    )


async def _act_out(
    fault: _Fault, request: web.Request, response: web.StreamResponse | None
) -> web.StreamResponse | None:
    """Perform ``fault``; return what to answer, or None to go on handling."""
    if fault.kind == "slow":
        await (fault.gate.wait() if fault.gate is not None else asyncio.sleep(fault.delay))
        return response
    if fault.kind == "drop":
        if request.transport is not None:
            request.transport.close()
        # aiohttp cannot send this on the closed transport and drops it quietly.
        return web.Response()
    if fault.kind == "malformed":
        return web.Response(text=_MALFORMED_BODY, content_type="application/json")
    headers = {}
    if fault.status == 429 and fault.retry_after is not None:
        headers["Retry-After"] = fault.retry_after
    if fault.should_retry is not None:
        headers["x-should-retry"] = "true" if fault.should_retry else "false"
    return _problem(fault.status, "Injected fault", request.path, headers or None)
