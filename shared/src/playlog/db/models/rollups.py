"""Running totals of plays, kept by triggers on ``plays`` (migration 0004).

Analytics over a user's whole history would otherwise scan every play (a million rows
for a heavy listener). ``play_hours`` holds one row per user and UTC hour with plays in
it, ``play_tracks`` one row per user and track. Both are maintained inside the writing
transaction by statement-level triggers, so they are never stale and every writer (the
collector, the importer, tests) keeps them without knowing they exist.

Counting rule (DESIGN §6): a row with ``ms_played`` ≥ 30 s or unknown is a play; shorter
rows are skips. Listening time is ``ms_played``, or ``plays.ms_estimated`` when unknown.

Like ``plays``, they carry no foreign keys (migration 0005): they follow the plays, which
the triggers check.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from playlog.db.models.base import Base


class PlayHour(Base):
    __tablename__ = "play_hours"

    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    # Start of the UTC hour.
    hour: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    rows: Mapped[int] = mapped_column(Integer)
    plays: Mapped[int] = mapped_column(Integer)
    listening_ms: Mapped[int] = mapped_column(BigInteger)
    # The part of listening_ms that is an estimate (API plays carry no ms_played).
    estimated_ms: Mapped[int] = mapped_column(BigInteger)
    api_rows: Mapped[int] = mapped_column(Integer)


class PlayTrack(Base):
    __tablename__ = "play_tracks"

    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    track_id: Mapped[str] = mapped_column(Text, primary_key=True)
    rows: Mapped[int] = mapped_column(Integer)
    plays: Mapped[int] = mapped_column(Integer)
    listening_ms: Mapped[int] = mapped_column(BigInteger)
    # First and last counted play (skips excluded); null while the track has only skips.
    first_played_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_played_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
