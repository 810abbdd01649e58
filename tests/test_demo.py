"""The demo and the examples run end to end against the embedded fake server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from fakes import clean_env, make_session, spawn_cli

from devin_async import _demo
from devin_async.testing import FakeDevinServer, Step

ROOT = Path(__file__).resolve().parent.parent


async def test_demo_settles_every_session_and_prints_a_summary(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert await _demo.run(count=10, seed=3) == 0
    out = capsys.readouterr().out
    assert "settled: 10 sessions" in out
    assert "error" in out  # session #4 is scripted to error
    assert "suspended" in out  # session #8 is scripted to suspend
    assert "HTTP requests:" in out


async def test_demo_real_mode_without_a_key_never_touches_the_network(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DEVIN_API_KEY", raising=False)
    assert await _demo.run(count=1, real=True) == 2
    assert "DEVIN_API_KEY" in capsys.readouterr().err


async def test_demo_live_table_redraws_in_place(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "120")  # the size of the terminal we pretend to draw on
    monkeypatch.setenv("LINES", "40")
    assert await _demo.run(count=4, seed=3, live=True) == 0
    out = capsys.readouterr().out
    assert "\x1b[2KSESSION" in out
    assert "\x1b[6A\r" in out  # header, 4 rows and the count line are redrawn in place
    final = out.rsplit("\x1b[6A\r", 1)[-1]
    assert "\x1b[2K4/4 settled" in final
    assert "settled: 4 sessions" in out


async def test_demo_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    assert await _demo.run(count=3, seed=3, json_lines=True) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["event"] for e in events] == ["settled", "settled", "settled", "summary"]
    assert all(e["session"]["session_id"].startswith("devin-") for e in events[:3])
    assert events[-1]["settled"] == 3
    assert sum(events[-1]["outcomes"].values()) == 3
    assert events[-1]["http_requests"] > 3


def rows(*settled: float | None) -> list[_demo.Row]:
    return [
        _demo.Row(f"devin-{i:032x}", f"Task {i}", started=10.0, state="running/working", settled=s)
        for i, s in enumerate(settled)
    ]


def test_render_row_freezes_elapsed_once_settled() -> None:
    pending, done = rows(None, 12.5)
    assert _demo.render_row(pending, now=20.0) == (
        f"{pending.session_id[:18]}  {'running/working':<26}   10.0s  Task 0"
    )
    assert _demo.render_row(done, now=99.0).endswith("    2.5s  Task 1")


def test_render_frame_has_a_header_rows_and_a_count() -> None:
    lines = _demo.render_frame(rows(None, 12.0, None), now=15.0)
    assert lines[0].split() == ["SESSION", "STATUS", "ELAPSED", "TITLE"]
    assert [line.split()[-1] for line in lines[1:4]] == ["0", "1", "2"]
    assert lines[-1] == "1/3 settled"


def test_render_frame_cuts_lines_to_the_width() -> None:
    lines = _demo.render_frame(rows(None), now=15.0, width=30)
    assert all(len(line) <= 30 for line in lines)
    assert lines[1].endswith("…")


def test_render_frame_keeps_pending_rows_when_the_terminal_is_short() -> None:
    table = rows(11.0, None, 11.0, None, 11.0, None)
    lines = _demo.render_frame(table, now=15.0, height=6)
    assert len(lines) <= 6
    assert [line.split()[-1] for line in lines[1:3]] == ["1", "3"]  # pending first, in order
    assert lines[-2] == "... and 4 more"
    assert lines[-1] == "3/6 settled"


def test_redraw_moves_up_over_the_previous_frame_and_clears_the_rest() -> None:
    assert _demo.redraw(["a", "b"], previous=0) == "\x1b[2Ka\n\x1b[2Kb\n\x1b[J"
    assert _demo.redraw(["a"], previous=3) == "\x1b[3A\r\x1b[2Ka\n\x1b[J"


async def test_demo_real_mode_talks_to_the_configured_api(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with FakeDevinServer(default_timeline=[Step("running", "finished")]) as server:
        monkeypatch.setenv("DEVIN_API_KEY", server.api_key)
        code = await _demo.run(count=1, real=True, org_id=server.org_id, base_url=server.url)
        assert code == 0
        assert server.sessions_created == 1
    out = capsys.readouterr().out
    assert "settled: 1 sessions (1 finished)" in out
    assert "HTTP requests" not in out  # not counted against a server we do not run


def test_demo_main_real_without_a_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DEVIN_API_KEY", raising=False)
    assert _demo.main(["--real"]) == 2
    assert "DEVIN_API_KEY" in capsys.readouterr().err


def test_demo_rejects_a_bad_count() -> None:
    with pytest.raises(SystemExit) as exc_info:
        _demo.main(["--count", "0"])
    assert exc_info.value.code == 2


def test_python_m_demo_takes_the_options_of_the_cli_command() -> None:
    def help_text(*argv: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", *argv, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    module = help_text("devin_async.demo")
    assert module == help_text("devin_async.cli", "demo")
    for option in ("--count", "--seed", "--real", "--json", "--org-id", "--base-url"):
        assert option in module


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("create_and_await.py", "settled as running/finished"),
        ("fan_out.py", "{'finished': 200}"),
        ("watch.py", "Devin needs an answer"),
        ("bot.py", "outcome: running/finished"),
        ("metrics.py", "waits_finished_total{outcome=settled} 10"),
        ("attachments_bot.py", "summary: Analysis of Review release-checklist.txt"),
        ("sync_script.py", "settled as running/finished"),
    ],
)
def test_examples_run_against_the_fake_server(name: str, expected: str) -> None:
    # A user's exported key (and a base URL) never send an example anywhere without --real:
    # the "real" server here is a listening socket that must see no connection at all.
    with socket.socket() as real:
        real.bind(("127.0.0.1", 0))
        real.listen()
        real.setblocking(False)
        env = {k: v for k, v in os.environ.items() if not k.startswith("DEVIN_")}
        env["DEVIN_API_KEY"] = "apk_user_exported_key"
        env["DEVIN_ORG_ID"] = "org-exported"
        env["DEVIN_BASE_URL"] = f"http://127.0.0.1:{real.getsockname()[1]}"
        result = subprocess.run(
            [sys.executable, str(ROOT / "examples" / name)],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )
        with pytest.raises(BlockingIOError):
            real.accept()
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout
    assert "--real" not in result.stderr


@pytest.mark.parametrize(
    "name",
    [
        "create_and_await.py",
        "fan_out.py",
        "watch.py",
        "bot.py",
        "metrics.py",
        "attachments_bot.py",
        "sync_script.py",
    ],
)
def test_examples_with_real_say_what_they_start(name: str) -> None:
    # --real goes to DEVIN_BASE_URL (a closed port here, so nothing is started) after
    # one line saying what it would start.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVIN_")}
    env.update(DEVIN_API_KEY="apk_user_exported_key", DEVIN_ORG_ID="org-exported")
    env["DEVIN_BASE_URL"] = f"http://127.0.0.1:{port}"
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), "--real"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert "--real: this starts " in result.stderr
    assert "on the real Devin API" in result.stderr
    assert "apk_user_exported_key" not in result.stdout + result.stderr


def test_attachments_bot_uploads_the_given_file_and_attaches_it(tmp_path: Path) -> None:
    notes = tmp_path / "design-notes.md"
    notes.write_text("# Design\n\nOne engine for every wait.\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVIN_")}
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "attachments_bot.py"), str(notes)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("uploaded design-notes.md: http://127.0.0.1:")
    assert lines[0].endswith("/design-notes.md")
    assert "attached: design-notes.md" in lines  # the session lists what the create carried
    settled = lines.index("settled as running/finished")
    insights = next(i for i, line in enumerate(lines) if line.startswith("insights of devin-"))
    assert settled < insights  # generated once the session settled
    assert "2 Devin and 1 user messages" in lines[insights]
    assert lines[insights + 1] == "  summary: Analysis of Review design-notes.md"


def test_attachments_bot_refuses_a_missing_file(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "attachments_bot.py"), str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "no such file" in result.stderr
    assert "Traceback" not in result.stderr


async def _interrupted(*argv: str, ready: Callable[[str], bool]) -> tuple[int | None, str]:
    """Run ``devin-async ARGV``, send SIGINT once a stdout line is ``ready``; return (code, err)."""
    env = clean_env(DEVIN_API_KEY="apk_user_exported_key")  # the demo must not need it
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    process = await spawn_cli(*argv, env=env)
    assert process.stdout is not None
    try:
        seen = []
        while not seen or not ready(seen[-1]):
            line = await asyncio.wait_for(process.stdout.readline(), 30)
            assert line, f"ended before it was ready: {seen}"
            seen.append(line.decode())
        process.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(process.communicate(), 20)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return process.returncode, err.decode()


async def test_ctrl_c_stops_the_demo_with_one_line_and_no_traceback() -> None:
    # The first settled line: the waits of every other session are pending.
    code, err = await _interrupted("demo", ready=lambda line: "devin-" in line)
    assert code == 130
    assert err.splitlines() == ["interrupted"]
    assert "Traceback" not in err
    assert "never retrieved" not in err


async def test_ctrl_c_stops_the_fake_server_with_exit_0() -> None:
    # Ctrl-C is the fake server's documented stop: exit 0, so `make fake-server` ends quietly.
    code, err = await _interrupted(
        "fake-server", "--port", "0", ready=lambda line: line.startswith("export ")
    )
    assert code == 0
    assert "served 0 requests" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("status", "detail", "shown"),
    [("running", "finished", "finished"), ("running", None, "running"), ("exit", None, "exit")],
)
def test_an_outcome_never_reads_none(status: str, detail: str | None, shown: str) -> None:
    session = make_session(status, detail)
    assert _demo._outcome(session) == shown
