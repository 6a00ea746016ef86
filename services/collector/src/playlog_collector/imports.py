"""Import jobs in the collector: claimed like any work, run on a thread of their own.

The import runs with its own event loop and database engine on a separate thread, so
the collector's loop keeps polling while a multi-million-row export is parsed and
loaded. ZIPs dropped into IMPORT_WATCH_DIR/<user id>/ become jobs as if uploaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import threading
import time
import uuid
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from playlog.db.engine import create_engine
from playlog.db.models import ImportJob, User
from playlog.db.models.imports import FINISHED_IMPORT_STATUSES
from playlog.exports import jobs
from playlog.exports.jobs import ClaimedImport
from playlog.exports.storage import remove_leftover_uploads, upload_path
from playlog.logging import log_context
from playlog_collector.settings import CollectorSettings

log = logging.getLogger(__name__)
# A dropped file must be this still before it is taken: it may still be copied in.
SETTLE_SECONDS = 5.0
# How often UPLOAD_DIR is cleared of files no job reads (and at start).
LEFTOVER_SWEEP_SECONDS = 3600.0


class ImportWorker:
    """One import at a time per collector process."""

    def __init__(
        self,
        settings: CollectorSettings,
        engine: AsyncEngine,
        sessionmaker: async_sessionmaker[AsyncSession],
        worker_id: str,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.sessionmaker = sessionmaker
        self.worker_id = worker_id
        self.task: asyncio.Task[None] | None = None
        self.stop = threading.Event()
        self._warned: set[Path] = set()
        self._next_sweep = 0.0

    @property
    def busy(self) -> bool:
        return self.task is not None and not self.task.done()

    async def tick(self, on_done: asyncio.Event) -> None:
        """Take dropped files in, then start the oldest runnable job if none is running;
        now and then, remove upload files that no job reads."""
        if time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + LEFTOVER_SWEEP_SECONDS
            try:
                await self._sweep()
            except Exception:
                log.exception("could not clear left-over uploads")
        if self.settings.import_watch_dir is not None:
            await self._take_dropped(self.settings.import_watch_dir)
        if self.busy or self.stop.is_set():
            return
        owner = f"{self.worker_id}/{uuid.uuid4().hex[:8]}"
        job = await jobs.claim(
            self.engine,
            owner,
            self.settings.collector_lease,
            self.settings.import_max_attempts,
            self.settings.upload_dir,
        )
        if job is not None:
            self.task = asyncio.create_task(self._run(job), name=f"import:{job.job_id}")
            self.task.add_done_callback(lambda _: on_done.set())

    async def shutdown(self, grace: float) -> None:
        """Ask a running import to hand its job back, and wait for it to do so."""
        self.stop.set()
        if self.task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self.task), grace)

    async def _run(self, job: ClaimedImport) -> None:
        with log_context(user_id=str(job.user_id), import_job_id=str(job.job_id)):
            log.info("import started", extra={"attempt": job.attempt})
            started = time.monotonic()
            try:
                status = await asyncio.to_thread(self._run_on_thread, job)
            except Exception:
                # The lease runs out and the job is run again (up to IMPORT_MAX_ATTEMPTS).
                log.exception("import failed unexpectedly")
                return
            log.info(
                "import %s",
                status,
                extra={"elapsed_s": round(time.monotonic() - started, 3)},
            )

    def _run_on_thread(self, job: ClaimedImport) -> str | None:
        return asyncio.run(self._run_job(job))

    async def _run_job(self, job: ClaimedImport) -> str | None:
        # An engine of the thread's own: connections belong to the loop that opened them.
        engine = create_engine(self.settings.database_url, pool_size=2)
        try:
            hooks = jobs.JobHooks(engine, job, self.settings.collector_lease, self.stop)
            return (await jobs.run_job(engine, job, self.settings, hooks)).status
        finally:
            await engine.dispose()

    async def _sweep(self) -> None:
        async with self.sessionmaker() as session:
            live = await session.scalars(
                select(ImportJob.storage_path).where(
                    ImportJob.status.not_in(FINISHED_IMPORT_STATUSES),
                    ImportJob.storage_path.is_not(None),
                )
            )
            paths = [path for path in live if path is not None]
        removed = await asyncio.to_thread(remove_leftover_uploads, self.settings.upload_dir, paths)
        if removed:
            log.info("removed left-over uploads", extra={"files": removed})

    async def _take_dropped(self, watch_dir: Path) -> None:
        for path in await asyncio.to_thread(_settled_zips, watch_dir):
            try:
                user_id = uuid.UUID(path.parent.name)
            except ValueError:
                self._warn_once(path, "is not in a folder named by a user id")
                continue
            try:
                await self._queue_dropped(path, user_id)
            except Exception:
                log.exception("could not queue a dropped export")

    async def _queue_dropped(self, path: Path, user_id: uuid.UUID) -> None:
        async with self.sessionmaker() as session:
            if await session.scalar(select(User.id).where(User.id == user_id)) is None:
                self._warn_once(path, "belongs to no known user")
                return
        job_id = uuid.uuid4()
        target = upload_path(self.settings.upload_dir.absolute(), user_id, job_id)
        size = await asyncio.to_thread(_move, path, target)
        try:
            async with self.sessionmaker.begin() as session:
                session.add(
                    ImportJob(
                        id=job_id,
                        user_id=user_id,
                        storage_path=str(target),
                        original_filename=path.name[:255],
                        file_size_bytes=size,
                    )
                )
        except BaseException:
            # No job, so the file goes back where it was dropped (a failed commit too).
            await asyncio.to_thread(_move, target, path)
            raise
        log.info("queued a dropped export", extra={"user_id": str(user_id), "file": path.name})

    def _warn_once(self, path: Path, why: str) -> None:
        if path not in self._warned:
            self._warned.add(path)
            log.warning("ignoring %s in IMPORT_WATCH_DIR: it %s", path.name, why)


def _move(source: Path, target: Path) -> int:
    target.parent.mkdir(parents=True, exist_ok=True)
    size = source.stat().st_size
    shutil.move(source, target)
    # Fresh, so no collector's sweep takes it for a left-over before its job commits.
    os.utime(target)
    return size


def _settled_zips(watch_dir: Path) -> list[Path]:
    if not watch_dir.is_dir():
        return []
    now = time.time()
    found = []
    for path in sorted(watch_dir.glob("*/*.zip")):
        with contextlib.suppress(OSError):
            if path.is_file() and now - path.stat().st_mtime >= SETTLE_SECONDS:
                found.append(path)
    return found
