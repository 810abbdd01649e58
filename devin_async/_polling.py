"""When is a session settled, and is a poll failure worth polling again: pure decisions.

The loop that applies them is ``_poller.Poller``.

Statuses and details: https://docs.devin.ai/api-reference/v3/sessions/get-organizations-session.md
(``running`` + ``finished`` is "task complete", ``waiting_for_user`` "needs user input").
"""

from __future__ import annotations

from collections.abc import Callable

from ._errors import DevinError, ResponseValidationError
from ._models import Session, SessionStatus, StatusDetail
from ._retry import retry_reason

__all__ = ["Predicate", "is_settled", "is_settled_or_awaiting_approval", "is_transient"]

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
