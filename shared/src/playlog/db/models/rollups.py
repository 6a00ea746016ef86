"""Running totals of plays, kept by triggers on ``plays`` (migrations 0004 to 0008).

Analytics over a user's whole history would otherwise scan every play (a million rows
for a heavy listener). ``play_hours`` holds one row per user and hour with plays in it
(hours start ``users.hour_start_minute`` past the UTC hour, where the user's local hours
start), ``play_tracks`` one row per user and track. Both are maintained inside the writing
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

from sqlalchemy import BigInteger, DateTime, Integer
from sqlalchemy.orm import Mapped, mapped_column

from playlog.db.models.base import ID_TEXT, Base


class PlayHour(Base):
    __tablename__ = "play_hours"

    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    # Start of the hour: a UTC hour shifted by the user's hour_start_minute.
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
    track_id: Mapped[str] = mapped_column(ID_TEXT, primary_key=True)
    rows: Mapped[int] = mapped_column(Integer)
    plays: Mapped[int] = mapped_column(Integer)
    listening_ms: Mapped[int] = mapped_column(BigInteger)
    # First and last counted play (skips excluded); null while the track has only skips.
    first_played_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_played_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
