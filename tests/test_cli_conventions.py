"""The command's conventions: exit statuses, JSON errors, the request trace, refused options.

In-process ``cli.main`` against a ``FakeDevinServer`` in its own thread, on instant time
(``devin_instant``): waits poll without real sleeps.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from fakes import clean_env, spawn_cli
from pytest_aiohttp import AiohttpServer

from devin_async import ConfigurationError, DevinClient, cli
from devin_async._cli.trace import request_trace
from devin_async.testing import (
    ERRORS,
    EXITS,
    FINISHES,
    SUSPENDS,
    WAITS_FOR_USER,
    FakeDevinServer,
    Step,
    ThreadedFakeDevin,
)

KEY = "cog_conventions_secret_key_0123"
ORG = "org-conventions"


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch, devin_instant: None) -> Iterator[ThreadedFakeDevin]:
    """A served fake API, with the command's environment pointing at it."""
    monkeypatch.delenv("DEVIN_ASYNC_DEBUG", raising=False)
    with FakeDevinServer.in_thread(api_key=KEY, org_id=ORG) as server:
        monkeypatch.setenv("DEVIN_API_KEY", KEY)
        monkeypatch.setenv("DEVIN_ORG_ID", ORG)
        monkeypatch.setenv("DEVIN_BASE_URL", server.url)
        yield server


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run a command line argparse refuses; return its stderr."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def create(api: ThreadedFakeDevin, capsys: pytest.CaptureFixture[str], steps: Any) -> str:
    api.queue_timeline(steps)
    code, out, _ = run(capsys, "--json", "create", "do it")
    assert code == 0
    session_id: str = json.loads(out)["session_id"]
    return session_id


# --------------------------------------------------------------------------- wait --exit-status


@pytest.mark.parametrize(
    ("steps", "expected"),
    [(FINISHES, 0), (EXITS, 0), (WAITS_FOR_USER, 7), (ERRORS, 6), (SUSPENDS, 6)],
    ids=["finished", "exit", "waiting-for-user", "error", "suspended"],
)
def test_wait_exit_status_says_how_the_session_settled(
    api: ThreadedFakeDevin, capsys: pytest.CaptureFixture[str], steps: Any, expected: int
) -> None:
    session_id = create(api, capsys, steps)
    code, out, _ = run(capsys, "wait", session_id, "--exit-status")
    assert code == expected
    assert out.startswith(session_id + "\n")  # the settled session is printed either way
    assert run(capsys, "wait", session_id)[0] == 0  # without it: 0 once settled


def test_the_exit_status_codes_are_documented(capsys: pytest.CaptureFixture[str]) -> None:
    assert (cli.EXIT_FAILED, cli.EXIT_WAITING) == (6, 7)
    with pytest.raises(SystemExit):
        cli.main(["wait", "--help"])
    out = capsys.readouterr().out
    assert "--exit-status" in out
    assert "6    wait --exit-status: the session ended in error or was suspended" in out


# --------------------------------------------------------------------------- --json errors


@pytest.mark.parametrize(
    ("argv", "code", "kind"),
    [
        (["get", "devin-unknown"], 4, "not_found"),
        (["get", "../etc"], 2, "usage"),
        (["message", "devin-1", " "], 2, "usage"),
        (["--base-url", "http://example.com", "get", "devin-1"], 2, "configuration"),
    ],
    ids=["not-found", "invalid-id", "empty-message", "plain-http"],
)
def test_json_errors_are_one_object_on_stderr_with_the_same_exit_code(
    api: ThreadedFakeDevin,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    code: int,
    kind: str,
) -> None:
    plain, _, _ = run(capsys, *argv)
    got, out, err = run(capsys, "--json", *argv)
    assert got == plain == code
    assert out == ""
    assert err.count("\n") == 1
    document = json.loads(err)
    assert (document["error"], document["exit_code"]) == (kind, code)
    assert document["message"]


def test_a_json_http_error_carries_its_status_and_request_id(
    api: ThreadedFakeDevin, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "get", "devin-unknown", "--json")
    assert code == 4
    document = json.loads(err)
    assert document["status"] == 404
    assert document["request_id"].startswith("req-")  # the fake's x-request-id


def test_a_json_error_never_shows_the_key(
    api: ThreadedFakeDevin, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEVIN_API_KEY", "cog_wrong_secret_value_42")
    code, out, err = run(capsys, "--json", "get", "devin-1")
    assert code == 3
    assert json.loads(err)["error"] == "authentication"
    assert "cog_wrong_secret_value_42" not in out + err


@pytest.mark.parametrize(
    "argv",
    [["--json", "frobnicate"], ["list", "--limit", "0", "--json"], ["--json", "fake-server", "-x"]],
    ids=["unknown-command", "bad-value", "unknown-option"],
)
def test_json_usage_errors_are_one_object_and_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    err = usage_error(capsys, *argv)
    assert "usage:" not in err
    document = json.loads(err)
    assert (document["error"], document["exit_code"]) == ("usage", 2)
    assert "usage: devin-async" in usage_error(capsys, *(a for a in argv if a != "--json"))


def test_json_after_double_dash_is_an_argument_not_the_option() -> None:
    assert cli.build_parser().parse_args(["message", "devin-1", "--", "--json"]).json is False
    from devin_async._cli.parser import wants_json

    assert wants_json(["message", "devin-1", "--", "--json"]) is False
    assert wants_json(["message", "devin-1", "hi", "--json"]) is True


# --------------------------------------------------------------------------- --debug


def test_debug_traces_the_requests_on_stderr_without_the_key(
    api: ThreadedFakeDevin, capsys: pytest.CaptureFixture[str]
) -> None:
    session_id = create(api, capsys, EXITS)  # ends in exit, with no status_detail
    handlers = list(logging.getLogger("devin_async").handlers)
    code, out, err = run(capsys, "--debug", "wait", session_id)
    assert code == 0
    path = f"/v3/organizations/{ORG}/sessions/{session_id}"
    assert f"debug: -> GET {path}" in err.splitlines()
    assert any(line.startswith(f"debug: <- 200 GET {path} in ") for line in err.splitlines())
    assert f"debug: session {session_id} is now exit" in err.splitlines()
    assert "None" not in err  # the state without a detail is shown as its status alone
    assert KEY not in out + err
    assert logging.getLogger("devin_async").handlers == handlers  # nothing left behind
    code, _, err = run(capsys, "get", session_id)
    assert (code, "debug:" in err) == (0, False)


@pytest.mark.parametrize(
    ("value", "traced"), [("1", True), ("yes", True), ("0", False), ("", False)]
)
def test_the_debug_environment_variable(
    api: ThreadedFakeDevin,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    value: str,
    traced: bool,
) -> None:
    monkeypatch.setenv("DEVIN_ASYNC_DEBUG", value)
    code, _, err = run(capsys, "get", "devin-unknown")
    assert code == 4
    assert ("debug: -> GET " in err) is traced
    assert KEY not in err


def test_the_trace_redacts_the_key_should_a_line_carry_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A personal token without the cog_ prefix: the run-wide leak check looks for that one.
    monkeypatch.setenv("DEVIN_API_KEY", "pat-tok3n-value-0123")
    stream = io.StringIO()
    with request_trace(True, stream):
        logging.getLogger("devin_async").debug("a careless line: %s", "pat-tok3n-value-0123")
    logging.getLogger("devin_async").debug("after the block: %s", "not traced")
    assert stream.getvalue() == "debug: a careless line: [redacted]\n"


# --------------------------------------------------------------------------- refused options


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["fake-server", "--base-url", "http://127.0.0.1:1"], "--base-url"),
        (["--base-url", "http://127.0.0.1:1", "fake-server"], "--base-url"),
        (["fake-server", "--debug"], "--debug"),
        (["--debug", "fake-server"], "--debug"),
    ],
    ids=["after", "before", "debug-after", "debug-before"],
)
def test_a_global_option_that_does_not_apply_is_refused(
    capsys: pytest.CaptureFixture[str], argv: list[str], option: str
) -> None:
    err = usage_error(capsys, *argv)
    assert f"{option} does not apply to fake-server" in err


def test_fake_server_help_shows_only_the_global_options_it_takes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        cli.main(["fake-server", "--help"])
    out = capsys.readouterr().out
    assert "--json" in out
    assert "--org-id" in out
    assert "--base-url" not in out
    assert "--debug" not in out
    args = cli.build_parser().parse_args(["fake-server", "--org-id", "org-x", "--json"])
    assert (args.org_id, args.json) == ("org-x", True)


@pytest.mark.parametrize("option", [["--org-id", "org-x"], ["--base-url", "http://127.0.0.1:1"]])
def test_demo_takes_org_and_base_url_only_with_real(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, option: list[str]
) -> None:
    monkeypatch.delenv("DEVIN_API_KEY", raising=False)
    code, out, err = run(capsys, "demo", *option)
    assert (code, out) == (2, "")
    assert "only with --real" in err
    code, _, err = run(capsys, "demo", "--real", *option)
    assert code == 2
    assert "needs DEVIN_API_KEY" in err  # accepted; refused later for the missing key


# --------------------------------------------------------------------------- fake-server port


def test_fake_server_listens_on_a_stable_port_unless_told_0() -> None:
    assert cli.FAKE_PORT == 8765
    assert cli.build_parser().parse_args(["fake-server"]).port == 8765
    assert cli.build_parser().parse_args(["fake-server", "--port", "0"]).port == 0


# --------------------------------------------------------------------------- no literal None


def test_no_literal_none_in_human_output(
    api: ThreadedFakeDevin, capsys: pytest.CaptureFixture[str]
) -> None:
    api.queue_timeline([Step("claimed", reads=10_000)])  # no title, detail, PRs or output
    code, out, _ = run(capsys, "create", "do it")
    session_id = out.splitlines()[0]
    assert code == 0
    for argv in (["get", session_id], ["list"], ["wait", session_id, "--timeout", "30"]):
        code, out, err = run(capsys, *argv)
        assert "None" not in out + err, argv
    assert code == 5
    assert "(last seen: claimed)" in err


# --------------------------------------------------------------------------- base_url


@pytest.mark.parametrize(
    "base_url",
    [
        "https://api.devin.ai/v3",
        "https://api.devin.ai/v3/",
        "https://api.devin.ai/v1",
        "https://proxy.example.com/devin/v3/organizations/org-x",
    ],
)
def test_a_base_url_with_an_api_version_path_is_refused_clearly(base_url: str) -> None:
    with pytest.raises(ConfigurationError, match="API version path") as error:
        DevinClient(KEY, base_url=base_url)
    assert "https://api.devin.ai" in str(error.value)  # what to give instead


async def test_any_other_base_url_path_is_a_prefix_of_the_request_paths(
    aiohttp_server: AiohttpServer, session_json: dict[str, Any]
) -> None:
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.json_response(session_json)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    server = await aiohttp_server(app, host="127.0.0.1")
    base_url = str(server.make_url("/devin/"))
    async with DevinClient(KEY, org_id="org-x", base_url=base_url) as client:
        assert client.base_url == base_url.rstrip("/")
        await client.get_session("devin-1")
    assert seen == ["/devin/v3/organizations/org-x/sessions/devin-1"]


def test_the_command_refuses_a_v3_base_url_before_any_request(
    api: ThreadedFakeDevin, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "--base-url", f"{api.url}/v3", "get", "devin-1")
    assert code == 2
    assert "must not include an API version path ('/v3')" in err
    assert api.requests == []


# --------------------------------------------------------------------------- no organization


def test_list_archived_without_an_org_names_the_options(
    api: ThreadedFakeDevin, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A key of one organization may not list the enterprise scope: the server says 403.
    api.forbidden_keys = {KEY}
    code, _, err = run(capsys, "list", "--archived", "--org-id", ORG)
    assert code == 3
    assert "--org-id" not in err  # an org was given: no hint
    monkeypatch.delenv("DEVIN_ORG_ID")
    code, _, err = run(capsys, "list", "--archived")
    assert code == 3
    assert "/v3/enterprise/sessions" in err
    assert "set DEVIN_ORG_ID or pass --org-id" in err
    code, _, err = run(capsys, "--json", "list", "--archived")
    document = json.loads(err)
    assert (document["error"], document["status"], document["exit_code"]) == ("permission", 403, 3)
    assert "--org-id" in document["message"]


def test_an_org_only_call_without_an_org_names_the_options(
    api: ThreadedFakeDevin, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEVIN_ORG_ID")
    code, _, err = run(capsys, "terminate", "devin-1", "--archive")
    assert code == 2
    assert "set DEVIN_ORG_ID or pass --org-id" in err
    assert api.requests == []


# --------------------------------------------------------------------------- real process


async def test_process_ctrl_c_under_json_is_one_json_object() -> None:
    async with FakeDevinServer(api_key=KEY, org_id=ORG) as server:
        server.queue_timeline([Step("running", "working", reads=10_000)])
        env = clean_env(DEVIN_API_KEY=KEY, DEVIN_ORG_ID=ORG, DEVIN_BASE_URL=server.url)
        async with DevinClient(KEY, org_id=ORG, base_url=server.url) as client:
            session_id = (await client.create_session("do it")).session_id
        process = await spawn_cli("--json", "wait", session_id, env=env)
        assert process.stderr is not None
        await asyncio.wait_for(process.stderr.readline(), 10)  # it is waiting
        process.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode == 130
    assert json.loads(err.decode().splitlines()[-1]) == {
        "error": "interrupted",
        "message": "interrupted",
        "exit_code": 130,
    }
