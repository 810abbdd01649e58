"""Test doubles shared by several test modules."""

from __future__ import annotations

import asyncio
import heapq
import os
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from devin_async import Session

T = TypeVar("T")

KEY = "cog_test_key_0123456789"  # the API key of the shared ``server`` and ``client``


def make_session(status: str = "running", detail: str | None = "working") -> Session:
    """A minimal session in the given state."""
    return Session(
        session_id="devin-1",
        url="https://app.devin.ai/sessions/1",
        status=status,
        org_id="org-1",
        created_at=1,
        updated_at=2,
        acus_consumed=0.0,
        status_detail=detail,
    )


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without its ``DEVIN_*`` variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVIN_")}
    return {**env, **extra}


async def spawn_cli(*argv: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    """Start ``devin-async *argv`` as a child process with exactly ``env``, output piped."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "devin_async.cli",
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )


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


class VirtualClock:
    """Virtual time whose sleepers wake in deadline order, only as the test moves it on.

    Pass it as an engine's ``sleep`` and its ``clock`` as the ``clock``. A sleep parks its
    caller until the clock reaches ``now + delay`` (every delay asked is recorded in
    ``delays``). ``run(awaitable)`` lets the loop settle, then jumps to the nearest
    sleeper, wakes it, and repeats until the awaitable is done; ``until(condition)`` does
    the same until a condition holds; ``advance(seconds)`` moves time on by exactly that
    much, waking the sleepers due on the way. Cancelled sleepers are skipped.
    """

    SETTLE_ROUNDS = 50  # loop iterations that let woken tasks run to their next sleep
    MAX_JUMPS = 100_000

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.delays: list[float] = []
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = 0

    def clock(self) -> float:
        return self.now

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._seq += 1
        heapq.heappush(self._sleepers, (self.now + max(delay, 0.0), self._seq, future))
        await future

    async def sleep(self, delay: float) -> None:
        await self(delay)

    @property
    def sleeping(self) -> int:
        """How many sleepers wait to be woken."""
        return sum(1 for _, _, future in self._sleepers if not future.done())

    async def settle(self) -> None:
        """Let every task that can run, run (without moving time)."""
        for _ in range(self.SETTLE_ROUNDS):
            await asyncio.sleep(0)

    def _wake_next(self, until: float) -> bool:
        """Wake the nearest sleeper due by ``until``; False if there is none."""
        sleepers = self._sleepers
        while sleepers and sleepers[0][2].done():
            heapq.heappop(sleepers)
        if not sleepers or sleepers[0][0] > until:
            return False
        when, _, future = heapq.heappop(sleepers)
        self.now = max(self.now, when)
        future.set_result(None)
        return True

    async def advance(self, seconds: float) -> None:
        """Move time on by ``seconds``, waking the sleepers due meanwhile in order."""
        target = self.now + seconds
        await self.settle()
        while self._wake_next(target):
            await self.settle()
        self.now = max(self.now, target)
        await self.settle()

    async def until(self, condition: Callable[[], bool]) -> None:
        """Jump from sleeper to sleeper until ``condition()`` holds."""
        for _ in range(self.MAX_JUMPS):
            await self.settle()
            if condition():
                return
            if not self._wake_next(float("inf")):
                raise AssertionError("nothing sleeps, and the condition does not hold")
        raise AssertionError(f"the condition did not hold after {self.MAX_JUMPS} wake-ups")

    async def run(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable``, moving time on whenever everything else sleeps."""
        future = asyncio.ensure_future(awaitable)
        await self.until(future.done)
        return future.result()
