"""Playlog's OAuth authorization server for web MCP hosts (see ``provider``)."""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlsplit

from fastapi import FastAPI, Request
from mcp.server.auth.routes import (
    build_resource_metadata_url,
    create_auth_routes,
    create_protected_resource_routes,
)
from mcp.server.auth.settings import ClientRegistrationOptions
from pydantic import AnyHttpUrl
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from playlog_api.auth.pages import outcome
from playlog_api.oauth import consent
from playlog_api.oauth.provider import LOOPBACK_HOSTS, SCOPE, PlaylogOAuthProvider

log = logging.getLogger(__name__)


def install(app: FastAPI, public_url: str) -> str | None:
    """Add the authorization server's routes; returns the URL of the protected resource
    metadata that 401 answers point to, or None when the public URL is plain HTTP to
    another machine (OAuth needs HTTPS there; tokens still work as before)."""
    parts = urlsplit(public_url)
    if parts.scheme != "https" and parts.hostname not in LOOPBACK_HOSTS:
        log.warning(
            "API_PUBLIC_URL is not https: OAuth sign-in for web MCP hosts is off "
            "(personal access tokens work as before)"
        )
        return None
    provider = PlaylogOAuthProvider(
        lambda: app.state.sessionmaker, lambda: app.state.cipher, public_url
    )
    resource_url, issuer_url = provider.resources
    issuer = AnyHttpUrl(issuer_url)
    resource = AnyHttpUrl(resource_url)
    routes = create_auth_routes(
        provider,
        issuer_url=issuer,
        client_registration_options=ClientRegistrationOptions(
            enabled=True, valid_scopes=[SCOPE], default_scopes=[SCOPE]
        ),
    )
    resource_routes = create_protected_resource_routes(
        resource, [issuer], scopes_supported=[SCOPE], resource_name="Playlog"
    )
    # Some clients ask at the root of the well-known path instead of the resource's.
    root = resource_routes[0]
    routes += [
        *resource_routes,
        Route("/.well-known/oauth-protected-resource", root.endpoint, methods=root.methods),
    ]
    app.router.routes.extend(_without_error_redirects(route) for route in routes)
    app.include_router(consent.router)
    return str(build_resource_metadata_url(resource))


def _without_error_redirects(route: BaseRoute) -> BaseRoute:
    """The authorization endpoint, answering a request it refuses with a page of its own
    instead of redirecting to the client's address: anyone can register a client with
    any address, and a link to this trusted host would otherwise bounce the browser on
    to theirs (RFC 9700, 4.11.2). Other routes as they are."""
    if not isinstance(route, Route) or route.path != "/authorize":
        return route
    return Route(route.path, _ErrorsShownHere(route.app), methods=route.methods)


class _ErrorsShownHere:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refused: Response | None = None

        async def forward(message: Message) -> None:
            nonlocal refused
            if message["type"] == "http.response.start":
                refused = _refusal(scope, message)
            if refused is None:
                await send(message)

        await self.app(scope, receive, forward)
        if refused is not None:
            await refused(scope, receive, send)


def _refusal(scope: Scope, start: Message) -> Response | None:
    """The page for a redirect that carries an OAuth error, else None."""
    if start["status"] not in (302, 303, 307):
        return None
    headers = dict(start.get("headers", []))
    query = parse_qs(urlsplit(headers.get(b"location", b"").decode("latin-1")).query)
    if "error" not in query:
        return None
    error = query["error"][0]
    reason = query.get("error_description", [error])[0]
    response = outcome(
        Request(scope),
        400,
        "This sign-in request cannot be used",
        f"The app that sent you here asked for something Playlog does not grant "
        f"({error}: {reason}). Nothing was granted.",
        code=error,
        note="Start connecting again from your app; if this repeats, the app's "
        "settings for Playlog may be wrong.",
    )
    response.headers.update(consent.HEADERS)
    return response
