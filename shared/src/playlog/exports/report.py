"""The import report: per history file and in total. Stored on the job, printed by the CLI."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

MemberStatus = Literal["imported", "already_imported", "failed"]
ImportStatus = Literal["success", "partial", "error", "cancelled"]
# Names of ignored files kept in a report; a hostile ZIP may hold thousands.
MAX_IGNORED_NAMES = 50


class MemberReport(BaseModel):
    name: str
    format: str
    status: MemberStatus
    records: int = 0
    plays_inserted: int = 0
    duplicates: int = 0
    cross_source_duplicates: int = 0
    replaced: int = 0
    skipped: dict[str, int] = Field(default_factory=dict)
    earliest: datetime | None = None
    latest: datetime | None = None
    error: str | None = None


class ImportReport(BaseModel):
    status: ImportStatus
    formats: list[str]
    # History records read (or recognised as already imported), including skipped ones.
    records_seen: int
    # New plays stored.
    plays_inserted: int
    # Records whose exact play was stored already (repeated rows, re-imports).
    duplicates: int
    # Records of a play another source or export format had stored already.
    cross_source_duplicates: int
    # Of those, stored rows replaced by this richer one (extended > account data > API).
    replaced: int
    skipped: dict[str, int]
    earliest: datetime | None
    latest: datetime | None
    elapsed_s: float
    files: list[MemberReport]
    ignored_files: list[str]
    ignored_count: int
    error: str | None = None

    @classmethod
    def build(
        cls,
        files: list[MemberReport],
        *,
        ignored: list[str],
        elapsed_s: float,
        error: str | None = None,
        cancelled: bool = False,
    ) -> ImportReport:
        skipped: Counter[str] = Counter()
        for member in files:
            skipped.update(member.skipped)
        times = [t for m in files for t in (m.earliest, m.latest) if t is not None]
        failed = sum(member.status == "failed" for member in files)
        status: ImportStatus
        if cancelled:
            status = "cancelled"
        elif error is not None or (files and failed == len(files)):
            status = "error"
        elif failed:
            status = "partial"
        else:
            status = "success"
        return cls(
            status=status,
            formats=sorted({m.format for m in files if m.status != "failed"}),
            records_seen=sum(m.records for m in files),
            plays_inserted=sum(m.plays_inserted for m in files),
            duplicates=sum(m.duplicates for m in files),
            cross_source_duplicates=sum(m.cross_source_duplicates for m in files),
            replaced=sum(m.replaced for m in files),
            skipped=dict(sorted(skipped.items())),
            earliest=min(times, default=None),
            latest=max(times, default=None),
            elapsed_s=round(elapsed_s, 3),
            files=files,
            ignored_files=ignored[:MAX_IGNORED_NAMES],
            ignored_count=len(ignored),
            error=error,
        )
