"""``Quirks``: where the fake behaves like a real server rather than a tidy fake."""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Generic, Literal, Self, TypeVar, cast, overload

import attrs
from multidict import MultiDict, MultiMapping

from .._filters import ARRAY_FILTERS, LIST_FILTERS
from .sessions import FakeSession
from .validation import _error, _Reject

if TYPE_CHECKING:
    from .server import FakeDevinServer

__all__ = ["Quirks"]

_Get = TypeVar("_Get")
_Set = TypeVar("_Set")


def _names(value: Collection[str]) -> tuple[str, ...]:
    """Return the distinct strings of ``value`` in order (a bare string is refused)."""
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"expected a collection of strings, not {value!r}")
    return tuple(dict.fromkeys(value))


def _optional_names(value: Collection[str] | None) -> tuple[str, ...] | None:
    return None if value is None else _names(value)


def _known_filters(_: object, __: object, value: tuple[str, ...]) -> None:
    if unknown := sorted(set(value) - LIST_FILTERS):
        raise ValueError(f"unknown list filters {unknown}; known: {sorted(LIST_FILTERS)}")


_PROBABILITY = [attrs.validators.ge(0.0), attrs.validators.le(1.0)]


@attrs.define(kw_only=True)
class Quirks:
    """Where ``FakeDevinServer`` behaves like a real server rather than a tidy fake.

    The server holds one as ``quirks``, filled from its constructor keywords of the same
    names. Tests may change any field at any time (assignments are validated), except
    ``handler_cancellation``, which ``start()`` reads.

    Attributes:
        handler_cancellation: cancel a handler when its client disconnects (aiohttp's
            opt-in). False (the default, like production stacks) lets the work go on: a
            create the client gave up on (say during a "slow" fault) still creates the session.
        list_lag_reads: a new session is left out of list answers (both scopes) until this
            many list requests that would have matched it have been answered...
        list_lag_seconds: ...and this many seconds (monotonic) have passed since its creation.
            Getting the session by id is never lagged.
        message_lag_reads: after a message, the session's status, status_detail and
            updated_at from before it are shown by the message's answer and by this many reads
            of the session after it (a get, or a list answer that includes it; ``updated_*``
            list filters compare the shown value). The real timeline goes on underneath (the
            lagged reads count as reads), so the first read after the lag may show a later
            state than the message woke it to; messages are listed at once. A message during a
            lag starts the count again but keeps showing the state from before the first one;
            a new timeline (terminate, archive, ``set_state``, ``set_timeline``) ends the lag.
            0 (the default) shows the state a message leads to at once.
        allowed_tags: None for any tag; else a create, tag append or tag replace carrying
            another tag is refused with a FastAPI 422 (``loc`` ``["body", "tags", i]``, type
            ``value_error``, the tag as ``input``) and nothing changes.
        ignored_filters: list filters (query names such as ``"tags"``) the server silently
            ignores: it answers as if they were absent.
        array_encoding: how array filters (``session_ids``, ``tags``, ``origins``, ``user_ids``,
            ``service_user_ids``, ``repo_names``, ``org_ids``) are read: "repeat" takes every
            value of the repeated key (``tags=a&tags=b``); "comma" takes only the last value
            and splits it on commas (``tags=a,b``), like a server expecting comma-joined arrays.
        random_429: probability (0..1) that any request is answered 429, drawn from the seed.
        random_429_retry_after: the ``Retry-After`` of those 429s, None for none.
        platforms: the org's platform labels. A create whose ``platform`` is none of them
            (case-insensitive; "inherit" and "default" always pass) is refused with a 400
            problem whose ``detail`` and ``available_platforms`` list the labels.
    """

    handler_cancellation: bool = False
    list_lag_reads: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    list_lag_seconds: float = attrs.field(default=0.0, validator=attrs.validators.ge(0.0))
    message_lag_reads: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    allowed_tags: tuple[str, ...] | None = attrs.field(default=None, converter=_optional_names)
    ignored_filters: tuple[str, ...] = attrs.field(
        default=(), converter=_names, validator=_known_filters
    )
    array_encoding: Literal["repeat", "comma"] = attrs.field(
        default="repeat", validator=attrs.validators.in_(("repeat", "comma"))
    )
    random_429: float = attrs.field(default=0.0, validator=_PROBABILITY)
    random_429_retry_after: str | None = None
    platforms: tuple[str, ...] = attrs.field(default=("linux", "windows"), converter=_names)

    def _list_query(self, query: MultiMapping[str]) -> MultiDict[str]:
        """Return a list query as this server reads it: ignored filters gone, arrays decoded."""
        read: MultiDict[str] = MultiDict()
        for name in dict.fromkeys(query):
            values = query.getall(name)
            if name in ARRAY_FILTERS and self.array_encoding == "comma":
                values = values[-1].split(",")
            if name not in self.ignored_filters:
                read.extend((name, value) for value in values)
        return read

    def _lags(self, session: FakeSession) -> bool:
        """Count a list answer ``session`` matches; tell whether it still leaves it out."""
        session.list_matches += 1
        age = time.monotonic() - session.created_monotonic
        return session.list_matches <= self.list_lag_reads or age < self.list_lag_seconds

    def _check_tags(self, tags: Sequence[str]) -> None:
        """Raise a 422 for each tag outside ``allowed_tags``."""
        if self.allowed_tags is None:
            return
        msg = "Tag '{}' is not in the organization's allowed tags"
        errors = [
            _error("value_error", ["body", "tags", i], msg.format(tag), tag)
            for i, tag in enumerate(tags)
            if tag not in self.allowed_tags
        ]
        if errors:
            raise _Reject(422, errors)

    def _check_platform(self, platform: str | None) -> None:
        """Raise a 400 listing the labels if ``platform`` is not one of them."""
        accepted = {"inherit", "default", *(label.lower() for label in self.platforms)}
        if platform is not None and platform.lower() not in accepted:
            labels = list(self.platforms)
            detail = f"Unknown platform {platform!r}; available platforms: {', '.join(labels)}"
            raise _Reject(400, detail, available_platforms=labels)


class _Quirk(Generic[_Get, _Set]):
    """A ``FakeDevinServer`` attribute that reads and (validated) writes a field of ``quirks``."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, server: None, owner: type) -> Self: ...
    @overload
    def __get__(self, server: FakeDevinServer, owner: type) -> _Get: ...
    def __get__(self, server: FakeDevinServer | None, owner: type) -> Self | _Get:
        return self if server is None else cast(_Get, getattr(server.quirks, self.name))

    def __set__(self, server: FakeDevinServer, value: _Set) -> None:
        setattr(server.quirks, self.name, value)
