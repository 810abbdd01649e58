"""The flat public namespace: sorted, complete, and every name real."""

from __future__ import annotations

import importlib
import importlib.resources
import inspect
from types import ModuleType

import pytest

import devin_async
from devin_async import _errors

# Private modules whose __all__ is public API, with the names deliberately kept internal.
PUBLIC_MODULES: dict[str, set[str]] = {
    "devin_async._client": set(),
    "devin_async._paging": {"EMPTY_PAGE_LIMIT"},  # the bound on endless empty pages
    "devin_async._events": {"Hooks"},  # the client's dispatcher
    "devin_async._errors": {"StatusInfo"},  # typing helper for the constructors' **kwargs
    "devin_async._models": {"SendMessageRequest", "TagsRequest"},  # bodies the client builds
    "devin_async._protocol": {  # request building and decoding: only the shapes are public
        name
        for name in importlib.import_module("devin_async._protocol").__all__
        if name not in {"Request", "Response", "Transport"}
    },
    "devin_async._waiting": {  # the engine and its parts behind every wait
        "LIST_BATCH",
        "Engine",
        "IdsSource",
        "Wait",
        "WaitOptions",
        "Waiter",
        "WatermarkSource",
        "await_one",
        "wait_timed_out",
    },
    "devin_async._fanout": {"create_many"},  # the loop behind create_sessions
    "devin_async._convert": {  # the wire: only the wait-state codec is public
        "dumps_create_request",
        "dumps_message_request",
        "dumps_tags_request",
        "error_summary",
        "loads",
        "loads_error_body",
        "session_row",
        "session_rows",
        "structure",
        "structure_attachments",
        "structure_message_page",
        "structure_session",
        "structure_session_page",
        "structure_tags",
        "structure_uploaded",
        "unstructure",
        "structure_insights",
        "structure_insights_generation",
    },
    "devin_async._insights": {"InsightsCalls"},  # a base class of DevinClient
    "devin_async._sync": set(),
}


def _module(name: str) -> ModuleType:
    return importlib.import_module(name)


def test_all_has_no_duplicates() -> None:
    assert len(devin_async.__all__) == len(set(devin_async.__all__))


@pytest.mark.parametrize("name", devin_async.__all__)
def test_every_exported_name_resolves(name: str) -> None:
    assert getattr(devin_async, name) is not None


@pytest.mark.parametrize("module_name", sorted(PUBLIC_MODULES))
def test_public_names_of_each_module_are_exported(module_name: str) -> None:
    module = _module(module_name)
    internal = PUBLIC_MODULES[module_name]
    assert internal <= set(module.__all__), "stale entry in PUBLIC_MODULES"
    for name in set(module.__all__) - internal:
        assert name in devin_async.__all__, f"{module_name}.{name} is not exported"
        assert getattr(devin_async, name) is getattr(module, name)


def test_every_exception_class_is_exported() -> None:
    classes = [
        name
        for name, obj in vars(_errors).items()
        if inspect.isclass(obj)
        and issubclass(obj, BaseException)
        and obj.__module__ in {_errors.__name__, "devin_async"}
    ]
    assert classes
    assert set(classes) <= set(devin_async.__all__)


def test_every_export_comes_from_a_module_all() -> None:
    declared = {name for module in PUBLIC_MODULES for name in _module(module).__all__}
    assert set(devin_async.__all__) - declared == {"__version__"}


def test_design_names_are_exported() -> None:
    # The names design.md's examples import.
    for name in ("DevinClient", "Session", "SessionStatus", "StatusDetail", "await_session"):
        assert name in devin_async.__all__


def test_version_is_a_string() -> None:
    assert isinstance(devin_async.__version__, str)
    assert devin_async.__version__


def test_package_ships_py_typed() -> None:
    assert importlib.resources.files("devin_async").joinpath("py.typed").is_file()
