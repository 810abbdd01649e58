"""The ``devin-async`` command: start, inspect, wait for and steer Devin sessions.

::

    devin-async create "Fix the flaky test in tests/test_checkout.py" --tag ci --wait
    devin-async list --tag ci --limit 10
    devin-async watch devin-0123abcd
    devin-async message devin-0123abcd "Use the main branch"
    devin-async fake-server            # a local fake API on http://127.0.0.1:8765

It reads the environment like ``DevinClient``: ``DEVIN_API_KEY`` (required, and never
accepted as a command-line option, where it would show in ``ps``), ``DEVIN_ORG_ID`` and
``DEVIN_BASE_URL``; ``--org-id`` and ``--base-url`` override the last two. Human output
by default; ``--json`` prints one JSON document per result, or JSON lines for streams
(``list``, ``watch``, ``demo``). Anything that waits shows one status line on stderr,
rewritten in place when stderr is a terminal and printed as plain lines otherwise.
Errors are one line on stderr; under ``--json`` one JSON object on stderr instead
(``error``: its kind, ``message``, ``exit_code``, and ``status`` and ``request_id``
for an HTTP failure). ``--debug`` (or ``DEVIN_ASYNC_DEBUG=1``) traces the HTTP requests
on stderr, never the API key. A global option that does not apply to the command (such
as ``fake-server --base-url``) is refused.

Exit codes:

    0    success (``wait``: the session settled, whatever its outcome)
    1    any other API or HTTP failure (5xx after retries, unreachable API, ...)
    2    usage or configuration error (bad option, DEVIN_API_KEY not set, invalid id)
    3    the API key was rejected (401) or lacks a permission (403)
    4    not found (unknown session id or organization)
    5    timed out waiting for a session to settle
    6    ``wait --exit-status``: the session ended in error or was suspended
    7    ``wait --exit-status``: the session waits for the user
    130  interrupted (Ctrl-C)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Sequence

from ._cli.errors import (
    EXIT_AUTH,
    EXIT_ERROR,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    EXIT_WAITING,
    SCOPE_ERRORS,
    CliError,
    describe_error,
    error_json,
    redact,
    without_org,
)
from ._cli.fake import (
    FAKE_API_KEY,
    FAKE_ORG_ID,
    FAKE_PORT,
    fake_env,
    fake_server_options,
    fake_timeline,
    render_banner,
    serve_fake,
)
from ._cli.options import list_filters as list_filters  # the list options, for tests
from ._cli.options import parse_timestamp
from ._cli.parser import build_parser, parse_args
from ._cli.progress import Progress
from ._cli.render import (
    dumps,
    format_age,
    format_duration,
    format_state,
    format_time,
    is_tty,
    message_json,
    render_message,
    render_progress,
    render_session,
    render_table,
    session_json,
)
from ._cli.trace import debug_from_env, request_trace
from ._client import DevinClient
from ._errors import DevinError

__all__ = [
    "EXIT_AUTH",
    "EXIT_ERROR",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_TIMEOUT",
    "EXIT_USAGE",
    "EXIT_WAITING",
    "FAKE_API_KEY",
    "FAKE_ORG_ID",
    "FAKE_PORT",
    "CliError",
    "Progress",
    "build_parser",
    "describe_error",
    "dumps",
    "error_json",
    "fake_env",
    "fake_server_options",
    "fake_timeline",
    "format_age",
    "format_duration",
    "format_state",
    "format_time",
    "main",
    "message_json",
    "parse_timestamp",
    "render_banner",
    "render_message",
    "render_progress",
    "render_session",
    "render_table",
    "serve_fake",
    "session_json",
]


def _client(args: argparse.Namespace) -> DevinClient:
    if not os.environ.get("DEVIN_API_KEY"):
        raise CliError(
            "DEVIN_API_KEY is not set: export your Devin API key (a cog_ service-user key or "
            "personal access token); it is never taken as a command-line option"
        )
    return DevinClient(org_id=args.org_id, base_url=args.base_url)


async def _run(args: argparse.Namespace) -> int:
    code: int
    if not args.needs_client:
        code = await args.handler(args)
        return code
    async with _client(args) as client:
        try:
            code = await args.handler(client, args)
        except SCOPE_ERRORS as exc:
            if client.org_id is not None:
                raise
            raise without_org(exc) from exc
    return code


def _report(args: argparse.Namespace, exc: BaseException) -> int:
    """Print a failure as one line on stderr (one JSON object under ``--json``)."""
    if args.json:
        document = error_json(exc)
        print(dumps(document), file=sys.stderr)
        code: int = document["exit_code"]
        return code
    code, message = describe_error(exc)
    print(f"devin-async: error: {redact(message)}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``devin-async`` with ``argv`` (default: the process arguments); return the exit code."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        with request_trace(args.debug or debug_from_env(), sys.stderr):
            return asyncio.run(_run(args))
    except KeyboardInterrupt:
        if args.json:
            return _report(args, CliError("interrupted", EXIT_INTERRUPTED, "interrupted"))
        # One line; on a terminal it starts below the status line the ^C landed on.
        print("\ninterrupted" if is_tty(sys.stderr) else "interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `devin-async list | head -1`: the reader left, stay quiet
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
    except (CliError, DevinError, ValueError) as exc:
        return _report(args, exc)


if __name__ == "__main__":
    sys.exit(main())
