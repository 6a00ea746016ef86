#!/usr/bin/env python3
"""Time an export import end to end (targets: ≥ 100,000 records/s, ≤ 200 MB peak RSS,
re-import ≥ 200,000 records/s adding nothing).

Generates a synthetic extended export (scripts/export_generator.py, deterministic by
seed), starts a throwaway database, and runs `playlog import FILE --user ID --json` as a
child process three times, each measured from process start to exit (ZIP to committed
rows) with its peak RSS: the sum of the peaks (VmHWM) of the command and of its own
children (the export reader process), read every 20 ms. That sum is never below the
peak of the sum. (The rusage of the child is no measure: its maxrss carries over the
RSS this script had when it forked, the generator's included.)

1. first import into the fresh database;
2. an immediate re-import of the same file (members recognised by their digests);
3. a re-import with the digests forgotten, so every record is parsed, staged and
   de-duplicated by the unique key: the worst case of a re-import (e.g. the same plays
   in a differently split ZIP).

Each line is printed with its targets, "met" or "MISSED" (a missed target does not fail
the run: this measures). Stored plays, and each report's records, skip reasons, history
files and time span, are checked against the generator's ground truth; a mismatch fails.
Each run is framed by a machine check (harness.machine_check): this shared machine's
speed drifts by the hour, and those figures say how fast it ran.

    .venv/bin/python scripts/bench_import.py --records 1000000 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from export_generator import generate_export
from harness import Database, machine_check, scratch_database, stop_like_ctrl_c_on_sigterm
from sqlalchemy import text

from playlog.testing.exports import report_mismatches
from playlog.testing.processes import playlog_command

# The docstring's targets: records/s of a first import and of a re-import of the same
# file, and the peak RSS (MB) of every import.
FIRST_RATE = 100_000
REIMPORT_RATE = 200_000
PEAK_RSS_MB = 200


@dataclass
class Run:
    seconds: float
    rss_mb: float
    report: dict[str, Any]

    @property
    def rate(self) -> float:
        return float(self.report["records_seen"]) / self.seconds


def _peak_kb(pid: int) -> int:
    """The process's own peak RSS so far (VmHWM: a new program starts a new one)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass  # exited between the listing and the read
    return 0


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as children:
                found.extend(int(child) for child in children.read().split())
    except OSError:
        pass
    return found


class TreeRss:
    """The sum of the peak RSS of a process and of each of its children, read on a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peaks_kb: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            for pid in [self.pid, *_children(self.pid)]:
                self.peaks_kb[pid] = max(self.peaks_kb.get(pid, 0), _peak_kb(pid))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return sum(self.peaks_kb.values()) / 1024


def import_once(database: Database, user_id: str, path: Path) -> Run:
    env = {**os.environ, "DATABASE_URL": database.url}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(  # noqa: S603 - our own command
            [*playlog_command(), "import", str(path), "--user", user_id, "--json"],
            env=env,
            stdout=out,
            stderr=err,
        )
        tree = TreeRss(process.pid)
        process.wait()
        seconds = time.perf_counter() - started
        rss_mb = tree.stop()
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            raise SystemExit(f"import failed ({process.returncode}): {err.read().decode()}")
        return Run(seconds, rss_mb, json.loads(out.read()))


async def plays(database: Database) -> int:
    async with database.engine.connect() as connection:
        return int((await connection.execute(text("SELECT count(*) FROM plays"))).scalar_one())


async def forget_digests(database: Database) -> None:
    async with database.engine.begin() as connection:
        await connection.execute(text("DELETE FROM imported_members"))


async def new_user(database: Database) -> str:
    async with database.engine.begin() as connection:
        created = await connection.execute(
            text("INSERT INTO users (display_name) VALUES ('bench') RETURNING id")
        )
        return str(created.scalar_one())


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def line(label: str, runs: list[Run], rate_target: int | None) -> str:
    seconds = statistics.median(r.seconds for r in runs)
    rate = statistics.median(r.rate for r in runs)
    rss = max(r.rss_mb for r in runs)
    inner = statistics.median(float(r.report["elapsed_s"]) for r in runs)
    if rate_target is None:
        rate_note = "no target"
    else:
        rate_note = f"target ≥ {rate_target:,}: {_verdict(rate >= rate_target)}"
    return (
        f"{label:<34} {rate:>12,.0f} rec/s {'(' + rate_note + ')':<30} {seconds:6.2f} s"
        f"   (import itself {inner:5.2f} s)   peak RSS {rss:5.0f} MB"
        f" (target ≤ {PEAK_RSS_MB}: {_verdict(rss <= PEAK_RSS_MB)})"
    )


async def bench(args: argparse.Namespace, path: Path, truth: dict[str, Any]) -> None:
    expected = int(truth["distinct_plays"])
    first: list[Run] = []
    again: list[Run] = []
    full: list[Run] = []
    for attempt in range(args.runs):
        async with scratch_database() as database:
            print(await machine_check(database.engine))
            user_id = await new_user(database)
            first.append(import_once(database, user_id, path))
            stored = await plays(database)
            again.append(import_once(database, user_id, path))
            after_reimport = await plays(database)
            await forget_digests(database)
            full.append(import_once(database, user_id, path))
            after_full = await plays(database)
            print(await machine_check(database.engine))
        report = first[-1].report
        skips = int(truth["under_30s"])
        print(
            f"run {attempt + 1}: {report['records_seen']:,} records, "
            f"{report['plays_inserted']:,} plays and {report['skips_inserted']:,} skips inserted "
            f"(truth {expected - skips:,} and {skips:,}), stored {stored:,}; "
            f"re-imports added {after_reimport - stored} and {after_full - after_reimport}; "
            f"duplicates {again[-1].report['duplicates']:,} / {full[-1].report['duplicates']:,}"
        )
        if stored != expected or after_full != stored or after_reimport != stored:
            raise SystemExit("stored plays differ from the ground truth")
        if (report["plays_inserted"], report["skips_inserted"]) != (expected - skips, skips):
            raise SystemExit("the plays and skips reported differ from the ground truth")
        for label, run in (("first import", first), ("re-import", again), ("full re-import", full)):
            if wrong := report_mismatches(run[-1].report, truth):
                raise SystemExit(
                    f"the {label} report differs from the ground truth:\n  " + "\n  ".join(wrong)
                )
    print()
    print(line("first import", first, FIRST_RATE))
    print(line("re-import (same file)", again, REIMPORT_RATE))
    print(line("re-import (every record parsed)", full, None))


def main() -> None:
    stop_like_ctrl_c_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--zip", type=Path, help="reuse (or create) the export at this path")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="playlog-bench-export-") as scratch:
        path = args.zip or Path(scratch) / "export.zip"
        truth_path = path.with_suffix(".truth.json")
        if path.exists() and truth_path.exists():
            truth = json.loads(truth_path.read_text())
        else:
            started = time.perf_counter()
            truth = generate_export(path, records=args.records, seed=args.seed).__dict__
            truth_path.write_text(json.dumps(truth))
            print(
                f"generated {truth['records']:,} records in {time.perf_counter() - started:.1f} s"
            )
        size = path.stat().st_size / 1024 / 1024
        print(f"export: {path.name}, {size:.0f} MB, {len(truth['per_member'])} history files")
        asyncio.run(bench(args, path, truth))


if __name__ == "__main__":
    main()
