"""Exactly-once create: the marker tag, idempotency keys and the grace window.

The v3 API documents no idempotency key
(https://docs.devin.ai/api-reference/v3/sessions/post-organizations-sessions.md), so a
create carries a marker tag, ``devin-async-create:<32 hex>``, by which the client can
find the session it made. The rules, by how the create failed (``_retry.create_failure``):

- **Unanswered** (timeout, connection lost after sending, 504, an unreadable 2xx): the
  server may still be working on it, so it is never sent again. The marker is looked up
  repeatedly over a grace window (``grace`` seconds, by the injected clock) and the
  session is returned as soon as it appears; otherwise ``CreateOutcomeUnknownError``
  carries the marker and the key.
- **Answered** 500/502: the server may have acted, and its list may lag, so the marker is
  watched for over the grace window, and the create is sent again only if it never
  appears. **Answered** 408/503 (the server declined): looked up once, then sent again
  if it did not land (``_retry.call_exactly_once``).
- A 429 or a connection refused before sending is simply retried (``_pipeline.Sender.call``).

A lookup accepts only a session whose ``tags`` hold the marker: a server that misreads
or ignores the ``tags`` filter must not make the client return someone else's session.

With an ``idempotency_key`` the marker is derived from the key (a hash: the key itself
is never sent) and looked up *before* the first send, so a caller that calls again with
the same key, from another process or after a restart, gets the session it made.

Tags can be restricted to an allowed list per enterprise (reference §11): a 422 that
names the marker proves nothing was created, so the create is sent once more without it,
one WARNING is logged, and from then on this client creates without a marker, at most
once (never sent again after an unanswered request). A keyed create then fails with
``ConfigurationError``: without its tag, a key cannot be honoured.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import sys
import warnings
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs

from . import _protocol
from ._errors import (
    ConfigurationError,
    CreateOutcomeUnknownError,
    DevinError,
    UnprocessableEntityError,
)
from ._models import CreateSessionRequest, Page, Session
from ._retry import (
    OnRetry,
    RetryPolicy,
    Sleep,
    call_exactly_once,
    create_failure,
    is_transient,
    may_have_acted,
    poll_delay,
)

__all__ = [
    "CREATE_TAG_PREFIX",
    "DEFAULT_GRACE",
    "Creator",
    "Prepared",
    "landed",
    "marker_for",
    "names_marker",
    "request_of",
]

log = logging.getLogger("devin_async")

CREATE_TAG_PREFIX = "devin-async-create:"
"""The reserved tag prefix that makes a create findable after an ambiguous failure."""
DEFAULT_GRACE = 10.0
"""Least grace window, seconds; the client's default is ``max(this, its timeout)``."""
LOOKUP_PAGE = 20
"""Sessions asked for per lookup: more than one, in case the server ignores the filter."""
FIRST_LOOKUP_DELAY = 0.5
"""Seconds before the second lookup of a grace window; the delay doubles from there."""
MAX_LOOKUP_DELAY = 2.0
"""Cap on the delay between lookups of a grace window, seconds."""

PostSession = Callable[[_protocol.Request], Awaitable[Session]]
ListPage = Callable[[dict[str, object]], Awaitable[Page[Session]]]


def request_of(prompt: str | CreateSessionRequest, fields: dict[str, Any]) -> CreateSessionRequest:
    """Return the create request of ``create_session(prompt, **fields)``.

    Raises:
        ValueError: a ``CreateSessionRequest`` together with keywords set, or bad fields.
    """
    if isinstance(prompt, CreateSessionRequest):
        given = sorted(name for name, value in fields.items() if value is not None)
        if given:
            raise ValueError(f"pass either a CreateSessionRequest or keywords, not both: {given}")
        return prompt
    return CreateSessionRequest(prompt=prompt, **fields)


_PACKAGE = Path(__file__).resolve().parent


def _outside_caller() -> int:
    """Return the ``stacklevel`` that names the nearest caller outside this package."""
    frame, level = sys._getframe(1), 1  # who asks: the frame that calls warnings.warn
    while frame.f_back is not None and Path(frame.f_code.co_filename).resolve().is_relative_to(
        _PACKAGE
    ):
        frame, level = frame.f_back, level + 1
    return level


def _warn_deprecated(request: CreateSessionRequest) -> None:
    """Warn, on the caller's line, of a create that uses a field the API dropped.

    ``advanced_mode`` is on the oldest create page only, not in the current SDK's create
    request (https://docs.devin.ai/sdk/api/DevinApi/interfaces/SessionCreateRequest.md):
    it is still sent when given, for servers that take it.
    """
    if request.advanced_mode is not None:
        warnings.warn(
            "advanced_mode is deprecated: the current Devin API no longer documents it; it is "
            "still sent, but the server may ignore or refuse it",
            DeprecationWarning,
            stacklevel=_outside_caller(),
        )


def marker_for(idempotency_key: str | None) -> str:
    """Return the marker tag of a create: derived from the key, or random without one."""
    if idempotency_key is None:
        return CREATE_TAG_PREFIX + secrets.token_hex(16)
    digest = hashlib.sha256(f"devin-async:{idempotency_key}".encode()).hexdigest()
    return CREATE_TAG_PREFIX + digest[:32]


def landed(sessions: Iterable[Session], marker: str) -> Session | None:
    """Return the session that carries ``marker`` (the oldest, if several), or None.

    Sessions without the marker are ignored whatever the server meant by listing them.
    """
    found = [s for s in sessions if marker in s.tags]
    return min(found, key=lambda s: s.created_at) if found else None


def names_marker(exc: UnprocessableEntityError, marker: str) -> bool:
    """Return True when a 422 refuses the marker tag (an allowed-tags list)."""
    return any(marker in detail.msg for detail in exc.errors) or marker in str(exc.body)


def _with_marker(tags: Sequence[str] | None, marker: str) -> tuple[str, ...]:
    """Return ``tags`` and the marker; the protocol checks the tags themselves."""
    given = tags or ()
    if len(given) + 1 > _protocol.MAX_TAGS:
        raise ValueError(
            f"at most {_protocol.MAX_TAGS - 1} tags per create, got {len(given)}: the "
            f"exactly-once marker tag takes one of the {_protocol.MAX_TAGS} a session may have"
        )
    return (*given, marker)


@attrs.frozen
class Prepared:
    """A create checked and built before any request: what to send, and how to find it."""

    request: CreateSessionRequest
    http: _protocol.Request
    marker: str | None


class Creator:
    """Create sessions under the exactly-once rules of the module docstring.

    Args:
        build: turns a create request into its HTTP request (checks it; no I/O).
        post: sends a create, retrying only what the server cannot have acted on.
        list_page: one list call with the given query parameters.
        policy: the retry policy of answered failures.
        sleep, clock: injected time for the grace window.
        grace: seconds an unanswered create is looked up for.
        tagging: mark creates that have no idempotency key (``exactly_once_create``).
        on_retry: told of each resend after an answered failure.
    """

    def __init__(
        self,
        *,
        build: Callable[[CreateSessionRequest], _protocol.Request],
        post: PostSession,
        list_page: ListPage,
        policy: RetryPolicy,
        sleep: Sleep,
        clock: Callable[[], float],
        grace: float,
        tagging: bool,
        on_retry: OnRetry | None = None,
    ) -> None:
        self._build, self._post, self._list_page = build, post, list_page
        self._policy, self._sleep, self._clock = policy, sleep, clock
        self._grace = grace
        self._tagging = tagging
        self._marker_refused = False
        self._on_retry = on_retry

    @property
    def tagging(self) -> bool:
        """Whether creates without an idempotency key carry a marker."""
        return self._tagging and not self._marker_refused

    def prepare(self, request: CreateSessionRequest) -> Prepared:
        """Check ``request`` and build what to send, before any request is made.

        Raises:
            ValueError, TypeError: bad fields, or too many tags with the marker.
            ConfigurationError: no org_id, or a key where the marker tag is refused.

        Warns:
            DeprecationWarning: the request sets ``advanced_mode``.
        """
        _warn_deprecated(request)
        key = request.idempotency_key
        if self._marker_refused and key is not None:
            raise _key_refused()
        if key is None and not self.tagging:
            return Prepared(request, self._build(request), None)
        marker = marker_for(key)
        tagged = attrs.evolve(request, tags=_with_marker(request.tags, marker))
        return Prepared(request, self._build(tagged), marker)

    async def create(self, prepared: Prepared) -> Session:
        """Send a prepared create and return its session (see the module docstring)."""
        marker = prepared.marker
        if marker is None:
            return await self._post(prepared.http)
        key = prepared.request.idempotency_key
        if key is not None and (found := await self._lookup(marker)) is not None:
            log.debug("create session: idempotency key already used; not sent")
            return found
        try:
            return await call_exactly_once(
                lambda: self._send_marked(prepared.http, marker, key),
                lambda failure: self._look_after(failure, marker),
                policy=self._policy,
                sleep=self._sleep,
                what="create session",
                on_retry=self._on_retry,
            )
        except UnprocessableEntityError as exc:
            if not names_marker(exc, marker):
                raise
            self._refuse_marker()
            if key is not None:
                raise _key_refused() from exc
            return await self._post(self._build(prepared.request))

    def _refuse_marker(self) -> None:
        if not self._marker_refused:
            self._marker_refused = True
            log.warning(
                "the organization refuses the exactly-once marker tag (%s...): creating "
                "without it from now on; a create that is not answered will not be retried",
                CREATE_TAG_PREFIX,
            )

    async def _lookup(self, marker: str) -> Session | None:
        page = await self._list_page({"tags": [marker], "first": LOOKUP_PAGE})
        return landed(page.items, marker)

    async def _send_marked(self, http: _protocol.Request, marker: str, key: str | None) -> Session:
        try:
            return await self._post(http)
        except DevinError as exc:
            if create_failure(exc) != "unanswered":
                raise
            failure = exc
        return await self._await_landing(failure, marker, key)

    async def _await_landing(self, failure: DevinError, marker: str, key: str | None) -> Session:
        """Look ``marker`` up over the grace window; never send the create again."""
        start = self._clock()
        found, lookups, lookup_error = await self._watch(marker)
        if found is not None:
            log.debug("create session was not answered but landed; not sent again")
            return found
        elapsed = self._clock() - start
        raise _outcome_unknown(failure, marker, key, elapsed, lookups, lookup_error)

    async def _look_after(self, failure: BaseException, marker: str) -> Session | None:
        """Tell whether a create answered with ``failure`` landed after all (None: no).

        After a 500 or 502 the server may have acted, and its list may show the session
        only later: it is watched for over the grace window. After a 408 or 503 (the
        server declined) one lookup answers.

        Raises:
            DevinError: no lookup answered cleanly, so whether it landed is unknown.
        """
        if not may_have_acted(failure):
            return await self._lookup(marker)
        found, _, lookup_error = await self._watch(marker)
        if found is None and lookup_error is not None:
            raise lookup_error
        return found

    async def _watch(self, marker: str) -> tuple[Session | None, int, DevinError | None]:
        """Look ``marker`` up until found or the grace window ends.

        Returns the session found (or None), the number of lookups, and the failure of
        the last lookup if it failed (None if it answered). A lookup that fails for good
        (401, 403, ...) ends the window at once.
        """
        clock = self._clock
        deadline = clock() + self._grace
        lookups = 0
        while True:
            lookups += 1
            try:
                found, lookup_error = await self._lookup(marker), None
            except DevinError as exc:
                found, lookup_error = None, exc
                if not is_transient(exc):
                    break  # looking again will not help
            if found is not None:
                break
            now = clock()
            if now >= deadline:
                break
            delay = poll_delay(lookups, FIRST_LOOKUP_DELAY, MAX_LOOKUP_DELAY)
            await self._sleep(min(delay, deadline - now))
        return found, lookups, lookup_error


def _outcome_unknown(
    failure: DevinError,
    marker: str,
    key: str | None,
    elapsed: float,
    lookups: int,
    lookup_error: DevinError | None,
) -> CreateOutcomeUnknownError:
    looked = f"no session tagged {marker} appeared in {elapsed:.1f}s ({lookups} lookups)"
    if lookup_error is not None:
        looked += f"; the last lookup failed: {type(lookup_error).__name__}: {lookup_error}"
    again = (
        f"call create_session again with idempotency_key={key!r} to get it or create it"
        if key is not None
        else "pass an idempotency_key to make a create safe to call again"
    )
    error = CreateOutcomeUnknownError(
        f"create session was sent but not answered ({type(failure).__name__}: {failure}), "
        f"and {looked}. It may still be created: find it with "
        f"list_sessions(tags=[{marker!r}]), or {again}",
        marker=marker,
        idempotency_key=key,
        elapsed=elapsed,
        lookups=lookups,
    )
    error.__cause__ = failure
    return error


def _key_refused() -> ConfigurationError:
    return ConfigurationError(
        f"idempotency_key needs the tag {CREATE_TAG_PREFIX}<hash> on the session, and this "
        "organization's allowed tags refuse it; allow that prefix, or create without a key"
    )
