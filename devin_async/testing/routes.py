"""The sessions routes of the fake: the route table and one handler per endpoint."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .queries import _paginate, _Query, _session_filter
from .quirks import Quirks
from .sessions import FakeSession, _session_json, _wall_seconds
from .timelines import Step, _steps
from .validation import (
    _CREATE_FIELDS,
    _MESSAGE_FIELDS,
    _TAGS_FIELDS,
    _error,
    _json_body,
    _redact,
    _Reject,
    _validate,
)

if TYPE_CHECKING:
    from .server import FakeDevinServer

_JSONObject = dict[str, Any]
_MAX_TAGS = 50


class _Routes:
    """The handlers of the v3 sessions API over the state of ``server``."""

    def __init__(self, server: FakeDevinServer) -> None:
        self._server = server

    def table(self) -> list[web.RouteDef]:
        """Declare every route with its name (enterprise names are prefixed)."""
        org, enterprise = "/v3/organizations/{org_id}/sessions", "/v3/enterprise/sessions"
        one = "/{devin_id}"
        shared = [
            ("GET", "", self._list_sessions, "list_sessions"),
            ("GET", one, self._get_session, "get_session"),
            ("POST", f"{one}/messages", self._send_message, "send_message"),
            ("GET", f"{one}/messages", self._list_messages, "list_messages"),
            ("GET", f"{one}/attachments", self._list_attachments, "list_attachments"),
            ("GET", f"{one}/tags", self._get_tags, "get_tags"),
            ("POST", f"{one}/tags", self._append_tags, "append_tags"),
            ("PUT", f"{one}/tags", self._replace_tags, "replace_tags"),
        ]
        org_only = [
            ("POST", "", self._create_session, "create_session"),
            ("DELETE", one, self._terminate_session, "terminate_session"),
            ("POST", f"{one}/archive", self._archive_session, "archive_session"),
        ]
        return [web.route(m, org + p, h, name=n) for m, p, h, n in shared + org_only] + [
            web.route(m, enterprise + p, h, name=f"enterprise_{n}") for m, p, h, n in shared
        ]

    def _session_for(self, request: web.Request) -> FakeSession:
        """Return the session in the path, or raise 422 (bad id) or 404 (unknown here)."""
        devin_id = request.match_info["devin_id"]
        if not devin_id.startswith("devin-"):
            msg = "String should match pattern '^devin-'"
            error = _error("string_pattern_mismatch", ["path", "devin_id"], msg, devin_id)
            raise _Reject(422, [error])
        session = self._server.sessions.get(devin_id)
        # Org scope: the path org; enterprise scope: the optional ?org_id= filter.
        org_id = request.match_info.get("org_id") or request.query.get("org_id")
        if session is None or org_id not in (None, session.org_id):
            raise _Reject(404, f"Session {devin_id} not found")
        return session

    def _next_timeline(self, body: _JSONObject) -> tuple[Step, ...]:
        """Choose a new session's timeline: queued, else the factory's, else the default."""
        server = self._server
        if server._queued:
            return server._queued.popleft()
        chosen = server.timeline_factory(body) if server.timeline_factory is not None else None
        return _steps(server.default_timeline if chosen is None else chosen)

    def _create(self, body: _JSONObject) -> FakeSession:
        """Create, store and return a session for a validated create request."""
        seq = len(self._server.sessions) + 1
        digest = hashlib.sha256(f"{self._server._seed}:{seq}".encode()).hexdigest()[:32]
        shown = _redact(body)
        now = _wall_seconds()
        session = FakeSession(
            session_id=f"devin-{digest}",
            seq=seq,
            org_id=self._server.org_id,
            body=shown,
            steps=self._next_timeline(shown),
            title=body.get("title") or body["prompt"][:40],
            tags=_dedupe(body.get("tags") or []),
            repos=list(body.get("repos") or []),
            playbook_id=body.get("playbook_id"),
            user_id=body.get("create_as_user_id"),
            service_user_id=self._server.service_user_id,
            created_at=now,
            updated_at=now,
        )
        session._add_message("user", body["prompt"])
        for url in body.get("attachment_urls") or []:
            session._add_attachment(url)
        session._enter(0)
        self._server.sessions[session.session_id] = session
        self._server.sessions_created += 1
        return session

    async def _create_session(self, request: web.Request) -> web.Response:
        required, not_null = ("prompt",), ("resumable",)
        body = _validate(_json_body(request), _CREATE_FIELDS, required, not_null)
        self._server.quirks._check_tags(body.get("tags") or [])
        self._server.quirks._check_platform(body.get("platform"))
        return web.json_response(_session_json(self._create(body), detailed=False))

    async def _list_sessions(self, request: web.Request) -> web.Response:
        """List matching sessions newest first; each one listed counts as a read."""
        query = _Query(self._server.quirks._list_query(request.query))
        keep = _session_filter(query, request.match_info.get("org_id"))
        first, after = query.page()
        query.check()
        matching = [s for s in reversed(self._server.sessions.values()) if keep(s)]
        newest_first = [(-s.seq, s) for s in matching if not self._server.quirks._lags(s)]
        page, envelope = _paginate(newest_first, first, after)
        for session in page:
            session._read()
        items = [_session_json(s, detailed=True) for s in page]
        return web.json_response({"items": items, **envelope})

    async def _get_session(self, request: web.Request) -> web.Response:
        session = self._session_for(request)
        session._read()
        return web.json_response(_session_json(session, detailed=True))

    async def _terminate_session(self, request: web.Request) -> web.Response:
        """Move the session to ``exit`` for good, archiving it if ``?archive=true``."""
        session = self._session_for(request)
        query = _Query(request.query)
        archive = query.boolean("archive")
        query.check()
        session._replace_timeline([Step("exit")])
        session.is_archived = session.is_archived or bool(archive)
        return web.json_response(_session_json(session, detailed=False))

    async def _archive_session(self, request: web.Request) -> web.Response:
        """Archive the session, putting it to sleep (suspended) if it is running."""
        session = self._session_for(request)
        session.is_archived = True
        if session.status == "running":
            session._replace_timeline([Step("suspended", "user_request")])
        return web.json_response(_session_json(session, detailed=False))

    async def _send_message(self, request: web.Request) -> web.Response:
        """Record a user message; it wakes a suspended session or one waiting for the user.

        With ``Quirks.message_lag_reads``, the answer and that many reads after it show the
        state from before the message (during a lag still running: from before that lag).
        """
        session = self._session_for(request)
        body = _validate(_json_body(request), _MESSAGE_FIELDS, ("message",))
        before = session._shown()
        session._add_message("user", body["message"])
        for url in body.get("attachment_urls") or []:
            session._add_attachment(url)
        if session.status == "suspended" or session.status_detail == "waiting_for_user":
            session._wake()
        session._lag(before, self._server.quirks.message_lag_reads)
        return web.json_response(_session_json(session, detailed=False))

    async def _list_messages(self, request: web.Request) -> web.Response:
        session = self._session_for(request)
        query = _Query(request.query)
        first, after = query.page()
        query.check()
        items, envelope = _paginate(list(enumerate(session.messages)), first, after)
        return web.json_response({"items": items, **envelope})

    async def _list_attachments(self, request: web.Request) -> web.Response:
        attachments = list(self._session_for(request).attachments)
        return web.json_response(
            {"items": attachments} if self._server.attachments_envelope else attachments
        )

    async def _get_tags(self, request: web.Request) -> web.Response:
        return web.json_response({"tags": self._session_for(request).tags})

    async def _append_tags(self, request: web.Request) -> web.Response:
        session = self._session_for(request)
        session.tags = _dedupe([*session.tags, *_tags_body(request, self._server.quirks)])
        return web.json_response({"tags": session.tags})

    async def _replace_tags(self, request: web.Request) -> web.Response:
        session = self._session_for(request)
        session.tags = _dedupe(_tags_body(request, self._server.quirks))
        return web.json_response({"tags": session.tags})


def _tags_body(request: web.Request, quirks: Quirks) -> list[str]:
    """Return the validated ``tags`` of a SessionTagsUpdate body (at most 50, all allowed)."""
    tags: list[str] = _validate(_json_body(request), _TAGS_FIELDS, ("tags",))["tags"]
    if len(tags) > _MAX_TAGS:
        msg = f"List should have at most {_MAX_TAGS} items after validation, not {len(tags)}"
        error = _error("too_long", ["body", "tags"], msg, tags, max_length=_MAX_TAGS)
        raise _Reject(422, [error])
    quirks._check_tags(tags)
    return tags


def _dedupe(values: Sequence[str]) -> list[str]:
    """Drop repeated values, keeping the first occurrence of each."""
    return list(dict.fromkeys(values))
