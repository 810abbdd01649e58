"""Streamed request and response bodies: the multipart upload and the download sink.

Plain values the protocol puts on a ``Request`` and the transport reads: an ``Upload``
is a ``multipart/form-data`` body with one file field whose length is known before
anything is sent, and whose bytes are read from their source in chunks each time the
request is sent (so a retry, where the policy allows one, reads the file again from its
start instead of from a consumed stream). A ``Sink`` takes a 2xx response body chunk by
chunk, starting again from its beginning if a retry answers anew.

Upload: https://docs.devin.ai/zh/api-reference/v3/attachments/post-organizations-attachments.md
(multipart field ``file``).
"""

from __future__ import annotations

import io
import mimetypes
import os
import secrets
import stat
from collections.abc import Iterator
from typing import BinaryIO, Protocol

__all__ = [
    "CHUNK",
    "DEFAULT_MAX_DOWNLOAD_BYTES",
    "DEFAULT_MAX_UPLOAD_BYTES",
    "FileSink",
    "Sink",
    "Upload",
    "UploadSource",
    "upload_of",
]

CHUNK = 256 * 1024
"""Bytes read from a file (or written to one) at a time."""

DEFAULT_MAX_UPLOAD_BYTES = 100 * 1024 * 1024
"""The largest upload the client sends unless told otherwise (its own limit: the API
documents none), in bytes."""

DEFAULT_MAX_DOWNLOAD_BYTES = 1024 * 1024 * 1024
"""The largest download the client accepts unless told otherwise, in bytes."""

UploadSource = str | os.PathLike[str] | bytes | bytearray | memoryview | BinaryIO
"""What ``upload_attachment`` reads: a path, bytes, or a binary file opened for reading."""


class _Part(Protocol):
    size: int

    def chunks(self) -> Iterator[bytes]: ...


class _Memory:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)

    def chunks(self) -> Iterator[bytes]:
        for start in range(0, self.size, CHUNK):
            yield self.data[start : start + CHUNK]


class _Path:
    """A file on disk, opened anew for each read of the body."""

    def __init__(self, path: str, size: int) -> None:
        self.path = path
        self.size = size

    def chunks(self) -> Iterator[bytes]:
        with open(self.path, "rb") as file:
            yield from _read(file, self.size)


class _Seekable:
    """An open file the caller gave: read from where it stood, again for each send."""

    def __init__(self, file: BinaryIO, start: int, size: int) -> None:
        self.file = file
        self.start = start
        self.size = size

    def chunks(self) -> Iterator[bytes]:
        self.file.seek(self.start)
        yield from _read(self.file, self.size)


def _read(file: BinaryIO, size: int) -> Iterator[bytes]:
    """Read exactly ``size`` bytes, refusing a file that shrank or grew since it was measured."""
    left = size
    while left > 0:
        chunk = file.read(min(CHUNK, left))
        if not isinstance(chunk, bytes):
            raise TypeError("the file to upload must be opened in binary mode ('rb')")
        if not chunk:
            raise ValueError(f"the file to upload shrank while it was sent ({size} bytes expected)")
        left -= len(chunk)
        yield chunk
    if file.read(1):
        raise ValueError(f"the file to upload grew while it was sent ({size} bytes expected)")


def _header_value(text: str, what: str) -> str:
    """Quote ``text`` for a multipart header as browsers do (HTML's form encoding)."""
    if "\x00" in text:
        raise ValueError(f"{what} must not contain NUL")
    return text.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


class Upload:
    """A ``multipart/form-data`` body with one file field, read in chunks when sent.

    Attributes:
        name: the file name sent.
        content_type: the file's media type.
        size: the file's size, bytes.
        length: the whole body's size, bytes (the Content-Length).
        media_type: the body's Content-Type, with its boundary.
    """

    def __init__(self, part: _Part, name: str, content_type: str, field: str = "file") -> None:
        self._part = part
        self.name = name
        self.content_type = content_type
        self.size = part.size
        boundary = f"devin-async-{secrets.token_hex(16)}"
        self.media_type = f"multipart/form-data; boundary={boundary}"
        self._head = (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="{field}"; '
            f'filename="{_header_value(name, "name")}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        self._tail = f"\r\n--{boundary}--\r\n".encode()
        self.length = len(self._head) + part.size + len(self._tail)

    def __repr__(self) -> str:
        return f"<Upload {self.name!r} {self.content_type} {self.size} bytes>"

    def chunks(self) -> Iterator[bytes]:
        """Yield the body from its start (each call reads the file again)."""
        yield self._head
        yield from self._part.chunks()
        yield self._tail


def _size_of(file: BinaryIO) -> tuple[int, int] | None:
    """(position, bytes left) of a seekable file, or None if it cannot seek."""
    try:
        if not file.seekable():
            return None
        start = file.tell()
        end = file.seek(0, io.SEEK_END)
        file.seek(start)
    except (OSError, ValueError, AttributeError):
        return None
    return start, end - start


def _check_size(size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise ValueError(
            f"the file is {size} bytes, more than the upload limit of {max_bytes} bytes "
            "(raise max_bytes= to send it)"
        )


def upload_of(
    source: UploadSource, name: str | None, content_type: str | None, max_bytes: int
) -> Upload:
    """Measure ``source`` and return its upload body, refusing one over ``max_bytes``.

    A path is opened each time the body is read; an open file is read from its current
    position (again from there for a retry, if it can seek; otherwise it is read into
    memory here, at most ``max_bytes + 1`` bytes of it).

    Raises:
        ValueError: larger than ``max_bytes``; no name where none can be derived; a name
            or content type that cannot be sent.
        TypeError: not a path, bytes or a binary file.
        OSError: the path cannot be read.
    """
    part: _Part
    default_name: str | None = None
    if isinstance(source, bytes | bytearray | memoryview):
        _check_size(len(source), max_bytes)
        part = _Memory(bytes(source))
    elif isinstance(source, str | os.PathLike):
        path = os.fspath(source)
        if not isinstance(path, str):
            raise TypeError("a path to upload must be a str path")
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"not a regular file: {os.path.basename(path)!r}")
        size = info.st_size
        _check_size(size, max_bytes)
        part = _Path(path, size)
        default_name = os.path.basename(path)
    elif callable(getattr(source, "read", None)):
        file_name = getattr(source, "name", None)
        if isinstance(file_name, str) and file_name:
            default_name = os.path.basename(file_name)
        measured = _size_of(source)
        if measured is not None:
            _check_size(measured[1], max_bytes)
            part = _Seekable(source, *measured)
        else:
            data = source.read(max_bytes + 1)
            if not isinstance(data, bytes):
                raise TypeError("the file to upload must be opened in binary mode ('rb')")
            _check_size(len(data), max_bytes)
            part = _Memory(data)
    else:
        raise TypeError(f"upload a path, bytes or a binary file, not {type(source).__name__}")
    name = name if name is not None else default_name
    if not isinstance(name, str) or not name.strip():
        raise ValueError("name= is needed to upload bytes or a file object without a name")
    if content_type is None:
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if (
        not isinstance(content_type, str)
        or not content_type.isprintable()
        or "/" not in content_type
    ):
        raise ValueError(
            f"content_type must be a media type such as 'text/plain', not {content_type!r}"
        )
    return Upload(part, name, content_type)


class Sink(Protocol):
    """Takes a response body: ``begin()`` before the first chunk of each answer, then writes.

    ``max_bytes`` is the largest body it accepts.
    """

    max_bytes: int

    def begin(self) -> None: ...

    def write(self, chunk: bytes, /) -> object: ...


class FileSink:
    """Writes a download into a binary file, from where the file stood when it was given.

    Each answer starts writing at that position and cuts off whatever followed it (an
    earlier answer's bytes, or older content); a file that cannot seek cannot be
    written twice.

    Attributes:
        written: bytes written by the current answer.
    """

    def __init__(self, file: BinaryIO, max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES) -> None:
        if not callable(getattr(file, "write", None)):
            raise TypeError(f"download into a path or a binary file, not {type(file).__name__}")
        self._file = file
        self._start = _size_of(file)
        self._begun = False
        self.written = 0
        self.max_bytes = max_bytes

    @property
    def rewindable(self) -> bool:
        """True if a second answer can be written over the first."""
        return self._start is not None

    def begin(self) -> None:
        if self._begun and self._start is None:
            raise ValueError("a download into a file that cannot seek cannot start again")
        if self._start is not None:
            # From where the file stood: drop an earlier answer and any older bytes after it.
            self._file.seek(self._start[0])
            self._file.truncate()
        self._begun = True
        self.written = 0

    def write(self, chunk: bytes, /) -> object:
        self.written += len(chunk)
        return self._file.write(chunk)
