"""The session-insights routes of the fake: generate, then a few reads until the analysis.

Generation advances the way sessions do, by reads: after ``POST .../insights/generate``
the analysis appears on the ``insights_polls``-th ``GET .../insights`` of that session.
Before that (and before any generate) ``analysis`` is null, as the API answers. A second
generate answers ``already_exists``. Like the API, reading insights is org scope only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from .routes import _Routes
from .sessions import FakeSession, _session_json

if TYPE_CHECKING:
    from .server import FakeDevinServer

DEFAULT_INSIGHTS_POLLS = 3


def _size(session: FakeSession) -> str:
    """A size class from the message count (the API's thresholds are not documented)."""
    count = len(session.messages)
    return "xs" if count < 5 else "s" if count < 20 else "m"


class _Insights:
    """The insights handlers; per session, the reads left until the analysis is done."""

    def __init__(self, server: FakeDevinServer, polls: int = DEFAULT_INSIGHTS_POLLS) -> None:
        self._server = server
        self._sessions = _Routes(server)
        self.polls = polls
        self.left: dict[str, int] = {}  # session id -> reads until its analysis is shown

    def table(self) -> list[web.RouteDef]:
        """Org: get and generate; enterprise: generate (the spec has no enterprise get)."""
        org = "/v3/organizations/{org_id}/sessions/{devin_id}/insights"
        enterprise = "/v3/enterprise/sessions/{devin_id}/insights"
        return [
            web.get(org, self._get, name="get_insights"),
            web.post(f"{org}/generate", self._generate, name="generate_insights"),
            web.post(f"{enterprise}/generate", self._generate, name="enterprise_generate_insights"),
        ]

    def ready(self, session_id: str) -> bool:
        """Whether the session's analysis is done."""
        return self.left.get(session_id) == 0

    async def _generate(self, request: web.Request) -> web.Response:
        session = self._sessions._session_for(request)
        started = session.session_id not in self.left
        if started:
            self.left[session.session_id] = max(self.polls, 0)
        status = "started" if started else "already_exists"
        return web.json_response({"session_id": session.session_id, "status": status})

    async def _get(self, request: web.Request) -> web.Response:
        session = self._sessions._session_for(request)
        left = self.left.get(session.session_id)
        if left:
            left -= 1
            self.left[session.session_id] = left
        return web.json_response(self._json(session, done=left == 0))

    def _json(self, session: FakeSession, *, done: bool) -> dict[str, Any]:
        body = _session_json(session, detailed=True)
        users = sum(1 for m in session.messages if m.get("source") == "user")
        body["num_user_messages"] = users
        body["num_devin_messages"] = len(session.messages) - users
        body["session_size"] = _size(session)
        body["analysis"] = (
            {"summary": f"Analysis of {session.title}", "issues": [], "timeline": []}
            if done
            else None
        )
        return body
