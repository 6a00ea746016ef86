"""Structured log records written by every service, purged after LOG_RETENTION_DAYS."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Identity, Index, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from playlog.db.models.base import Base, created_at_column


class LogRecord(Base):
    __tablename__ = "logs"
    __table_args__ = (
        Index("ix_logs_service_timestamp", "service", text("timestamp DESC")),
        # Retention purges delete by age across services.
        Index(None, "timestamp"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    service: Mapped[str] = mapped_column(Text)
    level: Mapped[str] = mapped_column(Text)
    timestamp: Mapped[datetime] = created_at_column()
    logger: Mapped[str | None] = mapped_column(Text)
    message: Mapped[str] = mapped_column(Text)
    context: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
