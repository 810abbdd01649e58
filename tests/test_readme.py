"""The README's testing snippets run exactly as written, in a fresh project directory.

Every ``def test_`` code block of "Testing your code with the fake server" is copied,
with the section's ``pyproject.toml`` block and nothing else, into ``tmp_path`` and run
by pytest in a subprocess (warnings as errors), as a newcomer would run them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECTION = "Testing your code with the fake server"


def _section(title: str) -> str:
    """Return the text of the README's ``## title`` section, its subsections included."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def _blocks(text: str, language: str) -> list[str]:
    """Return the fenced code blocks of ``language`` in ``text``."""
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)


def test_the_section_has_its_config_and_tests() -> None:
    section = _section(SECTION)
    (config,) = _blocks(section, "toml")
    assert 'asyncio_mode = "auto"' in config
    assert "pytest-asyncio" in section
    assert len([b for b in _blocks(section, "python") if "def test_" in b]) >= 3


def test_the_testing_snippets_run_as_written(tmp_path: Path) -> None:
    section = _section(SECTION)
    (config,) = _blocks(section, "toml")
    snippets = [b for b in _blocks(section, "python") if "def test_" in b]
    (tmp_path / "pyproject.toml").write_text(config, encoding="utf-8")
    for number, code in enumerate(snippets, 1):
        (tmp_path / f"test_snippet_{number}.py").write_text(code, encoding="utf-8")
    # This checkout's package, whatever is installed; no credentials of the caller's.
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVIN_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-W", "error", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    tests = sum(code.count("\ndef test_") + code.count("\nasync def test_") for code in snippets)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{tests} passed" in result.stdout, result.stdout
