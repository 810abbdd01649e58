"""The pytest plugin's fixtures, the threaded fake behind them, and instant time.

The fixtures run in a separate pytest (a subprocess importing this checkout), bounded by
a timeout so that a fixture stuck on another event loop fails fast instead of hanging.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import aiohttp
import pytest

import devin_async
from devin_async import DevinClient
from devin_async._settings import client_time, instant_enabled
from devin_async.testing import (
    FINISHES,
    FakeDevinServer,
    InstantTime,
    Step,
    ThreadedFakeDevin,
    instant,
    set_instant,
)

ROOT = Path(devin_async.__file__).resolve().parent.parent
BOUND = 120  # seconds a whole subprocess run may take; a hang ends there, as a failure

# Every generated test module starts by checking it imports this checkout.
HEADER = """
import os
import devin_async
assert devin_async.__file__.startswith(os.environ["EXPECTED_ROOT"]), devin_async.__file__
"""


def _pytest(tmp_path: Path, source: str, *options: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_generated.py").write_text(HEADER + textwrap.dedent(source))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EXPECTED_ROOT": str(ROOT)}
    env.pop("PYTEST_ADDOPTS", None)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"]
    command += ["-o", "asyncio_default_fixture_loop_scope=function", *options]
    return subprocess.run(
        [*command, "test_generated.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=BOUND,
        check=False,
    )


def _passed(result: subprocess.CompletedProcess[str], count: int) -> None:
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{count} passed" in result.stdout, result.stdout


# ------------------------------------------------------------------ fixtures, from any loop

USE_THE_CLIENT = """
from devin_async.testing import WAITS_FOR_USER

async def use(client, server):
    server.queue_timeline(WAITS_FOR_USER)
    server.inject("status", status=503, times=1, route="create_session")
    session = await client.create_session("do the thing")
    settled = await client.await_session(session.session_id)
    assert settled.status_detail == "waiting_for_user"
    assert server.sessions_created == 1
    assert server.count_status(503) == 1
"""


def test_the_fixtures_work_from_an_anyio_test(tmp_path: Path) -> None:
    source = (
        USE_THE_CLIENT
        + """
import pytest

@pytest.fixture
def anyio_backend():
    return "asyncio"

@pytest.mark.anyio
async def test_anyio(devin_client, fake_devin):
    await use(devin_client, fake_devin)
"""
    )
    _passed(_pytest(tmp_path, source, "-o", "asyncio_mode=strict"), 1)


def test_the_fixtures_work_from_a_session_scoped_loop(tmp_path: Path) -> None:
    source = (
        USE_THE_CLIENT
        + """
import pytest

@pytest.mark.asyncio(loop_scope="session")
async def test_first(devin_client, fake_devin):
    await use(devin_client, fake_devin)

@pytest.mark.asyncio(loop_scope="session")
async def test_second(devin_client, fake_devin):
    await use(devin_client, fake_devin)
"""
    )
    _passed(_pytest(tmp_path, source, "-o", "asyncio_mode=strict"), 2)


def test_the_fixtures_work_from_a_sync_test(tmp_path: Path) -> None:
    source = """
import asyncio

from devin_async import DevinClient
from devin_async.testing import WAITS_FOR_USER

def test_sync(make_fake_devin, devin_instant):
    server = make_fake_devin(
        api_key="cog_other",
        org_id="org-other",
        rate_limit=1000,
        faults=[{"kind": "rate_limit", "times": 1, "retry_after": "30"}],
        timelines=[WAITS_FOR_USER],
    )

    async def main():
        async with DevinClient(
            "cog_other", org_id="org-other", base_url=server.url
        ) as client:
            session = await client.create_session("hi")
            return await client.await_session(session.session_id)

    settled = asyncio.run(main())  # a 30 s Retry-After and 2 s polls, on instant time
    assert settled.status_detail == "waiting_for_user"
    assert server.count_status(429) == 1
    assert server.org_id == "org-other"

def test_auto_mode(fake_devin, devin_client):
    pass
"""
    _passed(_pytest(tmp_path, source, "-o", "asyncio_mode=auto"), 2)


def test_devin_instant_makes_a_long_wait_end_at_once(tmp_path: Path) -> None:
    # A 600 s deadline on a session that never settles: without instant time this run
    # would end at BOUND, as a failure.
    source = """
import pytest
from devin_async import AwaitTimeoutError, DevinClient
from devin_async.testing import Step

async def test_it(fake_devin, devin_instant):
    fake_devin.default_timeline = [Step("running", "working", reads=10**9)]
    async with DevinClient(
        fake_devin.api_key, org_id=fake_devin.org_id, base_url=fake_devin.url
    ) as client:
        session = await client.create_session("forever")
        with pytest.raises(AwaitTimeoutError):
            await client.await_session(session.session_id, timeout=600)
    assert fake_devin.count("get_session") + fake_devin.count("list_sessions") >= 2
"""
    _passed(_pytest(tmp_path, source, "-o", "asyncio_mode=auto"), 1)


def test_importing_the_plugin_imports_neither_aiohttp_nor_the_client() -> None:
    code = (
        "import sys, devin_async.pytest_plugin\n"
        "loaded = [m for m in sys.modules if m.startswith(('aiohttp', 'devin_async.'))]\n"
        "assert loaded == ['devin_async.pytest_plugin'], loaded\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=BOUND
    )
    assert done.returncode == 0, done.stderr


# ------------------------------------------------------------------ the threaded fake


def _fake_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "fake-devin"]


def test_a_threaded_fake_starts_and_stops_without_leaving_a_thread_or_socket() -> None:
    assert _fake_threads() == []
    with FakeDevinServer.in_thread(org_id="org-x") as server:
        assert isinstance(server, ThreadedFakeDevin)
        assert len(_fake_threads()) == 1
        port = int(server.url.rsplit(":", 1)[1])
        assert server.org_id == "org-x"
        assert "create_session" in server.route_names
    assert _fake_threads() == []
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.url
    server.close()  # closing twice is harmless


def test_a_threaded_fake_refuses_a_second_start() -> None:
    with FakeDevinServer.in_thread() as server, pytest.raises(RuntimeError, match="already"):
        server.start()


def test_a_failed_start_stops_the_thread() -> None:
    with pytest.raises(ValueError, match="rate_limit"):
        FakeDevinServer.in_thread(rate_limit=-1).start()
    assert _fake_threads() == []


async def test_a_threaded_fake_is_scripted_and_read_from_another_loop() -> None:
    async with FakeDevinServer.in_thread() as server:
        server.allowed_tags = {"ci"}
        server.configure(service_user_id="su-1")
        assert server.allowed_tags == ("ci",)
        assert server.service_user_id == "su-1"
        assert server.forbidden_keys == frozenset()  # a copy: frozen, adding fails loudly
        with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
            server.configure(nonsense=1)
        server.queue_timeline([Step("running", "working"), *FINISHES])
        async with DevinClient(
            server.api_key, org_id=server.org_id, base_url=server.url, exactly_once_create=False
        ) as c:
            created = await c.create_session("x", tags=["ci"])
            first = await c.get_session(created.session_id)
        assert first.status_detail == "working"
        assert server.sessions_created == 1
        assert [r.route for r in server.requests] == ["create_session", "get_session"]
        copied = server.sessions[created.session_id]
        copied.status = "changed only in the copy"
        assert server.sessions[created.session_id].status == "running"
        server.set_state(created.session_id, "exit")
        assert server.sessions[created.session_id].status == "exit"
        assert server.count("get_session") == 1
        assert server.call(lambda real: len(real.requests)) == 2
        server.reset_log()
        assert server.requests == []
        assert server.in_flight == 0


async def test_a_gate_holds_a_slow_fault_until_set_from_another_thread() -> None:
    async with FakeDevinServer.in_thread() as server:
        gate = server.gate()
        server.inject("slow", gate=gate, route="enterprise_list_sessions")
        headers = {"Authorization": f"Bearer {server.api_key}"}
        async with aiohttp.ClientSession() as http:
            request = asyncio.ensure_future(
                http.get(server.url + "/v3/enterprise/sessions", headers=headers)
            )
            # The server's thread takes the request; no event of this loop tells when.
            while server.in_flight == 0:  # noqa: ASYNC110
                await asyncio.sleep(0)
            assert not request.done()
            opener = threading.Thread(target=gate.set)
            opener.start()
            opener.join()
            async with await request as response:
                assert response.status == 200
        await server.wait_idle()
        with pytest.raises(TypeError, match="gate"):
            server.inject("slow", gate=asyncio.Event())  # type: ignore[arg-type]


def test_the_server_loop_may_not_block_on_itself() -> None:
    with FakeDevinServer.in_thread() as server, pytest.raises(RuntimeError, match="own loop"):
        server.call(lambda _: server.count())


# ------------------------------------------------------------------ instant time


async def test_instant_sleeps_move_the_clock_to_their_end_and_never_back() -> None:
    time = InstantTime()
    before = time.clock()
    await time.sleep(3600)
    assert time.clock() >= before + 3600
    both = time.clock()
    await asyncio.gather(time.sleep(10), time.sleep(1))  # concurrent: the later end wins
    assert both + 10 <= time.clock() < both + 11 + 60


def test_the_switch_picks_a_clients_default_time() -> None:
    assert not instant_enabled()
    assert client_time(None, None) == (asyncio.sleep, __import__("time").monotonic)
    with instant():
        assert instant_enabled()
        sleep, _ = client_time(None, None)
        assert sleep is not asyncio.sleep
        assert client_time(asyncio.sleep, None)[0] is asyncio.sleep  # given ones win
        with instant(False):
            assert not instant_enabled()
        assert instant_enabled()
    assert not instant_enabled()
    set_instant(True)
    try:
        assert instant_enabled()
    finally:
        set_instant(False)


async def test_instant_retries_sleep_once_per_backoff() -> None:
    calls: list[float] = []
    time = InstantTime()

    async def counting(delay: float) -> None:
        calls.append(delay)
        await time.sleep(delay)

    async with FakeDevinServer.in_thread() as server:
        async with DevinClient(
            server.api_key,
            org_id=server.org_id,
            base_url=server.url,
            max_retries=5,
            sleep=counting,
            clock=time.clock,
        ) as client:
            created = await client.create_session("x")
            server.inject("status", status=503, times=3, route="get_session")
            server.inject("rate_limit", retry_after="30", times=1, route="get_session")
            before = time.clock()
            got = await client.get_session(created.session_id)
        assert server.count("get_session") == 5
    assert got.session_id == created.session_id
    # Four failures, four backoffs, the last one honouring the 30 s Retry-After (the
    # governor's pause then lies behind the clock): each delay one sleep, no spinning.
    assert len(calls) == 4
    assert max(calls) >= 30
    assert time.clock() - before >= sum(calls)
