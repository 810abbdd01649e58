"""The ``devin-async`` commands upload, download, insights, messages, archive and tags.

They run in-process through ``cli.main`` (which runs its own event loop) against the
plugin's threaded fake server over sockets; waits run on instant time (``devin_instant``).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from devin_async import CREATE_TAG_PREFIX, DevinClient, cli
from devin_async.testing import FINISHES, Step, ThreadedFakeDevin


@pytest.fixture
def api(fake_devin: ThreadedFakeDevin, monkeypatch: pytest.MonkeyPatch) -> ThreadedFakeDevin:
    """The served fake, with the command's environment pointing at it."""
    monkeypatch.setenv("DEVIN_API_KEY", fake_devin.api_key)
    monkeypatch.setenv("DEVIN_ORG_ID", fake_devin.org_id)
    monkeypatch.setenv("DEVIN_BASE_URL", fake_devin.url)
    return fake_devin


@pytest.fixture
def enterprise(api: ThreadedFakeDevin, monkeypatch: pytest.MonkeyPatch) -> ThreadedFakeDevin:
    """The same fake, with no organization: the enterprise scope."""
    monkeypatch.delenv("DEVIN_ORG_ID")
    return api


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch current directory, where ``download`` writes by default."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert "None" not in out + err  # human and JSON output alike (JSON says null)
    return code, out, err


def on_client(fake: ThreadedFakeDevin, call: Any) -> Any:
    """Run ``await call(client)`` with a client of ``fake``'s organization; return its result."""

    async def run() -> Any:
        async with DevinClient(fake.api_key, org_id=fake.org_id, base_url=fake.url) as client:
            return await call(client)

    return asyncio.run(run())


def create(fake: ThreadedFakeDevin, steps: Any = FINISHES, **fields: Any) -> str:
    fake.queue_timeline(steps)
    return str(on_client(fake, lambda c: c.create_session("do it", **fields)).session_id)


def attached(fake: ThreadedFakeDevin, files: dict[str, bytes]) -> str:
    """A session created with ``files`` (name -> bytes) uploaded and attached; its id."""

    async def run(client: DevinClient) -> str:
        uploads = [await client.upload_attachment(data, name=n) for n, data in files.items()]
        session = await client.create_session("read them", attachment_urls=[u.url for u in uploads])
        return session.session_id

    fake.queue_timeline(FINISHES)
    return str(on_client(fake, run))


def one_error_line(err: str) -> str:
    assert err.startswith("devin-async: error: ")
    assert err.count("\n") == 1
    return err


# --------------------------------------------------------------------------- upload


def test_upload_prints_the_url_the_create_takes(
    api: ThreadedFakeDevin, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"line one\nline two\n")
    code, out, err = run_cli(capsys, "upload", str(notes))
    assert code == 0
    url = out.strip()
    stored = api.call(lambda s: [(f.name, f.data) for f in s.files.stored.values()])
    assert stored == [("notes.txt", b"line one\nline two\n")]
    assert url.startswith(f"{api.url}/v3/organizations/{api.org_id}/attachments/")
    assert url.endswith("/notes.txt")
    assert err.startswith("uploaded notes.txt (")

    session_id = str(
        on_client(api, lambda c: c.create_session("x", attachment_urls=[url])).session_id
    )
    names = on_client(api, lambda c: c.list_attachments(session_id))
    assert [a.url for a in names] == [url]


def test_upload_json_is_the_upload_answer(
    api: ThreadedFakeDevin, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "a.md").write_text("# A\n")
    code, out, _ = run_cli(capsys, "upload", str(tmp_path / "a.md"), "--json")
    assert code == 0
    document = json.loads(out)
    assert set(document) == {"attachment_id", "name", "url"}
    assert document["name"] == "a.md"
    assert document["attachment_id"] in api.call(lambda s: list(s.files.stored))


@pytest.mark.parametrize("what", ["missing", "directory"])
def test_upload_of_what_is_not_a_readable_file_exits_2_before_any_request(
    api: ThreadedFakeDevin, capsys: pytest.CaptureFixture[str], tmp_path: Path, what: str
) -> None:
    path = tmp_path / "nope.txt" if what == "missing" else tmp_path
    code, out, err = run_cli(capsys, "upload", str(path))
    assert (code, out) == (2, "")
    assert f"cannot read {path}" in one_error_line(err)
    assert api.count("upload_attachment") == 0


def test_upload_needs_an_organization(
    enterprise: ThreadedFakeDevin, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "a.txt").write_text("a")
    code, _, err = run_cli(capsys, "upload", str(tmp_path / "a.txt"))
    assert code == 2
    assert "needs an org_id" in one_error_line(err)
    assert enterprise.requests == []


# --------------------------------------------------------------------------- download


def test_download_writes_the_attachment_under_its_name_and_never_overwrites(
    api: ThreadedFakeDevin, capsys: pytest.CaptureFixture[str], cwd: Path
) -> None:
    session_id = attached(api, {"report.txt": b"all green\n", "other.txt": b"x"})
    code, out, err = run_cli(capsys, "download", session_id, "report.txt")
    assert code == 0
    assert out == "report.txt\n"
    assert err == "downloaded report.txt (10 bytes)\n"
    assert (cwd / "report.txt").read_bytes() == b"all green\n"

    (cwd / "report.txt").write_bytes(b"my edits")
    code, _, err = run_cli(capsys, "download", session_id, "report.txt")
    assert code == 2
    assert "report.txt exists: pass --force" in one_error_line(err)
    assert (cwd / "report.txt").read_bytes() == b"my edits"

    code, _, _ = run_cli(capsys, "download", session_id, "report.txt", "--force")
    assert code == 0
    assert (cwd / "report.txt").read_bytes() == b"all green\n"
    assert sorted(p.name for p in cwd.iterdir()) == ["report.txt"]  # no partial file left


def test_download_output_to_a_path_or_a_directory_and_json(
    api: ThreadedFakeDevin, capsys: pytest.CaptureFixture[str], cwd: Path
) -> None:
    session_id = attached(api, {"data.csv": b"a,b\n1,2\n"})
    code, out, _ = run_cli(capsys, "download", session_id, "data.csv", "-o", "renamed.csv")
    assert (code, out) == (0, "renamed.csv\n")
    assert (cwd / "renamed.csv").read_bytes() == b"a,b\n1,2\n"

    (cwd / "into").mkdir()
    code, out, _ = run_cli(capsys, "--json", "download", session_id, "data.csv", "--output", "into")
    assert code == 0
    document = json.loads(out)
    assert document["path"] == str(Path("into") / "data.csv")
    assert document["bytes"] == 8
    assert document["attachment"]["name"] == "data.csv"
    assert document["attachment"]["source"] == "user"
    assert (cwd / "into" / "data.csv").read_bytes() == b"a,b\n1,2\n"


@pytest.mark.parametrize("name", ["../escape.txt", "sub/file.txt", "..", "."])
def test_download_refuses_a_name_with_a_path_separator_before_any_request(
    api: ThreadedFakeDevin, capsys: pytest.CaptureFixture[str], cwd: Path, name: str
) -> None:
    code, _, err = run_cli(capsys, "download", "devin-0123", name)
    assert code == 2
    assert "not a file name" in one_error_line(err)
    assert api.requests == []
    assert list(cwd.iterdir()) == []


def test_download_of_an_unknown_name_lists_the_session_s_attachments(
    api: ThreadedFakeDevin, capsys: pytest.CaptureFixture[str], cwd: Path
) -> None:
    session_id = attached(api, {"b.txt": b"b", "a.txt": b"a"})
    code, _, err = run_cli(capsys, "download", session_id, "c.txt")
    assert code == 4
    assert f"session {session_id} has no attachment named 'c.txt' (it has: a.txt, b.txt)" in err
    assert api.count("download_attachment") == 0
    assert list(cwd.iterdir()) == []


def test_download_failures_leave_no_file(
    api: ThreadedFakeDevin, capsys: pytest.CaptureFixture[str], cwd: Path
) -> None:
    session_id = attached(api, {"r.txt": b"r"})
    code, _, err = run_cli(capsys, "download", "devin-unknown", "r.txt")
    assert code == 4
    assert "not found" in one_error_line(err)

    api.inject("status", status=404, route="download_attachment")
    code, _, err = run_cli(capsys, "download", session_id, "r.txt")
    assert code == 4
    assert "not found" in one_error_line(err)

    # A server that redirects the download to plain http off loopback: refused.
    api.call(lambda s: setattr(s.files, "redirect_location", "http://storage.example/r.txt"))
    code, _, err = run_cli(capsys, "download", session_id, "r.txt")
    assert code == 1
    assert "redirect" in one_error_line(err)
    assert list(cwd.iterdir()) == []


def test_download_into_a_missing_directory_exits_1(
    api: ThreadedFakeDevin, capsys: pytest.CaptureFixture[str], cwd: Path
) -> None:
    session_id = attached(api, {"r.txt": b"r"})
    code, _, err = run_cli(capsys, "download", session_id, "r.txt", "-o", "no/such/dir/r.txt")
    assert code == 1
    assert "cannot write no/such/dir/r.txt" in one_error_line(err)


def test_download_needs_an_organization(
    enterprise: ThreadedFakeDevin, capsys: pytest.CaptureFixture[str], cwd: Path
) -> None:
    code, _, err = run_cli(capsys, "download", "devin-0123", "r.txt")
    assert code == 2
    assert "DEVIN_ORG_ID" in one_error_line(err)
    assert enterprise.requests == []


# --------------------------------------------------------------------------- insights


def test_insights_before_generation_say_how_to_get_them(
    api: ThreadedFakeDevin, capsys: pytest.CaptureFixture[str]
) -> None:
    session_id = create(api)
    code, out, _ = run_cli(capsys, "insights", session_id)
    assert code == 0
    assert out.startswith(session_id + "\n")
    assert "  messages 0 from Devin, 1 from users\n" in out
    assert "  size     xs\n" in out
    assert "analysis not ready: generate it with --generate" in out
    code, out, _ = run_cli(capsys, "insights", session_id, "--json")
    document = json.loads(out)
    assert document["analysis"] is None
    assert document["num_user_messages"] == 1


def test_insights_generate_starts_once(
    api: ThreadedFakeDevin, capsys: pytest.CaptureFixture[str]
) -> None:
    session_id = create(api)
    code, out, _ = run_cli(capsys, "insights", session_id, "--generate")
    assert (code, out) == (0, f"{session_id}  insights started\n")
    code, out, _ = run_cli(capsys, "insights", session_id, "--generate", "--json")
    assert json.loads(out) == {"session_id": session_id, "status": "already_exists"}
    assert api.count("generate_insights") == 2
    assert api.count("get_insights") == 0


@pytest.mark.usefixtures("devin_instant")
def test_insights_generate_wait_polls_until_the_analysis_is_there(
    api: ThreadedFakeDevin, capsys: pytest.CaptureFixture[str]
) -> None:
    api.call(lambda s: setattr(s.insights, "polls", 4))
    session_id = create(api)
    code, out, err = run_cli(capsys, "insights", session_id, "--generate", "--wait")
    assert code == 0
    assert err == f"waiting for the insights of {session_id}\n"
    assert "  analysis\n    summary: Analysis of do it\n    issues: []\n" in out
    assert api.count("generate_insights") == 1
    assert api.count("get_insights") == 5  # the first read, then the 4 the analysis took

    code, out, _ = run_cli(capsys, "--json", "insights", session_id, "--wait")
    assert json.loads(out)["analysis"]["summary"] == "Analysis of do it"
    assert api.count("generate_insights") == 1  # ready: nothing generated again


@pytest.mark.usefixtures("devin_instant")
def test_insights_wait_times_out_with_exit_5(
    api: ThreadedFakeDevin, capsys: pytest.CaptureFixture[str]
) -> None:
    api.call(lambda s: setattr(s.insights, "polls", 1_000_000))
    session_id = create(api)
    code, out, err = run_cli(capsys, "insights", session_id, "--wait", "--timeout", "60")
    assert (code, out) == (5, "")
    assert f"timed out: insights of session {session_id} were not ready within 60" in err
    assert api.count("get_insights") > 2


@pytest.mark.usefixtures("devin_instant")
def test_insights_wait_rides_out_a_failing_poll(
    api: ThreadedFakeDevin, capsys: pytest.CaptureFixture[str]
) -> None:
    session_id = create(api)
    api.inject("status", status=503, route="get_insights", times=2)
    code, out, _ = run_cli(capsys, "insights", session_id, "--wait", "--poll-interval", "5")
    assert code == 0
    assert "summary: Analysis of do it" in out
    assert api.count_status(503, "get_insights") == 2


def test_insights_of_an_unknown_session_exit_4(
    api: ThreadedFakeDevin, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (["insights", "devin-unknown"], ["insights", "devin-unknown", "--generate"]):
        code, out, err = run_cli(capsys, *argv)
        assert (code, out) == (4, "")
        assert "not found" in one_error_line(err)


def test_insights_in_the_enterprise_scope_generate_but_cannot_be_read(
    enterprise: ThreadedFakeDevin, capsys: pytest.CaptureFixture[str]
) -> None:
    session_id = create(enterprise)
    code, out, _ = run_cli(capsys, "insights", session_id, "--generate")
    assert (code, out) == (0, f"{session_id}  insights started\n")
    assert enterprise.requests[-1].path == f"/v3/enterprise/sessions/{session_id}/insights/generate"
    enterprise.reset_log()
    for argv in (["insights", session_id], ["insights", session_id, "--generate", "--wait"]):
        code, _, err = run_cli(capsys, *argv)
        assert code == 2
        assert "needs an organization" in one_error_line(err)
        assert "--generate alone works without one" in err
    assert enterprise.requests == []


# --------------------------------------------------------------------------- messages


def test_messages_lists_every_page_oldest_first(
    api: ThreadedFakeDevin, capsys: pytest.CaptureFixture[str]
) -> None:
    session_id = create(api, [Step("running", "waiting_for_user")])

    async def chat(client: DevinClient) -> None:
        for number in range(1, 131):  # more than one page of 100
            await client.send_message(session_id, f"note {number}\nsecond line")

    on_client(api, chat)
    api.reset_log()
    code, out, _ = run_cli(capsys, "--json", "messages", session_id)
    assert code == 0
    documents = [json.loads(line) for line in out.splitlines()]
    assert [d["message"] for d in documents] == [
        "do it",
        *(f"note {n}\nsecond line" for n in range(1, 131)),
    ]
    assert api.count("list_messages") == 2

    code, out, _ = run_cli(capsys, "messages", session_id)
    lines = out.splitlines()
    assert lines[0].endswith("] user: do it")
    assert lines[1].endswith("] user: note 1")
    assert lines[2].strip() == "second line"
    assert len(lines) == 1 + 2 * 130


def test_messages_of_a_session_without_any_and_of_an_unknown_one(
    enterprise: ThreadedFakeDevin, capsys: pytest.CaptureFixture[str]
) -> None:
    session_id = create(enterprise)
    enterprise.call(lambda s: s.sessions[session_id].messages.clear())
    code, out, err = run_cli(capsys, "messages", session_id)  # enterprise scope
    assert (code, out, err) == (0, "", f"no messages in {session_id}\n")
    assert enterprise.requests[-1].path == f"/v3/enterprise/sessions/{session_id}/messages"
    code, out, _ = run_cli(capsys, "messages", session_id, "--json")
    assert (code, out) == (0, "")

    code, _, err = run_cli(capsys, "messages", "devin-unknown")
    assert code == 4
    assert "not found" in one_error_line(err)


# --------------------------------------------------------------------------- archive


def test_archive_human_and_json(api: ThreadedFakeDevin, capsys: pytest.CaptureFixture[str]) -> None:
    session_id = create(api)
    code, out, err = run_cli(capsys, "archive", session_id.removeprefix("devin-"))
    assert code == 0
    assert err == f"archived {session_id}\n"
    assert out.startswith(session_id + "\n  status ")
    assert api.sessions[session_id].is_archived
    code, out, err = run_cli(capsys, "archive", session_id, "--json")
    assert (code, err) == (0, "")
    assert json.loads(out)["is_archived"] is True


def test_archive_failures(
    api: ThreadedFakeDevin, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run_cli(capsys, "archive", "devin-unknown")
    assert code == 4
    assert "not found" in one_error_line(err)
    monkeypatch.delenv("DEVIN_ORG_ID")
    code, _, err = run_cli(capsys, "archive", "devin-0123")
    assert code == 2
    assert "needs an org_id" in one_error_line(err)


# --------------------------------------------------------------------------- tags


def test_tags_show_add_and_set_keeping_the_create_marker(
    api: ThreadedFakeDevin, capsys: pytest.CaptureFixture[str]
) -> None:
    session_id = create(api, tags=["ci"], idempotency_key="chat-message-7")
    marker = next(t for t in api.sessions[session_id].tags if t.startswith(CREATE_TAG_PREFIX))

    code, out, _ = run_cli(capsys, "tags", session_id)
    assert (code, out) == (0, "ci\n")  # the marker is the client's, not shown
    code, out, _ = run_cli(capsys, "tags", session_id, "--add", "bot", "urgent", "--add", "x")
    assert (code, out) == (0, "ci\nbot\nurgent\nx\n")
    assert api.requests[-1].method == "POST"

    code, out, _ = run_cli(capsys, "tags", session_id, "--set", "release")
    assert (code, out) == (0, "release\n")
    assert api.requests[-1].method == "PUT"
    assert api.sessions[session_id].tags == ["release", marker]

    # The marker kept, the same key still finds the one session: no second create.
    again = on_client(api, lambda c: c.create_session("do it", idempotency_key="chat-message-7"))
    assert again.session_id == session_id
    assert api.sessions_created == 1

    code, out, err = run_cli(capsys, "tags", session_id, "--set")
    assert (code, out, err) == (0, "", f"no tags on {session_id}\n")
    assert api.sessions[session_id].tags == [marker]
    code, out, _ = run_cli(capsys, "tags", session_id.removeprefix("devin-"), "--json")
    assert json.loads(out) == {"session_id": session_id, "tags": [marker]}


def test_tags_add_with_set_is_a_usage_error(
    api: ThreadedFakeDevin, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc_info:
        cli.main(["tags", "devin-0123", "--add", "a", "--set", "b"])
    assert exc_info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
    assert api.requests == []


def test_tags_failures(api: ThreadedFakeDevin, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "tags", "devin-unknown", "--add", "a")
    assert code == 4
    assert "not found" in one_error_line(err)
    session_id = create(api)
    api.reset_log()
    code, _, err = run_cli(capsys, "tags", session_id, "--add", *(f"t{n}" for n in range(51)))
    assert code == 2
    assert "50" in one_error_line(err)
    assert api.requests == []


def test_tags_in_the_enterprise_scope(
    enterprise: ThreadedFakeDevin, capsys: pytest.CaptureFixture[str]
) -> None:
    session_id = create(enterprise, tags=["ci"])
    code, out, _ = run_cli(capsys, "tags", session_id, "--add", "seen")
    assert (code, out) == (0, "ci\nseen\n")
    assert enterprise.requests[-1].path == f"/v3/enterprise/sessions/{session_id}/tags"
