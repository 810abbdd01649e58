"""List queries: typed query parameters, the list-sessions filters, and cursor pages."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

from multidict import MultiMapping

from .sessions import FakeSession
from .validation import _error, _Reject

_T = TypeVar("_T")
_JSONObject = dict[str, Any]
_PAGE_SIZE, _MAX_PAGE_SIZE = 100, 200


class _Query:
    """Typed reads of query parameters that collect FastAPI-style errors."""

    def __init__(self, query: MultiMapping[str]) -> None:
        self._query = query
        self.errors: list[_JSONObject] = []

    def text(self, name: str) -> str | None:
        """Return the last value of ``name``, or None."""
        values = self._query.getall(name, [])
        return values[-1] if values else None

    def texts(self, name: str) -> set[str] | None:
        """Return every value of repeated key ``name`` (``tags=a&tags=b``), or None."""
        return set(self._query.getall(name, [])) or None

    def integer(self, name: str, lo: int | None = None, hi: int | None = None) -> int | None:
        """Return ``name`` as an integer within ``lo..hi``, or None (noting any error)."""
        raw = self.text(name)
        if raw is None:
            return None
        loc = ["query", name]
        try:
            value = int(raw)
        except ValueError:
            msg = "Input should be a valid integer, unable to parse string as an integer"
            self.errors.append(_error("int_parsing", loc, msg, raw))
            return None
        if lo is not None and value < lo:
            msg = f"Input should be greater than or equal to {lo}"
            self.errors.append(_error("greater_than_equal", loc, msg, raw, ge=lo))
        elif hi is not None and value > hi:
            msg = f"Input should be less than or equal to {hi}"
            self.errors.append(_error("less_than_equal", loc, msg, raw, le=hi))
        return value

    def boolean(self, name: str) -> bool | None:
        """Return ``name`` as a boolean (true/false, 1/0, yes/no, on/off), or None."""
        raw = self.text(name)
        if raw is None:
            return None
        if raw.lower() in ("true", "1", "yes", "on", "t", "y"):
            return True
        if raw.lower() in ("false", "0", "no", "off", "f", "n"):
            return False
        msg = "Input should be a valid boolean, unable to interpret input"
        self.errors.append(_error("bool_parsing", ["query", name], msg, raw))
        return None

    def page(self) -> tuple[int, int | None]:
        """Return ``first`` (default 100, 1..200) and the key decoded from ``after``."""
        first = self.integer("first", 1, _MAX_PAGE_SIZE)
        after = self.text("after")
        if after is None:
            return first or _PAGE_SIZE, None
        try:
            kind, _, key = base64.urlsafe_b64decode(after.encode()).decode().partition(":")
            if kind != "cursor":
                raise ValueError(after)
            return first or _PAGE_SIZE, int(key)
        except ValueError:
            msg = "Value error, invalid cursor"
            self.errors.append(_error("value_error", ["query", "after"], msg, after))
            return _PAGE_SIZE, None

    def check(self) -> None:
        """Raise a 422 listing every error noted so far."""
        if self.errors:
            raise _Reject(422, self.errors)


def _paginate(
    entries: Sequence[tuple[int, _T]], first: int, after: int | None
) -> tuple[list[_T], _JSONObject]:
    """Return the page after key ``after`` of ``entries`` (ascending keys) and its envelope."""
    rest = [entry for entry in entries if after is None or entry[0] > after]
    page, more = rest[:first], len(rest) > first
    cursor = base64.urlsafe_b64encode(f"cursor:{page[-1][0]}".encode()).decode() if more else None
    envelope = {"end_cursor": cursor, "has_next_page": more, "total": len(entries)}
    return [item for _, item in page], envelope


_ONE_OF = {
    "session_ids": "session_id",
    "origins": "origin",
    "user_ids": "user_id",
    "service_user_ids": "service_user_id",
    "org_ids": "org_id",
}
_ANY_OF = {"tags": "tags", "repo_names": "repos"}
_SINCE = {"created_after": "created_at", "updated_after": "updated_at"}
_UNTIL = {"created_before": "created_at", "updated_before": "updated_at"}
_EQUAL = ("playbook_id", "schedule_id", "category")


def _session_filter(query: _Query, org_id: str | None) -> Callable[[FakeSession], bool]:
    """Parse the list filters into one predicate (semantics in ``FakeDevinServer``).

    ``org_ids`` applies to the enterprise scope only; the org scope keeps sessions of ``org_id``.
    ``updated_*`` compare the ``updated_at`` the answer will show (stale during a message lag).
    """
    one_of = {f: query.texts(n) for n, f in _ONE_OF.items() if org_id is None or n != "org_ids"}
    any_of = {f: query.texts(n) for n, f in _ANY_OF.items()}
    equal = {n: query.text(n) for n in _EQUAL}
    since = {f: query.integer(n) for n, f in _SINCE.items()}
    until = {f: query.integer(n) for n, f in _UNTIL.items()}
    archived = query.boolean("is_archived")

    def stamp(s: FakeSession, field: str) -> int:
        return s._next_updated_at() if field == "updated_at" else cast(int, getattr(s, field))

    def keep(s: FakeSession) -> bool:
        return (
            org_id in (None, s.org_id)
            and archived in (None, s.is_archived)
            and all(w is None or getattr(s, f) in w for f, w in one_of.items())
            and all(w is None or not w.isdisjoint(getattr(s, f)) for f, w in any_of.items())
            and all(w is None or getattr(s, f) == w for f, w in equal.items())
            and all(w is None or stamp(s, f) >= w for f, w in since.items())
            and all(w is None or stamp(s, f) < w for f, w in until.items())
        )

    return keep
