"""Cursor pagination as an async iterator: pages are fetched lazily, one at a time.

Every v3 list answers ``{items, end_cursor, has_next_page, total}``; the next page is
asked for with ``after=end_cursor``. Source:
https://docs.devin.ai/api-reference/v3/sessions/get-organizations-session-messages.md
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Generic, Self, TypeVar

from ._errors import ResponseValidationError
from ._models import Page

__all__ = ["EMPTY_PAGE_LIMIT", "Pager"]

T = TypeVar("T")

EMPTY_PAGE_LIMIT = 10
"""How many empty pages in a row that each promise more a pager follows before it gives up.

An empty page that promises more is followed (a page with items starts the count again),
but a server that answers such pages with fresh cursors forever would otherwise be read
forever: at the tenth in a row the pager raises ``ResponseValidationError``.
"""

FetchPage = Callable[[str | None], Awaitable[Page[T]]]


class Pager(Generic[T]):
    """Async iterator over the items of a cursor-paginated list.

    ``async for item in pager`` fetches a page only when the previous one is used up,
    and stops after ``limit`` items when one is set. ``pages()`` yields whole pages.
    Each page is yielded before its cursor is checked, and ``ResponseValidationError``
    ends the iteration instead of reading forever when a page promises more with a cursor
    the pager has already followed (the ``after`` it started from does not count, so a
    server echoing it is asked once more), or at the ``EMPTY_PAGE_LIMIT``-th empty page in
    a row that promises more. The items of the page that carries the repeated cursor have
    been yielded by then, and may repeat earlier ones.

    Args:
        fetch: fetches the page after a cursor (None for the first page).
        after: the cursor to start after.
        limit: stop after this many items; None for all.
    """

    def __init__(self, fetch: FetchPage[T], *, after: str | None = None, limit: int | None = None):
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit!r}")
        self._fetch = fetch
        self._after = after
        self._limit = limit
        self._items: AsyncGenerator[T, None] | None = None

    async def pages(self) -> AsyncGenerator[Page[T], None]:
        """Yield the pages one by one, following ``end_cursor`` to the end.

        Raises:
            ResponseValidationError: after yielding a page that promises more with a cursor
                already followed in this iteration, or the ``EMPTY_PAGE_LIMIT``-th empty page
                in a row that promises more.
        """
        after = self._after
        seen: set[str] = set()
        empty = 0
        while True:
            page = await self._fetch(after)
            yield page
            cursor = page.end_cursor
            if not page.has_next_page or not cursor:
                return
            if cursor in seen:
                raise ResponseValidationError(
                    "the server returned a cursor it had already returned", body=cursor[:200]
                )
            empty = 0 if page.items else empty + 1
            if empty >= EMPTY_PAGE_LIMIT:
                raise ResponseValidationError(
                    f"the server returned {empty} empty pages in a row that each promised more",
                    body=cursor[:200],
                )
            seen.add(cursor)
            after = cursor

    async def _each(self) -> AsyncGenerator[T, None]:
        left = self._limit
        if left == 0:
            return
        async for page in self.pages():
            for item in page.items:
                yield item
                if left is not None:
                    left -= 1
                    if left == 0:
                        return

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        if self._items is None:
            self._items = self._each()
        return await anext(self._items)

    async def aclose(self) -> None:
        """Stop iterating: the page being read is dropped and no further page is fetched."""
        if self._items is None:
            self._items = self._each()
        await self._items.aclose()

    async def collect(self) -> list[T]:
        """Fetch every remaining item (up to ``limit``) into a list."""
        return [item async for item in self]
