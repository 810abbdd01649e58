"""The client's attachment calls: ``AttachmentCalls`` is a base class of ``DevinClient``.

An upload is measured (and refused over its limit) before any request is made, then
streamed from its source; it is a write, so it is sent again only where nothing reached
the server (a connection that never opened, a 429), as ``_retry`` treats every
non-idempotent request.

Source: https://docs.devin.ai/zh/api-reference/v3/attachments/post-organizations-attachments.md
"""

from __future__ import annotations

from . import _convert, _protocol
from ._models import UploadedAttachment
from ._multipart import DEFAULT_MAX_UPLOAD_BYTES, UploadSource, upload_of
from ._pipeline import Sender

__all__ = ["AttachmentCalls"]


class AttachmentCalls:
    """Upload files for sessions to read (mixed into ``DevinClient``)."""

    _sender: Sender
    _scope: _protocol.Scope

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
