"""Retry policy: the pure classification table, the retry loop and poll backoff."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

import pytest
from multidict import CIMultiDict

from devin_async._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    RateLimitError,
    ResponseValidationError,
)
from devin_async._events import Hooks
from devin_async._limits import Governor
from devin_async._pipeline import Sender
from devin_async._protocol import Request, Response, status_error
from devin_async._retry import (
    RetryPolicy,
    call_exactly_once,
    create_failure,
    poll_delay,
    retry_reason,
    server_delay,
)
from devin_async.testing import MockTransport, mock_response

URL = "https://api.devin.ai/v3/organizations/org-1/sessions"


def http_error(status: int, **headers: str) -> APIStatusError:
    request = Request("GET", "/v3/organizations/org-1/sessions/devin-1")
    return status_error(request, Response(status, CIMultiDict(headers), b""), URL)


def rate_limited(retry_after: float | None) -> RateLimitError:
    headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
    err = http_error(429, **headers)
    assert isinstance(err, RateLimitError)
    return err


def conn_error(*, sent: bool) -> APIConnectionError:
    return APIConnectionError("refused", method="GET", url=URL, request_sent=sent)


def timeout_error(*, sent: bool) -> APITimeoutError:
    return APITimeoutError("slow", method="GET", url=URL, request_sent=sent)


# ------------------------------------------------------------------ retry_reason

RETRYABLE_IF_IDEMPOTENT = {408, 429, 500, 502, 503, 504}
ALWAYS_RETRYABLE = {429}


@pytest.mark.parametrize("idempotent", [True, False], ids=["idempotent", "not-idempotent"])
@pytest.mark.parametrize(
    "status", [400, 401, 403, 404, 408, 409, 422, 429, 500, 501, 502, 503, 504]
)
def test_retry_reason_for_status(status: int, idempotent: bool) -> None:
    retryable = RETRYABLE_IF_IDEMPOTENT if idempotent else ALWAYS_RETRYABLE
    expected = f"HTTP {status}" if status in retryable else None
    assert retry_reason(http_error(status), idempotent=idempotent) == expected


STATUSES = [400, 404, 408, 409, 429, 500, 502, 503, 504]


@pytest.mark.parametrize("idempotent", [True, False], ids=["idempotent", "not-idempotent"])
@pytest.mark.parametrize("status", STATUSES)
def test_x_should_retry_false_is_never_retried(status: int, idempotent: bool) -> None:
    error = http_error(status, **{"x-should-retry": "false"})
    assert error.should_retry is False
    assert retry_reason(error, idempotent=idempotent) is None


@pytest.mark.parametrize("idempotent", [True, False], ids=["idempotent", "not-idempotent"])
@pytest.mark.parametrize("status", STATUSES)
def test_x_should_retry_true_is_retried_unless_a_post_went_unanswered(
    status: int, idempotent: bool
) -> None:
    # The server's word wins over the status table, except that a POST whose gateway
    # gave up (504: no answer from the server) is never sent again.
    error = http_error(status, **{"X-Should-Retry": "true"})
    assert error.should_retry is True
    expected = None if status == 504 and not idempotent else f"HTTP {status} (x-should-retry)"
    assert retry_reason(error, idempotent=idempotent) == expected


@pytest.mark.parametrize("value", ["1", "yes", "", "maybe"])
def test_other_x_should_retry_values_leave_the_status_table_to_decide(value: str) -> None:
    error = http_error(409, **{"x-should-retry": value})
    assert error.should_retry is None
    assert retry_reason(error, idempotent=True) is None
    assert retry_reason(http_error(503, **{"x-should-retry": value}), idempotent=True)


@pytest.mark.parametrize(
    ("exc", "idempotent", "expected"),
    [
        (conn_error(sent=False), True, "connection error"),
        (conn_error(sent=False), False, "connection error"),
        (conn_error(sent=True), True, "connection error"),
        (conn_error(sent=True), False, None),
        (timeout_error(sent=False), True, "timeout"),
        (timeout_error(sent=False), False, "timeout"),
        (timeout_error(sent=True), True, "timeout"),
        (timeout_error(sent=True), False, None),
        (ResponseValidationError("bad", body=""), True, None),
        (ValueError("bug"), True, None),
        (asyncio.CancelledError(), True, None),
    ],
    ids=[
        "refused-idempotent",
        "refused-post",
        "reset-idempotent",
        "reset-post",
        "connect-timeout-idempotent",
        "connect-timeout-post",
        "read-timeout-idempotent",
        "read-timeout-post",
        "bad-body",
        "foreign-error",
        "cancelled",
    ],
)
def test_retry_reason_for_other_errors(
    exc: BaseException, idempotent: bool, expected: str | None
) -> None:
    assert retry_reason(exc, idempotent=idempotent) == expected


# ------------------------------------------------------------------ server_delay


def test_server_delay_of_http_date_is_relative_to_now() -> None:
    when = email.utils.formatdate(time.time() + 3600, usegmt=True)
    delay = server_delay(http_error(503, **{"Retry-After": when}))
    assert delay is not None
    assert 3000 < delay <= 3600


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (rate_limited(3), 3.0),
        (rate_limited(None), None),
        (http_error(503, **{"Retry-After": "7"}), 7.0),
        (http_error(503), None),
        (http_error(503, **{"Retry-After": "soon"}), None),
        (conn_error(sent=False), None),
        (ValueError("x"), None),
    ],
    ids=["429", "429-no-header", "503-header", "503-no-header", "503-garbage", "conn", "foreign"],
)
def test_server_delay(exc: BaseException, expected: float | None) -> None:
    assert server_delay(exc) == expected


# ------------------------------------------------------------------ a request's retries


async def call_with_retries(
    fn: Callable[[], Awaitable[object]],
    *,
    idempotent: bool,
    policy: RetryPolicy,
    sleep: Callable[[float], Awaitable[None]],
    what: str,
) -> object:
    """Send one request as a client does, each attempt answered by ``fn`` (or its error)."""

    async def answer(request: Request) -> Response:
        return mock_response(json=await fn())

    sender = Sender(
        MockTransport(answer),
        URL,
        governor=Governor(sleep=sleep),
        hooks=Hooks(()),
        policy=policy,
        sleep=sleep,
        clock=lambda: 0.0,
    )
    method, path = what.split(" ", 1)
    return await sender.call(Request(method, path, idempotent=idempotent))


class Script:
    """An attempt function that plays outcomes in order (exceptions are raised)."""

    def __init__(self, outcomes: Sequence[object]) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    async def __call__(self) -> object:
        outcome = self.outcomes[min(self.calls, len(self.outcomes) - 1)]
        self.calls += 1
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


class Sleeps:
    """A sleep that records the requested delays and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


POLICY = RetryPolicy(max_retries=3, backoff_base=0.5, backoff_max=2.0, max_retry_after=60.0)


async def run(
    script: Script, sleeps: Sleeps, *, idempotent: bool = True, policy: RetryPolicy = POLICY
) -> object:
    what = "GET /v3/x" if idempotent else "POST /v3/x"
    return await call_with_retries(
        script, idempotent=idempotent, policy=policy, sleep=sleeps, what=what
    )


async def test_success_first_try_makes_one_call() -> None:
    script, sleeps = Script(["ok"]), Sleeps()
    assert await run(script, sleeps) == "ok"
    assert script.calls == 1
    assert sleeps.delays == []


async def test_get_retried_on_503_then_succeeds() -> None:
    script, sleeps = Script([http_error(503), http_error(503), "ok"]), Sleeps()
    assert await run(script, sleeps) == "ok"
    assert script.calls == 3
    assert len(sleeps.delays) == 2
    assert all(0 <= d <= POLICY.backoff_max for d in sleeps.delays)


@pytest.mark.parametrize(
    "exc",
    [conn_error(sent=True), timeout_error(sent=True), http_error(408), http_error(504)],
    ids=["reset", "timeout", "408", "504"],
)
async def test_get_retried_on_transient_failures(exc: Exception) -> None:
    script, sleeps = Script([exc, "ok"]), Sleeps()
    assert await run(script, sleeps) == "ok"
    assert script.calls == 2


async def test_gives_up_after_max_retries_plus_one_raising_the_last_error() -> None:
    errors = [http_error(503) for _ in range(4)]
    script, sleeps = Script(errors), Sleeps()
    with pytest.raises(APIStatusError) as info:
        await run(script, sleeps)
    assert info.value is errors[-1]
    assert script.calls == POLICY.max_retries + 1
    assert len(sleeps.delays) == POLICY.max_retries


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
async def test_client_errors_are_not_retried(status: int) -> None:
    error = http_error(status)
    script, sleeps = Script([error, "ok"]), Sleeps()
    with pytest.raises(APIStatusError) as info:
        await run(script, sleeps)
    assert info.value is error
    assert script.calls == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_post_with_5xx_is_called_once(status: int) -> None:
    script, sleeps = Script([http_error(status), "ok"]), Sleeps()
    with pytest.raises(APIStatusError):
        await run(script, sleeps, idempotent=False)
    assert script.calls == 1
    assert sleeps.delays == []


async def test_post_refused_before_sending_is_retried() -> None:
    script, sleeps = Script([conn_error(sent=False), "created"]), Sleeps()
    assert await run(script, sleeps, idempotent=False) == "created"
    assert script.calls == 2


@pytest.mark.parametrize(
    "exc", [timeout_error(sent=True), conn_error(sent=True)], ids=["timeout", "reset"]
)
async def test_post_that_may_have_been_sent_is_called_once(exc: Exception) -> None:
    script, sleeps = Script([exc, "created"]), Sleeps()
    with pytest.raises(APIConnectionError) as info:
        await run(script, sleeps, idempotent=False)
    assert info.value is exc
    assert script.calls == 1


async def test_x_should_retry_true_retries_a_409_and_false_stops_a_503() -> None:
    script, sleeps = Script([http_error(409, **{"x-should-retry": "true"}), "ok"]), Sleeps()
    assert await run(script, sleeps) == "ok"
    assert script.calls == 2
    refused = http_error(503, **{"x-should-retry": "false"})
    script, sleeps = Script([refused, "ok"]), Sleeps()
    with pytest.raises(APIStatusError) as info:
        await run(script, sleeps)
    assert info.value is refused
    assert (script.calls, sleeps.delays) == (1, [])


async def test_x_should_retry_true_on_a_post_500_sends_it_again() -> None:
    told = http_error(500, **{"x-should-retry": "true"})
    script, sleeps = Script([told, "created"]), Sleeps()
    assert await run(script, sleeps, idempotent=False) == "created"
    assert script.calls == 2


async def test_x_should_retry_true_on_a_post_504_is_not_sent_again() -> None:
    told = http_error(504, **{"x-should-retry": "true"})
    script, sleeps = Script([told, "created"]), Sleeps()
    with pytest.raises(APIStatusError) as info:
        await run(script, sleeps, idempotent=False)
    assert info.value is told
    assert script.calls == 1


async def test_post_retried_on_429() -> None:
    script, sleeps = Script([rate_limited(None), "created"]), Sleeps()
    assert await run(script, sleeps, idempotent=False) == "created"
    assert script.calls == 2


async def test_post_stops_retrying_when_a_retry_fails_after_sending() -> None:
    script, sleeps = Script([conn_error(sent=False), http_error(502), "created"]), Sleeps()
    with pytest.raises(APIStatusError, match="502"):
        await run(script, sleeps, idempotent=False)
    assert script.calls == 2


async def test_retry_after_is_the_floor_of_the_delay() -> None:
    script, sleeps = Script([rate_limited(5), rate_limited(1.5), "ok"]), Sleeps()
    assert await run(script, sleeps) == "ok"
    # Backoff alone stays under backoff_max (2 s); the server's wait wins when longer.
    assert sleeps.delays[0] == 5.0
    assert 1.5 <= sleeps.delays[1] <= POLICY.backoff_max


async def test_retry_after_on_5xx_is_honoured() -> None:
    script, sleeps = Script([http_error(503, **{"Retry-After": "9"}), "ok"]), Sleeps()
    assert await run(script, sleeps) == "ok"
    assert sleeps.delays == [9.0]


async def test_retry_after_above_cap_raises_at_once() -> None:
    error = rate_limited(120)
    script, sleeps = Script([error, "ok"]), Sleeps()
    with pytest.raises(RateLimitError) as info:
        await run(script, sleeps)
    assert info.value is error
    assert info.value.retry_after == 120.0
    assert script.calls == 1
    assert sleeps.delays == []


async def test_retry_after_above_cap_on_a_later_attempt_raises_it() -> None:
    script, sleeps = Script([http_error(503), rate_limited(600), "ok"]), Sleeps()
    with pytest.raises(RateLimitError) as info:
        await run(script, sleeps)
    assert info.value.retry_after == 600.0
    assert script.calls == 2
    assert len(sleeps.delays) == 1


async def test_total_time_bound_stops_a_wait_that_would_overrun_it() -> None:
    policy = RetryPolicy(max_retries=5, max_total=10.0, max_retry_after=60.0)
    script, sleeps = Script([rate_limited(30), "ok"]), Sleeps()
    with pytest.raises(RateLimitError):
        await run(script, sleeps, policy=policy)
    assert script.calls == 1
    assert sleeps.delays == []


async def test_cancelled_error_is_not_retried() -> None:
    script, sleeps = Script([asyncio.CancelledError(), "ok"]), Sleeps()
    with pytest.raises(asyncio.CancelledError):
        await run(script, sleeps)
    assert script.calls == 1


async def test_cancelled_error_during_a_retry_propagates() -> None:
    script, sleeps = Script([http_error(503), asyncio.CancelledError(), "ok"]), Sleeps()
    with pytest.raises(asyncio.CancelledError):
        await run(script, sleeps)
    assert script.calls == 2
    assert len(sleeps.delays) == 1


async def test_cancelled_sleep_propagates() -> None:
    async def cancelled_sleep(delay: float) -> None:
        raise asyncio.CancelledError

    script = Script([http_error(503), "ok"])
    with pytest.raises(asyncio.CancelledError):
        await call_with_retries(
            script, idempotent=True, policy=POLICY, sleep=cancelled_sleep, what="GET /v3/x"
        )
    assert script.calls == 1


@pytest.mark.parametrize("after_retry", [False, True], ids=["first-call", "after-retry"])
async def test_foreign_exception_propagates_unchanged(after_retry: bool) -> None:
    bug = KeyError("bug")
    outcomes: list[object] = [http_error(503), bug, "ok"] if after_retry else [bug, "ok"]
    script, sleeps = Script(outcomes), Sleeps()
    with pytest.raises(KeyError) as info:
        await run(script, sleeps)
    assert info.value is bug
    assert script.calls == len(outcomes) - 1


async def test_response_validation_error_is_not_retried() -> None:
    script, sleeps = Script([ResponseValidationError("bad", body="<"), "ok"]), Sleeps()
    with pytest.raises(ResponseValidationError):
        await run(script, sleeps)
    assert script.calls == 1


async def test_max_retries_zero_means_one_call() -> None:
    script, sleeps = Script([http_error(503), "ok"]), Sleeps()
    with pytest.raises(APIStatusError):
        await run(script, sleeps, policy=RetryPolicy(max_retries=0))
    assert script.calls == 1
    assert sleeps.delays == []


async def test_retries_are_logged_without_secrets(caplog: pytest.LogCaptureFixture) -> None:
    script, sleeps = Script([http_error(503), "ok"]), Sleeps()
    with caplog.at_level(logging.DEBUG, logger="devin_async"):
        await run(script, sleeps)
    messages = [r.getMessage() for r in caplog.records if r.name == "devin_async"]
    retries = [m for m in messages if m.startswith("retrying")]
    assert retries == [retries[0]]
    assert "retrying GET /v3/x" in retries[0]
    assert "HTTP 503" in retries[0]


# ------------------------------------------------------------------ poll_delay


def test_poll_delay_grows_and_is_capped() -> None:
    delays = [poll_delay(n, 1.0, 8.0) for n in range(1, 7)]
    # attempt n: 1 * 2**(n-1) plus up to 0.5 s of jitter, never above the cap.
    ranges = [(1.0, 1.5), (2.0, 2.5), (4.0, 4.5), (8.0, 8.0), (8.0, 8.0), (8.0, 8.0)]
    for delay, (low, high) in zip(delays, ranges, strict=True):
        assert low <= delay <= high


def test_poll_delay_cap_below_first_uses_first() -> None:
    assert [poll_delay(n, 5.0, 1.0) for n in range(1, 4)] == [5.0, 5.0, 5.0]


def test_poll_delay_survives_very_long_waits() -> None:
    assert poll_delay(5_000, 2.0, 30.0) == 30.0
    assert poll_delay(10**9, 2.0, 30.0) == 30.0


def test_poll_delay_is_pure() -> None:
    # One caller's progress never moves another's: the attempt is the caller's.
    for _ in range(4):
        poll_delay(5, 1.0, 64.0)
    assert 1.0 <= poll_delay(1, 1.0, 64.0) <= 1.5
    assert 16.0 <= poll_delay(5, 1.0, 64.0) <= 16.5


# ------------------------------------------------------------------ create_failure


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (timeout_error(sent=True), "unanswered"),
        (conn_error(sent=True), "unanswered"),
        (http_error(504), "unanswered"),
        (ResponseValidationError("bad", body=""), "unanswered"),
        (timeout_error(sent=False), "final"),
        (conn_error(sent=False), "final"),
        (http_error(408), "answered"),
        (http_error(500), "answered"),
        (http_error(502), "answered"),
        (http_error(503), "answered"),
        (rate_limited(None), "final"),
        (http_error(400), "final"),
        (http_error(401), "final"),
        (http_error(403), "final"),
        (http_error(404), "final"),
        (http_error(409), "final"),
        (http_error(422), "final"),
        (http_error(501), "final"),
        (ValueError("bug"), "final"),
        (asyncio.CancelledError(), "final"),
    ],
    ids=[
        "timeout-after-sending",
        "reset-after-sending",
        "504-gateway-gave-up",
        "unreadable-2xx",
        "timeout-before-sending",
        "refused-before-sending",
        "408",
        "500",
        "502",
        "503",
        "429",
        "400",
        "401",
        "403",
        "404",
        "409",
        "422",
        "501",
        "foreign-error",
        "cancelled",
    ],
)
def test_create_failure(exc: BaseException, expected: str) -> None:
    assert create_failure(exc) == expected


@pytest.mark.parametrize(
    ("status", "told", "expected"),
    [
        (500, "false", "final"),
        (503, "false", "final"),
        (500, "true", "final"),
        (409, "true", "final"),
        (504, "true", "unanswered"),
        (504, "false", "unanswered"),
    ],
    ids=["500-no", "503-no", "500-yes", "409-yes", "504-yes", "504-no"],
)
def test_create_failure_with_x_should_retry(status: int, told: str, expected: str) -> None:
    # An answered failure the server spoke about is final here: "false" forbids sending
    # it again, and "true" was already honoured by the request's own retries. A 504 is
    # no answer from the server at all: it is looked up, whatever the gateway says.
    assert create_failure(http_error(status, **{"x-should-retry": told})) == expected


# ------------------------------------------------------------------ call_exactly_once


class Lookup:
    """A lookup that answers from a script (None: the earlier attempt did not land)."""

    def __init__(self, answers: Sequence[object]) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def __call__(self, failure: BaseException) -> object:
        assert isinstance(failure, APIStatusError | APIConnectionError)  # what it checks
        answer = self.answers[min(self.calls, len(self.answers) - 1)] if self.answers else None
        self.calls += 1
        if isinstance(answer, BaseException):
            raise answer
        return answer


async def run_once(
    script: Script, lookup: Lookup, sleeps: Sleeps, *, policy: RetryPolicy = POLICY
) -> object:
    return await call_exactly_once(
        script, lookup, policy=policy, sleep=sleeps, what="POST /v3/x/sessions"
    )


async def test_exactly_once_success_first_try_never_looks_up() -> None:
    script, lookup, sleeps = Script(["created"]), Lookup([]), Sleeps()
    assert await run_once(script, lookup, sleeps) == "created"
    assert (script.calls, lookup.calls) == (1, 0)
    assert sleeps.delays == []


@pytest.mark.parametrize("status", [408, 500, 502, 503])
async def test_exactly_once_returns_what_landed_after_an_answered_failure(
    status: int, caplog: pytest.LogCaptureFixture
) -> None:
    script, lookup, sleeps = Script([http_error(status), "second"]), Lookup(["landed"]), Sleeps()
    with caplog.at_level(logging.DEBUG, logger="devin_async"):
        assert await run_once(script, lookup, sleeps) == "landed"
    assert (script.calls, lookup.calls) == (1, 1)
    assert len(sleeps.delays) == 1
    assert any("not sent again" in r.getMessage() for r in caplog.records)


async def test_exactly_once_sends_again_when_nothing_landed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    script, lookup, sleeps = Script([http_error(503), "created"]), Lookup([None]), Sleeps()
    with caplog.at_level(logging.DEBUG, logger="devin_async"):
        assert await run_once(script, lookup, sleeps) == "created"
    assert (script.calls, lookup.calls) == (2, 1)
    assert any("sending it again" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "error",
    [
        http_error(400),
        http_error(401),
        http_error(403),
        http_error(404),
        http_error(409),
        http_error(422),
        rate_limited(1),
        conn_error(sent=False),
        timeout_error(sent=True),
        conn_error(sent=True),
        http_error(504),
    ],
    ids=["400", "401", "403", "404", "409", "422", "429", "refused", "timeout", "reset", "504"],
)
async def test_exactly_once_never_looks_up_or_resends_what_send_raised_itself(
    error: Exception,
) -> None:
    # 429s and refused connections are retried inside send (call_with_retries), and
    # unanswered requests are the sender's to handle (the grace window): this loop
    # never sends any of them again.
    script, lookup, sleeps = Script([error, "created"]), Lookup(["landed"]), Sleeps()
    with pytest.raises(type(error)) as info:
        await run_once(script, lookup, sleeps)
    assert info.value is error
    assert (script.calls, lookup.calls) == (1, 0)
    assert sleeps.delays == []


async def test_exactly_once_gives_up_after_max_retries_plus_one_attempts() -> None:
    errors = [http_error(502), http_error(500), http_error(503), http_error(408)]
    script, lookup, sleeps = Script([*errors, "created"]), Lookup([None]), Sleeps()
    with pytest.raises(APIStatusError) as info:
        await run_once(script, lookup, sleeps)
    assert info.value is errors[-1]
    assert script.calls == POLICY.max_retries + 1
    # before every attempt but the first, and once more after the last one failed
    assert lookup.calls == POLICY.max_retries + 1
    assert len(sleeps.delays) == POLICY.max_retries


async def test_exactly_once_last_lookup_finds_what_the_last_attempt_made() -> None:
    errors = [http_error(502)] * (POLICY.max_retries + 1)
    answers = [None] * POLICY.max_retries + ["landed"]
    script, lookup, sleeps = Script(errors), Lookup(answers), Sleeps()
    assert await run_once(script, lookup, sleeps) == "landed"
    assert (script.calls, lookup.calls) == (POLICY.max_retries + 1, POLICY.max_retries + 1)


async def test_exactly_once_with_no_retries_raises_the_first_answered_error() -> None:
    error = http_error(503)
    script, lookup, sleeps = Script([error, "created"]), Lookup(["landed"]), Sleeps()
    with pytest.raises(APIStatusError) as info:
        await run_once(script, lookup, sleeps, policy=RetryPolicy(max_retries=0))
    assert info.value is error
    assert (script.calls, lookup.calls) == (1, 0)
    assert sleeps.delays == []


async def test_exactly_once_raises_a_final_failure_after_a_lookup() -> None:
    error = http_error(422)
    script, lookup, sleeps = Script([http_error(502), error]), Lookup([None]), Sleeps()
    with pytest.raises(APIStatusError) as info:
        await run_once(script, lookup, sleeps)
    assert info.value is error
    assert (script.calls, lookup.calls) == (2, 1)


def _context_chain(exc: BaseException) -> list[str]:
    names: list[str] = []
    seen = exc.__context__
    while seen is not None and len(names) < 10:
        names.append(type(seen).__name__)
        seen = seen.__context__
    return names


@pytest.mark.parametrize(
    ("lookup_error", "lookups"),
    [
        (http_error(403), 1),
        (http_error(503), POLICY.max_retries),
        (ResponseValidationError("bad", body=""), POLICY.max_retries),
    ],
    ids=["denied-ends-it", "unavailable-is-tried-again", "unreadable-is-tried-again"],
)
async def test_exactly_once_reports_the_requests_failure_when_its_lookup_fails(
    lookup_error: Exception, lookups: int
) -> None:
    # Regression: the lookup's error used to be raised, hiding why the create failed
    # (the test failed before the fix); and nothing may be sent again without knowing
    # whether the first one landed.
    post_error = http_error(502)
    script, lookup, sleeps = Script([post_error, "created"]), Lookup([lookup_error]), Sleeps()
    with pytest.raises(APIStatusError) as info:
        await run_once(script, lookup, sleeps)
    assert info.value is post_error
    assert (script.calls, lookup.calls) == (1, lookups)
    assert any(type(lookup_error).__name__ in note for note in info.value.__notes__)
    assert "_LookupFailed" not in _context_chain(info.value)


async def test_exactly_once_last_lookup_failure_reports_the_last_request_error() -> None:
    errors = [http_error(502)] * POLICY.max_retries + [http_error(503)]
    answers: list[object] = [None] * POLICY.max_retries + [http_error(403)]
    script, lookup, sleeps = Script(errors), Lookup(answers), Sleeps()
    with pytest.raises(APIStatusError) as info:
        await run_once(script, lookup, sleeps)
    assert info.value is errors[-1]
    assert any("PermissionDeniedError" in note for note in info.value.__notes__)
    assert "_LookupFailed" not in _context_chain(info.value)


async def test_exactly_once_tries_a_failed_lookup_again_and_never_resends_blindly() -> None:
    unreadable = ResponseValidationError("bad", body="")
    script = Script([http_error(502), "created"])
    lookup, sleeps = Lookup([unreadable, None]), Sleeps()
    reported: list[tuple[str, int]] = []
    result = await call_exactly_once(
        script,
        lookup,
        policy=POLICY,
        sleep=sleeps,
        what="POST /v3/x/sessions",
        on_retry=lambda exc, _delay, attempt: reported.append((type(exc).__name__, attempt)),
    )
    assert result == "created"
    assert (script.calls, lookup.calls) == (2, 2)  # sent again only after a clean "no"
    # Hooks hear of the lookup's failure, not of a private wrapper.
    assert reported == [("InternalServerError", 1), ("ResponseValidationError", 2)]


@pytest.mark.parametrize("status", [500, 502, 503, 408])
async def test_exactly_once_neither_looks_up_nor_resends_what_the_server_said_not_to_retry(
    status: int,
) -> None:
    error = http_error(status, **{"x-should-retry": "false"})
    script, lookup, sleeps = Script([error, "created"]), Lookup(["landed"]), Sleeps()
    with pytest.raises(APIStatusError) as info:
        await run_once(script, lookup, sleeps)
    assert info.value is error
    assert (script.calls, lookup.calls) == (1, 0)
