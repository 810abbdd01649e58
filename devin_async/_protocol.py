"""Sans-I/O protocol: build requests and decode responses as plain values.

Nothing here does I/O or knows aiohttp. Requests carry the path, query, body and the
session they are about; responses come back as (status, headers, body bytes), and
``decode`` turns them into data or the right exception from ``_errors``, with the
server's requested wait (``retry-after-ms``, ``Retry-After``) and its word on retrying
(``x-should-retry``) parsed once onto it.

Source: https://docs.devin.ai/api-reference/v3/sessions/get-organizations-session.md
(paths and the ``devin-`` id prefix) and https://docs.devin.ai/api-reference/common-flows.md
(error statuses).
"""

from __future__ import annotations

import email.utils
import functools
import ipaddress
import json
import math
import re
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

import attrs

from . import _convert
from ._errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseValidationError,
    StatusInfo,
    UnprocessableEntityError,
)
from ._filters import ARRAY_FILTERS
from ._models import CreateSessionRequest
from ._multipart import Sink, Upload

__all__ = [
    "MAX_PAGE",
    "MAX_TAGS",
    "Request",
    "Response",
    "Scope",
    "Transport",
    "archive_session",
    "check_base_url",
    "check_count",
    "check_page_size",
    "check_positive",
    "check_strings",
    "check_tags",
    "create_session",
    "decode",
    "download_attachment",
    "encode_query",
    "generate_insights",
    "get_insights",
    "get_session",
    "get_tags",
    "is_loopback",
    "list_attachments",
    "list_messages",
    "list_sessions",
    "normalize_session_id",
    "parse_retry_after",
    "poll_sessions",
    "redirect_target",
    "retry_after_of",
    "same_origin",
    "send_message",
    "session_filters",
    "set_tags",
    "should_retry_of",
    "terminate_session",
    "upload_attachment",
]

DEFAULT_BASE_URL = "https://api.devin.ai"
_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-amzn-requestid", "cf-ray")
_MESSAGE_DETAIL = 300


class Request(NamedTuple):
    """One HTTP request, before any I/O (a named tuple: one is built per request).

    Attributes:
        method: HTTP method.
        path: the path below the client's base URL, already percent-safe.
        query: query pairs in order; repeated keys encode arrays.
        body: JSON body bytes, or None.
        idempotent: True when repeating it cannot change server state twice.
        timeout: a shorter timeout than the client's for this request (a wait's
            deadline), seconds, or None.
        session_id: the session the request is about (``devin-`` form), or None.
        upload: a multipart body streamed in place of ``body``, or None.
        sink: where a 2xx body is streamed (following redirects, see the transport)
            instead of being returned, or None.
    """

    method: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    idempotent: bool = True
    timeout: float | None = None
    session_id: str | None = None
    upload: Upload | None = None
    sink: Sink | None = None


class Response(NamedTuple):
    """One HTTP response as plain values; ``headers`` must look names up case-insensitively."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class Transport(Protocol):
    """What ``DevinClient(transport=...)`` accepts: one coroutine that answers a Request.

    It sends ``request`` to the base URL it was built for, with the credentials it was
    given, and returns the whole response; a failure with no response is raised as
    ``APIConnectionError`` (``request_sent=False`` only if nothing was written). If it
    has an ``aclose()`` coroutine, the client awaits it when it is closed.
    """

    async def send(self, request: Request, /) -> Response: ...


@attrs.frozen
class Scope:
    """Where session paths live: one organization, or the enterprise (``org_id`` None)."""

    org_id: str | None
    # Computed once: every request path starts with it.
    sessions_path: str = attrs.field(init=False, repr=False, eq=False)

    @sessions_path.default
    def _sessions_path_default(self) -> str:
        if self.org_id is None:
            return "/v3/enterprise/sessions"
        return f"/v3/organizations/{self.org_id}/sessions"


# Session ids are "devin-" + hex in every documented example; anything outside this
# alphabet (path separators, query or fragment marks, percent escapes, whitespace,
# look-alike unicode) could redirect the request to another resource.
_ID_RE = re.compile(r"[A-Za-z0-9_.\-]+")
_ORG_RE = re.compile(r"[A-Za-z0-9_\-]+")


def normalize_session_id(session_id: str) -> str:
    """Return the ``devin-`` prefixed form of a session id, rejecting unsafe ids.

    Raises:
        ValueError: the id is empty, not a string, or contains characters that do not
            belong in one path segment.
    """
    if type(session_id) is not str:
        if not isinstance(session_id, str):
            raise TypeError(f"session id must be a str, not {type(session_id).__name__}")
        session_id = str(session_id)  # a subclass could hash or compare as it likes
    return _normalized(session_id)


@functools.lru_cache(maxsize=4096)
def _normalized(session_id: str) -> str:
    """``normalize_session_id`` of a plain str: bots and waits ask for the same ids again."""
    if not _ID_RE.fullmatch(session_id) or ".." in session_id:
        raise ValueError(f"invalid session id {session_id!r}")
    if session_id.startswith("devin-"):
        if session_id == "devin-":
            raise ValueError(f"invalid session id {session_id!r}")
        return session_id
    return "devin-" + session_id


def check_org_id(org_id: str) -> str:
    """Return ``org_id`` if it is safe to put in a path, else raise ConfigurationError."""
    if not isinstance(org_id, str) or not _ORG_RE.fullmatch(org_id):
        raise ConfigurationError(f"invalid org_id {org_id!r}")
    return org_id


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback name or address: the one place plain http may go."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_QUERY_OR_FRAGMENT = re.compile(r"[?#]")


def _shown_url(base_url: str) -> str:
    """Return ``base_url`` as it may appear in a message: never its userinfo or query.

    Works on the raw text, not on urlsplit's parts: a password holding "/", "?" or "#"
    makes urlsplit end the netloc inside the password, so its "userinfo" is not the whole
    secret. Everything between the scheme and the last "@" is hidden, and so is all from
    the first "?" or "#" on. Text without "://" is not shown at all: it may be anything,
    such as an API key passed in the wrong place.
    """
    scheme, sep, rest = base_url.partition("://")
    if not sep:
        return "a value without '://' (not shown)"
    _, at, rest = rest.rpartition("@")
    cut = _QUERY_OR_FRAGMENT.search(rest)
    if cut is not None:
        rest = rest[: cut.start()] + cut.group() + "..."
    return repr(f"{scheme}://{'***@' if at else ''}{rest}")


def check_base_url(base_url: str) -> str:
    """Return the base URL without a trailing slash, refusing unsafe ones.

    The API key must not cross the network in clear text, so plain http is only
    allowed to loopback addresses (local fakes and tunnels). No message shows the URL's
    userinfo (a password) or query.

    Raises:
        ConfigurationError: not a string, not http(s), no host, or http to a
            non-loopback host.
    """
    if not isinstance(base_url, str):
        raise ConfigurationError(f"base_url must be a str, not {type(base_url).__name__}")
    parts = urllib.parse.urlsplit(base_url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigurationError(
            f"base_url must be an http(s) URL with a host: {_shown_url(base_url)}"
        )
    try:
        parts.port  # noqa: B018 - parsing the port raises on a non-numeric one
        bad_port = False
    except ValueError:
        # Raised after the block: urlsplit's error, which quotes the port (maybe part of
        # a password), must not become the __context__ of ours.
        bad_port = True
    if bad_port:
        raise ConfigurationError(f"base_url has an invalid port: {_shown_url(base_url)}")
    # Test the raw marks: an empty query ("https://h?") would swallow every path, and an
    # "@" anywhere is userinfo, even where a "/" in a password moved it into the path.
    if "@" in base_url or "?" in base_url or "#" in base_url:
        raise ConfigurationError("base_url must not contain credentials, a query or a fragment")
    if parts.scheme == "http" and not is_loopback(host):
        raise ConfigurationError(
            f"refusing to send the API key over plain http to {host!r}; use https"
        )
    return base_url.rstrip("/")


def _about(method: str, scope: Scope, session_id: str, suffix: str = "", **fields: Any) -> Request:
    """Build a request on ``.../sessions/{devin_id}{suffix}``, which names its session."""
    session_id = normalize_session_id(session_id)
    path = f"{scope.sessions_path}/{session_id}{suffix}"
    return Request(method, path, session_id=session_id, **fields)


def get_session(scope: Scope, session_id: str) -> Request:
    """Build ``GET .../sessions/{devin_id}``."""
    if type(session_id) is not str:
        session_id = normalize_session_id(session_id)
    return _get_session(scope.sessions_path, session_id)


@functools.lru_cache(maxsize=4096)
def _get_session(sessions_path: str, session_id: str) -> Request:
    """``get_session`` of a plain str, built once: bots poll the same sessions again."""
    session_id = normalize_session_id(session_id)
    return Request("GET", f"{sessions_path}/{session_id}", session_id=session_id)


def encode_query(params: Mapping[str, object]) -> tuple[tuple[str, str], ...]:
    """Encode query parameters FastAPI-style: arrays as repeated keys, bools as true/false.

    None values are left out. The array encoding is FastAPI's convention; the Devin
    docs do not state one (see the list-sessions notes in the API reference).
    """
    pairs: list[tuple[str, str]] = []
    for name, value in params.items():
        if value is None:
            continue
        values = value if isinstance(value, list | tuple) else (value,)
        for item in values:
            if isinstance(item, bool):
                pairs.append((name, "true" if item else "false"))
            elif isinstance(item, str | int | float):
                pairs.append((name, str(item)))
            else:
                raise TypeError(f"query parameter {name!r} cannot be {type(item).__name__}")
    return tuple(pairs)


def list_sessions(scope: Scope, params: Mapping[str, object]) -> Request:
    """Build ``GET .../sessions`` with filters and cursor parameters (``first``, ``after``)."""
    return Request("GET", scope.sessions_path, query=encode_query(params))


def poll_sessions(
    scope: Scope,
    session_ids: Sequence[str] | None,
    updated_after: int | None,
    after: str | None,
    timeout: float | None = None,
) -> Request:
    """Build a wait's ``GET .../sessions?session_ids=...`` (or ``?updated_after=...``).

    The ids come from ``normalize_session_id``, so the query is built directly.
    """
    rest = [("first", str(MAX_PAGE))]
    if updated_after is not None:
        rest.insert(0, ("updated_after", str(updated_after)))
    if after is not None:
        rest.append(("after", after))
    return Request(
        "GET",
        scope.sessions_path,
        query=_ids_query(tuple(session_ids or ())) + tuple(rest),
        timeout=timeout,
    )


@functools.lru_cache(maxsize=256)
def _ids_query(session_ids: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """The ``session_ids`` pairs of a batch: waits poll the same batches tick after tick."""
    return tuple([("session_ids", i) for i in session_ids])


def create_session(scope: Scope, request: CreateSessionRequest) -> Request:
    """Build ``POST /v3/organizations/{org_id}/sessions``.

    Raises:
        ConfigurationError: the client has no org_id (there is no enterprise create).
        TypeError, ValueError: a tag that is not a string, or more than 50 tags.
    """
    if scope.org_id is None:
        raise ConfigurationError(
            "create_session needs an org_id (DEVIN_ORG_ID); the API has no enterprise create"
        )
    if request.tags is not None:
        check_tags(request.tags)
    body = _convert.dumps_create_request(request)
    return Request("POST", scope.sessions_path, body=body, idempotent=False)


MAX_TAGS = 50  # per session: https://docs.devin.ai/api-reference/v3/sessions/post-organizations-session-tags.md
MAX_PAGE = 200  # "first", 1-200, on every v3 list


def check_count(name: str, value: int, least: int, error: type[ValueError] = ValueError) -> int:
    """Return ``value`` if it is an int (not a bool) of at least ``least``, else raise ``error``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise error(f"{name} must be an int >= {least}, got {value!r}")
    return value


def check_positive(
    name: str, value: float, unit: str = "seconds", error: type[ValueError] = ValueError
) -> float:
    """Return ``value`` as a float if it is a positive finite number, else raise ``error``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise error(f"{name} must be a number of {unit}, not {type(value).__name__}")
    if not (value > 0 and math.isfinite(value)):
        raise error(f"{name} must be a positive finite number of {unit}, got {value!r}")
    return float(value)


def check_page_size(first: int) -> int:
    """Return ``first`` if it is a valid page size (1-200), else raise ValueError."""
    if isinstance(first, bool) or not isinstance(first, int) or not 1 <= first <= MAX_PAGE:
        raise ValueError(f"first must be an integer from 1 to {MAX_PAGE}, got {first!r}")
    return first


def check_strings(name: str, values: Iterable[str]) -> list[str]:
    """Return ``values`` as a list of strings; a bare string is refused, not split."""
    if isinstance(values, str | bytes):
        raise TypeError(f"{name} must be a list of strings, not a single string")
    items = list(values)  # once: a generator can only be read one time
    if not all(isinstance(v, str) for v in items):
        raise TypeError(f"{name} must be a list of strings")
    return items


_TIME_FILTERS = frozenset({"created_after", "created_before", "updated_after", "updated_before"})


def session_filters(scope: Scope | None = None, **filters: object) -> dict[str, object]:
    """Check the list-sessions filters and return those that are set, ready to encode.

    Array filters must be lists of strings (never a bare string), timestamps integers
    (Unix seconds), ``is_archived`` a bool; the rest are strings. Given a ``scope``,
    ``org_ids`` is refused in an organization's (a server that ignored it would answer
    unfiltered). Every other filter exists in both scopes: the enterprise list takes
    ``repo_names``, ``category`` and ``is_archived`` too.
    Source: https://docs.devin.ai/sdk/api/DevinApi/interfaces/SessionsQueryParams.md and
    https://docs.devin.ai/sdk/api/DevinApi/enterprise/interfaces/GetSessionsSessionsRequest
    """
    if scope is not None and scope.org_id is not None and filters.get("org_ids") is not None:
        raise ValueError("org_ids filters the enterprise scope; this client has an org_id")
    params: dict[str, object] = {}
    for name, value in filters.items():
        if value is None:
            continue
        if name == "session_ids":
            ids = check_strings(name, value)  # type: ignore[arg-type]
            params[name] = [normalize_session_id(i) for i in ids]
        elif name in ARRAY_FILTERS:
            params[name] = check_strings(name, value)  # type: ignore[arg-type]
        elif name in _TIME_FILTERS:
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an integer (Unix seconds)")
            params[name] = value
        elif name == "is_archived":
            if not isinstance(value, bool):
                raise TypeError("is_archived must be a bool")
            params[name] = value
        else:
            params[name] = str(value)
    return params


def _org_only(scope: Scope, what: str) -> None:
    if scope.org_id is None:
        raise ConfigurationError(
            f"{what} needs an org_id (DEVIN_ORG_ID); the API has no enterprise {what}"
        )


def check_tags(tags: Sequence[str]) -> list[str]:
    """Return ``tags`` as a list, refusing a bare string, non-strings, or more than 50."""
    checked = check_strings("tags", tags)
    if len(checked) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags per session, got {len(checked)}")
    return checked


def list_messages(scope: Scope, session_id: str, first: int, after: str | None) -> Request:
    """Build ``GET .../sessions/{devin_id}/messages`` for one page."""
    query = encode_query({"first": first, "after": after})
    return _about("GET", scope, session_id, "/messages", query=query)


def send_message(
    scope: Scope,
    session_id: str,
    message: str,
    message_as_user_id: str | None,
    attachment_urls: Sequence[str] | None,
) -> Request:
    """Build ``POST .../sessions/{devin_id}/messages`` (not idempotent)."""
    if not isinstance(message, str) or not message.strip():
        raise ValueError("message must be a non-empty string")
    urls = None if attachment_urls is None else check_strings("attachment_urls", attachment_urls)
    body = _convert.dumps_message_request(message, message_as_user_id, urls)
    return _about("POST", scope, session_id, "/messages", body=body, idempotent=False)


def terminate_session(scope: Scope, session_id: str, archive: bool) -> Request:
    """Build ``DELETE /v3/organizations/{org_id}/sessions/{devin_id}?archive=``."""
    _org_only(scope, "terminate")
    query = encode_query({"archive": archive}) if archive else ()
    return _about("DELETE", scope, session_id, query=query)


def archive_session(scope: Scope, session_id: str) -> Request:
    """Build ``POST /v3/organizations/{org_id}/sessions/{devin_id}/archive`` (idempotent)."""
    _org_only(scope, "archive")
    return _about("POST", scope, session_id, "/archive")


def get_tags(scope: Scope, session_id: str) -> Request:
    """Build ``GET .../sessions/{devin_id}/tags``."""
    return _about("GET", scope, session_id, "/tags")


def get_insights(scope: Scope, session_id: str) -> Request:
    """Build ``GET /v3/organizations/{org_id}/sessions/{devin_id}/insights`` (org only)."""
    _org_only(scope, "get_insights")
    return _about("GET", scope, session_id, "/insights")


def generate_insights(scope: Scope, session_id: str) -> Request:
    """Build ``POST .../sessions/{devin_id}/insights/generate``.

    Idempotent: a repeat answers ``already_exists`` and starts nothing.
    """
    return _about("POST", scope, session_id, "/insights/generate")


def set_tags(scope: Scope, session_id: str, tags: Sequence[str], *, replace: bool) -> Request:
    """Build ``PUT`` (replace, idempotent) or ``POST`` (append) ``.../tags``."""
    body = _convert.dumps_tags_request(check_tags(tags))
    if replace:
        return _about("PUT", scope, session_id, "/tags", body=body)
    return _about("POST", scope, session_id, "/tags", body=body, idempotent=False)


def list_attachments(scope: Scope, session_id: str) -> Request:
    """Build ``GET .../sessions/{devin_id}/attachments``."""
    return _about("GET", scope, session_id, "/attachments")


def upload_attachment(scope: Scope, upload: Upload) -> Request:
    """POST one file as ``multipart/form-data`` (field ``file``): a write, never idempotent."""
    _org_only(scope, "attachments")
    return Request(
        "POST", f"/v3/organizations/{scope.org_id}/attachments", upload=upload, idempotent=False
    )


def download_attachment(scope: Scope, attachment_id: str, name: str, sink: Sink) -> Request:
    """GET one attachment's bytes into ``sink``."""
    _org_only(scope, "attachments")
    for what, value in (("attachment id", attachment_id), ("attachment name", name)):
        if not value or value in (".", "..") or not value.isprintable():
            raise ValueError(f"invalid {what} {value!r}")
    path = (
        f"/v3/organizations/{scope.org_id}/attachments/"
        f"{urllib.parse.quote(attachment_id, safe='')}/{urllib.parse.quote(name, safe='')}"
    )
    return Request("GET", path, sink=sink)


def redirect_target(url: str, location: str) -> str:
    """The absolute URL a redirect from ``url`` goes to, if the client may follow it.

    https anywhere, http only to a loopback host (as ``check_base_url`` allows).

    Raises:
        ResponseValidationError: any other scheme (``file:``, http to another host...).
    """
    target = urllib.parse.urljoin(url, location.strip())
    parts = urllib.parse.urlsplit(target)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return target
    if parts.scheme == "http" and is_loopback(host):
        return target
    # Scheme and host only: a presigned URL's query is a credential.
    raise ResponseValidationError(
        f"refused a redirect to {parts.scheme or '(no scheme)'}://{host} "
        "(only https, or http to a loopback host, is followed)",
        body="",
    )


def same_origin(first: str, second: str) -> bool:
    """True if both URLs have one scheme, host and port (credentials may go to both)."""
    a, b = urllib.parse.urlsplit(first), urllib.parse.urlsplit(second)
    try:
        return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)
    except ValueError:
        return False


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Return the Retry-After header as seconds from ``now`` (Unix seconds), or None.

    Accepts delta-seconds and HTTP dates (RFC 9110 section 10.2.3). Unparseable,
    negative or non-finite values give None; dates in the past give 0.
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            return None
        return max(0.0, when.timestamp() - now)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def retry_after_of(headers: Mapping[str, str], now: float) -> float | None:
    """Return the wait a response asks for, seconds from ``now`` (Unix seconds), or None.

    ``retry-after-ms`` (milliseconds, sent by some gateways and read by the official
    SDKs) comes before ``Retry-After``; a value that does not parse counts as absent.
    """
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            seconds = float(millis) / 1000
        except ValueError:
            seconds = math.nan
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    return parse_retry_after(headers.get("retry-after"), now)


def should_retry_of(headers: Mapping[str, str]) -> bool | None:
    """Return the server's ``x-should-retry`` (``true`` or ``false``), or None if it sent none.

    The header is honoured by the official SDKs: a server's explicit word on whether a
    request may be retried. Any other value counts as absent.
    """
    value = headers.get("x-should-retry")
    if value is None:
        return None
    return {"true": True, "false": False}.get(value.strip().lower())


def request_id_of(headers: Mapping[str, str]) -> str | None:
    """Return the first request-id header the server sent, if any."""
    for name in _REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return value
    return None


_STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


REDACTED = "**********"
"""What an error shows instead of a session secret value the server echoed back."""


def _secret_values(body: bytes | None) -> tuple[str, ...]:
    """Return the session secret values a request body carries, longest first."""
    if body is None or b'"session_secrets"' not in body:
        return ()
    try:
        given = json.loads(body).get("session_secrets") or ()
    except (ValueError, AttributeError):
        return ()
    values = {s.get("value") for s in given if isinstance(s, dict)}
    return tuple(sorted((v for v in values if isinstance(v, str) and v), key=len, reverse=True))


def _scrub(value: object, secrets: Sequence[str]) -> object:
    """Return ``value`` (decoded JSON or text) with every secret replaced by REDACTED."""
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, list):
        return [_scrub(item, secrets) for item in value]
    if isinstance(value, dict):
        return {_scrub(k, secrets): _scrub(v, secrets) for k, v in value.items()}
    return value


def decode(
    request: Request,
    response: Response,
    base_url: str,
    load: Callable[[bytes], Any] = _convert.loads,
) -> Any:
    """Return a 2xx response's body ``load``ed, or raise the error the response means.

    Raises:
        APIStatusError: the status is not 2xx (the subclass its status names).
        ResponseValidationError: ``load`` refused a 2xx body.
    """
    if 200 <= response.status < 300:
        return load(response.body)
    raise status_error(request, response, base_url + request.path)


def status_error(
    request: Request, response: Response, url: str, now: float | None = None
) -> APIStatusError:
    """Build the exception for a non-2xx response; ``now`` is Unix seconds (default: now).

    The server's requested wait is parsed here, once, onto ``retry_after``, and its
    ``x-should-retry`` onto ``should_retry``. A server
    may echo the request back in its error (FastAPI's 422 ``input``): session secret
    values the request carried are replaced by ``REDACTED`` in the body kept and in the
    message.
    """
    if now is None:
        now = time.time()
    status = response.status
    body = _convert.loads_error_body(response.body)
    secrets = _secret_values(request.body)
    if secrets:
        body = _scrub(body, secrets)
    summary, errors = _convert.error_summary(body)
    message = f"{request.method} {request.path} -> HTTP {status}"
    if summary:
        message += f": {summary[:_MESSAGE_DETAIL]}"
    retry_after = retry_after_of(response.headers, now)
    should_retry = should_retry_of(response.headers)
    info: StatusInfo = {
        "status_code": status,
        "body": body,
        "headers": response.headers,
        "request_id": request_id_of(response.headers),
        "method": request.method,
        "url": url,
    }
    if status == 422:
        return UnprocessableEntityError(
            message, errors=errors, retry_after=retry_after, should_retry=should_retry, **info
        )
    cls = _STATUS_ERRORS.get(status)
    if cls is None:
        cls = InternalServerError if status >= 500 else APIStatusError
    return cls(message, retry_after=retry_after, should_retry=should_retry, **info)
