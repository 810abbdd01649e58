"""The exit codes of ``devin-async`` and the one-line message of each failure."""

from __future__ import annotations

from .._errors import (
    APIConnectionError,
    AuthenticationError,
    AwaitTimeoutError,
    ConfigurationError,
    DevinError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
)

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_AUTH, EXIT_NOT_FOUND, EXIT_TIMEOUT = 0, 1, 2, 3, 4, 5
EXIT_INTERRUPTED = 130
EXIT_CODES = (
    (EXIT_OK, "success (wait: the session settled, whatever its outcome)"),
    (EXIT_ERROR, "any other API or HTTP failure (5xx after retries, unreachable API, ...)"),
    (EXIT_USAGE, "usage or configuration error (bad option, DEVIN_API_KEY not set, invalid id)"),
    (EXIT_AUTH, "the API key was rejected (401) or lacks a permission (403)"),
    (EXIT_NOT_FOUND, "not found (unknown session id or organization)"),
    (EXIT_TIMEOUT, "timed out waiting for a session to settle"),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C)"),
)


class CliError(Exception):
    """A failure the command reports as one line, with its exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def describe_error(exc: BaseException) -> tuple[int, str]:
    """Return the exit code and the one-line message for a failure.

    Raises:
        BaseException: ``exc`` itself when it is not a failure the command reports.
    """
    if isinstance(exc, CliError):
        return exc.code, str(exc)
    for kind, code, template in _ERRORS:
        if isinstance(exc, kind):
            return code, template.format(exc)
    raise exc


_ERRORS: tuple[tuple[type[BaseException], int, str], ...] = (
    (ConfigurationError, EXIT_USAGE, "{}"),
    (AuthenticationError, EXIT_AUTH, "the API key in DEVIN_API_KEY was rejected ({})"),
    (PermissionDeniedError, EXIT_AUTH, "the API key in DEVIN_API_KEY lacks a permission ({})"),
    (NotFoundError, EXIT_NOT_FOUND, "not found: {}"),
    (AwaitTimeoutError, EXIT_TIMEOUT, "timed out: {}"),
    (RateLimitError, EXIT_ERROR, "rate limited by the API: {}"),
    (APIConnectionError, EXIT_ERROR, "could not reach the Devin API: {}"),
    (DevinError, EXIT_ERROR, "{}"),
    (ValueError, EXIT_USAGE, "{}"),  # an invalid session id, refused before any request
)
