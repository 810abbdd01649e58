"""DevinClient: configuration, lifecycle, one method per endpoint, composition.

Each method builds a request with ``_protocol``, sends it through ``_retry`` and
``_transport``, and structures the JSON with ``_convert``. Source for paths and fields:
https://docs.devin.ai/api-reference/v3/sessions/post-organizations-sessions.md
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Self

import aiohttp

from . import _convert, _protocol
from ._errors import ConfigurationError
from ._models import AdvancedMode, CreateSessionRequest, DevinMode, Session, SessionSecret
from ._polling import Predicate, is_settled, wait_for_session
from ._retry import RetryPolicy, Sleep, call_with_retries
from ._transport import Transport, user_agent
from ._version import __version__

__all__ = ["DevinClient", "await_session"]

DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 3
DEFAULT_AWAIT_TIMEOUT = 600.0
DEFAULT_POLL_INTERVAL = 2.0
DEFAULT_MAX_POLL_INTERVAL = 30.0


def _positive(name: str, value: float) -> float:
    if not value > 0:
        raise ConfigurationError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


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
        sleep: coroutine used for every wait (injected in tests).
        clock: monotonic clock, seconds (injected in tests).

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
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("DEVIN_API_KEY", "")
        if not key or key != key.strip() or any(c in key for c in "\r\n\0"):
            raise ConfigurationError(
                "no usable API key: pass api_key= or set DEVIN_API_KEY "
                "(a cog_ service-user key or personal access token)"
            )
        org = org_id if org_id is not None else os.environ.get("DEVIN_ORG_ID") or None
        self.org_id = _protocol.check_org_id(org) if org is not None else None
        self.base_url = _protocol.check_base_url(
            base_url or os.environ.get("DEVIN_BASE_URL") or _protocol.DEFAULT_BASE_URL
        )
        if max_retries < 0:
            raise ConfigurationError(f"max_retries must be >= 0, got {max_retries!r}")
        self.timeout = _positive("timeout", timeout)
        self.poll_interval = _positive("poll_interval", poll_interval)
        self.max_poll_interval = _positive("max_poll_interval", max_poll_interval)
        self._scope = _protocol.Scope(self.org_id)
        self._policy = RetryPolicy(max_retries=max_retries)
        self._sleep = sleep
        self._clock = clock
        self._transport = Transport(
            self.base_url,
            {
                "Authorization": f"Bearer {key}",
                "Accept": "application/json",
                "User-Agent": user_agent(__version__),
            },
            self.timeout,
            session,
        )

    def __repr__(self) -> str:
        scope = f"org_id={self.org_id!r}" if self.org_id else "scope='enterprise'"
        state = " closed" if self.closed else ""
        return f"<DevinClient base_url={self.base_url!r} {scope}{state}>"

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
        """Close the client and its own HTTP session (a borrowed session stays open)."""
        await self._transport.aclose()

    # ------------------------------------------------------------------ plumbing

    async def _attempt(self, request: _protocol.Request, timeout: float | None = None) -> Any:
        response = await self._transport.send(request, timeout)
        return _protocol.decode(request, response, self._transport.url(request))

    async def _call(self, request: _protocol.Request) -> Any:
        return await call_with_retries(
            lambda: self._attempt(request),
            idempotent=request.idempotent,
            policy=self._policy,
            sleep=self._sleep,
            what=f"{request.method} {request.path}",
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
    ) -> Session:
        """Start a Devin session and return it as created.

        Pass a prompt and keyword fields, or one ``CreateSessionRequest``. Fields left
        as None are not sent (the server applies its defaults). The create is retried
        only when the server cannot have acted on it (refused connection, 429).

        Raises:
            ValueError: empty prompt, or a request object together with keywords.
            ConfigurationError: the client has no org_id.
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
        data = await self._call(_protocol.create_session(self._scope, request))
        return _convert.structure_session(data)

    async def get_session(self, session_id: str) -> Session:
        """Return the current state of a session (``devin-`` prefix optional).

        Raises:
            ValueError: the id is not a safe session id (no request is made).
            NotFoundError: no such session for this key.
            DevinError: any other failure after retries.
        """
        data = await self._call(_protocol.get_session(self._scope, session_id))
        return _convert.structure_session(data)

    async def await_session(
        self,
        session_id: str,
        *,
        timeout: float = DEFAULT_AWAIT_TIMEOUT,
        until: Predicate | None = None,
        poll_interval: float | None = None,
        max_poll_interval: float | None = None,
    ) -> Session:
        """Poll a session until it settles, and return its settled state.

        Settled (by default) means status ``exit``/``error``/``suspended`` or
        status_detail ``finished``/``waiting_for_user``; pass ``until=`` to decide
        otherwise (e.g. ``is_settled_or_awaiting_approval``). Transient failures are
        retried within the deadline. Cancelling the awaiting task cancels only the
        wait, never the Devin session.

        Args:
            session_id: the session to wait for.
            timeout: overall deadline, seconds.
            until: predicate on the session; the wait ends when it returns True.
            poll_interval: first delay between polls, seconds (default: the client's).
            max_poll_interval: cap on the delay between polls, seconds.

        Raises:
            AwaitTimeoutError: the deadline passed; ``.session`` is the last state seen.
            ValueError: the id is not a safe session id (no request is made).
            DevinError: a failure polling cannot fix (401, 403, 404, ...).
        """
        request = _protocol.get_session(self._scope, session_id)

        async def fetch(remaining: float) -> Session:
            data = await self._attempt(request, min(self.timeout, remaining))
            return _convert.structure_session(data)

        return await wait_for_session(
            fetch,
            session_id=_protocol.normalize_session_id(session_id),
            until=until or is_settled,
            timeout=_positive("timeout", timeout),
            poll_interval=_positive("poll_interval", poll_interval or self.poll_interval),
            max_poll_interval=_positive(
                "max_poll_interval", max_poll_interval or self.max_poll_interval
            ),
            sleep=self._sleep,
            clock=self._clock,
        )


async def await_session(
    client: DevinClient,
    session_id: str,
    *,
    timeout: float = DEFAULT_AWAIT_TIMEOUT,
    until: Predicate | None = None,
    poll_interval: float | None = None,
    max_poll_interval: float | None = None,
) -> Session:
    """Wait for a session to settle; the same coroutine as ``DevinClient.await_session``."""
    return await client.await_session(
        session_id,
        timeout=timeout,
        until=until,
        poll_interval=poll_interval,
        max_poll_interval=max_poll_interval,
    )
