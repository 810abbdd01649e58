"""Create one Devin session and wait until it settles.

Runs against the embedded fake server; ``--real`` uses the real API (DEVIN_API_KEY,
DEVIN_ORG_ID) and starts one real session.

    python examples/create_and_await.py [--real]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from _backend import add_real_option, open_client

from devin_async import AwaitTimeoutError, DevinError, StatusDetail


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_real_option(parser)
    args = parser.parse_args()
    async with contextlib.AsyncExitStack() as stack:
        client = await open_client(stack, real=args.real, starts="one session")

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
