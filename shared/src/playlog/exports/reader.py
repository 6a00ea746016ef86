"""The export reader: a child process that inflates and parses history members and
writes COPY-ready batches to its parent, the importer.

Parsing JSON and building rows is Python work. In the importer's own process it would
hold the GIL the event loop needs to drive the database, and the two would mostly take
turns; in a process of its own it runs on another core while the importer only forwards
bytes to PostgreSQL.

The child is ``python -m playlog.exports.reader``: it reads a :class:`ReaderJob` as JSON
on stdin and writes frames to stdout, in member order: ``Begin``, ``Rows``…, ``End`` for
a member to store, ``Known`` for one stored before, ``Failed`` for one that cannot be
read, then ``Done``, or ``Abort`` when the whole file is refused. A frame is a kind
byte, the lengths of a JSON head and of a binary tail, the head, the tail.

The parent (:class:`ReaderProcess`) queues at most :data:`QUEUE_DEPTH` messages; beyond
that the child blocks on the pipe, so memory stays bounded however large the export.
The child never outlives the import: the parent kills it on any error or cancellation,
and a child whose parent has gone stops at its next write. A child ended by a signal
(:class:`ReaderCrashed`) is replaced by the importer, which starts the next one at the
member the crash interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import struct
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from playlog.exports import copydata
from playlog.exports.archive import (
    ArchiveLimits,
    ExportArchive,
    ExportRejected,
    HistoryMember,
    MemberFailed,
    MemberRead,
)
from playlog.exports.records import MemberRows

BATCH_ROWS = 8192
# Messages the reader may run ahead of the database by: about two members of rows, so
# the next member is parsed while the database stores the previous one.
QUEUE_DEPTH = 8
# The parent's read buffer on the pipe (asyncio stops reading at twice this).
_READ_LIMIT = 1024 * 1024
_FRAME = struct.Struct(">cII")


class ExportReaderFailed(Exception):
    """The reader process failed in a way that says nothing about the file (a bug, or it
    kept dying); the import stops and may be run again."""


class ReaderCrashed(ExportReaderFailed):
    """The reader process was ended by a signal before it finished (a crash in a parser,
    or it was killed); the importer may start another one and go on."""

    def __init__(self, status: str) -> None:
        super().__init__(f"the export reader stopped ({status})")
        self.status = status


@dataclass(frozen=True)
class Limits:
    """The archive limits of ``ImportSettings``, as plain data for the child."""

    import_max_zip_size_mb: int
    import_max_uncompressed_mb: int
    import_max_compression_ratio: float
    import_max_members: int

    @property
    def import_max_zip_size_bytes(self) -> int:
        return self.import_max_zip_size_mb * 1024 * 1024

    @classmethod
    def of(cls, settings: ArchiveLimits) -> Limits:
        return cls(
            settings.import_max_zip_size_mb,
            settings.import_max_uncompressed_mb,
            settings.import_max_compression_ratio,
            settings.import_max_members,
        )


@dataclass(frozen=True)
class ReaderJob:
    path: str
    limits: Limits
    # Digests of members stored before, by "crc32:size" (a cheap pre-filter).
    known: dict[str, list[str]]
    keep_sensitive: bool
    max_records: int
    # The first member to read (a reader started after one that crashed goes on from
    # there) and the records read before it, which count towards ``max_records``.
    start: int = 0
    records_before: int = 0

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, data: bytes) -> ReaderJob:
        raw = json.loads(data)
        return cls(**{**raw, "limits": Limits(**raw["limits"])})


# Messages, in the order the child sends them.
@dataclass
class Begin:
    index: int


@dataclass
class Rows:
    data: bytes
    # The member's records and inflated bytes read so far, with this batch: how far
    # into the member the import is once the batch is staged.
    records: int = 0
    inflated: int = 0


@dataclass
class End:
    index: int
    digest: str
    records: int
    skipped: dict[str, int]
    earliest: datetime | None
    latest: datetime | None
    # The catalog items first seen in this member, COPY-encoded; empty when none are new.
    items: bytes = b""


@dataclass
class Known:
    index: int
    digest: str


@dataclass
class Failed:
    index: int
    error: str


@dataclass
class Abort:
    error: BaseException


@dataclass
class Done:
    pass


Message = Begin | Rows | End | Known | Failed | Abort | Done


# --- the child -------------------------------------------------------------------------


@dataclass
class _Reader:
    archive: ExportArchive
    job: ReaderJob
    send: Callable[[bytes, dict[str, Any], bytes], None]
    records: int = field(init=False)
    _items: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.records = self.job.records_before

    def run(self) -> None:
        for index, member in enumerate(self.archive.members):
            if index < self.job.start:
                continue
            try:
                self._member(index, member)
            except (ExportRejected, OSError, MemoryError):
                raise  # the file or the machine, not this member: the import stops
            except Exception as exc:
                # A failure no check foresaw (a parser's, or a defect) costs this member,
                # not the members after it. Only its type is told: its text may quote
                # the records.
                error = f"could not be read ({type(exc).__name__})"
                self.send(b"F", {"index": index, "error": error}, b"")
        self.send(b"D", {}, b"")

    def _member(self, index: int, member: HistoryMember) -> None:
        info = member.info
        candidates = self.job.known.get(f"{info.CRC}:{info.file_size}")
        if candidates:
            try:
                digest = self.archive.digest(member)
            except MemberFailed as exc:
                self.send(b"F", {"index": index, "error": str(exc)}, b"")
                return
            if digest in candidates:
                self.send(b"K", {"index": index, "digest": digest}, b"")
                return
        rows = MemberRows(member.format, self._items, keep_sensitive=self.job.keep_sensitive)
        read = MemberRead()
        self.send(b"B", {"index": index}, b"")
        try:
            for record in self.archive.records(member, read):
                rows.add(record)
                if len(rows.rows) >= BATCH_ROWS:
                    self._check_cap(rows)
                    self._send_rows(rows, read)
            self._check_cap(rows)
        except MemberFailed as exc:
            self.send(b"F", {"index": index, "error": str(exc)}, b"")
            return
        self.records += rows.records
        if rows.rows:
            self._send_rows(rows, read)
        head = {
            "index": index,
            "digest": read.digest,
            "records": rows.records,
            "skipped": dict(rows.skipped),
            "earliest": rows.earliest.isoformat() if rows.earliest else None,
            "latest": rows.latest.isoformat() if rows.latest else None,
        }
        self.send(b"E", head, copydata.items(rows.items.values()) if rows.items else b"")
        self._items.update(rows.items)

    def _send_rows(self, rows: MemberRows, read: MemberRead) -> None:
        batch = rows.take_rows()
        head = {"records": rows.records, "inflated": read.inflated}
        self.send(b"R", head, copydata.stage_rows(batch))

    def _check_cap(self, rows: MemberRows) -> None:
        if self.records + rows.records > self.job.max_records:
            raise ExportRejected(
                f"the export holds more than IMPORT_MAX_RECORDS ({self.job.max_records}) records"
            )


def _writer(stream: IO[bytes]) -> Callable[[bytes, dict[str, Any], bytes], None]:
    def send(kind: bytes, head: dict[str, Any], tail: bytes) -> None:
        encoded = json.dumps(head).encode()
        stream.write(_FRAME.pack(kind, len(encoded), len(tail)) + encoded)
        if tail:
            stream.write(tail)
        stream.flush()

    return send


def _error_head(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, ExportRejected):
        return {"kind": "rejected", "message": exc.message}
    if isinstance(exc, OSError) and exc.errno is not None:
        # Rebuilt as the same OSError subclass by the parent (the CLI and jobs report an
        # unreadable upload as such).
        return {"kind": "os", "errno": exc.errno, "strerror": exc.strerror, "file": exc.filename}
    return {"kind": "error", "message": f"{type(exc).__name__}: {exc}"}


def main() -> None:
    # The parent alone decides when the reader stops (Ctrl-C reaches the whole group).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Frames go to a private copy of stdout; anything printed by accident goes to stderr.
    protocol = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    send = _writer(protocol)
    try:
        job = ReaderJob.from_json(sys.stdin.buffer.read())
        with ExportArchive(Path(job.path), job.limits) as archive:
            _Reader(archive, job, send).run()
    except BrokenPipeError:
        pass  # the parent has gone, and nobody is left to tell
    except BaseException as exc:
        with contextlib.suppress(BrokenPipeError):
            send(b"A", _error_head(exc), b"")
    finally:
        # Closed here, so nothing is left to flush (and fail) at interpreter exit.
        with contextlib.suppress(OSError):
            protocol.close()


# --- the parent ------------------------------------------------------------------------


def _command() -> list[str]:
    # -P: never import from the working directory, whatever it holds.
    return [sys.executable, "-P", "-m", "playlog.exports.reader"]


def _decode(kind: bytes, head: dict[str, Any], tail: bytes) -> Message:
    if kind == b"R":
        return Rows(tail, head["records"], head["inflated"])
    if kind == b"B":
        return Begin(head["index"])
    if kind == b"E":
        for key in ("earliest", "latest"):
            head[key] = datetime.fromisoformat(head[key]) if head[key] else None
        return End(**head, items=tail)
    if kind == b"K":
        return Known(head["index"], head["digest"])
    if kind == b"F":
        return Failed(head["index"], head["error"])
    if kind == b"D":
        return Done()
    if kind == b"A":
        return Abort(_error(head))
    raise ValueError(f"unknown message kind {kind!r}")


def _error(head: dict[str, Any]) -> BaseException:
    if head["kind"] == "rejected":
        return ExportRejected(head["message"])
    if head["kind"] == "os":
        return OSError(head["errno"], head["strerror"], head["file"])
    return ExportReaderFailed(f"the export reader failed: {head['message']}")


def _exit_status(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


class ReaderProcess:
    """The importer's side: starts the child, queues its messages, stops it."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self._queue: asyncio.Queue[Message] = asyncio.Queue(QUEUE_DEPTH)
        self._finished = False
        self._pump = asyncio.create_task(self._run(), name="playlog-import-reader")

    @classmethod
    async def start(cls) -> ReaderProcess:
        """Start the child; it starts up (imports) while the caller prepares its job."""
        try:
            process = await asyncio.create_subprocess_exec(
                *_command(),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=_READ_LIMIT,
            )
        except OSError as exc:
            # Not the upload's fault: no "cannot be read" for this.
            raise ExportReaderFailed(f"the export reader cannot start ({exc})") from exc
        return cls(process)

    async def send(self, job: ReaderJob) -> None:
        stdin = self._process.stdin
        assert stdin is not None
        # A child that died before reading it is reported by the pump, with its status.
        with contextlib.suppress(ConnectionError):
            stdin.write(job.to_json())
            await stdin.drain()
        stdin.close()

    @property
    def pid(self) -> int:
        return self._process.pid

    async def receive(self) -> Message:
        return await self._queue.get()

    async def _run(self) -> None:
        stdout = self._process.stdout
        assert stdout is not None
        try:
            while True:
                kind, head_size, tail_size = _FRAME.unpack(await stdout.readexactly(_FRAME.size))
                head = json.loads(await stdout.readexactly(head_size))
                tail = await stdout.readexactly(tail_size) if tail_size else b""
                message = _decode(kind, head, tail)
                await self._queue.put(message)
                if isinstance(message, Done | Abort):
                    self._finished = True
                    return
        except asyncio.IncompleteReadError:
            # The pipe closed before Done: the child died. Ended by a signal, it crashed
            # (a parser's fault on what it read) or was killed (out of memory, by hand);
            # an exit without a last frame is a reader that could not run at all.
            code = await self._stop()
            status = _exit_status(code)
            error: ExportReaderFailed = (
                ReaderCrashed(status)
                if code < 0
                else ExportReaderFailed(f"the export reader stopped ({status})")
            )
        except Exception as exc:  # a garbled frame: the child is not to be trusted further
            await self._stop()
            error = ExportReaderFailed(f"the export reader failed: {exc}")
        # The importer waits for a message: it always gets a last one.
        await self._queue.put(Abort(error))

    async def _stop(self) -> int:
        """End the child (if it still runs) and reap it; returns its exit status."""
        if self._process.returncode is None and not self._finished:
            # os.kill, not Process.kill: that polls the child first, and reaping it there
            # would hide its exit status from asyncio's child watcher (it would say 255).
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._process.pid, signal.SIGKILL)
        stdout = self._process.stdout
        assert stdout is not None
        # The transport closes, and the exit can be awaited, only once the pipe is read
        # to its end.
        while await stdout.read(_READ_LIMIT):
            pass
        return await self._process.wait()

    async def close(self) -> None:
        """Stop the child and wait for it: it never outlives the import."""
        if not self._pump.done():
            self._pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._pump
        await asyncio.shield(self._stop())


if __name__ == "__main__":
    main()
