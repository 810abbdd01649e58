"""The fake's attachment routes: uploads (multipart field ``file``) kept in memory.

Registered by ``FakeDevinServer`` as ``server.files``; the faults of ``inject(...,
route="upload_attachment", when="after")`` answer an upload the fake has already stored,
as a real server that acted and then failed would.
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

    def table(self) -> list[web.RouteDef]:
        return [
            web.post(
                "/v3/organizations/{org_id}/attachments",
                self._upload,
                name="upload_attachment",
            )
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
