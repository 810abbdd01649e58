"""Pytest plugin: the ``fake_devin`` fixture, a started ``FakeDevinServer`` per test.

The fixture needs pytest-asyncio; without it this plugin defines nothing, so installing
devin_async never breaks a test suite that does not use asyncio.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devin_async.testing import FakeDevinServer

try:
    import pytest_asyncio
except ImportError:
    pass
else:

    @pytest_asyncio.fixture
    async def fake_devin() -> AsyncIterator[FakeDevinServer]:
        """Yield a started ``FakeDevinServer`` (key ``cog_test_key``, org ``org-test``)."""
        # Imported here: loading the plugin must not import aiohttp.web into every test run.
        from devin_async.testing import FakeDevinServer

        async with FakeDevinServer() as server:
            yield server
