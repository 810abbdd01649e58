"""The one switch the examples share: the embedded fake server unless ``--real`` is given.

An exported DEVIN_API_KEY alone never sends an example to the real API (where it would
start paid sessions); ``--real`` does, after a line saying what it will start.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable
from typing import Any

from devin_async import DevinClient, SyncDevinClient
from devin_async.testing import FakeDevinServer, ThreadedFakeDevin


def add_real_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--real``: use the real API (DEVIN_API_KEY, DEVIN_ORG_ID) instead of the fake."""
    parser.add_argument(
        "--real",
        action="store_true",
        help="use the real Devin API from DEVIN_API_KEY and DEVIN_ORG_ID (starts paid sessions)",
    )


async def open_client(
    stack: contextlib.AsyncExitStack,
    *,
    real: bool,
    starts: str,
    fake: Callable[[], FakeDevinServer] = FakeDevinServer,
    setup: Callable[[FakeDevinServer], object] | None = None,
    **options: Any,
) -> DevinClient:
    """Return a client on the real API when ``real``, else on a new embedded fake.

    Args:
        starts: what the example will start on the real API, said before it starts.
        fake: makes the fake server; ``setup`` scripts it once it runs.
        options: more ``DevinClient`` settings, for either backend.
    """
    if real:
        _say_real(starts)
        return await stack.enter_async_context(DevinClient(**options))
    server = await stack.enter_async_context(fake())
    if setup is not None:
        setup(server)
    return await stack.enter_async_context(DevinClient(**_on_fake(server), **options))


def open_sync_client(
    stack: contextlib.ExitStack, *, real: bool, starts: str, **options: Any
) -> SyncDevinClient:
    """``open_client`` for blocking code: a ``SyncDevinClient``, the fake in a thread."""
    if real:
        _say_real(starts)
        return stack.enter_context(SyncDevinClient(**options))
    server = stack.enter_context(FakeDevinServer.in_thread())
    return stack.enter_context(SyncDevinClient(**_on_fake(server), **options))


def _say_real(starts: str) -> None:
    print(f"--real: this starts {starts} on the real Devin API", file=sys.stderr)


def _on_fake(server: FakeDevinServer | ThreadedFakeDevin) -> dict[str, Any]:
    """The client settings for the fake: its key, org and URL, and quick polls."""
    return {
        "api_key": server.api_key,
        "org_id": server.org_id,
        "base_url": server.url,
        "poll_interval": 0.1,
        "max_poll_interval": 0.5,
    }
