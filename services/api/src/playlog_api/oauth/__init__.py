"""Playlog's OAuth authorization server for web MCP hosts (see ``provider``)."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from fastapi import FastAPI
from mcp.server.auth.routes import (
    build_resource_metadata_url,
    create_auth_routes,
    create_protected_resource_routes,
)
from mcp.server.auth.settings import ClientRegistrationOptions
from pydantic import AnyHttpUrl
from starlette.routing import Route

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
    app.router.routes.extend(routes)
    app.include_router(consent.router)
    return str(build_resource_metadata_url(resource))
