"""Option types and the option groups that several commands share."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol, TypeVar

from .._models import SessionOrigin

DEFAULT_WAIT_TIMEOUT = 3600.0  # seconds: real sessions often take longer than the client's 600
DEFAULT_LIST_LIMIT = 50

Handler = Callable[..., Awaitable[int]]


# The global options, by their ``args`` name; a command declares those that apply to it.
GLOBAL_OPTIONS = frozenset({"json", "base_url", "org_id", "debug"})


class AddCommand(Protocol):
    """Declare a subcommand: ``handler(client, args)``, or ``handler(args)`` without a client.

    ``options`` are the global options that apply to it (default: all); the others are
    refused. Returns its parser, for the command's own options.
    """

    def __call__(
        self,
        name: str,
        summary: str,
        handler: Handler,
        *,
        needs_client: bool = True,
        options: frozenset[str] = GLOBAL_OPTIONS,
    ) -> argparse.ArgumentParser: ...


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


def positive_float(text: str) -> float:
    """An argparse type: a positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


_N = TypeVar("_N", int, float)


def number(kind: Callable[[str], _N], what: str, ok: Callable[[_N], bool]) -> Callable[[str], _N]:
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


def port(text: str) -> int:
    """An argparse type: a TCP port, 0 for any free one."""
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"expected a TCP port (0-65535), got {text!r}")
    return int(text)


def add_global_options(
    parser: argparse.ArgumentParser,
    *,
    defaults: bool,
    shown: frozenset[str] = GLOBAL_OPTIONS,
) -> None:
    """Add the global options; subcommands must not reset the main defaults.

    Those not ``shown`` are still parsed (to be refused by name) but left out of the help.
    """

    def default(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    def helps(name: str, text: str) -> str:
        return text if name in shown else argparse.SUPPRESS

    group = parser.add_argument_group("global options")
    group.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help=helps(
            "json",
            "machine output: JSON documents, JSON lines for streams, errors as "
            "one JSON object on stderr",
        ),
    )
    group.add_argument(
        "--base-url",
        metavar="URL",
        default=default(None),
        help=helps("base_url", "API base URL (default: $DEVIN_BASE_URL or https://api.devin.ai)"),
    )
    group.add_argument(
        "--org-id",
        metavar="ORG",
        default=default(None),
        help=helps("org_id", "organization id, org-... (default: $DEVIN_ORG_ID)"),
    )
    group.add_argument(
        "--debug",
        action="store_true",
        default=default(False),
        help=helps("debug", "trace the HTTP requests on stderr (also: DEVIN_ASYNC_DEBUG=1)"),
    )


def add_session_id(parser: argparse.ArgumentParser) -> None:
    """Add the ``ID`` argument of a command on one session."""
    parser.add_argument("session_id", metavar="ID", help="session id (devin-... or bare)")


def add_wait_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--timeout`` and ``--poll-interval``, of the commands that wait for a session."""
    parser.add_argument(
        "--timeout",
        type=positive_float,
        default=DEFAULT_WAIT_TIMEOUT,
        metavar="S",
        help=f"give up after S seconds (exit 5; default {DEFAULT_WAIT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--poll-interval",
        type=positive_float,
        metavar="S",
        help="first delay between polls in seconds (default 2; grows while nothing changes)",
    )


def poll_options(args: argparse.Namespace) -> tuple[float | None, float | None]:
    """Return (poll_interval, max_poll_interval) for ``--poll-interval``; None: the client's."""
    interval: float | None = args.poll_interval
    return (None, None) if interval is None else (interval, max(30.0, interval))


def add_list_options(parser: argparse.ArgumentParser) -> None:
    """Add the filters of ``list``; ``list_filters`` reads them."""

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
        type=positive_int,
        default=DEFAULT_LIST_LIMIT,
        metavar="N",
        help=f"at most N sessions, newest first (default {DEFAULT_LIST_LIMIT})",
    )


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
