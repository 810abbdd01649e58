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
from typing import Any, Protocol

from .._errors import APIStatusError

__all__ = [
    "LIST_BATCH",
    "MAX_QUERY_BYTES",
    "Failure",
    "IdsSource",
    "RawPage",
    "Row",
    "Source",
    "WatermarkSource",
    "batches",
]

log = logging.getLogger("devin_async")

Row = dict[str, Any]
RawPage = tuple[list[Row], str | None, bool]  # rows, end_cursor, has_next_page
Failure = tuple[Sequence[str], BaseException]
Read = tuple[dict[str, Row], list[Failure]]  # rows by id, and the ids that failed

LIST_BATCH = 200  # the list endpoint's largest page ("first", 1-200)
# Each id travels as "session_ids=<id>&" in the URL; front ends commonly refuse request
# lines past 8-16 KiB, so a batch also stops at this many bytes of ids.
MAX_QUERY_BYTES = 12_000
WATERMARK_OVERLAP = 60  # seconds re-listed below the watermark (clock skew, index lag)
MAX_CHANGED_PAGES = 5  # more pages of changes than this in one tick: read by id instead

GetOne = Callable[[str, float], Awaitable[Row]]
# One list attempt: (session ids or None, updated_after or None, cursor, timeout).
ListPage = Callable[[Sequence[str] | None, int | None, str | None, float], Awaitable[RawPage]]


TimeLeft = Callable[[], float]  # the timeout of a request started now, seconds


class Source(Protocol):
    async def read(self, ids: Sequence[str], time_left: TimeLeft) -> Read:
        """Read the rows of ``ids`` this tick (those left out did not change)."""

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

    def forget(self, session_id: str) -> None:
        """Nothing to forget: every tick reads every id."""

    async def read(self, ids: Sequence[str], time_left: TimeLeft) -> Read:
        if len(ids) > 1 and self.list_page is not None:
            return await self._listed(ids, time_left)
        return await self._get_each(ids, time_left)

    async def _get_each(self, ids: Sequence[str], time_left: TimeLeft) -> Read:
        results = await asyncio.gather(
            *(self._get_one(i, time_left()) for i in ids), return_exceptions=True
        )
        rows: dict[str, Row] = {}
        failures: list[Failure] = []
        for session_id, result in zip(ids, results, strict=True):
            if isinstance(result, BaseException):
                failures.append(([session_id], _reraise_cancel(result)))
            else:
                rows[session_id] = result
        return rows, failures

    async def _listed(self, ids: Sequence[str], time_left: TimeLeft) -> Read:
        chunks = batches(ids)
        results = await asyncio.gather(
            *(self._batch(b, time_left) for b in chunks), return_exceptions=True
        )
        rows: dict[str, Row] = {}
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
            for session_id in batch:
                row = result.get(session_id)
                if row is None:
                    missing.append(session_id)
                else:
                    rows[session_id] = row
        if missing:
            more, more_failures = await self._get_each(missing, time_left)
            rows.update(more)
            failures.extend(more_failures)
        return rows, failures

    async def _batch(self, batch: Sequence[str], time_left: TimeLeft) -> dict[str, Row]:
        """One list attempt per page for up to LIST_BATCH ids (pages bounded)."""
        assert self.list_page is not None
        rows: dict[str, Row] = {}
        after: str | None = None
        for _ in range(len(batch) // LIST_BATCH + 2):  # bounded even if cursors loop
            items, end_cursor, has_next = await self.list_page(batch, None, after, time_left())
            for row in items:
                rows[row["session_id"]] = row
            if not has_next or not end_cursor:
                break
            after = end_cursor
        return rows


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

    async def _reconcile(self, ids: Sequence[str], time_left: TimeLeft, now: float) -> Read:
        """Read every waited session by id, and start the next reconciliation interval."""
        rows, failures = await self._ids.read(ids, time_left)
        if not failures:
            self._known = set(ids)
            self._reconcile_at = now + self._interval
        self._advance(rows.values())
        return rows, failures

    async def read(self, ids: Sequence[str], time_left: TimeLeft) -> Read:
        now = self._clock()
        if not self.enabled or self._watermark is None or now >= self._reconcile_at:
            return await self._reconcile(ids, time_left, now)
        known = self._known
        new = [i for i in ids if i not in known]
        floor = self._watermark - WATERMARK_OVERLAP
        try:
            changed = await self._changed(floor, time_left)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not _refused(exc):
                return {}, [(ids, exc)]
            log.warning("the list of changed sessions was refused (%s); waits poll by id", exc)
            self.enabled, changed = False, None
        if changed is None:  # not usable this tick: read everything by id
            return await self._reconcile(ids, time_left, now)
        wanted = set(ids)
        rows = {i: row for i, row in changed.items() if i in wanted}
        self._advance(changed.values())
        if not new:
            return rows, []
        more, failures = await self._ids.read(new, time_left)
        rows.update(more)
        known.update(more)
        return rows, failures

    async def _changed(self, floor: int, time_left: TimeLeft) -> dict[str, Row] | None:
        """List the sessions updated after ``floor``; None if the answer cannot be used."""
        list_page = self._ids.list_page
        if list_page is None:
            return None
        rows: dict[str, Row] = {}
        after: str | None = None
        for _ in range(MAX_CHANGED_PAGES):
            items, end_cursor, has_next = await list_page(None, floor, after, time_left())
            for row in items:
                updated = row.get("updated_at")
                if isinstance(updated, int) and updated < floor:
                    log.warning(
                        "the server ignored updated_after (a session updated at %d was "
                        "listed for updated_after=%d); waits poll by session id from now on",
                        updated,
                        floor,
                    )
                    self.enabled = False
                    return None
                rows[row["session_id"]] = row
            if not has_next or not end_cursor:
                return rows
            after = end_cursor
        log.debug("more than %d pages of changed sessions; reading by id", MAX_CHANGED_PAGES)
        return None

    def _advance(self, rows: Any) -> None:
        newest = max(
            (r["updated_at"] for r in rows if isinstance(r.get("updated_at"), int)),
            default=None,
        )
        if newest is not None and (self._watermark is None or newest > self._watermark):
            self._watermark = newest


def _reraise_cancel(exc: BaseException) -> BaseException:
    if isinstance(exc, asyncio.CancelledError):
        raise exc
    return exc
