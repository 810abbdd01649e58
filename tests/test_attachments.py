"""Uploading attachments over sockets against the fake: sources, limits, no blind re-send."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import aiohttp
import pytest
from fakes import KEY, FakeTime

from devin_async import (
    APIConnectionError,
    ConfigurationError,
    DevinClient,
    InternalServerError,
    NotFoundError,
    ResponseValidationError,
    UploadedAttachment,
)
from devin_async.testing import FakeDevinServer


def _entries(folder: Path) -> list[Path]:
    return list(folder.iterdir())


def _only_stored(server: FakeDevinServer) -> tuple[str, str, bytes]:
    (stored,) = server.files.stored.values()
    return stored.name, stored.content_type, stored.data


async def test_upload_from_a_path_streams_the_file(
    client: DevinClient, server: FakeDevinServer, tmp_path: Path
) -> None:
    path = tmp_path / "log file.txt"
    data = b"line\n" * 100_000  # several chunks
    path.write_bytes(data)
    uploaded = await client.upload_attachment(path)
    assert isinstance(uploaded, UploadedAttachment)
    assert uploaded.name == "log file.txt"
    assert uploaded.url.startswith(server.url)
    assert uploaded.url.endswith("/log%20file.txt")
    assert _only_stored(server) == ("log file.txt", "text/plain", data)
    (recorded,) = server.requests
    assert recorded.authorized
    assert recorded.route == "upload_attachment"
    assert int(dict(recorded.headers)["Content-Length"]) > len(data)  # streamed, not chunked


async def test_upload_bytes_and_a_file_object(client: DevinClient, server: FakeDevinServer) -> None:
    first = await client.upload_attachment(b"\x00\x01", name="blob.bin")
    second = await client.upload_attachment(
        io.BytesIO(b"{}"), name="data.json", content_type="application/vnd.x+json"
    )
    assert first.attachment_id != second.attachment_id
    stored = {s.name: (s.content_type, s.data) for s in server.files.stored.values()}
    assert stored == {
        "blob.bin": ("application/octet-stream", b"\x00\x01"),
        "data.json": ("application/vnd.x+json", b"{}"),
    }


async def test_the_url_is_what_create_session_takes(
    client: DevinClient, server: FakeDevinServer
) -> None:
    uploaded = await client.upload_attachment(b"spec", name="spec.md")
    session = await client.create_session("Read the spec", attachment_urls=[uploaded.url])
    (attachment,) = await client.list_attachments(session.session_id)
    assert attachment.url == uploaded.url


async def test_an_attachment_is_listed_under_the_name_it_was_uploaded_with(
    client: DevinClient,
) -> None:
    uploaded = await client.upload_attachment(b"notes", name="design notes.md")
    session = await client.create_session("Read the notes", attachment_urls=[uploaded.url])
    (attachment,) = await client.list_attachments(session.session_id)
    assert (attachment.name, attachment.url) == ("design notes.md", uploaded.url)


async def test_over_the_limit_is_refused_before_any_request(
    client: DevinClient, server: FakeDevinServer
) -> None:
    with pytest.raises(ValueError, match="more than the upload limit of 3 bytes"):
        await client.upload_attachment(b"four", name="a.bin", max_bytes=3)
    with pytest.raises(ValueError, match="max_bytes"):
        await client.upload_attachment(b"x", name="a.bin", max_bytes=0)
    assert server.requests == []


async def test_an_upload_the_server_stored_then_dropped_is_not_sent_again(
    client: DevinClient, server: FakeDevinServer, sleep: FakeTime
) -> None:
    server.inject("drop", route="upload_attachment", when="after", times=None)
    with pytest.raises(APIConnectionError) as caught:
        await client.upload_attachment(b"once", name="once.txt")
    assert caught.value.request_sent
    assert KEY not in str(caught.value)
    assert server.count("upload_attachment") == 1
    assert len(server.files.stored) == 1
    assert sleep.delays == []


async def test_a_5xx_after_storing_is_not_sent_again(
    client: DevinClient, server: FakeDevinServer, sleep: FakeTime
) -> None:
    server.inject("status", status=503, route="upload_attachment", when="after", times=None)
    with pytest.raises(InternalServerError):
        await client.upload_attachment(b"once", name="once.txt")
    assert server.count("upload_attachment") == 1
    assert sleep.delays == []


async def test_a_429_before_handling_is_sent_again(
    client: DevinClient, server: FakeDevinServer, sleep: FakeTime, tmp_path: Path
) -> None:
    path = tmp_path / "again.txt"
    path.write_bytes(b"read twice")
    server.inject("rate_limit", route="upload_attachment", retry_after="2")
    uploaded = await client.upload_attachment(path)
    assert server.count("upload_attachment") == 2
    assert sleep.delays
    assert sleep.delays[0] >= 2
    assert server.files.stored[uploaded.attachment_id].data == b"read twice"


async def test_a_bad_answer_is_a_validation_error(
    client: DevinClient, server: FakeDevinServer
) -> None:
    server.inject("malformed", route="upload_attachment", when="after", times=None)
    with pytest.raises(ResponseValidationError):
        await client.upload_attachment(b"x", name="x.txt")


async def test_an_enterprise_client_cannot_upload(
    server: FakeDevinServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEVIN_ORG_ID", raising=False)
    async with DevinClient(KEY, base_url=server.url) as enterprise:
        with pytest.raises(ConfigurationError, match="org_id"):
            await enterprise.upload_attachment(b"x", name="x.txt")
    assert server.requests == []


async def test_download_to_a_path_follows_storage_without_the_key(
    client: DevinClient, server: FakeDevinServer, tmp_path: Path
) -> None:
    data = bytes(range(256)) * 3000
    uploaded = await client.upload_attachment(data, name="blob.bin")
    target = tmp_path / "out.bin"
    await client.download_attachment(uploaded, target)
    assert target.read_bytes() == data
    assert server.files.storage_authorized == [False]
    assert not (tmp_path / "out.bin.part").exists()
    (download,) = [r for r in server.requests if r.route == "download_attachment"]
    assert download.authorized


async def test_a_borrowed_session_follows_storage_without_the_key(
    server: FakeDevinServer, tmp_path: Path
) -> None:
    async with (
        aiohttp.ClientSession() as borrowed,
        DevinClient(KEY, org_id=server.org_id, base_url=server.url, session=borrowed) as client,
    ):
        uploaded = await client.upload_attachment(b"data", name="d.bin")
        await client.download_attachment(uploaded, tmp_path / "d.bin")
    assert (tmp_path / "d.bin").read_bytes() == b"data"
    assert server.files.storage_authorized == [False]
    assert all(r.authorized for r in server.requests)


async def test_download_a_session_attachment_to_a_file_object(
    client: DevinClient, server: FakeDevinServer
) -> None:
    uploaded = await client.upload_attachment(b"notes", name="notes.txt")
    session = await client.create_session("Read", attachment_urls=[uploaded.url])
    (attachment,) = await client.list_attachments(session.session_id)
    out = io.BytesIO()
    await client.download_attachment(attachment, out)
    assert out.getvalue() == b"notes"
    assert server.files.storage_authorized == [False]


@pytest.mark.parametrize(
    "location",
    ["http://example.com/blob?sig=secret", "file:///etc/passwd", "ftp://example.com/x"],
)
async def test_a_redirect_to_an_unsafe_scheme_is_refused(
    client: DevinClient, server: FakeDevinServer, tmp_path: Path, location: str
) -> None:
    uploaded = await client.upload_attachment(b"x", name="x.txt")
    server.files.redirect_location = location
    target = tmp_path / "x.txt"
    with pytest.raises(ResponseValidationError, match="refused a redirect") as caught:
        await client.download_attachment(uploaded.url, target)
    assert "secret" not in str(caught.value)
    assert not target.exists()
    assert not (tmp_path / "x.txt.part").exists()
    assert server.files.storage_authorized == []


async def test_a_missing_attachment_is_not_found_and_leaves_no_file(
    client: DevinClient, server: FakeDevinServer, tmp_path: Path
) -> None:
    url = f"{server.url}/v3/organizations/org-test/attachments/nope/none.txt"
    with pytest.raises(NotFoundError):
        await client.download_attachment(url, tmp_path / "none.txt")
    assert _entries(tmp_path) == []


async def test_a_download_over_its_limit_is_refused_and_leaves_no_file(
    client: DevinClient, server: FakeDevinServer, tmp_path: Path
) -> None:
    uploaded = await client.upload_attachment(b"x" * 100, name="big.bin")
    with pytest.raises(ResponseValidationError, match="exceeds 10 bytes"):
        await client.download_attachment(uploaded, tmp_path / "big.bin", max_bytes=10)
    assert _entries(tmp_path) == []


async def test_a_url_elsewhere_never_gets_the_key(
    client: DevinClient, server: FakeDevinServer, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="not an attachment URL"):
        await client.download_attachment("https://evil.example/v3/x/y", tmp_path / "y")
    assert server.requests == []


async def test_a_cancelled_download_propagates_and_leaves_no_file(
    client: DevinClient, server: FakeDevinServer, tmp_path: Path
) -> None:
    uploaded = await client.upload_attachment(b"data", name="d.bin")
    gate = asyncio.Event()
    server.inject("slow", route="download_attachment", gate=gate)
    task = asyncio.create_task(client.download_attachment(uploaded, tmp_path / "d.bin"))
    for _ in range(10_000):
        if server.count("download_attachment"):
            break
        await asyncio.sleep(0)
    assert server.count("download_attachment") == 1
    assert _entries(tmp_path) == [tmp_path / "d.bin.part"]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    gate.set()
    assert _entries(tmp_path) == []
