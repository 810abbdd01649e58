"""Follow one session for a bot: its state changes and its new messages, resumable.

A follower is one more wait on the client's engine, so 1,000 followed sessions cost the
list requests of 1,000 awaited ones. It reads a session's messages only when the
session's row changed (its state or ``updated_at``), on its first poll, after a failed
read, or after a reply while the session still shows the state the reply answered.

Each ``SessionUpdate`` carries a ``WaitState``: where to pick up again. A bot that saves
the state after handling each update (``dumps_wait_state``) and passes it back after a
restart gets only what it has not seen: no message and no state change twice.

Messages are read through the session's message list (oldest first, cursor pages);
sending a message resumes a suspended session
(https://docs.devin.ai/api-reference/v3/sessions/post-organizations-sessions-messages.md).
"""

from __future__ import annotations

import functools
from contextlib import aclosing

import attrs

from .._models import Message, Session, WaitState
from .engine import Engine
from .settle import Wait, state_key
from .views import END, Stream, Subscription, post, releasing
from .waits import Entry, Pages, Waiter

__all__ = ["Follower", "SessionFollow", "SessionUpdate"]


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


class Follower(Waiter):
    """A wait that also reports new messages, each before the state change it caused."""

    __slots__ = ("messages", "pending", "send", "state")

    def __init__(
        self,
        entry: Entry,
        wait: Wait,
        start: float,
        on_change: object,
        since: Session | None,
        *,
        state: WaitState,
        send: Stream,
        messages: bool,
    ) -> None:
        super().__init__(entry, wait, start, None, since)
        if since is None and state.replied_at is not None:  # a reply saved in the state
            self.after_reply((state.status or "", state.status_detail), state.replied_at)
        self.state = state
        self.send = send
        self.messages = messages
        self.pending = False  # a read failed or was cut short: no state report before it

    def takes_replies(self) -> bool:
        return True

    def wants_messages(self, changed: bool) -> bool:
        if not self.messages:
            return False
        return changed or self.pending or self.seen is None or super().wants_messages(changed)

    def read_failed(self) -> None:
        self.pending = True

    async def read_messages(self, pages: Pages) -> bool:
        """Report the messages after ``state``; a reply's proof is read from them too."""
        state = self.state
        skip_to = state.last_event_id
        cursor = state.message_cursor
        active = False
        async with aclosing(pages(self, cursor)) as stream:
            async for page in stream:
                items = page.items
                ids = [m.event_id for m in items]
                if skip_to is not None and skip_to in ids:
                    items = items[ids.index(skip_to) + 1 :]
                skip_to = None
                for message in items:
                    active = True
                    state = attrs.evolve(
                        state, message_cursor=cursor, last_event_id=message.event_id
                    )
                    self.state = state
                    post(self.send, SessionUpdate(state, message=message))
                if self.proof is not None:
                    self.proof.feed(items)
                if page.end_cursor:  # a full page: later reads start after it
                    cursor = page.end_cursor
                    state = self.state = attrs.evolve(
                        state, message_cursor=cursor, last_event_id=None
                    )
        self.pending = False
        if self.proof is not None and self.proof.feed(()):
            self.since = self.proof = None
            active = True
        self.fresh = self.fresh or active
        return active

    def observe(self, session: Session, changed: bool) -> None:
        if self.pending:
            return  # its messages are not all read: the state change waits for them
        if not (changed or self.fresh) and self.seen is not None:
            return
        self.fresh = False
        self.seen, key = session, state_key(session)
        settled = self.settles(session)
        replied_at = self.state.replied_at if self.since is not None else None
        if key != (self.state.status, self.state.status_detail):
            self.state = attrs.evolve(
                self.state, status=key[0], status_detail=key[1], replied_at=replied_at
            )
            post(self.send, SessionUpdate(self.state, session=session))
        if settled:
            self.future.set_result(session)


class SessionFollow(Subscription):
    """Async iterator of a followed session's ``SessionUpdate`` s, until it settles.

    Use ``async with client.follow_session(id) as updates:`` (or call ``aclose()``) to
    stop early.

    Raises (from ``__anext__``):
        AwaitTimeoutError: the deadline passed before the session settled.
        DevinError: a failure polling cannot fix (401, 403, 404, ...).
    """

    def __init__(
        self,
        engine: Engine,
        state: WaitState,
        wait: Wait,
        *,
        messages: bool,
        since: Session | None,
    ) -> None:
        super().__init__(engine, wait)
        self.state = state
        self._messages = messages
        self._since = since

    @property
    def session_id(self) -> str:
        return self.state.session_id

    def _begin(self) -> None:
        engine, session_id = self._engine, self.state.session_id
        since = self._since if self._since is not None else engine.take_reply(session_id)
        factory = functools.partial(
            Follower, state=self.state, send=self._send, messages=self._messages
        )
        waiter = engine.subscribe(session_id, self._wait, since=since, factory=factory)
        self._waiters.append(waiter)
        waiter.future.add_done_callback(functools.partial(post, self._send, END))

    @releasing
    async def __anext__(self) -> SessionUpdate:
        item = await self._next_of_one()
        assert isinstance(item, SessionUpdate)
        self.state = item.state
        return item
