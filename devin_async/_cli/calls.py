"""The ``devin-async`` commands over files and a session's other calls.

``upload FILE``, ``download ID NAME``, ``insights ID``, ``messages ID``, ``archive ID`` and
``tags ID``: each is one library call (or two) with the output and exit codes of the
other commands. Human output by default, ``--json`` through the package's converter.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import BinaryIO

from .. import _convert, _protocol
from .._client import CREATE_TAG_PREFIX, DevinClient
from .._errors import DevinError
from .._models import Attachment, SessionInsights
from .commands import show_session
from .errors import EXIT_ERROR, EXIT_NOT_FOUND, EXIT_OK, CliError
from .options import AddCommand, add_session_id, add_wait_options, poll_options
from .render import dumps, message_json, render_message, render_session, say

__all__ = ["register", "render_insights"]


# --------------------------------------------------------------------------- rendering


def render_insights(insights: SessionInsights) -> str:
    """Render a session's insights: its block, the message counts, size and analysis."""
    rows = [
        (
            "messages",
            f"{insights.num_devin_messages} from Devin, {insights.num_user_messages} from users",
        ),
        ("size", insights.session_size),
    ]
    lines = [render_session(insights), *(f"  {k:<8} {v}" for k, v in rows)]
    if insights.analysis is None:
        lines.append("  analysis not ready: generate it with --generate, wait with --wait")
        return "\n".join(lines)
    lines.append("  analysis")
    for key, value in insights.analysis.items():
        lines.append(f"    {key}: {value if isinstance(value, str) else dumps(value)}")
    return "\n".join(lines)


def _is_marker(tag: str) -> bool:
    """Whether ``tag`` is the client's exactly-once create marker, not a person's tag."""
    return tag.startswith(CREATE_TAG_PREFIX)


# --------------------------------------------------------------------------- commands


def _readable(path: str) -> BinaryIO:
    """``path`` opened for reading; a missing or unreadable file is a usage error."""
    try:
        return open(path, "rb")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None


async def _upload(client: DevinClient, args: argparse.Namespace) -> int:
    with _readable(args.file) as file:
        uploaded = await client.upload_attachment(file)
    if args.json:
        say(dumps(_convert.unstructure(uploaded)))
    else:
        print(f"uploaded {uploaded.name} ({uploaded.attachment_id})", file=sys.stderr)
        say(uploaded.url)  # what `create` and `message` take as an attachment URL
    return EXIT_OK


def _output_path(args: argparse.Namespace) -> str:
    """Where ``download`` writes: ``--output`` (a directory gets the name), else ./NAME."""
    name: str = args.name
    if not name or name in (".", "..") or "/" in name or (os.altsep and os.altsep in name):
        raise CliError(f"not a file name: {name!r} (it must not contain a path separator)")
    path: str = args.output or name
    if os.path.isdir(path):
        path = os.path.join(path, name)
    if not args.force and os.path.lexists(path):
        raise CliError(f"{path} exists: pass --force to overwrite it")
    return path


def _find(attachments: tuple[Attachment, ...], session_id: str, name: str) -> Attachment:
    """The session's attachment named ``name``: the last listed, when there are several."""
    named = [a for a in attachments if a.name == name]
    if named:
        return named[-1]
    known = ", ".join(sorted({a.name for a in attachments})) or "none"
    raise CliError(
        f"session {session_id} has no attachment named {name!r} (it has: {known})",
        EXIT_NOT_FOUND,
    )


async def _download(client: DevinClient, args: argparse.Namespace) -> int:
    if client.org_id is None:
        raise CliError("download needs an organization: set DEVIN_ORG_ID or pass --org-id")
    path = _output_path(args)
    attachment = _find(await client.list_attachments(args.session_id), args.session_id, args.name)
    try:
        await client.download_attachment(attachment, path)
    except DevinError:
        raise
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}", EXIT_ERROR) from None
    size = os.path.getsize(path)  # noqa: ASYNC240 (a local stat)
    if args.json:
        say(dumps({"attachment": _convert.unstructure(attachment), "path": path, "bytes": size}))
    else:
        print(f"downloaded {attachment.name} ({size} bytes)", file=sys.stderr)
        say(path)
    return EXIT_OK


async def _insights(client: DevinClient, args: argparse.Namespace) -> int:
    if client.org_id is None and (args.wait or not args.generate):
        raise CliError(
            "reading insights needs an organization (the API has no enterprise read): "
            "set DEVIN_ORG_ID or pass --org-id; --generate alone works without one"
        )
    if args.wait:
        interval, max_interval = poll_options(args)
        print(f"waiting for the insights of {args.session_id}", file=sys.stderr, flush=True)
        insights = await client.await_insights(
            args.session_id,
            timeout=args.timeout,
            poll_interval=interval,
            max_poll_interval=max_interval,
        )
    elif args.generate:
        generation = await client.generate_insights(args.session_id)
        if args.json:
            say(dumps(_convert.unstructure(generation)))
        else:
            say(f"{generation.session_id}  insights {generation.status}")
        return EXIT_OK
    else:
        insights = await client.get_insights(args.session_id)
    say(dumps(_convert.unstructure(insights)) if args.json else render_insights(insights))
    return EXIT_OK


async def _messages(client: DevinClient, args: argparse.Namespace) -> int:
    shown = 0
    async for message in client.list_messages(args.session_id):
        say(dumps(message_json(message)) if args.json else render_message(message))
        shown += 1
    if not shown and not args.json:
        print(f"no messages in {args.session_id}", file=sys.stderr)
    return EXIT_OK


async def _archive(client: DevinClient, args: argparse.Namespace) -> int:
    session = await client.archive_session(args.session_id)
    if not args.json:
        print(f"archived {session.session_id}", file=sys.stderr)
    show_session(args, session)
    return EXIT_OK


async def _tags(client: DevinClient, args: argparse.Namespace) -> int:
    if args.add is not None:
        tags = await client.append_tags(args.session_id, args.add)
    elif args.set is not None:
        # The create marker is the client's, not a person's: keep it, or a later create
        # with the same idempotency_key would start a second session.
        markers = [t for t in await client.get_tags(args.session_id) if _is_marker(t)]
        tags = await client.replace_tags(args.session_id, [*args.set, *markers])
    else:
        tags = await client.get_tags(args.session_id)
    if args.json:
        session_id = _protocol.normalize_session_id(args.session_id)
        say(dumps({"session_id": session_id, "tags": list(tags)}))
        return EXIT_OK
    visible = [t for t in tags if not _is_marker(t)]
    if visible:
        say("\n".join(visible))
    else:
        print(f"no tags on {args.session_id}", file=sys.stderr)
    return EXIT_OK


# --------------------------------------------------------------------------- parser


def register(add: AddCommand) -> None:
    """Declare the commands of this module and their options."""
    upload = add("upload", "upload a file; print the URL to attach it with", _upload)
    upload.add_argument("file", metavar="FILE", help="the file to upload (at most 100 MiB)")

    download = add("download", "download a file attached to a session", _download)
    add_session_id(download)
    download.add_argument(
        "name", metavar="NAME", help="its file name (the last listed, if several have it)"
    )
    download.add_argument(
        "--output",
        "-o",
        metavar="PATH",
        help="write it here (a directory: PATH/NAME; default ./NAME)",
    )
    download.add_argument("--force", action="store_true", help="overwrite an existing file")

    insights = add("insights", "show a session's insights: metrics and AI analysis", _insights)
    add_session_id(insights)
    insights.add_argument(
        "--generate", action="store_true", help="start generating them (also without an org)"
    )
    insights.add_argument(
        "--wait", action="store_true", help="generate them if needed and wait until they are ready"
    )
    add_wait_options(insights)

    add_session_id(add("messages", "list a session's messages, oldest first", _messages))
    add_session_id(add("archive", "archive a session (it stays readable)", _archive))

    tags = add("tags", "show a session's tags; --add or --set changes them", _tags)
    add_session_id(tags)
    change = tags.add_mutually_exclusive_group()
    change.add_argument("--add", nargs="+", action="extend", metavar="T", help="add these tags")
    change.add_argument(
        "--set",
        nargs="*",
        action="extend",
        metavar="T",
        help="replace the tags with these (none: clear them; the create marker is kept)",
    )
