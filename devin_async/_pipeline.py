"""The request pipeline: governor -> transport -> hooks -> decode -> retry policy.

Every request of a client goes through its one ``Sender``. ``attempt`` sends a request
once: it waits for the governor's turn, tells the hooks, sends it with the transport
and turns the response into data or an exception (``_protocol.decode``). ``call`` makes
one attempt and enters the retry policy (``_retry``) only when it failed; this is the
one place where "attempt once, then retry" is written.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from . import _convert, _protocol
from ._errors import APIConnectionError, APIStatusError, ClientClosedError, RateLimitError
from ._events import Hooks, RateLimitPaused, RequestSent, ResponseReceived, RetryScheduled
from ._limits import Governor
from ._retry import OnRetry, RetryPolicy, Sleep, retry_after_failure, retry_reason

__all__ = ["Load", "Sender"]

Load = Callable[[bytes], Any]
"""Turns a 2xx body into data, raising ``ResponseValidationError`` if it cannot."""


class Sender:
    """Sends the requests of one client.

    Args:
        transport: sends one request and returns its response.
        base_url: the URL that request paths are below (for error messages).
        governor: the client-wide rate limit and concurrency bound.
        hooks: told of each request, response, retry and rate-limit pause.
        policy: how failed requests are retried.
        sleep, clock: the client's injected time.
    """

    def __init__(
        self,
        transport: _protocol.Transport,
        base_url: str,
        *,
        governor: Governor,
        hooks: Hooks,
        policy: RetryPolicy,
        sleep: Sleep,
        clock: Callable[[], float],
    ) -> None:
        self.transport = transport
        self.governor = governor
        self.policy = policy
        self._base_url = base_url
        self._hooks = hooks
        self._sleep = sleep
        self._clock = clock
        self._closed = False

    @property
    def base_url(self) -> str:
        """The API's base URL requests are sent to (no trailing slash)."""
        return self._base_url

    @property
    def closed(self) -> bool:
        """True once ``aclose()`` started: nothing more is sent."""
        return self._closed

    async def aclose(self) -> None:
        """Refuse any further request and close the transport, if it can be closed."""
        if self._closed:
            return
        self._closed = True
        close = getattr(self.transport, "aclose", None)
        if close is not None:
            await close()

    async def attempt(self, request: _protocol.Request, load: Load = _convert.loads) -> Any:
        """Send ``request`` once and return its body ``load``ed (no retries).

        Raises:
            ClientClosedError: the client is closed.
            APIStatusError: a non-2xx response.
            APIConnectionError: no response.
            ResponseValidationError: ``load`` refused a 2xx body.
        """
        if self._closed:
            raise ClientClosedError("the DevinClient is closed; create a new one")
        governor, hooks = self.governor, self._hooks
        if not governor.try_acquire():
            await governor.acquire()
        observed = hooks.active
        if observed:  # after the governor let it through: it is really being sent now
            hooks.emit(RequestSent(request.method, request.path, request.session_id))
            started = time.monotonic()
        try:
            response = await self.transport.send(request)
        finally:
            governor.release()
        if observed:
            hooks.emit(
                ResponseReceived(
                    request.method,
                    request.path,
                    response.status,
                    time.monotonic() - started,
                    _protocol.request_id_of(response.headers),
                    request.session_id,
                )
            )
        if response.status != 429:
            governor.on_success()
        try:
            return _protocol.decode(request, response, self._base_url, load)
        except RateLimitError as error:
            self._rate_limited(error)
            raise

    async def call(self, request: _protocol.Request, load: Load = _convert.loads) -> Any:
        """Send ``request``, retried per the policy; return its body ``load``ed.

        Raises:
            DevinError: the last failure, once the policy gives up.
        """
        try:
            return await self.attempt(request, load)
        except (APIStatusError, APIConnectionError) as exc:
            first = exc
        return await retry_after_failure(
            first,
            lambda: self.attempt(request, load),
            idempotent=request.idempotent,
            policy=self.policy,
            sleep=self._sleep,
            what=f"{request.method} {request.path}",
            on_retry=self.retry_reporter(request),
        )

    def retry_reporter(self, request: _protocol.Request) -> OnRetry:
        """Return the callback that tells the hooks of each retry of ``request``."""

        def report(exc: BaseException, delay: float, attempt: int) -> None:
            if self._hooks.active:
                self._hooks.emit(
                    RetryScheduled(
                        request.method,
                        request.path,
                        retry_reason(exc, idempotent=True) or type(exc).__name__,
                        delay,
                        attempt,
                        getattr(exc, "request_id", None),
                        request.session_id,
                    )
                )

        return report

    def _rate_limited(self, error: RateLimitError) -> None:
        governor = self.governor
        paused_until = governor.paused_until
        governor.on_rate_limited(error.retry_after)
        if governor.paused_until > paused_until and self._hooks.active:
            seconds = governor.paused_until - self._clock()
            self._hooks.emit(RateLimitPaused(seconds, error.retry_after, governor.rate))
