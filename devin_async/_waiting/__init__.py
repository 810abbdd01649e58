"""Waiting: every wait of a client is a view over one engine with one clock.

- ``settle``: when a wait ends (the predicates, ``WaitOptions``, the timeout error).
- ``sources``: where a tick's states come from (by id, or by watermark).
- ``engine``: the one loop that polls, applies deadlines and backoff, and tells waits.
- ``views``: ``await_one``, ``SessionWatch``, ``SessionWaits``.
- ``follow``: ``SessionFollow``, a wait that also reports new messages.
"""

from .engine import Engine, Waiter
from .follow import SessionFollow, SessionUpdate
from .settle import (
    Predicate,
    Wait,
    WaitOptions,
    is_settled,
    is_settled_or_awaiting_approval,
    wait_timed_out,
)
from .sources import LIST_BATCH, IdsSource, WatermarkSource
from .views import SessionWaits, SessionWatch, await_one

__all__ = [
    "LIST_BATCH",
    "Engine",
    "IdsSource",
    "Predicate",
    "SessionFollow",
    "SessionUpdate",
    "SessionWaits",
    "SessionWatch",
    "Wait",
    "WaitOptions",
    "Waiter",
    "WatermarkSource",
    "await_one",
    "is_settled",
    "is_settled_or_awaiting_approval",
    "wait_timed_out",
]
