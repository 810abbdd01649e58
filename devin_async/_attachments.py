"""The client's attachment calls: ``AttachmentCalls`` is a base class of ``DevinClient``.

An upload is measured (and refused over its limit) before any request is made, then
streamed from its source; it is a write, so it is sent again only where nothing reached
the server (a connection that never opened, a 429), as ``_retry`` treats every
non-idempotent request.

Source: https://docs.devin.ai/zh/api-reference/v3/attachments/post-organizations-attachments.md
"""

from __future__ import annotations

import contextlib
import os
import urllib.parse
from typing import BinaryIO

from . import _convert, _protocol
from ._models import Attachment, UploadedAttachment
from ._multipart import (
    DEFAULT_MAX_DOWNLOAD_BYTES,
    DEFAULT_MAX_UPLOAD_BYTES,
    FileSink,
    UploadSource,
    upload_of,
)
from ._pipeline import Sender

__all__ = ["AttachmentCalls"]


class AttachmentCalls:
    """Upload files for sessions to read (mixed into ``DevinClient``)."""

    _sender: Sender
    _scope: _protocol.Scope

    def _attachment_parts(
        self, attachment: Attachment | UploadedAttachment | str
    ) -> tuple[str, str]:
        """(uuid, name) of an attachment URL below this client's base URL."""
        url = attachment if isinstance(attachment, str) else attachment.url
        prefix = f"{self._sender.base_url}/v3/organizations/{self._scope.org_id}/attachments/"
        if not isinstance(url, str) or not url.startswith(prefix):
            # Never send the API key to a URL that is not the API's.
            raise ValueError("not an attachment URL of this client's organization and base URL")
        parts = url[len(prefix) :].split("?")[0].split("/")
        if len(parts) != 2:
            raise ValueError("an attachment URL ends in /{uuid}/{name}")
        return urllib.parse.unquote(parts[0]), urllib.parse.unquote(parts[1])

    async def download_attachment(
        self,
        attachment: Attachment | UploadedAttachment | str,
        destination: str | os.PathLike[str] | BinaryIO,
        *,
        max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
    ) -> None:
        """Stream an attachment (or its URL) into a path or a binary file opened for writing.

        A redirect to storage on another host is followed only over https (http to a
        loopback host too) and without the Authorization header. A path is written
        under a temporary name beside it and renamed when complete; after a failure
        no file is left at the path.

        Raises:
            ValueError: not an attachment URL of this client, or a bad ``max_bytes``.
            NotFoundError: no such attachment.
            ResponseValidationError: a refused redirect, or more than ``max_bytes``.
            APIError: any other failure of the request.
            OSError: the destination cannot be written.
        """
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise ValueError(f"max_bytes must be a positive integer, got {max_bytes!r}")
        attachment_id, name = self._attachment_parts(attachment)
        if not isinstance(destination, str | os.PathLike):
            sink = FileSink(destination, max_bytes)
            request = _protocol.download_attachment(self._scope, attachment_id, name, sink)
            await self._sender.call(request, _ignore_body)
            return
        path = os.fspath(destination)
        partial = f"{path}.part"
        try:
            with open(partial, "wb") as file:  # noqa: ASYNC230 (local disk, written in chunks)
                sink = FileSink(file, max_bytes)
                request = _protocol.download_attachment(self._scope, attachment_id, name, sink)
                await self._sender.call(request, _ignore_body)
            os.replace(partial, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(partial)
            raise

    async def upload_attachment(
        self,
        source: UploadSource,
        *,
        name: str | None = None,
        content_type: str | None = None,
        max_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    ) -> UploadedAttachment:
        """Upload one file and return it; pass its ``url`` in ``attachment_urls``.

        Args:
            source: a path, bytes, or a binary file opened for reading (read from its
                current position).
            name: the file name sent; by default the path's or the file's base name
                (needed for bytes).
            content_type: its media type; by default guessed from ``name``.
            max_bytes: the largest file sent, bytes; a larger one is refused before
                any request.

        Raises:
            ValueError: larger than ``max_bytes``, no name, or an unsendable name or type.
            TypeError: ``source`` is not a path, bytes or a binary file.
            OSError: the path cannot be read.
            ConfigurationError: the client has no ``org_id``.
            APIError: the server refused it, or it may or may not have arrived.
        """
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise ValueError(f"max_bytes must be a positive integer, got {max_bytes!r}")
        request = _protocol.upload_attachment(
            self._scope, upload_of(source, name, content_type, max_bytes)
        )
        data = await self._sender.call(request)
        return _convert.structure_uploaded(data)


def _ignore_body(body: bytes) -> None:
    """The load of a download: its body went to the sink."""
