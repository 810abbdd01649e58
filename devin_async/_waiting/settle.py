"""When a wait ends: the settled predicates, the options of a wait, and its timeout error.

Pure decisions; the loop that applies them is ``engine.Engine``.

Statuses and details: https://docs.devin.ai/api-reference/v3/sessions/get-organizations-session.md
(``running`` + ``finished`` is "task complete", ``waiting_for_user`` "needs user input").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import attrs

from .._errors import AwaitTimeoutError
from .._models import Message, Session, SessionStatus, StatusDetail
from .._protocol import check_positive

__all__ = [
    "Predicate",
    "ReplyProof",
    "WaitOptions",
    "is_settled",
    "is_settled_or_awaiting_approval",
    "state_key",
    "wait_timed_out",
]

Predicate = Callable[[Session], bool]
StateKey = tuple[str, str | None]

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


def state_key(session: Session) -> StateKey:
    """The state a wait reports changes of: (status, status_detail)."""
    return session.status, session.status_detail


def _seconds(name: str) -> Callable[[object, attrs.Attribute[float | None], float | None], None]:
    def check(_: object, __: attrs.Attribute[float | None], value: float | None) -> None:
        if value is not None:
            check_positive(name, value)

    return check


def _predicate(_: object, __: attrs.Attribute[Predicate | None], value: object) -> None:
    if value is not None and not callable(value):
        raise TypeError(f"until must be a callable taking a Session, not {value!r}")


@attrs.frozen
class WaitOptions:
    """The options of one wait; None means "the client's default".

    The same rule checks a client's defaults and each call's options: seconds are
    positive finite numbers (``poll_interval=0`` is refused, never read as "default").

    Raises:
        ValueError: a value of seconds that is not a positive finite number.
        TypeError: an ``until`` that is not callable.
    """

    timeout: float | None = attrs.field(default=None, validator=_seconds("timeout"))
    until: Predicate | None = attrs.field(default=None, validator=_predicate)
    poll_interval: float | None = attrs.field(default=None, validator=_seconds("poll_interval"))
    max_poll_interval: float | None = attrs.field(
        default=None, validator=_seconds("max_poll_interval")
    )

    def over(self, defaults: Wait) -> Wait:
        """Return these options with every unset one taken from ``defaults``."""
        return Wait(
            self.until or defaults.until,
            defaults.timeout if self.timeout is None else float(self.timeout),
            defaults.poll_interval if self.poll_interval is None else float(self.poll_interval),
            defaults.max_poll_interval
            if self.max_poll_interval is None
            else float(self.max_poll_interval),
        )


@attrs.frozen
class Wait:
    """A wait's options, all set (what the engine reads)."""

    until: Predicate
    timeout: float
    poll_interval: float
    max_poll_interval: float


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
        state = (
            f"{session.status}/{session.status_detail}" if session.status_detail else session.status
        )
        message += f" (last seen: {state})"
    if last_error is not None:
        message += f"; the last poll failed: {type(last_error).__name__}: {last_error}"
    return AwaitTimeoutError(
        message, session=session, elapsed=elapsed, polls=polls, last_error=last_error
    )


class ReplyProof:
    """Reads a session's messages for proof that Devin acted after a reply.

    The state lags after a message, so a session that still shows the state of ``since``
    may have moved on and come back to it (Devin answered within one poll). The proof is
    a message of Devin's after the last user message sent at or after
    ``since.updated_at`` (the reply), or one created later than that; without an
    ``updated_at``, one after the last user message. Messages are fed oldest first,
    each once (``last_event_id`` says where a read stopped), a page or more at a time.
    Whole seconds make the first rule loose (a prompt sent in the same second as the
    reply counts as one), so a proof alone never settles a wait on the lagged copy of
    ``since`` (``Waiter.settles``).
    """

    __slots__ = ("_after_reply", "_answered", "_sent_at", "cursor", "last_event_id")

    def __init__(self, sent_at: int) -> None:
        self._sent_at = sent_at
        self._after_reply = False
        self._answered = False
        self.cursor: str | None = None  # where the next read of the messages starts
        self.last_event_id: str | None = None

    def feed(self, messages: Iterable[Message]) -> bool:
        """Read more messages; return True if Devin spoke after the latest reply so far."""
        sent_at = self._sent_at
        for message in messages:
            self.last_event_id = message.event_id
            if message.source == "user":
                if message.created_at >= sent_at:
                    self._after_reply, self._answered = True, False
            elif self._after_reply or message.created_at > sent_at:
                self._answered = True
        return self._answered
