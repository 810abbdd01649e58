"""Start many Devin sessions and handle each one as soon as it settles.

`create_sessions` starts them with bounded concurrency; `as_completed` waits for all
of them through the client's batched poller (one list request per 200 sessions per
tick) and yields each result in settle order. A failure is a result, not a crash.
Runs against the embedded fake server (200 sessions); ``--real`` uses the real API and
starts 3 real sessions unless ``--count`` says otherwise.

    python examples/fan_out.py [--real] [--count N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections import Counter

from _backend import add_real_option, open_client


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_real_option(parser)
    parser.add_argument("--count", type=int, help="sessions to start (200 on the fake, 3 real)")
    args = parser.parse_args()
    count = args.count or (3 if args.real else 200)
    prompts = [f"Add docstrings to module {i}" for i in range(count)]
    async with contextlib.AsyncExitStack() as stack:
        # A gentle rate on the real API; the fake takes the 200 creates at once.
        rate = 5.0 if args.real else None
        client = await open_client(
            stack, real=args.real, starts=f"{count} sessions", requests_per_second=rate
        )
        created = await client.create_sessions(prompts, concurrency=16)
        started = [r.session_id for r in created if r.session_id is not None]
        for failed in (r for r in created if not r.ok):
            print("could not start:", failed.error)
        print(f"started {len(started)} of {len(prompts)} sessions")

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
