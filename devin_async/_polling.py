"""When is a session settled, and is a poll failure worth polling again: pure decisions.

The loop that applies them is ``_poller.Poller``.

Statuses and details: https://docs.devin.ai/api-reference/v3/sessions/get-organizations-session.md
(``running`` + ``finished`` is "task complete", ``waiting_for_user`` "needs user input").
"""

from __future__ import annotations

from collections.abc import Callable

from ._errors import AwaitTimeoutError
from ._models import Session, SessionStatus, StatusDetail
from ._retry import is_transient

__all__ = [
    "Predicate",
    "is_settled",
    "is_settled_or_awaiting_approval",
    "is_transient",
    "wait_timed_out",
]

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


def wait_timed_out(
    session_id: str,
    timeout: float,
    *,
    session: Session | None,
    elapsed: float,
    polls: int,
    last_error: BaseException | None,
) -> AwaitTimeoutError:
    """Build the error of a wait whose deadline passed, naming what it last saw.

    The message names the last state seen and, when polls failed, the last failure (an
    HTML 200 or a 502 from a proxy would otherwise hide behind "did not settle").
    """
    message = f"session {session_id} did not settle within {timeout}s"
    if session is not None:
        message += f" (last seen: {session.status}/{session.status_detail})"
    if last_error is not None:
        message += f"; the last poll failed: {type(last_error).__name__}: {last_error}"
    return AwaitTimeoutError(
        message, session=session, elapsed=elapsed, polls=polls, last_error=last_error
    )
