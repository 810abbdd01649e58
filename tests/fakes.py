"""Test doubles shared by several test modules."""

from __future__ import annotations

import asyncio


class FakeTime:
    """A sleep that records the delays asked for, advances its own clock, and yields.

    Pass it as a client's ``sleep`` and its ``clock`` as the client's ``clock``: retry
    backoff and rate limiting then take no real time.
    """

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        self.now += delay
        await asyncio.sleep(0)
