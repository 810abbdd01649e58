"""``--debug``: the client's request trace (its DEBUG log lines) on stderr."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import TextIO

from .errors import redact

DEBUG_ENV = "DEVIN_ASYNC_DEBUG"


def debug_from_env() -> bool:
    """Whether ``DEVIN_ASYNC_DEBUG`` asks for the trace: set, and not 0, false or no."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


class _Redacting(logging.Formatter):
    """``debug: <message>``, with the API key taken out should any line ever carry it."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


@contextlib.contextmanager
def request_trace(enabled: bool, stream: TextIO) -> Iterator[None]:
    """Show the ``devin_async`` logger's DEBUG lines on ``stream`` for the block, if ``enabled``.

    The lines are those the client builds from its events (``-> GET ...``, ``<- 200 GET
    ... in 0.004s``, retries, rate-limit pauses, state changes), which carry no credentials.
    """
    if not enabled:
        yield
        return
    logger = logging.getLogger("devin_async")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_Redacting("debug: %(message)s"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
