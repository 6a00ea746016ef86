"""Everything the stand-in remembers: accounts, codes, tokens, rate limit, faults."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from playlog.spotify.stand_in.catalog import Catalog
from playlog.spotify.stand_in.config import StandInAccount, StandInConfig
from playlog.spotify.stand_in.listener import Listener, SimulatedClock

CODE_LIFETIME = timedelta(minutes=10)
# RFC 7636: 43-128 unreserved characters.
_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")


class OAuthError(Exception):
    """An error of the token endpoint, rendered as {"error", "error_description"}."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


@dataclass
class AuthorizationCode:
    account: str
    redirect_uri: str
    scope: str
    code_challenge: str | None
    expires_at: datetime


@dataclass
class AccessToken:
    account: str
    scope: str
    expires_at: datetime


@dataclass
class RefreshToken:
    account: str
    scope: str
    authorized_at: datetime


@dataclass
class Faults:
    """Failures injected through the control endpoints."""

    # Answer 429 with this Retry-After until the deadline (monotonic seconds).
    throttle_until: float = 0.0
    retry_after_seconds: int = 0
    # Answer the next N api requests with this status.
    errors_remaining: int = 0
    error_status: int = 500


@dataclass
class StandInState:
    config: StandInConfig
    catalog: Catalog
    clock: SimulatedClock
    listeners: dict[str, Listener]
    accounts: dict[str, StandInAccount]
    codes: dict[str, AuthorizationCode] = field(default_factory=dict)
    access_tokens: dict[str, AccessToken] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshToken] = field(default_factory=dict)
    faults: Faults = field(default_factory=Faults)
    request_times: deque[float] = field(default_factory=deque)
    # Every play the api has returned, per account: what a collector could have stored.
    served: dict[str, dict[tuple[str, datetime], None]] = field(default_factory=dict)

    @classmethod
    def create(cls, config: StandInConfig) -> StandInState:
        clock = SimulatedClock(config.speed)
        catalog = Catalog(config.catalog_seed, config.catalog_artists)
        start = clock.now() - timedelta(hours=config.history_hours)
        listeners = {}
        for account in config.accounts:
            listener = Listener(catalog, account.seed, start)
            listener.advance_to(clock.now())
            listeners[account.user_id] = listener
        return cls(
            config=config,
            catalog=catalog,
            clock=clock,
            listeners=listeners,
            accounts={account.user_id: account for account in config.accounts},
        )

    # --- OAuth -------------------------------------------------------------------

    def issue_code(self, account: str, redirect_uri: str, scope: str, challenge: str | None) -> str:
        code = secrets.token_urlsafe(32)
        self.codes[code] = AuthorizationCode(
            account, redirect_uri, scope, challenge, self.clock.now() + CODE_LIFETIME
        )
        return code

    def redeem_code(
        self, code: str, redirect_uri: str, verifier: str | None, client_authenticated: bool
    ) -> dict[str, object]:
        grant = self.codes.pop(code, None)  # single use, even when the exchange fails
        if grant is None or grant.expires_at < self.clock.now():
            raise OAuthError("invalid_grant", "Invalid authorization code")
        if grant.redirect_uri != redirect_uri:
            raise OAuthError("invalid_grant", "Invalid redirect URI")
        if grant.code_challenge is not None:
            if not verifier or not _VERIFIER.fullmatch(verifier):
                raise OAuthError("invalid_request", "code_verifier is malformed")
            if _s256(verifier) != grant.code_challenge:
                raise OAuthError("invalid_grant", "code_verifier was incorrect")
        elif not client_authenticated:
            raise OAuthError("invalid_client", "Invalid client", status=401)
        refresh = secrets.token_urlsafe(48)
        self.refresh_tokens[refresh] = RefreshToken(grant.account, grant.scope, self.clock.now())
        return {**self._access_token(grant.account, grant.scope), "refresh_token": refresh}

    def refresh(self, token: str) -> dict[str, object]:
        stored = self.refresh_tokens.get(token)
        if stored is None:
            raise OAuthError("invalid_grant", "Invalid refresh token")
        lifetime = timedelta(days=self.config.refresh_token_lifetime_days)
        if stored.authorized_at + lifetime < self.clock.now():
            del self.refresh_tokens[token]
            raise OAuthError("invalid_grant", "Refresh token revoked")
        response = self._access_token(stored.account, stored.scope)
        if self.config.rotate_refresh_tokens:
            # The new token keeps the original authorisation time: refreshing does not
            # extend the six-month lifetime.
            del self.refresh_tokens[token]
            rotated = secrets.token_urlsafe(48)
            self.refresh_tokens[rotated] = stored
            response["refresh_token"] = rotated
        return response

    def revoke(self, account: str) -> int:
        """The user removed the app: every token of the account stops working."""
        revoked = [t for t, grant in self.refresh_tokens.items() if grant.account == account]
        for token in revoked:
            del self.refresh_tokens[token]
        for token in [t for t, grant in self.access_tokens.items() if grant.account == account]:
            del self.access_tokens[token]
        return len(revoked)

    def expire_access_tokens(self) -> None:
        for grant in self.access_tokens.values():
            grant.expires_at = self.clock.now() - timedelta(seconds=1)

    def _access_token(self, account: str, scope: str) -> dict[str, object]:
        token = secrets.token_urlsafe(48)
        ttl = self.config.access_token_ttl_seconds
        self.access_tokens[token] = AccessToken(
            account, scope, self.clock.now() + timedelta(seconds=ttl)
        )
        return {"access_token": token, "token_type": "Bearer", "scope": scope, "expires_in": ttl}

    # --- Rate limit -----------------------------------------------------------------

    def retry_after(self) -> int | None:
        """Seconds to wait when this request is over a limit or inside a 429 storm."""
        now = time.monotonic()
        if now < self.faults.throttle_until:
            return self.faults.retry_after_seconds
        limit = self.config.rate_limit_per_30s
        if not limit:
            return None
        while self.request_times and self.request_times[0] <= now - 30:
            self.request_times.popleft()
        if len(self.request_times) >= limit:
            return max(1, int(self.request_times[0] + 30 - now) + 1)
        self.request_times.append(now)
        return None


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
