"""Start many Devin sessions and handle each one as soon as it settles.

`create_sessions` starts them with bounded concurrency; `as_completed` waits for all
of them through the client's batched poller (one list request per 200 sessions per
tick) and yields each result in settle order. A failure is a result, not a crash.
Runs against the embedded fake server unless DEVIN_API_KEY is set.

    python examples/fan_out.py
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import Counter

from devin_async import DevinClient
from devin_async.testing import FakeDevinServer

PROMPTS = [f"Add docstrings to module {i}" for i in range(200)]


async def main() -> None:
    async with contextlib.AsyncExitStack() as stack:
        if os.environ.get("DEVIN_API_KEY"):
            client = await stack.enter_async_context(DevinClient(requests_per_second=5))
        else:
            server = await stack.enter_async_context(FakeDevinServer())
            client = await stack.enter_async_context(
                DevinClient(
                    server.api_key,
                    org_id=server.org_id,
                    base_url=server.url,
                    poll_interval=0.1,
                    max_poll_interval=0.5,
                )
            )

        created = await client.create_sessions(PROMPTS, concurrency=16)
        started = [r.session_id for r in created if r.session_id is not None]
        for failed in (r for r in created if not r.ok):
            print("could not start:", failed.error)
        print(f"started {len(started)} of {len(PROMPTS)} sessions")

        outcomes: Counter[str] = Counter()
        async with client.as_completed(started, timeout=3600) as results:
            async for result in results:
                if result.session is None:
                    outcomes["failed"] += 1
                    print(f"{result.session_id}: {result.error}")
                    continue
                session = result.session
                outcomes[str(session.status_detail or session.status)] += 1
        print(dict(outcomes))


if __name__ == "__main__":
    asyncio.run(main())
