"""The ``devin-async`` command: renderers and parsing in-process, commands end to end.

Pure renderers and the parser are tested directly. Commands run in-process through
``cli.main`` against a ``FakeDevinServer`` served from a background thread (``main``
runs its own event loop), and a few run as real subprocesses to check exit codes, that
no traceback or key is printed, ``fake-server`` and Ctrl-C.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Coroutine, Iterator
from datetime import datetime
from typing import Any, TypeVar

import aiohttp
import pytest
from fakes import clean_env, spawn_cli

from devin_async import (
    APIConnectionError,
    AuthenticationError,
    AwaitTimeoutError,
    ConfigurationError,
    DevinClient,
    DevinError,
    InternalServerError,
    Message,
    NotFoundError,
    PermissionDeniedError,
    PullRequest,
    RateLimitError,
    Session,
    cli,
)
from devin_async.testing import FINISHES, WAITS_FOR_USER, FakeDevinServer, Step

T = TypeVar("T")
KEY, ORG = "cog_cli_test_key_123", "org-cli"
NOW = 1_750_000_000


def make_session(**fields: Any) -> Session:
    base: dict[str, Any] = {
        "session_id": "devin-0123456789abcdef",
        "url": "https://app.devin.ai/sessions/devin-0123456789abcdef",
        "status": "running",
        "status_detail": "working",
        "org_id": ORG,
        "created_at": NOW - 600,
        "updated_at": NOW - 90,
        "acus_consumed": 1.25,
        "title": "Fix the flaky test",
    }
    return Session(**{**base, **fields})


def status_error(cls: type[Exception], status: int, message: str) -> Exception:
    return cls(
        message,
        status_code=status,
        body={},
        headers={},
        request_id=None,
        method="GET",
        url="http://127.0.0.1/v3",
    )


# --------------------------------------------------------------------------- renderers


@pytest.mark.parametrize(
    ("status", "detail", "expected"),
    [
        ("running", "working", "running/working"),
        ("exit", None, "exit"),
        ("brand_new_status", "odd", "brand_new_status/odd"),
    ],
    ids=["with-detail", "no-detail", "unknown-values"],
)
def test_format_state(status: str, detail: str | None, expected: str) -> None:
    assert cli.format_state(make_session(status=status, status_detail=detail)) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(-1, "0s"), (0.4, "0s"), (42, "42s"), (185, "3m05s"), (7620, "2h07m")],
    ids=["negative", "under-a-second", "seconds", "minutes", "hours"],
)
def test_format_duration(seconds: float, expected: str) -> None:
    assert cli.format_duration(seconds) == expected


@pytest.mark.parametrize(
    ("age", "expected"),
    [(-5, "0s ago"), (12, "12s ago"), (300, "5m ago"), (7200, "2h ago"), (3 * 86400, "3d ago")],
    ids=["future", "seconds", "minutes", "hours", "days"],
)
def test_format_age(age: int, expected: str) -> None:
    assert cli.format_age(NOW - age, NOW) == expected


def test_format_time_is_local_with_its_zone() -> None:
    local = datetime.fromtimestamp(NOW).astimezone()
    assert cli.format_time(NOW) == local.strftime("%Y-%m-%d %H:%M:%S ") + local.strftime("%Z")


def test_render_session_shows_the_compact_block() -> None:
    session = make_session(
        pull_requests=(PullRequest("https://github.com/o/r/pull/7", "open"), PullRequest("u2")),
        tags=("ci", "devin-async-create:0123abcd"),
        structured_output={"summary": "done"},
    )
    lines = cli.render_session(session).splitlines()
    assert lines[0] == "devin-0123456789abcdef"
    assert "  status   running/working" in lines
    assert "  title    Fix the flaky test" in lines
    assert "  url      https://app.devin.ai/sessions/devin-0123456789abcdef" in lines
    assert "  PR       https://github.com/o/r/pull/7 (open)" in lines
    assert "  PR       u2 (unknown)" in lines
    assert "  ACUs     1.25" in lines
    assert "  tags     ci" in lines  # the exactly-once create tag is hidden
    assert '  output   {"summary": "done"}' in lines
    assert any(line.startswith("  created  ") for line in lines)


def test_render_session_minimal() -> None:
    text = cli.render_session(make_session(title=None, tags=(), status="exit", status_detail=None))
    assert "  title    -" in text
    assert "tags" not in text
    assert "output" not in text
    assert "PR" not in text


def test_render_table_aligns_columns_and_cuts_titles_to_the_width() -> None:
    sessions = [
        make_session(),
        make_session(
            session_id="devin-ff",
            status="exit",
            status_detail=None,
            updated_at=NOW - 7200,
            acus_consumed=12.5,
            title=None,
        ),
    ]
    lines = cli.render_table(sessions, NOW).splitlines()
    assert lines[0].split() == ["SESSION", "STATUS", "UPDATED", "ACUS", "TITLE"]
    assert lines[1].split() == [
        "devin-0123456789abcdef",
        "running/working",
        "1m",
        "ago",
        "1.25",
        *["Fix", "the", "flaky", "test"],
    ]
    assert lines[2].split() == ["devin-ff", "exit", "2h", "ago", "12.5", "-"]
    starts = {
        line.index(word) for line, word in zip(lines, ["STATUS", "running", "exit"], strict=True)
    }
    assert len(starts) == 1  # the STATUS column is aligned
    narrow = cli.render_table(sessions, NOW, width=40).splitlines()
    assert all(len(line) <= 40 for line in narrow)
    assert narrow[1].endswith("…")


def test_render_message_indents_continuation_lines() -> None:
    message = Message(
        event_id="e1", message="Which branch?\nmain or dev", source="devin", created_at=NOW
    )
    clock = datetime.fromtimestamp(NOW).strftime("%H:%M:%S")
    first, second = cli.render_message(message).splitlines()
    assert first == f"[{clock}] devin: Which branch?"
    assert second == " " * len(f"[{clock}] devin: ") + "main or dev"
    empty = Message(event_id="e2", message="", source="user", created_at=NOW)
    assert cli.render_message(empty) == f"[{clock}] user: "


def test_render_progress_and_banner() -> None:
    assert cli.render_progress("devin-1", None, 3) == "devin-1  waiting for the first poll  3s"
    assert cli.render_progress("devin-1", make_session(), 65) == "devin-1  running/working  1m05s"
    url, export = cli.render_banner(cli.fake_env("http://127.0.0.1:9", "cog_k", "org-x"))
    assert url == "http://127.0.0.1:9"
    assert (
        export == "export DEVIN_BASE_URL=http://127.0.0.1:9 DEVIN_API_KEY=cog_k DEVIN_ORG_ID=org-x"
    )


def test_json_renderers_round_trip() -> None:
    session = make_session(pull_requests=(PullRequest("u", "open"),), tags=("a",))
    document = json.loads(cli.dumps(cli.session_json(session)))
    assert document["session_id"] == session.session_id
    assert document["status"] == "running"
    assert document["pull_requests"] == [{"pr_url": "u", "pr_state": "open"}]
    assert document["tags"] == ["a"]
    message = Message(event_id="e1", message="hé", source="devin", created_at=NOW)
    assert json.loads(cli.dumps(cli.message_json(message)))["message"] == "hé"


@pytest.mark.parametrize(
    ("error", "code", "says"),
    [
        (cli.CliError("DEVIN_API_KEY is not set"), 2, "DEVIN_API_KEY is not set"),
        (cli.CliError("port taken", cli.EXIT_ERROR), 1, "port taken"),
        (ConfigurationError("bad base_url"), 2, "bad base_url"),
        (ValueError("invalid session id '../x'"), 2, "invalid session id"),
        (status_error(AuthenticationError, 401, "HTTP 401"), 3, "was rejected"),
        (status_error(PermissionDeniedError, 403, "HTTP 403"), 3, "lacks a permission"),
        (status_error(NotFoundError, 404, "HTTP 404"), 4, "not found"),
        (AwaitTimeoutError("late", session=None, elapsed=1, polls=1), 5, "timed out: late"),
        (status_error(RateLimitError, 429, "HTTP 429"), 1, "rate limited"),
        (status_error(InternalServerError, 500, "HTTP 500"), 1, "HTTP 500"),
        (
            APIConnectionError("refused", method="GET", url="u", request_sent=False),
            1,
            "could not reach",
        ),
        (DevinError("odd"), 1, "odd"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_describe_error_maps_failures_to_exit_codes(error: Exception, code: int, says: str) -> None:
    got_code, message = cli.describe_error(error)
    assert got_code == code
    assert says in message
    assert "\n" not in message


def test_describe_error_reraises_what_it_does_not_know() -> None:
    with pytest.raises(RuntimeError):
        cli.describe_error(RuntimeError("a bug"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1750000000", 1_750_000_000),
        ("2025-06-15T15:06:40Z", 1_750_000_000),
        ("2025-06-15T17:06:40+02:00", 1_750_000_000),
        ("2025-06-15", int(datetime(2025, 6, 15).timestamp())),  # naive: local time
    ],
    ids=["unix", "utc", "offset", "naive-date"],
)
def test_parse_timestamp(text: str, expected: int) -> None:
    assert cli.parse_timestamp(text) == expected


def test_parse_timestamp_refuses_nonsense() -> None:
    with pytest.raises(Exception, match="ISO 8601"):
        cli.parse_timestamp("yesterday")


def test_fake_timeline_takes_a_few_seconds_and_numbers_its_pull_request() -> None:
    steps = cli.fake_timeline(7)
    assert 3 <= sum(step.seconds for step in steps) <= 10
    assert steps[-1].status_detail == "finished"
    assert steps[-1].pull_request == "https://github.com/example/app/pull/7"


# --------------------------------------------------------------------------- parser


def parse(*argv: str) -> Any:
    return cli.build_parser().parse_args(argv)


def test_global_options_go_before_or_after_the_command() -> None:
    after = parse("get", "devin-1", "--json", "--org-id", "org-a", "--base-url", "http://x")
    before = parse("--json", "--org-id", "org-a", "--base-url", "http://x", "get", "devin-1")
    for args in (after, before):
        assert (args.json, args.org_id, args.base_url) == (True, "org-a", "http://x")
    plain = parse("get", "devin-1")
    assert (plain.json, plain.org_id, plain.base_url) == (False, None, None)


def test_list_options_become_list_sessions_keywords() -> None:
    args = parse(
        "list",
        *("--tag", "a", "--tag", "b", "--session-id", "devin-1", "--origin", "api"),
        *("--user-id", "u1", "--not-archived", "--created-after", "2025-06-15T15:06:40Z"),
        *("--created-before", "1750000100", "--updated-after", "5", "--updated-before", "6"),
        *("--playbook-id", "p1", "--limit", "7"),
    )
    assert cli.list_filters(args) == {
        "limit": 7,
        "first": 7,
        "tags": ["a", "b"],
        "session_ids": ["devin-1"],
        "origins": ["api"],
        "user_ids": ["u1"],
        "playbook_id": "p1",
        "is_archived": False,
        "created_after": 1_750_000_000,
        "created_before": 1_750_000_100,
        "updated_after": 5,
        "updated_before": 6,
    }
    defaults = cli.list_filters(parse("list"))
    assert defaults["limit"] == 50
    assert defaults["is_archived"] is None
    assert parse("list", "--archived").archived is True


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["list", "--archived", "--not-archived"],
        ["list", "--limit", "0"],
        ["list", "--created-after", "soon"],
        ["wait", "devin-1", "--timeout", "-3"],
        ["wait", "devin-1", "--timeout", "nan"],
        ["wait", "devin-1", "--timeout", "soon"],
        ["fake-server", "--host", "192.0.2.1"],
        ["fake-server", "--port", "70000"],
        ["fake-server", "--rate-limit", "0"],
        ["fake-server", "--rate-limit", "inf"],
        ["fake-server", "--random-429", "1.5"],
        ["fake-server", "--random-429", "often"],
        ["fake-server", "--ignore-filter", "tag"],
        ["fake-server", "--array-encoding", "csv"],
        ["fake-server", "--list-lag-reads", "-1"],
        ["fake-server", "--list-lag-reads", "1.5"],
        ["fake-server", "--list-lag-seconds", "nan"],
        ["fake-server", "--message-lag-reads", "-1"],
        ["fake-server", "--message-lag-reads", "two"],
        ["create"],
        ["get", "devin-1", "--api-key", "cog_x"],  # never a flag: it would show in ps
    ],
    ids=lambda argv: " ".join(argv) or "no-command",
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert "usage: devin-async" in capsys.readouterr().err


def test_help_documents_every_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["wait", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert cli.__doc__ is not None
    for code in (0, 1, 2, 3, 4, 5, 6, 7, 130):
        assert re.search(rf"^\s+{code}\s+\S", out, re.MULTILINE), code
        assert re.search(rf"^\s+{code}\s+\S", cli.__doc__, re.MULTILINE), code
    assert "DEVIN_API_KEY" in out


# --------------------------------------------------------------------------- progress line


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_on_a_terminal_rewrites_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    stream, clock = io.StringIO(), FakeClock()
    progress = cli.Progress("devin-1", stream, tty=True, clock=clock)
    progress.update(make_session())
    clock.now += 5
    progress.update(make_session(status_detail="finished"))
    progress.interject("a message")
    progress.clear()
    assert stream.getvalue() == (
        "\r\x1b[2Kdevin-1  running/working  0s"
        "\r\x1b[2Kdevin-1  running/finished  5s"
        "\r\x1b[2K"
        "\r\x1b[2Kdevin-1  running/finished  5s"
        "\r\x1b[2K"
    )
    assert capsys.readouterr().out == "a message\n"


def test_progress_elsewhere_prints_plain_lines(capsys: pytest.CaptureFixture[str]) -> None:
    stream = io.StringIO()
    progress = cli.Progress("devin-1", stream, tty=False, clock=FakeClock())
    progress.update(make_session())
    progress.interject("a message")
    progress.clear()
    assert stream.getvalue() == "devin-1  running/working  0s\n"
    assert capsys.readouterr().out == "a message\n"


async def test_progress_ticks_on_a_terminal_and_erases_itself() -> None:
    stream = io.StringIO()
    progress = cli.Progress("devin-1", stream, tty=True)
    async with progress.running(interval=0.01):
        await asyncio.sleep(0.05)
    drawn = stream.getvalue()
    assert drawn.count("waiting for the first poll") >= 3
    assert drawn.endswith("\r\x1b[2K")
    quiet = io.StringIO()
    async with cli.Progress("devin-1", quiet, tty=False).running(interval=0.01):
        await asyncio.sleep(0.03)
    assert quiet.getvalue() == ""  # no ticking lines when not a terminal


# --------------------------------------------------------------------------- commands in-process


class ServerThread:
    """A FakeDevinServer on its own event loop in a thread, for the synchronous ``cli.main``."""

    def __init__(self) -> None:
        self.server = FakeDevinServer(api_key=KEY, org_id=ORG)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    def call(self, fn: Callable[[FakeDevinServer], T]) -> T:
        async def on_loop() -> T:
            return fn(self.server)

        return self.run(on_loop())

    def create(self, steps: Any = FINISHES, **fields: Any) -> str:
        """Create a session following ``steps`` (prompt "do it"); return its id."""

        async def create() -> str:
            self.server.queue_timeline(steps)
            async with DevinClient(KEY, org_id=ORG, base_url=self.server.url) as client:
                return (await client.create_session("do it", **fields)).session_id

        return self.run(create())

    def __enter__(self) -> ServerThread:
        self.thread.start()
        self.run(self.server.start())
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.run(self.server.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerThread]:
    """A served fake API, with the environment of the command pointing at it."""
    with ServerThread() as served:
        monkeypatch.setenv("DEVIN_API_KEY", KEY)
        monkeypatch.setenv("DEVIN_ORG_ID", ORG)
        monkeypatch.setenv("DEVIN_BASE_URL", served.server.url)
        yield served


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


FAST = ("--poll-interval", "0.02")


def test_create_prints_the_session(api: ServerThread, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(
        capsys, "create", "Fix it", "--tag", "ci", "--title", "T", "--mode", "fast"
    )
    assert code == 0
    session_id = out.splitlines()[0]
    assert session_id.startswith("devin-")
    assert "  title    T" in out
    body = api.call(lambda s: s.sessions[session_id].body)
    assert body["devin_mode"] == "fast"
    assert "ci" in body["tags"]


def test_create_wait_json_prints_only_the_settled_session(
    api: ServerThread, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "--json", "create", "Fix it", "--wait", *FAST)
    assert code == 0
    document = json.loads(out)
    assert (document["status"], document["status_detail"]) == ("running", "finished")
    assert f"created {document['session_id']}" in err
    assert f"{document['session_id']}  running/finished" in err  # plain progress lines


def test_create_needs_an_org(
    api: ServerThread, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEVIN_ORG_ID")
    code, _, err = run_cli(capsys, "create", "x")
    assert code == 2
    assert "DEVIN_ORG_ID" in err
    assert api.call(lambda s: s.sessions_created) == 0


def test_get_human_and_json(api: ServerThread, capsys: pytest.CaptureFixture[str]) -> None:
    session_id = api.create()
    code, out, _ = run_cli(capsys, "get", session_id.removeprefix("devin-"))
    assert code == 0
    assert out.startswith(session_id + "\n")
    code, out, _ = run_cli(capsys, "get", session_id, "--json")
    assert json.loads(out)["session_id"] == session_id


def test_wait_prints_progress_then_the_settled_session(
    api: ServerThread, capsys: pytest.CaptureFixture[str]
) -> None:
    session_id = api.create(WAITS_FOR_USER)
    code, out, err = run_cli(capsys, "wait", session_id, *FAST)
    assert code == 0
    assert "  status   running/waiting_for_user" in out
    assert [line.split()[1] for line in err.splitlines()] == [
        "claimed",
        "running/working",
        "running/waiting_for_user",
    ]


@pytest.mark.parametrize(
    ("argv", "code", "says"),
    [
        (["get", "devin-unknown"], 4, "not found"),
        (["wait", "devin-unknown"], 4, "not found"),
        (["get", "../etc"], 2, "invalid session id"),
    ],
    ids=["get-unknown", "wait-unknown", "unsafe-id"],
)
def test_failures_are_one_line_with_their_exit_code(
    api: ServerThread, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, says: str
) -> None:
    got, out, err = run_cli(capsys, *argv)
    assert got == code
    assert out == ""
    assert err.startswith("devin-async: error: ")
    assert says in err
    assert err.count("\n") == 1


def test_wait_timeout_exits_5(api: ServerThread, capsys: pytest.CaptureFixture[str]) -> None:
    session_id = api.create([Step("running", "working")])
    code, _, err = run_cli(capsys, "wait", session_id, "--timeout", "0.2", *FAST)
    assert code == 5
    assert "timed out" in err
    assert session_id in err


def test_bad_key_exits_3_without_showing_it(
    api: ServerThread, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEVIN_API_KEY", "cog_wrong_secret_value")
    code, _, err = run_cli(capsys, "get", "devin-1")
    assert code == 3
    assert "rejected" in err
    assert "cog_wrong_secret_value" not in err
    api.call(lambda s: s.forbidden_keys.add(KEY))
    monkeypatch.setenv("DEVIN_API_KEY", KEY)
    code, _, err = run_cli(capsys, "get", "devin-1")
    assert code == 3
    assert "permission" in err


def test_missing_key_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEVIN_API_KEY", raising=False)
    code, _, err = run_cli(capsys, "get", "devin-1")
    assert code == 2
    assert "DEVIN_API_KEY is not set" in err


def test_list_table_and_json_lines(api: ServerThread, capsys: pytest.CaptureFixture[str]) -> None:
    first = api.create(tags=["cli-list"], title="First task")
    second = api.create(tags=["cli-list"], title="Second task")
    api.create(tags=["other"])
    code, out, _ = run_cli(capsys, "list", "--tag", "cli-list")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split()[:2] == ["SESSION", "STATUS"]
    assert [row.split()[0] for row in rows] == [second, first]  # newest first
    assert rows[0].endswith("Second task")
    code, out, _ = run_cli(capsys, "list", "--tag", "cli-list", "--limit", "1", "--json")
    assert code == 0
    assert [json.loads(line)["session_id"] for line in out.splitlines()] == [second]
    code, out, err = run_cli(capsys, "list", "--tag", "nothing-has-this")
    assert (code, out) == (0, "")
    assert "no sessions" in err


def test_list_filters_reach_the_server(
    api: ServerThread, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, _ = run_cli(capsys, "list", "--archived", "--origin", "api", "--limit", "3")
    assert code == 0
    query = api.call(lambda s: dict(s.requests[-1].query))
    assert query["is_archived"] == "true"
    assert query["origins"] == "api"


def test_message_and_terminate(api: ServerThread, capsys: pytest.CaptureFixture[str]) -> None:
    session_id = api.create([Step("running", "waiting_for_user")])
    code, out, err = run_cli(capsys, "message", session_id, "Use main")
    assert code == 0
    assert out.startswith(session_id)
    assert "sent" in err
    messages = api.call(lambda s: [m["message"] for m in s.sessions[session_id].messages])
    assert messages[-1] == "Use main"
    code, out, err = run_cli(capsys, "terminate", session_id, "--archive", "--json")
    assert code == 0
    assert json.loads(out)["status"] == "exit"
    assert api.call(lambda s: s.sessions[session_id].is_archived) is True


def test_message_from_stdin_and_empty(
    api: ServerThread, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    session_id = api.create()
    monkeypatch.setattr(sys, "stdin", io.StringIO("from stdin\n"))
    assert run_cli(capsys, "message", session_id, "-", "--json")[0] == 0
    messages = api.call(lambda s: [m["message"] for m in s.sessions[session_id].messages])
    assert messages[-1] == "from stdin\n"
    code, _, err = run_cli(capsys, "message", session_id, "  ")
    assert code == 2
    assert "empty" in err


def test_terminate_human(api: ServerThread, capsys: pytest.CaptureFixture[str]) -> None:
    session_id = api.create()
    code, out, err = run_cli(capsys, "terminate", session_id)
    assert code == 0
    assert "  status   exit" in out
    assert f"terminated {session_id}" in err


def test_watch_prints_messages_then_the_settled_session(
    api: ServerThread, capsys: pytest.CaptureFixture[str]
) -> None:
    session_id = api.create(WAITS_FOR_USER)
    code, out, err = run_cli(capsys, "watch", session_id, *FAST)
    assert code == 0
    assert "user: do it" in out
    assert "devin: Which branch should I use?" in out
    assert "  status   running/waiting_for_user" in out
    assert "running/waiting_for_user" in err


def test_watch_json_lines(api: ServerThread, capsys: pytest.CaptureFixture[str]) -> None:
    session_id = api.create(WAITS_FOR_USER)
    code, out, _ = run_cli(capsys, "watch", session_id, "--json", *FAST)
    assert code == 0
    events = [json.loads(line) for line in out.splitlines()]
    assert {e["event"] for e in events} == {"status", "message"}
    statuses = [e["session"]["status_detail"] for e in events if e["event"] == "status"]
    assert statuses[-1] == "waiting_for_user"
    code, out, _ = run_cli(capsys, "watch", session_id, "--json", "--no-messages", *FAST)
    assert code == 0
    assert {json.loads(line)["event"] for line in out.splitlines()} == {"status"}


def test_demo_real_without_a_key_never_touches_the_network(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEVIN_API_KEY", raising=False)
    code, out, err = run_cli(capsys, "demo", "--real", "--json")
    assert (code, out) == (2, "")
    assert "DEVIN_API_KEY" in err


def test_fake_server_options() -> None:
    args = parse("fake-server", "--port", "8123", "--org-id", "org-dev")
    assert (args.port, args.host, args.org_id) == (8123, "127.0.0.1", "org-dev")
    assert cli.fake_server_options(args) == {}  # the fake's own defaults


def test_fake_server_real_server_behaviour_flags() -> None:
    args = parse(
        "fake-server",
        *("--rate-limit", "2.5", "--random-429", "0.1"),
        *("--allowed-tag", "ci", "--allowed-tag", "nightly"),
        *("--ignore-filter", "tags", "--ignore-filter", "origins"),
        *("--array-encoding", "comma", "--list-lag-reads", "2", "--list-lag-seconds", "0.5"),
        *("--message-lag-reads", "3", "--cancel-handlers"),
    )
    options = cli.fake_server_options(args)
    assert options == {
        "rate_limit": 2.5,
        "random_429": 0.1,
        "allowed_tags": ["ci", "nightly"],
        "ignored_filters": ["tags", "origins"],
        "array_encoding": "comma",
        "list_lag_reads": 2,
        "list_lag_seconds": 0.5,
        "message_lag_reads": 3,
        "handler_cancellation": True,
    }
    quirks = FakeDevinServer(**options).quirks  # every flag is a FakeDevinServer keyword
    assert (quirks.allowed_tags, quirks.handler_cancellation) == (("ci", "nightly"), True)
    zero = cli.fake_server_options(parse("fake-server", "--random-429", "0"))
    assert zero == {"random_429": 0.0}


def test_fake_server_message_lag_reads_flag() -> None:
    args = parse("fake-server", "--message-lag-reads", "2")
    assert cli.fake_server_options(args) == {"message_lag_reads": 2}
    assert FakeDevinServer(**cli.fake_server_options(args)).quirks.message_lag_reads == 2
    assert cli.fake_server_options(parse("fake-server", "--message-lag-reads", "0")) == {
        "message_lag_reads": 0
    }
    assert "message_lag_reads" not in cli.fake_server_options(parse("fake-server"))


async def test_serve_fake_applies_the_real_server_behaviours(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stop = asyncio.Event()
    options = {"allowed_tags": ["ci"], "list_lag_reads": 1}
    serving = asyncio.create_task(cli.serve_fake(stop=stop, as_json=True, options=options))
    for _ in range(200):
        await asyncio.sleep(0.01)
        out, err = capsys.readouterr()
        if out:
            break
    assert "real-server behaviours: allowed_tags=['ci'], list_lag_reads=1" in err
    url = json.loads(out)["url"]
    sessions = f"{url}/v3/organizations/{cli.FAKE_ORG_ID}/sessions"
    headers = {"Authorization": f"Bearer {cli.FAKE_API_KEY}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.post(sessions, json={"prompt": "p", "tags": ["x"]}) as refused:
            assert refused.status == 422
        async with http.post(sessions, json={"prompt": "p", "tags": ["ci"]}) as created:
            assert created.status == 200
        totals = []
        for _ in range(2):
            async with http.get(sessions) as listed:
                totals.append((await listed.json())["total"])
    assert totals == [0, 1]
    stop.set()
    assert await serving == 0
    assert "served 4 requests; sessions created: 1" in capsys.readouterr().err


async def test_serve_fake_prints_how_to_use_it_and_serves_until_stopped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stop = asyncio.Event()
    serving = asyncio.create_task(cli.serve_fake(stop=stop, as_json=True))
    for _ in range(200):
        await asyncio.sleep(0.01)
        out = capsys.readouterr().out
        if out:
            break
    banner = json.loads(out)
    assert banner["env"] == {
        "DEVIN_BASE_URL": banner["url"],
        "DEVIN_API_KEY": cli.FAKE_API_KEY,
        "DEVIN_ORG_ID": cli.FAKE_ORG_ID,
    }
    stop.set()
    assert await serving == 0
    assert "served 0 requests" in capsys.readouterr().err


async def test_serve_fake_reports_a_port_in_use() -> None:
    async with FakeDevinServer() as taken:
        port = int(taken.url.rsplit(":", 1)[1])
        with pytest.raises(cli.CliError) as error:
            await cli.serve_fake(port=port, stop=asyncio.Event())
    assert error.value.code == 1
    assert f"127.0.0.1:{port}" in str(error.value)
    assert "--port 0" in str(error.value)  # the way out of a taken default port


# --------------------------------------------------------------------------- real processes


def cli_env(server: FakeDevinServer | None, **extra: str) -> dict[str, str]:
    if server is None:
        return clean_env(**extra)
    fake = {"DEVIN_API_KEY": KEY, "DEVIN_ORG_ID": ORG, "DEVIN_BASE_URL": server.url}
    return clean_env(**{**fake, **extra})


async def run_process(*argv: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await spawn_cli(*argv, env=env)
    out, err = await asyncio.wait_for(process.communicate(), timeout=20)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_process_commands_and_exit_codes() -> None:
    async with FakeDevinServer(api_key=KEY, org_id=ORG) as server:
        server.queue_timeline([Step("running", "working")])
        env = cli_env(server)
        code, out, err = await run_process("--json", "create", "Fix it", env=env)
        assert (code, err) == (0, "")
        session_id = json.loads(out)["session_id"]

        code, out, _ = await run_process("get", session_id, env=env)
        assert code == 0
        assert out.startswith(session_id + "\n")

        code, _, err = await run_process("wait", session_id, "--timeout", "0.3", *FAST, env=env)
        assert code == 5
        assert "timed out" in err

        code, _, err = await run_process("get", "devin-unknown", env=env)
        assert code == 4
        assert "not found" in err

        wrong = cli_env(server, DEVIN_API_KEY="cog_wrong_secret_value")
        code, out, err = await run_process("get", session_id, env=wrong)
        assert code == 3
        assert "rejected" in err
        assert "cog_wrong_secret_value" not in out + err

        code, _, err = await run_process("get", session_id, env=cli_env(None))
        assert code == 2
        assert "DEVIN_API_KEY" in err
        assert "Traceback" not in err


async def test_process_fake_server_prints_its_url_first_and_serves() -> None:
    process = await spawn_cli(
        "fake-server", "--port", "0", "--list-lag-reads", "1", env=cli_env(None)
    )
    try:
        assert process.stdout is not None
        url = (await asyncio.wait_for(process.stdout.readline(), 10)).decode().strip()
        export = (await asyncio.wait_for(process.stdout.readline(), 10)).decode().split()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        env_vars = dict(pair.split("=", 1) for pair in export[1:])
        assert env_vars["DEVIN_BASE_URL"] == url
        env = cli_env(None, **env_vars)
        code, out, _ = await run_process("--json", "create", "hello", env=env)
        assert code == 0
        assert json.loads(out)["status"] == "claimed"
        code, out, _ = await run_process("--json", "list", env=env)
        assert (code, out) == (0, "")  # --list-lag-reads 1: the new session lags one list
        code, out, _ = await run_process("--json", "list", env=env)
        assert code == 0
        assert len(out.splitlines()) == 1
    finally:
        process.terminate()
        _, err = await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode == 0
    assert "served" in err.decode()
    assert "real-server behaviours: list_lag_reads=1" in err.decode()


async def test_process_ctrl_c_exits_130_without_a_traceback() -> None:
    async with FakeDevinServer(api_key=KEY, org_id=ORG) as server:
        server.queue_timeline([Step("running", "working")])
        env = cli_env(server)
        _, out, _ = await run_process("--json", "create", "Fix it", env=env)
        process = await spawn_cli("wait", json.loads(out)["session_id"], *FAST, env=env)
        assert process.stderr is not None
        await asyncio.wait_for(process.stderr.readline(), 10)  # it is waiting
        process.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode == 130
    assert "Traceback" not in err.decode()


def test_importing_the_cli_loads_neither_the_testing_kit_nor_aiohttp_web() -> None:
    # The fake and aiohttp.web are imported by the fake-server and demo commands only.
    code = (
        "import json, sys, devin_async.cli\n"
        "print(json.dumps(sorted(name for name in sys.modules if name.startswith(\n"
        "    ('devin_async.testing', 'devin_async._demo', 'aiohttp.web', 'devin_async.cli')))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["devin_async.cli"]
