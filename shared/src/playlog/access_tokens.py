"""Personal access tokens: issuing, listing, revoking and checking them.

A token is ``plg_`` followed by 43 URL-safe characters (256 random bits). Only its SHA-256
hash is stored, with the first characters as a display prefix; the token itself is shown
once, when it is created. Every function here only flushes: the caller owns the
transaction. Nothing here logs a token or its hash.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, and_, bindparam, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.orm.attributes import set_committed_value

from playlog.db.engine import db_now
from playlog.db.models import ApiToken
from playlog.errors import Conflict, NotFound, ValidationFailed
from playlog.settings import PERSONAL_TOKEN_PREFIX
from playlog.text import has_control_characters
from playlog.users import find_user

TOKEN_PREFIX = PERSONAL_TOKEN_PREFIX
# Characters of the token kept in clear to tell tokens apart: "plg_" and 8 random ones
# (48 of the 256 random bits), which leaves 208 bits to guess.
DISPLAY_PREFIX_LENGTH = 12
MAX_NAME_LENGTH = 100
MAX_ACTIVE_TOKENS = 50
# Generated tokens are 47 characters; anything much longer is not ours and is refused
# before it costs a hash or a query.
MAX_PRESENTED_LENGTH = 200
# last_used_at is written at most this often per token, so authenticated calls do not
# each cost a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)
_NEVER_LATER = datetime(9999, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class IssuedToken:
    """A newly created token: its row and the secret, which is never available again."""

    token: ApiToken
    secret: str


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The stored form of a token: SHA-256, hex. Tokens are random, so no salt is needed."""
    return hashlib.sha256(token.encode()).hexdigest()


def display_prefix(token: str) -> str:
    return token[:DISPLAY_PREFIX_LENGTH]


@dataclass(frozen=True)
class ListedToken:
    token: ApiToken
    # Whether it authenticates now: the rule authentication applies, parent included.
    active: bool


def _live() -> ColumnElement[bool]:
    """Whether a token authenticates, at the database's clock: not revoked, not expired,
    and, for a token issued through OAuth, its parent neither."""
    parent = aliased(ApiToken)
    return and_(
        ApiToken.revoked_at.is_(None),
        or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > func.now()),
        or_(
            ApiToken.parent_id.is_(None),
            exists().where(
                parent.id == ApiToken.parent_id,
                parent.revoked_at.is_(None),
                or_(parent.expires_at.is_(None), parent.expires_at > func.now()),
            ),
        ),
    )


# The statements of every authenticated request, built once: building them took about as
# long as running them (1.0-1.5 ms of a 3.4 ms check).
_STALE = or_(
    ApiToken.last_used_at.is_(None),
    ApiToken.last_used_at < func.now() - LAST_USED_RESOLUTION,
)
_FIND_LIVE = (
    select(ApiToken, _STALE)
    .where(ApiToken.token_hash == bindparam("token_hash"), _live())
    .execution_options(populate_existing=True)
)
_MARK_USED = (
    update(ApiToken)
    .where(ApiToken.id == bindparam("token_id"), _STALE)
    .values(last_used_at=func.now())
    .returning(ApiToken.last_used_at)
    .execution_options(synchronize_session=False)
)


def validate_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise ValidationFailed("token name must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise ValidationFailed(f"token name must be at most {MAX_NAME_LENGTH} characters")
    if has_control_characters(name):
        raise ValidationFailed("token name must not contain control characters")
    return name


async def create_token(
    session: AsyncSession,
    user_id: uuid.UUID,
    name: str,
    *,
    expires_at: datetime | None = None,
    parent_id: uuid.UUID | None = None,
) -> IssuedToken:
    """Issue a token for the user. NotFound for an unknown user; ValidationFailed for a
    bad name, an expiry that is naive or not in the future, or a parent that is not a
    live token of the user; Conflict at the cap of MAX_ACTIVE_TOKENS active tokens.

    A token with a parent (one issued through OAuth for the token the user signed in
    with) expires with it and works only while it does. Its parent is always a token
    without one: a token issued for a child names the child's parent.
    """
    name = validate_name(name)
    if expires_at is not None:
        if expires_at.tzinfo is None or expires_at.utcoffset() is None:
            raise ValidationFailed("expires_at must include a time zone")
        if expires_at <= await db_now(session):
            raise ValidationFailed("expires_at must be in the future")
        if expires_at >= _NEVER_LATER:  # later ones overflow a date in UTC
            raise ValidationFailed("expires_at must be before 9999-01-01")
    # Concurrent creations for one user take turns, so two cannot both pass the cap.
    await find_user(session, user_id, lock=True)
    active = await session.scalar(
        select(func.count()).select_from(ApiToken).where(ApiToken.user_id == user_id, _live())
    )
    if (active or 0) >= MAX_ACTIVE_TOKENS:
        raise Conflict(
            f"user {user_id} already has {MAX_ACTIVE_TOKENS} active tokens: "
            "revoke one before creating another"
        )
    if parent_id is not None:
        parent = await session.scalar(
            select(ApiToken).where(ApiToken.id == parent_id, ApiToken.user_id == user_id, _live())
        )
        if parent is None:
            raise ValidationFailed("the parent token is revoked, expired or not this user's")
        parent_id = parent.parent_id or parent.id
        if parent.expires_at is not None:
            expires_at = min(expires_at or parent.expires_at, parent.expires_at)
    secret = generate_token()
    row = ApiToken(
        user_id=user_id,
        name=name,
        token_hash=hash_token(secret),
        prefix=display_prefix(secret),
        expires_at=expires_at,
        parent_id=parent_id,
    )
    session.add(row)
    await session.flush()
    await session.refresh(row)
    return IssuedToken(token=row, secret=secret)


async def list_tokens(session: AsyncSession, user_id: uuid.UUID) -> list[ListedToken]:
    """Every token of the user, newest first, revoked and expired ones included."""
    await find_user(session, user_id)
    rows = await session.execute(
        select(ApiToken, _live())
        .where(ApiToken.user_id == user_id)
        .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
        .execution_options(populate_existing=True)
    )
    return [ListedToken(token, active) for token, active in rows]


async def revoke_token(session: AsyncSession, user_id: uuid.UUID, token_id: uuid.UUID) -> ApiToken:
    """Revoke the user's token at the database's clock. Revoking it again changes nothing
    (the first revocation time stays). NotFound when the token is not this user's."""
    revoked = await session.scalar(
        update(ApiToken)
        .where(ApiToken.id == token_id, ApiToken.user_id == user_id)
        .values(revoked_at=func.coalesce(ApiToken.revoked_at, func.now()))
        .returning(ApiToken)
        .execution_options(populate_existing=True)
    )
    if revoked is None:
        await find_user(session, user_id)
        raise NotFound(f"user {user_id} has no token with id {token_id}")
    return revoked


async def authenticate_token(session: AsyncSession, presented: str) -> ApiToken | None:
    """The live token (not revoked, not expired) that ``presented`` is, else None.

    The lookup is by hash, through the unique index: the time it takes says nothing
    about how much of a guess was right.
    """
    if (
        not presented.startswith(TOKEN_PREFIX)
        or len(presented) > MAX_PRESENTED_LENGTH
        # Tokens are ASCII; anything else (a lone surrogate would not even encode) is not one.
        or not presented.isascii()
    ):
        return None
    found = (await session.execute(_FIND_LIVE, {"token_hash": hash_token(presented)})).one_or_none()
    if found is None:
        return None
    token, needs_write = found
    # last_used_at is written at most once a minute: most requests read only.
    if needs_write:
        used_at = await session.scalar(_MARK_USED, {"token_id": token.id})
        if used_at is not None:
            # Already written: record it on the object without marking it for another UPDATE.
            set_committed_value(token, "last_used_at", used_at)
    return token
