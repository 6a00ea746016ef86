"""``playlog import FILE --user USER_ID``: the import-job code, run in this process."""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from playlog.cli.database import database_url, run_on_database
from playlog.errors import AppError
from playlog.exports import jobs
from playlog.exports.importer import Progress
from playlog.exports.report import ImportReport
from playlog.settings import ImportSettings, load_settings

# The job row of a command-line import shows up in the admin API like any other; its
# lease is renewed by progress, and the collector marks it failed if this process dies.
_LEASE = timedelta(minutes=2)
_CREATE_JOB = text(
    """
    INSERT INTO import_jobs (id, user_id, status, original_filename, file_size_bytes,
                             lease_owner, lease_expires_at, attempts, started_at)
    SELECT :id, u.id, 'running', :name, :size, :owner, now() + :lease, 1, now()
    FROM users u WHERE u.id = :user_id
    RETURNING id
    """
)


def add_parser(groups: Any) -> None:
    command = groups.add_parser(
        "import",
        help="import a Spotify data export ZIP for a user",
        description="Import a Spotify 'Download your data' ZIP (extended streaming history "
        "or account data) for a user. Re-importing the same file adds nothing.",
    )
    command.add_argument("file", type=Path, help="the export ZIP")
    command.add_argument("--user", required=True, help="id of the user the history belongs to")
    command.add_argument("--json", action="store_true", help="print the report as one JSON object")
    command.set_defaults(handler=import_command)


def import_command(args: argparse.Namespace) -> int:
    try:
        return _import_command(args)
    except AppError as exc:
        if args.json:
            # Whoever reads the JSON gets an answer too; the reason also goes to stderr.
            print(json.dumps({"status": "error", "error": exc.message}, ensure_ascii=False))
        raise


def _import_command(args: argparse.Namespace) -> int:
    try:
        user_id = uuid.UUID(args.user)
    except ValueError:
        raise AppError(f"--user must be a user id (a UUID), not {args.user!r}") from None
    path: Path = args.file
    if not path.is_file():
        raise AppError(f"no such file: {path}")
    settings = load_settings(ImportSettings)
    bar = _Bar(sys.stderr) if sys.stderr.isatty() and not args.json else None

    size = path.stat().st_size

    async def work(engine: AsyncEngine) -> ImportReport:
        return await _import(engine, user_id, path, size, settings, bar)

    with database_url() as url:
        report = run_on_database(url, work)
    if bar is not None:
        bar.clear()
    if args.json:
        print(json.dumps(report.model_dump(mode="json"), ensure_ascii=False))
    elif report.files or report.status != "error":
        # A file refused whole has nothing to list: its reason alone goes to stderr.
        _print_report(report, sys.stdout)
    if report.status == "error":
        print(f"playlog: error: {report.error or 'import failed'}", file=sys.stderr)
        return 1
    if report.status == "cancelled":
        print("playlog: error: the import was cancelled", file=sys.stderr)
        return 1
    return 0 if report.status == "success" else 3


async def _import(
    engine: AsyncEngine,
    user_id: uuid.UUID,
    path: Path,
    size: int,
    settings: ImportSettings,
    bar: _Bar | None,
) -> ImportReport:
    owner = f"cli@{socket.gethostname()}:{os.getpid()}"
    job_id = uuid.uuid4()
    async with engine.begin() as connection:
        created = await connection.execute(
            _CREATE_JOB,
            {
                "id": job_id,
                "user_id": user_id,
                "name": path.name[:255],
                "size": size,
                "owner": owner,
                "lease": _LEASE,
            },
        )
        if created.first() is None:
            raise AppError(f"no user with id {user_id}")
    job = jobs.ClaimedImport(job_id, user_id, path, owner, 1, upload_dir=None)
    hooks = _CliHooks(engine, job, _LEASE, threading.Event(), bar)
    outcome = await jobs.run_job(engine, job, settings, hooks)
    if outcome.report is None:
        raise AppError(outcome.error or "the import did not finish")
    return outcome.report


class _CliHooks(jobs.JobHooks):
    """The job's hooks, plus the progress bar on a terminal."""

    def __init__(
        self,
        engine: AsyncEngine,
        job: jobs.ClaimedImport,
        lease: timedelta,
        stop: threading.Event,
        bar: _Bar | None,
    ) -> None:
        super().__init__(engine, job, lease, stop)
        self.bar = bar

    async def progress(self, progress: Progress) -> None:
        if self.bar is not None:
            self.bar.show(progress)
        await super().progress(progress)


class _Bar:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.started = time.monotonic()

    def show(self, progress: Progress) -> None:
        fraction = progress.bytes_done / progress.bytes_total if progress.bytes_total else 0.0
        filled = int(fraction * 30)
        rate = progress.records_done / max(time.monotonic() - self.started, 1e-9)
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (30 - filled)}] {fraction:4.0%}  "
            f"{progress.records_done:,} records  {rate:,.0f}/s "
        )
        self.stream.flush()

    def clear(self) -> None:
        self.stream.write("\r" + " " * 79 + "\r")
        self.stream.flush()


def _print_report(report: ImportReport, out: TextIO) -> None:
    print(f"status:             {report.status}", file=out)
    print(f"formats:            {', '.join(report.formats) or '-'}", file=out)
    print(f"records seen:       {report.records_seen:,}", file=out)
    print(f"plays inserted:     {report.plays_inserted:,}", file=out)
    print(f"skips inserted:     {report.skips_inserted:,} (rows under 30 s)", file=out)
    print(f"duplicates:         {report.duplicates:,}", file=out)
    print(f"cross-source dups:  {report.cross_source_duplicates:,}", file=out)
    print(f"  replaced poorer:  {report.replaced:,}", file=out)
    skipped = ", ".join(f"{k} {v:,}" for k, v in report.skipped.items()) or "none"
    print(f"skipped:            {skipped}", file=out)
    print(f"earliest / latest:  {report.earliest} / {report.latest}", file=out)
    print(f"elapsed:            {report.elapsed_s:.2f} s", file=out)
    for member in report.files:
        line = f"  {member.name}: {member.status}, {member.records:,} records"
        if member.error:
            line += f" ({member.error})"
        print(line, file=out)
