"""The exception tree: hierarchy and the data each error carries."""

from __future__ import annotations

import ast
import inspect

import attrs
import pytest
from multidict import CIMultiDict

from devin_async import _errors
from devin_async._errors import (
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
    StatusInfo,
    UnprocessableEntityError,
    ValidationDetail,
)
from devin_async._models import Session, SessionStatus

EXCEPTION_CLASSES = [
    obj
    for obj in vars(_errors).values()
    if inspect.isclass(obj)
    and issubclass(obj, BaseException)
    and obj.__module__ in {_errors.__name__, "devin_async"}
]


def _info(status: int = 400) -> StatusInfo:
    return {
        "status_code": status,
        "body": {"detail": "nope"},
        "headers": CIMultiDict({"X-Request-Id": "req-1"}),
        "request_id": "req-1",
        "method": "GET",
        "url": "https://api.devin.ai/v3/organizations/org-1/sessions/devin-1",
    }


def test_tree_is_the_documented_one() -> None:
    # Also guards the discovery that feeds the parametrized tests below.
    assert {cls.__name__ for cls in EXCEPTION_CLASSES} == {
        "DevinError",
        "ConfigurationError",
        "ClientClosedError",
        "APIConnectionError",
        "APITimeoutError",
        "APIStatusError",
        "BadRequestError",
        "AuthenticationError",
        "PermissionDeniedError",
        "NotFoundError",
        "ConflictError",
        "UnprocessableEntityError",
        "RateLimitError",
        "InternalServerError",
        "ResponseValidationError",
        "AwaitTimeoutError",
        "CreateOutcomeUnknownError",
    }
    assert {cls.__name__ for cls in EXCEPTION_CLASSES} <= set(_errors.__all__)


@pytest.mark.parametrize("cls", EXCEPTION_CLASSES, ids=lambda c: c.__name__)
def test_every_error_is_a_devin_error(cls: type[BaseException]) -> None:
    assert issubclass(cls, DevinError)


@pytest.mark.parametrize(
    ("cls", "parent"),
    [
        (ConfigurationError, ValueError),
        (ClientClosedError, RuntimeError),
        (AwaitTimeoutError, TimeoutError),
        (APITimeoutError, APIConnectionError),
        (BadRequestError, APIStatusError),
        (AuthenticationError, APIStatusError),
        (PermissionDeniedError, APIStatusError),
        (NotFoundError, APIStatusError),
        (ConflictError, APIStatusError),
        (UnprocessableEntityError, APIStatusError),
        (RateLimitError, APIStatusError),
        (InternalServerError, APIStatusError),
    ],
    ids=lambda c: c.__name__,
)
def test_hierarchy(cls: type[BaseException], parent: type[BaseException]) -> None:
    assert issubclass(cls, parent)


@pytest.mark.parametrize(
    ("cls", "not_parent"),
    [
        (APITimeoutError, TimeoutError),  # a per-request timeout is a connection error
        (APIStatusError, APIConnectionError),
        (ResponseValidationError, APIStatusError),
        (AwaitTimeoutError, APIConnectionError),
    ],
    ids=lambda c: c.__name__,
)
def test_branches_do_not_overlap(cls: type[BaseException], not_parent: type[BaseException]) -> None:
    assert not issubclass(cls, not_parent)


def test_errors_module_is_a_leaf() -> None:
    """Outside TYPE_CHECKING, _errors imports nothing from the package (no import cycles)."""
    tree = ast.parse(inspect.getsource(_errors))
    relative = [
        node
        for node in tree.body  # top level only: the TYPE_CHECKING block is an `if`
        if isinstance(node, ast.ImportFrom) and (node.level > 0 or node.module == "devin_async")
    ]
    assert relative == []


def test_connection_error_carries_request_data() -> None:
    err = APIConnectionError("boom", method="POST", url="https://h/v3/x", request_sent=False)
    assert str(err) == "boom"
    assert (err.method, err.url, err.request_sent) == ("POST", "https://h/v3/x", False)


def test_timeout_error_carries_request_data() -> None:
    err = APITimeoutError("slow", method="GET", url="https://h/v3/y", request_sent=True)
    assert (err.method, err.url, err.request_sent) == ("GET", "https://h/v3/y", True)


@pytest.mark.parametrize(
    "cls",
    [
        APIStatusError,
        BadRequestError,
        AuthenticationError,
        PermissionDeniedError,
        NotFoundError,
        ConflictError,
        UnprocessableEntityError,
        RateLimitError,
        InternalServerError,
    ],
    ids=lambda c: c.__name__,
)
def test_status_error_carries_response_data(cls: type[APIStatusError]) -> None:
    info = _info()
    err = cls("GET /x -> HTTP 400: nope", **info)
    assert str(err) == "GET /x -> HTTP 400: nope"
    assert err.status_code == 400
    assert err.body == {"detail": "nope"}
    assert err.headers["x-request-id"] == "req-1"
    assert err.request_id == "req-1"
    assert err.method == "GET"
    assert err.url == info["url"]


def test_unprocessable_entity_carries_field_errors() -> None:
    detail = ValidationDetail(loc=("body", "prompt"), msg="Field required", type="missing")
    err = UnprocessableEntityError("invalid", errors=(detail,), **_info(422))
    assert err.errors == (detail,)
    assert UnprocessableEntityError("invalid", **_info(422)).errors == ()


def test_validation_detail_is_frozen_value() -> None:
    detail = ValidationDetail(loc=("body", 0), msg="m", type="t")
    assert detail == ValidationDetail(loc=("body", 0), msg="m", type="t")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        detail.msg = "other"  # type: ignore[misc]


def test_rate_limit_error_carries_retry_after() -> None:
    assert RateLimitError("slow down", retry_after=2.5, **_info(429)).retry_after == 2.5
    assert RateLimitError("slow down", **_info(429)).retry_after is None


def test_response_validation_error_carries_body_snippet() -> None:
    err = ResponseValidationError("not JSON", body="<html>")
    assert (str(err), err.body) == ("not JSON", "<html>")


def test_await_timeout_error_carries_last_session() -> None:
    session = Session(
        session_id="devin-1",
        url="https://app.devin.ai/sessions/1",
        status=SessionStatus.RUNNING,
        org_id="org-1",
        created_at=1,
        updated_at=2,
        acus_consumed=0.0,
    )
    err = AwaitTimeoutError("late", session=session, elapsed=12.5, polls=4)
    assert (err.session, err.elapsed, err.polls) == (session, 12.5, 4)
    with pytest.raises(TimeoutError):
        raise err


def test_await_timeout_error_without_any_session() -> None:
    err = AwaitTimeoutError("late", session=None, elapsed=1.0, polls=0)
    assert err.session is None
    assert err.polls == 0


def test_await_timeout_error_carries_the_last_poll_failure() -> None:
    failure = TimeoutError("poll timed out")
    err = AwaitTimeoutError("late", session=None, elapsed=3.0, polls=2, last_error=failure)
    assert err.last_error is failure
    assert AwaitTimeoutError("late", session=None, elapsed=1.0, polls=0).last_error is None


def test_create_outcome_unknown_error_carries_what_was_looked_for() -> None:
    err = CreateOutcomeUnknownError(
        "create outcome unknown", marker="t-1", idempotency_key="k-1", elapsed=4.5, lookups=3
    )
    assert str(err) == "create outcome unknown"
    assert (err.marker, err.idempotency_key, err.elapsed, err.lookups) == ("t-1", "k-1", 4.5, 3)
    untagged = CreateOutcomeUnknownError(
        "unknown", marker=None, idempotency_key=None, elapsed=0.0, lookups=0
    )
    assert (untagged.marker, untagged.idempotency_key) == (None, None)
    assert isinstance(err, DevinError)
    assert not isinstance(err, APIConnectionError)
