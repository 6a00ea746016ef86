"""Admin authentication (``ADMIN_AUTH_MODE=token|basic``). Fails closed.

Secrets are compared as SHA-256 digests with ``hmac.compare_digest``: constant time, and
independent of the length of what the client sent.

A browser keeps HTTP Basic credentials once entered and sends them with every request to
the api, including one a page of another site makes it send (a form posted there). In
basic mode, the admin routes therefore refuse state-changing requests that a browser
marks as coming from another site; API clients and the frontend's server-side calls send
no such marks.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import Request

from playlog.errors import Forbidden, Unauthorized
from playlog.settings import PERSONAL_TOKEN_PREFIX, AdminAuthSettings

REALM = "playlog"
# Methods that change nothing, which a page of another site may make a browser send.
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class AdminPrincipal:
    name: str


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8")).digest()


def _same(expected: bytes, given: str) -> bool:
    return hmac.compare_digest(expected, _digest(given))


class AdminAuthenticator:
    def __init__(self, settings: AdminAuthSettings) -> None:
        self.mode = settings.admin_auth_mode
        if self.mode == "token":
            assert settings.admin_token is not None
            self._secret = _digest(settings.admin_token.get_secret_value())
            self._username = _digest("")
            self._challenge = f'Bearer realm="{REALM}"'
        else:
            assert settings.admin_username is not None
            assert settings.admin_password is not None
            self._secret = _digest(settings.admin_password.get_secret_value())
            self._username = _digest(settings.admin_username)
            self._challenge = f'Basic realm="{REALM}", charset="UTF-8"'

    def authenticate(self, authorization: str | None) -> AdminPrincipal:
        if not authorization:
            raise self._unauthorized("admin credentials are required", error=None)
        scheme, _, credentials = authorization.partition(" ")
        credentials = credentials.strip()
        if scheme.lower() == "bearer" and credentials.startswith(PERSONAL_TOKEN_PREFIX):
            # Whatever it is worth, a personal token never opens the admin routes (and the
            # admin token cannot look like one: settings refuse that).
            raise Forbidden(
                f"a personal access token ({PERSONAL_TOKEN_PREFIX}…) cannot use the admin "
                "routes: they take the admin credentials; personal tokens read /me/…, "
                "/mcp and /mcp/call",
                headers={"WWW-Authenticate": self._challenge_with("insufficient_scope")},
            )
        if self.mode == "token":
            if scheme.lower() != "bearer" or not credentials:
                raise self._unauthorized("use 'Authorization: Bearer <admin token>'", error=None)
            if not _same(self._secret, credentials):
                raise self._unauthorized("invalid admin token", error="invalid_token")
            return AdminPrincipal(name="admin")
        if scheme.lower() != "basic" or not credentials:
            raise self._unauthorized("use HTTP Basic authentication", error=None)
        username, password = _decode_basic(credentials)
        # Both comparisons always run: no early exit tells which half was wrong.
        user_ok = _same(self._username, username)
        password_ok = _same(self._secret, password)
        if not (user_ok and password_ok):
            raise self._unauthorized("invalid admin username or password", error=None)
        return AdminPrincipal(name=username)

    def _unauthorized(self, message: str, *, error: str | None) -> Unauthorized:
        return Unauthorized(message, headers={"WWW-Authenticate": self._challenge_with(error)})

    def _challenge_with(self, error: str | None) -> str:
        """The mode's challenge, naming what was wrong with the credential sent, if any."""
        return self._challenge + (f', error="{error}"' if error else "")


def _decode_basic(credentials: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except ValueError:  # not base64, not ASCII at all, or not UTF-8 once decoded
        decoded = ""
    username, separator, password = decoded.partition(":")
    if not separator:
        return "", ""
    return username, password


def require_admin(request: Request) -> AdminPrincipal:
    authenticator: AdminAuthenticator = request.app.state.admin_auth
    principal = authenticator.authenticate(request.headers.get("authorization"))
    if (
        authenticator.mode == "basic"
        and request.method not in _SAFE_METHODS
        and _from_another_site(request)
    ):
        raise Forbidden(
            "admin requests that change something are refused when a browser sends them "
            "from another site's page"
        )
    return principal


def _from_another_site(request: Request) -> bool:
    """Whether a browser says this request comes from a page of another origin: its
    ``Sec-Fetch-Site`` (every current browser sends it; right behind a proxy that
    rewrites Host), else an ``Origin`` other than the host asked (``null`` included)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site.lower() not in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return False
    return urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower()
