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

from devin_async import DevinClient
from devin_async.testing import FakeDevinServer


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
        print(f"--real: this starts {starts} on the real Devin API", file=sys.stderr)
        return await stack.enter_async_context(DevinClient(**options))
    server = await stack.enter_async_context(fake())
    if setup is not None:
        setup(server)
    return await stack.enter_async_context(
        DevinClient(
            server.api_key,
            org_id=server.org_id,
            base_url=server.url,
            poll_interval=0.1,
            max_poll_interval=0.5,
            **options,
        )
    )
