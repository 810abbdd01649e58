"""One wait on the engine: its options, deadline and future, and what it has been told.

A ``Waiter`` settles on the state its predicate accepts, minding a reply not yet seen
acted on (``since``); ``follow.Follower`` also reports messages. ``Entry`` is one
waited-for session, shared by every wait on it.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from contextlib import aclosing

from .._errors import AwaitTimeoutError
from .._models import Message, Page, Session
from .settle import ReplyProof, StateKey, Wait, state_key

__all__ = [
    "REPLIES_KEPT",
    "Deadlines",
    "Entry",
    "OutOfTime",
    "Pages",
    "Replies",
    "Waiter",
    "outcome",
]

REPLIES_KEPT = 1024  # snapshots of recent replies kept for followers that start later

# The message pages of a wait's session after a cursor, cut short at its deadline.
Pages = Callable[["Waiter", str | None], AsyncGenerator[Page[Message], None]]


class OutOfTime(Exception):
    """A wait's deadline came while more message pages were left to read."""


class Entry:
    """One waited-for session: its last state, and its waits."""

    __slots__ = ("last_error", "session", "session_id", "waiters")

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.waiters: list[Waiter] = []
        self.session: Session | None = None
        self.last_error: BaseException | None = None


class Waiter:
    """One wait: a future, its options, its deadline, and what it has been told.

    Subclasses (``follow.Follower``) read messages too; this base reads them only to
    prove, after a reply, that the session moved on (``since``).
    """

    __slots__ = (
        "entry",
        "first_tick",
        "fresh",
        "future",
        "on_change",
        "proof",
        "seen",
        "since",
        "stale",
        "start",
        "wait",
    )

    def __init__(
        self,
        entry: Entry,
        wait: Wait,
        start: float,
        on_change: Callable[[Session], object] | None,
        since: Session | None,
    ) -> None:
        self.entry = entry
        self.wait = wait
        self.start = start
        self.on_change = on_change
        self.future: asyncio.Future[Session] = asyncio.get_running_loop().create_future()
        self.seen: Session | None = None  # the state last told (only its key matters)
        self.first_tick = 0
        self.fresh = False  # messages brought news: look at the state again this tick
        # After a reply: the state it was sent in, until the session shows it moved on.
        self.since: StateKey | None = None
        self.proof: ReplyProof | None = None
        self.stale: tuple[str, str | None, int] | None = None
        if since is not None:
            self.after_reply(state_key(since), since.updated_at)

    @property
    def session_id(self) -> str:
        return self.entry.session_id

    @property
    def deadline(self) -> float:
        return self.start + self.wait.timeout

    def after_reply(self, key: StateKey, sent_at: int) -> None:
        """Do not settle on state ``key`` (a reply's, at ``sent_at``) until it moved on."""
        self.since, self.proof = key, ReplyProof(sent_at)
        self.stale = (*key, sent_at)

    @property
    def last(self) -> Session | None:
        """The last state of the session seen, if any poll succeeded."""
        return self.entry.session

    def settles(self, session: Session) -> bool:
        """Tell whether ``session`` ends this wait, minding a reply not yet seen acted on.

        After a reply, the state the reply was sent in ends nothing until another state
        is seen or Devin's messages prove it answered; and even then, not while the
        session still shows the reply's own copy of that state (same ``updated_at``):
        that is the lag, not Devin's new answer.
        """
        self._learn(session)
        if self.since is not None:
            if not _shows(session, self.since):
                self.since = self.proof = self.stale = None  # it moved on: the plain rule
            else:
                return False
        if self.stale is not None:
            if _shows(session, self.stale[:2]) and session.updated_at == self.stale[2]:
                return False
            self.stale = None
        return self.wait.until(session)

    def _learn(self, session: Session) -> None:
        """Take the detail of the reply's state from its copy, if the reply's answer had none.

        A send message answer carries no status_detail: the first read showing the
        reply's status and ``updated_at`` (the lag's copy of that state) tells it.
        """
        stale = self.stale
        if (
            stale is not None
            and stale[1] is None
            and (session.status, session.updated_at) == (stale[0], stale[2])
        ):
            key = state_key(session)
            self.stale = (*key, stale[2])
            if self.since is not None:
                self.since = key

    def wants_messages(self, changed: bool) -> bool:
        """Tell whether this tick should read messages for this wait.

        Only a wait after a reply does, and only while the session shows the state the
        reply was sent in and that state would end the wait: messages are then the
        only proof that Devin answered within one poll.
        """
        session = self.entry.session
        return (
            self.since is not None
            and session is not None
            and _shows(session, self.since)
            and self.wait.until(session)
        )

    def takes_replies(self) -> bool:
        """Whether a reply sent through the client applies ``since`` to this wait."""
        return False

    async def read_messages(self, pages: Pages) -> bool:
        """Read the messages after the reply; return True once they prove it acted on.

        Raises:
            OutOfTime: the wait's deadline came with more pages to read.
        """
        proof = self.proof
        assert proof is not None
        async with aclosing(pages(self, proof.cursor)) as stream:
            async for page in stream:
                proof.feed(_after(page.items, proof.last_event_id))
                if page.end_cursor:  # a full page: later reads start after it
                    proof.cursor = page.end_cursor
        if not proof.feed(()):
            return False
        self.since = self.proof = None
        self.fresh = True
        return True

    def read_failed(self) -> None:
        """Reading messages failed (it will be tried on the next tick)."""

    def observe(self, session: Session, changed: bool) -> None:
        """Tell the wait of this tick's state (``changed``: new since the last tick)."""
        if not (changed or self.fresh) and self.seen is not None:
            return
        self.fresh = False
        seen, self.seen = self.seen, session
        if self.on_change is not None and (seen is None or state_key(seen) != state_key(session)):
            self.on_change(session)
        if self.settles(session):
            self.future.set_result(session)

    def end(self, exc: BaseException) -> None:
        """End the wait with ``exc`` unless it has already ended."""
        if not self.future.done():
            self.future.set_exception(exc)


def _shows(session: Session, key: StateKey) -> bool:
    """Tell whether ``session`` shows state ``key``.

    A key without a detail matches every detail of its status: the answer of a send
    message carries no status_detail (the API fills it on get and list only), so the
    state a reply was sent in is known only by its status.
    """
    return session.status == key[0] and key[1] in (None, session.status_detail)


def _after(messages: Sequence[Message], event_id: str | None) -> Sequence[Message]:
    """The messages after ``event_id`` (all of them if it is not among them)."""
    ids = [m.event_id for m in messages]
    return messages[ids.index(event_id) + 1 :] if event_id in ids else messages


def outcome(future: asyncio.Future[Session]) -> str:
    """Name how a wait ended: settled, timeout, error, or cancelled (not ended)."""
    if not future.done() or future.cancelled():
        return "cancelled"
    error = future.exception()
    if error is None:
        return "settled"
    return "timeout" if isinstance(error, AwaitTimeoutError) else "error"


class _Group:
    """Waits that share one deadline (those subscribed together); ended ones skipped."""

    __slots__ = ("first", "waiters")

    def __init__(self, waiter: Waiter) -> None:
        self.waiters = [waiter]
        self.first = 0  # the waits before this one have ended

    def pending(self) -> bool:
        waiters, first = self.waiters, self.first
        while first < len(waiters) and waiters[first].future.done():
            first += 1
        self.first = first
        return first < len(waiters)


class Deadlines:
    """The deadlines of the waits, nearest first (a heap of groups that share one).

    Waits subscribed one after another with the same deadline (the waits of one
    ``await_sessions``) share one heap entry; ended waits drop out lazily.
    """

    __slots__ = ("_heap", "_last", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Group]] = []
        self._last: tuple[float, _Group] | None = None  # the group added last, if in the heap
        self._seq = 0

    def add(self, waiter: Waiter) -> None:
        deadline, last = waiter.deadline, self._last
        if last is not None and last[0] == deadline:
            last[1].waiters.append(waiter)
            return
        self._seq += 1
        group = _Group(waiter)
        heapq.heappush(self._heap, (deadline, self._seq, group))
        self._last = (deadline, group)

    def clear(self) -> None:
        self._heap.clear()
        self._last = None

    def _pop(self) -> _Group:
        group = heapq.heappop(self._heap)[2]
        if self._last is not None and self._last[1] is group:
            self._last = None
        return group

    def nearest(self) -> float:
        """The nearest deadline of a wait still pending (inf if none)."""
        heap = self._heap
        while heap and not heap[0][2].pending():
            self._pop()
        return heap[0][0] if heap else float("inf")

    def due(self, now: float) -> Iterator[Waiter]:
        """Take out and yield the pending waits whose deadline is ``now`` or earlier."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            group = self._pop()
            for waiter in group.waiters[group.first :]:
                if not waiter.future.done():
                    yield waiter


class Replies:
    """Snapshots of the latest replies sent through the client, by session (bounded)."""

    __slots__ = ("_snapshots",)

    def __init__(self) -> None:
        self._snapshots: dict[str, Session] = {}

    def add(self, session_id: str, snapshot: Session) -> None:
        snapshots = self._snapshots
        snapshots.pop(session_id, None)
        snapshots[session_id] = snapshot
        while len(snapshots) > REPLIES_KEPT:
            del snapshots[next(iter(snapshots))]

    def take(self, session_id: str) -> Session | None:
        """Return (and forget) the latest reply to ``session_id``, if any is kept."""
        return self._snapshots.pop(session_id, None)
