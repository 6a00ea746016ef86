"""Import jobs in the collector: claim, run, cancel, hand back, reap and resume, watch dir."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from playlog.db.models import ImportJob, Play
from playlog.exports import importer as importer_module
from playlog.exports import jobs
from playlog.exports.importer import import_export
from playlog.exports.jobs import ClaimedImport
from playlog.exports.storage import remove_leftover_uploads, upload_path
from playlog.testing.exports import extended_member, track_play, write_zip
from playlog.testing.factories import add_user
from playlog_collector.imports import ImportWorker, _move
from playlog_collector.settings import CollectorSettings

Sessions = async_sessionmaker[AsyncSession]


def export_records(count: int = 12) -> dict[str, Any]:
    return {
        extended_member(i): [track_play(f"2024-0{i + 1}-01T10:{m:02d}:00Z") for m in range(count)]
        for i in range(3)
    }


async def queued_job(
    sessions: Sessions,
    upload_dir: Path,
    members: dict[str, Any] | None = None,
    **fields: Any,
) -> tuple[uuid.UUID, uuid.UUID, Path]:
    """A user and a job with its upload (``members``, or three history files of twelve
    plays) in place and its size recorded, as the upload endpoint leaves them."""
    async with sessions.begin() as session:
        user = await add_user(session, f"importer-{uuid.uuid4().hex[:6]}")
        job_id = uuid.uuid4()
        path = upload_path(upload_dir, user.id, job_id)
        path.parent.mkdir(parents=True)
        write_zip(path, export_records() if members is None else members)
        session.add(
            ImportJob(
                id=job_id,
                user_id=user.id,
                storage_path=str(path),
                file_size_bytes=path.stat().st_size,
                **fields,
            )
        )
    return user.id, job_id, path


async def job_row(sessions: Sessions, job_id: uuid.UUID) -> ImportJob:
    async with sessions() as session:
        job = await session.get(ImportJob, job_id)
        assert job is not None
        return job


async def play_count(sessions: Sessions, user_id: uuid.UUID) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).where(Play.user_id == user_id)) or 0)


@pytest.fixture
def settings(collector_settings: CollectorSettings, tmp_path: Path) -> CollectorSettings:
    return collector_settings.model_copy(
        update={"upload_dir": tmp_path / "uploads", "import_watch_dir": tmp_path / "watch"}
    )


async def expire_lease(sessions: Sessions, job_id: uuid.UUID) -> None:
    """As if the job's worker had died: its lease ran out a second ago."""
    async with sessions.begin() as session:
        await session.execute(
            update(ImportJob)
            .where(ImportJob.id == job_id)
            .values(lease_expires_at=func.now() - text("interval '1 second'"))
        )


def worker(settings: CollectorSettings, engine: AsyncEngine, sessions: Sessions) -> ImportWorker:
    return ImportWorker(settings, engine, sessions, settings.collector_id or "collector-test")


class ThreadRecordingWorker(ImportWorker):
    """Notes the thread each import runs on."""

    threads: list[threading.Thread]

    def _run_on_thread(self, job: ClaimedImport) -> str | None:
        self.threads = [*getattr(self, "threads", []), threading.current_thread()]
        return super()._run_on_thread(job)


async def run_once(importer: ImportWorker) -> None:
    await importer.tick(asyncio.Event())
    assert importer.task is not None, "no job was claimed"
    await importer.task


async def test_a_pending_job_is_run_off_the_loop_and_its_upload_deleted(
    settings: CollectorSettings, db_engine: AsyncEngine, committed: Sessions
) -> None:
    user_id, job_id, path = await queued_job(committed, settings.upload_dir)
    importer = ThreadRecordingWorker(settings, db_engine, committed, "collector-test")
    await run_once(importer)
    job = await job_row(committed, job_id)
    assert (job.status, job.records_done, job.records_ingested, job.attempts) == (
        "success",
        36,
        36,
        1,
    )
    assert job.report is not None
    assert job.report["plays_inserted"] == 36
    assert job.format_detected == "extended"
    assert job.finished_at is not None
    assert job.lease_owner is None
    assert not path.exists()
    assert await play_count(committed, user_id) == 36
    # The import ran on a thread of its own, not on the collector's event loop.
    assert importer.threads
    assert threading.main_thread() not in importer.threads


async def test_a_finished_job_has_read_its_whole_file_even_with_a_failed_member(
    settings: CollectorSettings, db_engine: AsyncEngine, committed: Sessions
) -> None:
    # The last history file is cut short: the job is partial, and done with its file.
    truncated = {extended_member(3): b'[{"ts": "2024-05-01T10:00:00Z"'}
    _, job_id, path = await queued_job(
        committed, settings.upload_dir, {**export_records(), **truncated}
    )
    size = path.stat().st_size
    await run_once(worker(settings, db_engine, committed))
    job = await job_row(committed, job_id)
    assert (job.status, job.records_done, job.bytes_done) == ("partial", 36, size)


async def test_a_job_stopped_half_way_keeps_the_bytes_it_had_read(
    settings: CollectorSettings,
    db_engine: AsyncEngine,
    committed: Sessions,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Progress written after every step: the first file's bytes are on the job when the
    # import stops.
    monkeypatch.setattr(importer_module, "PROGRESS_EVERY_S", 0.0)
    _, job_id, path = await queued_job(committed, settings.upload_dir)
    size = path.stat().st_size
    # The record cap is met in the second of three files: the import stops there.
    capped = settings.model_copy(update={"import_max_records": 20})
    await run_once(worker(capped, db_engine, committed))
    job = await job_row(committed, job_id)
    assert job.status == "error"
    assert str(job.error).startswith("the export holds more than IMPORT_MAX_RECORDS (20)")
    assert 0 < job.bytes_done < size


async def test_a_job_whose_worker_died_is_run_again_and_resumes(
    settings: CollectorSettings, db_engine: AsyncEngine, committed: Sessions
) -> None:
    user_id, job_id, path = await queued_job(
        committed, settings.upload_dir, status="running", attempts=1, lease_owner="dead/1"
    )
    # The dead worker had stored the first of the three members before it died.
    first_only = write_zip(path.with_name("first.zip"), dict(list(export_records().items())[:1]))
    await import_export(db_engine, user_id, first_only, settings, job_id=job_id)
    assert await play_count(committed, user_id) == 12
    await expire_lease(committed, job_id)
    await run_once(worker(settings, db_engine, committed))
    job = await job_row(committed, job_id)
    assert (job.status, job.attempts) == ("success", 2)
    # The first member is skipped, yet counted as this job's own work, not as duplicates.
    assert job.report is not None
    assert [f["status"] for f in job.report["files"]] == ["imported"] * 3
    assert (job.report["plays_inserted"], job.report["duplicates"]) == (36, 0)
    assert await play_count(committed, user_id) == 36


async def test_a_rerun_counts_a_member_the_file_holds_twice_once(
    settings: CollectorSettings, db_engine: AsyncEngine, committed: Sessions
) -> None:
    """Two copies of one history file: the run that stored them reported the second as
    duplicates; a run after its worker died reports the same, not the plays twice."""
    user_id, job_id, path = await queued_job(
        committed, settings.upload_dir, status="running", attempts=1, lease_owner="dead/1"
    )
    records = export_records()[extended_member(0)]
    write_zip(path, {extended_member(0): records, extended_member(1): records})
    first = await import_export(db_engine, user_id, path, settings, job_id=job_id)
    assert (first.plays_inserted, first.duplicates) == (12, 12)
    await expire_lease(committed, job_id)
    await run_once(worker(settings, db_engine, committed))
    job = await job_row(committed, job_id)
    assert job.status == "success"
    assert job.report is not None
    assert (job.report["plays_inserted"], job.report["duplicates"]) == (12, 12)
    assert await play_count(committed, user_id) == 12


async def test_a_job_that_keeps_dying_is_given_up(
    settings: CollectorSettings, db_engine: AsyncEngine, committed: Sessions
) -> None:
    _, job_id, path = await queued_job(
        committed, settings.upload_dir, status="running", attempts=3, lease_owner="dead/1"
    )
    await expire_lease(committed, job_id)
    importer = worker(settings, db_engine, committed)
    await importer.tick(asyncio.Event())
    job = await job_row(committed, job_id)
    assert (job.status, job.error) == ("error", "the import stopped 3 times before it ended")
    assert importer.task is None
    assert not path.exists()


async def test_a_cancelled_running_job_stops_and_deletes_its_upload(
    settings: CollectorSettings, db_engine: AsyncEngine, committed: Sessions
) -> None:
    user_id, job_id, path = await queued_job(committed, settings.upload_dir)
    write_zip(path, {**export_records(), "Spotify Account Data/Userdata.json": {"u": 1}})
    claimed = await jobs.claim(db_engine, "w/1", settings.collector_lease, 3, settings.upload_dir)
    assert claimed is not None
    assert claimed.job_id == job_id
    async with committed.begin() as session:
        await session.execute(
            update(ImportJob).where(ImportJob.id == job_id).values(status="cancelled")
        )
    hooks = jobs.JobHooks(db_engine, claimed, settings.collector_lease, threading.Event())
    outcome = await jobs.run_job(db_engine, claimed, settings, hooks)
    assert outcome.status == "cancelled"
    job = await job_row(committed, job_id)
    assert job.status == "cancelled"
    # Its report still lists what the ZIP held besides history.
    assert job.report is not None
    assert (job.report["ignored_files"], job.report["ignored_count"]) == (
        ["Spotify Account Data/Userdata.json"],
        1,
    )
    assert not path.exists()
    # The first member's transaction was the one refused: nothing of it stayed.
    assert await play_count(committed, user_id) == 0


async def test_a_stopping_worker_hands_its_job_back(
    settings: CollectorSettings, db_engine: AsyncEngine, committed: Sessions
) -> None:
    user_id, job_id, path = await queued_job(committed, settings.upload_dir)
    claimed = await jobs.claim(db_engine, "w/1", settings.collector_lease, 3, settings.upload_dir)
    assert claimed is not None
    stop = threading.Event()
    stop.set()
    hooks = jobs.JobHooks(db_engine, claimed, settings.collector_lease, stop)
    outcome = await jobs.run_job(db_engine, claimed, settings, hooks)
    assert outcome.status == "pending"
    job = await job_row(committed, job_id)
    # A graceful stop is not a failed attempt; the upload stays for the next run.
    assert (job.status, job.attempts, job.lease_owner) == ("pending", 0, None)
    assert path.exists()
    # The member in flight was not committed.
    assert await play_count(committed, user_id) == 0


async def test_zips_dropped_into_the_watch_dir_are_imported(
    settings: CollectorSettings, db_engine: AsyncEngine, committed: Sessions
) -> None:
    assert settings.import_watch_dir is not None
    async with committed.begin() as session:
        user_id = (await add_user(session, "dropper")).id
    dropped = settings.import_watch_dir / str(user_id) / "my_spotify_data.zip"
    dropped.parent.mkdir(parents=True)
    write_zip(dropped, export_records(2))
    stray = settings.import_watch_dir / "not-a-user" / "x.zip"
    stray.parent.mkdir(parents=True)
    write_zip(stray, export_records(1))
    settled = time.time() - 60
    for path in (dropped, stray):
        os.utime(path, (settled, settled))
    await run_once(worker(settings, db_engine, committed))
    async with committed() as session:
        job = await session.scalar(select(ImportJob).where(ImportJob.user_id == user_id))
    assert job is not None
    assert (job.status, job.original_filename) == ("success", "my_spotify_data.zip")
    assert not dropped.exists()
    assert stray.exists()
    assert await play_count(committed, user_id) == 6


async def test_left_over_uploads_are_removed_and_live_ones_kept(
    settings: CollectorSettings, db_engine: AsyncEngine, committed: Sessions
) -> None:
    # A pending job's upload, unchanged for hours: it is still to be imported.
    _, pending_id, pending = await queued_job(committed, settings.upload_dir)
    folder = pending.parent
    cut_off = folder / f"{uuid.uuid4()}.zip.part"  # an upload cut off by a crash
    ended = folder / f"{uuid.uuid4()}.zip"  # a job that ended without deleting it
    writing = folder / f"{uuid.uuid4()}.zip.part"  # an upload arriving right now
    notes = folder / "notes.txt"  # not an upload
    for path in (cut_off, ended, writing, notes):
        path.write_bytes(b"PK\x03\x04")
    hours_ago = time.time() - 3 * 3600
    for path in (pending, cut_off, ended, notes):
        os.utime(path, (hours_ago, hours_ago))

    importer = worker(settings, db_engine, committed)
    importer.stop.set()  # sweep only: no job is claimed
    await importer.tick(asyncio.Event())
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        p.name for p in (pending, writing, notes)
    )
    assert (await job_row(committed, pending_id)).status == "pending"

    # Swept once an hour, not on every tick.
    cut_off.write_bytes(b"PK\x03\x04")
    os.utime(cut_off, (hours_ago, hours_ago))
    await importer.tick(asyncio.Event())
    assert cut_off.exists()


def test_a_dropped_export_being_queued_is_not_taken_for_a_left_over(
    settings: CollectorSettings, tmp_path: Path
) -> None:
    # Dropped days ago, moved into UPLOAD_DIR; its job is not committed yet.
    dropped = tmp_path / "my_spotify_data.zip"
    write_zip(dropped, export_records(1))
    days_ago = time.time() - 3 * 86_400
    os.utime(dropped, (days_ago, days_ago))
    target = upload_path(settings.upload_dir, uuid.uuid4(), uuid.uuid4())
    _move(dropped, target)
    assert remove_leftover_uploads(settings.upload_dir, []) == 0
    assert target.exists()


def test_the_sweep_follows_no_link_out_of_the_upload_dir(
    settings: CollectorSettings, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    theirs = outside / "old.zip"
    theirs.write_bytes(b"PK\x03\x04")
    linked = settings.upload_dir / str(uuid.uuid4())
    settings.upload_dir.mkdir(parents=True, exist_ok=True)
    linked.symlink_to(outside, target_is_directory=True)
    ours = settings.upload_dir / str(uuid.uuid4()) / f"{uuid.uuid4()}.zip"
    ours.parent.mkdir()
    ours.write_bytes(b"PK\x03\x04")
    hours_ago = time.time() - 3 * 3600
    for path in (theirs, ours):
        os.utime(path, (hours_ago, hours_ago))
    assert remove_leftover_uploads(settings.upload_dir, []) == 1
    assert theirs.exists()
    assert not ours.exists()


def test_a_left_over_that_cannot_be_removed_does_not_stop_the_sweep(
    settings: CollectorSettings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    folder = settings.upload_dir / str(uuid.uuid4())
    folder.mkdir(parents=True)
    stuck, other = (folder / f"{uuid.uuid4()}.zip" for _ in range(2))
    hours_ago = time.time() - 3 * 3600
    for path in (stuck, other):
        path.write_bytes(b"PK\x03\x04")
        os.utime(path, (hours_ago, hours_ago))
    unlink = Path.unlink

    def refuse_one(path: Path, missing_ok: bool = False) -> None:
        if path.name == stuck.name:
            raise PermissionError(13, "Permission denied")
        unlink(path, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", refuse_one)
    assert remove_leftover_uploads(settings.upload_dir, []) == 1
    assert stuck.exists()
    assert not other.exists()
    assert "could not delete an import upload: PermissionError" in caplog.text
