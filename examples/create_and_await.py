"""Create one Devin session and wait until it settles.

Runs against the embedded fake server unless DEVIN_API_KEY is set (then it uses the
real API, with DEVIN_ORG_ID, and starts one real session).

    python examples/create_and_await.py
"""

from __future__ import annotations

import asyncio
import contextlib
import os

from devin_async import AwaitTimeoutError, DevinClient, DevinError, StatusDetail
from devin_async.testing import FakeDevinServer


async def main() -> None:
    async with contextlib.AsyncExitStack() as stack:
        if os.environ.get("DEVIN_API_KEY"):
            client = await stack.enter_async_context(DevinClient())
        else:
            server = await stack.enter_async_context(FakeDevinServer())
            client = await stack.enter_async_context(
                DevinClient(
                    server.api_key, org_id=server.org_id, base_url=server.url, poll_interval=0.2
                )
            )

        session = await client.create_session(
            "Add a --version flag to the CLI and open a PR",
            tags=["example"],
            title="Add --version",
        )
        print(f"started {session.session_id}: {session.url}")
        try:
            settled = await client.await_session(session.session_id, timeout=1800)
        except AwaitTimeoutError as exc:
            print(f"still running after {exc.elapsed:.0f}s ({exc.polls} polls)")
            return
        except DevinError as exc:
            print(f"could not follow the session: {exc}")
            return

        if settled.status_detail == StatusDetail.WAITING_FOR_USER:
            print("Devin is waiting for you:", settled.url)
        else:
            print(f"settled as {settled.status}/{settled.status_detail}")
        for pr in settled.pull_requests:
            print(f"pull request: {pr.pr_url} ({pr.pr_state})")


if __name__ == "__main__":
    asyncio.run(main())
