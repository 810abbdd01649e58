"""The package layout: which modules may import aiohttp, and the testing kit's shape."""

from __future__ import annotations

import ast
from pathlib import Path

import devin_async
from devin_async import testing

PACKAGE = Path(devin_async.__file__).resolve().parent
HTTP_LIBRARIES = frozenset({"aiohttp", "multidict"})
# Modules that may import them at run time: the transport and the testing kit.
HTTP_MODULES = frozenset({"_transport.py"})


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _run_time_imports(tree: ast.AST) -> set[str]:
    """Return the top-level names of the absolute imports outside ``if TYPE_CHECKING:``."""
    found: set[str] = set()
    pending = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            pending.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.partition(".")[0])
        pending.extend(ast.iter_child_nodes(node))
    return found


def _modules() -> dict[str, ast.Module]:
    return {
        path.relative_to(PACKAGE).as_posix(): ast.parse(path.read_text(encoding="utf-8"))
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def test_the_scanner_sees_run_time_imports_only() -> None:
    tree = ast.parse(
        "import aiohttp.web\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import multidict\nelse:\n    import yarl\n"
        "def f():\n    from attrs import define\n"
        "from . import sibling\n"
    )
    assert _run_time_imports(tree) == {"aiohttp", "typing", "yarl", "attrs"}


def test_only_the_transport_and_the_testing_kit_import_aiohttp_at_run_time() -> None:
    modules = _modules()
    assert "_transport.py" in modules
    assert "testing/server.py" in modules
    importing = {name for name, tree in modules.items() if _run_time_imports(tree) & HTTP_LIBRARIES}
    assert "_transport.py" in importing
    outside = {name for name in importing if not name.startswith("testing/")}
    assert outside - HTTP_MODULES == set()


def test_no_class_of_the_testing_kit_is_over_300_lines() -> None:
    sizes = {
        f"{name}:{node.name}": (node.end_lineno or node.lineno) - node.lineno + 1
        for name, tree in _modules().items()
        if name.startswith("testing/")
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
    }
    assert "testing/server.py:FakeDevinServer" in sizes
    assert {name: size for name, size in sizes.items() if size > 300} == {}


def test_the_testing_kit_exports_its_public_names() -> None:
    assert set(testing.__all__) == {
        *("ERRORS", "EXITS", "FINISHES", "REDACTED", "SUSPENDS", "WAITS_FOR_APPROVAL"),
        *("WAITS_FOR_USER", "FakeDevinServer", "FakeSession", "FaultKind", "Quirks"),
        *("RecordedRequest", "Step", "StepLike", "timeline", "MockTransport", "mock_response"),
        *("ThreadedFakeDevin", "Gate", "InstantTime", "instant", "set_instant"),
    }
    for name in testing.__all__:
        assert getattr(testing, name) is not None
