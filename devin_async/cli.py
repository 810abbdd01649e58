"""The ``devin-async`` command: start, inspect, wait for and steer Devin sessions.

::

    devin-async create "Fix the flaky test in tests/test_checkout.py" --tag ci --wait
    devin-async list --tag ci --limit 10
    devin-async watch devin-0123abcd
    devin-async message devin-0123abcd "Use the main branch"
    devin-async fake-server            # a local fake API for development

It reads the environment like ``DevinClient``: ``DEVIN_API_KEY`` (required, and never
accepted as a command-line option, where it would show in ``ps``), ``DEVIN_ORG_ID`` and
``DEVIN_BASE_URL``; ``--org-id`` and ``--base-url`` override the last two. Human output
by default; ``--json`` prints one JSON document per result, or JSON lines for streams
(``list``, ``watch``, ``demo``). Anything that waits shows one status line on stderr,
rewritten in place when stderr is a terminal and printed as plain lines otherwise.
Errors are one line on stderr.

Exit codes:

    0    success (``wait``: the session settled, whatever its outcome)
    1    any other API or HTTP failure (5xx after retries, unreachable API, ...)
    2    usage or configuration error (bad option, DEVIN_API_KEY not set, invalid id)
    3    the API key was rejected (401) or lacks a permission (403)
    4    not found (unknown session id or organization)
    5    timed out waiting for a session to settle
    130  interrupted (Ctrl-C)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from . import _convert
from ._client import CREATE_TAG_PREFIX, DevinClient
from ._errors import (
    APIConnectionError,
    AuthenticationError,
    AwaitTimeoutError,
    ConfigurationError,
    DevinError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
)
from ._filters import LIST_FILTERS
from ._models import DevinMode, Message, Session, SessionOrigin
from ._version import __version__
from ._waiting import SessionUpdate

if TYPE_CHECKING:
    from .testing import Step

__all__ = [
    "EXIT_AUTH",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_TIMEOUT",
    "EXIT_USAGE",
    "FAKE_API_KEY",
    "FAKE_ORG_ID",
    "CliError",
    "Progress",
    "build_parser",
    "describe_error",
    "dumps",
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

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_AUTH, EXIT_NOT_FOUND, EXIT_TIMEOUT = 0, 1, 2, 3, 4, 5
EXIT_INTERRUPTED = 130
_EXIT_CODES = (
    (EXIT_OK, "success (wait: the session settled, whatever its outcome)"),
    (EXIT_ERROR, "any other API or HTTP failure (5xx after retries, unreachable API, ...)"),
    (EXIT_USAGE, "usage or configuration error (bad option, DEVIN_API_KEY not set, invalid id)"),
    (EXIT_AUTH, "the API key was rejected (401) or lacks a permission (403)"),
    (EXIT_NOT_FOUND, "not found (unknown session id or organization)"),
    (EXIT_TIMEOUT, "timed out waiting for a session to settle"),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C)"),
)
EPILOG = (
    "environment: DEVIN_API_KEY (required; never a command-line option), DEVIN_ORG_ID,\n"
    "DEVIN_BASE_URL\n\nexit codes:\n"
    + "\n".join(f"  {code:<4} {meaning}" for code, meaning in _EXIT_CODES)
)

DEFAULT_WAIT_TIMEOUT = 3600.0  # seconds: real sessions often take longer than the client's 600
DEFAULT_LIST_LIMIT = 50
FAKE_API_KEY = "cog_fake_server_key"  # printed on purpose: it only opens the local fake
FAKE_ORG_ID = "org-fake"
_CLEAR_LINE = "\r\x1b[2K"


class CliError(Exception):
    """A failure the command reports as one line, with its exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------- pure rendering


def session_json(session: Session) -> dict[str, Any]:
    """Return a session as a JSON-ready dict under the API's field names."""
    document: dict[str, Any] = _convert.unstructure(session)
    return document


def message_json(message: Message) -> dict[str, Any]:
    """Return a message as a JSON-ready dict under the API's field names."""
    document: dict[str, Any] = _convert.unstructure(message)
    return document


def dumps(document: object) -> str:
    """Encode one JSON document on one line."""
    return json.dumps(document, ensure_ascii=False)


def format_state(session: Session) -> str:
    """Return ``status/status_detail``, or the status alone when there is no detail."""
    detail = session.status_detail
    return f"{session.status}/{detail}" if detail else str(session.status)


def format_time(timestamp: float) -> str:
    """Return Unix seconds as a local date and time with its zone."""
    return datetime.fromtimestamp(timestamp).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def format_duration(seconds: float) -> str:
    """Return a compact duration: ``42s``, ``3m05s``, ``2h07m``."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def format_age(timestamp: float, now: float) -> str:
    """Return how long ago ``timestamp`` was (both Unix seconds): ``5m ago``."""
    age = max(0, int(now - timestamp))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if age >= size:
            return f"{age // size}{unit} ago"
    return f"{age}s ago"


def _visible_tags(session: Session) -> list[str]:
    """Tags a person set: the client's exactly-once create tag is noise on a terminal."""
    return [t for t in session.tags if not t.startswith(CREATE_TAG_PREFIX)]


def render_session(session: Session) -> str:
    """Render a session as a compact block: id, status, title, url, PRs, ACUs, ..."""
    rows = [
        ("status", format_state(session)),
        ("title", session.title or "-"),
        ("url", session.url),
    ]
    rows += [("PR", f"{pr.pr_url} ({pr.pr_state or 'unknown'})") for pr in session.pull_requests]
    rows.append(("ACUs", f"{session.acus_consumed:g}"))
    if tags := _visible_tags(session):
        rows.append(("tags", ", ".join(tags)))
    rows.append(("created", format_time(session.created_at)))
    rows.append(("updated", format_time(session.updated_at)))
    if session.structured_output is not None:
        rows.append(("output", dumps(session.structured_output)))
    return "\n".join([session.session_id, *(f"  {k:<8} {v}" for k, v in rows)])


def render_table(sessions: Sequence[Session], now: float, width: int | None = None) -> str:
    """Render sessions as an aligned table; titles are cut to fit ``width`` columns if given."""
    header = ("SESSION", "STATUS", "UPDATED", "ACUS", "TITLE")
    rows = [
        (
            s.session_id,
            format_state(s),
            format_age(s.updated_at, now),
            f"{s.acus_consumed:g}",
            s.title or "-",
        )
        for s in sessions
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for row in [header, *rows]:
        line = "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False))
        lines.append(_fit(f"{line}  {row[-1]}", width))
    return "\n".join(lines)


def _fit(text: str, width: int | None) -> str:
    """Cut ``text`` to ``width`` characters, marking the cut with an ellipsis."""
    if width is None or len(text) <= width:
        return text
    return text[: max(0, width - 1)] + "…"


def render_message(message: Message) -> str:
    """Render a message as ``[HH:MM:SS] source: text``, continuation lines indented."""
    clock = datetime.fromtimestamp(message.created_at).strftime("%H:%M:%S")
    prefix = f"[{clock}] {message.source}: "
    first, *rest = message.message.splitlines() or [""]
    return "\n".join([prefix + first, *(" " * len(prefix) + line for line in rest)])


def render_progress(session_id: str, session: Session | None, elapsed: float) -> str:
    """Render the status line of a wait."""
    state = format_state(session) if session is not None else "waiting for the first poll"
    return f"{session_id}  {state}  {format_duration(elapsed)}"


def fake_env(url: str, api_key: str, org_id: str) -> dict[str, str]:
    """Return the environment that points the client (and this command) at a fake server."""
    return {"DEVIN_BASE_URL": url, "DEVIN_API_KEY": api_key, "DEVIN_ORG_ID": org_id}


def render_banner(env: Mapping[str, str]) -> list[str]:
    """Return the first stdout lines of ``fake-server``: its URL, then what to export."""
    exports = " ".join(f"{name}={value}" for name, value in env.items())
    return [env["DEVIN_BASE_URL"], f"export {exports}"]


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


def fake_timeline(number: int) -> list[Step]:
    """Return the scripted timeline of the ``fake-server`` 's session ``number``.

    It finishes 5 s after the create on wall time (``reads=0``), polled or not.
    """
    from .testing import Step

    return [
        Step("claimed", reads=0, seconds=1.0),
        Step("running", "working", reads=0, seconds=2.0, message="Looking at the repository."),
        Step("running", "working", reads=0, seconds=2.0, message="Running the tests."),
        Step(
            "running",
            "finished",
            message="Done: I opened a pull request.",
            pull_request=f"https://github.com/example/app/pull/{number}",
            structured_output={"summary": "done"},
        ),
    ]


# --------------------------------------------------------------------------- argument types


def parse_timestamp(text: str) -> int:
    """Parse Unix seconds or an ISO 8601 date/time (naive means local time) to Unix seconds."""
    if text.strip().isdigit():
        return int(text)
    try:
        return int(datetime.fromisoformat(text.strip()).timestamp())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected Unix seconds or an ISO 8601 date/time such as 2025-06-01 or "
            f"2025-06-01T12:00:00Z, got {text!r}"
        ) from None


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


_N = TypeVar("_N", int, float)


def _number(kind: Callable[[str], _N], what: str, ok: Callable[[_N], bool]) -> Callable[[str], _N]:
    """Return an argparse type reading ``kind(text)`` that ``ok`` accepts, e.g. a probability."""

    def parse(text: str) -> _N:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"expected a TCP port (0-65535), got {text!r}")
    return int(text)


# --------------------------------------------------------------------------- terminal output


def _is_tty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _print(text: str = "") -> None:
    print(text, flush=True)


class Progress:
    """The status line of a wait, on ``stream`` (stderr).

    On a terminal the line is rewritten in place and its elapsed time ticks; otherwise
    each change is one plain line.
    """

    def __init__(
        self,
        session_id: str,
        stream: TextIO,
        *,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session_id = session_id
        self.session: Session | None = None
        self.tty = _is_tty(stream) if tty is None else tty
        self._stream = stream
        self._clock = clock
        self._start = clock()
        self._shown = False

    def update(self, session: Session) -> None:
        """Show a new state of the session."""
        self.session = session
        self.draw()

    def draw(self) -> None:
        """Write the current line (in place on a terminal)."""
        text = render_progress(self.session_id, self.session, self._clock() - self._start)
        if self.tty:
            width = shutil.get_terminal_size().columns - 1
            self._stream.write(_CLEAR_LINE + _fit(text, width))
            self._shown = True
        else:
            self._stream.write(text + "\n")
        self._stream.flush()

    def clear(self) -> None:
        """Erase the line on a terminal, so that other output starts on a clean line."""
        if self._shown:
            self._stream.write(_CLEAR_LINE)
            self._stream.flush()
            self._shown = False

    def interject(self, text: str) -> None:
        """Print ``text`` on stdout without mixing it into the status line."""
        self.clear()
        _print(text)
        if self.tty:
            self.draw()

    @contextlib.asynccontextmanager
    async def running(self, interval: float = 1.0) -> AsyncIterator[Progress]:
        """Draw the line, keep its elapsed time ticking on a terminal, and erase it at the end."""
        if self.tty:
            self.draw()
        ticker = asyncio.create_task(self._tick(interval)) if self.tty else None
        try:
            yield self
        finally:
            if ticker is not None:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
            self.clear()

    async def _tick(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.draw()


def _progress(session_id: str) -> Progress:
    return Progress(session_id, sys.stderr)


def _show_session(args: argparse.Namespace, session: Session) -> None:
    _print(dumps(session_json(session)) if args.json else render_session(session))


# --------------------------------------------------------------------------- commands


def _poll_options(args: argparse.Namespace) -> tuple[float | None, float | None]:
    """Return (poll_interval, max_poll_interval) for ``--poll-interval``; None: the client's."""
    interval: float | None = args.poll_interval
    return (None, None) if interval is None else (interval, max(30.0, interval))


async def _await(client: DevinClient, session_id: str, args: argparse.Namespace) -> Session:
    progress = _progress(session_id)
    interval, max_interval = _poll_options(args)
    async with progress.running():
        return await client.await_session(
            session_id,
            timeout=args.timeout,
            on_change=progress.update,
            poll_interval=interval,
            max_poll_interval=max_interval,
        )


async def _create(client: DevinClient, args: argparse.Namespace) -> int:
    if client.org_id is None:
        raise CliError("create needs an organization: set DEVIN_ORG_ID or pass --org-id")
    session = await client.create_session(
        args.prompt, tags=args.tag, devin_mode=args.mode, title=args.title
    )
    if args.wait:
        print(f"created {session.session_id}  {session.url}", file=sys.stderr, flush=True)
        session = await _await(client, session.session_id, args)
    _show_session(args, session)
    return EXIT_OK


async def _get(client: DevinClient, args: argparse.Namespace) -> int:
    _show_session(args, await client.get_session(args.session_id))
    return EXIT_OK


async def _wait(client: DevinClient, args: argparse.Namespace) -> int:
    _show_session(args, await _await(client, args.session_id, args))
    return EXIT_OK


def _update_json(update: SessionUpdate) -> dict[str, Any]:
    if update.message is not None:
        return {"event": "message", "message": message_json(update.message)}
    assert update.session is not None
    return {"event": "status", "session": session_json(update.session)}


async def _watch(client: DevinClient, args: argparse.Namespace) -> int:
    progress = _progress(args.session_id)
    interval, max_interval = _poll_options(args)
    updates = client.follow_session(
        args.session_id,
        messages=not args.no_messages,
        timeout=args.timeout,
        poll_interval=interval,
        max_poll_interval=max_interval,
    )
    last: Session | None = None
    async with progress.running(), contextlib.aclosing(updates):
        async for update in updates:
            if args.json:
                progress.interject(dumps(_update_json(update)))
            if update.session is not None:
                last = update.session
                progress.update(update.session)
            elif update.message is not None and not args.json:
                progress.interject(render_message(update.message))
    if last is not None and not args.json:
        _print(render_session(last))
    return EXIT_OK


def list_filters(args: argparse.Namespace) -> dict[str, Any]:
    """Return the ``list_sessions`` keywords chosen by the ``list`` options."""
    return {
        "limit": args.limit,
        "first": min(args.limit, 100),
        "tags": args.tag,
        "session_ids": args.session_id,
        "origins": args.origin,
        "user_ids": args.user_id,
        "playbook_id": args.playbook_id,
        "is_archived": args.archived,
        "created_after": args.created_after,
        "created_before": args.created_before,
        "updated_after": args.updated_after,
        "updated_before": args.updated_before,
    }


async def _list(client: DevinClient, args: argparse.Namespace) -> int:
    sessions = client.list_sessions(**list_filters(args))
    if args.json:
        async for session in sessions:
            _print(dumps(session_json(session)))
        return EXIT_OK
    found = [session async for session in sessions]
    if not found:
        print("no sessions match", file=sys.stderr)
        return EXIT_OK
    width = shutil.get_terminal_size().columns if _is_tty(sys.stdout) else None
    _print(render_table(found, time.time(), width))
    return EXIT_OK


async def _message(client: DevinClient, args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.text == "-" else args.text
    if not text.strip():
        raise CliError("the message is empty")
    session = await client.send_message(args.session_id, text)
    if not args.json:
        print(f"sent to {session.session_id}", file=sys.stderr)
    _show_session(args, session)
    return EXIT_OK


async def _terminate(client: DevinClient, args: argparse.Namespace) -> int:
    session = await client.terminate_session(args.session_id, archive=args.archive)
    if not args.json:
        done = "terminated and archived" if args.archive else "terminated"
        print(f"{done} {session.session_id}", file=sys.stderr)
    _show_session(args, session)
    return EXIT_OK


def fake_server_options(args: argparse.Namespace) -> dict[str, Any]:
    """Return the ``FakeDevinServer`` keywords of the ``fake-server`` flags that were given."""
    given = {
        "rate_limit": args.rate_limit,
        "random_429": args.random_429,
        "allowed_tags": args.allowed_tag,
        "ignored_filters": args.ignore_filter,
        "array_encoding": args.array_encoding,
        "list_lag_reads": args.list_lag_reads,
        "list_lag_seconds": args.list_lag_seconds,
        "message_lag_reads": args.message_lag_reads,
        "handler_cancellation": args.cancel_handlers or None,
    }
    return {name: value for name, value in given.items() if value is not None}


async def serve_fake(
    *,
    port: int = 0,
    org_id: str = FAKE_ORG_ID,
    as_json: bool = False,
    stop: asyncio.Event,
    options: Mapping[str, Any] | None = None,
) -> int:
    """Run ``FakeDevinServer`` on 127.0.0.1 until ``stop`` is set; print how to use it first.

    ``options`` are more ``FakeDevinServer`` keywords, e.g. ``{"random_429": 0.1}``.
    """
    from .testing import FakeDevinServer

    counter = iter(range(1, sys.maxsize))
    options = dict(options or {})
    server = FakeDevinServer(api_key=FAKE_API_KEY, org_id=org_id, port=port, **options)
    server.timeline_factory = lambda body: fake_timeline(next(counter))
    try:
        await server.start()
    except OSError as exc:
        raise CliError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}", EXIT_ERROR) from None
    try:
        env = fake_env(server.url, server.api_key, server.org_id)
        _print(dumps({"url": server.url, "env": env}) if as_json else "\n".join(render_banner(env)))
        print(
            "fake Devin API: sessions finish in about 5 s; stop with Ctrl-C",
            file=sys.stderr,
            flush=True,
        )
        if options:
            shown = ", ".join(f"{name}={value!r}" for name, value in options.items())
            print(f"real-server behaviours: {shown}", file=sys.stderr, flush=True)
        await stop.wait()
    finally:
        served = (
            f"served {len(server.requests)} requests; sessions created: {server.sessions_created}"
        )
        await server.close()
        print(served, file=sys.stderr, flush=True)
    return EXIT_OK


async def _fake_server(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C is its documented stop: exit 0
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows loops
            loop.add_signal_handler(signum, stop.set)
    return await serve_fake(
        port=args.port,
        org_id=args.org_id or FAKE_ORG_ID,
        as_json=args.json,
        stop=stop,
        options=fake_server_options(args),
    )


async def _demo(args: argparse.Namespace) -> int:
    from . import _demo

    return await _demo.run(
        args.count if args.count is not None else (1 if args.real else 20),
        real=args.real,
        seed=args.seed,
        json_lines=args.json,
        org_id=args.org_id,
        base_url=args.base_url,
    )


# --------------------------------------------------------------------------- parser


def _add_global_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """Add the options every command takes; subcommands must not reset the main defaults."""

    def default(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    group = parser.add_argument_group("global options")
    group.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="machine output: one JSON document per result, JSON lines for streams",
    )
    group.add_argument(
        "--base-url",
        metavar="URL",
        default=default(None),
        help="API base URL (default: $DEVIN_BASE_URL or https://api.devin.ai)",
    )
    group.add_argument(
        "--org-id",
        metavar="ORG",
        default=default(None),
        help="organization id, org-... (default: $DEVIN_ORG_ID)",
    )


def _add_wait_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        type=_positive_float,
        default=DEFAULT_WAIT_TIMEOUT,
        metavar="S",
        help=f"give up after S seconds (exit 5; default {DEFAULT_WAIT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--poll-interval",
        type=_positive_float,
        metavar="S",
        help="first delay between polls in seconds (default 2; grows while nothing changes)",
    )


def _add_list_options(parser: argparse.ArgumentParser) -> None:
    def many(flag: str, metavar: str, what: str) -> None:
        parser.add_argument(flag, action="append", metavar=metavar, help=f"{what} (repeatable)")

    many("--tag", "T", "sessions having this tag")
    many("--session-id", "ID", "only this session")
    many("--origin", "O", f"started from O: {', '.join(SessionOrigin)}")
    many("--user-id", "U", "started by this user")
    archived = parser.add_mutually_exclusive_group()
    archived.add_argument(
        "--archived", dest="archived", action="store_const", const=True, help="only archived"
    )
    archived.add_argument(
        "--not-archived",
        dest="archived",
        action="store_const",
        const=False,
        help="only not archived",
    )
    for bound in ("created-after", "created-before", "updated-after", "updated-before"):
        parser.add_argument(
            f"--{bound}",
            type=parse_timestamp,
            metavar="TS",
            help="Unix seconds or ISO 8601 (naive = local time)",
        )
    parser.add_argument("--playbook-id", metavar="P", help="started from this playbook")
    parser.add_argument(
        "--limit",
        type=_positive_int,
        default=DEFAULT_LIST_LIMIT,
        metavar="N",
        help=f"at most N sessions, newest first (default {DEFAULT_LIST_LIMIT})",
    )


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``devin-async``."""
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="devin-async",
        description="Start, inspect, wait for and steer Devin sessions (REST API v3).",
        epilog=EPILOG,
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_global_options(parser, defaults=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, summary: str, handler: Callable[..., Any]) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name, help=summary, description=summary, epilog=EPILOG, formatter_class=formatter
        )
        _add_global_options(sub, defaults=False)
        sub.set_defaults(handler=handler, needs_client=name not in ("fake-server", "demo"))
        return sub

    def session_id(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("session_id", metavar="ID", help="session id (devin-... or bare)")

    create = command("create", "start a session; --wait waits for it to settle", _create)
    create.add_argument("prompt", metavar="PROMPT", help="the task for Devin")
    create.add_argument("--wait", action="store_true", help="wait until the session settles")
    create.add_argument("--tag", action="append", metavar="T", help="tag it with T (repeatable)")
    create.add_argument("--mode", metavar="MODE", help=f"devin_mode: {', '.join(DevinMode)}")
    create.add_argument("--title", metavar="T", help="session title")
    _add_wait_options(create)

    session_id(command("get", "show a session", _get))
    wait = command("wait", "wait until a session settles (finished, waits for you, ended)", _wait)
    session_id(wait)
    _add_wait_options(wait)

    watch = command("watch", "follow a session: a live status line and its new messages", _watch)
    session_id(watch)
    watch.add_argument("--no-messages", action="store_true", help="only status changes")
    _add_wait_options(watch)

    _add_list_options(command("list", "list sessions, newest first", _list))

    message = command("message", "send a message to a session", _message)
    session_id(message)
    message.add_argument("text", metavar="TEXT", help="the message; - reads it from stdin")

    terminate = command("terminate", "terminate a session (for good)", _terminate)
    session_id(terminate)
    terminate.add_argument("--archive", action="store_true", help="archive it as well")

    fake = command("fake-server", "run a local fake Devin API for development", _fake_server)
    fake.add_argument("--port", type=_port, default=0, help="TCP port (default: a free one)")
    fake.add_argument(
        "--host", choices=["127.0.0.1"], default="127.0.0.1", help="only 127.0.0.1 is served"
    )
    behave = fake.add_argument_group("real-server behaviours (default: none)")
    behave.add_argument(
        "--rate-limit",
        type=_number(float, "a positive number of requests per second", lambda v: 0 < v < math.inf),
        metavar="N",
        help="answer 429 beyond N requests per second (a token bucket)",
    )
    behave.add_argument(
        "--random-429",
        type=_number(float, "a probability between 0 and 1", lambda v: 0 <= v <= 1),
        metavar="P",
        help="answer any request 429 with probability P",
    )
    behave.add_argument(
        "--allowed-tag",
        action="append",
        metavar="T",
        help="allow only tag T (repeatable); other tags are refused with 422",
    )
    behave.add_argument(
        "--ignore-filter",
        action="append",
        choices=sorted(LIST_FILTERS),
        metavar="NAME",
        help="ignore the list filter NAME, e.g. tags (repeatable)",
    )
    behave.add_argument(
        "--array-encoding",
        choices=["repeat", "comma"],
        help="read array filters as repeated keys (tags=a&tags=b) or comma-joined (tags=a,b)",
    )
    behave.add_argument(
        "--list-lag-reads",
        type=_number(int, "a non-negative integer", lambda v: v >= 0),
        metavar="N",
        help="leave a new session out of the first N lists it matches",
    )
    behave.add_argument(
        "--list-lag-seconds",
        type=_number(float, "a non-negative number of seconds", lambda v: 0 <= v < math.inf),
        metavar="S",
        help="leave a new session out of lists for S seconds",
    )
    behave.add_argument(
        "--message-lag-reads",
        type=_number(int, "a non-negative integer", lambda v: v >= 0),
        metavar="N",
        help="show a session's state from before a message for N reads after it",
    )
    behave.add_argument(
        "--cancel-handlers",
        action="store_true",
        help="cancel a request's handling when its client hangs up (default: finish it)",
    )

    demo_parser = command("demo", "fan out sessions against a fake API, with live progress", _demo)
    demo_parser.add_argument("--count", type=_positive_int, help="sessions (default 20; 1 real)")
    demo_parser.add_argument("--seed", type=int, default=7, help="seed of the fake timelines")
    demo_parser.add_argument("--real", action="store_true", help="use the real API (costs ACUs)")
    return parser


# --------------------------------------------------------------------------- entry point


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
        code = await args.handler(client, args)
    return code


def _redact(text: str) -> str:
    """Belt and braces: never print the API key, even if some message carried it."""
    key = os.environ.get("DEVIN_API_KEY", "").strip()
    return text.replace(key, "[redacted]") if len(key) >= 4 else text


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``devin-async`` with ``argv`` (default: the process arguments); return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        # One line; on a terminal it starts below the status line the ^C landed on.
        print("\ninterrupted" if _is_tty(sys.stderr) else "interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `devin-async list | head -1`: the reader left, stay quiet
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
    except (CliError, DevinError, ValueError) as exc:
        code, message = describe_error(exc)
        print(f"{parser.prog}: error: {_redact(message)}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
