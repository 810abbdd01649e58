"""Cursor pagination: lazy pages, limits, and a server that loops its cursors."""

from __future__ import annotations

import pytest

from devin_async import Page, ResponseValidationError
from devin_async._paging import Pager


class Pages:
    """A fake list endpoint over ``items``, ``size`` per page, recording the cursors asked."""

    def __init__(self, items: list[int], size: int) -> None:
        self.items = items
        self.size = size
        self.asked: list[str | None] = []

    async def __call__(self, after: str | None) -> Page[int]:
        self.asked.append(after)
        start = 0 if after is None else int(after)
        chunk = self.items[start : start + self.size]
        more = start + self.size < len(self.items)
        return Page(
            tuple(chunk),
            end_cursor=str(start + self.size) if more else None,
            has_next_page=more,
            total=len(self.items),
        )


async def test_iterates_every_item_across_pages() -> None:
    fetch = Pages(list(range(7)), size=3)
    assert [i async for i in Pager(fetch)] == list(range(7))
    assert fetch.asked == [None, "3", "6"]


async def test_pages_are_fetched_lazily() -> None:
    fetch = Pages(list(range(10)), size=2)
    pager = Pager(fetch)
    assert await anext(pager) == 0
    assert await anext(pager) == 1
    assert fetch.asked == [None]
    assert await anext(pager) == 2
    assert fetch.asked == [None, "2"]


@pytest.mark.parametrize(
    ("limit", "expected", "fetches"), [(0, [], 0), (4, [0, 1, 2, 3], 2), (99, list(range(5)), 3)]
)
async def test_limit_stops_early(limit: int, expected: list[int], fetches: int) -> None:
    fetch = Pages(list(range(5)), size=2)
    assert await Pager(fetch, limit=limit).collect() == expected
    assert len(fetch.asked) == fetches


async def test_after_starts_from_a_cursor() -> None:
    fetch = Pages(list(range(6)), size=2)
    assert await Pager(fetch, after="4").collect() == [4, 5]


async def test_an_empty_list() -> None:
    assert await Pager(Pages([], size=3)).collect() == []


async def test_a_negative_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="limit"):
        Pager(Pages([], size=1), limit=-1)


async def test_a_repeated_cursor_is_an_error_not_a_loop() -> None:
    async def loops(after: str | None) -> Page[int]:
        return Page((1,), end_cursor="same", has_next_page=True)

    with pytest.raises(ResponseValidationError, match="cursor"):
        await Pager(loops).collect()


async def test_has_next_page_without_a_cursor_ends() -> None:
    async def odd(after: str | None) -> Page[int]:
        return Page((1, 2), end_cursor=None, has_next_page=True)

    assert await Pager(odd).collect() == [1, 2]
