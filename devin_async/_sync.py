"""SyncDevinClient: the async client, run on an anyio blocking portal, for blocking code.

Every method is the ``DevinClient`` method of the same name, forwarded to the portal's
event loop (one thread of the client's own): the sync signatures are the async ones (a
ParamSpec), never a second copy of them. Async iterators become iterators that fetch one
item at a time and close the async one when they are closed or dropped.
"""

from __future__ import annotations

import contextlib
import inspect
import threading
from collections.abc import Awaitable, Callable, Generator
from types import TracebackType
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, Self, TypeVar, overload

import anyio
from anyio.from_thread import BlockingPortal, start_blocking_portal

from ._client import DevinClient
from ._errors import ClientClosedError, ConfigurationError
from ._events import Hook
from ._settings import Configured

__all__ = ["SyncDevinClient"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


def _arguments_of(
    _: Callable[P, object],
) -> Callable[[Callable[..., None]], Callable[Concatenate[Any, P], None]]:
    """Type a ``__init__(self, *args, **kwargs)`` with the parameters of another callable."""
    return lambda init: init


class _Forwarded(Generic[P, R]):
    """A ``DevinClient`` method, reached from a ``SyncDevinClient``; its docs are the method's."""

    def __init__(self, method: Callable[Concatenate[DevinClient, P], R]) -> None:
        self._method = method
        self.__doc__ = method.__doc__
        signature = inspect.signature(method)
        self.__signature__ = signature.replace(parameters=[*signature.parameters.values()][1:])

    def _named(self, call: Callable[P, T]) -> Callable[P, T]:
        call.__name__ = call.__qualname__ = self._method.__name__
        call.__doc__ = self.__doc__
        call.__signature__ = self.__signature__  # type: ignore[attr-defined]
        return call


class _Blocking(_Forwarded[P, Awaitable[T]]):
    """An async method as a blocking one: its result, or its exception, in the caller."""

    @overload
    def __get__(self, devin: None, owner: type[SyncDevinClient]) -> Self: ...

    @overload
    def __get__(self, devin: SyncDevinClient, owner: type[SyncDevinClient]) -> Callable[P, T]: ...

    def __get__(
        self, devin: SyncDevinClient | None, owner: type[SyncDevinClient]
    ) -> Self | Callable[P, T]:
        if devin is None:
            return self
        method, client = self._method, devin._client

        def call(*args: P.args, **kwargs: P.kwargs) -> T:
            return devin._run(lambda: method(client, *args, **kwargs))

        return self._named(call)


class _Closing(Protocol[T_co]):
    """What the iterating methods return: an async iterator that can be closed early."""

    def __anext__(self) -> Awaitable[T_co]: ...

    async def aclose(self) -> None: ...


class _Iterating(_Forwarded[P, _Closing[T]]):
    """A method returning an async iterator as one returning an iterator (a generator)."""

    @overload
    def __get__(self, devin: None, owner: type[SyncDevinClient]) -> Self: ...

    @overload
    def __get__(
        self, devin: SyncDevinClient, owner: type[SyncDevinClient]
    ) -> Callable[P, Generator[T, None, None]]: ...

    def __get__(
        self, devin: SyncDevinClient | None, owner: type[SyncDevinClient]
    ) -> Self | Callable[P, Generator[T, None, None]]:
        if devin is None:
            return self
        method, client = self._method, devin._client

        def call(*args: P.args, **kwargs: P.kwargs) -> Generator[T, None, None]:
            async def start() -> _Closing[T]:  # in the loop: arguments are checked now
                return method(client, *args, **kwargs)

            return devin._pull(devin._run(start))

        return self._named(call)


class _Call(Generic[T]):
    """One call into the portal, which the calling thread can cancel at any point of it."""

    def __init__(self, call: Callable[[], Awaitable[T]]) -> None:
        self._call = call
        self._scope: anyio.CancelScope | None = None
        self._cancelled = False
        self.ended = threading.Event()

    async def run(self) -> T:
        try:
            with anyio.CancelScope() as self._scope:
                if not self._cancelled:  # else cancelled before it started: never started
                    return await self._call()
            raise anyio.get_cancelled_exc_class()  # cancel() ended it: nobody waits for it
        finally:
            self.ended.set()

    def cancel(self) -> None:
        """Cancel the call, before or after it started (in the portal's loop)."""
        self._cancelled = True
        if self._scope is not None:
            self._scope.cancel()


def _closed() -> ClientClosedError:
    return ClientClosedError("the SyncDevinClient is closed; create a new one")


async def _step(source: _Closing[T]) -> tuple[T] | None:
    """The next item of ``source`` in a 1-tuple, or None at its end."""
    try:
        return (await anext(source),)
    except StopAsyncIteration:
        return None


class SyncDevinClient(Configured):
    """A blocking Devin client for scripts, notebooks and sync web apps.

    Takes the arguments of ``DevinClient`` and runs one in an event loop of its own thread
    (an anyio blocking portal); every method here is the ``DevinClient`` method of the
    same name, with the same arguments, results and exceptions, and the iterators
    (``list_sessions``, ``watch_session``, ``as_completed``, ...) are plain iterators.
    Use ``with SyncDevinClient() as devin:`` or call ``close()``. It may be shared by
    threads. Hooks are called in the client's thread, and a hook that calls the client
    gets a ``RuntimeError`` (the call would wait for that very thread). ``session=``
    cannot be used: an aiohttp session belongs to the loop that made it.

    Raises:
        ConfigurationError: as ``DevinClient`` does.
    """

    @_arguments_of(DevinClient)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("session") is not None:
            raise ConfigurationError("SyncDevinClient cannot borrow an aiohttp session")
        self._stack = contextlib.ExitStack()
        portal = self._stack.enter_context(start_blocking_portal("asyncio"))
        self._portal: BlockingPortal | None = portal
        try:
            # Built in the portal's loop: the client's aiohttp session belongs to that loop.
            self._client = client = portal.call(lambda: DevinClient(*args, **kwargs))
            self._loop_thread = portal.call(threading.get_ident)
        except BaseException:
            self._stack.close()
            raise
        self._settings = client._settings

    def __repr__(self) -> str:
        return repr(self._client).replace("<DevinClient", "<SyncDevinClient", 1)

    # ------------------------------------------------------------------ lifecycle

    @property
    def closed(self) -> bool:
        """True after ``close()``."""
        return self._portal is None

    def close(self) -> None:
        """Close the client (waits still pending end with ``ClientClosedError``) and its thread.

        Closing again does nothing.
        """
        if self._portal is not None:
            self._refuse_own_thread()  # before it is dropped: that thread cannot stop itself
        portal, self._portal = self._portal, None
        if portal is None:
            return
        with self._stack:  # then stops the portal and joins its thread
            portal.call(self._client.aclose)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _run(self, call: Callable[[], Awaitable[T]]) -> T:
        """Await ``call()`` in the portal and return its result, raising what it raises.

        An exception in the waiting thread (a KeyboardInterrupt) cancels the call in the
        portal and returns once it has ended there, so nothing goes on running unseen.
        """
        portal = self._portal
        if portal is None:
            raise _closed()
        self._refuse_own_thread()
        running = _Call(call)
        try:
            return portal.start_task_soon(running.run).result()
        except BaseException as exc:
            if isinstance(exc, RuntimeError) and self.closed and not running.ended.is_set():
                # Closed by another thread since the check above: the portal refused it.
                raise _closed() from None
            # Interrupted here (even while the task was being started) as it runs there.
            if not running.ended.is_set():
                portal.call(running.cancel)
                running.ended.wait()
            raise

    def _in_own_thread(self) -> bool:
        """Whether the caller runs in the client's own thread (a hook, a collection)."""
        return threading.get_ident() == self._loop_thread

    def _refuse_own_thread(self) -> None:
        """Raise if called in the client's own thread, which would wait for itself."""
        if self._in_own_thread():
            raise RuntimeError(
                "a SyncDevinClient cannot be called from the thread its hooks run in; "
                "call it from another thread, or hand the work to one"
            )

    def _pull(self, source: _Closing[T]) -> Generator[T, None, None]:
        """Iterate over ``source`` one item per portal call; close it when this ends."""
        try:
            while (item := self._run(lambda: _step(source))) is not None:
                yield item[0]
        finally:
            # A closed client ended its waits already; the portal's own thread (a
            # collection that ran there) cannot wait for it, and the loop finalizes it.
            if not self.closed and not self._in_own_thread():
                self._run(source.aclose)

    # ------------------------------------------------------------------ hooks

    def add_hook(self, hook: Hook) -> None:
        """Tell ``hook`` of every event from now on; it is called in the client's thread.

        Raises:
            ClientClosedError: the client is closed.
        """
        self._in_loop(lambda: self._client.add_hook(hook))

    def remove_hook(self, hook: Hook) -> None:
        """Stop telling ``hook`` of events.

        Raises:
            ClientClosedError: the client is closed.
        """
        self._in_loop(lambda: self._client.remove_hook(hook))

    def _in_loop(self, call: Callable[[], None]) -> None:
        """Run a plain ``call()`` in the loop's thread, where the hooks are read."""

        async def run() -> None:
            call()

        self._run(run)

    # ------------------------------------------------------------------ the calls

    create_session = _Blocking(DevinClient.create_session)
    create_sessions = _Blocking(DevinClient.create_sessions)
    get_session = _Blocking(DevinClient.get_session)
    send_message = _Blocking(DevinClient.send_message)
    terminate_session = _Blocking(DevinClient.terminate_session)
    archive_session = _Blocking(DevinClient.archive_session)
    get_tags = _Blocking(DevinClient.get_tags)
    append_tags = _Blocking(DevinClient.append_tags)
    replace_tags = _Blocking(DevinClient.replace_tags)
    list_attachments = _Blocking(DevinClient.list_attachments)
    upload_attachment = _Blocking(DevinClient.upload_attachment)
    download_attachment = _Blocking(DevinClient.download_attachment)
    get_insights = _Blocking(DevinClient.get_insights)
    generate_insights = _Blocking(DevinClient.generate_insights)
    await_insights = _Blocking(DevinClient.await_insights)
    await_session = _Blocking(DevinClient.await_session)
    await_sessions = _Blocking(DevinClient.await_sessions)

    list_sessions = _Iterating(DevinClient.list_sessions)
    list_messages = _Iterating(DevinClient.list_messages)
    watch_session = _Iterating(DevinClient.watch_session)
    follow_session = _Iterating(DevinClient.follow_session)
    as_completed = _Iterating(DevinClient.as_completed)
