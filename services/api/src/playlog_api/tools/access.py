"""Who is calling a tool, and which user's history they may read.

A personal access token (``Bearer plg_…``) acts for its own user only. Admin credentials
act for any user, but must name it: there is no implicit "default user". Every failure is
a 401 with a ``WWW-Authenticate`` challenge (RFC 6750), and no message echoes what was
presented.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from playlog.access_tokens import TOKEN_PREFIX, authenticate_token
from playlog.errors import Forbidden, Unauthorized, ValidationFailed
from playlog.web.admin_auth import REALM, AdminAuthenticator


@dataclass(frozen=True)
class Caller:
    admin: bool
    # The personal token's user; None for the admin.
    user_id: uuid.UUID | None

    def target(self, requested: uuid.UUID | None) -> uuid.UUID:
        """The user a call acts for, given the ``user_id`` it named (if any)."""
        if self.user_id is None:
            if requested is None:
                raise ValidationFailed(
                    "user_id is required with the admin token: name the user to act for"
                )
            return requested
        if requested is not None and requested != self.user_id:
            raise Forbidden("this token can only read its own user's history")
        return self.user_id


def _challenge(connection: HTTPConnection, message: str, *, error: str | None) -> Unauthorized:
    challenge = f'Bearer realm="{REALM}"'
    # Where OAuth clients find the authorization server (RFC 9728), when it runs.
    metadata: str | None = connection.app.state.oauth_resource_metadata
    if metadata:
        challenge += f', resource_metadata="{metadata}"'
    if error:
        challenge += f', error="{error}", error_description="{message}"'
    return Unauthorized(message, headers={"WWW-Authenticate": challenge})


async def authenticate(connection: HTTPConnection, session: AsyncSession) -> Caller:
    """The caller of a tool request, or Unauthorized."""
    authorization = connection.headers.get("authorization") or ""
    scheme, _, credentials = authorization.partition(" ")
    credentials = credentials.strip()
    authenticator: AdminAuthenticator = connection.app.state.admin_auth
    # No credentials at all ("Bearer" alone counts), or a scheme only an admin in HTTP
    # Basic mode may use: asked for a token, with no error code (RFC 6750, 3.1) and the
    # OAuth metadata that lets a client go and get one.
    missing = not credentials and scheme.lower() in ("", "bearer")
    if missing or (scheme.lower() != "bearer" and authenticator.mode != "basic"):
        raise _challenge(
            connection,
            "a personal access token is required: 'Authorization: Bearer plg_…'",
            error=None,
        )
    if scheme.lower() == "bearer" and credentials.startswith(TOKEN_PREFIX):
        token = await authenticate_token(session, credentials)
        if token is None:
            raise _challenge(
                connection, "invalid, expired or revoked access token", error="invalid_token"
            )
        return Caller(admin=False, user_id=token.user_id)
    try:
        authenticator.authenticate(authorization)
    except Unauthorized as exc:
        if scheme.lower() != "bearer":
            raise  # HTTP Basic admin credentials: the admin's own challenge
        # Any other bearer token (a stale one, another server's): the tools' challenge,
        # which tells an OAuth client where to get a new one.
        raise _challenge(connection, exc.message, error="invalid_token") from None
    return Caller(admin=True, user_id=None)
