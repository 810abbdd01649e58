"""The session-insights methods of ``DevinClient``: get, generate, and wait for them.

``InsightsCalls`` is a base class of ``DevinClient``, like ``WaitCalls``.
``await_insights`` waits on the time of the client's one engine (its injected clock
and sleep), with the same deadline and backoff options as ``await_session``.

The API answers ``GET .../insights`` with 200 and ``analysis: null`` while the
analysis is not done (not with 404; a 404 means the session is unknown), so "not yet
generated" is a ``SessionInsights`` whose ``ready`` is False. Reading insights is
organization scope only: the API has ``insights/generate`` in enterprise scope, but no
enterprise ``GET .../insights`` and no list of insights.
"""

from __future__ import annotations

from . import _convert, _protocol
from ._errors import AwaitTimeoutError, DevinError
from ._models import InsightsGeneration, SessionInsights
from ._retry import poll_retry_delay
from ._waiting.calls import WaitCalls

__all__ = ["InsightsCalls"]


class InsightsCalls(WaitCalls):
    """The insights methods of ``DevinClient`` (its scope, sender and engine are set there)."""

    _scope: _protocol.Scope

    async def get_insights(self, session_id: str) -> SessionInsights:
        """Return a session with its metrics and AI analysis (``analysis`` None until done).

        Raises:
            ConfigurationError: enterprise scope (the API has no enterprise insights read).
            NotFoundError: no such session.
        """
        data = await self._sender.call(_protocol.get_insights(self._scope, session_id))
        return _convert.structure_insights(data)

    async def generate_insights(self, session_id: str) -> InsightsGeneration:
        """Start generating a session's insights.

        The answer's ``status`` is ``started``, or ``already_exists`` when they are
        generated or being generated already (nothing new is started).
        """
        data = await self._sender.call(_protocol.generate_insights(self._scope, session_id))
        return _convert.structure_insights_generation(data)

    async def await_insights(
        self,
        session_id: str,
        *,
        timeout: float | None = None,
        poll_interval: float | None = None,
        max_poll_interval: float | None = None,
    ) -> SessionInsights:
        """Generate a session's insights if needed, and poll until the analysis is there.

        Reads the insights first; when ``analysis`` is missing it asks for generation
        (``started`` or ``already_exists`` both go on to wait) and polls, the delay
        doubling from ``poll_interval`` up to ``max_poll_interval``. A transient failure
        of a poll (5xx, 429, a dropped connection) is polled again within the deadline,
        after its ``Retry-After`` if that is longer, as the session waits do.

        Raises:
            AwaitTimeoutError: ``timeout`` seconds passed first; ``.session`` is the last
                ``SessionInsights`` read.
            ConfigurationError: enterprise scope.
            ValueError: the id is not a safe session id, or an option is out of range.
            DevinError: a failure retrying cannot fix (401, 403, 404, ...).
        """
        session_id = _protocol.normalize_session_id(session_id)
        _protocol.get_insights(self._scope, session_id)  # enterprise scope fails before a request
        wait = self._wait(timeout, None, poll_interval, max_poll_interval)
        engine = self._engine
        start = engine.now()
        deadline = start + wait.timeout
        insights: SessionInsights | None = None
        generated = False
        polls = 0
        delay = wait.poll_interval
        last_error: BaseException | None = None
        floor = 0.0
        while True:
            if polls:
                now = engine.now()
                if now >= deadline:
                    raise _timed_out(
                        session_id, wait.timeout, insights, now - start, polls, last_error
                    )
                await engine.pause(min(max(delay, floor), deadline - now))
                delay = min(delay * 2, wait.max_poll_interval)
            polls += 1
            try:
                data = await self._sender.attempt(_protocol.get_insights(self._scope, session_id))
            except DevinError as exc:
                retry = poll_retry_delay(exc, self._sender.policy.max_retry_after)
                if retry is None:
                    raise
                last_error, floor = exc, retry
                continue
            insights, last_error, floor = _convert.structure_insights(data), None, 0.0
            if insights.ready:
                return insights
            if not generated:
                await self.generate_insights(session_id)  # started or already_exists: wait
                generated = True


def _timed_out(
    session_id: str,
    timeout: float,
    insights: SessionInsights | None,
    elapsed: float,
    polls: int,
    last_error: BaseException | None,
) -> AwaitTimeoutError:
    """The error of an insights wait whose deadline passed, naming its last failure."""
    message = f"insights of session {session_id} were not ready within {timeout}s"
    if last_error is not None:
        message += f"; the last poll failed: {type(last_error).__name__}: {last_error}"
    return AwaitTimeoutError(
        message, session=insights, elapsed=elapsed, polls=polls, last_error=last_error
    )
