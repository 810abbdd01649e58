"""Sans-I/O protocol: build requests and decode responses as plain values.

Nothing here does I/O or knows aiohttp. Requests carry the path, query and body;
responses come back as (status, headers, body bytes) and are turned into decoded JSON
or the right exception from ``_errors``.

Source: https://docs.devin.ai/api-reference/v3/sessions/get-organizations-session.md
(paths and the ``devin-`` id prefix) and https://docs.devin.ai/api-reference/common-flows.md
(error statuses).
"""

from __future__ import annotations

import email.utils
import ipaddress
import math
import re
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any, NamedTuple

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
    StatusInfo,
    UnprocessableEntityError,
    ValidationDetail,
)
from ._models import CreateSessionRequest

__all__ = [
    "Request",
    "Response",
    "Scope",
    "check_base_url",
    "create_session",
    "decode",
    "encode_query",
    "get_session",
    "list_sessions",
    "normalize_session_id",
    "parse_retry_after",
]

DEFAULT_BASE_URL = "https://api.devin.ai"
_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-amzn-requestid", "cf-ray")
_MESSAGE_DETAIL = 300


class Request(NamedTuple):
    """One HTTP request, before any I/O.

    A named tuple rather than an attrs class: one is built per request, and this is
    about 2x cheaper to build while being just as immutable.

    Attributes:
        method: HTTP method.
        path: absolute path, already percent-safe.
        query: query pairs in order; repeated keys encode arrays.
        body: JSON body bytes, or None.
        idempotent: True when repeating it cannot change server state twice.
    """

    method: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    idempotent: bool = True


class Response(NamedTuple):
    """One HTTP response as plain values; ``headers`` is case-insensitive, as aiohttp's."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@attrs.frozen
class Scope:
    """Where session paths live: one organization, or the enterprise (``org_id`` None)."""

    org_id: str | None
    # Computed once (it was a property): every request path starts with it.
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
    if not isinstance(session_id, str):
        raise TypeError(f"session id must be a str, not {type(session_id).__name__}")
    if not _ID_RE.fullmatch(session_id) or ".." in session_id:
        raise ValueError(f"invalid session id {session_id!r}")
    if session_id.startswith("devin-"):
        if session_id == "devin-":
            raise ValueError(f"invalid session id {session_id!r}")
        return session_id
    return "devin-" + session_id


def check_org_id(org_id: str) -> str:
    """Return ``org_id`` if it is safe to put in a path, else raise ConfigurationError."""
    if not _ORG_RE.fullmatch(org_id):
        raise ConfigurationError(f"invalid org_id {org_id!r}")
    return org_id


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(base_url: str) -> str:
    """Return the base URL without a trailing slash, refusing unsafe ones.

    The API key must not cross the network in clear text, so plain http is only
    allowed to loopback addresses (local fakes and tunnels).

    Raises:
        ConfigurationError: not http(s), no host, or http to a non-loopback host.
    """
    parts = urllib.parse.urlsplit(base_url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigurationError(f"base_url must be an http(s) URL with a host: {base_url!r}")
    try:
        parts.port  # noqa: B018 - parsing the port raises on a non-numeric one
    except ValueError:
        raise ConfigurationError(f"base_url has an invalid port: {base_url!r}") from None
    # Test the raw marks: an empty query ("https://h?") would swallow every path.
    if "@" in parts.netloc or "?" in base_url or "#" in base_url:
        raise ConfigurationError("base_url must not contain credentials, a query or a fragment")
    if parts.scheme == "http" and not _is_loopback(host):
        raise ConfigurationError(
            f"refusing to send the API key over plain http to {host!r}; use https"
        )
    return base_url.rstrip("/")


def get_session(scope: Scope, session_id: str) -> Request:
    """Build ``GET .../sessions/{devin_id}``."""
    return Request("GET", f"{scope.sessions_path}/{normalize_session_id(session_id)}")


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


def create_session(scope: Scope, request: CreateSessionRequest) -> Request:
    """Build ``POST /v3/organizations/{org_id}/sessions``.

    Raises:
        ConfigurationError: the client has no org_id (there is no enterprise create).
    """
    if scope.org_id is None:
        raise ConfigurationError(
            "create_session needs an org_id (DEVIN_ORG_ID); the API has no enterprise create"
        )
    body = _convert.dumps_create_request(request)
    return Request("POST", scope.sessions_path, body=body, idempotent=False)


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
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        return max(0.0, when.timestamp() - now)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


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


def _parse_error_body(body: bytes) -> object:
    try:
        return _convert.loads(body)
    except Exception:  # not JSON: keep the text
        return body.decode("utf-8", "replace")


def _details(items: object) -> tuple[ValidationDetail, ...]:
    if not isinstance(items, list):
        return ()
    out = []
    for item in items:
        if not isinstance(item, dict):
            continue
        loc = item.get("loc", ())
        loc_t = tuple(p for p in loc if isinstance(p, str | int)) if isinstance(loc, list) else ()
        out.append(
            ValidationDetail(
                loc=loc_t, msg=str(item.get("msg", "")), type=str(item.get("type", ""))
            )
        )
    return tuple(out)


def _summary(body: object) -> tuple[str, tuple[ValidationDetail, ...]]:
    """Return a one-line summary and the field errors of an error body.

    Handles ``{"detail": str}``, FastAPI's ``{"detail": [{loc, msg, type}]}`` and RFC 9457
    problem details (``title``, ``detail``, ``errors``).
    """
    if isinstance(body, str):
        return body.strip().replace("\n", " "), ()
    if not isinstance(body, dict):
        return "", ()
    detail: Any = body.get("detail")
    errors = _details(body.get("errors")) or _details(detail)
    if isinstance(detail, str) and detail:
        text = detail
    elif errors:
        text = "; ".join(
            f"{'.'.join(str(p) for p in e.loc)}: {e.msg}" if e.loc else e.msg for e in errors
        )
    else:
        title = body.get("title")
        text = title if isinstance(title, str) else ""
    return text, errors


def status_error(
    request: Request, response: Response, url: str, now: float | None = None
) -> APIStatusError:
    """Build the exception for a non-2xx response; ``now`` is Unix seconds (default: now)."""
    if now is None:
        now = time.time()
    status = response.status
    body = _parse_error_body(response.body)
    summary, errors = _summary(body)
    message = f"{request.method} {request.path} -> HTTP {status}"
    if summary:
        message += f": {summary[:_MESSAGE_DETAIL]}"
    info: StatusInfo = {
        "status_code": status,
        "body": body,
        "headers": response.headers,
        "request_id": request_id_of(response.headers),
        "method": request.method,
        "url": url,
    }
    if status == 422:
        return UnprocessableEntityError(message, errors=errors, **info)
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("retry-after"), now)
        return RateLimitError(message, retry_after=retry_after, **info)
    cls = _STATUS_ERRORS.get(status)
    if cls is None:
        cls = InternalServerError if status >= 500 else APIStatusError
    return cls(message, **info)


def decode(request: Request, response: Response, url: str) -> Any:
    """Return the decoded JSON of a 2xx response, or raise the matching error."""
    if 200 <= response.status < 300:
        return _convert.loads(response.body)
    raise status_error(request, response, url)
