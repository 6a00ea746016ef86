"""The import report: per history file and in total. Stored on the job, printed by the CLI."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

MemberStatus = Literal["imported", "already_imported", "failed"]
ImportStatus = Literal["success", "partial", "error", "cancelled"]
# Names of ignored files kept in a report; a hostile ZIP may hold thousands.
MAX_IGNORED_NAMES = 50


def rows_staged(records: int, skipped: dict[str, int]) -> int:
    """A member's staged rows: every record it read became one unless it was skipped."""
    return records - sum(skipped.values())


class MemberReport(BaseModel):
    name: str
    format: str
    status: MemberStatus
    records: int = 0
    plays_inserted: int = 0
    skips_inserted: int = 0
    duplicates: int = 0
    cross_source_duplicates: int = 0
    replaced: int = 0
    skipped: dict[str, int] = Field(default_factory=dict)
    earliest: datetime | None = None
    latest: datetime | None = None
    error: str | None = None


@dataclass
class Totals:
    """Sums over the members of an import, kept member by member: a job's counts cost the
    same for its ten-thousandth member as for its first."""

    failed: int = 0
    records: int = 0
    plays_inserted: int = 0
    skips_inserted: int = 0
    duplicates: int = 0
    cross_source_duplicates: int = 0
    replaced: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    formats: set[str] = field(default_factory=set)
    earliest: datetime | None = None
    latest: datetime | None = None

    def add(self, member: MemberReport) -> None:
        if member.status == "failed":
            self.failed += 1
        else:
            self.formats.add(member.format)
        self.records += member.records
        self.plays_inserted += member.plays_inserted
        self.skips_inserted += member.skips_inserted
        self.duplicates += member.duplicates
        self.cross_source_duplicates += member.cross_source_duplicates
        self.replaced += member.replaced
        self.skipped.update(member.skipped)
        for time in (member.earliest, member.latest):
            if time is not None:
                self.earliest = time if self.earliest is None else min(self.earliest, time)
                self.latest = time if self.latest is None else max(self.latest, time)

    def plus(self, member: MemberReport) -> Totals:
        """A copy with ``member`` added; this one stays as it is."""
        copy = replace(self, skipped=Counter(self.skipped), formats=set(self.formats))
        copy.add(member)
        return copy

    @property
    def skipped_by_reason(self) -> dict[str, int]:
        return dict(sorted(self.skipped.items()))

    @property
    def format_names(self) -> list[str]:
        return sorted(self.formats)


class ImportReport(BaseModel):
    status: ImportStatus
    formats: list[str]
    # History records read (or recognised as already imported), including skipped ones.
    records_seen: int
    # New plays stored: rows of 30 s or more, or of unknown length (the counting rule).
    plays_inserted: int
    # New rows under 30 s: stored too, and counted as skips, not plays.
    skips_inserted: int
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
        totals = Totals()
        for member in files:
            totals.add(member)
        if error is None and files and totals.failed == len(files):
            # Not one file stored: the import failed, for the first file's reason.
            error = f"no history file could be imported; {files[0].name}: {files[0].error}"
        status: ImportStatus
        if cancelled:
            status = "cancelled"
        elif error is not None:
            status = "error"
        elif totals.failed:
            status = "partial"
        else:
            status = "success"
        return cls(
            status=status,
            formats=totals.format_names,
            records_seen=totals.records,
            plays_inserted=totals.plays_inserted,
            skips_inserted=totals.skips_inserted,
            duplicates=totals.duplicates,
            cross_source_duplicates=totals.cross_source_duplicates,
            replaced=totals.replaced,
            skipped=totals.skipped_by_reason,
            earliest=totals.earliest,
            latest=totals.latest,
            elapsed_s=round(elapsed_s, 3),
            files=files,
            ignored_files=ignored[:MAX_IGNORED_NAMES],
            ignored_count=len(ignored),
            error=error,
        )
