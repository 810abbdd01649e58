"""The waits users hold: one session awaited, watched, or many awaited together.

Each is a view over the engine: it subscribes waits, reads their futures and a result
stream, and unsubscribes when it ends. Deadlines, polls and timeout errors belong to the
engine. Nothing here creates a task per waited session. An iterator unsubscribes its
waits when it ends, when it is closed, when a cancel (or any other error) escapes one of
its steps, or when it is garbage collected, so an abandoned or cancelled loop never
keeps the engine polling.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import contextvars
import functools
import math
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .._errors import DevinError
from .._fanout import SessionResult
from .._models import Session
from .engine import Engine, Waiter
from .settle import Wait

__all__ = ["SessionWaits", "SessionWatch", "Subscription", "await_one", "post"]

_T = TypeVar("_T")
_S = TypeVar("_S", bound="Subscription")

Stream = MemoryObjectSendStream[object]
END = object()


async def await_one(
    engine: Engine,
    session_id: str,
    wait: Wait,
    *,
    on_change: Callable[[Session], object] | None,
    since: Session | None,
) -> Session:
    """Wait for one session on the engine; its end (and a cancel) unsubscribes it."""
    waiter = engine.subscribe(session_id, wait, on_change=on_change, since=since)
    try:
        return await waiter.future
    finally:
        engine.unsubscribe(waiter)
        await engine.stopped()


def post(send: Stream, item: object, *_: object) -> None:
    """Put ``item`` on the stream unless the iterator was closed meanwhile."""
    with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
        send.send_nowait(item)


def _release(
    engine: Engine,
    waiters: list[Waiter],
    send: Stream,
    receive: MemoryObjectReceiveStream[object],
) -> None:
    for waiter in waiters:
        engine.unsubscribe(waiter)
        future = waiter.future
        if future.done() and not future.cancelled():
            future.exception()  # retrieved: never logged as "exception was never retrieved"
        else:
            future.cancel()
    send.close()
    receive.close()


def releasing(step: Callable[[_S], Awaitable[_T]]) -> Callable[[_S], Coroutine[Any, Any, _T]]:
    """Make anything but the end of iteration escaping ``step`` release every wait.

    A cancel (or any other BaseException) raised inside a step closes the iterator at
    once, as ``close()`` does, and goes on unchanged: a loop without ``async with`` that
    is cancelled stops the engine without waiting for the garbage collector, the way a
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


class Subscription(abc.ABC):
    """Waits held on behalf of an iterator, with one result stream.

    Callbacks reach the stream, never the iterator, so an abandoned iterator is freed
    (and its waits released) as soon as nothing refers to it.
    """

    def __init__(self, engine: Engine, wait: Wait) -> None:
        self._engine = engine
        self._wait = wait
        self._started = False
        self._waiters: list[Waiter] = []
        self._send, self._receive = anyio.create_memory_object_stream[object](math.inf)
        self._release = weakref.finalize(
            self, _release, engine, self._waiters, self._send, self._receive
        )

    @abc.abstractmethod
    def _begin(self) -> None:
        """Subscribe the waits (inside the running loop, on first use)."""

    async def _next(self) -> object:
        """Receive the next item (the engine ends every wait by its deadline)."""
        if not self._started:
            self._started = True
            self._begin()
        # Results arrive in bursts (a tick settles many sessions at once).
        with contextlib.suppress(anyio.WouldBlock):
            return self._receive.receive_nowait()
        return await self._receive.receive()

    async def _next_of_one(self) -> object:
        """The next item of a one-session stream; its end raises the wait's outcome.

        Raises:
            StopAsyncIteration: the session settled, or the iterator was closed.
            DevinError: the error that ended the wait (a deadline, a 404, ...).
        """
        if not self._release.alive:
            raise StopAsyncIteration
        item = await self._next()
        if item is END:
            waiter = self._waiters[0]
            self.close()
            error = waiter.future.exception()
            if error is not None:
                raise error
            raise StopAsyncIteration
        return item

    def close(self) -> None:
        """Stop waiting: unsubscribe every wait that is still pending."""
        self._release()

    async def aclose(self) -> None:
        """Stop waiting, and let the engine wind down if nothing else waits."""
        self.close()
        await self._engine.stopped()

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


class SessionWatch(Subscription):
    """Async iterator of a session's states: one item per change of (status, detail).

    The first item is the state at the first poll; iteration ends after the state that
    settles it. Use ``async with client.watch_session(id) as states:`` (or call
    ``aclose()``) to stop early.

    Raises (from ``__anext__``):
        AwaitTimeoutError: the deadline passed before the session settled.
        DevinError: a failure polling cannot fix (401, 403, 404, ...).
    """

    def __init__(
        self, engine: Engine, session_id: str, wait: Wait, *, since: Session | None = None
    ) -> None:
        super().__init__(engine, wait)
        self.session_id = session_id
        self._since = since

    def _begin(self) -> None:
        waiter = self._engine.subscribe(
            self.session_id,
            self._wait,
            on_change=functools.partial(post, self._send),
            since=self._since,
        )
        self._waiters.append(waiter)
        waiter.future.add_done_callback(functools.partial(post, self._send, END))

    @releasing
    async def __anext__(self) -> Session:
        item = await self._next_of_one()
        assert isinstance(item, Session)
        return item


class SessionWaits(Subscription):
    """Async iterator of ``SessionResult`` for many sessions, in the order they settle.

    One failed or timed-out wait yields a result with ``error`` set and does not end
    the others. At the deadline every wait still pending yields an ``AwaitTimeoutError``
    result carrying its last seen session.
    """

    def __init__(
        self,
        engine: Engine,
        session_ids: Sequence[str],
        wait: Wait,
        *,
        since: Mapping[str, Session] | None = None,
    ) -> None:
        super().__init__(engine, wait)
        self.session_ids = tuple(session_ids)
        self._since = since or {}
        self._left = len(self.session_ids)
        self._position: dict[asyncio.Future[Session], int] = {}

    def _begin(self) -> None:
        subscribe, since, position = self._engine.subscribe, self._since, self._position
        # One callback and one context for every wait: it posts the future that ended.
        done, context = functools.partial(post, self._send), contextvars.copy_context()
        start = self._engine.now()  # one start, so one deadline, for the waits of one call
        for index, session_id in enumerate(self.session_ids):
            waiter = subscribe(session_id, self._wait, since=since.get(session_id), start=start)
            self._waiters.append(waiter)
            position[waiter.future] = index
            waiter.future.add_done_callback(done, context=context)

    @releasing
    async def next_indexed(self) -> tuple[int, SessionResult]:
        """Return the next result with its position in ``session_ids``."""
        if self._left == 0 or not self._release.alive:
            self.close()
            raise StopAsyncIteration
        future = await self._next()
        assert isinstance(future, asyncio.Future)
        index = self._position.pop(future)
        self._left -= 1
        waiter = self._waiters[index]
        error = waiter.future.exception()
        if error is None:
            return index, SessionResult(waiter.session_id, session=waiter.future.result())
        if not isinstance(error, DevinError):
            # The caller's own predicate failed: their bug to see (releasing closes).
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
