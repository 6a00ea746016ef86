"""Personal access tokens of a user: create (the token is shown once), list, revoke."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from playlog.access_tokens import (
    MAX_ACTIVE_TOKENS,
    MAX_NAME_LENGTH,
    create_token,
    list_tokens,
    revoke_token,
)
from playlog.web.db import DbSession
from playlog_api.admin.schemas import NO_USER
from playlog_api.instants import Instant

router = APIRouter(prefix="/users", responses=NO_USER)


class TokenRequest(BaseModel):
    # Unknown fields are refused: a misspelt "expires_at" must not yield a token that
    # never expires.
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description=f"1 to {MAX_NAME_LENGTH} printable characters, blanks trimmed.")
    expires_at: Instant | None = None


class TokenCreated(BaseModel):
    id: uuid.UUID
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    # The token itself; only this response ever contains it.
    token: str


class TokenView(BaseModel):
    id: uuid.UUID
    name: str
    # The token's first characters, to tell tokens apart.
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None
    # Not revoked and not expired: the token authenticates now.
    active: bool


@router.post(
    "/{user_id}/tokens",
    status_code=201,
    responses={409: {"description": f"the user already has {MAX_ACTIVE_TOKENS} active tokens"}},
)
async def create_user_token(
    user_id: uuid.UUID, body: TokenRequest, session: DbSession
) -> TokenCreated:
    """Create a personal access token for the user, for an AI client or a script.

    The token (`plg_…`) is in this response only: Playlog keeps just its SHA-256 hash.
    `expires_at` must be in the future; null means it never expires.
    """
    issued = await create_token(session, user_id, body.name, expires_at=body.expires_at)
    row = issued.token
    return TokenCreated(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        created_at=row.created_at,
        expires_at=row.expires_at,
        token=issued.secret,
    )


@router.get("/{user_id}/tokens")
async def list_user_tokens(user_id: uuid.UUID, session: DbSession) -> list[TokenView]:
    """The user's tokens, newest first, revoked and expired ones included."""
    return [
        TokenView(
            id=row.token.id,
            name=row.token.name,
            prefix=row.token.prefix,
            created_at=row.token.created_at,
            last_used_at=row.token.last_used_at,
            expires_at=row.token.expires_at,
            revoked_at=row.token.revoked_at,
            active=row.active,
        )
        for row in await list_tokens(session, user_id)
    ]


@router.delete("/{user_id}/tokens/{token_id}", status_code=204)
async def revoke_user_token(user_id: uuid.UUID, token_id: uuid.UUID, session: DbSession) -> None:
    """Revoke the token at once. Revoking a revoked token is not an error. The row stays,
    so the list keeps its history."""
    await revoke_token(session, user_id, token_id)
