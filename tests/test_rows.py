"""What a tick reads: row keys decoded fast, whole rows only for the sessions that changed.

``decode_page`` must accept and refuse exactly what the whole decode does (the fast path
is an optimisation, never a second set of rules); ``IdsSource`` must decode a page whole
only when one of its rows changed; the waits of one call share one deadline entry.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import pytest
from fakes import VirtualClock

from devin_async import _convert
from devin_async._errors import ResponseValidationError
from devin_async._waiting.rows import Listed, RowKey, decode_page, row_key, shared
from devin_async._waiting.settle import Wait, is_settled
from devin_async._waiting.sources import IdsSource
from devin_async._waiting.waits import Deadlines, Entry, Waiter


def row(session_id: str, status: str = "running", updated_at: int = 5, **extra: Any) -> Any:
    return {
        "session_id": session_id,
        "url": f"https://app.devin.ai/sessions/{session_id}",
        "status": status,
        "status_detail": "working",
        "org_id": "org-1",
        "created_at": 1,
        "updated_at": updated_at,
        "acus_consumed": 0.5,
        "tags": ["a"],
        **extra,
    }


def body(*rows: Any, **page: Any) -> bytes:
    return json.dumps({"items": list(rows), "end_cursor": None, **page}).encode()


@pytest.fixture
def whole_decodes(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The bodies decoded whole (``_convert.loads``) from now on."""
    seen: list[bytes] = []
    loads = _convert.loads

    def counting(data: bytes) -> Any:
        seen.append(data)
        return loads(data)

    monkeypatch.setattr(_convert, "loads", counting)
    return seen


def test_keys_are_decoded_without_the_rest_of_the_row(whole_decodes: list[bytes]) -> None:
    page = decode_page(body(row("devin-a"), row("devin-b", "exit", 9), has_next_page=True))
    assert page.keys == [
        RowKey("devin-a", "running", "working", 5),
        RowKey("devin-b", "exit", "working", 9),
    ]
    assert (page.end_cursor, page.has_next_page) == (None, True)
    assert whole_decodes == []
    assert page.row("devin-b") == row("devin-b", "exit", 9)
    assert page.row("devin-a") == row("devin-a")
    assert len(whole_decodes) == 1  # once for the page, however many rows are asked


def test_a_missing_field_is_none_in_the_key() -> None:
    page = decode_page(b'{"items": [{"session_id": "devin-a"}]}')
    assert page.keys == [RowKey("devin-a")]
    assert page.has_next_page is False


@pytest.mark.parametrize(
    "data",
    [
        # What msgspec refuses but the whole decode takes: decoded whole at once.
        b'{"items": [{"session_id": "devin-a", "status": "exit", "acus_consumed": NaN}]}',
        json.dumps({"items": [row("devin-a")]}).encode("utf-16"),
        b'\xef\xbb\xbf{"items": [{"session_id": "devin-a", "status": "exit"}]}',
    ],
    ids=["NaN", "utf-16", "bom"],
)
def test_a_body_the_fast_path_refuses_is_decoded_whole(data: bytes) -> None:
    page = decode_page(data)
    assert [k.session_id for k in page.keys] == ["devin-a"]
    assert page.row("devin-a")["session_id"] == "devin-a"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"<html>busy</html>", "not valid JSON"),
        (b'{"items": [{"status": "exit"}]}', "not a valid page of sessions"),
        (b'{"items": [{"session_id": 7}]}', "not a valid page of sessions"),
        (b'{"items": {}}', "not a valid page of sessions"),
        (b'{"items": [], "has_next_page": 1}', "not a valid page of sessions"),
        (b'{"items": [], "end_cursor": 3}', "not a valid page of sessions"),
        (b"[]", "not a valid page of sessions"),
    ],
)
def test_a_bad_page_fails_as_the_whole_decode_does(data: bytes, reason: str) -> None:
    with pytest.raises(ResponseValidationError, match=reason) as fast:
        decode_page(data)
    with pytest.raises(ResponseValidationError) as whole:
        _convert.session_rows(_convert.loads(data))
    assert str(fast.value) == str(whole.value)


def test_listed_of_whole_rows_needs_no_decode(whole_decodes: list[bytes]) -> None:
    page = Listed.of([row("devin-a")], "c1", True)
    assert page.keys == [row_key(row("devin-a"))]
    assert page.row("devin-a") == row("devin-a")
    assert (page.end_cursor, page.has_next_page, whole_decodes) == ("c1", True, [])


def test_recurring_strings_are_shared_between_rows() -> None:
    one, two = (
        json.loads(json.dumps(row(i, subcategory="Other", service_user_id="svc-1")))
        for i in ("devin-a", "devin-b")
    )
    assert one["org_id"] is not two["org_id"]
    own_id = "".join(["devin-", "a"])  # equal to the row's id, not the same object
    assert own_id is not one["session_id"]
    shared(one, own_id), shared(two, "devin-other")
    for name in ("org_id", "subcategory", "service_user_id"):
        assert one[name] is two[name]
    assert one["session_id"] is own_id
    assert two["session_id"] == "devin-b"  # another id than the wait's is kept as it is
    assert one["url"] is not two["url"]  # unique values are left alone


class Pages:
    """A list endpoint that answers the encoded page of whatever ids it is asked for."""

    def __init__(self, rows: dict[str, Any]) -> None:
        self.rows = rows
        self.calls = 0

    async def list_page(
        self, session_ids: Sequence[str] | None, after: int | None, cursor: str | None, t: float
    ) -> Listed:
        assert session_ids is not None
        self.calls += 1
        await asyncio.sleep(0)
        return decode_page(body(*(self.rows[i] for i in session_ids if i in self.rows)))

    async def get_one(self, session_id: str, timeout: float) -> Any:
        return row("devin-someone-else")  # a server that answers another id


class Sink:
    """Knows the keys in ``known``; records what it is asked and given."""

    def __init__(self, known: dict[str, RowKey] | None = None) -> None:
        self.known = known or {}
        self.asked: list[RowKey] = []
        self.rows: dict[str, Any] = {}

    def seen(self, key: RowKey) -> bool:
        self.asked.append(key)
        return self.known.get(key.session_id) == key

    def take(self, session_id: str, row: Any) -> None:
        self.rows[session_id] = row


async def test_a_page_is_decoded_whole_only_when_a_row_changed(
    whole_decodes: list[bytes],
) -> None:
    ids = [f"devin-{i}" for i in range(450)]  # three list calls
    pages = Pages({i: row(i) for i in ids})
    source = IdsSource(pages.get_one, pages.list_page)
    sink = Sink({i: RowKey(i, "running", "working", 5) for i in ids})

    failures = await source.read(ids, lambda: 1.0, sink)
    assert (sink.rows, failures, whole_decodes, pages.calls) == ({}, [], [], 3)
    assert len(sink.asked) == 450

    pages.rows["devin-300"] = row("devin-300", "exit", 6)
    failures = await source.read(ids, lambda: 1.0, sink)
    assert list(sink.rows) == ["devin-300"]
    assert sink.rows["devin-300"]["status"] == "exit"
    assert (failures, len(whole_decodes)) == ([], 1)  # only the page that holds it


async def test_a_session_the_list_leaves_out_is_read_by_get_under_its_own_id() -> None:
    pages = Pages({"devin-a": row("devin-a")})  # devin-b is never listed
    source = IdsSource(pages.get_one, pages.list_page)
    sink = Sink()
    assert await source.read(["devin-a", "devin-b"], lambda: 1.0, sink) == []
    assert set(sink.rows) == {"devin-a", "devin-b"}
    assert sink.rows["devin-b"]["session_id"] == "devin-someone-else"  # as the server said
    assert [k.session_id for k in sink.asked] == ["devin-a", "devin-b"]


async def test_the_waits_of_one_call_share_one_deadline_entry() -> None:
    vt = VirtualClock()
    wait = Wait(is_settled, 30.0, 1.0, 1.0)
    deadlines = Deadlines()
    first = [Waiter(Entry(f"devin-{i}"), wait, vt.now, None, None) for i in range(3)]
    later = Waiter(Entry("devin-later"), wait, vt.now + 5, None, None)
    for waiter in (*first, later):
        deadlines.add(waiter)
    assert len(deadlines._heap) == 2
    first[0].future.set_result(None)  # type: ignore[arg-type]
    assert deadlines.nearest() == vt.now + 30
    for waiter in first[1:]:
        waiter.future.cancel()
    assert deadlines.nearest() == vt.now + 35  # every wait of the first group ended
    again = Waiter(Entry("devin-again"), wait, vt.now, None, None)
    deadlines.add(again)  # the first group is gone: a new entry, not a ghost's
    assert deadlines.nearest() == vt.now + 30
    assert list(deadlines.due(vt.now + 30)) == [again]
    assert list(deadlines.due(vt.now + 40)) == [later]
    assert deadlines.nearest() == float("inf")
    for waiter in (again, later):
        waiter.future.cancel()
