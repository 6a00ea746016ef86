"""Pending Spotify sign-ins: one row per started OAuth flow, deleted when it is used."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from playlog.db.models.base import Base, created_at_column


class OAuthState(Base):
    """The server half of an OAuth ``state``: single use, short-lived.

    The browser holds the state itself in a signed cookie; this row holds its hash and
    the PKCE verifier (encrypted). Deleting the row on callback makes a replay fail,
    whichever api replica receives it.
    """

    __tablename__ = "oauth_states"
    __table_args__ = (Index(None, "expires_at"),)

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    code_verifier_encrypted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
