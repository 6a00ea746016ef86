"""The export reader process: its COPY encoding, its errors crossing the process boundary,
and that it never outlives an import, however the import ends."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from playlog.exports import copydata, importer, loader, reader
from playlog.exports.archive import ExportArchive, ExportRejected
from playlog.exports.importer import ImportCancelled, Progress, import_export
from playlog.exports.reader import ExportReaderFailed, ReaderProcess
from playlog.exports.records import STAGE_COLUMNS, MemberRows
from playlog.exports.report import MemberReport, Totals
from playlog.settings import ImportSettings
from playlog.testing.exports import (
    delete_users_and_their_catalog,
    extended_member,
    track_play,
    write_zip,
)

SETTINGS = ImportSettings()
pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc")


@pytest_asyncio.fixture
async def user_id(db_engine: AsyncEngine) -> AsyncIterator[uuid.UUID]:
    async with db_engine.begin() as connection:
        created = await connection.execute(
            text("INSERT INTO users (display_name) VALUES ('reader') RETURNING id")
        )
        new_id: uuid.UUID = created.scalar_one()
    yield new_id
    await delete_users_and_their_catalog(db_engine, [new_id])


def reader_children() -> list[int]:
    """Export reader processes that are children of this one (alive or not yet reaped)."""
    found = []
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/children") as children:
            for pid in children.read().split():
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                        arguments = cmdline.read().split(b"\0")
                except FileNotFoundError:
                    continue
                if b"playlog.exports.reader" in arguments or b"fake-reader" in arguments:
                    found.append(int(pid))
    return found


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[ReaderProcess]]:
    """The reader processes the imports of a test start; none may be left at its end."""
    processes: list[ReaderProcess] = []
    original = ReaderProcess.start.__func__  # type: ignore[attr-defined]

    async def start(cls: type[ReaderProcess]) -> ReaderProcess:
        process: ReaderProcess = await original(cls)
        processes.append(process)
        return process

    monkeypatch.setattr(ReaderProcess, "start", classmethod(start))
    yield processes
    assert reader_children() == []


def fake_reader(monkeypatch: pytest.MonkeyPatch, code: str) -> None:
    """Run ``code`` as the reader process instead of the real one."""
    monkeypatch.setattr(reader, "_command", lambda: [sys.executable, "-c", code, "fake-reader"])


async def plays(engine: AsyncEngine, user: uuid.UUID) -> int:
    async with engine.connect() as connection:
        count = await connection.scalar(
            text("SELECT count(*) FROM plays WHERE user_id = :u"), {"u": user}
        )
        return int(count or 0)


def plays_in(count: int, month: int) -> list[dict[str, Any]]:
    return [
        track_play(f"2024-{month:02d}-01T00:00:00Z", f"{i:022d}", ms_played=i) for i in range(count)
    ]


def as_json(value: Any) -> Any:
    # jsonb comes back decoded or as text, depending on the connection's codecs.
    return json.loads(value) if isinstance(value, str) else value


async def test_staged_rows_and_items_survive_the_binary_copy(db_engine: AsyncEngine) -> None:
    sensitive = '{"ip_addr": "192.0.2.10", "platform": "Android OS 9 (Ärger ✨)"}'
    reasons = ("trackdone", "fwdbtn")
    long, flags = "x" * 500, (True, True, True, True)
    # (played_at, track_id, ms_played, behaviour as a record holds it, sensitive), and
    # the row expected back. 1 and 0 equal True and False but are not flags, and come
    # after them, so a cached encoding of the flags must not answer for them.
    cases: list[tuple[tuple[Any, ...], tuple[Any, ...]]] = [
        (
            (
                datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC),
                "4uLU6hMCjMI75M1A2tKUQC",
                2**31 - 1,
                (*reasons, True, False, True, False),
                sensitive,
            ),
            (*reasons, True, False, True, False),
        ),
        (
            (
                datetime(2024, 5, 1, 11, tzinfo=UTC),
                "4uLU6hMCjMI75M1A2tKUQC",
                1,
                (*reasons, 1, 0, 1.0, "true"),
                None,
            ),
            (*reasons, None, None, None, None),
        ),
        (
            (
                datetime(2024, 5, 1, 12, tzinfo=UTC),
                "local:ab",
                2,
                (["trackdone"], "", None, True, None, False),
                None,
            ),
            (None, None, None, True, None, False),
        ),
        (
            (datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC), "local:ab", 0, None, None),
            (None,) * 6,
        ),
        (
            (datetime(2024, 5, 1, 13, tzinfo=UTC), "local:ab", 3, (long, None, *flags), None),
            (long, None, *flags),
        ),
    ]
    rows = [
        copydata.stage_row(
            at,
            track_id,
            ms,
            copydata.NO_BEHAVIOUR if behaviour is None else copydata.behaviour(*behaviour),
            kept,
        )
        for (at, track_id, ms, behaviour, kept), _ in cases
    ]
    items = [("local:ab", "track", "月光 \t\\ \n", None, None, None, "local:cd", "Sigur Rós")]
    async with db_engine.connect() as wrapper:
        connection: asyncpg.Connection = (await wrapper.get_raw_connection()).driver_connection
        async with connection.transaction():
            await loader.prepare(connection)
            await loader.stage(connection, copydata.stage_rows(rows))
            await connection.copy_to_table(
                "import_items",
                source=memoryview(copydata.items(items)),
                columns=loader.ITEM_COLUMNS,
                format="binary",
            )
            stored = await connection.fetch(
                "SELECT played_at, track_id, ms_played, reason_start, reason_end, shuffle, "
                "skipped, offline, incognito, sensitive FROM import_stage ORDER BY played_at DESC"
            )
            stored_items = await connection.fetch(
                "SELECT track_id, kind, name, album_name, show_name, uri, artist_id, artist_name "
                "FROM import_items"
            )
    assert STAGE_COLUMNS[-1] == "sensitive"
    expected = [
        (at, track_id, ms, *behaviour, None if kept is None else json.loads(kept))
        for (at, track_id, ms, _, kept), behaviour in sorted(cases, reverse=True)
    ]
    assert [(*row[:-1], as_json(row[-1])) for row in stored] == expected
    # Long values are encoded each time, never kept.
    assert all(long not in key for key in copydata.behaviour_cache)
    assert [tuple(row) for row in stored_items] == items


@pytest.mark.parametrize(
    "error",
    [
        ExportRejected("the export holds more than IMPORT_MAX_RECORDS (10) records"),
        FileNotFoundError(2, "No such file or directory", "/uploads/x.zip"),
    ],
)
def test_errors_cross_the_process_boundary_as_they_were(error: Exception) -> None:
    crossed = reader._error(json.loads(json.dumps(reader._error_head(error))))
    assert (type(crossed), str(crossed)) == (type(error), str(error))


def test_an_unexpected_error_in_the_reader_is_named() -> None:
    crossed = reader._error(reader._error_head(KeyError("ts")))
    assert isinstance(crossed, ExportReaderFailed)
    assert str(crossed) == "the export reader failed: KeyError: 'ts'"


def crashing_reader(monkeypatch: pytest.MonkeyPatch, member: str, marker: Path | None) -> None:
    """The real reader, but one that dies of a segmentation fault on the member whose
    name ends in ``member``: every time, or with ``marker`` only the first time (it
    leaves the file behind)."""
    fake_reader(
        monkeypatch,
        "import os, resource, signal\n"
        "from pathlib import Path\n"
        "from playlog.exports import reader\n"
        "resource.setrlimit(resource.RLIMIT_CORE, (0, 0))\n"
        f"marker = {str(marker) if marker else None!r}\n"
        "read = reader._Reader._member\n"
        "def member(self, index, found):\n"
        f"    if found.name.endswith({member!r}):\n"
        "        if marker is None or not Path(marker).exists():\n"
        "            if marker: Path(marker).touch()\n"
        "            os.kill(os.getpid(), signal.SIGSEGV)\n"
        "    read(self, index, found)\n"
        "reader._Reader._member = member\n"
        "reader.main()\n",
    )


async def test_a_member_that_crashes_the_reader_twice_fails_alone(
    db_engine: AsyncEngine,
    user_id: uuid.UUID,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    started: list[ReaderProcess],
    caplog: pytest.LogCaptureFixture,
) -> None:
    crashing_reader(monkeypatch, "_1.json", None)
    path = write_zip(tmp_path / "e.zip", {extended_member(i): plays_in(3, i + 1) for i in range(3)})
    with caplog.at_level(logging.WARNING, logger="playlog.exports.importer"):
        report = await import_export(db_engine, user_id, path, SETTINGS)
    # Each crash is logged with the file it happened on.
    assert [r.getMessage() for r in caplog.records] == [
        f"the export reader stopped (killed by SIGSEGV) while reading {extended_member(1)}"
    ] * 2
    assert [(f.name, f.status, f.error) for f in report.files] == [
        (extended_member(0), "imported", None),
        (
            extended_member(1),
            "failed",
            "could not be read: it stopped the export reader twice (killed by SIGSEGV)",
        ),
        (extended_member(2), "imported", None),
    ]
    # The first reader, the one that read the member again, and one for the member after.
    assert len(started) == 3
    assert (report.records_seen, report.skips_inserted) == (6, 6)
    assert await plays(db_engine, user_id) == 6
    # Nothing of the failed member was recorded as imported: a later run reads it again.
    async with db_engine.connect() as connection:
        recorded = await connection.scalar(
            text("SELECT count(*) FROM imported_members WHERE user_id = :u"), {"u": user_id}
        )
    assert recorded == 2


async def test_a_member_read_again_after_a_crash_is_stored_once_and_counts_once(
    db_engine: AsyncEngine,
    user_id: uuid.UUID,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    started: list[ReaderProcess],
) -> None:
    crashing_reader(monkeypatch, "_1.json", tmp_path / "crashed")
    path = write_zip(tmp_path / "e.zip", {extended_member(i): plays_in(3, i + 1) for i in range(3)})
    # Eight records allowed: the second reader must count the first member's three, or
    # it would read all nine.
    limits = ImportSettings(import_max_records=8)
    with pytest.raises(ExportRejected, match=r"more than IMPORT_MAX_RECORDS \(8\)"):
        await import_export(db_engine, user_id, path, limits)
    assert (tmp_path / "crashed").exists()
    assert len(started) == 2
    assert await plays(db_engine, user_id) == 6
    report = await import_export(db_engine, user_id, path, SETTINGS)
    assert [f.status for f in report.files] == ["already_imported", "already_imported", "imported"]
    assert await plays(db_engine, user_id) == 9


async def test_a_reader_that_keeps_crashing_stops_the_import(
    db_engine: AsyncEngine,
    user_id: uuid.UUID,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    started: list[ReaderProcess],
) -> None:
    fake_reader(monkeypatch, "import os, sys; sys.stdin.read(); os.kill(os.getpid(), 9)")
    members = {extended_member(i): plays_in(3, i + 1) for i in range(5)}
    path = write_zip(tmp_path / "e.zip", members)
    files: list[MemberReport] = []
    crashes = importer.MAX_READER_CRASHES + 1
    with pytest.raises(
        ExportReaderFailed,
        match=rf"stopped {crashes} times, the last time \(killed by SIGKILL\) while reading "
        + extended_member(3),
    ):
        await import_export(db_engine, user_id, path, SETTINGS, files=files)
    assert len(started) == crashes
    # Each member was read twice before the next one was tried.
    assert [(f.name, f.status) for f in files] == [(extended_member(i), "failed") for i in range(3)]
    assert await plays(db_engine, user_id) == 0


async def test_a_reader_that_exits_without_a_word_stops_the_import(
    db_engine: AsyncEngine,
    user_id: uuid.UUID,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    started: list[ReaderProcess],
) -> None:
    # Not a crash (no signal): a reader that cannot run is not started again.
    fake_reader(monkeypatch, "import sys; sys.stdin.read(); sys.exit(3)")
    path = write_zip(tmp_path / "e.zip", {extended_member(): plays_in(3, 1)})
    with pytest.raises(ExportReaderFailed, match=r"stopped \(exit code 3\)"):
        await import_export(db_engine, user_id, path, SETTINGS)
    assert len(started) == 1
    assert await plays(db_engine, user_id) == 0


async def test_a_reader_that_talks_nonsense_is_stopped(
    db_engine: AsyncEngine,
    user_id: uuid.UUID,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    started: list[ReaderProcess],
) -> None:
    # A well-formed frame of an unknown kind, then the child hangs on: it must be killed.
    fake_reader(
        monkeypatch,
        "import struct, sys, time; sys.stdin.read(); "
        "sys.stdout.buffer.write(struct.pack('>cII', b'Z', 2, 0) + b'{}'); "
        "sys.stdout.flush(); time.sleep(3600)",
    )
    path = write_zip(tmp_path / "e.zip", {extended_member(): plays_in(3, 1)})
    with pytest.raises(ExportReaderFailed, match="unknown message kind"):
        await import_export(db_engine, user_id, path, SETTINGS)
    assert len(started) == 1


class KillReaderOnFirstStore:
    """Kills the reader process while the first member is being stored."""

    def __init__(self, processes: list[ReaderProcess]) -> None:
        self.processes = processes
        self.stored = 0

    async def member_stored(
        self, connection: asyncpg.Connection, member: MemberReport, totals: Totals
    ) -> None:
        self.stored += 1
        if self.stored == 1:
            os.kill(self.processes[0].pid, signal.SIGKILL)

    async def progress(self, progress: Progress) -> None:
        return None


async def test_a_reader_killed_mid_import_is_replaced_and_nothing_is_lost(
    db_engine: AsyncEngine,
    user_id: uuid.UUID,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    started: list[ReaderProcess],
) -> None:
    # Small buffers, and a second member far larger than them: the reader is still
    # writing it when it is killed, so its end cannot have been read already.
    monkeypatch.setattr(reader, "QUEUE_DEPTH", 1)
    monkeypatch.setattr(reader, "_READ_LIMIT", 16 * 1024)
    path = write_zip(
        tmp_path / "e.zip",
        {extended_member(0): plays_in(5, 1), extended_member(1): plays_in(20_000, 2)},
    )
    report = await import_export(
        db_engine, user_id, path, SETTINGS, hooks=KillReaderOnFirstStore(started)
    )
    # The first member committed before the reader's death was noticed; the second was
    # in flight, undone whole, and read again by a second reader.
    assert len(started) == 2
    assert [(f.status, f.plays_inserted + f.skips_inserted) for f in report.files] == [
        ("imported", 5),
        ("imported", 20_000),
    ]
    assert await plays(db_engine, user_id) == 20_005


class CancelAtFirstProgress:
    async def member_stored(
        self, connection: asyncpg.Connection, member: MemberReport, totals: Totals
    ) -> None:
        return None

    async def progress(self, progress: Progress) -> None:
        raise ImportCancelled("cancelled by an administrator")


async def test_cancelling_an_import_stops_its_reader(
    db_engine: AsyncEngine,
    user_id: uuid.UUID,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    started: list[ReaderProcess],
) -> None:
    monkeypatch.setattr(importer, "PROGRESS_EVERY_S", 0.0)
    path = write_zip(tmp_path / "e.zip", {extended_member(i): plays_in(3, i + 1) for i in range(3)})
    with pytest.raises(ImportCancelled):
        await import_export(db_engine, user_id, path, SETTINGS, hooks=CancelAtFirstProgress())
    assert len(started) == 1
    assert await plays(db_engine, user_id) == 0


class RecordProgress:
    def __init__(self) -> None:
        self.steps: list[Progress] = []

    async def member_stored(
        self, connection: asyncpg.Connection, member: MemberReport, totals: Totals
    ) -> None:
        return None

    async def progress(self, progress: Progress) -> None:
        # A copy: the files list grows as the import goes on.
        self.steps.append(Progress(**{**vars(progress), "files": list(progress.files)}))


async def test_progress_moves_within_a_member_not_only_at_its_end(
    db_engine: AsyncEngine,
    user_id: uuid.UUID,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # One large member (several batches of rows): an export with a single history file
    # would otherwise show nothing done until it was all stored.
    monkeypatch.setattr(importer, "PROGRESS_EVERY_S", 0.0)
    count = 5 * reader.BATCH_ROWS
    start = datetime(2024, 1, 1, tzinfo=UTC)
    records = [
        track_play(
            (start + timedelta(minutes=4 * i)).strftime("%Y-%m-%dT%H:%M:%SZ"), f"{i % 40:022d}"
        )
        for i in range(count)
    ]
    path = write_zip(tmp_path / "e.zip", {extended_member(0): records})
    hooks = RecordProgress()
    report = await import_export(db_engine, user_id, path, SETTINGS, hooks=hooks)
    assert report.records_seen == count
    total = path.stat().st_size
    during = [step for step in hooks.steps if not step.files]
    done = [step.records_done for step in during]
    assert done == sorted(done)
    assert done[-1] <= count
    assert len({r for r in done if 0 < r < count}) >= 3, done
    shares = [step.bytes_done / total for step in during]
    assert shares == sorted(shares)
    assert shares[-1] < 1
    assert len({share for share in shares if share > 0}) >= 3, shares
    # After the member: all of its records, and its bytes, counted once.
    after = [step for step in hooks.steps if step.files]
    assert after
    assert all(step.records_done == count for step in after)
    assert all(during[-1].bytes_done <= step.bytes_done < total for step in after)


class StallInFirstStore:
    def __init__(self) -> None:
        self.storing = asyncio.Event()

    async def member_stored(
        self, connection: asyncpg.Connection, member: MemberReport, totals: Totals
    ) -> None:
        self.storing.set()
        await asyncio.Event().wait()

    async def progress(self, progress: Progress) -> None:
        return None


async def test_an_import_task_cancelled_from_outside_stops_its_reader(
    db_engine: AsyncEngine, user_id: uuid.UUID, tmp_path: Path, started: list[ReaderProcess]
) -> None:
    path = write_zip(tmp_path / "e.zip", {extended_member(i): plays_in(3, i + 1) for i in range(3)})
    hooks = StallInFirstStore()
    task = asyncio.create_task(import_export(db_engine, user_id, path, SETTINGS, hooks=hooks))
    await hooks.storing.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(started) == 1
    assert await plays(db_engine, user_id) == 0


async def test_a_refused_export_stops_its_reader_with_the_reason(
    db_engine: AsyncEngine, user_id: uuid.UUID, tmp_path: Path, started: list[ReaderProcess]
) -> None:
    path = write_zip(tmp_path / "e.zip", {extended_member(i): plays_in(3, i + 1) for i in range(3)})
    limits = ImportSettings(import_max_records=5)
    with pytest.raises(ExportRejected, match=r"more than IMPORT_MAX_RECORDS \(5\)"):
        await import_export(db_engine, user_id, path, limits)
    assert len(started) == 1
    # The first member was stored before the cap was reached; the second is undone.
    assert await plays(db_engine, user_id) == 3


async def test_a_reader_that_cannot_start_is_not_blamed_on_the_upload(
    db_engine: AsyncEngine, user_id: uuid.UUID, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reader, "_command", lambda: [str(tmp_path / "no-such-python")])
    path = write_zip(tmp_path / "e.zip", {extended_member(): plays_in(3, 1)})
    with pytest.raises(ExportReaderFailed, match="cannot start"):
        await import_export(db_engine, user_id, path, SETTINGS)


def test_a_failure_no_check_foresaw_costs_its_member_not_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Brittle(MemberRows):
        def _add_extended(self, record: Any) -> None:
            if record.get("boom"):
                raise RecursionError("maximum recursion depth exceeded: 203.0.113.7")
            super()._add_extended(record)

    monkeypatch.setattr(reader, "MemberRows", Brittle)
    path = write_zip(
        tmp_path / "e.zip",
        {
            extended_member(0): [{**track_play("2024-01-01T10:00:00Z"), "boom": True}],
            extended_member(1): plays_in(3, 1),
        },
    )
    sent: list[tuple[bytes, dict[str, Any]]] = []
    job = reader.ReaderJob(str(path), reader.Limits.of(SETTINGS), {}, False, 100)
    with ExportArchive(path, job.limits) as archive:
        reader._Reader(archive, job, lambda kind, head, tail: sent.append((kind, head))).run()
    assert [kind for kind, _ in sent] == [b"B", b"F", b"B", b"R", b"E", b"D"]
    assert sent[1][1] == {"index": 0, "error": "could not be read (RecursionError)"}
    assert sent[4][1]["records"] == 3
