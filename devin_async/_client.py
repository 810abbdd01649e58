"""DevinClient: configuration, lifecycle, one method per endpoint, composition.

Each method builds a request with ``_protocol``, sends it through ``_retry`` and
``_transport``, and structures the JSON with ``_convert``. Source for paths and fields:
https://docs.devin.ai/api-reference/v3/sessions/post-organizations-sessions.md
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, Literal, Self

import aiohttp
import attrs

from . import _convert, _protocol
from ._create import CREATE_TAG_PREFIX, DEFAULT_GRACE, Creator
from ._errors import (
    APIConnectionError,
    APIStatusError,
    ClientClosedError,
    ConfigurationError,
)
from ._events import (
    Hook,
    Hooks,
    RateLimitPaused,
    RequestSent,
    ResponseReceived,
    RetryScheduled,
    SessionChanged,
    WaitFinished,
)
from ._fanout import SessionResult, create_many
from ._limits import Governor
from ._models import (
    AdvancedMode,
    Attachment,
    CreateSessionRequest,
    DevinMode,
    Message,
    Page,
    Session,
    SessionCategory,
    SessionOrigin,
    SessionSecret,
    WaitState,
)
from ._paging import Pager
from ._retry import OnRetry, RetryPolicy, Sleep, retry_after_failure, retry_reason
from ._transport import Transport, user_agent
from ._version import __version__
from ._waiting import (
    LIST_BATCH,
    Engine,
    IdsSource,
    Predicate,
    SessionFollow,
    SessionWaits,
    SessionWatch,
    Wait,
    Waiter,
    WaitOptions,
    WatermarkSource,
    await_one,
    is_settled,
)
from ._waiting.rows import Listed, decode_page

__all__ = ["CREATE_TAG_PREFIX", "DevinClient", "await_session"]

log = logging.getLogger("devin_async")

DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 3
DEFAULT_AWAIT_TIMEOUT = 600.0
DEFAULT_POLL_INTERVAL = 2.0
DEFAULT_MAX_POLL_INTERVAL = 30.0
DEFAULT_MAX_IN_FLIGHT = 64
DEFAULT_CREATE_CONCURRENCY = 8
DEFAULT_PAGE_SIZE = 100
DEFAULT_RECONCILE_INTERVAL = 300.0
WAIT_STRATEGIES = ("ids", "watermark")


def _positive(name: str, value: float) -> float:
    """Return ``value`` as seconds if it is a positive finite number, else raise."""
    return _protocol.check_positive(name, value, error=ConfigurationError)


def _usable_key(key: object) -> bool:
    """An API key is one token of visible ASCII: it travels in an HTTP header."""
    return isinstance(key, str) and bool(key) and all("!" <= c <= "~" for c in key)


class DevinClient:
    """An async client for the Devin v3 sessions API.

    Use it as ``async with DevinClient() as client:`` or call ``await client.aclose()``.

    Args:
        api_key: a ``cog_`` service-user key or personal access token; default
            ``$DEVIN_API_KEY``.
        org_id: the organization (``org-...``); default ``$DEVIN_ORG_ID``. Without one,
            reads use the enterprise scope (``/v3/enterprise/...``) and create is refused.
        base_url: default ``$DEVIN_BASE_URL`` or ``https://api.devin.ai``. Plain http is
            only accepted to loopback hosts.
        timeout: per-HTTP-request timeout, seconds.
        max_retries: retries per request, per the policy in the README.
        session: an ``aiohttp.ClientSession`` to borrow; it is never closed by the client.
        poll_interval: default first delay between polls of a wait, seconds.
        max_poll_interval: default cap on the delay between polls, seconds.
        requests_per_second: client-wide cap on requests started per second; None
            means no fixed cap, only the adaptive slow-down after a 429.
        max_in_flight: client-wide bound on concurrent HTTP requests.
        exactly_once_create: tag each create with a unique marker so that a create
            that failed ambiguously (timeout, dropped connection, 5xx) is looked up
            instead of lost or duplicated. False sends creates without an idempotency
            key untagged, and never sends them again after an ambiguous failure.
        create_grace: how long an unanswered create is looked up before
            ``CreateOutcomeUnknownError``, seconds; default the larger of 10 s and
            ``timeout``.
        wait_strategy: how waits learn of changes. "ids" (the default) reads every
            waited session each tick (one list request per 200). "watermark" asks
            which sessions of the org changed since the newest ``updated_at`` seen,
            so quiet waits cost one request per tick, and reads every waited session
            by id each ``reconcile_interval``; it pays when the org has few other
            active sessions (see the README section "Waiting").
        reconcile_interval: seconds between reads by id under "watermark".
        hooks: callables told of every event (request sent, response received, retry
            scheduled, rate-limit pause, session changed, wait finished); see
            ``devin_async.RequestSent`` and friends. A hook that raises is logged and
            ignored.
        sleep: coroutine behind every delay of the client: retry backoff, rate
            limiting, and the polls, deadlines and Retry-After floors of waits
            (injected in tests, with ``clock``, to run on virtual time).
        clock: the client's monotonic clock, seconds.

    Raises:
        ConfigurationError: no API key, or an unsafe base URL or org id.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        org_id: str | None = None,
        base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        session: aiohttp.ClientSession | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL,
        requests_per_second: float | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        exactly_once_create: bool = True,
        create_grace: float | None = None,
        wait_strategy: Literal["ids", "watermark"] = "ids",
        reconcile_interval: float = DEFAULT_RECONCILE_INTERVAL,
        hooks: Iterable[Hook] = (),
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(exactly_once_create, bool):
            raise ConfigurationError(
                f"exactly_once_create must be a bool, not {type(exactly_once_create).__name__}"
            )
        key = api_key if api_key is not None else os.environ.get("DEVIN_API_KEY", "")
        if not _usable_key(key):
            # The message never quotes the key, not even a bad one.
            raise ConfigurationError(
                "no usable API key: pass api_key= or set DEVIN_API_KEY to a cog_ "
                "service-user key or personal access token (one token of visible ASCII)"
            )
        org = org_id if org_id is not None else os.environ.get("DEVIN_ORG_ID") or None
        self.org_id = _protocol.check_org_id(org) if org is not None else None
        self.base_url = _protocol.check_base_url(
            base_url or os.environ.get("DEVIN_BASE_URL") or _protocol.DEFAULT_BASE_URL
        )
        self._policy = RetryPolicy(
            max_retries=_protocol.check_count("max_retries", max_retries, 0, ConfigurationError)
        )
        self.timeout = _positive("timeout", timeout)
        try:  # the rule of every wait's options, raised as a setting's error
            WaitOptions(poll_interval=poll_interval, max_poll_interval=max_poll_interval)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        self.poll_interval = float(poll_interval)
        self.max_poll_interval = float(max_poll_interval)
        self._wait_defaults = Wait(
            is_settled, DEFAULT_AWAIT_TIMEOUT, self.poll_interval, self.max_poll_interval
        )
        self._scope = _protocol.Scope(self.org_id)
        self._sleep = sleep
        self._clock = clock
        grace = max(DEFAULT_GRACE, self.timeout) if create_grace is None else create_grace
        create_request = _protocol.Request("POST", self._scope.sessions_path, idempotent=False)
        self._creator = Creator(
            build=lambda request: _protocol.create_session(self._scope, request),
            post=self._post_session,
            list_page=self._list_page,
            policy=self._policy,
            sleep=sleep,
            clock=clock,
            grace=_positive("create_grace", grace),
            tagging=exactly_once_create,
            on_retry=self._retry_reporter(create_request),
        )
        self._governor = Governor(
            requests_per_second=requests_per_second,
            max_in_flight=max_in_flight,
            clock=clock,
            sleep=sleep,
        )
        self._hooks = Hooks(hooks)
        self._engine = Engine(
            self._wait_source(wait_strategy, _positive("reconcile_interval", reconcile_interval)),
            _convert.structure_session,
            self._messages_attempt,
            clock=clock,
            sleep=sleep,
            max_retry_after=self._policy.max_retry_after,
            on_change=self._session_changed,
            on_finish=self._wait_finished,
        )
        self._transport = Transport(
            self.base_url,
            {
                "Authorization": f"Bearer {key}",
                "Accept": "application/json",
                "User-Agent": user_agent(__version__),
            },
            self.timeout,
            session,
            max_connections=max_in_flight,
        )

    def __repr__(self) -> str:
        scope = f"org_id={self.org_id!r}" if self.org_id else "scope='enterprise'"
        state = " closed" if self.closed else ""
        return f"<DevinClient base_url={self.base_url!r} {scope}{state}>"

    @property
    def exactly_once_create(self) -> bool:
        """Whether creates without an idempotency key carry the marker tag (read-only).

        False if ``exactly_once_create=False`` was passed, or once the organization
        refused the marker tag (an allowed-tags list).
        """
        return self._creator.tagging

    # ------------------------------------------------------------------ lifecycle

    @property
    def closed(self) -> bool:
        """True after ``aclose()``."""
        return self._transport.closed

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client and its own HTTP session (a borrowed session stays open).

        Waits still pending end with ``ClientClosedError``.
        """
        if not self.closed:
            self._engine.close(ClientClosedError("the DevinClient was closed while waiting"))
        await self._engine.stopped()
        await self._transport.aclose()

    # ------------------------------------------------------------------ events

    def add_hook(self, hook: Hook) -> None:
        """Tell ``hook`` of every event from now on (see the ``hooks`` argument)."""
        self._hooks.add(hook)

    def remove_hook(self, hook: Hook) -> None:
        """Stop telling ``hook`` of events."""
        self._hooks.remove(hook)

    def _session_changed(self, session: Session, before: Session | None) -> None:
        if self._hooks.active:
            self._hooks.emit(
                SessionChanged(
                    session.session_id,
                    session.status,
                    session.status_detail,
                    before.status if before else None,
                    before.status_detail if before else None,
                )
            )

    def _wait_finished(self, waiter: Waiter, outcome: str) -> None:
        if self._hooks.active:
            last, engine = waiter.last, self._engine
            self._hooks.emit(
                WaitFinished(
                    waiter.session_id,
                    outcome,
                    engine.elapsed(waiter),
                    engine.polls(waiter),
                    last.status if last else None,
                    last.status_detail if last else None,
                )
            )

    def _retry_reporter(self, request: _protocol.Request) -> OnRetry:
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
                        _protocol.session_id_of(request.path),
                    )
                )

        return report

    # ------------------------------------------------------------------ plumbing

    async def _attempt(
        self, request: _protocol.Request, decode: Callable[[bytes], Any] = _convert.loads
    ) -> Any:
        """Send one request through the governor; return its body ``decode``d (no retries).

        Raises:
            APIStatusError: a non-2xx response (its URL and message are built only then).
            APIConnectionError: no response.
            ResponseValidationError: a 2xx body that is not JSON.
        """
        governor, hooks = self._governor, self._hooks
        await governor.acquire()
        observed = hooks.active
        if observed:  # after the governor let it through: it is really being sent now
            session_id = _protocol.session_id_of(request.path)
            hooks.emit(RequestSent(request.method, request.path, session_id))
            started = time.monotonic()
        try:
            response = await self._transport.send(request)
        finally:
            governor.release()
        status = response.status
        if observed:
            hooks.emit(
                ResponseReceived(
                    request.method,
                    request.path,
                    status,
                    time.monotonic() - started,
                    _protocol.request_id_of(response.headers),
                    session_id,
                )
            )
        if status == 429:
            self._rate_limited(response)
        else:
            governor.on_success()
        if 200 <= status < 300:
            return decode(response.body)
        raise _protocol.status_error(request, response, self._transport.url(request))

    def _rate_limited(self, response: _protocol.Response) -> None:
        governor = self._governor
        retry_after = _protocol.parse_retry_after(response.headers.get("retry-after"), time.time())
        paused_until = governor.paused_until
        governor.on_rate_limited(retry_after)
        if governor.paused_until > paused_until and self._hooks.active:
            seconds = governor.paused_until - self._clock()
            self._hooks.emit(RateLimitPaused(seconds, retry_after, governor.rate))

    async def _call(self, request: _protocol.Request) -> Any:
        """Make one attempt; enter the retry policy only if it fails."""
        try:
            return await self._attempt(request)
        except (APIStatusError, APIConnectionError) as exc:
            first = exc
        return await self._retry(request, first)

    async def _retry(
        self, request: _protocol.Request, first: APIStatusError | APIConnectionError
    ) -> Any:
        """Retry ``request`` per the policy, its first attempt having failed with ``first``."""
        return await retry_after_failure(
            first,
            lambda: self._attempt(request),
            idempotent=request.idempotent,
            policy=self._policy,
            sleep=self._sleep,
            what=f"{request.method} {request.path}",
            on_retry=self._retry_reporter(request),
        )

    # ------------------------------------------------------------------ sessions

    async def create_session(
        self,
        prompt: str | CreateSessionRequest,
        /,
        *,
        title: str | None = None,
        tags: Sequence[str] | None = None,
        devin_mode: DevinMode | str | None = None,
        advanced_mode: AdvancedMode | str | None = None,
        attachment_urls: Sequence[str] | None = None,
        bypass_approval: bool | None = None,
        child_playbook_id: str | None = None,
        create_as_user_id: str | None = None,
        knowledge_ids: Sequence[str] | None = None,
        max_acu_limit: int | None = None,
        platform: str | None = None,
        playbook_id: str | None = None,
        repos: Sequence[str] | None = None,
        resumable: bool | None = None,
        secret_ids: Sequence[str] | None = None,
        session_links: Sequence[str] | None = None,
        session_secrets: Sequence[SessionSecret] | None = None,
        structured_output_required: bool | None = None,
        structured_output_schema: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Session:
        """Start a Devin session and return it as created.

        Pass a prompt and keyword fields, or one ``CreateSessionRequest``. Fields left
        as None are not sent (the server applies its defaults). A create is sent again
        only when the server cannot have acted on it (refused connection, 429), or, with
        ``exactly_once_create`` (the default), after an answered 5xx once its marker tag
        was looked up and not found. A create that was sent and never answered is never
        sent again: its marker is looked up over ``create_grace`` seconds. See the
        README section "Exactly-once create".

        Args:
            idempotency_key: your id for this create (a chat message id, a job id):
                calls with the same key return the session the first one made, even
                from another process or after a restart. Only a hash of it is sent.

        Raises:
            ValueError: empty prompt, more than 49 tags, or a request object together
                with keywords.
            ConfigurationError: the client has no org_id.
            CreateOutcomeUnknownError: it was sent, never answered, and its session did
                not appear within the grace window.
            DevinError: the API refused it or could not be reached.
        """
        fields = {
            "title": title,
            "tags": tags,
            "devin_mode": devin_mode,
            "advanced_mode": advanced_mode,
            "attachment_urls": attachment_urls,
            "bypass_approval": bypass_approval,
            "child_playbook_id": child_playbook_id,
            "create_as_user_id": create_as_user_id,
            "knowledge_ids": knowledge_ids,
            "max_acu_limit": max_acu_limit,
            "platform": platform,
            "playbook_id": playbook_id,
            "repos": repos,
            "resumable": resumable,
            "secret_ids": secret_ids,
            "session_links": session_links,
            "session_secrets": session_secrets,
            "structured_output_required": structured_output_required,
            "structured_output_schema": structured_output_schema,
            "idempotency_key": idempotency_key,
        }
        if isinstance(prompt, CreateSessionRequest):
            given = sorted(name for name, value in fields.items() if value is not None)
            if given:
                raise ValueError(
                    f"pass either a CreateSessionRequest or keywords, not both: {given}"
                )
            request = prompt
        else:
            request = CreateSessionRequest(prompt=prompt, **fields)  # type: ignore[arg-type]
        creator = self._creator
        return await creator.create(creator.prepare(request))

    async def _post_session(self, request: _protocol.Request) -> Session:
        return _convert.structure_session(await self._call(request))

    async def create_sessions(
        self,
        requests: Iterable[str | CreateSessionRequest],
        *,
        concurrency: int = DEFAULT_CREATE_CONCURRENCY,
    ) -> list[SessionResult]:
        """Start many sessions, at most ``concurrency`` at a time.

        Every request is validated before the first is sent. Returns one
        ``SessionResult`` per request, in input order; a failed create is a result
        with ``error`` set and does not stop the others. Give a ``CreateSessionRequest``
        an ``idempotency_key`` to make its item safe to run again.

        Raises:
            TypeError: a bare string instead of a list of prompts (before any request).
            ValueError: a bad request or ``concurrency`` (before any request).
        """
        creator = self._creator
        return await create_many(creator.prepare, creator.create, requests, concurrency=concurrency)

    async def get_session(self, session_id: str) -> Session:
        """Return the current state of a session (``devin-`` prefix optional).

        Raises:
            ValueError: the id is not a safe session id (no request is made).
            NotFoundError: no such session for this key.
            DevinError: any other failure after retries.
        """
        request = _protocol.get_session(self._scope, session_id)
        # _call inlined: this is the hottest call of the client (polling, bots).
        try:
            data = await self._attempt(request)
        except (APIStatusError, APIConnectionError) as exc:
            first = exc
        else:
            return _convert.structure_session(data)
        return _convert.structure_session(await self._retry(request, first))

    # ------------------------------------------------------------------ waiting

    def _wait_source(self, strategy: str, reconcile_interval: float) -> IdsSource | WatermarkSource:
        if strategy not in WAIT_STRATEGIES:
            raise ConfigurationError(
                f"wait_strategy must be one of {', '.join(WAIT_STRATEGIES)}, got {strategy!r}"
            )
        by_id = IdsSource(self._row_attempt, self._rows_attempt if self.org_id else None)
        if strategy == "ids":
            return by_id
        if self.org_id is None:
            raise ConfigurationError('wait_strategy="watermark" needs an org_id')
        return WatermarkSource(by_id, self._clock, reconcile_interval)

    async def _row_attempt(self, session_id: str, timeout: float) -> dict[str, Any]:
        """One GET attempt for a wait (the engine retries on its next tick)."""
        request = _protocol.get_session(self._scope, session_id)._replace(timeout=timeout)
        return _convert.session_row(await self._attempt(request))

    async def _rows_attempt(
        self,
        ids: Sequence[str] | None,
        updated_after: int | None,
        after: str | None,
        timeout: float,
    ) -> Listed:
        """One list attempt for a wait: by ids, or the sessions changed after a time."""
        request = _protocol.poll_sessions(self._scope, ids, updated_after, after, timeout)
        page: Listed = await self._attempt(request, decode_page)
        return page

    async def _messages_attempt(
        self, session_id: str, after: str | None, timeout: float
    ) -> Page[Message]:
        """One attempt at a page of a session's messages, for a wait."""
        request = _protocol.list_messages(self._scope, session_id, LIST_BATCH, after)
        data = await self._attempt(request._replace(timeout=timeout))
        return _convert.structure_message_page(data)

    async def _list_page(self, params: dict[str, object]) -> Page[Session]:
        data = await self._call(_protocol.list_sessions(self._scope, params))
        return _convert.structure_session_page(data)

    def _wait(
        self,
        timeout: float | None,
        until: Predicate | None,
        poll_interval: float | None,
        max_poll_interval: float | None,
    ) -> Wait:
        """Check a call's wait options and fill the unset ones from the client's."""
        if self.closed:
            raise ClientClosedError("the DevinClient is closed; create a new one")
        options = WaitOptions(timeout, until, poll_interval, max_poll_interval)
        return options.over(self._wait_defaults)

    @staticmethod
    def _since(session_id: str, since: Session | None) -> Session | None:
        if since is not None and (
            not isinstance(since, Session)
            or _protocol.normalize_session_id(since.session_id) != session_id
        ):
            raise ValueError(f"since must be a Session snapshot of {session_id}, got {since!r}")
        return since

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
        since = self._since(session_id, since)
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
        return SessionWatch(self._engine, session_id, wait, since=self._since(session_id, since))

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
        ids = [
            _protocol.normalize_session_id(i)
            for i in _protocol.check_strings("session_ids", session_ids)
        ]
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

    # ------------------------------------------------------------------ listing and bots

    def list_sessions(
        self,
        *,
        limit: int | None = None,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        session_ids: Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
        origins: Sequence[SessionOrigin | str] | None = None,
        user_ids: Sequence[str] | None = None,
        service_user_ids: Sequence[str] | None = None,
        repo_names: Sequence[str] | None = None,
        org_ids: Sequence[str] | None = None,
        playbook_id: str | None = None,
        schedule_id: str | None = None,
        category: SessionCategory | str | None = None,
        is_archived: bool | None = None,
        created_after: int | None = None,
        created_before: int | None = None,
        updated_after: int | None = None,
        updated_before: int | None = None,
    ) -> Pager[Session]:
        """Iterate over sessions, newest first, fetching cursor pages as needed.

        ``async for session in client.list_sessions(tags=["ci"]):``. Array filters are
        sent as repeated query keys; timestamps are Unix seconds; ``org_ids`` exists only
        in the enterprise scope (a client without ``org_id``).

        Args:
            limit: stop after this many sessions; None for all.
            first: page size, 1-200.
            after: the cursor to start after.

        Raises:
            ValueError: ``first`` out of range, a bare string where a list belongs, or
                ``org_ids`` on an organization client (before any request).
        """
        if org_ids is not None and self.org_id is not None:
            raise ValueError("org_ids filters the enterprise scope; this client has an org_id")
        org_only = {"repo_names": repo_names, "category": category, "is_archived": is_archived}
        if self.org_id is None and any(v is not None for v in org_only.values()):
            # GET /v3/enterprise/sessions does not take them: a server that ignored them
            # would answer unfiltered.
            given = sorted(name for name, value in org_only.items() if value is not None)
            raise ValueError(f"{', '.join(given)} filter(s) need an org_id (organization scope)")
        params = _protocol.session_filters(
            session_ids=session_ids,
            tags=tags,
            origins=origins,
            user_ids=user_ids,
            service_user_ids=service_user_ids,
            repo_names=repo_names,
            org_ids=org_ids,
            playbook_id=playbook_id,
            schedule_id=schedule_id,
            category=category,
            is_archived=is_archived,
            created_after=created_after,
            created_before=created_before,
            updated_after=updated_after,
            updated_before=updated_before,
        )
        size = _protocol.check_page_size(first)

        async def fetch(cursor: str | None) -> Page[Session]:
            return await self._list_page({**params, "first": size, "after": cursor})

        return Pager(fetch, after=after, limit=limit)

    async def _messages_page(self, session_id: str, first: int, after: str | None) -> Page[Message]:
        data = await self._call(_protocol.list_messages(self._scope, session_id, first, after))
        return _convert.structure_message_page(data)

    def list_messages(
        self, session_id: str, *, first: int = DEFAULT_PAGE_SIZE, after: str | None = None
    ) -> Pager[Message]:
        """Iterate over a session's messages, oldest first, fetching pages as needed.

        Raises:
            ValueError: a bad id or page size (before any request).
        """
        session_id = _protocol.normalize_session_id(session_id)
        size = _protocol.check_page_size(first)
        return Pager(lambda cursor: self._messages_page(session_id, size, cursor), after=after)

    async def send_message(
        self,
        session_id: str,
        message: str,
        *,
        message_as_user_id: str | None = None,
        attachment_urls: Sequence[str] | None = None,
    ) -> Session:
        """Send a message to a session (this resumes a suspended one) and return it.

        Like a create, it is retried only when the server cannot have acted on it
        (refused connection, 429): a timeout or 5xx is raised, never sent twice. The
        state lags after a message: pass the returned session as ``since=`` to a wait
        (a ``follow_session`` of this client applies it by itself).
        """
        request = _protocol.send_message(
            self._scope, session_id, message, message_as_user_id, attachment_urls
        )
        session = _convert.structure_session(await self._call(request))
        self._engine.replied(_protocol.normalize_session_id(session_id), session)
        return session

    async def terminate_session(self, session_id: str, *, archive: bool = False) -> Session:
        """Stop a session for good (it cannot be resumed); optionally archive it too.

        Raises:
            ConfigurationError: the client has no org_id (no enterprise terminate).
        """
        request = _protocol.terminate_session(self._scope, session_id, archive)
        return _convert.structure_session(await self._call(request))

    async def archive_session(self, session_id: str) -> Session:
        """Archive a session: it stays readable but can no longer be changed.

        Raises:
            ConfigurationError: the client has no org_id (no enterprise archive).
        """
        request = _protocol.archive_session(self._scope, session_id)
        return _convert.structure_session(await self._call(request))

    async def get_tags(self, session_id: str) -> tuple[str, ...]:
        """Return a session's tags."""
        data = await self._call(_protocol.get_tags(self._scope, session_id))
        return _convert.structure_tags(data)

    async def append_tags(self, session_id: str, tags: Sequence[str]) -> tuple[str, ...]:
        """Add tags to a session (at most 50 in all) and return its tags."""
        data = await self._call(_protocol.set_tags(self._scope, session_id, tags, replace=False))
        return _convert.structure_tags(data)

    async def replace_tags(self, session_id: str, tags: Sequence[str]) -> tuple[str, ...]:
        """Replace a session's tags (at most 50) and return them."""
        data = await self._call(_protocol.set_tags(self._scope, session_id, tags, replace=True))
        return _convert.structure_tags(data)

    async def list_attachments(self, session_id: str) -> tuple[Attachment, ...]:
        """Return the files attached to a session, by Devin or by users."""
        data = await self._call(_protocol.list_attachments(self._scope, session_id))
        return _convert.structure_attachments(data)

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
        since = self._since(session_id, since)
        return SessionFollow(self._engine, state, wait, messages=messages, since=since)


async def await_session(
    client: DevinClient,
    session_id: str,
    *,
    timeout: float | None = None,
    until: Predicate | None = None,
    poll_interval: float | None = None,
    max_poll_interval: float | None = None,
    on_change: Callable[[Session], object] | None = None,
    since: Session | None = None,
) -> Session:
    """Wait for a session to settle; the same coroutine as ``DevinClient.await_session``."""
    return await client.await_session(
        session_id,
        timeout=timeout,
        until=until,
        poll_interval=poll_interval,
        max_poll_interval=max_poll_interval,
        on_change=on_change,
        since=since,
    )
