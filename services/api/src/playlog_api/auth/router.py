"""Connecting Spotify: authorization-code flow with PKCE and a browser-bound, single-use state.

``/auth/login`` creates a random state and PKCE verifier, keeps the state's hash and the
encrypted verifier in ``oauth_states`` for ten minutes, sets the state in a signed HttpOnly
cookie, and redirects to Spotify. ``/auth/callback`` accepts the answer only when the
query's state equals the cookie's and its row still exists; the row is deleted at once, so
a second use of the same link fails. Every failure ends on a page that says what happened
and stores nothing but the consumed state.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import delete, func

from playlog.crypto import TokenCipher
from playlog.db.models import OAuthState
from playlog.errors import ServiceUnavailable
from playlog.spotify.accounts import connect_account
from playlog.spotify.client import SpotifyClient
from playlog.spotify.errors import SpotifyError
from playlog.spotify.tokens import GrantToken
from playlog.web.db import DbSession
from playlog_api.auth.cookie import COOKIE_NAME, MAX_AGE_SECONDS, read_state, sign_state
from playlog_api.auth.pages import outcome
from playlog_api.settings import ApiSettings

router = APIRouter(prefix="/auth", tags=["auth"])
log = logging.getLogger(__name__)


def _hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def _spotify(request: Request) -> tuple[ApiSettings, SpotifyClient, TokenCipher, str]:
    settings: ApiSettings = request.app.state.settings
    client: SpotifyClient | None = request.app.state.spotify
    if client is None or settings.auth_state_secret is None:
        raise ServiceUnavailable(
            "Spotify sign-in is not configured: set SPOTIFY_CLIENT_ID and AUTH_STATE_SECRET"
        )
    return settings, client, request.app.state.cipher, settings.auth_state_secret.get_secret_value()


@router.get("/login", response_class=RedirectResponse, status_code=302)
async def login(request: Request, session: DbSession) -> Response:
    """Start connecting a Spotify account (redirects to Spotify's consent page)."""
    settings, _, cipher, secret = _spotify(request)
    state = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(72)[:96]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    await session.execute(delete(OAuthState).where(OAuthState.expires_at < func.now()))
    session.add(
        OAuthState(
            state_hash=_hash(state),
            code_verifier_encrypted=cipher.encrypt(verifier),
            expires_at=datetime.now(UTC) + timedelta(seconds=MAX_AGE_SECONDS),
        )
    )
    query = urlencode(
        {
            "client_id": settings.spotify_client_id,
            "response_type": "code",
            "redirect_uri": settings.spotify_redirect_uri,
            "state": state,
            "scope": settings.spotify_scopes,
            "code_challenge_method": "S256",
            "code_challenge": challenge.rstrip(b"=").decode(),
        }
    )
    response = RedirectResponse(f"{settings.spotify_accounts_base_url}/authorize?{query}", 302)
    response.set_cookie(
        COOKIE_NAME,
        sign_state(secret, state),
        max_age=MAX_AGE_SECONDS,
        httponly=True,
        # Lax: the cookie must come back on the top-level redirect from Spotify.
        samesite="lax",
        secure=settings.spotify_redirect_uri.startswith("https://"),
        path="/auth",
    )
    return response


@router.get("/callback")
async def callback(request: Request, session: DbSession) -> Response:
    """Spotify's redirect back: validate the state, exchange the code, store the tokens."""
    settings, client, cipher, secret = _spotify(request)
    response = await _complete(request, session, settings, client, cipher, secret)
    response.delete_cookie(COOKIE_NAME, path="/auth")
    return response


async def _complete(
    request: Request,
    session: DbSession,
    settings: ApiSettings,
    client: SpotifyClient,
    cipher: TokenCipher,
    secret: str,
) -> Response:
    query = request.query_params
    expected = read_state(secret, request.cookies.get(COOKIE_NAME))
    given = query.get("state", "")
    if expected is None:
        return outcome(
            request, 400, "Sign-in expired",
            "This sign-in was not started in this browser, or it is more than ten minutes "
            "old. Start again from the beginning.",
            code="state_missing",
        )  # fmt: skip
    if not hmac.compare_digest(expected.encode(), given.encode()):
        return outcome(
            request, 400, "Sign-in refused",
            "The answer from Spotify does not belong to this sign-in. Start again.",
            code="state_mismatch",
        )  # fmt: skip
    consumed = await session.execute(
        delete(OAuthState)
        .where(OAuthState.state_hash == _hash(given), OAuthState.expires_at > func.now())
        .returning(OAuthState.code_verifier_encrypted)
    )
    verifier_encrypted = consumed.scalar_one_or_none()
    if verifier_encrypted is None:
        return outcome(
            request, 400, "Sign-in already used",
            "This sign-in link was already used or has expired. Start again.",
            code="state_used",
        )  # fmt: skip
    if query.get("error"):
        denied = query["error"] == "access_denied"
        return outcome(
            request, 400, "Spotify not connected",
            "You declined access on Spotify, so nothing was stored."
            if denied
            else f"Spotify reported an error ({query['error'][:100]}); nothing was stored.",
            code="access_denied" if denied else "spotify_error",
        )  # fmt: skip
    code = query.get("code")
    if not code:
        return outcome(
            request, 400, "Spotify not connected", "Spotify sent no authorization code.",
            code="code_missing",
        )  # fmt: skip
    try:
        grant = await client.exchange_code(
            code, settings.spotify_redirect_uri, cipher.decrypt(verifier_encrypted)
        )
        profile = await client.me(GrantToken(grant.access_token))
    except SpotifyError as exc:
        log.warning("spotify sign-in failed: %s", type(exc).__name__)
        return outcome(
            request, 400, "Spotify not connected",
            "Spotify did not accept this sign-in (the code may be invalid or expired). "
            "Nothing was stored; start again.",
            code="code_rejected",
        )  # fmt: skip
    allowed = settings.allowed_spotify_ids
    if allowed and profile.id not in allowed:
        return outcome(
            request, 403, "Account not allowed",
            "This Playlog only accepts particular Spotify accounts, and this is not one of "
            "them. Nothing was stored.",
            code="account_not_allowed",
        )  # fmt: skip
    user = await connect_account(session, cipher, profile, grant)
    return outcome(
        request, 200, "Spotify connected",
        f"Connected {user.display_name or profile.id}. Playlog will now keep your listening "
        "history.",
        code="connected",
        data={"user_id": str(user.id), "spotify_user_id": profile.id},
    )  # fmt: skip
