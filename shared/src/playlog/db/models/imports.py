"""Export imports: the jobs, and the history members each user has already imported."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from playlog.db.models.base import Base, created_at_column, one_of, updated_at_column

IMPORT_STATUSES = ("pending", "running", "success", "partial", "error", "cancelled")
# A job in one of these has ended: its upload is deleted and nothing picks it up again.
FINISHED_IMPORT_STATUSES = ("success", "partial", "error", "cancelled")
# NOTIFY channel (payload: a job id) that wakes collectors when an import is queued.
IMPORT_CHANNEL = "playlog_import"


class ImportJob(Base):
    __tablename__ = "import_jobs"
    __table_args__ = (
        one_of("status", IMPORT_STATUSES),
        Index(None, "status", "created_at"),
        Index("ix_import_jobs_user_id_created_at", "user_id", text("created_at DESC")),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        primary_key=True, server_default=text("gen_random_uuid()")
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(Text, server_default="pending")
    storage_path: Mapped[str | None] = mapped_column(Text)
    original_filename: Mapped[str | None] = mapped_column(Text)
    file_size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    format_detected: Mapped[str | None] = mapped_column(Text)
    bytes_done: Mapped[int] = mapped_column(BigInteger, server_default="0")
    records_done: Mapped[int] = mapped_column(BigInteger, server_default="0")
    records_ingested: Mapped[int] = mapped_column(BigInteger, server_default="0")
    duplicates: Mapped[int] = mapped_column(BigInteger, server_default="0")
    skipped: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    report: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    earliest_played_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    latest_played_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    lease_owner: Mapped[str | None] = mapped_column(Text)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at_column()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = updated_at_column()


class ImportedMember(Base):
    """A history file (ZIP member) whose records are all stored for a user.

    Written in the transaction that stores the member, so it exists exactly when the
    member's plays do. A re-import, or a job re-run after a crash, recognises the member
    by its content digest and skips it without parsing.
    """

    __tablename__ = "imported_members"
    __table_args__ = (
        UniqueConstraint("user_id", "digest"),
        Index(None, "user_id", "crc32", "size_bytes"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # sha256 of the member's uncompressed bytes.
    digest: Mapped[str] = mapped_column(Text)
    # From the ZIP directory: a cheap pre-filter before the digest is computed.
    crc32: Mapped[int] = mapped_column(BigInteger)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(Text)
    format: Mapped[str] = mapped_column(Text)
    import_job_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("import_jobs.id", ondelete="SET NULL"), index=True
    )
    # The member's report entry as first imported (records, inserted, skipped …).
    report: Mapped[dict[str, Any]] = mapped_column(JSONB)
    imported_at: Mapped[datetime] = created_at_column()
