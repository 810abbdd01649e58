"""(c) Decode one ~1 KB SessionResponse into a typed model: devin_async vs pydantic v2 vs msgspec.

Two rows per library:

- ``dict -> model``: the decoded JSON dict is structured into the model. For devin_async
  that is ``_convert.structure_session(dict)`` (strict JSON types, open enums), as list
  pages and waits do: ``msgspec.convert`` into a Struct derived from the model, then the
  model, with the cattrs-generated function for what msgspec refuses. That function alone
  is shown as "cattrs only". pydantic is ``Model.model_validate(dict)``; msgspec is
  ``msgspec.convert(dict, Struct)``.
- ``bytes -> model``: from the response body. devin_async does
  ``_convert.decode_session``, as ``get_session`` does (msgspec straight into a Struct
  derived from the model, then the model); "cattrs only" is ``_convert.loads`` then the
  cattrs function; pydantic ``model_validate_json``; msgspec
  ``msgspec.json.decode(body, type=Struct)``. ``json.loads`` alone is shown for reference.

The competing models have the same fields and the same container types (tuples, nested
pull requests, free-form ``structured_output``). Open enums (``SessionStatus | str``) are
kept for pydantic with left-to-right unions, so it yields enum members as cattrs does;
msgspec cannot mix a str enum with ``str`` in a union, so its enum fields are plain
``str`` (slightly less work). pydantic runs in its default (lax) mode. All three outputs
are checked equal before timing.

Timing uses ``timeit`` (which turns the GC off while timing): each variant's loop count is
calibrated once, then the variants run interleaved for several rounds and each reports
the median (and best) of its rounds.
"""

from __future__ import annotations

import argparse
import json
import sys
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import attrs
import msgspec
import pydantic

from devin_async import _convert
from devin_async._models import (
    Session,
    SessionCategory,
    SessionOrigin,
    SessionStatus,
    StatusDetail,
)

from ._payload import BODY, SESSION
from ._util import median, quantile, table, verdict

__all__ = ["Config", "main", "run"]

_L2R = pydantic.Field(union_mode="left_to_right")


class PydPullRequest(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True)

    pr_url: str
    pr_state: str | None = None


class PydSession(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True)

    session_id: str
    url: str
    status: Annotated[SessionStatus | str, _L2R]
    org_id: str
    created_at: int
    updated_at: int
    acus_consumed: float
    tags: tuple[str, ...] = ()
    pull_requests: tuple[PydPullRequest, ...] = ()
    status_detail: Annotated[StatusDetail | str | None, _L2R] = None
    category: Annotated[SessionCategory | str | None, _L2R] = None
    subcategory: str | None = None
    origin: Annotated[SessionOrigin | str | None, _L2R] = None
    child_session_ids: tuple[str, ...] | None = None
    parent_session_id: str | None = None
    is_archived: bool = False
    playbook_id: str | None = None
    service_user_id: str | None = None
    user_id: str | None = None
    title: str | None = None
    structured_output: dict[str, Any] | None = None


class MsgPullRequest(msgspec.Struct, frozen=True):
    pr_url: str
    pr_state: str | None = None


class MsgSession(msgspec.Struct, frozen=True):
    session_id: str
    url: str
    status: str
    org_id: str
    created_at: int
    updated_at: int
    acus_consumed: float
    tags: tuple[str, ...] = ()
    pull_requests: tuple[MsgPullRequest, ...] = ()
    status_detail: str | None = None
    category: str | None = None
    subcategory: str | None = None
    origin: str | None = None
    child_session_ids: tuple[str, ...] | None = None
    parent_session_id: str | None = None
    is_archived: bool = False
    playbook_id: str | None = None
    service_user_id: str | None = None
    user_id: str | None = None
    title: str | None = None
    structured_output: dict[str, Any] | None = None


_msg_decoder = msgspec.json.Decoder(MsgSession)

OURS = "devin_async"
PYDANTIC = "pydantic v2"
MSGSPEC = "msgspec"
JSON_ONLY = "json.loads only"
CATTRS_ONLY = "cattrs only"

_by_cattrs = _convert._session_by_cattrs

DICT_CASES: dict[str, Callable[[], object]] = {
    OURS: lambda: _convert.structure_session(SESSION),
    CATTRS_ONLY: lambda: _by_cattrs(SESSION, Session),
    PYDANTIC: lambda: PydSession.model_validate(SESSION),
    MSGSPEC: lambda: msgspec.convert(SESSION, type=MsgSession),
}
BYTES_CASES: dict[str, Callable[[], object]] = {
    OURS: lambda: _convert.decode_session(BODY),
    CATTRS_ONLY: lambda: _by_cattrs(_convert.loads(BODY), Session),
    PYDANTIC: lambda: PydSession.model_validate_json(BODY),
    MSGSPEC: lambda: _msg_decoder.decode(BODY),
    JSON_ONLY: lambda: json.loads(BODY),
}


def _plain(model: object) -> object:
    """Return a model as plain JSON values, whatever library built it."""
    if isinstance(model, pydantic.BaseModel):
        data: object = model.model_dump()
    elif isinstance(model, msgspec.Struct):
        data = msgspec.to_builtins(model)
    elif attrs.has(type(model)):
        data = attrs.asdict(model)  # type: ignore[arg-type]
    else:
        data = model
    return json.loads(json.dumps(data))


def check_equivalent() -> None:
    """Raise if the decoders disagree on the payload (so the timings compare like work)."""
    want = json.loads(BODY)
    for name, fn in [*DICT_CASES.items(), *BYTES_CASES.items()]:
        got = _plain(fn())
        if got != want:
            raise AssertionError(f"{name} decodes the payload differently: {got!r}")
    for name, fn in ((OURS, DICT_CASES[OURS]), (CATTRS_ONLY, DICT_CASES[CATTRS_ONLY])):
        if getattr(fn(), "status", None) is not SessionStatus.RUNNING:
            raise AssertionError(f"{name} did not produce an enum member")
    if PydSession.model_validate(SESSION).status is not SessionStatus.RUNNING:
        raise AssertionError("pydantic did not produce an enum member")


@dataclass
class Config:
    rounds: int = 40
    target_s: float = 0.04  # time per variant per round

    @classmethod
    def quick(cls) -> Config:
        return cls(rounds=12, target_s=0.015)


def _time_cases(cases: dict[str, Callable[[], object]], cfg: Config) -> dict[str, list[float]]:
    timers = {name: timeit.Timer(fn) for name, fn in cases.items()}
    loops = {}
    for name, timer in timers.items():
        number, elapsed = timer.autorange()
        loops[name] = max(1, int(number * cfg.target_s / max(elapsed, 1e-9)))
    out: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for r in range(cfg.rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            out[name].append(timers[name].timeit(loops[name]) / loops[name] * 1e6)
    return out


@dataclass
class Result:
    config: Config
    dict_us: dict[str, list[float]]
    bytes_us: dict[str, list[float]]


def run(cfg: Config) -> Result:
    check_equivalent()
    return Result(cfg, _time_cases(DICT_CASES, cfg), _time_cases(BYTES_CASES, cfg))


def _paired(data: dict[str, list[float]], num: str, den: str) -> list[float]:
    return [a / b for a, b in zip(data[num], data[den], strict=True)]


def report(result: Result) -> str:
    names = [OURS, PYDANTIC, MSGSPEC, JSON_ONLY, CATTRS_ONLY]
    rows = []
    for label, data in (("dict -> model", result.dict_us), ("bytes -> model", result.bytes_us)):
        cells = [label]
        for name in names:
            us = data.get(name)
            cells.append(
                f"{median(us):.2f} ({quantile(us, 0.25):.1f}-{quantile(us, 0.75):.1f})"
                if us
                else "-"
            )
        cells.append(f"{median(_paired(data, OURS, PYDANTIC)):.2f}x")
        cells.append(f"{median(_paired(data, OURS, MSGSPEC)):.2f}x")
        rows.append(cells)
    title = (
        f"(c) decode a {len(BODY):,}-byte SessionResponse: us per decode, median (IQR) of "
        f"{result.config.rounds} interleaved timeit rounds"
    )
    headers = ["input", *names, "ours/pydantic", "ours/msgspec"]
    out = [table(headers, rows, title), ""]
    ratios = _paired(result.dict_us, OURS, PYDANTIC)
    out.append("devin_async / pydantic (dict -> model): " + verdict(ratios, 1.0, below=True))
    ratios = _paired(result.bytes_us, OURS, PYDANTIC)
    out.append("devin_async / pydantic (bytes -> model): " + verdict(ratios, 1.0, below=True))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="SessionResponse decode cost")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    print(report(run(Config.quick() if args.quick else Config())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
