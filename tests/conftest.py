"""Shared fixtures: a working ``aioresponses``, a fake server with a client on virtual
time, and a full SessionResponse payload."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from fakes import KEY, FakeTime

from devin_async import DevinClient
from devin_async.testing import FakeDevinServer

# --- aioresponses shim -------------------------------------------------------------------
# Why: aioresponses 0.7.9 builds ClientResponse without the `stream_writer` argument that
# aiohttp 3.14 made required, so every mocked request fails with "ClientResponse.__init__()
# missing 1 required keyword-only argument: 'stream_writer'" (pnuckowski/aioresponses#289).
# The shim only fills that argument in when the caller left it out, so it is harmless with a
# fixed aioresponses. Delete _SentWriter, _CompatResponse and _CompatAioresponses (and yield
# a plain `aioresponses()` below) once pyproject.toml requires an aioresponses with the fix.


class _SentWriter:
    """Stream writer of a request that was already sent: ClientResponse only reads this."""

    output_size = 0


class _CompatResponse(aiohttp.ClientResponse):
    def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
        if kwargs.get("writer") is None:
            kwargs.setdefault("stream_writer", _SentWriter())
        super().__init__(method, url, **kwargs)


class _CompatAioresponses(aioresponses):  # type: ignore[misc]
    def add(self, *args: Any, response_class: Any = None, **kwargs: Any) -> None:
        super().add(*args, response_class=response_class or _CompatResponse, **kwargs)


@pytest.fixture
def mock_http() -> Iterator[aioresponses]:
    """Intercept every aiohttp.ClientSession request; unmatched ones fail to connect."""
    with _CompatAioresponses() as mocked:
        yield mocked


# --- a fake server, and a client of it on virtual time -----------------------------------
# A module that needs another server or client defines its own fixture of the same name.


@pytest.fixture
async def server() -> AsyncIterator[FakeDevinServer]:
    """A started fake of the org "org-test" that takes ``fakes.KEY``."""
    async with FakeDevinServer(api_key=KEY, org_id="org-test") as srv:
        yield srv


@pytest.fixture
def sleep() -> FakeTime:
    """The virtual time of ``client``: its sleeps, their delays and its clock."""
    return FakeTime()


@pytest.fixture
async def client(server: FakeDevinServer, sleep: FakeTime) -> AsyncIterator[DevinClient]:
    """A client of ``server`` (org scope) on the virtual time of ``sleep``."""
    async with DevinClient(
        KEY, org_id=server.org_id, base_url=server.url, sleep=sleep, clock=sleep.clock, timeout=5.0
    ) as c:
        yield c


# --- payloads ----------------------------------------------------------------------------


@pytest.fixture
def session_json() -> dict[str, Any]:
    """A SessionResponse with every field of the v3 spec set to a non-default value."""
    return {
        "session_id": "devin-0123456789abcdef",
        "url": "https://app.devin.ai/sessions/0123456789abcdef",
        "status": "running",
        "status_detail": "working",
        "tags": ["backend", "urgent"],
        "org_id": "org-abc",
        "created_at": 1_700_000_000,
        "updated_at": 1_700_000_100,
        "acus_consumed": 1.25,
        "pull_requests": [
            {"pr_url": "https://github.com/o/r/pull/1", "pr_state": "open"},
            {"pr_url": "https://github.com/o/r/pull/2", "pr_state": None},
        ],
        "category": "bug_fixing",
        "subcategory": "Crash fixes",
        "origin": "api",
        "child_session_ids": ["devin-child1", "devin-child2"],
        "parent_session_id": "devin-parent",
        "is_archived": True,
        "playbook_id": "playbook-1",
        "service_user_id": "service-user-1",
        "user_id": "user-1",
        "title": "Fix the crash",
        "structured_output": {"result": "ok", "score": 3, "nested": {"items": [1, 2]}},
    }


# --- no credential in any log record of the whole run -------------------------------------
# Every record any logger emits during the test run is kept (the devin_async logger at
# DEBUG, so every event's log line is produced), and the run fails if one of them shows an
# API key, an Authorization header or a session secret value the tests use.

LEAK_MARKERS = ("cog_", "Bearer ", "s3cr3t")


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.leaks: list[str] = []
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += f" {record.exc_info[1]!r}"
        if any(marker in text for marker in LEAK_MARKERS):
            self.leaks.append(f"{record.name}: {text[:300]}")


_RECORDER = _Recorder()


def pytest_configure(config: pytest.Config) -> None:
    logging.getLogger().addHandler(_RECORDER)
    logging.getLogger("devin_async").setLevel(logging.DEBUG)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    logging.getLogger().removeHandler(_RECORDER)
    if _RECORDER.leaks:
        print(f"\n{len(_RECORDER.leaks)} log record(s) show a credential:")
        for leak in _RECORDER.leaks[:20]:
            print("  ", leak)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def log_recorder() -> _Recorder:
    """The run-wide recorder of log records (for tests that check it sees them)."""
    return _RECORDER
