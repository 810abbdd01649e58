"""Fan-out on anyio: watch one session, await many, start many.

Nothing here creates a task per waited session: waits are futures of the client's
``Poller``, and their results travel through an anyio memory stream. Each iterator
unsubscribes its waits when it ends, when it is closed, when a cancel (or any other
error) escapes one of its steps, or when it is garbage collected, so an abandoned or
cancelled loop never keeps the poller running.
"""

from __future__ import annotations

import abc
import contextlib
import functools
import math
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

import anyio
import attrs
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._errors import AwaitTimeoutError, DevinError
from ._models import CreateSessionRequest, Session
from ._poller import Poller, Waiter
from ._polling import Predicate
from ._protocol import check_count

__all__ = ["SessionResult", "SessionWaits", "SessionWatch", "create_many"]

_P = TypeVar("_P")
_T = TypeVar("_T")
_S = TypeVar("_S", bound="_Subscription")

Stream = MemoryObjectSendStream[object]
# Told when one wait ends: the waiter, the outcome ("settled", "timeout", "error"), seconds.
OnFinish = Callable[[Waiter, str, float], object]


@attrs.frozen
class SessionResult:
    """The outcome of one item of a fan-out: its session, or the error that ended it.

    Attributes:
        session_id: the session's id (None for a create that failed).
        session: the settled (or created) session, when it succeeded.
        error: the failure, when it did not.
    """

    session_id: str | None
    session: Session | None = None
    error: DevinError | None = None

    @property
    def ok(self) -> bool:
        """True when there is a session and no error."""
        return self.error is None

    def unwrap(self) -> Session:
        """Return the session, or raise the error."""
        if self.error is not None:
            raise self.error
        assert self.session is not None
        return self.session


_END = object()


def _post(send: Stream, item: object, *_: object) -> None:
    """Put ``item`` on the stream unless the iterator was closed meanwhile."""
    with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
        send.send_nowait(item)


def _settled(poller: Poller, waiter: Waiter, send: Stream, index: int, *_: object) -> None:
    poller.unsubscribe(waiter)  # a settled session is not polled again
    _post(send, index)


def _release(
    poller: Poller,
    waiters: list[Waiter],
    send: Stream,
    receive: MemoryObjectReceiveStream[object],
) -> None:
    for waiter in waiters:
        poller.unsubscribe(waiter)
        future = waiter.future
        if future.done() and not future.cancelled():
            future.exception()  # retrieved: never logged as "exception was never retrieved"
        else:
            future.cancel()
    send.close()
    receive.close()


def _releasing(step: Callable[[_S], Awaitable[_T]]) -> Callable[[_S], Coroutine[Any, Any, _T]]:
    """Make anything but the end of iteration escaping ``step`` release every wait.

    A cancel (or any other BaseException) raised inside a step closes the iterator at
    once, as ``close()`` does, and goes on unchanged: a loop without ``async with`` that
    is cancelled stops the poller without waiting for the garbage collector, the way a
    cancelled async generator is closed.
    """

    @functools.wraps(step)
    async def guarded(self: _S) -> _T:
        try:
            return await step(self)
        except StopAsyncIteration:
            raise
        except BaseException:
            self.close()
            raise

    return guarded


class _Subscription(abc.ABC):
    """Waits held on behalf of an iterator, with one deadline and one result stream.

    Callbacks reach the stream, never the iterator, so an abandoned iterator is freed
    (and its waits released) as soon as nothing refers to it.
    """

    def __init__(self, poller: Poller, timeout: float, on_finish: OnFinish | None) -> None:
        self._poller = poller
        self._timeout = timeout
        self._on_finish = on_finish
        self._start = 0.0
        self._waiters: list[Waiter] = []
        self._send, self._receive = anyio.create_memory_object_stream[object](math.inf)
        self._release = weakref.finalize(
            self, _release, poller, self._waiters, self._send, self._receive
        )

    @abc.abstractmethod
    def _begin(self) -> None:
        """Subscribe the waits (inside the running loop, on first use)."""

    async def _next(self) -> object:
        """Receive the next item, raising TimeoutError at the deadline."""
        if not self._start:
            self._start = anyio.current_time()
            self._begin()
        remaining = self._start + self._timeout - anyio.current_time()
        if remaining > 0:
            # Results arrive in bursts (a tick settles many sessions at once): take the
            # ones already queued without paying for a cancel scope each.
            with contextlib.suppress(anyio.WouldBlock):
                return self._receive.receive_nowait()
        with anyio.fail_after(max(0.0, remaining)):
            return await self._receive.receive()

    def _elapsed(self) -> float:
        return anyio.current_time() - self._start

    def _finished(self, waiter: Waiter, error: BaseException | None) -> None:
        if self._on_finish is not None:
            outcome = (
                "settled"
                if error is None
                else "timeout"
                if isinstance(error, AwaitTimeoutError)
                else "error"
            )
            self._on_finish(waiter, outcome, self._elapsed())

    def close(self) -> None:
        """Stop waiting: unsubscribe every wait that is still pending."""
        self._release()

    async def aclose(self) -> None:
        """Stop waiting, and let the poller wind down if nothing else waits."""
        self.close()
        await self._poller.stopped()

    def __aiter__(self) -> Self:
        return self

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class SessionWatch(_Subscription):
    """Async iterator of a session's states: one item per change of (status, detail).

    The first item is the state at the first poll; iteration ends after the state that
    settles it. Use ``async with client.watch_session(id) as states:`` (or call
    ``aclose()``) to stop early.

    Raises (from ``__anext__``):
        AwaitTimeoutError: the deadline passed before the session settled.
        DevinError: a failure polling cannot fix (401, 403, 404, ...).
    """

    def __init__(
        self,
        poller: Poller,
        session_id: str,
        *,
        until: Predicate,
        timeout: float,
        poll_interval: float,
        max_poll_interval: float,
        on_finish: OnFinish | None = None,
    ) -> None:
        super().__init__(poller, timeout, on_finish)
        self.session_id = session_id
        self._params = (until, poll_interval, max_poll_interval)

    def _begin(self) -> None:
        until, poll_interval, max_poll_interval = self._params
        waiter = self._poller.subscribe(
            self.session_id,
            until,
            on_change=functools.partial(_post, self._send),
            poll_interval=poll_interval,
            max_poll_interval=max_poll_interval,
        )
        self._waiters.append(waiter)
        waiter.future.add_done_callback(functools.partial(_post, self._send, _END))

    @_releasing
    async def __anext__(self) -> Session:
        if not self._release.alive:
            raise StopAsyncIteration
        try:
            item = await self._next()
        except TimeoutError:  # _releasing closes the iterator as the error escapes
            waiter = self._waiters[0]
            timeout = waiter.timed_out(self._timeout, self._elapsed())
            self._finished(waiter, timeout)
            raise timeout from None
        if item is _END:
            waiter = self._waiters[0]
            self.close()
            error = waiter.future.exception()
            self._finished(waiter, error)
            if error is not None:
                raise error
            raise StopAsyncIteration
        assert isinstance(item, Session)
        return item


class SessionWaits(_Subscription):
    """Async iterator of ``SessionResult`` for many sessions, in the order they settle.

    One failed or timed-out wait yields a result with ``error`` set and does not end
    the others. At the deadline every wait still pending yields an ``AwaitTimeoutError``
    result carrying its last seen session.
    """

    def __init__(
        self,
        poller: Poller,
        session_ids: Sequence[str],
        *,
        until: Predicate,
        timeout: float,
        poll_interval: float,
        max_poll_interval: float,
        on_finish: OnFinish | None = None,
    ) -> None:
        super().__init__(poller, timeout, on_finish)
        self.session_ids = tuple(session_ids)
        self._params = (until, poll_interval, max_poll_interval)
        self._left = len(self.session_ids)

    def _begin(self) -> None:
        until, poll_interval, max_poll_interval = self._params
        for index, session_id in enumerate(self.session_ids):
            waiter = self._poller.subscribe(
                session_id,
                until,
                poll_interval=poll_interval,
                max_poll_interval=max_poll_interval,
            )
            self._waiters.append(waiter)
            waiter.future.add_done_callback(
                functools.partial(_settled, self._poller, waiter, self._send, index)
            )

    def _time_out_the_rest(self) -> None:
        elapsed = self._elapsed()
        for waiter in self._waiters:
            if not waiter.future.done():
                waiter.future.set_exception(waiter.timed_out(self._timeout, elapsed))

    @_releasing
    async def next_indexed(self) -> tuple[int, SessionResult]:
        """Return the next result with its position in ``session_ids``."""
        if self._left == 0 or not self._release.alive:
            self.close()
            raise StopAsyncIteration
        try:
            index = await self._next()
        except TimeoutError:
            self._time_out_the_rest()
            index = await self._receive.receive()
        assert isinstance(index, int)
        self._left -= 1
        waiter = self._waiters[index]
        error = waiter.future.exception()
        self._finished(waiter, error)
        if error is None:
            return index, SessionResult(waiter.session_id, session=waiter.future.result())
        if not isinstance(error, DevinError):
            # The caller's own predicate failed: their bug to see (_releasing closes).
            raise error
        return index, SessionResult(waiter.session_id, error=error)

    async def __anext__(self) -> SessionResult:
        return (await self.next_indexed())[1]

    async def gather(self) -> list[SessionResult]:
        """Wait for every session and return the results in input order."""
        results: list[SessionResult | None] = [None] * len(self.session_ids)
        async with self:
            while self._left:
                index, result = await self.next_indexed()
                results[index] = result
        return [r for r in results if r is not None]


async def create_many(
    prepare: Callable[[CreateSessionRequest], _P],
    create: Callable[[_P], Awaitable[Session]],
    requests: Iterable[str | CreateSessionRequest],
    *,
    concurrency: int,
) -> list[SessionResult]:
    """Run ``create`` for every request with at most ``concurrency`` at once.

    Every request is checked by ``prepare`` before the first one is sent. Results come
    back in input order; a failed create is a result with ``error`` set, never a lost
    item.

    Raises:
        TypeError: ``requests`` is a bare string (it would be split into characters).
        ValueError: ``concurrency`` is not an int >= 1, or a request is invalid.
    """
    check_count("concurrency", concurrency, 1)
    if isinstance(requests, str | bytes):
        raise TypeError("create_sessions takes a list of prompts or requests, not one string")
    items = [
        prepare(r if isinstance(r, CreateSessionRequest) else CreateSessionRequest(prompt=r))
        for r in requests
    ]
    results: list[SessionResult | None] = [None] * len(items)
    todo = iter(enumerate(items))

    async def worker() -> None:
        for index, request in todo:
            try:
                session = await create(request)
            except DevinError as exc:
                results[index] = SessionResult(None, error=exc)
            else:
                results[index] = SessionResult(session.session_id, session=session)

    async with anyio.create_task_group() as group:
        for _ in range(min(concurrency, len(items))):
            group.start_soon(worker)
    return [r for r in results if r is not None]
