"""The demo and the examples run end to end against the embedded fake server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devin_async import demo

ROOT = Path(__file__).resolve().parent.parent


async def test_demo_settles_every_session_and_prints_a_summary(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert await demo.run(count=10, seed=3) == 0
    out = capsys.readouterr().out
    assert "settled: 10 sessions" in out
    assert "error" in out  # session #4 is scripted to error
    assert "suspended" in out  # session #8 is scripted to suspend
    assert "HTTP requests:" in out


async def test_demo_real_mode_without_a_key_never_touches_the_network(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DEVIN_API_KEY", raising=False)
    assert await demo.run(count=1, real=True) == 2
    assert "DEVIN_API_KEY" in capsys.readouterr().err


def test_demo_rejects_a_bad_count() -> None:
    with pytest.raises(SystemExit):
        demo.main(["--count", "0"])


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("create_and_await.py", "settled as running/finished"),
        ("fan_out.py", "{'finished': 200}"),
        ("watch.py", "Devin needs an answer"),
    ],
)
def test_examples_run_against_the_fake_server(name: str, expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVIN_")}
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout
