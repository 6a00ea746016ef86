"""The page where a user lets an OAuth client (ChatGPT, Claude …) read their history.

``/authorize`` sends the browser here with the id of a pending request. The user signs
in with one of their personal access tokens and allows or denies; either way the
browser goes back to the client's registered redirect URI, with a single-use code or
``error=access_denied``. A wrong token shows the form again and changes nothing; an
unknown, used or expired request ends on a page that says so and redirects nowhere.
The page cannot be framed and is never cached.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from html import escape
from typing import Annotated, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from mcp.server.auth.provider import AuthorizationParams, construct_redirect_uri
from sqlalchemy import delete, func, select, update

from playlog.access_tokens import MAX_PRESENTED_LENGTH, authenticate_token, hash_token
from playlog.db.models import OAuthClient, OAuthGrant
from playlog.web.db import DbSession
from playlog_api.auth.pages import STYLE, outcome
from playlog_api.oauth.provider import CODE_LIFETIME, client_label

router = APIRouter(prefix="/oauth", tags=["oauth"], include_in_schema=False)

MAX_REQUEST_ID = 100
HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}

_FORM = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Allow {client} · Playlog</title>
<style>{style}.error{{color:#a00;font-weight:600}}input{{width:100%;padding:.5rem;
font:inherit;box-sizing:border-box}}button{{padding:.5rem 1rem;font:inherit;
margin:1rem .5rem 0 0}}</style>
</head><body>
<h1>Allow {client} to read your listening history?</h1>
<p><strong>{client}</strong> will be able to read your Playlog history: plays, skips,
top lists and imports, and to ask Spotify about your account through Playlog. It cannot
change anything. After you allow it, your browser returns to <strong>{host}</strong>.</p>
{error}
<form method="post" action="consent">
<input type="hidden" name="request" value="{request}">
<p><label for="token">Sign in with one of your personal access tokens (<code>plg_…</code>):
</label><input id="token" name="token" type="password" autocomplete="off" required
maxlength="{max_token}"></p>
<p class="note">Ask your Playlog administrator for a token, or create one with
<code>playlog tokens create --user YOUR_USER_ID</code>. {client} gets a token of its own,
which you can revoke at any time.</p>
<button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny" formnovalidate>Deny</button>
</form></body></html>"""


def _form(
    request_id: str, client: str, redirect_uri: str, error: str | None, status: int
) -> Response:
    page = _FORM.format(
        client=escape(client),
        host=escape(urlsplit(redirect_uri).netloc),
        request=escape(request_id),
        max_token=MAX_PRESENTED_LENGTH,
        style=STYLE,
        error=f'<p class="error">{escape(error)}</p>' if error else "",
    )
    headers = dict(HEADERS)
    if status == 401:
        # The token is typed into the form, not sent as a header; the challenge says so.
        headers["WWW-Authenticate"] = 'Bearer realm="playlog"'
    return HTMLResponse(page, status, headers=headers)


def _gone(request: Request) -> Response:
    response = outcome(
        request,
        400,
        "This sign-in link cannot be used",
        "It expired, was already used or never existed. Start connecting again from your app.",
        code="invalid_request",
        note="Links from the connect button are valid for ten minutes.",
    )
    response.headers.update(HEADERS)
    return response


@dataclass(frozen=True)
class Pending:
    request_hash: str
    client: str  # the client's name, as shown
    params: AuthorizationParams


async def _pending(session: DbSession, request_id: str) -> Pending | None:
    """The pending (not yet allowed, not expired) request with this id."""
    found = (
        await session.execute(
            select(OAuthGrant, OAuthClient)
            .join(OAuthClient, OAuthClient.client_id == OAuthGrant.client_id)
            .where(
                OAuthGrant.request_hash == hash_token(request_id),
                OAuthGrant.user_id.is_(None),
                OAuthGrant.expires_at > func.now(),
            )
        )
    ).one_or_none()
    if found is None:
        return None
    grant, client = found
    return Pending(
        grant.request_hash,
        client_label(client.registration.get("client_name")),
        AuthorizationParams.model_validate(grant.request),
    )


@router.get("/consent", response_class=HTMLResponse)
async def consent_page(
    request: Request,
    session: DbSession,
    request_id: Annotated[str, Query(alias="request", max_length=MAX_REQUEST_ID)],
) -> Response:
    pending = await _pending(session, request_id)
    if pending is None:
        return _gone(request)
    return _form(request_id, pending.client, str(pending.params.redirect_uri), None, 200)


@router.post("/consent", response_class=HTMLResponse)
async def consent(
    request: Request,
    session: DbSession,
    request_id: Annotated[str, Form(alias="request", max_length=MAX_REQUEST_ID)],
    decision: Annotated[Literal["allow", "deny"], Form()],
    token: Annotated[str, Form(max_length=MAX_PRESENTED_LENGTH)] = "",
) -> Response:
    pending = await _pending(session, request_id)
    if pending is None:
        return _gone(request)
    params = pending.params
    redirect_uri = str(params.redirect_uri)
    if decision == "deny":
        await session.execute(
            delete(OAuthGrant).where(OAuthGrant.request_hash == pending.request_hash)
        )
        await session.commit()
        target = construct_redirect_uri(
            redirect_uri,
            error="access_denied",
            error_description="the user denied access",
            state=params.state,
        )
        return RedirectResponse(target, 303, headers=HEADERS)
    signed_in = await authenticate_token(session, token.strip())
    if signed_in is None:
        await session.commit()
        return _form(
            request_id,
            pending.client,
            redirect_uri,
            "That is not a valid personal access token (it may be revoked or expired).",
            401,
        )
    code = secrets.token_urlsafe(32)
    claimed = await session.execute(
        update(OAuthGrant)
        .where(OAuthGrant.request_hash == pending.request_hash, OAuthGrant.user_id.is_(None))
        .values(
            user_id=signed_in.user_id,
            token_id=signed_in.id,
            code_hash=hash_token(code),
            expires_at=func.now() + CODE_LIFETIME,
        )
        .returning(OAuthGrant.request_hash)
    )
    if claimed.scalar_one_or_none() is None:  # allowed twice at once: the first one won
        await session.rollback()
        return _gone(request)
    await session.commit()
    target = construct_redirect_uri(redirect_uri, code=code, state=params.state)
    return RedirectResponse(target, 303, headers=HEADERS)
