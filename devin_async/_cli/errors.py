"""The exit codes of ``devin-async`` and the one-line message of each failure."""

from __future__ import annotations

import os
from typing import Any

from .._errors import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    AwaitTimeoutError,
    BadRequestError,
    ConfigurationError,
    DevinError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
)

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_AUTH, EXIT_NOT_FOUND, EXIT_TIMEOUT = 0, 1, 2, 3, 4, 5
EXIT_FAILED, EXIT_WAITING = 6, 7  # wait --exit-status: how the session settled
EXIT_INTERRUPTED = 130
EXIT_CODES = (
    (EXIT_OK, "success (wait: the session settled, whatever its outcome)"),
    (EXIT_ERROR, "any other API or HTTP failure (5xx after retries, unreachable API, ...)"),
    (EXIT_USAGE, "usage or configuration error (bad option, DEVIN_API_KEY not set, invalid id)"),
    (EXIT_AUTH, "the API key was rejected (401) or lacks a permission (403)"),
    (EXIT_NOT_FOUND, "not found (unknown session id or organization)"),
    (EXIT_TIMEOUT, "timed out waiting for a session to settle"),
    (EXIT_FAILED, "wait --exit-status: the session ended in error or was suspended"),
    (EXIT_WAITING, "wait --exit-status: the session waits for the user"),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C)"),
)


class CliError(Exception):
    """A failure the command reports as one line, with its exit code and kind."""

    def __init__(self, message: str, code: int = EXIT_USAGE, kind: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.kind = kind or ("usage" if code == EXIT_USAGE else "error")


def redact(text: str) -> str:
    """Belt and braces: never print the API key, even if some message carried it."""
    key = os.environ.get("DEVIN_API_KEY", "").strip()
    return text.replace(key, "[redacted]") if len(key) >= 4 else text


def describe_error(exc: BaseException) -> tuple[int, str]:
    """Return the exit code and the one-line message for a failure.

    Raises:
        BaseException: ``exc`` itself when it is not a failure the command reports.
    """
    code, _, message = _describe(exc)
    return code, message


def error_json(exc: BaseException) -> dict[str, Any]:
    """Return a failure as the one JSON object ``--json`` prints for it, on stderr.

    ``error`` is its kind (``usage``, ``not_found``, ``timeout``, ...), ``message`` the
    line a person would read, ``exit_code`` the process's; an HTTP failure adds its
    ``status`` and the server's ``request_id``.

    Raises:
        BaseException: ``exc`` itself when it is not a failure the command reports.
    """
    code, kind, message = _describe(exc)
    document: dict[str, Any] = {"error": kind, "message": redact(message), "exit_code": code}
    http = exc.__cause__ if isinstance(exc, CliError) else exc
    if isinstance(http, APIStatusError):
        document.update(status=http.status_code, request_id=http.request_id)
    return document


# What an API without an organization may answer: the enterprise scope was used instead.
SCOPE_ERRORS = (
    ConfigurationError,
    BadRequestError,
    PermissionDeniedError,
    NotFoundError,
    UnprocessableEntityError,
)


def without_org(exc: BaseException) -> CliError:
    """Return ``exc`` as the error of a command run without an organization, naming the fix."""
    code, kind, message = _describe(exc)
    hint = "no organization was given (the enterprise scope)"
    return CliError(f"{message}; {hint}: set DEVIN_ORG_ID or pass --org-id", code, kind)


def _describe(exc: BaseException) -> tuple[int, str, str]:
    if isinstance(exc, CliError):
        return exc.code, exc.kind, str(exc)
    for kind, code, name, template in _ERRORS:
        if isinstance(exc, kind):
            return code, name, template.format(exc)
    raise exc


# (exception, exit code, kind for --json, message template), the first match wins.
_ERRORS: tuple[tuple[type[BaseException], int, str, str], ...] = (
    (ConfigurationError, EXIT_USAGE, "configuration", "{}"),
    (
        AuthenticationError,
        EXIT_AUTH,
        "authentication",
        "the API key in DEVIN_API_KEY was rejected ({})",
    ),
    (
        PermissionDeniedError,
        EXIT_AUTH,
        "permission",
        "the API key in DEVIN_API_KEY lacks a permission ({})",
    ),
    (NotFoundError, EXIT_NOT_FOUND, "not_found", "not found: {}"),
    (AwaitTimeoutError, EXIT_TIMEOUT, "timeout", "timed out: {}"),
    (RateLimitError, EXIT_ERROR, "rate_limited", "rate limited by the API: {}"),
    (APIConnectionError, EXIT_ERROR, "connection", "could not reach the Devin API: {}"),
    (DevinError, EXIT_ERROR, "api", "{}"),
    (ValueError, EXIT_USAGE, "usage", "{}"),  # an invalid session id, refused before any request
)
