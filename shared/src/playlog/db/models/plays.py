"""Plays: one row per playback, from the API poller or an export import."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, DateTime, Integer, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from playlog.db.models.base import ID_TEXT, Base, created_at_column, one_of
from playlog.db.models.catalog import SOURCES


class Play(Base):
    __tablename__ = "plays"
    __table_args__ = (
        one_of("source", SOURCES),
        CheckConstraint("ms_played IS NULL OR ms_played >= 0", name="ms_played_not_negative"),
    )

    # The key is whose play of which item ended when (migration 0014): what every writer
    # de-duplicates on. Its index also serves "latest plays of a user" (user_id,
    # played_at DESC) by a backward scan, so no second index slows down bulk imports.
    # user_id and track_id reference users and tracks, checked once per statement by
    # triggers rather than by foreign keys (migration 0005): a user's deletion takes
    # their plays along, a track with plays cannot be deleted.
    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    # End of playback: the API's played_at and the export's ts both mean the end.
    played_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    track_id: Mapped[str] = mapped_column(ID_TEXT, primary_key=True)
    # Null when unknown (API plays).
    ms_played: Mapped[int | None] = mapped_column(Integer)
    # Listening time when ms_played is unknown: the track's duration, cut short when the
    # previous play ended sooner. Set by a trigger on insert (migration 0004).
    ms_estimated: Mapped[int | None] = mapped_column(Integer)
    context_uri: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text)
    # Which export family a row came from ("extended", "account_data"); null for API rows.
    source_format: Mapped[str | None] = mapped_column(Text)
    reason_start: Mapped[str | None] = mapped_column(Text)
    reason_end: Mapped[str | None] = mapped_column(Text)
    shuffle: Mapped[bool | None] = mapped_column(Boolean)
    skipped: Mapped[bool | None] = mapped_column(Boolean)
    offline: Mapped[bool | None] = mapped_column(Boolean)
    incognito: Mapped[bool | None] = mapped_column(Boolean)
    # Export fields such as ip_addr or platform, kept only with IMPORT_KEEP_SENSITIVE_FIELDS.
    sensitive: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    inserted_at: Mapped[datetime] = created_at_column()
