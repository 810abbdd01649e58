"""Where a tick's session states come from: by id (the default), or by watermark.

``IdsSource`` reads a lone session with GET and many through the list endpoint
(``session_ids``, up to 200 per request, cursor pages followed), so 1,000 waits cost
ceil(1000/200) = 5 requests per tick instead of 1,000. If the list endpoint is not
usable (no org, or it answers a 4xx) it falls back to one GET per session, and reads a
session the list left out with GET.

``WatermarkSource`` asks instead "which sessions changed since my watermark"
(``updated_after`` the newest ``updated_at`` seen, less an overlap), so 10,000 quiet
waits cost one list request per tick. Sessions it has never read, and every session
each ``reconcile_interval`` seconds, are read by id, so a change the watermark missed
is still seen within that bound. It pays in an organization with few other active
sessions: every session of the org that changes is listed, waited for or not. A
server that ignores the filter (rows older than asked for) or a listing longer than
``MAX_CHANGED_PAGES`` switches the tick back to ids.

List endpoint: https://docs.devin.ai/sdk/api/DevinApi/interfaces/SessionsQueryParams.md
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from .._errors import APIStatusError
from .rows import Listed, Row, RowKey, row_key

__all__ = [
    "LIST_BATCH",
    "MAX_QUERY_BYTES",
    "Failure",
    "IdsSource",
    "Sink",
    "Source",
    "WatermarkSource",
    "batches",
]

log = logging.getLogger("devin_async")

Failure = tuple[Sequence[str], BaseException]

LIST_BATCH = 200  # the list endpoint's largest page ("first", 1-200)
# Each id travels as "session_ids=<id>&" in the URL; front ends commonly refuse request
# lines past 8-16 KiB, so a batch also stops at this many bytes of ids.
MAX_QUERY_BYTES = 12_000
WATERMARK_OVERLAP = 60  # seconds re-listed below the watermark (clock skew, index lag)
MAX_CHANGED_PAGES = 5  # more pages of changes than this in one tick: read by id instead

GetOne = Callable[[str, float], Awaitable[Row]]
# One list attempt: (session ids or None, updated_after or None, cursor, timeout).
ListPage = Callable[[Sequence[str] | None, int | None, str | None, float], Awaitable[Listed]]


TimeLeft = Callable[[], float]  # the timeout of a request started now, seconds


class Sink(Protocol):
    """Where a tick's rows go (the engine): as each page arrives, not at the end."""

    def seen(self, key: RowKey) -> bool:
        """True if the waits already saw the state ``key`` shows (or none waits on it)."""

    def take(self, session_id: str, row: Row) -> None:
        """A whole row of ``session_id`` that ``seen`` did not know."""


class Source(Protocol):
    async def read(self, ids: Sequence[str], time_left: TimeLeft, sink: Sink) -> list[Failure]:
        """Read ``ids`` this tick into ``sink``; return the ids whose read failed."""

    def forget(self, session_id: str) -> None:
        """No wait is left on ``session_id``: a new one must be read by id."""


def batches(
    ids: Sequence[str], size: int = LIST_BATCH, budget: int = MAX_QUERY_BYTES
) -> list[list[str]]:
    """Split ids into list calls of at most ``size`` ids and ``budget`` query bytes."""
    out: list[list[str]] = []
    batch: list[str] = []
    used = 0
    for session_id in ids:
        cost = len("session_ids=&") + len(session_id)
        if batch and (len(batch) == size or used + cost > budget):
            out.append(batch)
            batch, used = [], 0
        batch.append(session_id)
        used += cost
    if batch:
        out.append(batch)
    return out


def _refused(exc: BaseException) -> bool:
    """A 4xx other than 408/429: the list endpoint will not serve these polls."""
    return (
        isinstance(exc, APIStatusError)
        and 400 <= exc.status_code < 500
        and exc.status_code not in (408, 429)
    )


class IdsSource:
    """Reads sessions by id: GET for one, the list endpoint for many."""

    def __init__(self, get_one: GetOne, list_page: ListPage | None) -> None:
        self._get_one = get_one
        self.list_page = list_page
        self._split: tuple[list[str], list[tuple[str, ...]]] = ([], [])  # ids, their batches

    def forget(self, session_id: str) -> None:
        """Nothing to forget: every tick reads every id."""

    async def read(self, ids: Sequence[str], time_left: TimeLeft, sink: Sink) -> list[Failure]:
        if len(ids) > 1 and self.list_page is not None:
            return await self._listed(ids, time_left, sink)
        return await self._get_each(ids, time_left, sink)

    async def _get_each(self, ids: Sequence[str], time_left: TimeLeft, sink: Sink) -> list[Failure]:
        results = await asyncio.gather(
            *(self._get_one(i, time_left()) for i in ids), return_exceptions=True
        )
        failures: list[Failure] = []
        for session_id, result in zip(ids, results, strict=True):
            if isinstance(result, BaseException):
                failures.append(([session_id], _reraise_cancel(result)))
            elif not sink.seen(row_key(result, session_id)):  # the GET's id, whatever it says
                sink.take(session_id, result)
        return failures

    def _batches(self, ids: Sequence[str]) -> list[tuple[str, ...]]:
        """``batches(ids)``, the same objects while the waited ids stay the same."""
        known, split = self._split
        if ids != known:
            split = [tuple(batch) for batch in batches(ids)]
            self._split = (list(ids), split)
        return split

    async def _listed(self, ids: Sequence[str], time_left: TimeLeft, sink: Sink) -> list[Failure]:
        chunks = self._batches(ids)
        results = await asyncio.gather(
            *(self._batch(b, time_left, sink) for b in chunks), return_exceptions=True
        )
        failures: list[Failure] = []
        missing: list[str] = []  # read one by one: refused batches, ids not in the list
        for batch, result in zip(chunks, results, strict=True):
            if isinstance(result, BaseException):
                if _refused(result):
                    log.debug("list endpoint refused (%s); polling sessions one GET each", result)
                    self.list_page = None
                    missing.extend(batch)
                else:
                    failures.append((batch, _reraise_cancel(result)))
                continue
            missing.extend(result)
        if missing:
            failures.extend(await self._get_each(missing, time_left, sink))
        return failures

    async def _batch(self, batch: Sequence[str], time_left: TimeLeft, sink: Sink) -> list[str]:
        """List up to LIST_BATCH ids (pages bounded) into ``sink``; return the ids left out.

        Each page is handled as it arrives: only the rows that changed are decoded whole,
        and each goes to the sink at once, so a tick never holds more than a page of them.
        """
        assert self.list_page is not None
        seen, take = sink.seen, sink.take
        listed: set[str] = set()
        after: str | None = None
        for _ in range(len(batch) // LIST_BATCH + 2):  # bounded even if cursors loop
            page = await self.list_page(batch, None, after, time_left())
            for key in page.keys:
                listed.add(key.session_id)
                if not seen(key):
                    take(key.session_id, page.row(key.session_id))
            if not page.has_next_page or not page.end_cursor:
                break
            after = page.end_cursor
        return [i for i in batch if i not in listed]


class WatermarkSource:
    """Reads what changed since the newest ``updated_at`` seen; reconciles by id.

    Args:
        ids: the by-id source for newcomers, reconciliations and fallbacks.
        clock: the client's clock.
        reconcile_interval: seconds between reads of every waited session by id.
    """

    def __init__(self, ids: IdsSource, clock: Callable[[], float], reconcile_interval: float):
        self._ids = ids
        self._clock = clock
        self._interval = reconcile_interval
        self._watermark: int | None = None
        self._known: set[str] = set()
        self._reconcile_at = 0.0
        self.enabled = True

    def forget(self, session_id: str) -> None:
        """A wait that comes back to ``session_id`` is read by id first."""
        self._known.discard(session_id)

    async def _by_id(self, ids: Sequence[str], time_left: TimeLeft, sink: Sink) -> list[Failure]:
        """Read ``ids`` by id, raising the watermark to the newest row read."""
        return await self._ids.read(ids, time_left, _Advancing(sink, self._advance))

    async def _reconcile(
        self, ids: Sequence[str], time_left: TimeLeft, sink: Sink, now: float
    ) -> list[Failure]:
        """Read every waited session by id, and start the next reconciliation interval."""
        failures = await self._by_id(ids, time_left, sink)
        if not failures:
            self._known = set(ids)
            self._reconcile_at = now + self._interval
        return failures

    async def read(self, ids: Sequence[str], time_left: TimeLeft, sink: Sink) -> list[Failure]:
        now = self._clock()
        if not self.enabled or self._watermark is None or now >= self._reconcile_at:
            return await self._reconcile(ids, time_left, sink, now)
        known = self._known
        new = [i for i in ids if i not in known]
        floor = self._watermark - WATERMARK_OVERLAP
        try:
            pages = await self._changed(floor, time_left)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not _refused(exc):
                return [(ids, exc)]
            log.warning("the list of changed sessions was refused (%s); waits poll by id", exc)
            self.enabled, pages = False, None
        if pages is None:  # not usable this tick: read everything by id
            return await self._reconcile(ids, time_left, sink, now)
        try:
            for page in pages:
                for key in page.keys:
                    self._advance(key)
                    if not sink.seen(key):  # a session no wait is on counts as seen
                        sink.take(key.session_id, page.row(key.session_id))
        except Exception as exc:  # a page that does not decode whole
            return [(ids, exc)]
        if not new:
            return []
        failures = await self._by_id(new, time_left, sink)
        failed = {i for batch, _ in failures for i in batch}
        known.update(i for i in new if i not in failed)
        return failures

    async def _changed(self, floor: int, time_left: TimeLeft) -> list[Listed] | None:
        """List the sessions updated after ``floor``; None if the answer cannot be used."""
        list_page = self._ids.list_page
        if list_page is None:
            return None
        pages: list[Listed] = []
        after: str | None = None
        for _ in range(MAX_CHANGED_PAGES):
            page = await list_page(None, floor, after, time_left())
            for key in page.keys:
                updated = key.updated_at
                if isinstance(updated, int) and updated < floor:
                    log.warning(
                        "the server ignored updated_after (a session updated at %d was "
                        "listed for updated_after=%d); waits poll by session id from now on",
                        updated,
                        floor,
                    )
                    self.enabled = False
                    return None
            pages.append(page)
            if not page.has_next_page or not page.end_cursor:
                return pages
            after = page.end_cursor
        log.debug("more than %d pages of changed sessions; reading by id", MAX_CHANGED_PAGES)
        return None

    def _advance(self, key: RowKey) -> None:
        updated = key.updated_at
        if isinstance(updated, int) and (self._watermark is None or updated > self._watermark):
            self._watermark = updated


class _Advancing:
    """A sink that tells ``advance`` of every key it sees first."""

    __slots__ = ("_advance", "_sink")

    def __init__(self, sink: Sink, advance: Callable[[RowKey], None]) -> None:
        self._sink, self._advance = sink, advance

    def seen(self, key: RowKey) -> bool:
        self._advance(key)
        return self._sink.seen(key)

    def take(self, session_id: str, row: Row) -> None:
        self._sink.take(session_id, row)


def _reraise_cancel(exc: BaseException) -> BaseException:
    if isinstance(exc, asyncio.CancelledError):
        raise exc
    return exc
