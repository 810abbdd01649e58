"""A bot that hands Devin a file with its prompt, then prints the session's insights.

It uploads a file (a small generated text file, or the path you give), starts a
session whose prompt names it and carries its URL in ``attachment_urls``, shows the
session's attachments, waits until the session settles, then generates the session's
insights and prints them: the message counts, the size class and the AI analysis.
Runs against the embedded fake server; ``--real`` uses the real API (one real
session).

    python examples/attachments_bot.py [FILE] [--real]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
from pathlib import Path

from _backend import add_real_option, open_client

from devin_async import DevinClient, SessionInsights
from devin_async.testing import FakeDevinServer, Step

NOTES = """\
Release checklist
- bump the version in pyproject.toml
- run the full test suite
- tag the release and push the tag
"""


def _script(server: FakeDevinServer) -> None:
    server.queue_timeline(
        [
            Step("claimed"),
            Step("running", "working", reads=2, message="Reading the attached checklist."),
            Step("running", "finished", message="The checklist has three steps; all are clear."),
        ]
    )


def render_insights(insights: SessionInsights) -> list[str]:
    """The lines the bot prints: counts, size, then each part of the analysis."""
    lines = [
        f"insights of {insights.session_id}: {insights.num_devin_messages} Devin and "
        f"{insights.num_user_messages} user messages, size {insights.session_size}"
    ]
    for key, value in (insights.analysis or {}).items():
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        lines.append(f"  {key}: {shown}")
    return lines


async def run(client: DevinClient, path: Path) -> None:
    uploaded = await client.upload_attachment(path)
    print(f"uploaded {uploaded.name}: {uploaded.url}")
    session = await client.create_session(
        f"Read the attached file {uploaded.name} and tell me, in a few sentences, "
        "whether anything in it is unclear or missing.",
        title=f"Review {uploaded.name}",
        tags=["attachments-bot"],
        attachment_urls=[uploaded.url],
    )
    print(f"started {session.session_id}")
    attached = await client.list_attachments(session.session_id)
    print(f"attached: {', '.join(a.name for a in attached)}")
    settled = await client.await_session(session.session_id, timeout=3600)
    print(f"settled as {settled.status}/{settled.status_detail}")
    insights = await client.await_insights(session.session_id, timeout=600)
    for line in render_insights(insights):
        print(line)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "file", nargs="?", type=Path, help="the file to upload (default: a generated checklist)"
    )
    add_real_option(parser)
    args = parser.parse_args()
    if args.file is not None and not args.file.is_file():
        parser.error(f"no such file: {args.file}")
    with tempfile.TemporaryDirectory() as scratch:
        path = args.file
        if path is None:
            path = Path(scratch) / "release-checklist.txt"
            path.write_text(NOTES, encoding="utf-8")
        async with contextlib.AsyncExitStack() as stack:
            client = await open_client(
                stack, real=args.real, starts="one session (and an upload)", setup=_script
            )
            await run(client, path)


if __name__ == "__main__":
    asyncio.run(main())
