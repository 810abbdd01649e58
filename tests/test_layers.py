"""The layers of ARCHITECTURE.md: each module imports only its own row and those below."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "devin_async"

# Bottom row first, as in ARCHITECTURE.md.
LAYERS: list[set[str]] = [
    {"_errors", "_models", "_events", "_version", "_filters"},
    {"_convert"},
    {"_protocol", "_multipart"},
    {"_retry", "_limits"},
    {"_transport"},
    {"_pipeline"},
    {"_create", "_paging", "_fanout", "_attachments"},
    {"_waiting", "_insights"},
    {"_settings", "_client"},
    {"_sync"},
    {"cli", "_cli", "testing", "demo", "_demo", "pytest_plugin", "__init__", "__main__"},
]
ROW = {name: row for row, names in enumerate(LAYERS) for name in names}


def _top(module: str) -> str:
    """``_waiting`` for ``_waiting.engine``, ``testing`` for ``testing.server``."""
    return module.split(".")[0]


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """The package modules ``path`` imports (at run time or for typing), by top name."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _name(path).split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)]
            if node.module:
                found.add(_top(".".join([*base, node.module])))
            else:
                found.update(_top(".".join([*base, alias.name])) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("devin_async."):
            found.add(_top(node.module.removeprefix("devin_async.")))  # type: ignore[union-attr]
    return found


def test_every_module_has_a_layer() -> None:
    tops = {_top(_name(path)) for path in _modules()}
    assert tops - ROW.keys() == set(), "add the new module to ARCHITECTURE.md and LAYERS"


@pytest.mark.parametrize("path", _modules(), ids=_name)
def test_a_module_imports_only_its_row_and_below(path: Path) -> None:
    own = ROW[_top(_name(path))]
    above = {name for name in _imports(path) if name in ROW and ROW[name] > own}
    assert above == set(), f"{_name(path)} (row {own}) imports higher layers: {above}"


def test_the_check_sees_imports() -> None:
    # The pipeline's imports, as the test reads them: proof that it does not pass blind.
    assert {"_convert", "_protocol", "_limits", "_retry"} <= _imports(PACKAGE / "_pipeline.py")
    assert "_pipeline" in _imports(PACKAGE / "_waiting" / "calls.py")
