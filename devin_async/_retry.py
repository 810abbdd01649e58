"""Retry policy: pure classification plus the one tenacity wiring.

| request                    | retried on                                 | never retried on      |
| -------------------------- | ------------------------------------------ | --------------------- |
| GET, DELETE, archive       | connection errors, timeouts, 408, 429, 5xx | other 4xx             |
| POST create / send message | connection refused before sending, 429     | timeouts or 5xx after |
|                            |                                            | the body was sent     |

(5xx = 500, 502, 503, 504.) A create whose body may have reached the server is never sent
again: a second attempt could start a second Devin session (the v3 API documents no
idempotency key: https://docs.devin.ai/api-reference/v3/sessions/post-organizations-sessions.md).

A server's explicit word wins over the table: ``x-should-retry: false`` is never retried,
and ``x-should-retry: true`` is, whatever the status (the official SDKs honour it) --
except a POST answered 504, which is a gateway that gave up waiting, not the server's
answer: it is still never sent again (``create_failure`` says "unanswered").

Backoff is exponential with full jitter, capped; a ``Retry-After`` raises the delay up
to ``max_retry_after``, beyond which the error is raised at once with ``retry_after`` set.
The success path never enters tenacity (its loop costs time and builds reference
cycles): the caller makes the first attempt and calls ``retry_after_failure`` only if it
failed (``_pipeline.Sender.call``).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar

import attrs
import tenacity as _t

from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    DevinError,
    ResponseValidationError,
)

__all__ = [
    "CreateFailure",
    "OnRetry",
    "RetryPolicy",
    "call_exactly_once",
    "create_failure",
    "is_transient",
    "may_have_acted",
    "poll_delay",
    "poll_retry_delay",
    "retry_after_failure",
    "retry_reason",
    "server_delay",
]

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
# Told of each retry before its sleep: the failure, the delay (seconds), the attempt number.
OnRetry = Callable[[BaseException, float, int], None]

log = logging.getLogger("devin_async")

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@attrs.frozen
class RetryPolicy:
    """How one request is retried. All durations are seconds."""

    max_retries: int = 3
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    max_retry_after: float = 60.0
    max_total: float = 120.0


def retry_reason(exc: BaseException, *, idempotent: bool) -> str | None:
    """Return why ``exc`` may be retried for a request of this kind, or None if it may not."""
    if isinstance(exc, APIStatusError):
        status = exc.status_code
        told = exc.should_retry
        if told is False:
            return None
        if told and (idempotent or status != 504):
            return f"HTTP {status} (x-should-retry)"
        if status == 429 or (idempotent and status in RETRYABLE_STATUSES):
            return f"HTTP {status}"
        return None
    if isinstance(exc, APIConnectionError) and (idempotent or not exc.request_sent):
        return "timeout" if isinstance(exc, APITimeoutError) else "connection error"
    return None


def is_transient(exc: BaseException) -> bool:
    """Return True for a failure of a read that reading again may fix.

    What an idempotent request is retried on, and a 2xx body that could not be decoded
    (a proxy's HTML page, a truncated answer): a poll or a lookup reads again.
    """
    return (
        isinstance(exc, ResponseValidationError) or retry_reason(exc, idempotent=True) is not None
    )


def server_delay(exc: BaseException) -> float | None:
    """Return the wait the server asked for (Retry-After), in seconds, if any."""
    return exc.retry_after if isinstance(exc, APIStatusError) else None


class _Wait(_t.wait.wait_base):
    """Full-jitter exponential backoff, raised to the server's Retry-After."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._backoff = _t.wait_random_exponential(
            multiplier=policy.backoff_base, max=policy.backoff_max
        )

    def __call__(self, retry_state: _t.RetryCallState) -> float:
        delay = self._backoff(retry_state)
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        floor = server_delay(exc) if exc is not None else None
        return max(delay, floor or 0.0)


async def retry_after_failure(
    first: APIStatusError | APIConnectionError,
    fn: Callable[[], Awaitable[T]],
    *,
    idempotent: bool,
    policy: RetryPolicy,
    sleep: Sleep,
    what: str,
    on_retry: OnRetry | None = None,
) -> T:
    """Retry ``fn()`` per the policy table, its first attempt having failed with ``first``.

    The caller makes the first attempt itself, so that a call that succeeds at once
    costs no closure, label or retry machinery. ``first`` counts as attempt 1 for the
    policy's attempt and delay rules; it is raised at once if it may not be retried.

    Args:
        first: the failure of the first attempt.
        fn: makes one attempt; raises a DevinError on failure.
        idempotent: whether repeating the request is harmless.
        policy: attempt, delay and time bounds.
        sleep: the coroutine to wait with (injected for tests).
        what: a short label for log lines, e.g. "GET /v3/.../sessions/devin-1".
        on_retry: told of each retry before it sleeps; without it, a DEBUG line.
    """
    if not _should_retry(first, idempotent, policy) or policy.max_retries <= 0:
        raise first

    def should_retry(exc: BaseException) -> bool:
        return _should_retry(exc, idempotent, policy)

    before_sleep = _reporter(what, on_retry, idempotent=idempotent)
    return await _retry_loop(first, fn, policy, sleep, should_retry, before_sleep)


def _reporter(
    what: str, on_retry: OnRetry | None, *, idempotent: bool
) -> Callable[[_t.RetryCallState], None]:
    """Return tenacity's before-sleep callback: ``on_retry``, or a DEBUG line."""

    def before_sleep(state: _t.RetryCallState) -> None:
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        assert exc is not None  # tenacity only sleeps after a failed attempt
        if isinstance(exc, _LookupFailed):
            exc = exc.lookup_error  # what is retried is the lookup
        if on_retry is not None:
            on_retry(exc, state.upcoming_sleep, state.attempt_number)
            return
        log.debug(
            "retrying %s in %.2fs after %s (attempt %d)",
            what,
            state.upcoming_sleep,
            retry_reason(exc, idempotent=idempotent) or type(exc).__name__,
            state.attempt_number,
        )

    return before_sleep


async def _retry_loop(
    first: BaseException,
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    sleep: Sleep,
    should_retry: Callable[[BaseException], bool],
    before_sleep: Callable[[_t.RetryCallState], None] | None = None,
) -> T:
    """The one tenacity loop: ``first`` counts as attempt 1, then ``fn()`` is retried."""
    retrying = _t.AsyncRetrying(
        stop=_t.stop_after_attempt(policy.max_retries + 1) | _t.stop_before_delay(policy.max_total),
        wait=_Wait(policy),
        retry=_t.retry_if_exception(should_retry),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    replay: BaseException | None = first
    async for attempt in retrying:
        with attempt:
            if replay is not None:
                # Hand the failure already seen to tenacity as attempt 1, so its
                # counting, waits and stop rules cover the whole call.
                seen, replay = replay, None
                raise seen
            return await fn()
    raise AssertionError("unreachable: tenacity either returns or re-raises")


CreateFailure = Literal["unanswered", "answered", "final"]


def create_failure(exc: BaseException) -> CreateFailure:
    """Classify why a create failed, for the exactly-once rules (see ``_create``).

    - ``unanswered``: the request was sent and no usable answer came back (a timeout, a
      connection lost after sending, a 504 from a gateway that gave up waiting, or a 2xx
      whose body could not be read). The server may still be working on it: it is looked
      up over a grace window and never sent again.
    - ``answered``: the server answered 408, 500, 502 or 503. It may have acted; it is
      looked up once, then sent again if it did not land.
    - ``final``: anything else (4xx, or a failure the request's own retries already
      covered because the server cannot have acted on it, or one the server said
      ``x-should-retry`` about: "false" forbids sending it again, and "true" was already
      honoured by the request's own retries): raised as it is.
    """
    if isinstance(exc, ResponseValidationError):
        return "unanswered"
    if isinstance(exc, APIConnectionError):
        return "unanswered" if exc.request_sent else "final"
    if isinstance(exc, APIStatusError):
        if exc.status_code == 504:
            return "unanswered"
        if (
            exc.should_retry is None
            and exc.status_code != 429
            and exc.status_code in RETRYABLE_STATUSES
        ):
            return "answered"
    return "final"


MAY_HAVE_ACTED = frozenset({500, 502})
"""Answered statuses after which the server may have done what was asked (408 and 503
decline a request; 504 is a gateway that gave up waiting, classed as unanswered)."""


def may_have_acted(exc: BaseException) -> bool:
    """Return True for an answered failure after which the server may have acted."""
    return isinstance(exc, APIStatusError) and exc.status_code in MAY_HAVE_ACTED


def _answered(exc: BaseException) -> bool:
    return create_failure(exc) == "answered"


def _look_again(exc: BaseException) -> bool:
    """Retry after an answered failure, or after a lookup that may work next time."""
    if isinstance(exc, _LookupFailed):
        return is_transient(exc.lookup_error)
    return _answered(exc)


async def call_exactly_once(
    send: Callable[[], Awaitable[T]],
    lookup: Callable[[BaseException], Awaitable[T | None]],
    *,
    policy: RetryPolicy,
    sleep: Sleep,
    what: str,
    on_retry: OnRetry | None = None,
) -> T:
    """Await a non-idempotent ``send()`` so that its effect happens once, if at all.

    ``send`` makes one request, retried by itself only where the server cannot have
    acted (``retry_after_failure``), and deals with an unanswered request itself (it never
    sends again after one). What is left is an *answered* failure that may have taken
    effect (``create_failure`` says "answered"): then ``lookup(failure)`` asks the server
    whether the earlier attempt landed, and its result is returned if so; only when it
    finds nothing is ``send`` tried again, within the policy's bounds. When the last
    attempt allowed fails that way, one last lookup runs before its error is raised.

    Nothing is sent again unless a lookup answered that the earlier attempt did not
    land. A lookup that fails transiently (``is_transient``) is tried again within the
    same bounds; one that fails for good (401, 403, ...), or the last one allowed, ends
    the call with the error of the request it was checking, with a note naming the
    lookup's failure: the caller asked to create, so that is the failure to report.
    """
    try:
        return await send()
    except (APIStatusError, APIConnectionError) as exc:
        if not _answered(exc) or policy.max_retries <= 0:
            raise
        first = exc
    last: list[APIStatusError | APIConnectionError] = [first]

    async def look_up() -> T | None:
        try:
            return await lookup(last[-1])
        except DevinError as exc:
            raise _LookupFailed(last[-1], exc) from None

    async def look_then_send() -> T:
        found = await look_up()
        if found is not None:
            log.debug("%s had landed before it failed; not sent again", what)
            return found
        log.debug("%s did not land; sending it again", what)
        try:
            return await send()
        except (APIStatusError, APIConnectionError) as exc:
            last.append(exc)
            raise

    before_sleep = _reporter(what, on_retry, idempotent=True)
    try:
        try:
            return await _retry_loop(
                first, look_then_send, policy, sleep, _look_again, before_sleep
            )
        except (APIStatusError, APIConnectionError) as exc:
            if not _answered(exc):
                raise
        found = await look_up()  # the last attempt may have landed: look once more
    except _LookupFailed as failed:
        error: DevinError = failed.reported()
    else:
        if found is not None:
            log.debug("%s had landed on its last attempt; not reported as failed", what)
            return found
        error = last[-1]
    raise error  # outside the handler: the private _LookupFailed is not its context


class _LookupFailed(Exception):
    """A lookup failed: carries the error of the request it was checking."""

    def __init__(self, request_error: DevinError, lookup_error: DevinError) -> None:
        super().__init__()
        self.request_error, self.lookup_error = request_error, lookup_error

    def reported(self) -> DevinError:
        """Return the request's error, with a note naming the lookup's failure."""
        lookup_error = self.lookup_error
        note = f"looking it up failed too: {type(lookup_error).__name__}: {lookup_error}"
        self.request_error.add_note(note)
        return self.request_error


def _should_retry(exc: BaseException, idempotent: bool, policy: RetryPolicy) -> bool:
    if retry_reason(exc, idempotent=idempotent) is None:
        return False
    delay = server_delay(exc)
    # A server that asks for a longer pause than we are willing to take gets its
    # error raised at once, with .retry_after set, instead of a silent long sleep.
    return delay is None or delay <= policy.max_retry_after


def poll_retry_delay(exc: BaseException, max_retry_after: float) -> float | None:
    """Return how long a failed poll asks to wait before the next one, or None if fatal.

    The rule of requests applied to waits: a transient failure (``is_transient``) is
    polled again after its ``Retry-After`` (0 without one), unless that exceeds
    ``max_retry_after``, which makes it fatal, like any other failure.
    """
    if not (isinstance(exc, DevinError) and is_transient(exc)):
        return None
    delay = server_delay(exc) or 0.0
    return None if delay > max_retry_after else delay


def poll_delay(attempt: int, first: float, cap: float) -> float:
    """Return the delay before poll number ``attempt`` (1, 2, ...) of a quiet wait, seconds.

    Exponential from ``first`` (first, 2 * first, 4 * first, ...) plus a jitter of up to
    ``first / 2`` so that clients started together drift apart, and never above ``cap``
    (nor below ``first``). A pure function: the caller keeps the attempt count and starts
    it again at 1 when the state it watches changes.
    """
    cap = max(cap, first)
    growth = first * 2.0 ** min(attempt - 1, 62) if attempt > 1 else first
    return min(growth + random.uniform(0.0, first / 2), cap)
