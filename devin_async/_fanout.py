"""Fan-out: start many sessions, and the result of one item of a fan-out.

The waits of a fan-out live in ``_waiting``; their results are ``SessionResult`` s.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

import anyio
import attrs

from ._errors import DevinError
from ._models import CreateSessionRequest, Session
from ._protocol import check_count

__all__ = ["SessionResult", "create_many"]

_P = TypeVar("_P")


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


def _prepare_item(
    prepare: Callable[[CreateSessionRequest], _P], index: int, item: str | CreateSessionRequest
) -> _P:
    """Check one item of a fan-out; a refusal names the item by its index."""
    try:
        if not isinstance(item, CreateSessionRequest):
            item = CreateSessionRequest(prompt=item)
        return prepare(item)
    except TypeError as exc:
        raise TypeError(f"create_sessions item {index}: {exc}") from exc
    except ValueError as exc:
        raise ValueError(f"create_sessions item {index}: {exc}") from exc


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
    items = [_prepare_item(prepare, index, r) for index, r in enumerate(requests)]
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
