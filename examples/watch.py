"""Follow one Devin session and react when it needs a human.

`watch_session` yields the session each time its (status, status_detail) changes and
stops once it settles. A bot would post to Slack where this prints.
Runs against the embedded fake server; ``--real`` uses the real API and starts one
real session.

    python examples/watch.py [--real]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from _backend import add_real_option, open_client

from devin_async import StatusDetail
from devin_async.testing import FakeDevinServer, Step


def _script(server: FakeDevinServer) -> None:
    server.queue_timeline(
        [
            Step("claimed"),
            Step("running", "working", reads=3),
            Step("running", "waiting_for_approval", reads=2),
            Step("running", "working", reads=2),
            Step("running", "waiting_for_user", message="Which database should I use?"),
        ]
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_real_option(parser)
    args = parser.parse_args()
    async with contextlib.AsyncExitStack() as stack:
        client = await open_client(stack, real=args.real, starts="one session", setup=_script)

        session = await client.create_session("Migrate the cron jobs to the scheduler")
        print(f"watching {session.session_id}")
        async with client.watch_session(session.session_id, timeout=3600) as states:
            async for state in states:
                print(f"  now {state.status}/{state.status_detail}")
                if state.status_detail == StatusDetail.WAITING_FOR_APPROVAL:
                    print("  -> Devin asks for an approval:", state.url)
        if state.status_detail == StatusDetail.WAITING_FOR_USER:
            print("Devin needs an answer:", state.url)


if __name__ == "__main__":
    asyncio.run(main())
