"""Exactly-once create against servers that are slow, lag, misread filters or refuse tags.

Over real sockets against FakeDevinServer; the grace window runs on virtual time (the
client's injected clock and sleep), so no test waits for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fakes import FakeTime

from devin_async import (
    CREATE_TAG_PREFIX,
    APIConnectionError,
    APITimeoutError,
    ConfigurationError,
    CreateOutcomeUnknownError,
    CreateSessionRequest,
    DevinClient,
    DevinError,
    InternalServerError,
    Session,
    UnprocessableEntityError,
)
from devin_async._create import landed, marker_for
from devin_async.testing import FakeDevinServer

KEY = "cog_test_key_create"


@pytest.fixture
async def server() -> AsyncIterator[FakeDevinServer]:
    async with FakeDevinServer(api_key=KEY, org_id="org-test") as srv:
        yield srv


@pytest.fixture
def time_() -> FakeTime:
    return FakeTime()


def make_client(server: FakeDevinServer, time_: FakeTime, **options: Any) -> DevinClient:
    options.setdefault("timeout", 5.0)
    return DevinClient(
        KEY,
        org_id=server.org_id,
        base_url=server.url,
        sleep=time_,
        clock=time_.clock,
        **options,
    )


def markers_of(server: FakeDevinServer) -> list[str]:
    return [t for s in server.sessions.values() for t in s.tags if t.startswith(CREATE_TAG_PREFIX)]


def posted(server: FakeDevinServer) -> int:
    return server.count(route="create_session")


# ---------------------------------------------------------------- pure pieces


def test_marker_is_random_without_a_key_and_derived_from_one() -> None:
    assert marker_for(None) != marker_for(None)
    assert marker_for("job-42") == marker_for("job-42")
    assert marker_for("job-42") != marker_for("job-43")
    for marker in (marker_for(None), marker_for("job-42")):
        assert marker.startswith(CREATE_TAG_PREFIX)
        assert len(marker) == len(CREATE_TAG_PREFIX) + 32
    assert "job-42" not in marker_for("job-42")  # only a hash goes on the wire


def _session(session_id: str, tags: tuple[str, ...], created_at: int) -> Session:
    return Session(
        session_id=session_id,
        url="https://app.devin.ai/sessions/x",
        status="running",
        tags=tags,
        org_id="org-test",
        created_at=created_at,
        updated_at=created_at,
        acus_consumed=0.0,
    )


def test_landed_accepts_only_a_session_that_carries_the_marker() -> None:
    mine = marker_for(None)
    other = _session("devin-other", ("ci",), 5)
    assert landed([other], mine) is None
    first, second = _session("devin-a", (mine,), 10), _session("devin-b", ("x", mine), 20)
    assert landed([other, second, first], mine) is first  # the oldest, if several
    assert landed([], mine) is None


# ---------------------------------------------------------------- unanswered creates


async def test_unanswered_create_that_lands_late_is_found_not_sent_again(
    server: FakeDevinServer, time_: FakeTime
) -> None:
    # Regression (the test failed before the fix): the lookup ran while the server was
    # still working on the create, found nothing and sent it again: two sessions.
    server.inject("drop", times=1, route="create_session", when="after")
    server.list_lag_reads = 3  # the list shows the new session only from its 4th read
    async with make_client(server, time_) as client:
        session = await client.create_session("hello", tags=["mine"])
    assert posted(server) == 1
    assert server.sessions_created == 1
    assert list(server.sessions) == [session.session_id]
    assert server.count(route="list_sessions") == 4
    assert session.tags[0] == "mine"


async def test_unanswered_create_that_never_appears_raises_outcome_unknown(
    server: FakeDevinServer, time_: FakeTime
) -> None:
    server.inject("drop", times=1, route="create_session")  # before handling: never made
    async with make_client(server, time_, create_grace=12.0) as client:
        with pytest.raises(CreateOutcomeUnknownError) as info:
            await client.create_session("hello")
    error = info.value
    assert posted(server) == 1  # never sent again
    assert server.sessions_created == 0
    assert error.marker is not None
    assert error.marker.startswith(CREATE_TAG_PREFIX)
    assert error.idempotency_key is None
    assert error.elapsed >= 12.0  # virtual seconds: the whole grace window was used
    assert error.lookups == server.count(route="list_sessions") >= 5
    assert isinstance(error.__cause__, APIConnectionError)
    assert error.__cause__.request_sent is True
    assert f"list_sessions(tags=['{error.marker}'])" in str(error)
    assert "idempotency_key" in str(error)
    assert all(d <= 2.0 for d in time_.delays)  # lookups keep coming, at most 2 s apart


async def test_grace_window_is_at_least_ten_seconds_and_the_request_timeout(
    server: FakeDevinServer, time_: FakeTime
) -> None:
    server.inject("drop", times=None, route="create_session")
    async with make_client(server, time_, timeout=30.0) as client:
        with pytest.raises(CreateOutcomeUnknownError) as info:
            await client.create_session("hello")
    assert 30.0 <= info.value.elapsed < 32.0
    time_.delays.clear()
    async with make_client(server, time_, timeout=1.0) as client:
        with pytest.raises(CreateOutcomeUnknownError) as info:
            await client.create_session("hello")
    assert 10.0 <= info.value.elapsed < 12.0


async def test_outcome_unknown_after_a_504_from_a_gateway(
    server: FakeDevinServer, time_: FakeTime
) -> None:
    server.inject("status", status=504, times=1, route="create_session")
    async with make_client(server, time_) as client:
        with pytest.raises(CreateOutcomeUnknownError) as info:
            await client.create_session("hello")
    assert posted(server) == 1
    assert isinstance(info.value.__cause__, InternalServerError)


async def test_a_lookup_that_is_refused_ends_the_grace_window_at_once(
    server: FakeDevinServer, time_: FakeTime
) -> None:
    server.inject("drop", times=1, route="create_session")
    server.inject("status", status=403, times=None, route="list_sessions")
    async with make_client(server, time_) as client:
        with pytest.raises(CreateOutcomeUnknownError) as info:
            await client.create_session("hello")
    assert info.value.lookups == 1
    assert "PermissionDeniedError" in str(info.value)
    assert isinstance(info.value.__cause__, APIConnectionError)  # the POST's failure


async def test_slow_create_that_times_out_is_never_sent_twice(server: FakeDevinServer) -> None:
    # Regression (the test failed before the fix): against a server that keeps working
    # after the client hangs up, the client timed out, looked the marker up too early
    # and sent the create again. The grace window here runs on virtual time and ends
    # before the slow handler, so the call reports the unknown outcome; the point is
    # that exactly one session results.
    time_ = FakeTime()
    server.inject("slow", delay=0.5, times=None, route="create_session")
    async with make_client(server, time_, timeout=0.2) as client:
        with pytest.raises(CreateOutcomeUnknownError) as info:
            await client.create_session("hello")
    assert isinstance(info.value.__cause__, APITimeoutError)
    for _ in range(100):  # the handler finishes on its own; bounded at 5 s
        if server.sessions_created:
            break
        await asyncio.sleep(0.05)
    assert posted(server) == 1
    assert server.sessions_created == 1
    assert markers_of(server) == [info.value.marker]


# ---------------------------------------------------------------- answered failures


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_answered_5xx_that_landed_is_found(
    server: FakeDevinServer, time_: FakeTime, status: int
) -> None:
    server.inject("status", status=status, times=1, route="create_session", when="after")
    async with make_client(server, time_) as client:
        session = await client.create_session("hello")
    assert (posted(server), server.count(route="list_sessions")) == (1, 1)
    assert list(server.sessions) == [session.session_id]


@pytest.mark.parametrize("status", [500, 502])
async def test_answered_5xx_that_landed_behind_a_lagging_list_is_found(
    server: FakeDevinServer, time_: FakeTime, status: int
) -> None:
    # Regression (the test failed before the fix): one lookup after the backoff missed
    # the session the 500 had made, and the create was sent again: two sessions.
    server.inject("status", status=status, times=1, route="create_session", when="after")
    server.list_lag_reads = 3
    async with make_client(server, time_) as client:
        session = await client.create_session("hello")
    assert (posted(server), server.sessions_created) == (1, 1)
    assert list(server.sessions) == [session.session_id]


async def test_answered_500_that_never_shows_is_sent_again_after_the_grace_window(
    server: FakeDevinServer, time_: FakeTime
) -> None:
    server.inject("status", status=500, times=1, route="create_session")  # before acting
    async with make_client(server, time_, create_grace=12.0) as client:
        session = await client.create_session("hello")
    assert (posted(server), server.sessions_created) == (2, 1)
    assert list(server.sessions) == [session.session_id]
    assert sum(time_.delays) >= 12.0  # watched for the whole window first


async def test_answered_5xx_that_did_not_land_is_sent_again(
    server: FakeDevinServer, time_: FakeTime
) -> None:
    server.inject("status", status=503, times=1, route="create_session")
    async with make_client(server, time_) as client:
        session = await client.create_session("hello")
    assert (posted(server), server.count(route="list_sessions")) == (2, 1)
    assert list(server.sessions) == [session.session_id]


async def test_a_failed_lookup_reports_the_creates_failure(
    server: FakeDevinServer, time_: FakeTime
) -> None:
    # Regression (the test failed before the fix): the lookup's 403 was raised instead.
    server.inject("status", status=502, times=1, route="create_session")
    server.inject("status", status=403, times=None, route="list_sessions")
    async with make_client(server, time_) as client:
        with pytest.raises(InternalServerError) as info:
            await client.create_session("hello")
    assert info.value.status_code == 502
    assert posted(server) == 1
    assert any("PermissionDeniedError" in note for note in info.value.__notes__)


# ---------------------------------------------------------------- a server that misreads filters


async def test_lookup_never_returns_someone_elses_session(
    server: FakeDevinServer, time_: FakeTime
) -> None:
    # Regression (the test failed before the fix): with the tags filter ignored, the
    # lookup returned the newest session of the org, which was not ours.
    async with make_client(server, time_, exactly_once_create=False) as client:
        other = await client.create_session("someone else's task")
    server.ignored_filters = {"tags"}
    server.inject("status", status=503, times=1, route="create_session")
    async with make_client(server, time_) as client:
        mine = await client.create_session("my task")
    assert mine.session_id != other.session_id
    assert server.sessions[mine.session_id].body["prompt"] == "my task"
    assert posted(server) == 3  # other, the failed one, the one sent again


async def test_unanswered_create_with_an_ignored_filter_is_not_confused(
    server: FakeDevinServer, time_: FakeTime
) -> None:
    async with make_client(server, time_, exactly_once_create=False) as client:
        await client.create_session("someone else's task")
    server.ignored_filters = {"tags"}
    server.inject("drop", times=1, route="create_session")
    async with make_client(server, time_) as client:
        with pytest.raises(CreateOutcomeUnknownError):
            await client.create_session("my task")
    assert server.sessions_created == 1


async def test_lookup_works_with_a_server_that_reads_comma_joined_arrays(
    server: FakeDevinServer, time_: FakeTime
) -> None:
    server.array_encoding = "comma"
    server.inject("drop", times=1, route="create_session", when="after")
    async with make_client(server, time_) as client:
        session = await client.create_session("hello", tags=["a", "b"])
    assert (posted(server), server.sessions_created) == (1, 1)
    assert list(server.sessions) == [session.session_id]


# ---------------------------------------------------------------- allowed tags


async def test_a_refused_marker_tag_falls_back_to_untagged_creates(
    server: FakeDevinServer, time_: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    # Regression (the test failed before the fix): every create failed with the 422.
    server.allowed_tags = {"ci"}
    with caplog.at_level(logging.WARNING, logger="devin_async"):
        async with make_client(server, time_) as client:
            first = await client.create_session("one", tags=["ci"])
            second = await client.create_session("two", tags=["ci"])
    assert first.tags == second.tags == ("ci",)
    assert client.exactly_once_create is False  # it says so once the marker was refused
    assert server.sessions_created == 2
    assert posted(server) == 3  # the refused one, then each once without the marker
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "marker" in warnings[0].getMessage()


async def test_after_the_marker_is_refused_an_unanswered_create_is_not_retried(
    server: FakeDevinServer, time_: FakeTime
) -> None:
    server.allowed_tags = set()
    async with make_client(server, time_) as client:
        await client.create_session("one")
        server.inject("drop", times=1, route="create_session", when="after")
        with pytest.raises(APIConnectionError):
            await client.create_session("two")
    assert server.sessions_created == 2
    assert posted(server) == 3
    assert server.count(route="list_sessions") == 0


async def test_a_422_about_another_tag_is_raised(server: FakeDevinServer, time_: FakeTime) -> None:
    server.allowed_tags = {"ci", "x"}
    async with make_client(server, time_, exactly_once_create=False) as client:
        with pytest.raises(UnprocessableEntityError) as info:
            await client.create_session("one", tags=["nope"])
    assert "nope" in str(info.value)
    assert posted(server) == 1


async def test_an_idempotency_key_cannot_work_when_the_marker_is_refused(
    server: FakeDevinServer, time_: FakeTime
) -> None:
    server.allowed_tags = set()
    async with make_client(server, time_) as client:
        with pytest.raises(ConfigurationError, match="allowed tags"):
            await client.create_session("one", idempotency_key="job-1")
        assert server.sessions_created == 0
        with pytest.raises(ConfigurationError, match="allowed tags"):
            await client.create_session("two", idempotency_key="job-2")
    assert posted(server) == 1  # the second is refused before sending


# ---------------------------------------------------------------- idempotency keys


async def test_same_idempotency_key_returns_the_same_session_across_clients(
    server: FakeDevinServer, time_: FakeTime
) -> None:
    async with make_client(server, time_) as client:
        first = await client.create_session("deploy", idempotency_key="slack-msg-1")
    async with make_client(server, time_) as restarted:  # a bot after a restart
        again = await restarted.create_session("deploy", idempotency_key="slack-msg-1")
        other = await restarted.create_session("deploy", idempotency_key="slack-msg-2")
    assert again.session_id == first.session_id
    assert other.session_id != first.session_id
    assert server.sessions_created == 2
    assert posted(server) == 2
    assert marker_for("slack-msg-1") in first.tags
    for request in server.requests:  # the key itself never goes on the wire
        assert "slack-msg-1" not in repr((request.query, request.body))


async def test_idempotency_key_after_an_unanswered_create_in_another_process(
    server: FakeDevinServer, time_: FakeTime
) -> None:
    server.inject("drop", times=1, route="create_session", when="after")
    server.list_lag_reads = 100  # nothing shows within the first call's grace window
    async with make_client(server, time_) as client:
        with pytest.raises(CreateOutcomeUnknownError) as info:
            await client.create_session("deploy", idempotency_key="job-7")
    assert info.value.idempotency_key == "job-7"
    assert "idempotency_key='job-7'" in str(info.value)
    server.list_lag_reads = 0
    async with make_client(server, time_) as client:
        again = await client.create_session("deploy", idempotency_key="job-7")
    assert server.sessions_created == 1
    assert list(server.sessions) == [again.session_id]


async def test_create_sessions_items_carry_their_idempotency_keys(
    server: FakeDevinServer, time_: FakeTime
) -> None:
    items = [CreateSessionRequest(prompt=f"task {i}", idempotency_key=f"job-{i}") for i in range(3)]
    async with make_client(server, time_) as client:
        first = await client.create_sessions(items)
        again = await client.create_sessions(items)
    assert [r.session_id for r in first] == [r.session_id for r in again]
    assert server.sessions_created == 3


@pytest.mark.parametrize("key", ["", "   ", "x" * 1025])
def test_a_blank_or_huge_idempotency_key_is_refused(key: str) -> None:
    with pytest.raises(ValueError, match="idempotency_key"):
        CreateSessionRequest(prompt="p", idempotency_key=key)


def test_a_non_string_idempotency_key_is_refused() -> None:
    with pytest.raises(TypeError, match="idempotency_key"):
        CreateSessionRequest(prompt="p", idempotency_key=42)  # type: ignore[arg-type]


# ---------------------------------------------------------------- input checked before sending


async def test_too_many_tags_counting_the_marker_are_refused_before_sending(
    server: FakeDevinServer, time_: FakeTime
) -> None:
    tags = [f"t{i}" for i in range(50)]
    async with make_client(server, time_) as client:
        with pytest.raises(ValueError, match="at most 49 tags"):
            await client.create_session("p", tags=tags)
        with pytest.raises(ValueError, match="at most 49 tags"):
            await client.create_sessions([CreateSessionRequest(prompt="p", tags=tags)])
    async with make_client(server, time_, exactly_once_create=False) as client:
        await client.create_session("p", tags=tags)  # 50 without the marker
        with pytest.raises(ValueError, match="at most 50 tags"):
            await client.create_session("p", tags=[*tags, "one-more"])
    assert posted(server) == 1


@pytest.mark.parametrize("exactly_once", [True, False])
async def test_non_string_tags_are_refused_before_sending(
    server: FakeDevinServer, time_: FakeTime, exactly_once: bool
) -> None:
    async with make_client(server, time_, exactly_once_create=exactly_once) as client:
        with pytest.raises(TypeError, match="tags"):
            await client.create_session("p", tags=["ok", 3])  # type: ignore[list-item]
    assert posted(server) == 0


@pytest.mark.parametrize("value", ["refactor", b"refactor"], ids=["str", "bytes"])
async def test_create_sessions_refuses_a_bare_string(
    server: FakeDevinServer, time_: FakeTime, value: Any
) -> None:
    # Regression (the test failed before the fix): 8 sessions "r", "e", "f", ...
    async with make_client(server, time_) as client:
        with pytest.raises(TypeError, match="not one string"):
            await client.create_sessions(value)
    assert posted(server) == 0


@pytest.mark.parametrize("concurrency", [0, 2.5, True, "4"])
async def test_create_sessions_refuses_a_bad_concurrency(
    server: FakeDevinServer, time_: FakeTime, concurrency: Any
) -> None:
    async with make_client(server, time_) as client:
        with pytest.raises(ValueError, match="concurrency"):
            await client.create_sessions(["a"], concurrency=concurrency)
    assert posted(server) == 0


@pytest.mark.parametrize("grace", [0, -1.0, float("inf"), "10"])
def test_a_bad_create_grace_is_refused(grace: Any) -> None:
    with pytest.raises(ConfigurationError, match="create_grace"):
        DevinClient(KEY, org_id="org-test", base_url="http://127.0.0.1:9", create_grace=grace)


def test_exactly_once_create_is_read_only_configuration() -> None:
    client = DevinClient(KEY, org_id="org-test", base_url="http://127.0.0.1:9")
    assert client.exactly_once_create is True
    with pytest.raises(AttributeError):
        client.exactly_once_create = False  # type: ignore[misc]
    untagged = DevinClient(
        KEY, org_id="org-test", base_url="http://127.0.0.1:9", exactly_once_create=False
    )
    assert untagged.exactly_once_create is False


async def test_concurrent_creates_refused_for_the_marker_warn_once(
    server: FakeDevinServer, time_: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    server.allowed_tags = set()
    with caplog.at_level(logging.WARNING, logger="devin_async"):
        async with make_client(server, time_) as client:
            results = await client.create_sessions(["a", "b", "c", "d"], concurrency=4)
    assert all(r.ok for r in results)
    assert server.sessions_created == 4
    assert posted(server) == 8  # each refused once with its marker, then sent without
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


# ---------------------------------------------------------------- every pair of faults

# (kind, options, when): what a POST can meet, and whether the server acted on it.
POST_FAULTS: dict[str, tuple[str, dict[str, Any], str] | None] = {
    "ok": None,
    "503-before": ("status", {"status": 503}, "before"),
    "500-after": ("status", {"status": 500}, "after"),
    "504-before": ("status", {"status": 504}, "before"),
    "504-after": ("status", {"status": 504}, "after"),
    "drop-before": ("drop", {}, "before"),
    "drop-after": ("drop", {}, "after"),
    "malformed-after": ("malformed", {}, "after"),
    "429": ("rate_limit", {"retry_after": "1"}, "before"),
}
UNANSWERED = {"504-before", "504-after", "drop-before", "drop-after", "malformed-after"}
LOOKUP_FAULTS: dict[str, tuple[str, dict[str, Any]] | None] = {
    "ok": None,
    "503": ("status", {"status": 503}),
    "malformed": ("malformed", {}),
    "403": ("status", {"status": 403}),
}


@pytest.mark.parametrize("lookup_fault", sorted(LOOKUP_FAULTS))
@pytest.mark.parametrize("second", sorted(POST_FAULTS))
@pytest.mark.parametrize("first", sorted(set(POST_FAULTS) - {"ok"}))
async def test_no_pair_of_faults_makes_two_sessions_or_resends_an_unanswered_create(
    server: FakeDevinServer, time_: FakeTime, first: str, second: str, lookup_fault: str
) -> None:
    for name in (first, second):
        fault = POST_FAULTS[name]
        if fault is not None:
            kind, options, when = fault
            server.inject(kind, times=1, route="create_session", when=when, **options)  # type: ignore[arg-type]
    if (lookup := LOOKUP_FAULTS[lookup_fault]) is not None:
        server.inject(lookup[0], times=1, route="list_sessions", **lookup[1])  # type: ignore[arg-type]
    server.list_lag_reads = 1  # and the list lags behind the create
    error: DevinError | None = None
    async with make_client(server, time_) as client:
        try:
            session = await client.create_session("p")
        except DevinError as exc:
            error = exc
    assert server.sessions_created <= 1
    if error is None:
        assert list(server.sessions) == [session.session_id]
    elif isinstance(error, CreateOutcomeUnknownError) and lookup_fault != "403":
        # Looked up for the whole grace window: had the session existed, it was found.
        assert server.sessions_created == 0
    posts = posted(server)
    if first in UNANSWERED:
        assert posts == 1  # never sent again after a POST that went unanswered
    elif second in UNANSWERED:
        assert posts <= 2


# ---------------------------------------------------------------- deprecated fields


@pytest.mark.parametrize("tagged", [True, False], ids=["tagged", "untagged"])
async def test_advanced_mode_is_sent_with_one_deprecation_warning_naming_the_caller(
    server: FakeDevinServer, time_: FakeTime, tagged: bool
) -> None:
    # advanced_mode is gone from the current SDK's create request (reference 11).
    async with make_client(server, time_, exactly_once_create=tagged) as client:
        with pytest.warns(DeprecationWarning, match="advanced_mode") as caught:
            await client.create_session("hello", advanced_mode="analyze")
        request = CreateSessionRequest(prompt="again", advanced_mode="batch")  # no warning yet
        with pytest.warns(DeprecationWarning, match="advanced_mode") as again:
            await client.create_session(request)
    assert [w.filename for w in [*caught, *again]] == [__file__, __file__]
    assert [r.body["advanced_mode"] for r in server.requests if r.route == "create_session"] == [
        "analyze",
        "batch",
    ]


async def test_advanced_mode_in_a_fan_out_warns(server: FakeDevinServer, time_: FakeTime) -> None:
    requests = [CreateSessionRequest(prompt=f"p{i}", advanced_mode="analyze") for i in range(3)]
    async with make_client(server, time_) as client:
        with pytest.warns(DeprecationWarning, match="advanced_mode") as caught:
            results = await client.create_sessions(requests)
    assert all(r.error is None for r in results)
    assert {w.filename for w in caught} == {__file__}


async def test_a_create_without_advanced_mode_does_not_warn(
    server: FakeDevinServer, time_: FakeTime
) -> None:
    # Warnings are errors in this suite: any warning fails the test.
    async with make_client(server, time_) as client:
        await client.create_session("hello", devin_mode="fast", resumable=False)
    assert "advanced_mode" not in server.requests[-1].body
