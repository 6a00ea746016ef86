"""OAuth rows: pending Spotify sign-ins, and the clients and grants of Playlog's own
authorization server (how web MCP hosts such as ChatGPT obtain a personal access token)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Index, String, Text
from sqlalchemy.dialects.postgresql import JSONB
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


class OAuthClient(Base):
    """A client registered through dynamic client registration (RFC 7591).

    ``registration`` holds the client's metadata as registered, without its secret; a
    confidential client's secret is stored encrypted (the token endpoint compares it).
    """

    __tablename__ = "oauth_clients"
    __table_args__ = (Index(None, "created_at"),)

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    registration: Mapped[dict[str, Any]] = mapped_column(JSONB)
    client_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    # When a code of this client was last exchanged; clients never used go first when
    # the table is full.
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OAuthGrant(Base):
    """One authorization request, from the client's redirect to the token exchange.

    It is created pending (``user_id`` null) when a client sends the user to sign in, and
    gets its user and the hash of a single-use code when the user allows it; the token
    exchange deletes it. ``request`` is the validated authorization request.
    """

    __tablename__ = "oauth_grants"
    __table_args__ = (Index(None, "expires_at"), Index(None, "client_id"))

    request_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(
        ForeignKey("oauth_clients.client_id", ondelete="CASCADE")
    )
    request: Mapped[dict[str, Any]] = mapped_column(JSONB)
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    code_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    # The personal token the user signed in with (its root, for a token issued by OAuth).
    token_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("api_tokens.id", ondelete="CASCADE")
    )
    created_at: Mapped[datetime] = created_at_column()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
