"""Every exported exception survives pickle and copy with all its attributes.

Errors cross process pools, task queues and log shippers, which pickle them; a
response's headers are a read-only ``CIMultiDictProxy`` that does not pickle itself.
"""

from __future__ import annotations

import concurrent.futures
import copy
import inspect
import multiprocessing
import pickle
import traceback
from collections.abc import Callable, Iterator, Mapping

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

import devin_async
from devin_async import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    AwaitTimeoutError,
    BadRequestError,
    ClientClosedError,
    ConfigurationError,
    ConflictError,
    CreateOutcomeUnknownError,
    DevinError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseValidationError,
    Session,
    SessionStatus,
    UnprocessableEntityError,
    ValidationDetail,
)
from devin_async._errors import StatusInfo

URL = "https://api.devin.ai/v3/organizations/org-1/sessions/devin-1"


def _headers() -> CIMultiDictProxy[str]:
    # What aiohttp gives: a read-only proxy, with a repeated header.
    raw = CIMultiDict([("X-Request-Id", "req-1"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")])
    return CIMultiDictProxy(raw)


def _info(status: int) -> StatusInfo:
    return {
        "status_code": status,
        "body": {"detail": [{"loc": ["body", "prompt"], "msg": "m", "type": "t"}]},
        "headers": _headers(),
        "request_id": "req-1",
        "method": "POST",
        "url": URL,
    }


def _session() -> Session:
    return Session(
        session_id="devin-1",
        url="https://app.devin.ai/sessions/1",
        status=SessionStatus.RUNNING,
        org_id="org-1",
        created_at=1,
        updated_at=2,
        acus_consumed=0.5,
    )


def _status(cls: type[APIStatusError], status: int) -> Callable[[], DevinError]:
    return lambda: cls(f"POST {URL} -> HTTP {status}", **_info(status))


SAMPLES: dict[type[DevinError], Callable[[], DevinError]] = {
    DevinError: lambda: DevinError("base"),
    ConfigurationError: lambda: ConfigurationError("bad setting"),
    ClientClosedError: lambda: ClientClosedError("closed"),
    APIConnectionError: lambda: APIConnectionError(
        "reset", method="GET", url=URL, request_sent=True
    ),
    APITimeoutError: lambda: APITimeoutError("slow", method="GET", url=URL, request_sent=False),
    APIStatusError: _status(APIStatusError, 418),
    BadRequestError: _status(BadRequestError, 400),
    AuthenticationError: _status(AuthenticationError, 401),
    PermissionDeniedError: _status(PermissionDeniedError, 403),
    NotFoundError: _status(NotFoundError, 404),
    ConflictError: _status(ConflictError, 409),
    UnprocessableEntityError: lambda: UnprocessableEntityError(
        "invalid",
        errors=(ValidationDetail(loc=("body", "prompt"), msg="m", type="t"),),
        **_info(422),
    ),
    RateLimitError: lambda: RateLimitError(
        "slow down", retry_after=2.5, should_retry=True, **_info(429)
    ),
    InternalServerError: _status(InternalServerError, 503),
    ResponseValidationError: lambda: ResponseValidationError("not JSON", body="<html>"),
    AwaitTimeoutError: lambda: AwaitTimeoutError(
        "late",
        session=_session(),
        elapsed=12.5,
        polls=4,
        last_error=APITimeoutError("poll", method="GET", url=URL, request_sent=True),
    ),
    CreateOutcomeUnknownError: lambda: CreateOutcomeUnknownError(
        "unknown", marker="devin-async:abc", idempotency_key="k-1", elapsed=3.0, lookups=2
    ),
}

EXPORTED = [
    obj
    for name in devin_async.__all__
    if inspect.isclass(obj := getattr(devin_async, name)) and issubclass(obj, BaseException)
]


def _round_trip(err: DevinError, protocol: int = pickle.DEFAULT_PROTOCOL) -> DevinError:
    # Only bytes this test just made are loaded.
    back: DevinError = pickle.loads(pickle.dumps(err, protocol=protocol))  # noqa: S301
    return back


def _comparable(value: object) -> object:
    if isinstance(value, BaseException):
        return (type(value), value.args, _comparable(vars(value)))
    if isinstance(value, Mapping):
        # Headers keep their order and repeated keys; any other mapping compares as dict.
        items = list(value.items())
        return items if isinstance(value, CIMultiDict | CIMultiDictProxy) else dict(items)
    return value


def _state(err: BaseException) -> object:
    return (type(err), err.args, str(err), {k: _comparable(v) for k, v in vars(err).items()})


def test_every_exported_exception_has_a_sample() -> None:
    assert set(EXPORTED) == set(SAMPLES)


@pytest.mark.parametrize("cls", EXPORTED, ids=lambda c: c.__name__)
@pytest.mark.parametrize("protocol", [2, pickle.DEFAULT_PROTOCOL, pickle.HIGHEST_PROTOCOL])
def test_pickle_round_trip_keeps_every_attribute(cls: type[DevinError], protocol: int) -> None:
    err = SAMPLES[cls]()
    back = _round_trip(err, protocol)
    assert _state(back) == _state(err)
    assert isinstance(back, cls)


@pytest.mark.parametrize("cls", EXPORTED, ids=lambda c: c.__name__)
@pytest.mark.parametrize("copier", [copy.copy, copy.deepcopy], ids=["copy", "deepcopy"])
def test_copy_keeps_every_attribute(
    cls: type[DevinError], copier: Callable[[DevinError], DevinError]
) -> None:
    err = SAMPLES[cls]()
    duplicate = copier(err)
    assert duplicate is not err
    assert _state(duplicate) == _state(err)


def test_pickled_headers_stay_case_insensitive_and_the_original_is_untouched() -> None:
    err = SAMPLES[RateLimitError]()
    assert isinstance(err, RateLimitError)
    back = _round_trip(err)
    assert isinstance(back, RateLimitError)
    assert back.headers["x-request-id"] == "req-1"
    assert back.headers.getall("set-cookie") == ["a=1", "b=2"]  # type: ignore[attr-defined]
    assert isinstance(err.headers, CIMultiDictProxy)  # pickling did not replace it


def test_notes_survive_pickle() -> None:
    err = SAMPLES[NotFoundError]()
    err.add_note("while fetching the nightly report")
    back = _round_trip(err)
    assert back.__notes__ == ["while fetching the nightly report"]


def _fail_in_worker(status: int) -> None:
    raise RateLimitError(f"HTTP {status}", retry_after=1.5, **_info(status))


def test_an_error_crosses_a_process_pool() -> None:
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        future = pool.submit(_fail_in_worker, 429)
        with pytest.raises(RateLimitError) as info:
            future.result(timeout=60)
    err = info.value
    assert (err.status_code, err.retry_after, err.request_id) == (429, 1.5, "req-1")
    assert (err.method, err.url, str(err)) == ("POST", URL, "HTTP 429")
    assert err.headers.getall("Set-Cookie") == ["a=1", "b=2"]  # type: ignore[attr-defined]


class _FrozenHeaders(Mapping[str, str]):
    """A picklable mapping without ``copy``: kept as it is."""

    def __init__(self, items: dict[str, str]) -> None:
        self._items = items

    def __getitem__(self, key: str) -> str:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


def test_a_mapping_without_copy_is_pickled_as_it_is() -> None:
    info = _info(404)
    info["headers"] = _FrozenHeaders({"x-request-id": "req-1"})
    back = _round_trip(NotFoundError("gone", **info))
    assert isinstance(back, NotFoundError)
    assert isinstance(back.headers, _FrozenHeaders)
    assert dict(back.headers) == {"x-request-id": "req-1"}


@pytest.mark.parametrize("cls", EXPORTED, ids=lambda c: c.__name__)
def test_exceptions_are_shown_under_the_public_module(cls: type[DevinError]) -> None:
    assert cls.__module__ == "devin_async"
    # Pickle names the class by its public module, which holds it.
    assert f"cdevin_async\n{cls.__name__}\n".encode() in pickle.dumps(SAMPLES[cls](), protocol=0)
    shown = "".join(traceback.format_exception_only(SAMPLES[cls]()))
    assert shown.startswith(f"devin_async.{cls.__name__}")
