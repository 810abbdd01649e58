"""DevinClient: configuration, lifecycle, and one short method per endpoint.

Each method builds a request with ``_protocol``, sends it through the client's
``_pipeline.Sender`` and structures the answer with ``_convert``; the wait methods come
from ``_waiting.calls``. Source for paths and fields:
https://docs.devin.ai/api-reference/v3/sessions/post-organizations-sessions.md
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

from . import _convert, _protocol
from ._attachments import AttachmentCalls
from ._create import CREATE_TAG_PREFIX, DEFAULT_GRACE, Creator, request_of
from ._errors import ClientClosedError, ConfigurationError
from ._events import Hook, Hooks
from ._fanout import SessionResult, create_many
from ._insights import InsightsCalls
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
)
from ._paging import Pager
from ._pipeline import Sender
from ._retry import RetryPolicy, Sleep
from ._settings import Configured, Settings, client_time, positive
from ._waiting.calls import build_engine
from ._waiting.settle import Predicate, Wait, is_settled

if TYPE_CHECKING:
    import aiohttp

__all__ = ["CREATE_TAG_PREFIX", "DevinClient", "await_session"]

DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 3
DEFAULT_AWAIT_TIMEOUT = 600.0
DEFAULT_POLL_INTERVAL = 2.0
DEFAULT_MAX_POLL_INTERVAL = 30.0
DEFAULT_MAX_IN_FLIGHT = 64
DEFAULT_CREATE_CONCURRENCY = 8
DEFAULT_PAGE_SIZE = 100
DEFAULT_RECONCILE_INTERVAL = 300.0


_NOT_FIELDS = frozenset({"self", "prompt"})
_NOT_FILTERS = frozenset({"self", "limit", "first", "after"})


_decode_session = _convert.decode_session


def _transport_of(
    settings: Settings,
    transport: _protocol.Transport | None,
    session: aiohttp.ClientSession | None,
    max_in_flight: int,
) -> _protocol.Transport:
    """The transport given, checked, or else the aiohttp one (imported only then)."""
    if transport is not None:
        if session is not None:
            raise ConfigurationError("pass session= or transport=, not both")
        if not callable(getattr(transport, "send", None)):
            raise ConfigurationError(
                f"transport must have an async send(request) method, not {transport!r}"
            )
        return transport
    from ._transport import Transport, user_agent
    from ._version import __version__

    headers = {
        "Authorization": f"Bearer {settings.api_key}",
        "Accept": "application/json",
        "User-Agent": user_agent(__version__),
    }
    return Transport(
        settings.base_url,
        headers,
        settings.timeout,
        session,
        max_connections=max_in_flight,
        proxy=settings.proxy,
    )


class DevinClient(Configured, InsightsCalls, AttachmentCalls):
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
        transport: sends the client's requests instead of its aiohttp transport: any
            object with ``async send(request) -> response`` (``devin_async.Transport``),
            such as ``devin_async.testing.MockTransport``. It is closed with the client
            if it has ``aclose()``; ``session`` cannot be given with it.
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
        wait_strategy: how waits learn of changes: "ids" (the default) reads every
            waited session each tick (one list request per 200); "watermark" asks
            which of the org's sessions changed since the newest ``updated_at`` seen,
            and reads them all by id each ``reconcile_interval`` (README, "Waiting").
        reconcile_interval: seconds between reads by id under "watermark".
        hooks: callables told of every event (request sent, response received, retry
            scheduled, rate-limit pause, session changed, wait finished); see
            ``devin_async.RequestSent`` and friends. A hook that raises is logged and
            ignored.
        sleep: coroutine behind every delay of the client: retry backoff, rate
            limiting, and the polls, deadlines and Retry-After floors of waits
            (injected in tests, with ``clock``, to run on virtual time); default
            ``asyncio.sleep``, or instant under ``devin_async.testing.set_instant()``.
        clock: the client's monotonic clock, seconds; default ``time.monotonic``.
        trust_env: send through the proxy that ``HTTPS_PROXY``/``HTTP_PROXY`` name,
            unless ``NO_PROXY`` matches the base URL's host, as httpx and requests do;
            ``~/.netrc`` is never read. False ignores them. A borrowed ``session``
            keeps its own proxy settings.

    Raises:
        ConfigurationError: no API key, an unsafe base URL or org id, or (with
            ``trust_env``) a proxy in the environment that is not an http:// URL.
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
        transport: _protocol.Transport | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL,
        requests_per_second: float | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        exactly_once_create: bool = True,
        create_grace: float | None = None,
        wait_strategy: Literal["ids", "watermark"] = "ids",
        reconcile_interval: float = DEFAULT_RECONCILE_INTERVAL,
        hooks: Iterable[Hook] = (),
        sleep: Sleep | None = None,
        clock: Callable[[], float] | None = None,
        trust_env: bool = True,
    ) -> None:
        sleep, clock = client_time(sleep, clock)
        if not isinstance(exactly_once_create, bool):
            raise ConfigurationError(
                f"exactly_once_create must be a bool, not {type(exactly_once_create).__name__}"
            )
        settings = self._settings = Settings.read(
            api_key, org_id, base_url, timeout, poll_interval, max_poll_interval, trust_env
        )
        policy = RetryPolicy(
            max_retries=_protocol.check_count("max_retries", max_retries, 0, ConfigurationError)
        )
        self._transport = transport = _transport_of(settings, transport, session, max_in_flight)
        self._scope = scope = _protocol.Scope(settings.org_id)
        self._hooks = Hooks(hooks)
        governor = Governor(
            requests_per_second=requests_per_second,
            max_in_flight=max_in_flight,
            clock=clock,
            sleep=sleep,
        )
        self._sender = sender = Sender(
            transport,
            settings.base_url,
            governor=governor,
            hooks=self._hooks,
            policy=policy,
            sleep=sleep,
            clock=clock,
        )
        grace = max(DEFAULT_GRACE, settings.timeout) if create_grace is None else create_grace
        self._creator = Creator(
            build=lambda request: _protocol.create_session(scope, request),
            post=lambda request: sender.call(request, _decode_session),
            list_page=self._list_page,
            policy=policy,
            sleep=sleep,
            clock=clock,
            grace=positive("create_grace", grace),
            tagging=exactly_once_create,
            on_retry=sender.retry_reporter(
                _protocol.Request("POST", scope.sessions_path, idempotent=False)
            ),
        )
        self._wait_defaults = Wait(
            is_settled, DEFAULT_AWAIT_TIMEOUT, settings.poll_interval, settings.max_poll_interval
        )
        self._engine = build_engine(
            sender,
            scope,
            self._hooks,
            strategy=wait_strategy,
            reconcile_interval=positive("reconcile_interval", reconcile_interval),
            clock=clock,
            sleep=sleep,
        )

    def __repr__(self) -> str:
        scope = f"org_id={self.org_id!r}" if self.org_id else "scope='enterprise'"
        state = " closed" if self.closed else ""
        return f"<DevinClient base_url={self.base_url!r} {scope}{state}>"

    @property
    def exactly_once_create(self) -> bool:
        """Whether creates without an idempotency key carry the marker tag.

        False if ``exactly_once_create=False`` was passed, or once the organization
        refused the marker tag (an allowed-tags list).
        """
        return self._creator.tagging

    # ------------------------------------------------------------------ lifecycle

    @property
    def closed(self) -> bool:
        """True after ``aclose()``."""
        return self._sender.closed

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
        """Close the client and its transport (a borrowed aiohttp session stays open).

        Waits still pending end with ``ClientClosedError``.
        """
        if not self.closed:
            self._engine.close(ClientClosedError("the DevinClient was closed while waiting"))
        await self._engine.stopped()
        await self._sender.aclose()

    # ------------------------------------------------------------------ events

    def add_hook(self, hook: Hook) -> None:
        """Tell ``hook`` of every event from now on (see the ``hooks`` argument)."""
        self._hooks.add(hook)

    def remove_hook(self, hook: Hook) -> None:
        """Stop telling ``hook`` of events."""
        self._hooks.remove(hook)

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
        as None are not sent (server defaults: ``resumable`` true). A create is sent again
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
        # Every keyword, by name: the signature is the one list of the create's fields.
        fields = {name: value for name, value in locals().items() if name not in _NOT_FIELDS}
        request = request_of(prompt, fields)
        creator = self._creator
        return await creator.create(creator.prepare(request))

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
        session: Session = await self._sender.call(request, _decode_session)
        return session

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
        # Every filter keyword, by name: the signature is the one list of the filters.
        filters = {name: value for name, value in locals().items() if name not in _NOT_FILTERS}
        params = _protocol.session_filters(self._scope, **filters)
        size = _protocol.check_page_size(first)

        async def fetch(cursor: str | None) -> Page[Session]:
            return await self._list_page({**params, "first": size, "after": cursor})

        return Pager(fetch, after=after, limit=limit)

    async def _list_page(self, params: dict[str, object]) -> Page[Session]:
        data = await self._sender.call(_protocol.list_sessions(self._scope, params))
        return _convert.structure_session_page(data)

    async def _messages_page(self, session_id: str, first: int, after: str | None) -> Page[Message]:
        request = _protocol.list_messages(self._scope, session_id, first, after)
        return _convert.structure_message_page(await self._sender.call(request))

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
        session: Session = await self._sender.call(request, _decode_session)
        self._engine.replied(_protocol.normalize_session_id(session_id), session)
        return session

    async def terminate_session(self, session_id: str, *, archive: bool = False) -> Session:
        """Stop a session for good (it cannot be resumed); optionally archive it too.

        Raises:
            ConfigurationError: the client has no org_id (no enterprise terminate).
        """
        request = _protocol.terminate_session(self._scope, session_id, archive)
        session: Session = await self._sender.call(request, _decode_session)
        return session

    async def archive_session(self, session_id: str) -> Session:
        """Archive a session: it stays readable but can no longer be changed.

        Raises:
            ConfigurationError: the client has no org_id (no enterprise archive).
        """
        request = _protocol.archive_session(self._scope, session_id)
        session: Session = await self._sender.call(request, _decode_session)
        return session

    async def get_tags(self, session_id: str) -> tuple[str, ...]:
        """Return a session's tags."""
        data = await self._sender.call(_protocol.get_tags(self._scope, session_id))
        return _convert.structure_tags(data)

    async def append_tags(self, session_id: str, tags: Sequence[str]) -> tuple[str, ...]:
        """Add tags to a session (at most 50 in all) and return its tags."""
        request = _protocol.set_tags(self._scope, session_id, tags, replace=False)
        return _convert.structure_tags(await self._sender.call(request))

    async def replace_tags(self, session_id: str, tags: Sequence[str]) -> tuple[str, ...]:
        """Replace a session's tags (at most 50) and return them."""
        request = _protocol.set_tags(self._scope, session_id, tags, replace=True)
        return _convert.structure_tags(await self._sender.call(request))

    async def list_attachments(self, session_id: str) -> tuple[Attachment, ...]:
        """Return the files attached to a session, by Devin or by users."""
        data = await self._sender.call(_protocol.list_attachments(self._scope, session_id))
        return _convert.structure_attachments(data)


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
