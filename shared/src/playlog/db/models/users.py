"""People whose history Playlog keeps, and their credentials."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    ARRAY,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from playlog.db.models.base import Base, created_at_column, one_of, updated_at_column

SPOTIFY_TOKEN_STATUSES = ("ok", "needs_reauth")


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("hour_start_minute IN (0, 15, 30, 45)", name="hour_start_minute_valid"),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        primary_key=True, server_default=text("gen_random_uuid()")
    )
    # Null for users that only have imported history and never connected Spotify.
    spotify_user_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    display_name: Mapped[str | None] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text)
    # IANA zone used for hour/weekday/day buckets.
    timezone: Mapped[str] = mapped_column(String(64), server_default="UTC")
    # Minute past each UTC hour at which the zone's local hours start (0, 15, 30 or 45):
    # play_hours buckets this user's plays from it (see playlog.history.hours). Changing
    # it rebuilds those totals (migration 0006).
    hour_start_minute: Mapped[int] = mapped_column(SmallInteger, server_default="0")
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()


class SpotifyToken(Base):
    """OAuth tokens, encrypted with TOKEN_ENCRYPTION_KEY; never stored in clear."""

    __tablename__ = "spotify_tokens"
    __table_args__ = (one_of("status", SPOTIFY_TOKEN_STATUSES),)

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    refresh_token_encrypted: Mapped[str] = mapped_column(Text)
    access_token_encrypted: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    scope: Mapped[str] = mapped_column(Text, server_default="")
    # Spotify refresh tokens die six months after authorisation; refreshing does not extend it.
    authorized_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), server_default="ok")
    status_reason: Mapped[str | None] = mapped_column(Text)
    refreshed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()


class ApiToken(Base):
    """Personal access tokens for AI clients. Only a SHA-256 hash of the token is kept."""

    __tablename__ = "api_tokens"
    __table_args__ = (Index(None, "user_id"),)

    id: Mapped[uuid.UUID] = mapped_column(
        primary_key=True, server_default=text("gen_random_uuid()")
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # First characters of the token, shown so people can tell their tokens apart.
    prefix: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    created_at: Mapped[datetime] = created_at_column()
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # For a token issued to an OAuth client: the token the user signed in with. It works
    # only while that one does (revoking or expiry ends both).
    parent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("api_tokens.id", ondelete="CASCADE")
    )
