"""Scripted session timelines: ``Step``, ``timeline()`` and the canned ones (``FINISHES``, ...)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

__all__ = [
    "ERRORS",
    "EXITS",
    "FINISHES",
    "SUSPENDS",
    "WAITS_FOR_APPROVAL",
    "WAITS_FOR_USER",
    "Step",
    "StepLike",
    "timeline",
]


@attrs.frozen
class Step:
    """One state of a scripted session timeline.

    The session shows this state for at least ``reads`` reads AND ``seconds`` seconds (monotonic
    clock) before the next read advances it. A step of ``reads=0`` needs no read: it ends
    ``seconds`` after it began, read or not, and one read shows where a run of such steps
    got to on wall time. On entering the step, the session emits ``message`` (as Devin),
    takes ``structured_output`` and gains a pull request ``pull_request`` (a URL).
    """

    status: str
    status_detail: str | None = None
    reads: int = attrs.field(default=1, validator=attrs.validators.ge(0))
    seconds: float = attrs.field(default=0.0, validator=attrs.validators.ge(0.0))
    message: str | None = None
    structured_output: dict[str, Any] | None = None
    pull_request: str | None = None


StepLike = Step | tuple[str, str | None]
"""A ``Step``, or a ``(status, status_detail)`` tuple shown for one read."""


def timeline(*states: StepLike, reads: int = 1) -> tuple[Step, ...]:
    """Build a timeline from ``(status, detail)`` tuples, each shown for ``reads`` reads."""
    return tuple(s if isinstance(s, Step) else Step(s[0], s[1], reads=reads) for s in states)


def _steps(steps: Sequence[StepLike]) -> tuple[Step, ...]:
    """Normalise a non-empty timeline to ``Step`` s."""
    if not steps:
        raise ValueError("a timeline needs at least one step")
    return timeline(*steps)


_CLAIMED, _WORKING = Step("claimed"), Step("running", "working")
FINISHES = (_CLAIMED, _WORKING, Step("running", "finished", message="All done."))
WAITS_FOR_USER = (
    _CLAIMED,
    _WORKING,
    Step("running", "waiting_for_user", message="Which branch should I use?"),
)
WAITS_FOR_APPROVAL = (
    _CLAIMED,
    _WORKING,
    Step("running", "waiting_for_approval", message="May I run the migration?"),
)
ERRORS = (_CLAIMED, _WORKING, Step("error"))
SUSPENDS = (_CLAIMED, _WORKING, Step("suspended", "inactivity"))
EXITS = (_CLAIMED, _WORKING, Step("exit"))
