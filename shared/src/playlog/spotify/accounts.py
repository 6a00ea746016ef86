"""Connecting a Spotify account: the user row, the encrypted grant, the sync checkpoint."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from playlog.crypto import TokenCipher
from playlog.db.models import SyncCheckpoint, User
from playlog.spotify.models import CurrentUser, TokenResponse
from playlog.spotify.tokens import store_grant


async def connect_account(
    session: AsyncSession, cipher: TokenCipher, profile: CurrentUser, grant: TokenResponse
) -> User:
    """Create or update the user for this Spotify account and store its tokens."""
    user = await session.scalar(select(User).where(User.spotify_user_id == profile.id))
    if user is None:
        user = User(spotify_user_id=profile.id, display_name=profile.display_name or profile.id)
        session.add(user)
    elif profile.display_name:
        user.display_name = profile.display_name
    if profile.email:
        user.email = profile.email
    await session.flush()
    await store_grant(session, cipher, user.id, grant, authorized_at=datetime.now(UTC))
    # A reconnect clears needs_reauth (and an earlier error) so polling resumes.
    checkpoint = insert(SyncCheckpoint).values(user_id=user.id, status="idle")
    await session.execute(
        checkpoint.on_conflict_do_update(
            index_elements=[SyncCheckpoint.user_id],
            set_={"status": "idle", "error": None, "consecutive_failures": 0},
            where=SyncCheckpoint.status.in_(("needs_reauth", "error")),
        )
    )
    return user
