"""A fake Devin API v3 server for tests: real HTTP on 127.0.0.1, scripted sessions, faults.

``FakeDevinServer`` speaks the sessions subset of the v3 API (org scope
``/v3/organizations/{org_id}/sessions...`` and enterprise scope ``/v3/enterprise/sessions...``)
as JSON over a real socket, so a client under test exercises its whole stack::

    async with FakeDevinServer(api_key="cog_test_key", org_id="org-test") as server:
        server.queue_timeline(WAITS_FOR_USER)
        ...  # point the client at server.url
        assert server.count("create_session") == 1

Every created session walks a scripted timeline of ``Step`` s, one step at most per read
(a GET of the session or its appearance in a list page). Faults (status codes, 429 with
``Retry-After``, slow answers, dropped connections, malformed bodies) are injected with
``inject``. Every request is recorded in ``requests`` exactly as sent, so tests can check the
wire; the server itself never answers with a session secret value (422 error inputs show
``REDACTED``) and stores create bodies with secret values redacted (``FakeSession.body``).

By default the fake behaves like a production server where the docs leave things open, and
``Quirks`` (the server's ``quirks``, filled by constructor keywords of the same names) adds
what real servers are seen to do, so a client's tests can catch real-server bugs: handlers
keep running after the client hangs up (a create the client timed out on still happens),
list answers can lag behind writes (``list_lag_reads``/``list_lag_seconds``), a session's state
can lag behind a message sent to it (``message_lag_reads``), tags can be
restricted to an allowed list (422), list filters can be ignored or read comma-joined, and
429s can come at random (``random_429``) besides the ``rate_limit`` token bucket. Unknown
``devin_mode`` values are refused with 422 and unknown ``platform`` labels with 400.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import random
import time
from collections import Counter, deque
from collections.abc import Callable, Collection, Mapping, Sequence
from http.client import responses as _REASONS
from types import TracebackType
from typing import Any, Generic, Literal, Self, TypeVar, cast, overload

import attrs
from aiohttp import web
from aiohttp.typedefs import Handler
from multidict import MultiDict, MultiMapping

__all__ = [
    "ERRORS",
    "EXITS",
    "FINISHES",
    "REDACTED",
    "SUSPENDS",
    "WAITS_FOR_APPROVAL",
    "WAITS_FOR_USER",
    "FakeDevinServer",
    "FakeSession",
    "FaultKind",
    "Quirks",
    "RecordedRequest",
    "Step",
    "StepLike",
    "timeline",
]

REDACTED = "**********"
"""What the server shows instead of a session secret value."""

_T = TypeVar("_T")
_Get = TypeVar("_Get")
_Set = TypeVar("_Set")
_JSONObject = dict[str, Any]
FaultKind = Literal["status", "rate_limit", "slow", "drop", "malformed"]
_FAULT_KINDS = frozenset({"status", "rate_limit", "slow", "drop", "malformed"})
_MALFORMED_BODY = '{"session_id": '
_MAX_TAGS = 50
_PAGE_SIZE, _MAX_PAGE_SIZE = 100, 200
_BODY = web.RequestKey("body", object)
_DEVIN_MODES = ("normal", "fast", "lite", "ultra", "fusion")  # the spec's DevinMode enum
_MODES_TEXT = ", ".join(f"'{m}'" for m in _DEVIN_MODES[:-1]) + f" or '{_DEVIN_MODES[-1]}'"


# --------------------------------------------------------------------------- timelines


@attrs.frozen
class Step:
    """One state of a scripted session timeline.

    The session shows this state for at least ``reads`` reads AND ``seconds`` seconds (monotonic
    clock) before the next read advances it. On entering the step, the session emits ``message``
    (as Devin), takes ``structured_output`` and gains a pull request ``pull_request`` (a URL).
    """

    status: str
    status_detail: str | None = None
    reads: int = attrs.field(default=1, validator=attrs.validators.ge(0))
    seconds: float = attrs.field(default=0.0, validator=attrs.validators.ge(0.0))
    message: str | None = None
    structured_output: _JSONObject | None = None
    pull_request: str | None = None


StepLike = Step | tuple[str, str | None]
"""A ``Step``, or a ``(status, status_detail)`` tuple shown for one read."""


def timeline(*states: StepLike, reads: int = 1) -> tuple[Step, ...]:
    """Build a timeline from ``(status, detail)`` tuples, each shown for ``reads`` reads."""
    return tuple(s if isinstance(s, Step) else Step(s[0], s[1], reads=reads) for s in states)


def _steps(steps: Sequence[StepLike]) -> tuple[Step, ...]:
    """Normalise a non-empty timeline to ``Step`` s."""
    if not steps:
        raise ValueError("a timeline needs at least one step")
    return timeline(*steps)


_CLAIMED, _WORKING = Step("claimed"), Step("running", "working")
FINISHES = (_CLAIMED, _WORKING, Step("running", "finished", message="All done."))
WAITS_FOR_USER = (
    _CLAIMED,
    _WORKING,
    Step("running", "waiting_for_user", message="Which branch should I use?"),
)
WAITS_FOR_APPROVAL = (
    _CLAIMED,
    _WORKING,
    Step("running", "waiting_for_approval", message="May I run the migration?"),
)
ERRORS = (_CLAIMED, _WORKING, Step("error"))
SUSPENDS = (_CLAIMED, _WORKING, Step("suspended", "inactivity"))
EXITS = (_CLAIMED, _WORKING, Step("exit"))


# --------------------------------------------------------------------------- public records


@attrs.frozen
class RecordedRequest:
    """One request as the server received it (the Authorization value is never kept)."""

    method: str
    path: str
    route: str | None
    query: tuple[tuple[str, str], ...]
    body: Any  # parsed JSON as sent (secrets included); None when empty or not JSON
    headers: tuple[tuple[str, str], ...]
    authorized: bool  # carried ``Bearer <the server's api_key>``

    def header(self, name: str) -> str | None:
        """Return the last value of header ``name`` (case-insensitive), or None."""
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return values[-1] if values else None


@attrs.define(kw_only=True)
class FakeSession:
    """Server-side state of one session; tests may read it and adjust plain fields."""

    session_id: str
    seq: int
    org_id: str
    body: _JSONObject  # the create request, secrets redacted
    steps: tuple[Step, ...]
    title: str | None
    tags: list[str]
    repos: list[str]
    playbook_id: str | None
    user_id: str | None
    service_user_id: str | None
    created_at: int  # Unix seconds
    updated_at: int  # Unix seconds
    origin: str = "api"
    schedule_id: str | None = None
    category: str = "other"
    subcategory: str = "Other"
    status: str = "new"
    status_detail: str | None = None
    step_index: int = 0
    reads_in_step: int = 0
    entered_at: float = 0.0  # monotonic seconds
    created_monotonic: float = attrs.Factory(time.monotonic)
    list_matches: int = 0  # list answers it matched, shown or left out (``Quirks`` lag)
    acus_consumed: float = 0.0
    is_archived: bool = False
    structured_output: _JSONObject | None = None
    parent_session_id: str | None = None
    child_session_ids: list[str] = attrs.Factory(list)
    pull_requests: list[dict[str, str | None]] = attrs.Factory(list)
    messages: list[_JSONObject] = attrs.Factory(list)
    attachments: list[_JSONObject] = attrs.Factory(list)
    # While a message lag lasts (``Quirks.message_lag_reads``): the (status, status_detail,
    # updated_at) that answers show instead of the real ones, and the lagged reads left.
    _stale: tuple[str, str | None, int] | None = attrs.field(default=None, init=False, repr=False)
    _stale_reads: int = attrs.field(default=0, init=False, repr=False)

    def _replace_timeline(self, steps: Sequence[StepLike]) -> None:
        """Start ``steps`` from its first step now; this ends any message lag."""
        self._stale, self._stale_reads = None, 0
        self.steps = _steps(steps)
        self._enter(0)

    def _enter(self, index: int) -> None:
        """Enter step ``index``, applying its effects."""
        step = self.steps[index]
        self.step_index, self.reads_in_step, self.entered_at = index, 0, time.monotonic()
        self.status, self.status_detail = step.status, step.status_detail
        self.acus_consumed = round(self.acus_consumed + 0.25, 2)
        self.updated_at = int(time.time())
        if step.message is not None:
            self._add_message("devin", step.message)
        if step.structured_output is not None:
            self.structured_output = dict(step.structured_output)
        if step.pull_request is not None:
            self.pull_requests.append({"pr_url": step.pull_request, "pr_state": "open"})

    def _read(self) -> None:
        """Count one read, first advancing if the current step was shown long enough.

        A read during a message lag uses up one lagged read; the first read after them ends
        the lag, so it shows the real state.
        """
        if self._stale is not None:
            if self._stale_reads > 0:
                self._stale_reads -= 1
            else:
                self._stale = None
        step = self.steps[self.step_index]
        if (
            self.step_index + 1 < len(self.steps)
            and self.reads_in_step >= step.reads
            and time.monotonic() - self.entered_at >= step.seconds
        ):
            self._enter(self.step_index + 1)
        self.reads_in_step += 1

    def _shown(self) -> tuple[str, str | None, int]:
        """Return the (status, status_detail, updated_at) answers show: stale during a lag."""
        return self._stale or (self.status, self.status_detail, self.updated_at)

    def _next_updated_at(self) -> int:
        """Return the ``updated_at`` the next read will show (what list filters compare)."""
        return self._stale[2] if self._stale is not None and self._stale_reads else self.updated_at

    def _lag(self, before: tuple[str, str | None, int], reads: int) -> None:
        """Show ``before`` (the state before a message) in the answer and the next ``reads``."""
        self._stale, self._stale_reads = (before, reads) if reads else (None, 0)

    def _wake(self) -> None:
        """Resume a suspended or waiting session: working, then the rest of its timeline."""
        rest = self.steps[self.step_index + 1 :] or FINISHES[2:]
        self._replace_timeline((_WORKING, *rest))

    def _add_message(self, source: str, text: str) -> None:
        """Append a chronological message from ``source`` ("devin" or "user")."""
        number = len(self.messages) + 1
        event_id = f"event-{self.session_id.removeprefix('devin-')[:8]}-{number:04d}"
        self.messages.append(
            {
                "created_at": int(time.time()),
                "event_id": event_id,
                "message": text,
                "source": source,
            }
        )
        self.updated_at = int(time.time())

    def _add_attachment(self, url: str) -> None:
        """Record a user attachment given by ``url``."""
        number = len(self.attachments) + 1
        self.attachments.append(
            {
                "attachment_id": f"att-{self.session_id.removeprefix('devin-')[:8]}-{number:04d}",
                "name": url.rstrip("/").rsplit("/", 1)[-1],
                "source": "user",
                "url": url,
                "content_type": None,
            }
        )


_RESPONSE_FIELDS = (
    *("session_id", "status", "status_detail", "tags", "org_id", "created_at", "updated_at"),
    *("acus_consumed", "pull_requests", "category", "subcategory", "structured_output"),
    *("origin", "child_session_ids", "parent_session_id", "is_archived", "playbook_id"),
    *("service_user_id", "user_id", "title"),
)


def _session_json(s: FakeSession, *, detailed: bool) -> _JSONObject:
    """Render a SessionResponse; category and structured output only when ``detailed``."""
    body = {name: getattr(s, name) for name in _RESPONSE_FIELDS}
    body["status"], body["status_detail"], body["updated_at"] = s._shown()
    body["url"] = f"https://app.devin.ai/sessions/{s.session_id}"
    if not detailed:  # the API fills these on get/list only
        body.update(category=None, subcategory=None, structured_output=None)
    return body


# --------------------------------------------------------------------------- validation


class _Reject(Exception):
    """Stop handling a request and answer with an API error."""

    def __init__(self, status: int, detail: str | list[_JSONObject], **extra: Any) -> None:
        super().__init__(status, detail)
        self.status, self.detail, self.extra = status, detail, extra

    def response(self, path: str) -> web.Response:
        """Render a 422 as FastAPI's ``{"detail": [...]}``, anything else as problem+json."""
        if isinstance(self.detail, list):
            return web.json_response({"detail": self.detail}, status=self.status)
        return _problem(self.status, self.detail, path, **self.extra)


def _problem(
    status: int, detail: str, path: str, headers: Mapping[str, str] | None = None, **extra: Any
) -> web.Response:
    """Render an RFC 9457 problem+json response; ``extra`` adds extension members."""
    body = {
        "type": "about:blank",
        "title": _REASONS.get(status, "Error"),
        "status": status,
        "detail": detail,
        "instance": path,
        **extra,
    }
    return web.json_response(
        body, status=status, headers=headers, content_type="application/problem+json"
    )


def _error(kind: str, loc: Sequence[str | int], msg: str, shown: Any, **ctx: Any) -> _JSONObject:
    """Build one FastAPI validation error item."""
    item = {"type": kind, "loc": list(loc), "msg": msg, "input": shown}
    return {**item, "ctx": ctx} if ctx else item


def _redact(body: Any) -> Any:
    """Return ``body`` with every session secret value replaced by ``REDACTED``."""
    if not isinstance(body, dict) or body.get("session_secrets") is None:
        return body
    secrets = body["session_secrets"]
    if not isinstance(secrets, list):
        return {**body, "session_secrets": REDACTED}
    shown = [
        ({**s, "value": REDACTED} if "value" in s else s) if isinstance(s, dict) else REDACTED
        for s in secrets
    ]
    return {**body, "session_secrets": shown}


_TYPES: dict[str, tuple[type, str, str]] = {
    "str": (str, "string_type", "Input should be a valid string"),
    "int": (int, "int_type", "Input should be a valid integer"),
    "bool": (bool, "bool_type", "Input should be a valid boolean"),
    "dict": (dict, "dict_type", "Input should be a valid dictionary"),
    "list": (list, "list_type", "Input should be a valid list"),
}
_CREATE_FIELDS = {
    **dict.fromkeys(("prompt", "title", "child_playbook_id", "create_as_user_id"), "str"),
    **dict.fromkeys(("platform", "playbook_id", "advanced_mode"), "str"),
    "devin_mode": "mode",
    **dict.fromkeys(("tags", "attachment_urls", "knowledge_ids", "repos"), "strs"),
    **dict.fromkeys(("secret_ids", "session_links"), "strs"),
    **dict.fromkeys(("bypass_approval", "resumable", "structured_output_required"), "bool"),
    "max_acu_limit": "int",
    "structured_output_schema": "dict",
    "session_secrets": "secrets",
}
_SECRET_FIELDS = {"key": "key", "value": "str", "sensitive": "bool"}
_MESSAGE_FIELDS = {"message": "str", "message_as_user_id": "str", "attachment_urls": "strs"}
_TAGS_FIELDS = {"tags": "strs"}


def _field_errors(
    obj: _JSONObject,
    shown: _JSONObject,
    fields: Mapping[str, str],
    loc: Sequence[str | int],
    required: Collection[str],
    not_null: Collection[str],
) -> list[_JSONObject]:
    """Check each field of ``obj``; ``shown`` is the redacted twin used for error inputs."""
    errors = []
    for name, kind in fields.items():
        if name not in obj:
            if name in required:
                errors.append(_error("missing", [*loc, name], "Field required", shown))
        elif obj[name] is not None or name in not_null:
            errors += _value_errors(kind, obj[name], shown[name], [*loc, name])
    return errors


def _value_errors(kind: str, value: Any, shown: Any, loc: Sequence[str | int]) -> list[_JSONObject]:
    """Check one value against ``kind`` (a ``_TYPES`` key or a special kind, e.g. "strs")."""
    if kind == "mode":
        if isinstance(value, str) and value in _DEVIN_MODES:
            return []
        return [_error("enum", loc, f"Input should be {_MODES_TEXT}", shown, expected=_MODES_TEXT)]
    if kind in ("strs", "secrets"):
        if not isinstance(value, list):
            return _value_errors("list", value, shown, loc)
        item = "str" if kind == "strs" else "secret"
        pairs = enumerate(zip(value, shown, strict=True))
        return [e for i, (v, s) in pairs for e in _value_errors(item, v, s, [*loc, i])]
    if kind == "secret":
        if not isinstance(value, dict):
            msg = "Input should be a valid dictionary or instance of SessionSecretInput"
            return [_error("model_type", loc, msg, shown)]
        required = ("key", "value")
        return _field_errors(value, shown, _SECRET_FIELDS, loc, required, _SECRET_FIELDS.keys())
    if kind == "key":
        if errors := _value_errors("str", value, shown, loc):
            return errors
        if not value:
            msg = "String should have at least 1 character"
            return [_error("string_too_short", loc, msg, shown, min_length=1)]
        if len(value) > 256:
            msg = "String should have at most 256 characters"
            return [_error("string_too_long", loc, msg, shown, max_length=256)]
        return []
    expected, error_type, msg = _TYPES[kind]
    # JSON true/false are Python ints: never accept them as integers.
    if isinstance(value, expected) and not (kind == "int" and isinstance(value, bool)):
        return []
    return [_error(error_type, loc, msg, shown)]


def _validate(
    body: Any,
    fields: Mapping[str, str],
    required: Collection[str],
    not_null: Collection[str] = (),
) -> _JSONObject:
    """Return ``body`` if it is an object whose fields have the right types, else raise a 422."""
    if not isinstance(body, dict):
        msg = "Input should be a valid dictionary or object to extract fields from"
        raise _Reject(422, [_error("model_attributes_type", ["body"], msg, body)])
    not_null = {*required, *not_null}
    if errors := _field_errors(body, _redact(body), fields, ["body"], required, not_null):
        raise _Reject(422, errors)
    return body


def _json_body(request: web.Request) -> Any:
    """Return the request's parsed JSON body, or raise a 422 if it is missing or invalid."""
    body = request[_BODY]
    if isinstance(body, json.JSONDecodeError):
        error = _error("json_invalid", ["body", body.pos], "JSON decode error", {}, error=body.msg)
        raise _Reject(422, [error])
    if body is None:
        raise _Reject(422, [_error("missing", ["body"], "Field required", None)])
    return body


def _decode(raw: bytes) -> object:
    """Parse a request body: JSON value, None when empty, or the decode error."""
    if not raw.strip():
        return None
    try:
        return json.loads(raw.decode("utf-8", "replace"))
    except json.JSONDecodeError as exc:
        return exc


def _dedupe(values: Sequence[str]) -> list[str]:
    """Drop repeated values, keeping the first occurrence of each."""
    return list(dict.fromkeys(values))


# --------------------------------------------------------------------------- queries


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
_ARRAY_FILTERS = frozenset({*_ONE_OF, *_ANY_OF})
_LIST_FILTERS = _ARRAY_FILTERS | {*_SINCE, *_UNTIL, *_EQUAL, "is_archived"}


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


# --------------------------------------------------------------------------- faults


@attrs.define
class _Fault:
    """One injected fault rule; ``remaining`` None means unbounded."""

    kind: FaultKind
    remaining: int | None
    rate: float | None
    method: str | None
    route: str | None
    status: int
    retry_after: str | None
    delay: float
    when: Literal["before", "after"]
    gate: asyncio.Event | None

    def matches(self, method: str, route: str | None) -> bool:
        """Tell whether this rule still applies to a request."""
        return self.remaining != 0 and self.method in (None, method) and self.route in (None, route)


@attrs.define
class _TokenBucket:
    """Server-wide request rate limit: ``rate`` per second, in bursts of up to ``rate``."""

    rate: float
    capacity: float = attrs.field(init=False)
    tokens: float = attrs.field(init=False)
    stamp: float = attrs.field(init=False, factory=time.monotonic)

    def __attrs_post_init__(self) -> None:
        self.capacity = self.tokens = max(1.0, self.rate)

    def take(self) -> float:
        """Take one token; return 0.0, or the seconds until one is available."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


# --------------------------------------------------------------------------- real-server quirks


def _names(value: Collection[str]) -> tuple[str, ...]:
    """Return the distinct strings of ``value`` in order (a bare string is refused)."""
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"expected a collection of strings, not {value!r}")
    return tuple(dict.fromkeys(value))


def _optional_names(value: Collection[str] | None) -> tuple[str, ...] | None:
    return None if value is None else _names(value)


def _known_filters(_: object, __: object, value: tuple[str, ...]) -> None:
    if unknown := sorted(set(value) - _LIST_FILTERS):
        raise ValueError(f"unknown list filters {unknown}; known: {sorted(_LIST_FILTERS)}")


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
            if name in _ARRAY_FILTERS and self.array_encoding == "comma":
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


# --------------------------------------------------------------------------- the server


class FakeDevinServer:
    """A real aiohttp server on 127.0.0.1 that emulates the Devin v3 sessions API.

    Attributes tests may set at any time: ``default_timeline``, ``timeline_factory`` (called with
    the redacted create body; returns a timeline or None for the default), ``forbidden_keys``
    (API keys answered with 403), ``attachments_envelope`` (list attachments as
    ``{"items": [...]}`` instead of a bare array), ``service_user_id`` (stamped on sessions)
    and the real-server behaviours ``list_lag_reads``, ``list_lag_seconds``,
    ``message_lag_reads``, ``allowed_tags``, ``ignored_filters``, ``array_encoding``,
    ``random_429``, ``random_429_retry_after`` and ``platforms`` (each reads and writes that
    field of ``quirks``, a ``Quirks``, validated; so does ``handler_cancellation``, which only
    ``start()`` reads).

    Lists are newest first. Array filters repeat their key (``tags=a&tags=b``, unless
    ``Quirks.array_encoding`` says otherwise); ``tags`` and ``repo_names`` keep sessions having
    ANY of the values; ``*_after`` bounds are inclusive and ``*_before`` exclusive. A message
    wakes a ``suspended`` session or one ``waiting_for_user``: it shows running/working, then
    the rest of its timeline (or finishes if none is left); ``message_lag_reads`` makes reads
    show the state from before the message for a while.
    """

    handler_cancellation: _Quirk[bool, bool] = _Quirk()
    list_lag_reads: _Quirk[int, int] = _Quirk()
    list_lag_seconds: _Quirk[float, float] = _Quirk()
    message_lag_reads: _Quirk[int, int] = _Quirk()
    allowed_tags: _Quirk[tuple[str, ...] | None, Collection[str] | None] = _Quirk()
    ignored_filters: _Quirk[tuple[str, ...], Collection[str]] = _Quirk()
    array_encoding: _Quirk[Literal["repeat", "comma"], Literal["repeat", "comma"]] = _Quirk()
    random_429: _Quirk[float, float] = _Quirk()
    random_429_retry_after: _Quirk[str | None, str | None] = _Quirk()
    platforms: _Quirk[tuple[str, ...], Collection[str]] = _Quirk()

    def __init__(
        self,
        api_key: str = "cog_test_key",
        org_id: str = "org-test",
        *,
        port: int = 0,
        default_timeline: Sequence[StepLike] | None = None,
        seed: int = 0,
        rate_limit: float | None = None,
        attachments_envelope: bool = False,
        handler_cancellation: bool = False,
        list_lag_reads: int = 0,
        list_lag_seconds: float = 0.0,
        message_lag_reads: int = 0,
        allowed_tags: Collection[str] | None = None,
        ignored_filters: Collection[str] = (),
        array_encoding: Literal["repeat", "comma"] = "repeat",
        random_429: float = 0.0,
        random_429_retry_after: str | None = None,
        platforms: Collection[str] = ("linux", "windows"),
    ) -> None:
        """Configure the server; ``start()`` or ``async with`` binds it.

        Args:
            api_key: the only accepted Bearer token.
            org_id: the organization served under ``/v3/organizations/{org_id}``.
            port: TCP port on 127.0.0.1; 0 picks a free one.
            default_timeline: steps of sessions nobody scripted (default ``FINISHES``).
            seed: seeds session ids and the fault ``rate`` draws, for repeatable runs.
            rate_limit: server-wide requests per second before answering 429 (a token
                bucket), None for none.
            attachments_envelope: list attachments as ``{"items": [...]}``.
            handler_cancellation: cancel a handler when its client hangs up; by default it
                runs to the end, as on production stacks.
            list_lag_reads: list answers a new session is left out of (index lag)...
            list_lag_seconds: ...and for at least this many seconds after its creation.
            message_lag_reads: reads after a message that still show the session's state
                from before it (its answer shows it too); 0 for none.
            allowed_tags: the only tags a create or tag update may carry (422 otherwise);
                None for any.
            ignored_filters: list filter names the server ignores (e.g. ``{"tags"}``).
            array_encoding: "repeat" (``tags=a&tags=b``) or "comma" (the last value, split on
                commas) for array filters.
            random_429: probability (0..1) that any request is answered 429, from the seed.
            random_429_retry_after: ``Retry-After`` of those 429s, None for none.
            platforms: the org's platform labels; any other ``platform`` is refused with 400.

        See ``Quirks`` for the details of the last ten, which ``quirks`` holds.
        """
        if rate_limit is not None and rate_limit <= 0:
            raise ValueError("rate_limit must be positive requests per second")
        self.api_key = api_key
        self.org_id = org_id
        self.default_timeline: Sequence[StepLike] = (
            FINISHES if default_timeline is None else _steps(default_timeline)
        )
        self.timeline_factory: Callable[[_JSONObject], Sequence[StepLike] | None] | None = None
        self.forbidden_keys: set[str] = set()
        self.attachments_envelope = attachments_envelope
        self.quirks = Quirks(
            handler_cancellation=handler_cancellation,
            list_lag_reads=list_lag_reads,
            list_lag_seconds=list_lag_seconds,
            message_lag_reads=message_lag_reads,
            allowed_tags=allowed_tags,
            ignored_filters=ignored_filters,
            array_encoding=array_encoding,
            random_429=random_429,
            random_429_retry_after=random_429_retry_after,
            platforms=platforms,
        )
        self.service_user_id: str | None = "service-user-test"
        self.requests: list[RecordedRequest] = []
        self.statuses: Counter[tuple[str | None, int]] = Counter()  # (route, status) answered
        self.sessions: dict[str, FakeSession] = {}
        self.sessions_created = 0
        self._port = port
        self._seed = seed
        self._rng = random.Random(seed)
        self._queued: deque[tuple[Step, ...]] = deque()
        self._faults: list[_Fault] = []
        self._bucket = None if rate_limit is None else _TokenBucket(rate_limit)
        self._request_count = 0
        self._handling: set[asyncio.Task[Any]] = set()  # middleware tasks still running
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        self._app = web.Application(middlewares=[self._middleware])
        self._app.add_routes(self._routes())
        self.route_names = frozenset(r.name for r in self._app.router.resources() if r.name)

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """Return the base URL, e.g. ``http://127.0.0.1:8123`` (no trailing slash)."""
        if self._url is None:
            raise RuntimeError("FakeDevinServer is not started")
        return self._url

    async def start(self) -> None:
        """Bind 127.0.0.1 and start serving."""
        if self._runner is not None:
            raise RuntimeError("FakeDevinServer is already started")
        # A short shutdown timeout keeps close() fast even while slow (fault-injected)
        # handlers are still sleeping; close() ends those whose client hung up.
        # Request lines up to 16 KiB, like common API front ends (aiohttp's default is
        # 8 KiB): a list call with 200 session_ids needs about 10 KiB.
        runner = web.AppRunner(
            self._app,
            access_log=None,
            shutdown_timeout=0.1,
            handler_cancellation=self.quirks.handler_cancellation,
            max_line_size=16384,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", self._port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self._url = f"http://{host}:{port}"

    async def close(self) -> None:
        """Stop serving and release the socket; in-flight handlers are cancelled."""
        runner, self._runner, self._url = self._runner, None, None
        if runner is not None:
            await runner.cleanup()
        # aiohttp forgets a handler whose client hung up (handler_cancellation False).
        for task in self._handling:
            task.cancel()
        await asyncio.gather(*self._handling, return_exceptions=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ------------------------------------------------------------------ scripting

    def queue_timeline(self, steps: Sequence[StepLike]) -> None:
        """Make the next created session (first in, first out) follow ``steps``."""
        self._queued.append(_steps(steps))

    def set_timeline(self, session_id: str, steps: Sequence[StepLike]) -> None:
        """Restart session ``session_id`` on ``steps``, entering the first step now."""
        self.sessions[session_id]._replace_timeline(steps)

    def set_state(self, session_id: str, status: str, status_detail: str | None = None) -> None:
        """Put session ``session_id`` in a state it then holds."""
        self.sessions[session_id]._replace_timeline([Step(status, status_detail)])

    def inject(
        self,
        kind: FaultKind,
        *,
        times: int | None = 1,
        rate: float | None = None,
        method: str | None = None,
        route: str | None = None,
        status: int = 503,
        retry_after: str | None = "1",
        delay: float = 0.5,
        when: Literal["before", "after"] = "before",
        gate: asyncio.Event | None = None,
    ) -> None:
        """Add a fault rule; the first matching rule that fires wins.

        Args:
            kind: "status" (answer ``status``), "rate_limit" (429), "slow" (sleep ``delay``
                seconds), "drop" (close the connection without answering; note that aiohttp
                clients resend a GET, PUT or DELETE once after a disconnection, so drop those
                ``times=2`` to make the client see it) or "malformed" (200 with a truncated
                JSON body).
            times: how many requests it hits; None for no bound.
            rate: probability (0..1) that a matching request is hit, drawn from the seed.
            method: only this HTTP method; None for any.
            route: only this route name (see ``route_names``); None for any.
            status: the status code of a "status" fault.
            retry_after: ``Retry-After`` of a 429 (seconds or an HTTP date), None for none.
            delay: seconds a "slow" fault waits.
            when: "before" handling, or "after" it (the action really happens, e.g. a session
                is created, and then the fault is answered).
            gate: a "slow" fault waits until this event is set instead of ``delay`` seconds.

        Unless ``handler_cancellation`` is on, a request the client gave up on (timed out
        during a "slow" fault) is still handled to the end: ``wait_idle()`` waits for that.
        """
        if kind not in _FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}")
        if route is not None and route not in self.route_names:
            raise ValueError(f"unknown route {route!r}; known: {sorted(self.route_names)}")
        if kind == "rate_limit":
            kind, status = "status", 429
        if when not in ("before", "after"):
            raise ValueError(f"when must be 'before' or 'after', not {when!r}")
        if rate is not None and not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be a probability between 0 and 1")
        method = None if method is None else method.upper()
        self._faults.append(
            _Fault(kind, times, rate, method, route, status, retry_after, delay, when, gate)
        )

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        self._faults.clear()

    # ------------------------------------------------------------------ inspection

    def count(self, route: str | None = None, method: str | None = None) -> int:
        """Count recorded requests, optionally only those of ``route`` and ``method``."""
        return sum(
            1
            for r in self.requests
            if route in (None, r.route) and (method is None or method.upper() == r.method)
        )

    def count_status(self, status: int, route: str | None = None) -> int:
        """Count responses answered with ``status``, optionally only those of ``route``."""
        return sum(
            n for (r, code), n in self.statuses.items() if code == status and route in (None, r)
        )

    @property
    def rate_limited(self) -> Counter[str | None]:
        """Return the 429 answers per route name (bucket, ``random_429`` and injected alike)."""
        return Counter({route: n for (route, code), n in self.statuses.items() if code == 429})

    @property
    def in_flight(self) -> int:
        """Return how many requests are being handled, counting those whose client hung up."""
        return len(self._handling)

    async def wait_idle(self) -> None:
        """Wait until no request is being handled (e.g. one whose client timed out)."""
        while self._handling:
            await asyncio.wait(set(self._handling))

    def reset_log(self) -> None:
        """Forget recorded requests and statuses and zero ``sessions_created``; sessions stay."""
        self.requests.clear()
        self.statuses.clear()
        self.sessions_created = 0

    # ------------------------------------------------------------------ plumbing

    def _routes(self) -> list[web.RouteDef]:
        """Declare every route with its name (enterprise names are prefixed)."""
        org, enterprise = "/v3/organizations/{org_id}/sessions", "/v3/enterprise/sessions"
        one = "/{devin_id}"
        shared = [
            ("GET", "", self._list_sessions, "list_sessions"),
            ("GET", one, self._get_session, "get_session"),
            ("POST", f"{one}/messages", self._send_message, "send_message"),
            ("GET", f"{one}/messages", self._list_messages, "list_messages"),
            ("GET", f"{one}/attachments", self._list_attachments, "list_attachments"),
            ("GET", f"{one}/tags", self._get_tags, "get_tags"),
            ("POST", f"{one}/tags", self._append_tags, "append_tags"),
            ("PUT", f"{one}/tags", self._replace_tags, "replace_tags"),
        ]
        org_only = [
            ("POST", "", self._create_session, "create_session"),
            ("DELETE", one, self._terminate_session, "terminate_session"),
            ("POST", f"{one}/archive", self._archive_session, "archive_session"),
        ]
        return [web.route(m, org + p, h, name=n) for m, p, h, n in shared + org_only] + [
            web.route(m, enterprise + p, h, name=f"enterprise_{n}") for m, p, h, n in shared
        ]

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Record the request, answer it, and tag the answer with an ``x-request-id``."""
        task = asyncio.current_task()
        assert task is not None
        self._handling.add(task)
        try:
            return await self._record_and_respond(request, handler)
        finally:
            self._handling.discard(task)

    async def _record_and_respond(
        self, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        self._request_count += 1
        request_id = f"req-{self._request_count:06d}"
        route = request.match_info.route.name
        request[_BODY] = body = _decode(await request.read())
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                route=route,
                query=tuple(request.query.items()),
                body=None if isinstance(body, ValueError) else body,
                headers=tuple(
                    (k, v) for k, v in request.headers.items() if k.lower() != "authorization"
                ),
                authorized=_bearer(request) == self.api_key,
            )
        )
        response = await self._respond(request, handler, route)
        response.headers["x-request-id"] = request_id
        self.statuses[route, response.status] += 1
        return response

    async def _respond(
        self, request: web.Request, handler: Handler, route: str | None
    ) -> web.StreamResponse:
        """Apply the rate limit and any fault around the real handling."""
        if self._bucket is not None and (wait := self._bucket.take()) > 0:
            retry_after = str(max(1, math.ceil(wait)))
            return _problem(429, "Rate limit exceeded", request.path, {"Retry-After": retry_after})
        quirks = self.quirks
        if quirks.random_429 and self._rng.random() < quirks.random_429:
            retry = quirks.random_429_retry_after
            headers = None if retry is None else {"Retry-After": retry}
            return _problem(429, "Rate limit exceeded", request.path, headers)
        fault = self._pick_fault(request.method, route)
        if fault is not None and fault.when == "before":
            early = await self._act_out(fault, request, None)
            if early is not None:
                return early
        response = await self._handle(request, handler)
        if fault is not None and fault.when == "after":
            late = await self._act_out(fault, request, response)
            return response if late is None else late
        return response

    async def _handle(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Check credentials and the org, run the route, and render errors."""
        try:
            token = _bearer(request)
            if token is not None and token in self.forbidden_keys:
                raise _Reject(403, "Service user lacks required permission")
            if token != self.api_key:
                raise _Reject(401, "Invalid or expired API key")
            org_id = request.match_info.get("org_id")
            if org_id is not None and org_id != self.org_id:
                raise _Reject(404, f"Organization {org_id} not found")
            return await handler(request)
        except _Reject as exc:
            return exc.response(request.path)
        except web.HTTPException as exc:  # unknown path or method
            return _problem(exc.status, exc.reason, request.path)

    def _pick_fault(self, method: str, route: str | None) -> _Fault | None:
        """Return the first matching rule that fires, using up one of its ``times``."""
        for fault in self._faults:
            if not fault.matches(method, route):
                continue
            if fault.rate is not None and self._rng.random() >= fault.rate:
                continue
            if fault.remaining is not None:
                fault.remaining -= 1
            return fault
        return None

    async def _act_out(
        self, fault: _Fault, request: web.Request, response: web.StreamResponse | None
    ) -> web.StreamResponse | None:
        """Perform ``fault``; return what to answer, or None to go on handling."""
        if fault.kind == "slow":
            await (fault.gate.wait() if fault.gate is not None else asyncio.sleep(fault.delay))
            return response
        if fault.kind == "drop":
            if request.transport is not None:
                request.transport.close()
            # aiohttp cannot send this on the closed transport and drops it quietly.
            return web.Response()
        if fault.kind == "malformed":
            return web.Response(text=_MALFORMED_BODY, content_type="application/json")
        headers = None
        if fault.status == 429 and fault.retry_after is not None:
            headers = {"Retry-After": fault.retry_after}
        return _problem(fault.status, "Injected fault", request.path, headers)

    def _session_for(self, request: web.Request) -> FakeSession:
        """Return the session in the path, or raise 422 (bad id) or 404 (unknown here)."""
        devin_id = request.match_info["devin_id"]
        if not devin_id.startswith("devin-"):
            msg = "String should match pattern '^devin-'"
            error = _error("string_pattern_mismatch", ["path", "devin_id"], msg, devin_id)
            raise _Reject(422, [error])
        session = self.sessions.get(devin_id)
        # Org scope: the path org; enterprise scope: the optional ?org_id= filter.
        org_id = request.match_info.get("org_id") or request.query.get("org_id")
        if session is None or org_id not in (None, session.org_id):
            raise _Reject(404, f"Session {devin_id} not found")
        return session

    def _next_timeline(self, body: _JSONObject) -> tuple[Step, ...]:
        """Choose a new session's timeline: queued, else the factory's, else the default."""
        if self._queued:
            return self._queued.popleft()
        chosen = self.timeline_factory(body) if self.timeline_factory is not None else None
        return _steps(self.default_timeline if chosen is None else chosen)

    def _create(self, body: _JSONObject) -> FakeSession:
        """Create, store and return a session for a validated create request."""
        seq = len(self.sessions) + 1
        digest = hashlib.sha256(f"{self._seed}:{seq}".encode()).hexdigest()[:32]
        shown = _redact(body)
        now = int(time.time())
        session = FakeSession(
            session_id=f"devin-{digest}",
            seq=seq,
            org_id=self.org_id,
            body=shown,
            steps=self._next_timeline(shown),
            title=body.get("title") or body["prompt"][:40],
            tags=_dedupe(body.get("tags") or []),
            repos=list(body.get("repos") or []),
            playbook_id=body.get("playbook_id"),
            user_id=body.get("create_as_user_id"),
            service_user_id=self.service_user_id,
            created_at=now,
            updated_at=now,
        )
        session._add_message("user", body["prompt"])
        for url in body.get("attachment_urls") or []:
            session._add_attachment(url)
        session._enter(0)
        self.sessions[session.session_id] = session
        self.sessions_created += 1
        return session

    # ------------------------------------------------------------------ route handlers

    async def _create_session(self, request: web.Request) -> web.Response:
        required, not_null = ("prompt",), ("resumable",)
        body = _validate(_json_body(request), _CREATE_FIELDS, required, not_null)
        self.quirks._check_tags(body.get("tags") or [])
        self.quirks._check_platform(body.get("platform"))
        return web.json_response(_session_json(self._create(body), detailed=False))

    async def _list_sessions(self, request: web.Request) -> web.Response:
        """List matching sessions newest first; each one listed counts as a read."""
        query = _Query(self.quirks._list_query(request.query))
        keep = _session_filter(query, request.match_info.get("org_id"))
        first, after = query.page()
        query.check()
        matching = [s for s in reversed(self.sessions.values()) if keep(s)]
        newest_first = [(-s.seq, s) for s in matching if not self.quirks._lags(s)]
        page, envelope = _paginate(newest_first, first, after)
        for session in page:
            session._read()
        items = [_session_json(s, detailed=True) for s in page]
        return web.json_response({"items": items, **envelope})

    async def _get_session(self, request: web.Request) -> web.Response:
        session = self._session_for(request)
        session._read()
        return web.json_response(_session_json(session, detailed=True))

    async def _terminate_session(self, request: web.Request) -> web.Response:
        """Move the session to ``exit`` for good, archiving it if ``?archive=true``."""
        session = self._session_for(request)
        query = _Query(request.query)
        archive = query.boolean("archive")
        query.check()
        session._replace_timeline([Step("exit")])
        session.is_archived = session.is_archived or bool(archive)
        return web.json_response(_session_json(session, detailed=False))

    async def _archive_session(self, request: web.Request) -> web.Response:
        """Archive the session, putting it to sleep (suspended) if it is running."""
        session = self._session_for(request)
        session.is_archived = True
        if session.status == "running":
            session._replace_timeline([Step("suspended", "user_request")])
        return web.json_response(_session_json(session, detailed=False))

    async def _send_message(self, request: web.Request) -> web.Response:
        """Record a user message; it wakes a suspended session or one waiting for the user.

        With ``Quirks.message_lag_reads``, the answer and that many reads after it show the
        state from before the message (during a lag still running: from before that lag).
        """
        session = self._session_for(request)
        body = _validate(_json_body(request), _MESSAGE_FIELDS, ("message",))
        before = session._shown()
        session._add_message("user", body["message"])
        for url in body.get("attachment_urls") or []:
            session._add_attachment(url)
        if session.status == "suspended" or session.status_detail == "waiting_for_user":
            session._wake()
        session._lag(before, self.quirks.message_lag_reads)
        return web.json_response(_session_json(session, detailed=False))

    async def _list_messages(self, request: web.Request) -> web.Response:
        session = self._session_for(request)
        query = _Query(request.query)
        first, after = query.page()
        query.check()
        items, envelope = _paginate(list(enumerate(session.messages)), first, after)
        return web.json_response({"items": items, **envelope})

    async def _list_attachments(self, request: web.Request) -> web.Response:
        attachments = list(self._session_for(request).attachments)
        return web.json_response(
            {"items": attachments} if self.attachments_envelope else attachments
        )

    async def _get_tags(self, request: web.Request) -> web.Response:
        return web.json_response({"tags": self._session_for(request).tags})

    async def _append_tags(self, request: web.Request) -> web.Response:
        session = self._session_for(request)
        session.tags = _dedupe([*session.tags, *_tags_body(request, self.quirks)])
        return web.json_response({"tags": session.tags})

    async def _replace_tags(self, request: web.Request) -> web.Response:
        session = self._session_for(request)
        session.tags = _dedupe(_tags_body(request, self.quirks))
        return web.json_response({"tags": session.tags})


def _tags_body(request: web.Request, quirks: Quirks) -> list[str]:
    """Return the validated ``tags`` of a SessionTagsUpdate body (at most 50, all allowed)."""
    tags: list[str] = _validate(_json_body(request), _TAGS_FIELDS, ("tags",))["tags"]
    if len(tags) > _MAX_TAGS:
        msg = f"List should have at most {_MAX_TAGS} items after validation, not {len(tags)}"
        error = _error("too_long", ["body", "tags"], msg, tags, max_length=_MAX_TAGS)
        raise _Reject(422, [error])
    quirks._check_tags(tags)
    return tags


def _bearer(request: web.Request) -> str | None:
    """Return the Bearer token of the request, or None."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None
