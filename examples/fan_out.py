"""Start many Devin sessions and handle each as soon as it settles.

One client is shared by every call, so its connection pool bounds the concurrency.
Runs against the embedded fake server unless DEVIN_API_KEY is set.

    python examples/fan_out.py
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import Counter

from devin_async import DevinClient, DevinError, Session
from devin_async.testing import FakeDevinServer

PROMPTS = [f"Add docstrings to module {i}" for i in range(50)]


async def main() -> None:
    async with contextlib.AsyncExitStack() as stack:
        if os.environ.get("DEVIN_API_KEY"):
            client = await stack.enter_async_context(DevinClient())
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

        created = await asyncio.gather(
            *(client.create_session(p, tags=["fan-out"]) for p in PROMPTS),
            return_exceptions=True,
        )
        started = [s for s in created if isinstance(s, Session)]
        print(f"started {len(started)} of {len(PROMPTS)} sessions")

        outcomes: Counter[str] = Counter()
        waits = [client.await_session(s.session_id, timeout=3600) for s in started]
        for next_done in asyncio.as_completed(waits):
            try:
                session = await next_done
            except DevinError as exc:  # one failure does not lose the others
                outcomes["failed"] += 1
                print("wait failed:", exc)
                continue
            outcomes[str(session.status_detail or session.status)] += 1
            print(f"{session.session_id} -> {session.status}/{session.status_detail}")
        print(dict(outcomes))


if __name__ == "__main__":
    asyncio.run(main())
