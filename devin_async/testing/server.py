"""``FakeDevinServer``: configuration, lifecycle, scripting and inspection of the fake."""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Callable, Collection, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

from aiohttp import web

from .faults import FaultKind, _new_fault
from .files import FakeFiles
from .insights import _Insights
from .pipeline import _Pipeline
from .quirks import Quirks, _Quirk
from .routes import _Routes
from .sessions import FakeSession, RecordedRequest
from .timelines import FINISHES, Step, StepLike, _steps

if TYPE_CHECKING:
    from .threaded import ThreadedFakeDevin

__all__ = ["FakeDevinServer"]

_JSONObject = dict[str, Any]


class FakeDevinServer:
    """A real aiohttp server on 127.0.0.1 that emulates the Devin v3 sessions API.

    Attributes tests may set at any time: ``default_timeline``, ``timeline_factory`` (called with
    the redacted create body; returns a timeline or None for the default), ``forbidden_keys``
    (API keys answered with 403), ``attachments_envelope`` (list attachments as
    ``{"items": [...]}`` instead of a bare array), ``service_user_id`` (stamped on sessions)
    and the real-server behaviours ``list_lag_reads``, ``list_lag_seconds``,
    ``message_lag_reads``, ``allowed_tags``, ``ignored_filters``, ``array_encoding``,
    ``random_429``, ``random_429_retry_after`` and ``platforms`` (each reads and writes that
    field of ``quirks``, a ``Quirks``, validated; so does ``handler_cancellation``, which only
    ``start()`` reads).

    Lists are newest first. Array filters repeat their key (``tags=a&tags=b``, unless
    ``Quirks.array_encoding`` says otherwise); ``tags`` and ``repo_names`` keep sessions having
    ANY of the values; ``*_after`` bounds are inclusive and ``*_before`` exclusive. A message
    wakes a ``suspended`` session or one ``waiting_for_user``: it shows running/working, then
    the rest of its timeline (or finishes if none is left); ``message_lag_reads`` makes reads
    show the state from before the message for a while.
    """

    handler_cancellation: _Quirk[bool, bool] = _Quirk()
    list_lag_reads: _Quirk[int, int] = _Quirk()
    list_lag_seconds: _Quirk[float, float] = _Quirk()
    message_lag_reads: _Quirk[int, int] = _Quirk()
    allowed_tags: _Quirk[tuple[str, ...] | None, Collection[str] | None] = _Quirk()
    ignored_filters: _Quirk[tuple[str, ...], Collection[str]] = _Quirk()
    array_encoding: _Quirk[Literal["repeat", "comma"], Literal["repeat", "comma"]] = _Quirk()
    random_429: _Quirk[float, float] = _Quirk()
    random_429_retry_after: _Quirk[str | None, str | None] = _Quirk()
    platforms: _Quirk[tuple[str, ...], Collection[str]] = _Quirk()

    def __init__(
        self,
        api_key: str = "cog_test_key",
        org_id: str = "org-test",
        *,
        port: int = 0,
        default_timeline: Sequence[StepLike] | None = None,
        seed: int = 0,
        rate_limit: float | None = None,
        attachments_envelope: bool = False,
        handler_cancellation: bool = False,
        list_lag_reads: int = 0,
        list_lag_seconds: float = 0.0,
        message_lag_reads: int = 0,
        allowed_tags: Collection[str] | None = None,
        ignored_filters: Collection[str] = (),
        array_encoding: Literal["repeat", "comma"] = "repeat",
        random_429: float = 0.0,
        random_429_retry_after: str | None = None,
        platforms: Collection[str] = ("linux", "windows"),
    ) -> None:
        """Configure the server; ``start()`` or ``async with`` binds it.

        Args:
            api_key: the only accepted Bearer token.
            org_id: the organization served under ``/v3/organizations/{org_id}``.
            port: TCP port on 127.0.0.1; 0 picks a free one.
            default_timeline: steps of sessions nobody scripted (default ``FINISHES``).
            seed: seeds session ids and the fault ``rate`` draws, for repeatable runs.
            rate_limit: server-wide requests per second before answering 429 (a token
                bucket), None for none.
            attachments_envelope: list attachments as ``{"items": [...]}``.
            handler_cancellation: cancel a handler when its client hangs up; by default it
                runs to the end, as on production stacks.
            list_lag_reads: list answers a new session is left out of (index lag)...
            list_lag_seconds: ...and for at least this many seconds after its creation.
            message_lag_reads: reads after a message that still show the session's state
                from before it (its answer shows it too); 0 for none.
            allowed_tags: the only tags a create or tag update may carry (422 otherwise);
                None for any.
            ignored_filters: list filter names the server ignores (e.g. ``{"tags"}``).
            array_encoding: "repeat" (``tags=a&tags=b``) or "comma" (the last value, split on
                commas) for array filters.
            random_429: probability (0..1) that any request is answered 429, from the seed.
            random_429_retry_after: ``Retry-After`` of those 429s, None for none.
            platforms: the org's platform labels; any other ``platform`` is refused with 400.

        See ``Quirks`` for the details of the last ten, which ``quirks`` holds.
        """
        if rate_limit is not None and rate_limit <= 0:
            raise ValueError("rate_limit must be positive requests per second")
        self.api_key = api_key
        self.org_id = org_id
        self.default_timeline: Sequence[StepLike] = (
            FINISHES if default_timeline is None else _steps(default_timeline)
        )
        self.timeline_factory: Callable[[_JSONObject], Sequence[StepLike] | None] | None = None
        self.forbidden_keys: set[str] = set()
        self.attachments_envelope = attachments_envelope
        self.quirks = Quirks(
            handler_cancellation=handler_cancellation,
            list_lag_reads=list_lag_reads,
            list_lag_seconds=list_lag_seconds,
            message_lag_reads=message_lag_reads,
            allowed_tags=allowed_tags,
            ignored_filters=ignored_filters,
            array_encoding=array_encoding,
            random_429=random_429,
            random_429_retry_after=random_429_retry_after,
            platforms=platforms,
        )
        self.service_user_id: str | None = "service-user-test"
        self.requests: list[RecordedRequest] = []
        self.statuses: Counter[tuple[str | None, int]] = Counter()  # (route, status) answered
        self.sessions: dict[str, FakeSession] = {}
        self.sessions_created = 0
        self._port = port
        self._seed = seed
        self._queued: deque[tuple[Step, ...]] = deque()
        self._pipeline = _Pipeline(self, seed, rate_limit)
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        self._app = web.Application(middlewares=[self._pipeline.middleware])
        self._app.add_routes(_Routes(self).table())
        self.insights = _Insights(self)
        self._app.add_routes(self.insights.table())
        self.files = FakeFiles(self)
        self._app.add_routes(self.files.table())
        self.route_names = frozenset(r.name for r in self._app.router.resources() if r.name)

    @classmethod
    def in_thread(cls, **options: Any) -> ThreadedFakeDevin:
        """A server (``options`` as above) to run in its own thread and event loop."""
        from .threaded import ThreadedFakeDevin

        return ThreadedFakeDevin(**options)

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """Return the base URL, e.g. ``http://127.0.0.1:8123`` (no trailing slash)."""
        if self._url is None:
            raise RuntimeError("FakeDevinServer is not started")
        return self._url

    async def start(self) -> None:
        """Bind 127.0.0.1 and start serving."""
        if self._runner is not None:
            raise RuntimeError("FakeDevinServer is already started")
        # A short shutdown timeout keeps close() fast even while slow (fault-injected)
        # handlers are still sleeping; close() ends those whose client hung up.
        # Request lines up to 16 KiB, like common API front ends: a list call with 200
        # session_ids needs about 10 KiB.
        runner = web.AppRunner(
            self._app,
            access_log=None,
            shutdown_timeout=0.1,
            handler_cancellation=self.quirks.handler_cancellation,
            max_line_size=16384,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", self._port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self._url = f"http://{host}:{port}"

    async def close(self) -> None:
        """Stop serving and release the socket; in-flight handlers are cancelled."""
        runner, self._runner, self._url = self._runner, None, None
        if runner is not None:
            await runner.cleanup()
        await self.files.close()
        # aiohttp forgets a handler whose client hung up (handler_cancellation False).
        for task in self._pipeline.handling:
            task.cancel()
        await asyncio.gather(*self._pipeline.handling, return_exceptions=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ------------------------------------------------------------------ scripting

    def queue_timeline(self, steps: Sequence[StepLike]) -> None:
        """Make the next created session (first in, first out) follow ``steps``."""
        self._queued.append(_steps(steps))

    def set_timeline(self, session_id: str, steps: Sequence[StepLike]) -> None:
        """Restart session ``session_id`` on ``steps``, entering the first step now."""
        self.sessions[session_id]._replace_timeline(steps)

    def set_state(self, session_id: str, status: str, status_detail: str | None = None) -> None:
        """Put session ``session_id`` in a state it then holds."""
        self.sessions[session_id]._replace_timeline([Step(status, status_detail)])

    def inject(
        self,
        kind: FaultKind,
        *,
        times: int | None = 1,
        rate: float | None = None,
        method: str | None = None,
        route: str | None = None,
        status: int = 503,
        retry_after: str | None = "1",
        delay: float = 0.5,
        when: Literal["before", "after"] = "before",
        gate: asyncio.Event | None = None,
        should_retry: bool | None = None,
    ) -> None:
        """Add a fault rule; the first matching rule that fires wins.

        Args:
            kind: "status" (answer ``status``), "rate_limit" (429), "slow" (sleep ``delay``
                seconds), "drop" (close the connection without answering; note that aiohttp
                clients resend a GET, PUT or DELETE once after a disconnection, so drop those
                ``times=2`` to make the client see it) or "malformed" (200 with a truncated
                JSON body).
            times: how many requests it hits; None for no bound.
            rate: probability (0..1) that a matching request is hit, drawn from the seed.
            method: only this HTTP method; None for any.
            route: only this route name (see ``route_names``); None for any.
            status: the status code of a "status" fault.
            retry_after: ``Retry-After`` of a 429 (seconds or an HTTP date), None for none.
            delay: seconds a "slow" fault waits.
            when: "before" handling, or "after" it (the action really happens, e.g. a session
                is created, and then the fault is answered).
            gate: a "slow" fault waits until this event is set instead of ``delay`` seconds.
            should_retry: the ``x-should-retry`` header ("true" or "false") of a "status" or
                "rate_limit" answer, None for none.

        Unless ``handler_cancellation`` is on, a request the client gave up on (timed out
        during a "slow" fault) is still handled to the end: ``wait_idle()`` waits for that.
        """
        self._pipeline.faults.append(
            _new_fault(
                kind,
                times=times,
                rate=rate,
                method=method,
                route=route,
                status=status,
                retry_after=retry_after,
                delay=delay,
                when=when,
                gate=gate,
                route_names=self.route_names,
                should_retry=should_retry,
            )
        )

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        self._pipeline.faults.clear()

    # ------------------------------------------------------------------ inspection

    def count(self, route: str | None = None, method: str | None = None) -> int:
        """Count recorded requests, optionally only those of ``route`` and ``method``."""
        return sum(
            1
            for r in self.requests
            if route in (None, r.route) and (method is None or method.upper() == r.method)
        )

    def count_status(self, status: int, route: str | None = None) -> int:
        """Count responses answered with ``status``, optionally only those of ``route``."""
        return sum(
            n for (r, code), n in self.statuses.items() if code == status and route in (None, r)
        )

    @property
    def rate_limited(self) -> Counter[str | None]:
        """Return the 429 answers per route name (bucket, ``random_429`` and injected alike)."""
        return Counter({route: n for (route, code), n in self.statuses.items() if code == 429})

    @property
    def in_flight(self) -> int:
        """Return how many requests are being handled, counting those whose client hung up."""
        return len(self._pipeline.handling)

    async def wait_idle(self) -> None:
        """Wait until no request is being handled (e.g. one whose client timed out)."""
        while self._pipeline.handling:
            await asyncio.wait(set(self._pipeline.handling))

    def reset_log(self) -> None:
        """Forget recorded requests and statuses and zero ``sessions_created``; sessions stay."""
        self.requests.clear()
        self.statuses.clear()
        self.sessions_created = 0
