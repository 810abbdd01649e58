"""What the client does, as events: for metrics, tracing, and the DEBUG log.

Pass ``DevinClient(hooks=[fn])`` or call ``client.add_hook(fn)``; each hook is called
synchronously with every event (keep it quick, or hand the event to a queue). A hook
that raises is logged at WARNING and never breaks the client. The
``devin_async`` logger's DEBUG lines are built from the same events, so nothing is
logged that a hook could not see, and events carry no credentials: no API key, no
header, no request body, no session secret.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import attrs

from ._errors import ConfigurationError

__all__ = [
    "Event",
    "Hook",
    "Hooks",
    "RateLimitPaused",
    "RequestSent",
    "ResponseReceived",
    "RetryScheduled",
    "SessionChanged",
    "WaitFinished",
]

log = logging.getLogger("devin_async")


@attrs.frozen
class RequestSent:
    """A request is about to be sent (one per attempt)."""

    method: str
    path: str
    session_id: str | None


@attrs.frozen
class ResponseReceived:
    """A response arrived (any status). ``elapsed`` is seconds since it was sent."""

    method: str
    path: str
    status: int
    elapsed: float
    request_id: str | None
    session_id: str | None


@attrs.frozen
class RetryScheduled:
    """A failed attempt will be retried after ``delay`` seconds."""

    method: str
    path: str
    reason: str
    delay: float
    attempt: int
    request_id: str | None
    session_id: str | None


@attrs.frozen
class RateLimitPaused:
    """A 429 paused every request of the client for ``seconds``; ``rate`` is the new cap."""

    seconds: float
    retry_after: float | None
    rate: float | None


@attrs.frozen
class SessionChanged:
    """A polled session's (status, status_detail) changed; ``previous_*`` are None at first."""

    session_id: str
    status: str
    status_detail: str | None
    previous_status: str | None
    previous_status_detail: str | None


@attrs.frozen
class WaitFinished:
    """A wait ended: ``outcome`` is "settled", "timeout", "error" or "cancelled"."""

    session_id: str
    outcome: str
    elapsed: float
    polls: int
    status: str | None
    status_detail: str | None


Event = (
    RequestSent
    | ResponseReceived
    | RetryScheduled
    | RateLimitPaused
    | SessionChanged
    | WaitFinished
)
Hook = Callable[[Event], object]


def _state(status: object, detail: object) -> str:
    """``status/detail``, or the status alone: a log line never shows a literal None."""
    if status is None:
        return "no state seen"
    return f"{status}/{detail}" if detail is not None else str(status)


def describe(event: Event) -> str:
    """Return the one-line DEBUG description of an event."""
    match event:
        case RequestSent():
            return f"-> {event.method} {event.path}"
        case ResponseReceived():
            rid = f" [{event.request_id}]" if event.request_id else ""
            return f"<- {event.status} {event.method} {event.path} in {event.elapsed:.3f}s{rid}"
        case RetryScheduled():
            return (
                f"retrying {event.method} {event.path} in {event.delay:.2f}s after "
                f"{event.reason} (attempt {event.attempt})"
            )
        case RateLimitPaused():
            return f"rate limited: pausing all requests for {event.seconds:.2f}s"
        case SessionChanged():
            return f"session {event.session_id} is now {_state(event.status, event.status_detail)}"
        case WaitFinished():
            return (
                f"wait for {event.session_id} ended: {event.outcome} after {event.elapsed:.2f}s"
                f" and {event.polls} polls ({_state(event.status, event.status_detail)})"
            )


class Hooks:
    """The client's event hooks, plus the DEBUG log built on them."""

    __slots__ = ("_hooks",)

    def __init__(self, hooks: Iterable[Hook] = ()) -> None:
        """Raises: ConfigurationError: ``hooks`` is not an iterable of callables."""
        items = list(hooks) if isinstance(hooks, Iterable) else None
        if items is None or not all(callable(hook) for hook in items):
            raise ConfigurationError(f"hooks must be an iterable of callables, got {hooks!r}")
        self._hooks: list[Hook] = items

    def add(self, hook: Hook) -> None:
        self._hooks.append(hook)

    def remove(self, hook: Hook) -> None:
        self._hooks.remove(hook)

    @property
    def active(self) -> bool:
        """True when an event would reach anyone: check it before building one."""
        return bool(self._hooks) or log.isEnabledFor(logging.DEBUG)

    def emit(self, event: Event) -> None:
        """Log the event at DEBUG and hand it to every hook; a failing hook is logged."""
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s", describe(event))
        for hook in self._hooks:
            try:
                hook(event)
            except Exception as exc:  # a metrics bug must not break the client
                log.warning("event hook %r failed on %s: %r", hook, type(event).__name__, exc)
