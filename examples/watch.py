"""Follow one Devin session and react when it needs a human.

`watch_session` yields the session each time its (status, status_detail) changes and
stops once it settles. A bot would post to Slack where this prints.
Runs against the embedded fake server unless DEVIN_API_KEY is set.

    python examples/watch.py
"""

from __future__ import annotations

import asyncio
import contextlib
import os

from devin_async import DevinClient, StatusDetail
from devin_async.testing import FakeDevinServer, Step


async def main() -> None:
    async with contextlib.AsyncExitStack() as stack:
        if os.environ.get("DEVIN_API_KEY"):
            client = await stack.enter_async_context(DevinClient())
        else:
            server = await stack.enter_async_context(FakeDevinServer())
            server.queue_timeline(
                [
                    Step("claimed"),
                    Step("running", "working", reads=3),
                    Step("running", "waiting_for_approval", reads=2),
                    Step("running", "working", reads=2),
                    Step("running", "waiting_for_user", message="Which database should I use?"),
                ]
            )
            client = await stack.enter_async_context(
                DevinClient(
                    server.api_key,
                    org_id=server.org_id,
                    base_url=server.url,
                    poll_interval=0.1,
                    max_poll_interval=0.5,
                )
            )

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
