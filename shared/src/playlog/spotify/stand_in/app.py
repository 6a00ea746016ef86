"""HTTP surface of the stand-in: Spotify's accounts service, Web API and test controls.

Behaviour modelled on the real services: the ~50-play window of recently-played with
millisecond cursors in and string cursors out, ``cursors: null`` on an empty page,
``after``/``before`` exclusivity, access-token expiry, refresh-token rotation and the
six-month refresh lifetime, 429 with Retry-After, the development-mode search limit of 10,
and Spotify's error bodies (``{"error": {"status", "message"}}`` on the Web API,
``{"error", "error_description"}`` on the token endpoint).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from playlog.spotify.stand_in import web_api
from playlog.spotify.stand_in.config import StandInConfig
from playlog.spotify.stand_in.state import OAuthError, StandInState

KNOWN_SCOPES = frozenset(
    {
        "user-read-recently-played",
        "user-top-read",
        "user-read-email",
        "user-read-private",
        "user-read-playback-state",
        "user-library-read",
        "playlist-read-private",
    }
)


def create_stand_in_app(config: StandInConfig | None = None) -> FastAPI:
    state = StandInState.create(config or StandInConfig())
    app = FastAPI(title="Spotify stand-in", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.stand_in = state

    @app.get("/authorize")
    async def authorize(request: Request) -> Response:
        return _authorize(state, request)

    @app.post("/api/token")
    async def token(request: Request) -> Response:
        try:
            fields = await _form(request)
            body = _token(state, fields, request.headers.get("authorization"))
        except OAuthError as exc:
            return JSONResponse(
                {"error": exc.error, "error_description": exc.description}, exc.status
            )
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    app.add_exception_handler(web_api.ApiError, web_api.render_api_error)
    app.middleware("http")(_web_api_guard(state))
    app.include_router(web_api.router)
    if state.config.enable_control:
        from playlog.spotify.stand_in.control import router as control_router

        app.include_router(control_router)
    return app


def _authorize(state: StandInState, request: Request) -> Response:
    query = request.query_params
    config = state.config
    if query.get("client_id") != config.client_id:
        return HTMLResponse("INVALID_CLIENT: Invalid client", status_code=400)
    redirect_uri = query.get("redirect_uri", "")
    if redirect_uri not in config.redirect_uris:
        return HTMLResponse("INVALID_CLIENT: Invalid redirect URI", status_code=400)

    def back(**params: str) -> RedirectResponse:
        if "state" in query:
            params["state"] = query["state"]
        separator = "&" if "?" in redirect_uri else "?"
        return RedirectResponse(f"{redirect_uri}{separator}{urlencode(params)}", status_code=303)

    if query.get("response_type") != "code":
        return back(error="unsupported_response_type")
    challenge = query.get("code_challenge")
    method = query.get("code_challenge_method")
    if (challenge or method) and (
        method != "S256" or not re.fullmatch(r"[A-Za-z0-9_-]{43}", challenge or "")
    ):
        return back(error="invalid_request")
    scope = " ".join(query.get("scope", "").split())
    if any(item not in KNOWN_SCOPES for item in scope.split()):
        return back(error="invalid_scope")
    if not config.approve:
        return back(error="access_denied")
    code = state.issue_code(config.authorize_as, redirect_uri, scope, challenge)
    return back(code=code)


async def _form(request: Request) -> dict[str, str]:
    """The url-encoded body of a token request (small by nature; anything big is refused)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    if content_type != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "body must be application/x-www-form-urlencoded")
    raw = await request.body()
    if len(raw) > 16_384:
        raise OAuthError("invalid_request", "request body too large")
    try:
        return dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        raise OAuthError("invalid_request", "body is not UTF-8") from None


def _token(state: StandInState, form: dict[str, str], authorization: str | None) -> dict[str, Any]:
    config = state.config
    client_authenticated = False
    if authorization:
        scheme, _, encoded = authorization.partition(" ")
        try:
            client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            client_id, secret = "", ""
        if scheme.lower() != "basic" or (client_id, secret) != (
            config.client_id,
            config.client_secret,
        ):
            raise OAuthError("invalid_client", "Invalid client", status=401)
        client_authenticated = True
    elif form.get("client_id") != config.client_id:
        raise OAuthError("invalid_client", "Invalid client", status=401)

    grant_type = form.get("grant_type")
    if grant_type == "authorization_code":
        if not form.get("code") or not form.get("redirect_uri"):
            raise OAuthError("invalid_request", "code and redirect_uri are required")
        return state.redeem_code(
            form["code"], form["redirect_uri"], form.get("code_verifier"), client_authenticated
        )
    if grant_type == "refresh_token":
        if not form.get("refresh_token"):
            raise OAuthError("invalid_request", "refresh_token must be supplied")
        return state.refresh(form["refresh_token"])
    raise OAuthError(
        "unsupported_grant_type", "grant_type must be authorization_code or refresh_token"
    )


def _web_api_guard(
    state: StandInState,
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    """Rate limit and injected faults, applied to /v1 before any route runs."""

    async def guard(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if not request.url.path.startswith("/v1/"):
            return await call_next(request)
        wait = state.retry_after()
        if wait is not None:
            return web_api.error(429, "API rate limit exceeded", {"Retry-After": str(wait)})
        if state.faults.errors_remaining > 0:
            state.faults.errors_remaining -= 1
            return web_api.error(state.faults.error_status, "Server error")
        return await call_next(request)

    return guard
