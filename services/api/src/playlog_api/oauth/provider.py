"""Playlog's OAuth authorization server, for MCP hosts that cannot send a static token.

ChatGPT's connectors and Claude's custom connectors find the server through the
protected resource metadata that ``/mcp``'s 401 points to (RFC 9728), register
themselves (RFC 7591) and run the authorization code flow with PKCE (S256). The MCP SDK
serves the protocol endpoints (``/register``, ``/authorize``, ``/token`` and the
metadata) and validates every request; this module is their storage:

- a registered client is a row of ``oauth_clients`` (a secret, if it has one, is stored
  encrypted: the token endpoint compares it);
- ``/authorize`` stores the validated request as a pending ``oauth_grants`` row and
  sends the browser to Playlog's consent page (``playlog_api.oauth.consent``), where the
  user proves who they are with a personal access token;
- allowing stores a single-use code's hash on the row; the token exchange deletes the
  row and issues a new personal access token for that user, named after the client, so
  it is listed and revoked like any other token and reads nothing but its user's data.

Pending requests live ten minutes, codes five. No refresh tokens are issued: the access
token works while the token the user signed in with does (its parent), and until it is
revoked itself.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    AuthorizeError,
    IdentityAssertionParams,
    RefreshToken,
    RegistrationError,
    TokenError,
)
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from playlog.access_tokens import MAX_NAME_LENGTH, create_token, hash_token
from playlog.crypto import TokenCipher
from playlog.db.models import OAuthClient, OAuthGrant
from playlog.errors import AppError

PENDING_LIFETIME = timedelta(minutes=10)
CODE_LIFETIME = timedelta(minutes=5)
# Registration is open (that is what dynamic registration is for), so the table is kept
# bounded: past this many clients, a new one replaces the oldest that is over an hour old
# and never completed a sign-in, or is refused. Tokens already issued stay valid.
MAX_CLIENTS = 500
IDLE_CLIENT_AGE = timedelta(hours=1)
MAX_PENDING_PER_CLIENT = 20
MAX_STATE = 500
CODE_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")
MAX_REDIRECT_URIS = 10
MAX_CLIENT_NAME = 60
# A client's stored metadata (names, URIs, contacts); real clients send well under 2 KB.
MAX_REGISTRATION_BYTES = 16_384
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
SCOPE = "history"


def client_label(client_name: str | None) -> str:
    """The client's name as shown to the user and used for its tokens: printable, short."""
    name = "".join(ch for ch in (client_name or "") if ch.isprintable()).strip()
    return name[:MAX_CLIENT_NAME] or "An OAuth client"


def check_redirect_uri(uri: str) -> None:
    """HTTPS anywhere, or plain HTTP to this machine (desktop clients and the Inspector);
    nothing else (no custom schemes, fragments or credentials)."""
    parts = urlsplit(uri)
    secure = parts.scheme == "https" and bool(parts.hostname)
    loopback = parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS
    if not (secure or loopback) or parts.fragment or parts.username or parts.password:
        raise RegistrationError(
            error="invalid_redirect_uri",
            error_description=(
                "redirect_uris must be https:// URLs, or http:// on 127.0.0.1, localhost "
                "or [::1], without a fragment or credentials"
            ),
        )


class PlaylogOAuthProvider:
    """Storage for the SDK's OAuth handlers (``OAuthAuthorizationServerProvider``)."""

    def __init__(
        self,
        sessionmaker: Callable[[], async_sessionmaker[AsyncSession]],
        cipher: Callable[[], TokenCipher],
        public_url: str,
    ) -> None:
        # Both are read per call: the app creates its sessionmaker in its lifespan.
        self._sessionmaker = sessionmaker
        self._cipher = cipher
        base = public_url.rstrip("/")
        self.consent_url = base + "/oauth/consent"
        # What a client may name as the resource (RFC 8707): the MCP endpoint, or the api.
        self.resources = (base + "/mcp", base)

    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        if len(client_id) > 64:
            return None
        async with self._sessionmaker()() as session:
            row = await session.get(OAuthClient, client_id)
        if row is None:
            return None
        secret = None
        if row.client_secret_encrypted is not None:
            secret = self._cipher().decrypt(row.client_secret_encrypted)
        return OAuthClientInformationFull.model_validate(
            {**row.registration, "client_id": row.client_id, "client_secret": secret}
        )

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        uris = [str(uri) for uri in client_info.redirect_uris or []]
        if not uris or len(uris) > MAX_REDIRECT_URIS:
            raise RegistrationError(
                error="invalid_redirect_uri",
                error_description=f"register 1 to {MAX_REDIRECT_URIS} redirect_uris",
            )
        for uri in uris:
            check_redirect_uri(uri)
        registration = client_info.model_dump(
            mode="json", exclude={"client_id", "client_secret"}, exclude_none=True
        )
        if len(json.dumps(registration)) > MAX_REGISTRATION_BYTES:
            raise RegistrationError(
                error="invalid_client_metadata",
                error_description=f"client metadata is over {MAX_REGISTRATION_BYTES} bytes",
            )
        secret = client_info.client_secret
        async with self._sessionmaker()() as session:
            count = await session.scalar(select(func.count()).select_from(OAuthClient)) or 0
            excess = count - MAX_CLIENTS + 1
            if excess > 0:
                # Only clients that never completed a sign-in, and are over an hour old,
                # make room: a flood of registrations cannot push out the ones in use.
                idle = (
                    select(OAuthClient.client_id)
                    .where(
                        OAuthClient.used_at.is_(None),
                        OAuthClient.created_at < func.now() - IDLE_CLIENT_AGE,
                    )
                    .order_by(OAuthClient.created_at, OAuthClient.client_id)
                    .limit(excess)
                )
                removed = await session.execute(
                    delete(OAuthClient)
                    .where(OAuthClient.client_id.in_(idle))
                    .returning(OAuthClient.client_id)
                )
                if len(removed.all()) < excess:
                    raise RegistrationError(
                        error="invalid_client_metadata",
                        error_description="too many registered clients; try again later",
                    )
            session.add(
                OAuthClient(
                    client_id=client_info.client_id,
                    registration=registration,
                    client_secret_encrypted=self._cipher().encrypt(secret) if secret else None,
                )
            )
            await session.commit()

    async def authorize(
        self, client: OAuthClientInformationFull, params: AuthorizationParams
    ) -> str:
        """Store the request and send the browser to the consent page."""
        if params.state is not None and len(params.state) > MAX_STATE:
            raise AuthorizeError(
                error="invalid_request", error_description=f"state is over {MAX_STATE} characters"
            )
        if not CODE_CHALLENGE.fullmatch(params.code_challenge):
            raise AuthorizeError(
                error="invalid_request",
                error_description="code_challenge must be a base64url SHA-256 (43 characters)",
            )
        if params.resource is not None and params.resource.rstrip("/") not in self.resources:
            raise AuthorizeError(
                error="invalid_request", error_description=f"resource must be {self.resources[0]}"
            )
        request_id = secrets.token_urlsafe(32)
        async with self._sessionmaker()() as session:
            await session.execute(delete(OAuthGrant).where(OAuthGrant.expires_at < func.now()))
            pending = await session.scalar(
                select(func.count())
                .select_from(OAuthGrant)
                .where(OAuthGrant.client_id == client.client_id, OAuthGrant.user_id.is_(None))
            )
            if (pending or 0) >= MAX_PENDING_PER_CLIENT:
                raise AuthorizeError(
                    error="temporarily_unavailable",
                    error_description="too many sign-ins in progress for this client",
                )
            session.add(
                OAuthGrant(
                    request_hash=hash_token(request_id),
                    client_id=client.client_id,
                    request=params.model_dump(mode="json"),
                    expires_at=func.now() + PENDING_LIFETIME,
                )
            )
            await session.commit()
        return f"{self.consent_url}?request={request_id}"

    async def load_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: str
    ) -> AuthorizationCode | None:
        if len(authorization_code) > 100:
            return None
        async with self._sessionmaker()() as session:
            row = await session.scalar(
                select(OAuthGrant).where(
                    OAuthGrant.code_hash == hash_token(authorization_code),
                    OAuthGrant.client_id == client.client_id,
                )
            )
        if row is None or row.user_id is None:
            return None
        params = AuthorizationParams.model_validate(row.request)
        return AuthorizationCode(
            code=authorization_code,
            scopes=params.scopes or [SCOPE],
            expires_at=row.expires_at.timestamp(),
            client_id=row.client_id,
            code_challenge=params.code_challenge,
            redirect_uri=params.redirect_uri,
            redirect_uri_provided_explicitly=params.redirect_uri_provided_explicitly,
            resource=params.resource,
            subject=str(row.user_id),
        )

    async def exchange_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: AuthorizationCode
    ) -> OAuthToken:
        async with self._sessionmaker()() as session:
            # Deleting the row is what makes the code single-use, whichever replica asks.
            found = (
                await session.execute(
                    delete(OAuthGrant)
                    .where(
                        OAuthGrant.code_hash == hash_token(authorization_code.code),
                        OAuthGrant.client_id == client.client_id,
                        OAuthGrant.expires_at > func.now(),
                    )
                    .returning(OAuthGrant.user_id, OAuthGrant.token_id)
                )
            ).one_or_none()
            if found is None or found.user_id is None or found.token_id is None:
                raise TokenError(
                    error="invalid_grant", error_description="the code was already used or expired"
                )
            name = f"{client_label(client.client_name)} (OAuth)"[:MAX_NAME_LENGTH]
            try:
                issued = await create_token(session, found.user_id, name, parent_id=found.token_id)
            except AppError as exc:
                # The user holds the maximum number of live tokens, or the token they
                # signed in with was revoked or expired since.
                raise TokenError(
                    error="invalid_grant",
                    error_description="no token could be issued: revoke unused tokens, or sign "
                    "in again with a live token",
                ) from exc
            await session.execute(
                update(OAuthClient)
                .where(OAuthClient.client_id == client.client_id)
                .values(used_at=func.now())
            )
            await session.commit()
        return OAuthToken(access_token=issued.secret, scope=" ".join(authorization_code.scopes))

    async def load_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: str
    ) -> RefreshToken | None:
        return None  # none are issued

    async def exchange_refresh_token(
        self,
        client: OAuthClientInformationFull,
        refresh_token: RefreshToken,
        scopes: list[str],
    ) -> OAuthToken:
        raise TokenError(error="invalid_grant", error_description="refresh tokens are not issued")

    async def exchange_identity_assertion(
        self, client: OAuthClientInformationFull, params: IdentityAssertionParams
    ) -> OAuthToken:
        raise TokenError(
            error="unsupported_grant_type", error_description="identity assertions are not accepted"
        )

    async def load_access_token(self, token: str) -> AccessToken | None:
        # Requests are authenticated by playlog_api.tools.access, not by the SDK.
        return None

    async def revoke_token(self, token: Any) -> None:
        # Not offered: tokens are revoked through the admin api or the command line.
        return None
