"""The settled predicate and the transient-failure decision, as tables."""

from __future__ import annotations

import pytest
from fakes import make_session
from multidict import CIMultiDict

from devin_async._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    DevinError,
    ResponseValidationError,
)
from devin_async._models import Message, Session, SessionStatus, StatusDetail
from devin_async._protocol import Request, Response, status_error
from devin_async._retry import is_transient
from devin_async._waiting.settle import (
    ReplyProof,
    is_settled,
    is_settled_or_awaiting_approval,
    wait_timed_out,
)

URL = "https://api.devin.ai/v3/organizations/org-1/sessions/devin-1"

# The user's design card, written out independently of the module's constants.
SETTLED_STATUSES = {"exit", "error", "suspended"}
SETTLED_DETAILS = {"finished", "waiting_for_user"}

STATUSES: list[SessionStatus | str] = [*SessionStatus, "some_new_state"]
DETAILS: list[StatusDetail | str | None] = [*StatusDetail, None, "some_new_detail"]
PAIRS = [(status, detail) for status in STATUSES for detail in DETAILS]


def http_error(status: int, **headers: str) -> APIStatusError:
    request = Request("GET", "/v3/organizations/org-1/sessions/devin-1")
    return status_error(request, Response(status, CIMultiDict(headers), b""), URL)


# ------------------------------------------------------------------ predicates


@pytest.mark.parametrize(("status", "detail"), PAIRS, ids=[f"{s}/{d}" for s, d in PAIRS])
def test_is_settled(status: str, detail: str | None) -> None:
    expected = status in SETTLED_STATUSES or detail in SETTLED_DETAILS
    assert is_settled(make_session(status, detail)) is expected


@pytest.mark.parametrize(("status", "detail"), PAIRS, ids=[f"{s}/{d}" for s, d in PAIRS])
def test_is_settled_or_awaiting_approval(status: str, detail: str | None) -> None:
    expected = (
        status in SETTLED_STATUSES or detail in SETTLED_DETAILS or detail == "waiting_for_approval"
    )
    assert is_settled_or_awaiting_approval(make_session(status, detail)) is expected


def test_waiting_for_approval_is_not_settled_by_default() -> None:
    session = make_session("running", "waiting_for_approval")
    assert is_settled(session) is False
    assert is_settled_or_awaiting_approval(session) is True


@pytest.mark.parametrize(
    ("status", "detail", "expected"),
    [("exit", None, True), ("running", "finished", True), ("running", "working", False)],
    ids=["exit", "finished", "working"],
)
def test_plain_strings_behave_like_members(status: str, detail: str, expected: bool) -> None:
    # A session built by hand (or a value the converter kept as str) still compares.
    session = make_session(str(status), detail)
    assert type(session.status) is str
    assert is_settled(session) is expected


# ------------------------------------------------------------------ the wait loop


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (APIConnectionError("x", method="GET", url=URL, request_sent=True), True),
        (APITimeoutError("x", method="GET", url=URL, request_sent=True), True),
        (ResponseValidationError("x", body="{"), True),
        (http_error(408), True),
        (http_error(429), True),
        (http_error(500), True),
        (http_error(503), True),
        (http_error(400), False),
        (http_error(401), False),
        (http_error(403), False),
        (http_error(404), False),
        (http_error(422), False),
    ],
    ids=[
        "conn",
        "timeout",
        "undecodable",
        "408",
        "429",
        "500",
        "503",
        "400",
        "401",
        "403",
        "404",
        "422",
    ],
)
def test_is_transient(error: DevinError, transient: bool) -> None:
    assert is_transient(error) is transient


# ------------------------------------------------------------------ the deadline's error


@pytest.mark.parametrize(
    ("seen", "error", "expected"),
    [
        (None, None, "session devin-1 did not settle within 5.0s"),
        (
            Session(
                session_id="devin-1",
                url="u",
                status="running",
                org_id="o",
                created_at=1,
                updated_at=1,
                acus_consumed=0.0,
                status_detail="working",
            ),
            None,
            "session devin-1 did not settle within 5.0s (last seen: running/working)",
        ),
        (
            None,
            ResponseValidationError("response is not JSON", body="<html>"),
            "session devin-1 did not settle within 5.0s; the last poll failed: "
            "ResponseValidationError: response is not JSON",
        ),
    ],
    ids=["nothing-seen", "a-state-seen", "polls-failed"],
)
def test_wait_timed_out_names_what_it_last_saw(
    seen: Session | None, error: BaseException | None, expected: str
) -> None:
    exc = wait_timed_out("devin-1", 5.0, session=seen, elapsed=5.5, polls=3, last_error=error)
    assert str(exc) == expected
    assert (exc.session, exc.elapsed, exc.polls, exc.last_error) == (seen, 5.5, 3, error)


# ------------------------------------------------------------------ ReplyProof


def _message(n: int, source: str, created_at: int) -> Message:
    return Message(event_id=f"e{n}", message=f"m{n}", source=source, created_at=created_at)


def test_a_question_asked_before_the_reply_in_the_same_second_is_no_proof() -> None:
    # Prompt, question and reply share one second: only a message after the reply counts.
    proof = ReplyProof(100)
    asked = [_message(1, "user", 100), _message(2, "devin", 100), _message(3, "user", 100)]
    assert proof.feed(asked) is False
    assert proof.feed([_message(4, "devin", 100)]) is True
    assert proof.last_event_id == "e4"


def test_a_later_reply_takes_back_an_earlier_answer() -> None:
    proof = ReplyProof(100)
    assert proof.feed([_message(1, "user", 100), _message(2, "devin", 101)]) is True
    assert proof.feed([_message(3, "user", 102)]) is False  # answered, then asked again


def test_a_devin_message_after_the_reply_time_proves_it_without_the_reply_listed() -> None:
    assert ReplyProof(100).feed([_message(1, "devin", 101)]) is True
    assert ReplyProof(100).feed([_message(1, "devin", 100)]) is False
