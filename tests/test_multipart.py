"""The upload body and the download sink: measured before sending, read anew per send."""

from __future__ import annotations

import email.parser
import email.policy
import io
from pathlib import Path

import pytest

from devin_async import _multipart
from devin_async._multipart import FileSink, upload_of


def _parts(upload: _multipart.Upload) -> list[tuple[str | None, str, str, bytes]]:
    """(field name, file name, content type, bytes) of each part, as a mail parser reads them."""
    body = b"".join(upload.chunks())
    assert len(body) == upload.length
    head = f"Content-Type: {upload.media_type}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    found = []
    for part in message.iter_parts():
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        found.append(
            (
                part.get_param("name", header="content-disposition"),
                str(part.get_filename()),
                part.get_content_type(),
                payload,
            )
        )
    return found


def test_bytes_need_a_name_and_guess_no_type() -> None:
    with pytest.raises(ValueError, match="name="):
        upload_of(b"abc", None, None, 10)
    upload = upload_of(b"abc", "notes.bin", None, 10)
    assert _parts(upload) == [("file", "notes.bin", "application/octet-stream", b"abc")]


def test_a_path_is_read_anew_for_each_send(tmp_path: Path) -> None:
    path = tmp_path / "report.txt"
    data = bytes(range(256)) * 2000  # more than one chunk
    path.write_bytes(data)
    upload = upload_of(path, None, None, len(data))
    assert upload.size == len(data)
    first = _parts(upload)
    assert first == [("file", "report.txt", "text/plain", data)]
    assert _parts(upload) == first


def test_a_file_object_is_read_from_where_it_stood_again_for_a_retry() -> None:
    file = io.BytesIO(b"skip:payload")
    file.seek(5)
    upload = upload_of(file, "p.json", None, 100)
    assert _parts(upload) == [("file", "p.json", "application/json", b"payload")]
    assert _parts(upload)[0][3] == b"payload"


def test_a_named_file_gives_its_base_name(tmp_path: Path) -> None:
    path = tmp_path / "image.png"
    path.write_bytes(b"\x89PNG")
    with path.open("rb") as file:
        upload = upload_of(file, None, None, 100)
        assert _parts(upload) == [("file", "image.png", "image/png", b"\x89PNG")]


@pytest.mark.parametrize("kind", ["bytes", "path", "file"])
def test_over_the_limit_is_refused_before_reading(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(b"x" * 11)
    source: _multipart.UploadSource = {
        "bytes": b"x" * 11,
        "path": str(path),
        "file": io.BytesIO(b"x" * 11),
    }[kind]
    with pytest.raises(ValueError, match="11 bytes, more than the upload limit of 10"):
        upload_of(source, "big.bin", None, 10)
    assert upload_of(source, "big.bin", None, 11).size == 11


def test_a_file_that_grows_or_shrinks_while_sent_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "moving.txt"
    path.write_bytes(b"12345")
    upload = upload_of(path, None, None, 100)
    path.write_bytes(b"123")
    with pytest.raises(ValueError, match="shrank"):
        b"".join(upload.chunks())
    path.write_bytes(b"1234567")
    with pytest.raises(ValueError, match="grew"):
        b"".join(upload.chunks())


def test_text_mode_files_directories_and_odd_sources_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="binary"):
        b"".join(upload_of(io.StringIO("text"), "a.txt", None, 100).chunks())
    with pytest.raises(ValueError, match="not a regular file"):
        upload_of(tmp_path, None, None, 100)
    with pytest.raises(TypeError, match="path, bytes or a binary file"):
        upload_of(42, "x", None, 100)  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError):
        upload_of(tmp_path / "absent", None, None, 100)


def test_header_values_cannot_inject_parts() -> None:
    upload = upload_of(b"a", 'evil"\r\nX: y.txt', None, 10)
    head = next(upload.chunks())
    assert b"\r\nX: y" not in head
    assert b'filename="evil%22%0D%0AX: y.txt"' in head
    with pytest.raises(ValueError, match="NUL"):
        upload_of(b"a", "a\x00b", None, 10)
    with pytest.raises(ValueError, match="content_type"):
        upload_of(b"a", "a", "text/plain\r\nX: y", 10)


def test_the_repr_shows_no_content() -> None:
    upload = upload_of(b"secret-bytes", "a.bin", None, 100)
    assert "secret-bytes" not in repr(upload)
    assert repr(upload) == "<Upload 'a.bin' application/octet-stream 12 bytes>"


def test_a_sink_starts_again_over_an_earlier_answer_and_older_content() -> None:
    file = io.BytesIO(b"keep|old content that is longer")
    file.seek(5)
    sink = FileSink(file)
    assert sink.rewindable
    sink.begin()
    sink.write(b"first answer")
    sink.begin()
    sink.write(b"second")
    assert sink.written == 6
    assert file.getvalue() == b"keep|second"


class _Pipe(io.RawIOBase):
    """A write-only stream that cannot seek."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, chunk: object) -> int:
        assert isinstance(chunk, bytes)
        self.data += chunk
        return len(chunk)


def test_a_sink_that_cannot_seek_is_written_once() -> None:
    pipe = _Pipe()
    sink = FileSink(pipe)  # type: ignore[arg-type]
    assert not sink.rewindable
    sink.begin()
    sink.write(b"abc")
    with pytest.raises(ValueError, match="cannot start again"):
        sink.begin()
    assert bytes(pipe.data) == b"abc"
    with pytest.raises(TypeError, match="path or a binary file"):
        FileSink(object())  # type: ignore[arg-type]
