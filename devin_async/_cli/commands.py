"""The session commands: ``create``, ``get``, ``wait``, ``watch``, ``list``, ``message``, ..."""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import time
from typing import Any

from .._client import DevinClient
from .._models import DevinMode, Session, SessionStatus, StatusDetail
from .._waiting import SessionUpdate
from .errors import EXIT_FAILED, EXIT_OK, EXIT_WAITING, CliError
from .options import (
    AddCommand,
    add_list_options,
    add_session_id,
    add_wait_options,
    list_filters,
    poll_options,
)
from .progress import Progress
from .render import (
    dumps,
    is_tty,
    message_json,
    render_message,
    render_session,
    render_table,
    say,
    session_json,
)


def register(add: AddCommand) -> None:
    """Declare the session commands and their options."""
    create = add("create", "start a session; --wait waits for it to settle", _create)
    create.add_argument("prompt", metavar="PROMPT", help="the task for Devin")
    create.add_argument("--wait", action="store_true", help="wait until the session settles")
    create.add_argument("--tag", action="append", metavar="T", help="tag it with T (repeatable)")
    create.add_argument("--mode", metavar="MODE", help=f"devin_mode: {', '.join(DevinMode)}")
    create.add_argument("--title", metavar="T", help="session title")
    add_wait_options(create)

    add_session_id(add("get", "show a session", _get))
    wait = add("wait", "wait until a session settles (finished, waits for you, ended)", _wait)
    add_session_id(wait)
    add_wait_options(wait)
    wait.add_argument(
        "--exit-status",
        action="store_true",
        help=f"exit {EXIT_FAILED} if the session ended in error or was suspended, "
        f"{EXIT_WAITING} if it waits for the user (default: 0 once settled)",
    )

    watch = add("watch", "follow a session: a live status line and its new messages", _watch)
    add_session_id(watch)
    watch.add_argument("--no-messages", action="store_true", help="only status changes")
    add_wait_options(watch)

    add_list_options(add("list", "list sessions, newest first", _list))

    message = add("message", "send a message to a session", _message)
    add_session_id(message)
    message.add_argument("text", metavar="TEXT", help="the message; - reads it from stdin")

    terminate = add("terminate", "terminate a session (for good)", _terminate)
    add_session_id(terminate)
    terminate.add_argument("--archive", action="store_true", help="archive it as well")


def show_session(args: argparse.Namespace, session: Session) -> None:
    """Print a session on stdout: as JSON under ``--json``, else as a block."""
    say(dumps(session_json(session)) if args.json else render_session(session))


def _progress(session_id: str) -> Progress:
    return Progress(session_id, sys.stderr)


async def _await(client: DevinClient, session_id: str, args: argparse.Namespace) -> Session:
    progress = _progress(session_id)
    interval, max_interval = poll_options(args)
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
    show_session(args, session)
    return EXIT_OK


async def _get(client: DevinClient, args: argparse.Namespace) -> int:
    show_session(args, await client.get_session(args.session_id))
    return EXIT_OK


async def _wait(client: DevinClient, args: argparse.Namespace) -> int:
    session = await _await(client, args.session_id, args)
    show_session(args, session)
    return settled_code(session) if args.exit_status else EXIT_OK


def settled_code(session: Session) -> int:
    """The exit code of ``wait --exit-status`` for a settled session."""
    if session.status in (SessionStatus.ERROR, SessionStatus.SUSPENDED):
        return EXIT_FAILED
    if session.status_detail == StatusDetail.WAITING_FOR_USER:
        return EXIT_WAITING
    return EXIT_OK


def _update_json(update: SessionUpdate) -> dict[str, Any]:
    if update.message is not None:
        return {"event": "message", "message": message_json(update.message)}
    assert update.session is not None
    return {"event": "status", "session": session_json(update.session)}


async def _watch(client: DevinClient, args: argparse.Namespace) -> int:
    progress = _progress(args.session_id)
    interval, max_interval = poll_options(args)
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
        say(render_session(last))
    return EXIT_OK


async def _list(client: DevinClient, args: argparse.Namespace) -> int:
    sessions = client.list_sessions(**list_filters(args))
    if args.json:
        async for session in sessions:
            say(dumps(session_json(session)))
        return EXIT_OK
    found = [session async for session in sessions]
    if not found:
        print("no sessions match", file=sys.stderr)
        return EXIT_OK
    width = shutil.get_terminal_size().columns if is_tty(sys.stdout) else None
    say(render_table(found, time.time(), width))
    return EXIT_OK


async def _message(client: DevinClient, args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.text == "-" else args.text
    if not text.strip():
        raise CliError("the message is empty")
    session = await client.send_message(args.session_id, text)
    if not args.json:
        print(f"sent to {session.session_id}", file=sys.stderr)
    show_session(args, session)
    return EXIT_OK


async def _terminate(client: DevinClient, args: argparse.Namespace) -> int:
    session = await client.terminate_session(args.session_id, archive=args.archive)
    if not args.json:
        done = "terminated and archived" if args.archive else "terminated"
        print(f"{done} {session.session_id}", file=sys.stderr)
    show_session(args, session)
    return EXIT_OK
