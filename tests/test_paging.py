"""Cursor pagination: lazy pages, limits, and a server that loops its cursors."""

from __future__ import annotations

import pytest

from devin_async import Page, ResponseValidationError
from devin_async._paging import EMPTY_PAGE_LIMIT, Pager


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


class Endless:
    """A server that answers every page empty, with a fresh cursor and "more to come"."""

    def __init__(self, runaway: int = 1000) -> None:
        self.asked: list[str | None] = []
        self.runaway = runaway

    async def __call__(self, after: str | None) -> Page[int]:
        self.asked.append(after)
        assert len(self.asked) <= self.runaway, "the pager never gave up"
        return Page((), end_cursor=f"c{len(self.asked)}", has_next_page=True)


async def test_endless_empty_pages_are_an_error_not_a_loop() -> None:
    # Regression (issue 9; the test failed before the fix): list_sessions(limit=5) against
    # a server answering empty pages with fresh cursors made 25,000 requests in 10 s.
    fetch = Endless()
    with pytest.raises(ResponseValidationError, match="10 empty pages in a row") as info:
        await Pager(fetch, limit=5).collect()
    assert EMPTY_PAGE_LIMIT == 10
    assert len(fetch.asked) == 10
    assert fetch.asked[:3] == [None, "c1", "c2"]
    assert info.value.body == "c10"


class Scripted:
    """A list served as the given pages (their items), each but the last promising more."""

    def __init__(self, pages: list[list[int]]) -> None:
        self.pages = pages
        self.asked: list[str | None] = []

    async def __call__(self, after: str | None) -> Page[int]:
        self.asked.append(after)
        n = 0 if after is None else int(after)
        more = n + 1 < len(self.pages)
        return Page(tuple(self.pages[n]), end_cursor=str(n + 1), has_next_page=more)


async def test_empty_pages_in_between_are_followed() -> None:
    gap: list[list[int]] = [[]] * (EMPTY_PAGE_LIMIT - 1)
    fetch = Scripted([[], [1, 2], *gap, [3], *gap, [4], []])
    assert await Pager(fetch).collect() == [1, 2, 3, 4]
    assert len(fetch.asked) == len(fetch.pages)


async def test_the_bound_counts_only_empty_pages_in_a_row() -> None:
    gap: list[list[int]] = [[]] * (EMPTY_PAGE_LIMIT - 1)
    fetch = Scripted([[1], *gap, [2], *gap, [], [3]])
    with pytest.raises(ResponseValidationError, match="empty pages"):
        await Pager(fetch).collect()
    assert len(fetch.asked) == 2 * EMPTY_PAGE_LIMIT + 1


async def test_list_sessions_against_endless_empty_pages_gives_up() -> None:
    # Regression (issue 9; the test failed before the fix), end to end over a socket:
    # list_sessions(limit=5) made 25,000 requests in 10 s.
    from aiohttp import web

    from devin_async import DevinClient

    asked: list[str | None] = []

    async def handle(request: web.Request) -> web.Response:
        asked.append(request.query.get("after"))
        assert len(asked) <= 1000, "the pager never gave up"
        page = {"items": [], "end_cursor": f"c{len(asked)}", "has_next_page": True}
        return web.json_response({**page, "total": None})

    app = web.Application()
    app.router.add_get("/v3/organizations/org-test/sessions", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with DevinClient("cog_test_key_0123456789", org_id="org-test", base_url=url) as c:
            with pytest.raises(ResponseValidationError, match="empty pages in a row"):
                await c.list_sessions(limit=5).collect()
    finally:
        await runner.cleanup()
    assert asked == [None, *(f"c{n}" for n in range(1, EMPTY_PAGE_LIMIT))]


async def test_aclose_stops_the_iteration_without_another_fetch() -> None:
    fetch = Pages(list(range(6)), size=2)
    pager = Pager(fetch)
    assert await anext(pager) == 0
    await pager.aclose()
    assert [i async for i in pager] == []
    assert fetch.asked == [None]
    unstarted = Pager(fetch)
    await unstarted.aclose()
    assert await unstarted.collect() == []
    assert fetch.asked == [None]
