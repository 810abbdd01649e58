"""``ThreadedFakeDevin``: a ``FakeDevinServer`` serving from its own thread and event loop.

A server started in a test's event loop only answers while that loop runs, so a client in
another loop (a session-scoped one, anyio's runner, a sync test's ``asyncio.run``) waits on
it forever. ``FakeDevinServer.in_thread()`` starts the server in a thread of its own with
its own loop: it answers whatever loop, or none, the test runs in. Everything a test does
to it (scripting, fault injection, reading the log and the sessions) runs on the server's
loop, so it is safe from any thread; what it returns is a copy, taken there.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import threading
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

from .faults import FaultKind
from .server import FakeDevinServer
from .sessions import FakeSession, RecordedRequest
from .timelines import StepLike

__all__ = ["Gate", "ThreadedFakeDevin"]

T = TypeVar("T")

# Starting, stopping and every call are local work of milliseconds: a call still
# unanswered after this long means the server's loop is stuck, which is raised.
CALL_TIMEOUT = 30.0


class Gate:
    """Holds back a "slow" fault of a threaded fake until ``set()``, from any thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
        self._loop = loop
        self.event = event  # lives on the server's loop; ``inject(gate=...)`` takes the Gate

    def set(self) -> None:
        """Open the gate: the requests it holds go on."""
        self._loop.call_soon_threadsafe(self.event.set)


class ThreadedFakeDevin:
    """A ``FakeDevinServer`` in its own thread and event loop, driven from any thread.

    Use ``with FakeDevinServer.in_thread(**options) as server:`` (or ``async with``, or
    ``start()`` and ``close()``); the options are ``FakeDevinServer``'s. The methods of
    ``FakeDevinServer`` are here with the same names and run on the server's loop; the
    properties (``requests``, ``sessions``, ``statuses``, ...) return copies. Any other
    attribute of the server (``allowed_tags``, ``default_timeline``, ``forbidden_keys``,
    ``quirks``, ...) reads as a copy and is set with ``configure(name=value)`` or plain
    assignment, both run on the server's loop. ``call(fn)`` runs ``fn(server)`` there.
    """

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: FakeDevinServer | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the thread, its loop and the server on 127.0.0.1."""
        if self._thread is not None:
            raise RuntimeError("the threaded FakeDevinServer is already started")
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=_serve, args=(loop,), name="fake-devin", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            self._server = self._run(_started(self._options))
        except BaseException:
            self._stop()
            raise

    def close(self) -> None:
        """Stop the server, then its loop and thread; the socket is released."""
        server, self._server = self._server, None
        try:
            if server is not None:
                self._run(server.close())
        finally:
            self._stop()

    def _stop(self) -> None:
        loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(CALL_TIMEOUT)
        if thread.is_alive():
            raise RuntimeError("the threaded FakeDevinServer's loop did not stop")

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        server, self._server = self._server, None
        try:
            if server is not None and self._loop is not None:
                # Awaited without blocking the caller's loop: closing waits for handlers.
                future = asyncio.run_coroutine_threadsafe(server.close(), self._loop)
                await asyncio.wrap_future(future)
        finally:
            self._stop()

    # ------------------------------------------------------------------ running there

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        loop = self._loop
        if loop is None:
            coro.close()
            raise RuntimeError("the threaded FakeDevinServer is not started")
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("call the server itself from its own loop, not the wrapper")
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result(CALL_TIMEOUT)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def call(self, fn: Callable[[FakeDevinServer], T]) -> T:
        """Run ``fn(server)`` on the server's loop and return what it returns."""
        server = self.server_unsafe

        async def run() -> T:
            return fn(server)

        return self._run(run())

    def _copy(self, fn: Callable[[FakeDevinServer], T]) -> T:
        return self.call(lambda server: _frozen(copy.deepcopy(fn(server))))

    @property
    def server_unsafe(self) -> FakeDevinServer:
        """The server itself: touch it only from its loop (see ``call``)."""
        if self._server is None:
            raise RuntimeError("the threaded FakeDevinServer is not started")
        return self._server

    # ------------------------------------------------------------------ fixed after start

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:8123``."""
        return self.server_unsafe.url

    @property
    def api_key(self) -> str:
        return self.server_unsafe.api_key

    @property
    def org_id(self) -> str:
        return self.server_unsafe.org_id

    @property
    def route_names(self) -> frozenset[str]:
        return self.server_unsafe.route_names

    # ------------------------------------------------------------------ scripting

    def queue_timeline(self, steps: Sequence[StepLike]) -> None:
        self.call(lambda server: server.queue_timeline(steps))

    def set_timeline(self, session_id: str, steps: Sequence[StepLike]) -> None:
        self.call(lambda server: server.set_timeline(session_id, steps))

    def set_state(self, session_id: str, status: str, status_detail: str | None = None) -> None:
        self.call(lambda server: server.set_state(session_id, status, status_detail))

    def gate(self) -> Gate:
        """A new closed ``Gate`` for ``inject("slow", gate=...)``."""
        event = self.call(lambda _: asyncio.Event())
        assert self._loop is not None
        return Gate(self._loop, event)

    def inject(self, kind: FaultKind, *, gate: Gate | None = None, **options: Any) -> None:
        """``FakeDevinServer.inject``; a ``gate`` is a ``Gate`` from ``gate()``."""
        if gate is not None and not isinstance(gate, Gate):
            raise TypeError("a threaded fake's gate must come from its gate() method")
        event = None if gate is None else gate.event
        self.call(lambda server: server.inject(kind, gate=event, **options))

    def clear_faults(self) -> None:
        self.call(lambda server: server.clear_faults())

    def configure(self, **attributes: Any) -> None:
        """Set attributes of the server (e.g. ``allowed_tags={"ci"}``) on its loop."""

        def apply(server: FakeDevinServer) -> None:
            for name, value in attributes.items():
                if name.startswith("_") or not hasattr(server, name):
                    raise AttributeError(f"FakeDevinServer has no attribute {name!r}")
                setattr(server, name, value)

        self.call(apply)

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        else:
            self.configure(**{name: value})

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self._copy(lambda server: getattr(server, name))

    # ------------------------------------------------------------------ inspection

    @property
    def requests(self) -> list[RecordedRequest]:
        return self._copy(lambda server: server.requests)

    @property
    def statuses(self) -> Counter[tuple[str | None, int]]:
        return self._copy(lambda server: server.statuses)

    @property
    def sessions(self) -> dict[str, FakeSession]:
        return self._copy(lambda server: server.sessions)

    @property
    def sessions_created(self) -> int:
        return self.call(lambda server: server.sessions_created)

    @property
    def rate_limited(self) -> Counter[str | None]:
        return self.call(lambda server: server.rate_limited)

    @property
    def in_flight(self) -> int:
        return self.call(lambda server: server.in_flight)

    def count(self, route: str | None = None, method: str | None = None) -> int:
        return self.call(lambda server: server.count(route, method))

    def count_status(self, status: int, route: str | None = None) -> int:
        return self.call(lambda server: server.count_status(status, route))

    def reset_log(self) -> None:
        self.call(lambda server: server.reset_log())

    async def wait_idle(self) -> None:
        """Wait (without blocking the caller's loop) until no request is being handled."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("the threaded FakeDevinServer is not started")
        await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(self.server_unsafe.wait_idle(), loop)
        )

    def __repr__(self) -> str:
        where = self._server.url if self._server is not None else "not started"
        return f"<ThreadedFakeDevin {where}>"


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


async def _started(options: dict[str, Any]) -> FakeDevinServer:
    server = FakeDevinServer(**options)
    await server.start()
    return server


def _frozen(value: T) -> T:
    """A set copied out is frozen: adding to it would change nothing on the server."""
    return frozenset(value) if isinstance(value, set) else value  # type: ignore[return-value]
