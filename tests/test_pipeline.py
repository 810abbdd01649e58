"""The request pipeline on a MockTransport: decoding, errors, retries, hooks, the seam."""

from __future__ import annotations

import pickle
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fakes import FakeTime

from devin_async import (
    APIConnectionError,
    APIStatusError,
    ClientClosedError,
    ConfigurationError,
    DevinClient,
    InternalServerError,
    NotFoundError,
    RateLimitError,
    RateLimitPaused,
    RequestSent,
    ResponseReceived,
    ResponseValidationError,
    RetryScheduled,
)
from devin_async._protocol import Request, Response, decode, retry_after_of, should_retry_of
from devin_async._retry import retry_reason, server_delay
from devin_async.testing import MockTransport, mock_response

BASE = "https://api.devin.ai"
NOW = 1_700_000_000.0


def session(session_id: str = "devin-1", **fields: Any) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "url": f"https://app.devin.ai/sessions/{session_id}",
        "status": "running",
        "status_detail": "working",
        "tags": [],
        "org_id": "org-1",
        "created_at": 1,
        "updated_at": 2,
        "acus_consumed": 0.0,
        "pull_requests": [],
        **fields,
    }


class Script:
    """A handler that plays answers in order (an exception is raised) and keeps the last."""

    def __init__(self, *answers: Response | Exception) -> None:
        self.answers = list(answers)

    def __call__(self, request: Request) -> Response:
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def sleep() -> FakeTime:
    return FakeTime()


@pytest.fixture
def events() -> list[object]:
    return []


def make_client(
    handler: Any, sleep: FakeTime, events: list[object] | None = None, **options: Any
) -> DevinClient:
    return DevinClient(
        "test-key",
        org_id="org-1",
        transport=MockTransport(handler),
        sleep=sleep,
        clock=sleep.clock,
        hooks=[events.append] if events is not None else (),
        **options,
    )


@pytest.fixture
async def closing() -> AsyncIterator[list[DevinClient]]:
    made: list[DevinClient] = []
    yield made
    for client in made:
        await client.aclose()


# ------------------------------------------------------------------ the pure decode


def test_decode_returns_data_for_2xx() -> None:
    request = Request("GET", "/v3/x")
    assert decode(request, mock_response(200, {"a": 1}), BASE) == {"a": 1}
    assert decode(request, mock_response(204, content=b"[]"), BASE) == []


def test_decode_raises_the_status_error_with_its_url() -> None:
    request = Request("GET", "/v3/x/sessions/devin-1", session_id="devin-1")
    with pytest.raises(NotFoundError) as info:
        decode(request, mock_response(404, {"detail": "no such session"}), BASE)
    assert info.value.url == BASE + "/v3/x/sessions/devin-1"
    assert "no such session" in str(info.value)


def test_decode_refuses_a_2xx_body_that_is_not_json() -> None:
    with pytest.raises(ResponseValidationError):
        decode(Request("GET", "/v3/x"), mock_response(200, content=b"<html>"), BASE)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "1500", "Retry-After": "9"}, 1.5),
        ({"Retry-After-Ms": "250"}, 0.25),
        ({"retry-after-ms": "soon", "Retry-After": "9"}, 9.0),
        ({"retry-after-ms": "-5", "Retry-After": "9"}, 9.0),
        ({"retry-after-ms": "nan"}, None),
        ({"Retry-After": "Tue, 14 Nov 2023 22:13:50 GMT"}, 30.0),
        ({}, None),
    ],
    ids=["ms-first", "ms-any-case", "bad-ms", "negative-ms", "nan-ms", "http-date", "none"],
)
def test_retry_after_reads_milliseconds_first(
    headers: dict[str, str], expected: float | None
) -> None:
    assert retry_after_of(mock_response(headers=headers).headers, NOW) == expected


@pytest.mark.parametrize("status", [429, 503, 500])
def test_retry_after_is_parsed_onto_every_status_error(status: int) -> None:
    response = mock_response(status, {"detail": "slow down"}, headers={"Retry-After": "7"})
    with pytest.raises(APIStatusError) as info:
        decode(Request("GET", "/v3/x"), response, BASE)
    assert info.value.retry_after == 7.0
    assert server_delay(info.value) == 7.0
    # The retry decision reads the attribute, not the headers again.
    info.value.headers = {}
    assert server_delay(info.value) == 7.0
    copy = pickle.loads(pickle.dumps(info.value))  # noqa: S301 - our own error
    assert copy.retry_after == 7.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"x-should-retry": "true"}, True),
        ({"X-Should-Retry": " FALSE "}, False),
        ({"x-should-retry": "1"}, None),
        ({"x-should-retry": ""}, None),
        ({}, None),
    ],
    ids=["true", "false-any-case", "one", "empty", "none"],
)
def test_x_should_retry_is_parsed_onto_the_error(
    headers: dict[str, str], expected: bool | None
) -> None:
    assert should_retry_of(mock_response(headers=headers).headers) is expected
    with pytest.raises(APIStatusError) as info:
        decode(Request("GET", "/v3/x"), mock_response(409, headers=headers), BASE)
    assert info.value.should_retry is expected
    # The retry decision reads the attribute, not the headers again.
    info.value.headers = {}
    assert (retry_reason(info.value, idempotent=True) is not None) is bool(expected)
    copy = pickle.loads(pickle.dumps(info.value))  # noqa: S301 - our own error
    assert copy.should_retry is expected


# ------------------------------------------------------------------ through a client


async def test_get_session_decodes_through_the_mock(
    sleep: FakeTime, closing: list[DevinClient]
) -> None:
    transport_calls: list[Request] = []

    def answer(request: Request) -> Response:
        transport_calls.append(request)
        return mock_response(json=session())

    client = make_client(answer, sleep)
    closing.append(client)
    got = await client.get_session("1")
    assert got.session_id == "devin-1"
    assert got.status == "running"
    (request,) = transport_calls
    assert request.path == "/v3/organizations/org-1/sessions/devin-1"
    assert request.session_id == "devin-1"


async def test_async_handlers_are_awaited(sleep: FakeTime, closing: list[DevinClient]) -> None:
    async def answer(request: Request) -> Response:
        return mock_response(json={"tags": ["a", "b"]})

    client = make_client(answer, sleep)
    closing.append(client)
    assert await client.get_tags("devin-1") == ("a", "b")


async def test_a_get_is_retried_after_a_503_with_its_retry_after(
    sleep: FakeTime, events: list[object], closing: list[DevinClient]
) -> None:
    script = Script(
        mock_response(503, {"detail": "busy"}, headers={"Retry-After": "4"}),
        mock_response(json=session()),
    )
    client = make_client(script, sleep, events)
    closing.append(client)
    start = sleep.now
    assert (await client.get_session("devin-1")).session_id == "devin-1"
    assert sleep.now - start >= 4.0  # the server's wait is the floor of the backoff
    retries = [e for e in events if isinstance(e, RetryScheduled)]
    assert [(r.reason, r.session_id) for r in retries] == [("HTTP 503", "devin-1")]
    sent = [e for e in events if isinstance(e, RequestSent)]
    assert [e.session_id for e in sent] == ["devin-1", "devin-1"]
    received = [e for e in events if isinstance(e, ResponseReceived)]
    assert [e.status for e in received] == [503, 200]


async def test_a_message_is_not_sent_again_after_a_500(
    sleep: FakeTime, closing: list[DevinClient]
) -> None:
    transport = MockTransport(Script(mock_response(500, {"detail": "oops"})))
    client = DevinClient("test-key", org_id="org-1", transport=transport, sleep=sleep)
    closing.append(client)
    with pytest.raises(InternalServerError):
        await client.send_message("devin-1", "hello")
    assert [r.method for r in transport.requests] == ["POST"]


async def test_a_connection_error_from_the_transport_is_retried_for_a_get(
    sleep: FakeTime, closing: list[DevinClient]
) -> None:
    refused = APIConnectionError("refused", method="GET", url=BASE + "/v3/x", request_sent=False)
    transport = MockTransport(Script(refused, mock_response(json=session())))
    client = DevinClient(
        "test-key", org_id="org-1", transport=transport, sleep=sleep, clock=sleep.clock
    )
    closing.append(client)
    assert (await client.get_session("devin-1")).session_id == "devin-1"
    assert len(transport.requests) == 2


async def test_a_429_pauses_the_governor_for_its_retry_after(
    sleep: FakeTime, events: list[object], closing: list[DevinClient]
) -> None:
    script = Script(
        mock_response(429, {"detail": "slow"}, headers={"retry-after-ms": "2500"}),
        mock_response(json=session()),
    )
    client = make_client(script, sleep, events)
    closing.append(client)
    await client.get_session("devin-1")
    (pause,) = [e for e in events if isinstance(e, RateLimitPaused)]
    assert pause.retry_after == 2.5
    assert pause.seconds == pytest.approx(2.5)


async def test_a_retry_waits_the_milliseconds_header_before_retry_after(
    sleep: FakeTime, closing: list[DevinClient]
) -> None:
    script = Script(
        mock_response(503, headers={"retry-after-ms": "1500", "Retry-After": "9"}),
        mock_response(json=session()),
    )
    client = make_client(script, sleep)
    closing.append(client)
    start = sleep.now
    await client.get_session("devin-1")
    # Backoff alone is at most 0.5 s on a first retry: the 1.5 s is the server's.
    assert sleep.now - start == pytest.approx(1.5)


async def test_a_429_beyond_the_longest_wait_is_raised_with_its_retry_after(
    sleep: FakeTime, closing: list[DevinClient]
) -> None:
    transport = MockTransport(Script(mock_response(429, headers={"Retry-After": "3600"})))
    client = DevinClient(
        "test-key", org_id="org-1", transport=transport, sleep=sleep, clock=sleep.clock
    )
    closing.append(client)
    with pytest.raises(RateLimitError) as info:
        await client.get_session("devin-1")
    assert info.value.retry_after == 3600.0
    assert len(transport.requests) == 1


async def test_closing_the_client_closes_the_transport_and_refuses_requests(
    sleep: FakeTime,
) -> None:
    transport = MockTransport(Script(mock_response(json=session())))
    client = DevinClient("test-key", org_id="org-1", transport=transport, sleep=sleep)
    await client.get_session("devin-1")
    await client.aclose()
    assert client.closed
    assert transport.closed
    with pytest.raises(ClientClosedError):
        await client.get_session("devin-1")
    assert len(transport.requests) == 1
    await client.aclose()  # twice is once


async def test_a_transport_without_aclose_is_left_alone(sleep: FakeTime) -> None:
    class Bare:
        async def send(self, request: Request) -> Response:
            return mock_response(json=session())

    client = DevinClient("test-key", org_id="org-1", transport=Bare(), sleep=sleep)
    assert (await client.get_session("devin-1")).session_id == "devin-1"
    await client.aclose()
    assert client.closed


async def test_a_wait_runs_on_the_mock_and_virtual_time(
    sleep: FakeTime, closing: list[DevinClient]
) -> None:
    states = iter(["working", "working", "finished"])

    seen: list[str] = []

    def answer(request: Request) -> Response:
        seen.append(request.path)
        row = session(status_detail=next(states), updated_at=int(sleep.now) + 10)
        return mock_response(json=row)

    client = make_client(answer, sleep)
    closing.append(client)
    start = sleep.now
    settled = await client.await_session("devin-1", timeout=60)
    assert settled.status_detail == "finished"
    assert seen == ["/v3/organizations/org-1/sessions/devin-1"] * 3  # one wait reads by id
    assert sleep.now - start >= 2.0  # it slept between polls, on virtual time


# ------------------------------------------------------------------ the seam itself


def test_transport_and_session_together_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="not both"):
        DevinClient(
            "test-key",
            transport=MockTransport(Script(mock_response())),
            session=object(),  # type: ignore[arg-type]
        )


def test_a_transport_without_send_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="send"):
        DevinClient("test-key", transport=object())  # type: ignore[arg-type]


def test_mock_transport_needs_a_callable() -> None:
    with pytest.raises(TypeError, match="callable"):
        MockTransport("not a handler")  # type: ignore[arg-type]


async def test_mock_transport_refuses_an_answer_that_is_not_a_response() -> None:
    transport = MockTransport(lambda request: {"status": 200})  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="Response"):
        await transport.send(Request("GET", "/v3/x"))


async def test_mock_transport_makes_plain_headers_case_insensitive() -> None:
    transport = MockTransport(lambda request: Response(200, {"Retry-After": "3"}, b"{}"))
    response = await transport.send(Request("GET", "/v3/x"))
    assert response.headers.get("retry-after") == "3"
    assert repr(transport) == "<MockTransport 1 requests>"
    await transport.aclose()
    assert repr(transport) == "<MockTransport 1 requests closed>"
    with pytest.raises(ClientClosedError):
        await transport.send(Request("GET", "/v3/x"))


def test_configuration_is_read_only() -> None:
    client = DevinClient(
        "test-key", org_id="org-1", transport=MockTransport(Script(mock_response()))
    )
    for name in ("org_id", "base_url", "timeout", "poll_interval", "max_poll_interval"):
        with pytest.raises(AttributeError):
            setattr(client, name, None)
    assert (client.org_id, client.base_url, client.timeout) == ("org-1", BASE, 60.0)
    assert (client.poll_interval, client.max_poll_interval) == (2.0, 30.0)
