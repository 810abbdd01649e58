"""The rows a tick reads: each session's state key at once, the whole row only if it changed.

Most ticks, almost no waited-for session changed. So a page of sessions is first decoded
into ``RowKey`` items (id, status, status_detail, ``updated_at``) by msgspec, which skips
every other field without building it; the page is decoded whole (``_convert.loads``)
only when one of its rows changed. A body msgspec does not take (not UTF-8, ``NaN``, a
shape it refuses) is decoded whole at once, so it passes or fails exactly as any other
response: the fast path never changes what is accepted.

msgspec: https://jcristharif.com/msgspec/structs.html (``gc=False``, unknown fields skipped)
"""

from __future__ import annotations

import sys
from typing import Any

import msgspec

from .. import _convert

__all__ = ["Listed", "Row", "RowKey", "decode_page", "row_key", "shared"]

Row = dict[str, Any]

# Fields whose few distinct values recur across an organization's sessions.
_RECURRING = (
    "org_id",
    "subcategory",
    "parent_session_id",
    "playbook_id",
    "service_user_id",
    "user_id",
)


class RowKey(msgspec.Struct, frozen=True, gc=False):
    """What tells whether a session changed since a wait last saw it (raw, unstructured)."""

    session_id: str
    status: Any = None
    status_detail: Any = None
    updated_at: Any = None


class _KeyPage(msgspec.Struct, gc=False):
    items: list[RowKey]
    end_cursor: str | None = None
    has_next_page: bool | None = None


_decode_keys = msgspec.json.Decoder(_KeyPage).decode


def row_key(row: Row, session_id: str | None = None) -> RowKey:
    """The key of a whole (already validated) row, read as ``session_id``'s if given."""
    return RowKey(
        row["session_id"] if session_id is None else session_id,
        row.get("status"),
        row.get("status_detail"),
        row.get("updated_at"),
    )


def shared(row: Row, session_id: str) -> Row:
    """Make a row's strings the objects already held elsewhere, in place.

    A session held by a wait keeps its row's strings: its id becomes ``session_id``
    (the wait's own string, when equal), and the recurring values are interned, so
    thousands of waits on one organization's sessions keep one copy of each.
    """
    if row.get("session_id") == session_id:
        row["session_id"] = session_id
    for name in _RECURRING:
        value = row.get(name)
        if type(value) is str:
            row[name] = sys.intern(value)
    return row


class Listed:
    """One page of sessions read for waits: every row's key; whole rows on demand.

    Args:
        keys: the key of each row, in the page's order.
        end_cursor, has_next_page: the page's cursor.
        body: the page's JSON, decoded whole by the first ``row()``.
        rows: the whole rows, if already decoded (then ``body`` is not needed).
    """

    __slots__ = ("_body", "_rows", "end_cursor", "has_next_page", "keys")

    def __init__(
        self,
        keys: list[RowKey],
        end_cursor: str | None,
        has_next_page: bool,
        *,
        body: bytes | None = None,
        rows: list[Row] | None = None,
    ) -> None:
        self.keys = keys
        self.end_cursor = end_cursor
        self.has_next_page = has_next_page
        self._body = body
        self._rows = None if rows is None else {r["session_id"]: r for r in rows}

    @classmethod
    def of(cls, rows: list[Row], end_cursor: str | None = None, more: bool = False) -> Listed:
        """A page of whole rows (each a dict with a ``session_id``)."""
        return cls([row_key(r) for r in rows], end_cursor, more, rows=rows)

    def row(self, session_id: str) -> Row:
        """The whole row of ``session_id`` (one of the keys).

        Raises:
            ResponseValidationError: the body, decoded whole, is not a page of sessions.
        """
        if self._rows is None:
            assert self._body is not None
            rows, _, _ = _convert.session_rows(_convert.loads(self._body))
            self._rows, self._body = {r["session_id"]: r for r in rows}, None
        return self._rows[session_id]


def decode_page(body: bytes) -> Listed:
    """Decode a page of sessions for waits: its keys now, its whole rows when asked.

    Raises:
        ResponseValidationError: the body is not JSON, or not a page of sessions.
    """
    try:
        page = _decode_keys(body)
    except msgspec.MsgspecError:  # decoded whole: accepted, or refused, as everywhere
        return Listed.of(*_convert.session_rows(_convert.loads(body)))
    return Listed(page.items, page.end_cursor, bool(page.has_next_page), body=body)
