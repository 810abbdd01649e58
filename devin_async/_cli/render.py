"""Pure rendering of sessions and messages for a terminal or as JSON, and stdout helpers."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TextIO

from .. import _convert
from .._client import CREATE_TAG_PREFIX
from .._models import Message, Session


def session_json(session: Session) -> dict[str, Any]:
    """Return a session as a JSON-ready dict under the API's field names."""
    document: dict[str, Any] = _convert.unstructure(session)
    return document


def message_json(message: Message) -> dict[str, Any]:
    """Return a message as a JSON-ready dict under the API's field names."""
    document: dict[str, Any] = _convert.unstructure(message)
    return document


def dumps(document: object) -> str:
    """Encode one JSON document on one line."""
    return json.dumps(document, ensure_ascii=False)


def format_state(session: Session) -> str:
    """Return ``status/status_detail``, or the status alone when there is no detail."""
    detail = session.status_detail
    return f"{session.status}/{detail}" if detail else str(session.status)


def format_time(timestamp: float) -> str:
    """Return Unix seconds as a local date and time with its zone."""
    return datetime.fromtimestamp(timestamp).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def format_duration(seconds: float) -> str:
    """Return a compact duration: ``42s``, ``3m05s``, ``2h07m``."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def format_age(timestamp: float, now: float) -> str:
    """Return how long ago ``timestamp`` was (both Unix seconds): ``5m ago``."""
    age = max(0, int(now - timestamp))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if age >= size:
            return f"{age // size}{unit} ago"
    return f"{age}s ago"


def _visible_tags(session: Session) -> list[str]:
    """Tags a person set: the client's exactly-once create tag is noise on a terminal."""
    return [t for t in session.tags if not t.startswith(CREATE_TAG_PREFIX)]


def render_session(session: Session) -> str:
    """Render a session as a compact block: id, status, title, url, PRs, ACUs, ..."""
    rows = [
        ("status", format_state(session)),
        ("title", session.title or "-"),
        ("url", session.url),
    ]
    rows += [("PR", f"{pr.pr_url} ({pr.pr_state or 'unknown'})") for pr in session.pull_requests]
    rows.append(("ACUs", f"{session.acus_consumed:g}"))
    if tags := _visible_tags(session):
        rows.append(("tags", ", ".join(tags)))
    rows.append(("created", format_time(session.created_at)))
    rows.append(("updated", format_time(session.updated_at)))
    if session.structured_output is not None:
        rows.append(("output", dumps(session.structured_output)))
    return "\n".join([session.session_id, *(f"  {k:<8} {v}" for k, v in rows)])


def render_table(sessions: Sequence[Session], now: float, width: int | None = None) -> str:
    """Render sessions as an aligned table; titles are cut to fit ``width`` columns if given."""
    header = ("SESSION", "STATUS", "UPDATED", "ACUS", "TITLE")
    rows = [
        (
            s.session_id,
            format_state(s),
            format_age(s.updated_at, now),
            f"{s.acus_consumed:g}",
            s.title or "-",
        )
        for s in sessions
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for row in [header, *rows]:
        line = "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False))
        lines.append(fit(f"{line}  {row[-1]}", width))
    return "\n".join(lines)


def fit(text: str, width: int | None) -> str:
    """Cut ``text`` to ``width`` characters, marking the cut with an ellipsis."""
    if width is None or len(text) <= width:
        return text
    return text[: max(0, width - 1)] + "…"


def render_message(message: Message) -> str:
    """Render a message as ``[HH:MM:SS] source: text``, continuation lines indented."""
    clock = datetime.fromtimestamp(message.created_at).strftime("%H:%M:%S")
    prefix = f"[{clock}] {message.source}: "
    first, *rest = message.message.splitlines() or [""]
    return "\n".join([prefix + first, *(" " * len(prefix) + line for line in rest)])


def render_progress(session_id: str, session: Session | None, elapsed: float) -> str:
    """Render the status line of a wait."""
    state = format_state(session) if session is not None else "waiting for the first poll"
    return f"{session_id}  {state}  {format_duration(elapsed)}"


def is_tty(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal (a stream without ``isatty`` is not)."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def say(text: str = "") -> None:
    """Print one result on stdout, flushed: a reader of a pipe sees it at once."""
    print(text, flush=True)
