"""Receiving an export ZIP in a request body, raw or as multipart/form-data, straight to disk.

The body is never held in memory: chunks are checked as they arrive (the ZIP signature
first, then the size cap) and written to a ``.part`` file in a worker thread, at most
``WRITE_SIZE`` bytes at a time. The file gets its final name only once it is complete,
so a file named like an upload is always a whole one.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from fastapi import Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

from playlog.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from playlog.exports.storage import EMPTY_ZIP_REFUSAL, EMPTY_ZIP_SIGNATURE, ZIP_SIGNATURE, part_path

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

RAW_TYPES = ("application/zip", "application/x-zip-compressed", "application/octet-stream")
MULTIPART_TYPE = "multipart/form-data"
FILE_FIELD = "file"
# What a multipart body may carry besides the file: boundaries, part headers, small fields.
MULTIPART_OVERHEAD = 64 * 1024
# Bytes gathered before one write to disk.
WRITE_SIZE = 1024 * 1024
_MB = 1024 * 1024


@dataclass(frozen=True)
class ReceivedZip:
    size: int
    # The file name of the multipart file part, as the client sent it; None for a raw body.
    filename: str | None


def _too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the ZIP is larger than {max_bytes / _MB:g} MB (IMPORT_MAX_ZIP_SIZE_MB)",
        details={"max_bytes": max_bytes},
    )


class ZipUpload:
    """One request's upload. Creating it checks the headers (415, 422, and 413 when
    ``Content-Length`` is already too large) before any byte is read or written."""

    def __init__(self, request: Request, max_bytes: int) -> None:
        self._request = request
        self._max_bytes = max_bytes
        media_type, options = parse_options_header(request.headers.get("content-type"))
        self._boundary: bytes | None = None
        if media_type.decode("latin-1") == MULTIPART_TYPE:
            self._boundary = options.get(b"boundary")
            if not self._boundary:
                raise ValidationFailed("multipart/form-data needs a boundary parameter")
            self._body_limit = max_bytes + MULTIPART_OVERHEAD
        elif media_type.decode("latin-1") in RAW_TYPES:
            self._body_limit = max_bytes
        else:
            raise UnsupportedMediaType(
                "send the ZIP as the body with Content-Type application/zip (or "
                "application/x-zip-compressed, application/octet-stream), or as the field "
                f"'{FILE_FIELD}' of a multipart/form-data body",
                details={"content_type": request.headers.get("content-type")},
            )
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._body_limit:
            raise _too_large(max_bytes)

    async def save_to(self, file: BinaryIO) -> ReceivedZip:
        """Stream the ZIP into ``file``, refusing it as soon as it shows it is not a ZIP
        (415) or too large (413); 422 when it is empty or the multipart body has no file.
        On failure ``file`` holds part of the body: the caller removes it."""
        writer = _ZipWriter(file, self._max_bytes)
        if self._boundary is None:
            await self._stream(writer.write)
            return ReceivedZip(await writer.finish(), None)
        parts = _FilePart()
        try:
            parser = MultipartParser(self._boundary, parts.callbacks())
        except FormParserError as exc:
            raise ValidationFailed(f"malformed multipart/form-data: {exc}") from None

        async def feed(chunk: bytes) -> None:
            try:
                parser.write(chunk)
            except FormParserError as exc:
                raise ValidationFailed(f"malformed multipart/form-data: {exc}") from None
            for data in parts.take():
                await writer.write(data)

        await self._stream(feed)
        if not parts.found:
            raise ValidationFailed(
                f"the multipart/form-data body has no file field named '{FILE_FIELD}'",
                details=[{"location": ["body", FILE_FIELD], "message": "field required"}],
            )
        if not parts.complete:
            raise ValidationFailed("the multipart/form-data body ends before its last boundary")
        return ReceivedZip(await writer.finish(), parts.filename)

    async def _stream(self, handle: Callable[[bytes], Awaitable[None]]) -> None:
        received = 0
        try:
            async for chunk in self._request.stream():
                received += len(chunk)
                if received > self._body_limit:
                    raise _too_large(self._max_bytes)
                await handle(chunk)
        except ClientDisconnect:
            raise BadRequest("the client disconnected before the upload was complete") from None


class _ZipWriter:
    """The file's bytes on their way to disk: the signature and the cap are checked, and
    writes of ``WRITE_SIZE`` run in a worker thread so the event loop never waits."""

    def __init__(self, file: BinaryIO, max_bytes: int) -> None:
        self._file = file
        self._max_bytes = max_bytes
        self._buffer = bytearray()
        self._size = 0
        self._checked = False

    async def write(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self._max_bytes:
            raise _too_large(self._max_bytes)
        self._buffer += data
        # The buffer holds the first bytes until the first write to disk (4 < WRITE_SIZE).
        if not self._checked and len(self._buffer) >= len(ZIP_SIGNATURE):
            self._check_signature()
        if len(self._buffer) >= WRITE_SIZE:
            await self._flush()

    async def finish(self) -> int:
        """Write what is left; the file's size."""
        if self._size == 0:
            raise ValidationFailed("the upload is empty: send the export ZIP")
        if not self._checked:
            self._check_signature()
        await self._flush()
        return self._size

    def _check_signature(self) -> None:
        if self._buffer.startswith(EMPTY_ZIP_SIGNATURE):
            raise ValidationFailed(EMPTY_ZIP_REFUSAL)
        if not self._buffer.startswith(ZIP_SIGNATURE):
            raise UnsupportedMediaType(
                "not a ZIP file: a Spotify export ZIP starts with the bytes 'PK\\x03\\x04'"
            )
        self._checked = True

    async def _flush(self) -> None:
        if self._buffer:
            await asyncio.to_thread(self._file.write, self._buffer)
            self._buffer = bytearray()


class _FilePart:
    """Callbacks of the streaming multipart parser. They run inside ``parser.write``,
    synchronously; the file bytes they collect are written after each chunk."""

    def __init__(self) -> None:
        self.found = False
        self.complete = False
        self.filename: str | None = None
        self._pending: list[bytes] = []
        self._in_file = False
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._headers.clear,
            "on_header_field": lambda data, start, end: self._header_name.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._header_value.extend(data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def take(self) -> list[bytes]:
        """The file bytes parsed since the last call."""
        pending, self._pending = self._pending, []
        return pending

    def _header_end(self) -> None:
        self._headers[bytes(self._header_name).strip().lower()] = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition"))
        if options.get(b"name") != FILE_FIELD.encode():
            return
        if self.found:
            raise ValidationFailed(f"send one file field named '{FILE_FIELD}', not several")
        self.found = self._in_file = True
        filename = options.get(b"filename")
        self.filename = filename.decode("utf-8", "replace") if filename else None

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self._pending.append(data[start:end])

    def _part_end(self) -> None:
        self._in_file = False

    def _end(self) -> None:
        self.complete = True


@dataclass
class StagedUpload:
    """Where one upload goes: ``path`` once complete, ``path`` + ``.part`` while it
    streams in. ``discard`` removes both."""

    user_id: uuid.UUID
    job_id: uuid.UUID
    path: Path
    _file: BinaryIO | None = None

    @property
    def part(self) -> Path:
        return part_path(self.path)

    async def open(self) -> BinaryIO:
        """Create the ``.part`` file (and the user's folder)."""
        self._file = await asyncio.to_thread(_create, self.part)
        return self._file

    async def complete(self) -> None:
        """Flush the file to disk, close it and give it its final name."""
        assert self._file is not None
        file, self._file = self._file, None
        await asyncio.to_thread(_sync_and_close, file)
        # Here, not in the thread: a cancelled request's discard must not race a rename.
        self.part.rename(self.path)

    def discard(self) -> None:
        """Close and remove what was written. Synchronous (a close and two unlinks), so it
        also runs to the end in a request that is being cancelled."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self.part.unlink(missing_ok=True)
        self.path.unlink(missing_ok=True)


def _create(part: Path) -> BinaryIO:
    part.parent.mkdir(parents=True, exist_ok=True)
    return part.open("xb")


def _sync_and_close(file: BinaryIO) -> None:
    with file:
        file.flush()
        os.fsync(file.fileno())
