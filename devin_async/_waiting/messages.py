"""Reading messages for waits: after a reply (the proof it was acted on) and for bots.

Each reader reads its session's pages after its own cursor, all readers of a tick at
once; a read stops at the reader's deadline when more pages are left (``OutOfTime``),
and every request gets only the time left to the nearest deadline.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import aclosing

from .._errors import DevinError
from .._models import Message, Page
from .._paging import Pager
from .._retry import is_transient
from .waits import OutOfTime, Waiter

__all__ = ["MessageReader", "ReadPage", "retry_messages"]

# Reads one page of a session's messages: (session id, cursor, request timeout).
ReadPage = Callable[[str, str | None, float], Awaitable[Page[Message]]]


def retry_messages(exc: BaseException) -> bool:
    """Whether a failed read is read again next tick (else it ends its wait)."""
    return isinstance(exc, OutOfTime) or (isinstance(exc, DevinError) and is_transient(exc))


class MessageReader:
    """Reads message pages for the waits that ask for them."""

    def __init__(self, read_page: ReadPage, clock: Callable[[], float]) -> None:
        self._read_page = read_page
        self._clock = clock

    async def read(
        self, readers: Sequence[Waiter], time_left: Callable[[], float]
    ) -> tuple[list[Waiter], list[tuple[Waiter, BaseException]]]:
        """Let every reader read; return those that got news, and those that failed."""
        pages = functools.partial(self._pages, time_left=time_left)
        results = await asyncio.gather(
            *(w.read_messages(pages) for w in readers), return_exceptions=True
        )
        informed: list[Waiter] = []
        failed: list[tuple[Waiter, BaseException]] = []
        for waiter, result in zip(readers, results, strict=True):
            if isinstance(result, asyncio.CancelledError):
                raise result
            if isinstance(result, BaseException):
                failed.append((waiter, result))
            elif result:
                informed.append(waiter)
        return informed, failed

    async def _pages(
        self, waiter: Waiter, cursor: str | None, *, time_left: Callable[[], float]
    ) -> AsyncGenerator[Page[Message], None]:
        """Yield the message pages of ``waiter``'s session after ``cursor``, to the last.

        Raises:
            OutOfTime: the wait's deadline came with another page to read.
        """
        session_id, read = waiter.session_id, self._read_page

        async def fetch(after: str | None) -> Page[Message]:
            return await read(session_id, after, time_left())

        async with aclosing(Pager(fetch, after=cursor).pages()) as stream:
            async for page in stream:
                yield page
                if page.has_next_page and page.end_cursor and self._clock() >= waiter.deadline:
                    raise OutOfTime
