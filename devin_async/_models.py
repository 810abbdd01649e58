"""The shapes of the Devin v3 sessions API, as frozen attrs classes.

Models are shape only: every wire concern (open enums, omitting unset request
fields, strict JSON types) lives in ``_convert``. Field names are the JSON names.

Enum-valued fields are *open*: a value the server adds later arrives as a plain
``str`` instead of raising, and every member compares equal to its string
(``SessionStatus.EXIT == "exit"``), so ``session.status == "exit"`` always works.

Source: https://docs.devin.ai/api-reference/v3/sessions/get-organizations-session.md and
https://docs.devin.ai/sdk/api/DevinApi/interfaces/SessionCreateRequest.md
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any, Generic, TypeVar

import attrs

T = TypeVar("T")

__all__ = [
    "AdvancedMode",
    "Attachment",
    "CreateSessionRequest",
    "DevinMode",
    "InsightsGeneration",
    "InsightsStatus",
    "Message",
    "MessageSource",
    "Page",
    "PullRequest",
    "SendMessageRequest",
    "Session",
    "SessionCategory",
    "SessionInsights",
    "SessionOrigin",
    "SessionSecret",
    "SessionStatus",
    "StatusDetail",
    "TagsRequest",
    "UploadedAttachment",
    "WaitState",
]


class SessionStatus(StrEnum):
    """Lifecycle status of a session.

    ``CREATING`` is in an older generated SDK and one rendered docs page, not the current
    SDK reference; like ``NEW`` and ``CLAIMED``, a wait does not end on it.
    """

    NEW = "new"
    CLAIMED = "claimed"
    RUNNING = "running"
    EXIT = "exit"
    ERROR = "error"
    SUSPENDED = "suspended"
    RESUMING = "resuming"
    CREATING = "creating"


class StatusDetail(StrEnum):
    """What a running session is doing, or why a suspended one stopped."""

    WORKING = "working"
    WAITING_FOR_USER = "waiting_for_user"
    WAITING_FOR_APPROVAL = "waiting_for_approval"
    FINISHED = "finished"
    INACTIVITY = "inactivity"
    USER_REQUEST = "user_request"
    USAGE_LIMIT_EXCEEDED = "usage_limit_exceeded"
    OUT_OF_CREDITS = "out_of_credits"
    OUT_OF_QUOTA = "out_of_quota"
    NO_QUOTA_ALLOCATION = "no_quota_allocation"
    PAYMENT_DECLINED = "payment_declined"
    ORG_USAGE_LIMIT_EXCEEDED = "org_usage_limit_exceeded"
    TOTAL_SESSION_LIMIT_EXCEEDED = "total_session_limit_exceeded"
    ERROR = "error"


class SessionOrigin(StrEnum):
    """Where a session was started from (older servers said ``scheduled`` for ``automation``)."""

    WEBAPP = "webapp"
    SLACK = "slack"
    TEAMS = "teams"
    API = "api"
    LINEAR = "linear"
    JIRA = "jira"
    AUTOMATION = "automation"
    CLI = "cli"
    DESKTOP = "desktop"
    CODE_SCAN = "code_scan"
    OTHER = "other"


class SessionCategory(StrEnum):
    """The use-case category Devin assigned to a session."""

    BUG_FIXING = "bug_fixing"
    CI_CD_AND_DEVOPS = "ci_cd_and_devops"
    CODE_QUALITY_AND_SECURITY = "code_quality_and_security"
    CODE_REVIEW_AND_ANALYSIS = "code_review_and_analysis"
    DATA_AND_AUTOMATION = "data_and_automation"
    DOCUMENTATION_AND_CONTENT = "documentation_and_content"
    FEATURE_DEVELOPMENT = "feature_development"
    MIGRATIONS_AND_UPGRADES = "migrations_and_upgrades"
    OTHER = "other"
    REFACTORING_AND_OPTIMIZATION = "refactoring_and_optimization"
    RESEARCH_AND_EXPLORATION = "research_and_exploration"
    UNIT_TEST_GENERATION = "unit_test_generation"
    CODE_REVIEW = "code_review"
    SECURITY = "security"
    PRODUCTION_INVESTIGATION = "production_investigation"


class DevinMode(StrEnum):
    """Agent mode of a new session; omitted means the organization's default."""

    NORMAL = "normal"
    FAST = "fast"
    LITE = "lite"
    ULTRA = "ultra"
    FUSION = "fusion"


class MessageSource(StrEnum):
    """Who wrote a message or attachment."""

    DEVIN = "devin"
    USER = "user"


class AdvancedMode(StrEnum):
    """Advanced persona modes: deprecated, absent from the current API's create request."""

    ANALYZE = "analyze"
    CREATE = "create"
    IMPROVE = "improve"
    BATCH = "batch"
    MANAGE = "manage"


def _tuple_or_none(value: Iterable[Any] | None) -> tuple[Any, ...] | None:
    if value is None:
        return None
    if isinstance(value, str | bytes):
        # A bare string would silently become a tuple of characters.
        raise TypeError("expected a list of strings, not a single string")
    return tuple(value)


@attrs.frozen
class PullRequest:
    """A pull request opened by the session."""

    pr_url: str
    pr_state: str | None = None


# Not slotted: a frozen slotted class sets each of a session's many fields through
# ``object.__setattr__``; a frozen dict class writes them straight into its ``__dict__``,
# which is faster (benchmarks/bench_decode.py) for a little more memory per session.
@attrs.frozen(slots=False)
class Session:
    """A Devin session as returned by create, get, list, send message, terminate and archive.

    Attributes:
        status_detail: what a running session does (``working``, ``waiting_for_user``,
            ...) or why a suspended one sleeps. Filled on get and list only: the answers
            of create, send message, terminate and archive leave it None, so tell a
            session's state from a get or a wait, never from those answers.
        category: the use case Devin assigned (with ``subcategory``, its display name);
            filled on get and list only, like ``structured_output``.
    """

    session_id: str
    url: str
    status: SessionStatus | str
    org_id: str
    created_at: int  # Unix seconds
    updated_at: int  # Unix seconds
    acus_consumed: float
    tags: tuple[str, ...] = ()
    pull_requests: tuple[PullRequest, ...] = ()
    status_detail: StatusDetail | str | None = None
    category: SessionCategory | str | None = None
    subcategory: str | None = None
    origin: SessionOrigin | str | None = None
    child_session_ids: tuple[str, ...] | None = None
    parent_session_id: str | None = None
    is_archived: bool = False
    playbook_id: str | None = None
    service_user_id: str | None = None
    user_id: str | None = None
    title: str | None = None
    structured_output: dict[str, Any] | None = None


@attrs.frozen
class Page(Generic[T]):
    """One page of a cursor-paginated list; pass ``end_cursor`` as ``after`` for the next."""

    items: tuple[T, ...]
    end_cursor: str | None = None
    has_next_page: bool = False
    total: int | None = None


@attrs.frozen
class Message:
    """A message in a session, Devin's or a user's (listed oldest first)."""

    event_id: str
    message: str
    source: MessageSource | str
    created_at: int  # Unix seconds


@attrs.frozen
class Attachment:
    """A file attached to a session by Devin or a user."""

    attachment_id: str
    name: str
    source: MessageSource | str
    url: str
    content_type: str | None = None


@attrs.frozen
class UploadedAttachment:
    """A file uploaded with ``upload_attachment``.

    Attributes:
        attachment_id: the server's id for it.
        name: its file name.
        url: what ``create_session(attachment_urls=[...])`` and ``send_message`` take.
    """

    attachment_id: str
    name: str
    url: str


@attrs.frozen
class WaitState:
    """Where a bot left off following a session: enough to resume after a restart.

    Save it with ``dumps_wait_state`` (plain JSON) after handling each update, and pass
    ``loads_wait_state(text)`` to ``follow_session`` to go on without replaying what was
    already seen.

    Attributes:
        session_id: the session followed.
        status: the last status reported, or None before the first.
        status_detail: the last status_detail reported.
        message_cursor: the list cursor after which the unseen messages start.
        last_event_id: the id of the last message reported.
        replied_at: the ``updated_at`` of the session as a reply left it, while that
            reply is not yet seen acted on: a follow from this state does not end on
            the state the reply answered (the state lags after a message). Set it with
            ``after_reply``.
    """

    session_id: str
    status: str | None = None
    status_detail: str | None = None
    message_cursor: str | None = None
    last_event_id: str | None = None
    replied_at: int | None = None

    def after_reply(self, snapshot: Session) -> WaitState:
        """Return this state after a reply, given the session ``send_message`` returned.

        Save the result before following again: a bot restarted between its reply and
        the next follow then neither ends on the state the reply answered nor takes the
        old question for a new one. The answer of a send message carries no
        status_detail, so this state's detail is kept while the status is the same.
        """
        detail = snapshot.status_detail
        if detail is None and snapshot.status == self.status:
            detail = self.status_detail
        return attrs.evolve(
            self, status=snapshot.status, status_detail=detail, replied_at=snapshot.updated_at
        )


@attrs.frozen
class SessionSecret:
    """A secret handed to one session; its value never appears in a repr."""

    key: str
    value: str = attrs.field(repr=False)
    sensitive: bool = True


MAX_IDEMPOTENCY_KEY = 1024
"""Longest ``idempotency_key`` accepted, in characters (only its hash is sent)."""


@attrs.frozen(kw_only=True)
class CreateSessionRequest:
    """The body of a create-session call. Fields left as None are not sent.

    The server applies its defaults to fields not sent: ``resumable`` defaults to true
    (the session's VM state is kept after it stops, so it can be resumed; pass False
    for disposable sessions), ``structured_output_required`` to true when a schema is
    given, ``devin_mode`` to the organization's default mode.

    ``advanced_mode`` is deprecated: the current API no longer documents it. It is still
    sent when set, and creating with it warns (``DeprecationWarning``).

    ``idempotency_key`` is not a wire field: calls that carry the same key return the
    one session it created (see ``DevinClient.create_session``).
    """

    prompt: str = attrs.field()
    title: str | None = None
    tags: tuple[str, ...] | None = attrs.field(default=None, converter=_tuple_or_none)
    devin_mode: DevinMode | str | None = None
    advanced_mode: AdvancedMode | str | None = None
    attachment_urls: tuple[str, ...] | None = attrs.field(default=None, converter=_tuple_or_none)
    bypass_approval: bool | None = None
    child_playbook_id: str | None = None
    create_as_user_id: str | None = None
    knowledge_ids: tuple[str, ...] | None = attrs.field(default=None, converter=_tuple_or_none)
    max_acu_limit: int | None = None
    platform: str | None = None
    playbook_id: str | None = None
    repos: tuple[str, ...] | None = attrs.field(default=None, converter=_tuple_or_none)
    resumable: bool | None = None
    secret_ids: tuple[str, ...] | None = attrs.field(default=None, converter=_tuple_or_none)
    session_links: tuple[str, ...] | None = attrs.field(default=None, converter=_tuple_or_none)
    session_secrets: tuple[SessionSecret, ...] | None = attrs.field(
        default=None, converter=_tuple_or_none
    )
    structured_output_required: bool | None = None
    structured_output_schema: dict[str, Any] | None = None
    # Not sent: the client derives the exactly-once marker tag from it (see the README).
    idempotency_key: str | None = attrs.field(default=None)

    @idempotency_key.validator
    def _check_key(self, _: attrs.Attribute[str | None], value: str | None) -> None:
        if value is None:
            return
        if not isinstance(value, str):
            raise TypeError(f"idempotency_key must be a str, not {type(value).__name__}")
        if not value.strip() or len(value) > MAX_IDEMPOTENCY_KEY:
            raise ValueError(
                f"idempotency_key must be a non-blank string of at most "
                f"{MAX_IDEMPOTENCY_KEY} characters"
            )

    @prompt.validator
    def _check_prompt(self, _: attrs.Attribute[str], value: str) -> None:
        if not isinstance(value, str) or not value.strip():
            raise ValueError("prompt must be a non-empty string")


@attrs.frozen(kw_only=True)
class SendMessageRequest:
    """The body of a send-message call. Fields left as None are not sent."""

    message: str
    message_as_user_id: str | None = None
    attachment_urls: tuple[str, ...] | None = attrs.field(default=None, converter=_tuple_or_none)


@attrs.frozen
class TagsRequest:
    """The body of a set-tags call (replace or append): ``{"tags": [...]}``."""

    tags: tuple[str, ...]


class InsightsStatus(StrEnum):
    """The answer to a generate-insights request (open: other values stay strings)."""

    STARTED = "started"
    ALREADY_EXISTS = "already_exists"  # generated already, or generation in progress


@attrs.frozen
class InsightsGeneration:
    """SessionInsightsGenerateResponse: the session and what the request did."""

    session_id: str
    status: InsightsStatus | str


@attrs.frozen(slots=False)  # as Session is
class SessionInsights(Session):
    """SessionInsightsResponse: a session with its metrics and AI analysis.

    ``analysis`` is None until the analysis has completed (the API answers 200 with
    ``analysis: null`` before that, not 404); ``ready`` says whether it is there.
    """

    num_devin_messages: int = attrs.field(kw_only=True)
    num_user_messages: int = attrs.field(kw_only=True)
    session_size: str = attrs.field(kw_only=True)  # size class, e.g. "xs" (enum not documented)
    analysis: dict[str, Any] | None = attrs.field(default=None, kw_only=True)

    @property
    def ready(self) -> bool:
        """Whether the analysis has completed."""
        return self.analysis is not None
