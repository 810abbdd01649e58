"""The fake's attachment routes: uploads (multipart field ``file``) kept in memory.

Registered by ``FakeDevinServer`` as ``server.files``. A download is answered with a
redirect to a second local "storage" host on 127.0.0.1 that serves the bytes and records
whether an Authorization header reached it (``storage_authorized``); set
``redirect_location`` to answer with that Location instead (``http://`` to a host that
is not loopback, ``file:///etc/passwd``...), as a misbehaving server would. The faults
of ``inject(..., route="upload_attachment", when="after")`` answer an upload the fake has
already stored, as a real server that acted and then failed would.
"""

from __future__ import annotations

import email.parser
import email.policy
import urllib.parse
import uuid
from typing import TYPE_CHECKING

import attrs
from aiohttp import web

from .validation import _problem

if TYPE_CHECKING:
    from .server import FakeDevinServer

__all__ = ["FakeFiles", "StoredFile"]


@attrs.frozen
class StoredFile:
    """One uploaded file as the fake stored it."""

    attachment_id: str
    name: str
    content_type: str
    data: bytes


def _file_part(content_type: str, body: bytes) -> tuple[str, str, bytes] | None:
    """(file name, content type, bytes) of the ``file`` field, or None if there is none."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        return None
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") != "file":
            continue
        payload = part.get_payload(decode=True)
        name = part.get_filename()
        if isinstance(payload, bytes) and name:
            return name, part.get_content_type(), payload
    return None


class FakeFiles:
    """The fake's uploaded files, by attachment id, and the routes serving them.

    Attributes:
        stored: every stored upload, by attachment id, in arrival order.
    """

    def __init__(self, server: FakeDevinServer) -> None:
        self._server = server
        self.stored: dict[str, StoredFile] = {}
        self.storage_authorized: list[bool] = []
        self.redirect_location: str | None = None
        self._storage: web.AppRunner | None = None
        self._storage_url = ""

    async def _storage_base(self) -> str:
        """The storage host's URL, started on first use (in the server's loop)."""
        if self._storage is None:
            app = web.Application()
            app.router.add_get("/blob/{attachment_id}", self._serve_blob)
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
            await runner.setup()
            try:
                await web.TCPSite(runner, "127.0.0.1", 0).start()
            except BaseException:
                await runner.cleanup()
                raise
            host, port = runner.addresses[0][:2]
            self._storage, self._storage_url = runner, f"http://{host}:{port}"
        return self._storage_url

    async def close(self) -> None:
        """Stop the storage host."""
        runner, self._storage = self._storage, None
        if runner is not None:
            await runner.cleanup()

    async def _serve_blob(self, request: web.Request) -> web.Response:
        self.storage_authorized.append("Authorization" in request.headers)
        stored = self.stored.get(request.match_info["attachment_id"])
        if stored is None or request.query.get("sig") != "presigned":
            return web.Response(status=403, text="AccessDenied")
        return web.Response(body=stored.data, content_type=stored.content_type)

    async def _download(self, request: web.Request) -> web.StreamResponse:
        stored = self.stored.get(request.match_info["attachment_id"])
        if stored is None or stored.name != request.match_info["name"]:
            return _problem(404, "Attachment not found", request.path)
        location = self.redirect_location
        if location is None:
            location = f"{await self._storage_base()}/blob/{stored.attachment_id}?sig=presigned"
        return web.Response(status=302, headers={"Location": location})

    def table(self) -> list[web.RouteDef]:
        return [
            web.post(
                "/v3/organizations/{org_id}/attachments",
                self._upload,
                name="upload_attachment",
            ),
            web.get(
                "/v3/organizations/{org_id}/attachments/{attachment_id}/{name}",
                self._download,
                name="download_attachment",
            ),
        ]

    async def _upload(self, request: web.Request) -> web.Response:
        found = _file_part(request.headers.get("Content-Type", ""), await request.read())
        if found is None:
            return _problem(422, "multipart field 'file' is required", request.path)
        name, content_type, data = found
        attachment_id = str(uuid.uuid4())
        self.stored[attachment_id] = StoredFile(attachment_id, name, content_type, data)
        server = self._server
        path = f"/v3/organizations/{server.org_id}/attachments/{attachment_id}"
        url = f"{server.url}{path}/{urllib.parse.quote(name, safe='')}"
        return web.json_response({"attachment_id": attachment_id, "name": name, "url": url})
