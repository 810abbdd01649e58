"""Follow one session for a bot: its state changes and its new messages, resumable.

Each ``SessionUpdate`` carries a ``WaitState``: where to pick up again. A bot that saves
the state after handling each update (``dumps_wait_state``) and passes it back after a
restart gets only what it has not seen: no message and no state change twice.

Messages are read through the session's message list (oldest first, cursor pages);
sending a message resumes a suspended session
(https://docs.devin.ai/api-reference/v3/sessions/post-organizations-sessions-messages.md).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing

import attrs

from ._errors import DevinError
from ._models import Message, Page, Session, WaitState
from ._paging import Pager
from ._polling import Predicate, is_transient, wait_timed_out
from ._retry import PollBackoff, Sleep, server_delay

__all__ = ["SessionUpdate", "follow"]


@attrs.frozen
class SessionUpdate:
    """One thing that happened to a followed session.

    Attributes:
        state: the resume point just after this update; save it once it is handled.
        session: the session, when its (status, status_detail) changed.
        message: the new message, when one arrived.
    """

    state: WaitState
    session: Session | None = None
    message: Message | None = None


class _OutOfTime(Exception):
    """The wait's deadline passed while more message pages were left to read."""


async def _new_messages(
    state: WaitState,
    pages: Callable[[str | None], Pager[Message]],
    expired: Callable[[], bool],
) -> AsyncIterator[tuple[Message, WaitState]]:
    """Yield the messages after ``state``, each with the state that resumes after it.

    Raises:
        _OutOfTime: ``expired()`` turned true with another page still to read; the
            messages yielded before it stand, each with the state that resumes after it.
    """
    cursor = state.message_cursor
    skip_to = state.last_event_id
    async with aclosing(pages(cursor).pages()) as stream:
        async for page in stream:
            items = page.items
            ids = [m.event_id for m in items]
            if skip_to is not None and skip_to in ids:
                items = items[ids.index(skip_to) + 1 :]
            skip_to = None
            for message in items:
                state = attrs.evolve(state, message_cursor=cursor, last_event_id=message.event_id)
                yield message, state
            if page.end_cursor:  # a full page: later reads start after it
                cursor = page.end_cursor
                state = attrs.evolve(state, message_cursor=cursor, last_event_id=None)
            if page.has_next_page and page.end_cursor and expired():  # the Pager reads on
                raise _OutOfTime


async def follow(
    state: WaitState,
    *,
    get_session: Callable[[str], Awaitable[Session]],
    message_pages: Callable[[str | None], Pager[Message]] | None,
    until: Predicate,
    timeout: float,
    poll_interval: float,
    max_poll_interval: float,
    sleep: Sleep,
    clock: Callable[[], float],
) -> AsyncGenerator[SessionUpdate, None]:
    """Yield new messages and state changes of ``state.session_id`` until it settles.

    Each tick reads the session, then the messages, and reports the messages first:
    a question arrives before the ``waiting_for_user`` it caused, even on the tick
    that settles the session. The deadline also stops a read of many pages: a tick cut
    short by it reports no state change (messages before it may be unread), and the
    wait ends with ``AwaitTimeoutError``. Transient failures are retried on the next
    tick; the delay between ticks backs off while nothing happens and returns to
    ``poll_interval`` when something does.

    Raises:
        AwaitTimeoutError: ``timeout`` seconds passed before the session settled.
        DevinError: a failure that polling again cannot fix (401, 403, 404, ...).
    """
    start = clock()
    backoff = PollBackoff(poll_interval, max_poll_interval)
    last: Session | None = None
    last_error: DevinError | None = None
    polls = 0

    def expired() -> bool:
        return clock() - start >= timeout

    while True:
        if expired():
            raise wait_timed_out(
                state.session_id,
                timeout,
                session=last,
                elapsed=clock() - start,
                polls=polls,
                last_error=last_error,
            )
        polls += 1
        active, floor = False, 0.0
        try:
            session = await get_session(state.session_id)
            if message_pages is not None:
                async for message, after in _new_messages(state, message_pages, expired):
                    active, state = True, after
                    yield SessionUpdate(state, message=message)
        except _OutOfTime:
            last = session  # seen, but not reported: messages before it are unread
            continue  # the deadline check above ends the wait
        except DevinError as exc:
            if not is_transient(exc):
                raise
            last_error = exc
            floor = server_delay(exc) or 0.0
        else:
            last = session
            if (session.status, session.status_detail) != (state.status, state.status_detail):
                active = True
                state = attrs.evolve(
                    state, status=session.status, status_detail=session.status_detail
                )
                yield SessionUpdate(state, session=session)
            if until(session):
                return
        if active:
            backoff.reset()
        delay = max(backoff.next_delay(), floor)
        await sleep(min(delay, max(0.0, timeout - (clock() - start))))


def page_fetcher(
    fetch: Callable[[str | None], Awaitable[Page[Message]]],
) -> Callable[[str | None], Pager[Message]]:
    """Turn a one-page fetch into the pager factory ``follow`` reads messages with."""
    return lambda after: Pager(fetch, after=after)
