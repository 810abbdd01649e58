"""When is a session settled, and the loop that waits until it is.

The decisions are pure functions; the loop only fetches, decides and sleeps, with
``sleep`` and ``clock`` injected so deadlines and backoff are testable without waiting.

Statuses and details: https://docs.devin.ai/api-reference/v3/sessions/get-organizations-session.md
(``running`` + ``finished`` is "task complete", ``waiting_for_user`` "needs user input").
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from ._errors import AwaitTimeoutError, DevinError, ResponseValidationError
from ._models import Session, SessionStatus, StatusDetail
from ._retry import PollBackoff, Sleep, retry_reason, server_delay

__all__ = ["Predicate", "is_settled", "is_settled_or_awaiting_approval", "wait_for_session"]

log = logging.getLogger("devin_async")

Predicate = Callable[[Session], bool]

SETTLED_STATUSES = frozenset({SessionStatus.EXIT, SessionStatus.ERROR, SessionStatus.SUSPENDED})
SETTLED_DETAILS = frozenset({StatusDetail.FINISHED, StatusDetail.WAITING_FOR_USER})


def is_settled(session: Session) -> bool:
    """Return True when the wait should end: the session stopped, finished or needs you.

    Settled means status ``exit``, ``error`` or ``suspended``, or status_detail
    ``finished`` or ``waiting_for_user``.
    """
    return session.status in SETTLED_STATUSES or session.status_detail in SETTLED_DETAILS


def is_settled_or_awaiting_approval(session: Session) -> bool:
    """Like ``is_settled``, and also True when Devin waits for an action approval."""
    return is_settled(session) or session.status_detail == StatusDetail.WAITING_FOR_APPROVAL


def is_transient(exc: DevinError) -> bool:
    """Return True for a poll failure that should not end a wait."""
    return (
        isinstance(exc, ResponseValidationError) or retry_reason(exc, idempotent=True) is not None
    )


async def wait_for_session(
    fetch: Callable[[float], Awaitable[Session]],
    *,
    session_id: str,
    until: Predicate,
    timeout: float,
    poll_interval: float,
    max_poll_interval: float,
    sleep: Sleep,
    clock: Callable[[], float],
) -> Session:
    """Poll ``fetch`` until ``until(session)`` holds or the deadline passes.

    Args:
        fetch: makes one GET attempt; its argument is the request timeout, seconds.
        session_id: for messages and logs.
        until: the settled predicate.
        timeout: overall deadline of the wait, seconds.
        poll_interval: first delay between polls, seconds.
        max_poll_interval: cap on the delay between polls, seconds.
        sleep: the coroutine to wait with.
        clock: a monotonic clock, seconds.

    Raises:
        AwaitTimeoutError: the deadline passed; carries the last session seen.
        DevinError: a failure that polling again cannot fix (401, 403, 404, ...).
    """
    start = clock()
    deadline = start + timeout
    backoff = PollBackoff(poll_interval, max_poll_interval)
    last: Session | None = None
    polls = 0
    while True:
        remaining = deadline - clock()
        if remaining <= 0:
            elapsed = clock() - start
            state = f" (last seen: {last.status}/{last.status_detail})" if last else ""
            raise AwaitTimeoutError(
                f"session {session_id} did not settle within {timeout}s{state}",
                session=last,
                elapsed=elapsed,
                polls=polls,
            )
        polls += 1
        try:
            session = await fetch(remaining)
        except DevinError as exc:
            if not is_transient(exc):
                raise
            delay = max(backoff.next_delay(), server_delay(exc) or 0.0)
            log.debug("poll of %s failed (%s); next poll in %.2fs", session_id, exc, delay)
        else:
            if until(session):
                return session
            if last is not None and (last.status, last.status_detail) != (
                session.status,
                session.status_detail,
            ):
                log.debug(
                    "session %s is now %s/%s", session_id, session.status, session.status_detail
                )
                backoff.reset()
            last = session
            delay = backoff.next_delay()
        await sleep(min(delay, max(0.0, deadline - clock())))
