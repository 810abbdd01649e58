"""What the fake keeps: each request as received (``RecordedRequest``), each session's state
(``FakeSession``) and its SessionResponse JSON."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

import attrs

from .timelines import _WORKING, FINISHES, Step, StepLike, _steps

__all__ = ["FakeSession", "RecordedRequest"]

_JSONObject = dict[str, Any]


def _wall_seconds() -> int:
    """Return the Unix time in whole seconds: every timestamp the fake shows reads it here."""
    return int(time.time())


@attrs.frozen
class RecordedRequest:
    """One request as the server received it (the Authorization value is never kept)."""

    method: str
    path: str
    route: str | None
    query: tuple[tuple[str, str], ...]
    body: Any  # parsed JSON as sent (secrets included); None when empty or not JSON
    headers: tuple[tuple[str, str], ...]
    authorized: bool  # carried ``Bearer <the server's api_key>``

    def header(self, name: str) -> str | None:
        """Return the last value of header ``name`` (case-insensitive), or None."""
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return values[-1] if values else None


@attrs.define(kw_only=True)
class FakeSession:
    """Server-side state of one session; tests may read it and adjust plain fields."""

    session_id: str
    seq: int
    org_id: str
    body: _JSONObject  # the create request, secrets redacted
    steps: tuple[Step, ...]
    title: str | None
    tags: list[str]
    repos: list[str]
    playbook_id: str | None
    user_id: str | None
    service_user_id: str | None
    created_at: int  # Unix seconds
    updated_at: int  # Unix seconds
    origin: str = "api"
    schedule_id: str | None = None
    category: str = "other"
    subcategory: str = "Other"
    status: str = "new"
    status_detail: str | None = None
    step_index: int = 0
    reads_in_step: int = 0
    entered_at: float = 0.0  # monotonic seconds
    created_monotonic: float = attrs.Factory(time.monotonic)
    list_matches: int = 0  # list answers it matched, shown or left out (``Quirks`` lag)
    acus_consumed: float = 0.0
    is_archived: bool = False
    structured_output: _JSONObject | None = None
    parent_session_id: str | None = None
    child_session_ids: list[str] = attrs.Factory(list)
    pull_requests: list[dict[str, str | None]] = attrs.Factory(list)
    messages: list[_JSONObject] = attrs.Factory(list)
    attachments: list[_JSONObject] = attrs.Factory(list)
    # While a message lag lasts (``Quirks.message_lag_reads``): the (status, status_detail,
    # updated_at) that answers show instead of the real ones, and the lagged reads left.
    _stale: tuple[str, str | None, int] | None = attrs.field(default=None, init=False, repr=False)
    _stale_reads: int = attrs.field(default=0, init=False, repr=False)

    def _replace_timeline(self, steps: Sequence[StepLike]) -> None:
        """Start ``steps`` from its first step now; this ends any message lag."""
        self._stale, self._stale_reads = None, 0
        self.steps = _steps(steps)
        self._enter(0)

    def _enter(self, index: int) -> None:
        """Enter step ``index``, applying its effects."""
        step = self.steps[index]
        self.step_index, self.reads_in_step, self.entered_at = index, 0, time.monotonic()
        self.status, self.status_detail = step.status, step.status_detail
        self.acus_consumed = round(self.acus_consumed + 0.25, 2)
        self.updated_at = _wall_seconds()
        if step.message is not None:
            self._add_message("devin", step.message)
        if step.structured_output is not None:
            self.structured_output = dict(step.structured_output)
        if step.pull_request is not None:
            self.pull_requests.append({"pr_url": step.pull_request, "pr_state": "open"})

    def _read(self) -> None:
        """Count one read, first advancing if the current step was shown long enough.

        Steps of ``reads=0`` advance on their ``seconds`` alone: one read moves through
        all of them that have run out (each one's effects applied), as if time had
        passed with someone watching.

        A read during a message lag uses up one lagged read; the first read after them ends
        the lag, so it shows the real state.
        """
        if self._stale is not None:
            if self._stale_reads > 0:
                self._stale_reads -= 1
            else:
                self._stale = None
        now = time.monotonic()
        while self.step_index + 1 < len(self.steps):
            step = self.steps[self.step_index]
            if self.reads_in_step < step.reads or now - self.entered_at < step.seconds:
                break
            # A step that needs no read ended when its seconds did, read or not: the
            # next starts then, so an unpolled session moves on wall time alone.
            ended = self.entered_at + step.seconds if step.reads == 0 else now
            self._enter(self.step_index + 1)
            self.entered_at = ended
        self.reads_in_step += 1

    def _shown(self) -> tuple[str, str | None, int]:
        """Return the (status, status_detail, updated_at) answers show: stale during a lag."""
        return self._stale or (self.status, self.status_detail, self.updated_at)

    def _next_updated_at(self) -> int:
        """Return the ``updated_at`` the next read will show (what list filters compare)."""
        return self._stale[2] if self._stale is not None and self._stale_reads else self.updated_at

    def _lag(self, before: tuple[str, str | None, int], reads: int) -> None:
        """Show ``before`` (the state before a message) in the answer and the next ``reads``."""
        self._stale, self._stale_reads = (before, reads) if reads else (None, 0)

    def _wake(self) -> None:
        """Resume a suspended or waiting session: working, then the rest of its timeline."""
        rest = self.steps[self.step_index + 1 :] or FINISHES[2:]
        self._replace_timeline((_WORKING, *rest))

    def _add_message(self, source: str, text: str) -> None:
        """Append a chronological message from ``source`` ("devin" or "user")."""
        number = len(self.messages) + 1
        event_id = f"event-{self.session_id.removeprefix('devin-')[:8]}-{number:04d}"
        self.messages.append(
            {
                "created_at": _wall_seconds(),
                "event_id": event_id,
                "message": text,
                "source": source,
            }
        )
        self.updated_at = _wall_seconds()

    def _add_attachment(self, url: str) -> None:
        """Record a user attachment given by ``url``."""
        number = len(self.attachments) + 1
        self.attachments.append(
            {
                "attachment_id": f"att-{self.session_id.removeprefix('devin-')[:8]}-{number:04d}",
                "name": unquote(url.rstrip("/").rsplit("/", 1)[-1]),
                "source": "user",
                "url": url,
                "content_type": None,
            }
        )


_RESPONSE_FIELDS = (
    *("session_id", "status", "status_detail", "tags", "org_id", "created_at", "updated_at"),
    *("acus_consumed", "pull_requests", "category", "subcategory", "structured_output"),
    *("origin", "child_session_ids", "parent_session_id", "is_archived", "playbook_id"),
    *("service_user_id", "user_id", "title"),
)


def _session_json(s: FakeSession, *, detailed: bool) -> _JSONObject:
    """Render a SessionResponse: get and list answers are ``detailed``.

    The others (create, message, terminate, archive) leave status_detail, category,
    subcategory and structured_output null: the API fills them on get and list only.
    """
    body = {name: getattr(s, name) for name in _RESPONSE_FIELDS}
    body["status"], body["status_detail"], body["updated_at"] = s._shown()
    body["url"] = f"https://app.devin.ai/sessions/{s.session_id}"
    if not detailed:  # the API fills these on get/list only
        body.update(status_detail=None, category=None, subcategory=None, structured_output=None)
    return body
