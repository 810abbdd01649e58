"""A fake Devin API v3 server for tests; ``server`` holds it, this package re-exports it."""

from __future__ import annotations

from .server import (
    ERRORS,
    EXITS,
    FINISHES,
    REDACTED,
    SUSPENDS,
    WAITS_FOR_APPROVAL,
    WAITS_FOR_USER,
    FakeDevinServer,
    FakeSession,
    FaultKind,
    Quirks,
    RecordedRequest,
    Step,
    StepLike,
    timeline,
)

__all__ = [
    "ERRORS",
    "EXITS",
    "FINISHES",
    "REDACTED",
    "SUSPENDS",
    "WAITS_FOR_APPROVAL",
    "WAITS_FOR_USER",
    "FakeDevinServer",
    "FakeSession",
    "FaultKind",
    "Quirks",
    "RecordedRequest",
    "Step",
    "StepLike",
    "timeline",
]
