"""The exception tree of devin_async.

::

    DevinError
    ├── ConfigurationError          bad client settings (also a ValueError)
    ├── ClientClosedError           used after aclose(), or from another event loop (a RuntimeError)
    ├── APIConnectionError          no usable response (DNS, refused, reset)
    │   └── APITimeoutError         per-request timeout
    ├── APIStatusError              .status_code .body .headers .retry_after .should_retry
    │                               .request_id .method .url
    │   ├── BadRequestError                 400
    │   ├── AuthenticationError             401
    │   ├── PermissionDeniedError           403
    │   ├── NotFoundError                   404
    │   ├── ConflictError                   409
    │   ├── UnprocessableEntityError        422  .errors: parsed `detail` items
    │   ├── RateLimitError                  429  .retry_after: seconds or None
    │   └── InternalServerError             5xx
    ├── ResponseValidationError     2xx body that is not JSON or not the documented shape
    ├── AwaitTimeoutError           the wait's overall deadline passed (also a TimeoutError)
    └── CreateOutcomeUnknownError   a create went unanswered and its session never appeared

This module is a leaf: it imports nothing from the package, so every other module can
raise these without an import cycle. No message built here contains the API key: the
key only ever travels in a request header, and headers of *requests* are never stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, TypedDict, Unpack

import attrs

if TYPE_CHECKING:
    from ._models import Session

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "AwaitTimeoutError",
    "BadRequestError",
    "ClientClosedError",
    "ConfigurationError",
    "ConflictError",
    "CreateOutcomeUnknownError",
    "DevinError",
    "InternalServerError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ResponseValidationError",
    "StatusInfo",
    "UnprocessableEntityError",
    "ValidationDetail",
]


def _rebuild(
    cls: type[DevinError], args: tuple[object, ...], state: dict[str, object]
) -> DevinError:
    """Unpickle a DevinError: without calling ``__init__``, whose arguments are keywords."""
    err = cls.__new__(cls, *args)
    err.args = args
    err.__dict__.update(state)
    return err


def _picklable(value: object) -> object:
    # A read-only mapping view (the CIMultiDictProxy of response headers, a
    # MappingProxyType) does not pickle; its copy (a CIMultiDict, a dict) does.
    if isinstance(value, Mapping) and not isinstance(value, dict):
        copier = getattr(value, "copy", None)
        if callable(copier):
            return copier()
    return value


class DevinError(Exception):
    """Base class of every error raised by devin_async.

    Every error pickles and copies with all its attributes (so it can cross a process
    pool or a task queue); read-only header views travel as copies.
    """

    def __reduce__(self) -> tuple[object, ...]:
        state = {name: _picklable(value) for name, value in self.__dict__.items()}
        return (_rebuild, (type(self), self.args, state))


class ConfigurationError(DevinError, ValueError):
    """The client was configured with a missing or unsafe setting."""


class ClientClosedError(DevinError, RuntimeError):
    """The client cannot send any more.

    It was closed with ``aclose()``, its borrowed ``aiohttp.ClientSession`` was closed by
    its owner, or it was used from an event loop other than the one it first ran in (a
    client reused from a second ``asyncio.run``: create one per ``asyncio.run``).
    """


class APIConnectionError(DevinError):
    """No usable HTTP response arrived (DNS failure, refused or reset connection).

    Attributes:
        method: HTTP method of the request.
        url: URL of the request (never contains credentials).
        request_sent: False only when the connection failed before any byte of the
            request was written, so the server cannot have acted on it.
    """

    def __init__(self, message: str, *, method: str, url: str, request_sent: bool) -> None:
        super().__init__(message)
        self.method = method
        self.url = url
        self.request_sent = request_sent


class APITimeoutError(APIConnectionError):
    """The per-request timeout passed before the response was read."""


@attrs.frozen
class ValidationDetail:
    """One field error of a 422 response (FastAPI ``detail`` item or RFC 9457 ``errors``)."""

    loc: tuple[str | int, ...]
    msg: str
    type: str


class StatusInfo(TypedDict):
    """What every APIStatusError carries besides its message."""

    status_code: int
    body: object
    headers: Mapping[str, str]
    request_id: str | None
    method: str
    url: str


class APIStatusError(DevinError):
    """The API answered with a non-2xx status.

    Attributes:
        status_code: HTTP status.
        body: the decoded JSON body, or the raw text when it is not JSON.
        headers: response headers.
        request_id: the server's request id header, when it sent one.
        method: HTTP method of the request.
        url: URL of the request.
        retry_after: the wait the server asked for (``retry-after-ms`` or
            ``Retry-After``), seconds, or None when it asked for none.
        should_retry: the server's ``x-should-retry`` header: True or False when it said
            whether to retry, None when it did not (the status then decides).
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        should_retry: bool | None = None,
        **info: Unpack[StatusInfo],
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.should_retry = should_retry
        self.status_code = info["status_code"]
        self.body = info["body"]
        self.headers = info["headers"]
        self.request_id = info["request_id"]
        self.method = info["method"]
        self.url = info["url"]


class BadRequestError(APIStatusError):
    """400: the request was refused as malformed (e.g. an unknown ``platform``)."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing, invalid or expired."""


class PermissionDeniedError(APIStatusError):
    """403: the key's principal lacks the permission this call needs."""


class NotFoundError(APIStatusError):
    """404: no such session (or organization) for this key."""


class ConflictError(APIStatusError):
    """409: the request conflicts with the resource's current state."""


class UnprocessableEntityError(APIStatusError):
    """422: the request failed validation; ``errors`` holds the parsed field errors."""

    def __init__(
        self,
        message: str,
        *,
        errors: tuple[ValidationDetail, ...] = (),
        retry_after: float | None = None,
        should_retry: bool | None = None,
        **info: Unpack[StatusInfo],
    ) -> None:
        super().__init__(message, retry_after=retry_after, should_retry=should_retry, **info)
        self.errors = errors


class RateLimitError(APIStatusError):
    """429: too many requests; ``retry_after`` is the server's wait in seconds, if given."""


class InternalServerError(APIStatusError):
    """5xx: the server failed."""


class ResponseValidationError(DevinError):
    """A 2xx body was not JSON, or not the documented shape.

    Attributes:
        body: the first bytes of the body, decoded leniently, for diagnosis.
    """

    def __init__(self, message: str, *, body: str) -> None:
        super().__init__(message)
        self.body = body


class AwaitTimeoutError(DevinError, TimeoutError):
    """The overall deadline of a wait passed before the session settled.

    Attributes:
        session: the last session state seen, or None if no poll succeeded.
        elapsed: seconds spent waiting.
        polls: number of poll requests made.
        last_error: the last poll failure of the wait, or None if no poll failed.
    """

    def __init__(
        self,
        message: str,
        *,
        session: Session | None,
        elapsed: float,
        polls: int,
        last_error: BaseException | None = None,
    ) -> None:
        super().__init__(message)
        self.session = session
        self.elapsed = elapsed
        self.polls = polls
        self.last_error = last_error


class CreateOutcomeUnknownError(DevinError):
    """A create was sent and never answered, and its session did not appear within the grace window.

    Attributes:
        marker: the tag the create carried, or None when creates are untagged.
        idempotency_key: the caller's key, or None.
        elapsed: seconds spent looking.
        lookups: number of lookups made.
    """

    def __init__(
        self,
        message: str,
        *,
        marker: str | None,
        idempotency_key: str | None,
        elapsed: float,
        lookups: int,
    ) -> None:
        super().__init__(message)
        self.marker = marker
        self.idempotency_key = idempotency_key
        self.elapsed = elapsed
        self.lookups = lookups


# Tracebacks and reprs name the public module (devin_async.NotFoundError), not this private
# one; pickle finds the classes there too.
for _name in __all__:
    _public = globals()[_name]
    if isinstance(_public, type) and issubclass(_public, DevinError):
        _public.__module__ = "devin_async"
del _name, _public
