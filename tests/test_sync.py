"""SyncDevinClient: the async client through a blocking portal, from plain sync tests."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from mypy import api as mypy_api

from devin_async import (
    AuthenticationError,
    AwaitTimeoutError,
    ClientClosedError,
    ConfigurationError,
    Event,
    NotFoundError,
    RequestSent,
    Session,
    SyncDevinClient,
    WaitFinished,
)
from devin_async._sync import _Call
from devin_async.testing import FINISHES, WAITS_FOR_USER, ThreadedFakeDevin, instant, timeline

ROOT = Path(__file__).resolve().parent.parent
NEVER_SETTLES = timeline(("running", "working"))


Waits = list[tuple[str, bool]]


@pytest.fixture
def waits() -> Waits:
    """How each wait ended, and whether in the portal's thread (the engine's one thread)."""
    return []


def _recording(waits: Waits) -> Callable[[Event], None]:
    def hook(event: Event) -> None:
        if isinstance(event, WaitFinished):
            in_portal = threading.current_thread() is not threading.main_thread()
            waits.append((event.outcome, in_portal))

    return hook


@pytest.fixture
def devin(fake_devin: ThreadedFakeDevin, waits: Waits) -> Iterator[SyncDevinClient]:
    """A SyncDevinClient on the threaded fake, on instant time, recording ``waits``."""
    with (
        instant(),
        SyncDevinClient(
            fake_devin.api_key,
            org_id=fake_devin.org_id,
            base_url=fake_devin.url,
            hooks=[_recording(waits)],
        ) as client,
    ):
        yield client


def test_a_call_returns_what_the_async_method_returns(
    devin: SyncDevinClient, fake_devin: ThreadedFakeDevin
) -> None:
    created = devin.create_session("Fix the flaky test", tags=["ci"])
    assert isinstance(created, Session)
    assert devin.get_session(created.session_id).session_id == created.session_id
    assert devin.get_tags(created.session_id)[0] == "ci"
    assert fake_devin.count("create_session") == 1
    # The docs and the signature are the async method's, without ``self``.
    assert devin.get_session.__doc__ == SyncDevinClient.get_session.__doc__
    assert devin.list_sessions.__doc__ == SyncDevinClient.list_sessions.__doc__
    assert devin.list_sessions.__name__ == "list_sessions"
    assert "current state" in str(devin.get_session.__doc__)
    assert str(devin.get_session.__signature__) == "(session_id: 'str') -> 'Session'"  # type: ignore[attr-defined]


def test_errors_are_the_package_exceptions_unchanged(
    devin: SyncDevinClient, fake_devin: ThreadedFakeDevin
) -> None:
    with pytest.raises(NotFoundError) as missing:
        devin.get_session("devin-nosuchsession")
    assert missing.value.status_code == 404
    with pytest.raises(ValueError, match="session id"):
        devin.get_session("../etc")
    with pytest.raises(ValueError, match="first"):
        devin.list_sessions(first=0)  # at the call, as in the async client
    assert fake_devin.count("get_session") == 1
    with (
        SyncDevinClient("cog_wrong_key", org_id="org-test", base_url=fake_devin.url) as wrong,
        pytest.raises(AuthenticationError),
    ):
        wrong.get_session("devin-abc")
    with pytest.raises(ConfigurationError, match="API key"):
        SyncDevinClient("", base_url=fake_devin.url)


def test_an_iterator_fetches_every_page(
    devin: SyncDevinClient, fake_devin: ThreadedFakeDevin
) -> None:
    ids = {devin.create_session(f"task {n}", tags=["batch"]).session_id for n in range(5)}
    listed = devin.list_sessions(tags=["batch"], first=2)
    assert {session.session_id for session in listed} == ids
    assert fake_devin.count("list_sessions") == 3
    results = list(devin.as_completed(sorted(ids)))
    assert {result.session_id for result in results} == ids
    assert all(result.session is not None for result in results)


def test_breaking_out_of_an_iterator_closes_the_async_one(
    devin: SyncDevinClient, fake_devin: ThreadedFakeDevin, waits: Waits
) -> None:
    fake_devin.queue_timeline(NEVER_SETTLES)
    session_id = devin.create_session("Never ends").session_id
    for state in devin.watch_session(session_id, timeout=3600):
        assert state.status == "running"
        break
    # The generator was dropped at the break: the watch it held is released at once.
    assert waits == [("cancelled", True)]
    states = devin.watch_session(session_id, timeout=3600)
    next(states)
    states.close()
    assert waits == [("cancelled", True), ("cancelled", True)]


def test_an_iterator_dropped_in_the_portal_thread_does_not_block_it(
    fake_devin: ThreadedFakeDevin, waits: Waits
) -> None:
    # A garbage collection can finalize an iterator in any thread, the portal's too: there
    # it must not wait on the portal (it would be waiting on itself).
    held: list[Generator[Session, None, None]] = []
    errors: list[Exception] = []
    record = _recording(waits)

    def drop_held(event: Event) -> None:
        record(event)
        if held and isinstance(event, RequestSent) and event.method == "GET":
            try:
                held.pop().close()
            except Exception as exc:  # a hook's exception would only be logged
                errors.append(exc)

    fake_devin.queue_timeline(NEVER_SETTLES)
    with SyncDevinClient(
        fake_devin.api_key, org_id=fake_devin.org_id, base_url=fake_devin.url, hooks=[drop_held]
    ) as devin:
        session_id = devin.create_session("Never ends").session_id
        states = devin.watch_session(session_id, timeout=3600)
        next(states)
        held.append(states)
        del states
        devin.get_session(session_id)
        assert errors == []
        assert held == []
        assert waits == [("cancelled", True)]  # released by the watch's own finalizer


def test_a_wait_runs_on_virtual_time(devin: SyncDevinClient, fake_devin: ThreadedFakeDevin) -> None:
    fake_devin.queue_timeline(FINISHES)
    fake_devin.queue_timeline(NEVER_SETTLES)
    done = devin.create_session("Finishes").session_id
    stuck = devin.create_session("Never ends").session_id
    assert devin.await_session(done, poll_interval=60).status_detail == "finished"
    # An hour of polls a minute apart, on the client's virtual clock.
    with pytest.raises(AwaitTimeoutError) as timed_out:
        devin.await_session(stuck, timeout=3600, poll_interval=60, max_poll_interval=60)
    assert timed_out.value.polls >= 50
    assert timed_out.value.session is not None
    assert timed_out.value.session.status_detail == "working"


def test_follow_session_yields_the_messages(
    devin: SyncDevinClient, fake_devin: ThreadedFakeDevin
) -> None:
    fake_devin.queue_timeline(WAITS_FOR_USER)
    session_id = devin.create_session("Asks a question").session_id
    updates = list(devin.follow_session(session_id))
    assert updates[-1].session is not None
    assert updates[-1].session.status_detail == "waiting_for_user"
    said = [update.message.message for update in updates if update.message is not None]
    assert "Which branch should I use?" in said


def test_hooks_are_added_and_removed_in_the_clients_thread(
    devin: SyncDevinClient, fake_devin: ThreadedFakeDevin
) -> None:
    seen: list[tuple[str, bool]] = []

    def hook(event: Event) -> None:
        if isinstance(event, RequestSent):
            seen.append((event.path, threading.current_thread() is threading.main_thread()))

    session_id = devin.create_session("Hooked").session_id
    devin.add_hook(hook)
    devin.get_session(session_id)
    devin.remove_hook(hook)
    devin.get_tags(session_id)
    assert seen == [(f"/v3/organizations/{fake_devin.org_id}/sessions/{session_id}", False)]
    devin.close()
    with pytest.raises(ClientClosedError):
        devin.add_hook(hook)


def test_a_hook_calling_the_client_gets_a_clear_error_and_nothing_breaks(
    devin: SyncDevinClient,
) -> None:
    raised: list[BaseException] = []

    def hook(event: Event) -> None:
        if isinstance(event, RequestSent):
            for call in (lambda: devin.get_tags(event.session_id or ""), devin.close):
                try:
                    call()
                except RuntimeError as exc:
                    raised.append(exc)

    session_id = devin.create_session("Hooked").session_id
    devin.add_hook(hook)
    devin.get_session(session_id)
    assert len(raised) == 2
    assert all("from the thread its hooks run in" in str(exc) for exc in raised)
    assert not devin.closed  # the close() refused in the hook left the client working
    devin.remove_hook(hook)
    assert devin.get_session(session_id).session_id == session_id


def test_close_twice_and_use_after_close(fake_devin: ThreadedFakeDevin) -> None:
    devin = SyncDevinClient(fake_devin.api_key, org_id=fake_devin.org_id, base_url=fake_devin.url)
    fake_devin.queue_timeline(NEVER_SETTLES)
    session_id = devin.create_session("Left open").session_id
    states = devin.watch_session(session_id)
    next(states)
    assert not devin.closed
    devin.close()
    devin.close()
    assert devin.closed
    with pytest.raises(ClientClosedError):
        devin.get_session(session_id)
    with pytest.raises(ClientClosedError):
        devin.list_sessions()
    with pytest.raises(ClientClosedError):
        next(states)  # the watch ended with its client
    states.close()


def test_a_call_that_races_close_raises_client_closed(fake_devin: ThreadedFakeDevin) -> None:
    devin = SyncDevinClient(fake_devin.api_key, org_id=fake_devin.org_id, base_url=fake_devin.url)
    portal = devin._portal
    assert portal is not None

    class ClosedMeanwhile:
        """The portal, closed by another thread just before the call reaches it."""

        def start_task_soon(self, *args: Any) -> Any:
            devin.close()
            return portal.start_task_soon(*args)

        def call(self, *args: Any) -> Any:
            return portal.call(*args)

    devin._portal = ClosedMeanwhile()  # type: ignore[assignment]
    with pytest.raises(ClientClosedError, match="is closed"):
        devin.get_session("devin-raced")
    assert devin.closed


def test_the_context_manager_stops_the_portal_thread(fake_devin: ThreadedFakeDevin) -> None:
    before = set(threading.enumerate())
    with SyncDevinClient(
        fake_devin.api_key, org_id=fake_devin.org_id, base_url=fake_devin.url
    ) as devin:
        devin.create_session("One")
        assert len(set(threading.enumerate()) - before) == 1
    assert set(threading.enumerate()) - before == set()
    with pytest.raises(ConfigurationError, match="API key"):
        SyncDevinClient("", base_url=fake_devin.url)  # a failed start leaves no thread either
    assert set(threading.enumerate()) - before == set()


def test_a_borrowed_aiohttp_session_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="aiohttp session"):
        SyncDevinClient("cog_key", session=object())  # type: ignore[arg-type]


def test_repr_is_the_async_one_without_the_key(fake_devin: ThreadedFakeDevin) -> None:
    devin = SyncDevinClient("cog_secret_value", org_id="org-test", base_url=fake_devin.url)
    assert repr(devin) == f"<SyncDevinClient base_url={fake_devin.url!r} org_id='org-test'>"
    assert devin.org_id == "org-test"
    assert devin.base_url == fake_devin.url
    devin.close()
    assert repr(devin).endswith(" closed>")
    assert "cog_secret_value" not in repr(devin)


def test_a_keyboard_interrupt_cancels_the_wait_in_the_portal(
    fake_devin: ThreadedFakeDevin, waits: Waits
) -> None:
    main = threading.main_thread().ident
    assert threading.get_ident() == main  # the signal is delivered to this thread
    interrupted = threading.Event()

    record = _recording(waits)

    def interrupt(event: Event) -> None:
        record(event)
        if isinstance(event, RequestSent) and event.method == "GET" and not interrupted.is_set():
            interrupted.set()
            signal.pthread_kill(main, signal.SIGINT)  # Ctrl-C while the poll is held

    fake_devin.queue_timeline(NEVER_SETTLES)
    gate = fake_devin.gate()
    fake_devin.inject("slow", route="get_session", gate=gate, times=None)
    with SyncDevinClient(
        fake_devin.api_key, org_id=fake_devin.org_id, base_url=fake_devin.url, hooks=[interrupt]
    ) as devin:
        session_id = devin.create_session("Never ends").session_id
        try:
            with pytest.raises(KeyboardInterrupt):
                devin.await_session(session_id, timeout=3600)
            # Cancelled in the portal before the interrupt went on: not left running.
            assert waits == [("cancelled", True)]
        finally:
            gate.set()


async def test_a_call_cancelled_before_it_started_never_starts() -> None:
    # Ctrl-C can land while the portal is still starting the task: it must not run then.
    ran: list[str] = []

    async def work() -> str:
        ran.append("ran")
        return "done"

    call = _Call(work)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call.run()
    assert ran == []
    assert call.ended.is_set()


def test_the_sync_methods_are_typed_from_the_async_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked = tmp_path / "uses_sync.py"
    checked.write_text(
        "from devin_async import SyncDevinClient\n"
        "devin = SyncDevinClient(timeout=5.0)\n"
        "reveal_type(devin.get_session('devin-abc'))\n"  # line 3
        "reveal_type(next(devin.list_sessions(tags=['ci'])))\n"  # line 4
        "devin.get_session(42)\n"  # line 5: wrong argument type
        "devin.await_session('devin-abc', timeout='soon')\n"  # line 6
        "SyncDevinClient(max_retries='many')\n"  # line 7
        "devin.list_messages('devin-abc', frist=10)\n"  # line 8: no such keyword
    )
    monkeypatch.setenv("MYPYPATH", str(ROOT))  # this checkout's devin_async
    out, err, status = mypy_api.run(
        ["--strict", "--no-error-summary", "--cache-dir", str(tmp_path / "cache"), str(checked)]
    )
    lines = {int(line.split(":")[1]): line for line in out.splitlines() if line.count(":") >= 2}
    assert status == 1, out + err
    assert 'Revealed type is "devin_async._models.Session"' in lines[3]
    assert 'Revealed type is "devin_async._models.Session"' in lines[4]
    for line in (5, 6, 7):
        assert "[arg-type]" in lines[line]
    assert "[call-arg]" in lines[8]
    assert sorted(lines) == [3, 4, 5, 6, 7, 8], out
