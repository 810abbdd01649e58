"""Pytest plugin: fixtures serving a fake Devin API and a client bound to it.

``fake_devin``
    a started ``ThreadedFakeDevin`` (key ``cog_test_key``, org ``org-test``): the fake in
    its own thread and event loop, so it answers from any test, sync or async, whatever
    loop (function or session scoped, pytest-asyncio's or anyio's) the test runs in.
``make_fake_devin``
    a factory: ``make_fake_devin(api_key=..., org_id=..., rate_limit=..., faults=[{"kind":
    "status", "status": 503}], timelines=[WAITS_FOR_USER], **options)`` starts another one
    (options are ``FakeDevinServer``'s); every one is closed after the test.
``devin_client``
    a ``DevinClient`` bound to ``fake_devin``, on instant time (``InstantTime``): its
    retries, backoff and polls take no real time. Its aiohttp session opens in the test's
    loop on first use and is closed after the test.
``devin_instant``
    ``devin_async.testing.set_instant(True)`` for the test: clients created meanwhile,
    including those your code under test makes, wait no real time.

Loading the plugin imports neither aiohttp nor the client: every fixture imports what it
needs when it runs, so an unrelated test run pays nothing for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from devin_async import DevinClient
    from devin_async.testing import StepLike, ThreadedFakeDevin

    MakeFake = Callable[..., ThreadedFakeDevin]


@pytest.fixture
def make_fake_devin() -> Iterator[MakeFake]:
    """Return a factory of started ``ThreadedFakeDevin`` s, all closed after the test."""
    from devin_async.testing import FakeDevinServer

    started: list[ThreadedFakeDevin] = []

    def make(
        api_key: str = "cog_test_key",
        org_id: str = "org-test",
        *,
        faults: Iterable[Mapping[str, Any]] = (),
        timelines: Iterable[Sequence[StepLike]] = (),
        **options: Any,
    ) -> ThreadedFakeDevin:
        server = FakeDevinServer.in_thread(api_key=api_key, org_id=org_id, **options)
        server.start()
        started.append(server)
        for fault in faults:
            server.inject(**fault)
        for steps in timelines:
            server.queue_timeline(steps)
        return server

    try:
        yield make
    finally:
        for server in reversed(started):
            server.close()


@pytest.fixture
def fake_devin(make_fake_devin: MakeFake) -> ThreadedFakeDevin:
    """Return a started ``ThreadedFakeDevin`` (key ``cog_test_key``, org ``org-test``)."""
    return make_fake_devin()


@pytest.fixture
def devin_client(fake_devin: ThreadedFakeDevin) -> Iterator[DevinClient]:
    """Yield a ``DevinClient`` bound to ``fake_devin``, on instant time."""
    from devin_async import DevinClient
    from devin_async.testing import InstantTime

    time = InstantTime()
    client = DevinClient(
        fake_devin.api_key,
        org_id=fake_devin.org_id,
        base_url=fake_devin.url,
        sleep=time.sleep,
        clock=time.clock,
    )
    try:
        yield client
    finally:
        _close(client)


@pytest.fixture
def devin_instant() -> Iterator[None]:
    """Make the delays of every client created during the test instant."""
    from devin_async.testing import instant

    with instant():
        yield


def _close(client: DevinClient) -> None:
    """Close ``client`` from a sync teardown, in the loop its aiohttp session opened in.

    A closed loop closed the session already (the transport closes with its loop); a
    loop still open and idle (a session-scoped one) runs the close.
    """
    loop = getattr(client._transport, "_loop", None)  # our own transport's first loop
    if loop is not None and not loop.is_closed():
        if not loop.is_running():
            loop.run_until_complete(client.aclose())
        return
    # Never used, or its session closed with its loop: close the rest in a loop of its
    # own, never made the thread's current loop (a session-scoped one may be).
    import asyncio

    own = asyncio.new_event_loop()
    try:
        own.run_until_complete(client.aclose())
    finally:
        own.close()
