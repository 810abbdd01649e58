"""The client's wait methods, and the engine's wiring to the request pipeline.

``WaitCalls`` is a base class of ``DevinClient``: each method checks its options and
returns a view over the client's one engine (``views``, ``follow``). ``build_engine``
gives the engine its reads: one attempt each, through the client's ``Sender``, since the
engine itself retries on its next tick.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs

from .. import _convert, _protocol
from .._errors import ClientClosedError, ConfigurationError
from .._events import Hooks, SessionChanged, WaitFinished
from .._fanout import SessionResult
from .._models import Message, Page, Session, WaitState
from .._pipeline import Sender
from .engine import Engine, Waiter
from .follow import SessionFollow
from .rows import Listed, decode_page
from .settle import Predicate, Wait, WaitOptions
from .sources import LIST_BATCH, IdsSource, WatermarkSource
from .views import SessionWaits, SessionWatch, await_one

__all__ = ["WAIT_STRATEGIES", "WaitCalls", "build_engine"]

WAIT_STRATEGIES = ("ids", "watermark")


def build_engine(
    sender: Sender,
    scope: _protocol.Scope,
    hooks: Hooks,
    *,
    strategy: str,
    reconcile_interval: float,
    clock: Callable[[], float],
    sleep: Callable[[float], Any],
) -> Engine:
    """Return the engine of one client, reading with ``strategy`` ("ids" or "watermark").

    Raises:
        ConfigurationError: an unknown strategy, or "watermark" without an org_id.
    """
    if strategy not in WAIT_STRATEGIES:
        raise ConfigurationError(
            f"wait_strategy must be one of {', '.join(WAIT_STRATEGIES)}, got {strategy!r}"
        )
    if strategy == "watermark" and scope.org_id is None:
        raise ConfigurationError('wait_strategy="watermark" needs an org_id')

    async def read_row(session_id: str, timeout: float) -> dict[str, Any]:
        request = _protocol.get_session(scope, session_id)._replace(timeout=timeout)
        return _convert.session_row(await sender.attempt(request))

    async def read_rows(
        ids: Sequence[str] | None, updated_after: int | None, after: str | None, timeout: float
    ) -> Listed:
        request = _protocol.poll_sessions(scope, ids, updated_after, after, timeout)
        page: Listed = await sender.attempt(request, decode_page)
        return page

    async def read_messages(session_id: str, after: str | None, timeout: float) -> Page[Message]:
        request = _protocol.list_messages(scope, session_id, LIST_BATCH, after)
        data = await sender.attempt(request._replace(timeout=timeout))
        return _convert.structure_message_page(data)

    by_id = IdsSource(read_row, read_rows if scope.org_id else None)
    source: IdsSource | WatermarkSource = by_id
    if strategy == "watermark":
        source = WatermarkSource(by_id, clock, reconcile_interval)

    def changed(session: Session, before: Session | None) -> None:
        if hooks.active:
            hooks.emit(
                SessionChanged(
                    session.session_id,
                    session.status,
                    session.status_detail,
                    before.status if before else None,
                    before.status_detail if before else None,
                )
            )

    def finished(waiter: Waiter, outcome: str) -> None:
        if hooks.active:
            last = waiter.last
            hooks.emit(
                WaitFinished(
                    waiter.session_id,
                    outcome,
                    engine.elapsed(waiter),
                    engine.polls(waiter),
                    last.status if last else None,
                    last.status_detail if last else None,
                )
            )

    engine = Engine(
        source,
        _convert.structure_session,
        read_messages,
        clock=clock,
        sleep=sleep,
        max_retry_after=sender.policy.max_retry_after,
        on_change=changed,
        on_finish=finished,
    )
    return engine


def _ids(session_ids: Iterable[str]) -> list[str]:
    return [
        _protocol.normalize_session_id(i)
        for i in _protocol.check_strings("session_ids", session_ids)
    ]


def _since(session_id: str, since: Session | None) -> Session | None:
    if since is not None and (
        not isinstance(since, Session)
        or _protocol.normalize_session_id(since.session_id) != session_id
    ):
        raise ValueError(f"since must be a Session snapshot of {session_id}, got {since!r}")
    return since


class WaitCalls:
    """The wait methods of ``DevinClient`` (its engine, sender and defaults are set there)."""

    _engine: Engine
    _sender: Sender
    _wait_defaults: Wait

    def _wait(
        self,
        timeout: float | None,
        until: Predicate | None,
        poll_interval: float | None,
        max_poll_interval: float | None,
    ) -> Wait:
        """Check a call's wait options and fill the unset ones from the client's."""
        if self._sender.closed:
            raise ClientClosedError("the DevinClient is closed; create a new one")
        options = WaitOptions(timeout, until, poll_interval, max_poll_interval)
        return options.over(self._wait_defaults)

    async def await_session(
        self,
        session_id: str,
        *,
        timeout: float | None = None,
        until: Predicate | None = None,
        poll_interval: float | None = None,
        max_poll_interval: float | None = None,
        on_change: Callable[[Session], object] | None = None,
        since: Session | None = None,
    ) -> Session:
        """Poll a session until it settles, and return its settled state.

        Settled (by default) means status ``exit``/``error``/``suspended`` or
        status_detail ``finished``/``waiting_for_user``; pass ``until=`` to decide
        otherwise (e.g. ``is_settled_or_awaiting_approval``). Waits pending at the same
        time on one client share their polls (one list request per 200 sessions).
        Transient failures are retried within the deadline. Cancelling the awaiting
        task cancels only the wait, never the Devin session.

        Args:
            session_id: the session to wait for.
            timeout: overall deadline, seconds (default 600).
            until: predicate on the session; the wait ends when it returns True.
            poll_interval: first delay between polls, seconds (default: the client's).
            max_poll_interval: cap on the delay between polls, seconds.
            on_change: called with the session each time (status, status_detail)
                changes, the first poll included.
            since: the session as a message left it (what ``send_message`` returned).
                The state lags after a message, so the wait does not end on the state
                of ``since`` until the session has shown it moved on: another state, or
                a message of Devin's after the reply.

        Raises:
            AwaitTimeoutError: the deadline passed; ``.session`` is the last state seen.
            ValueError: the id is not a safe session id, or an option is out of range
                (no request is made).
            DevinError: a failure polling cannot fix (401, 403, 404, ...).
        """
        session_id = _protocol.normalize_session_id(session_id)
        wait = self._wait(timeout, until, poll_interval, max_poll_interval)
        since = _since(session_id, since)
        return await await_one(self._engine, session_id, wait, on_change=on_change, since=since)

    def watch_session(
        self,
        session_id: str,
        *,
        timeout: float | None = None,
        until: Predicate | None = None,
        poll_interval: float | None = None,
        max_poll_interval: float | None = None,
        since: Session | None = None,
    ) -> SessionWatch:
        """Iterate over a session's states: one ``Session`` per change, until it settles.

        ``async for session in client.watch_session(id):`` yields the first state seen
        and then each change of (status, status_detail); it stops after the settled
        state (same ``until`` and ``since`` as ``await_session``). ``async with`` it, or
        call ``aclose()``, to stop early.

        Raises:
            ValueError: the id is not a safe session id (no request is made).
        """
        session_id = _protocol.normalize_session_id(session_id)
        wait = self._wait(timeout, until, poll_interval, max_poll_interval)
        return SessionWatch(self._engine, session_id, wait, since=_since(session_id, since))

    def as_completed(
        self,
        session_ids: Iterable[str],
        *,
        timeout: float | None = None,
        until: Predicate | None = None,
        poll_interval: float | None = None,
        max_poll_interval: float | None = None,
        since: Iterable[Session] | None = None,
    ) -> SessionWaits:
        """Wait for many sessions; yield a ``SessionResult`` for each as it settles.

        ``async for result in client.as_completed(ids):`` yields in settle order. A
        failed or timed-out wait yields a result with ``error`` set and does not end
        the others. ``timeout`` is one deadline for the whole batch. ``since`` takes
        the snapshots ``send_message`` returned for some of the sessions (see
        ``await_session``).

        Raises:
            TypeError: a bare string instead of a list of ids (no request is made).
            ValueError: an id is not a safe session id, or a ``since`` snapshot is of a
                session not waited for (no request is made).
        """
        ids = _ids(session_ids)
        wait = self._wait(timeout, until, poll_interval, max_poll_interval)
        snapshots: dict[str, Session] = {}
        wanted = set(ids)
        for snapshot in since or ():
            session_id = _protocol.normalize_session_id(getattr(snapshot, "session_id", "?"))
            if session_id not in wanted:
                raise ValueError(f"since holds {snapshot!r}, which is not one of the sessions")
            snapshots[session_id] = snapshot
        return SessionWaits(self._engine, ids, wait, since=snapshots)

    async def await_sessions(
        self,
        session_ids: Iterable[str],
        *,
        timeout: float | None = None,
        until: Predicate | None = None,
        poll_interval: float | None = None,
        max_poll_interval: float | None = None,
        since: Iterable[Session] | None = None,
    ) -> list[SessionResult]:
        """Wait for many sessions and return their results in input order.

        Same options and per-item outcomes as ``as_completed``.
        """
        waits = self.as_completed(
            session_ids,
            timeout=timeout,
            until=until,
            poll_interval=poll_interval,
            max_poll_interval=max_poll_interval,
            since=since,
        )
        return await waits.gather()

    def follow_session(
        self,
        session: str | WaitState,
        *,
        messages: bool = True,
        timeout: float | None = None,
        until: Predicate | None = None,
        poll_interval: float | None = None,
        max_poll_interval: float | None = None,
        since: Session | None = None,
    ) -> SessionFollow:
        """Follow a session for a bot: yield each new message and each state change.

        Pass a session id to start from the beginning, or a saved ``WaitState`` to
        resume without replaying what was already seen. Every ``SessionUpdate`` carries
        the state to save once it is handled. Ends after the settled state. Followed
        sessions share the client's polls with every other wait; messages are read only
        when a session's state or ``updated_at`` changed. After a reply sent with this
        client's ``send_message`` (before or during the follow), the follow does not
        end on the state the reply answered until the session moved on (``since``, as
        in ``await_session``, does the same for a reply sent elsewhere).

        Raises (while iterating):
            AwaitTimeoutError: ``timeout`` seconds passed before it settled.
            DevinError: a failure polling cannot fix (401, 403, 404, ...).
        """
        state = session if isinstance(session, WaitState) else WaitState(session)
        session_id = _protocol.normalize_session_id(state.session_id)
        state = attrs.evolve(state, session_id=session_id)
        wait = self._wait(timeout, until, poll_interval, max_poll_interval)
        since = _since(session_id, since)
        return SessionFollow(self._engine, state, wait, messages=messages, since=since)
