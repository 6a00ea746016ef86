"""Creating users (used by the CLI; the admin API and OAuth build on the same rules)."""

from __future__ import annotations

import uuid
import zoneinfo
from functools import cache

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from playlog.db.models import User
from playlog.errors import Conflict, NotFound, ValidationFailed
from playlog.history.hours import zone_hour_start
from playlog.text import has_control_characters

MAX_NAME_LENGTH = 200


@cache
def _zone_names() -> frozenset[str]:
    # The zones of the IANA database, without the "right/" and "posix/" copies (the
    # former count leap seconds, which PostgreSQL honours and Python does not, so their
    # hours would disagree), the host's own "localtime" (which may differ between the
    # api's and the database's machines) and "Factory" (no place).
    return frozenset(zoneinfo.available_timezones() - {"localtime", "Factory"})


def validate_timezone(name: str) -> str:
    if name not in _zone_names():
        raise ValidationFailed(
            f"unknown time zone '{name}': use an IANA name such as Europe/Berlin"
        )
    return name


async def find_user(session: AsyncSession, user_id: uuid.UUID, *, lock: bool = False) -> User:
    """The user, or NotFound. ``lock`` holds the row (FOR NO KEY UPDATE) until the
    transaction ends: the user cannot be deleted before rows that reference it are
    written, and writers that check something of the user's take turns. It also waits
    for open transactions writing the user's plays, which hold the row FOR SHARE so that
    a change of the user's hour start never overlaps them (migration 0006); those are
    short (an import commits each history file on its own)."""
    user = await session.get(User, user_id, with_for_update={"key_share": True} if lock else None)
    if user is None:
        raise NotFound(f"no user with id {user_id}")
    return user


def set_timezone(user: User, name: str) -> None:
    """Move ``user`` to zone ``name``; their hour totals follow the zone's hours (the
    database rebuilds them when the minute their hours start at changes)."""
    user.timezone = validate_timezone(name)
    user.hour_start_minute = zone_hour_start(name)


def validate_display_name(name: str) -> str:
    """The name stripped of surrounding blanks; empty or overlong names are refused."""
    name = name.strip()
    if not name:
        raise ValidationFailed("name must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise ValidationFailed(f"name must be at most {MAX_NAME_LENGTH} characters")
    if has_control_characters(name):
        raise ValidationFailed("name must not contain control characters (tabs, line breaks)")
    return name


async def create_user(
    session: AsyncSession,
    *,
    display_name: str,
    timezone: str = "UTC",
    spotify_user_id: str | None = None,
) -> User:
    display_name = validate_display_name(display_name)
    if spotify_user_id is not None:
        spotify_user_id = spotify_user_id.strip()
        if not spotify_user_id:
            raise ValidationFailed("spotify id must not be empty")
        taken = await session.scalar(select(User.id).where(User.spotify_user_id == spotify_user_id))
        if taken is not None:
            raise Conflict(f"a user with Spotify id '{spotify_user_id}' already exists: {taken}")
    user = User(display_name=display_name, spotify_user_id=spotify_user_id)
    set_timezone(user, timezone)
    session.add(user)
    await session.flush()
    await session.refresh(user)
    return user
