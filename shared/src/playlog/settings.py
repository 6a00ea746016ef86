"""Typed settings pieces. Services combine the pieces they need and fail fast on load.

Every field is read from the environment variable of the same name (upper case). Secrets
are ``SecretStr`` so they never appear in a repr, a log line or an error message.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from playlog.errors import ConfigurationError, reason

# Values people paste from examples and forget to change. Compared case-insensitively
# after stripping everything but letters and digits.
_PLACEHOLDERS = frozenset(
    {
        "changeme",
        "changethis",
        "replaceme",
        "secret",
        "password",
        "admin",
        "token",
        "example",
        "todo",
        "xxx",
        "xxxx",
        "test",
        "default",
        "none",
        "null",
    }
)
_PLACEHOLDER_PATTERNS = (
    re.compile(r"^<.*>$"),
    re.compile(r"^your[-_ ]"),
    re.compile(r"^\$\{.*\}$"),
)

MIN_ADMIN_TOKEN_LENGTH = 32
# Personal access tokens start with it (playlog.access_tokens.TOKEN_PREFIX).
PERSONAL_TOKEN_PREFIX = "plg_"  # noqa: S105 - a marker, not a secret
MIN_ADMIN_PASSWORD_LENGTH = 12


def is_placeholder(value: str) -> bool:
    """True for values that are obviously not a real secret ("changeme", "<token>" …)."""
    stripped = value.strip()
    folded = re.sub(r"[^a-z0-9]", "", stripped.lower())
    if folded in _PLACEHOLDERS or len(set(folded)) <= 1:
        return True
    return any(pattern.match(stripped.lower()) for pattern in _PLACEHOLDER_PATTERNS)


def _check_secret(name: str, value: SecretStr | None, *, min_length: int) -> SecretStr:
    if value is None or not value.get_secret_value().strip():
        raise ValueError(f"{name} is required")
    raw = value.get_secret_value()
    if is_placeholder(raw):
        raise ValueError(f"{name} is a placeholder value; generate a real secret")
    if len(raw) < min_length:
        raise ValueError(f"{name} must be at least {min_length} characters long")
    return value


class PlaylogSettings(BaseSettings):
    """Common base: environment variables only, unknown variables ignored."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)


class DatabaseSettings(PlaylogSettings):
    database_url: str = Field(
        description="PostgreSQL URL, e.g. postgresql://user:pass@host:5432/playlog"
    )
    database_pool_size: int = Field(default=5, ge=1, le=100)
    database_echo: bool = False

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: str) -> str:
        from playlog.db.engine import normalize_database_url

        return normalize_database_url(value)


class EncryptionSettings(PlaylogSettings):
    token_encryption_key: SecretStr = Field(
        description="Fernet key(s), comma-separated, newest first, for stored Spotify tokens"
    )

    @field_validator("token_encryption_key")
    @classmethod
    def _valid_fernet_keys(cls, value: SecretStr) -> SecretStr:
        from playlog.crypto import parse_fernet_keys

        parse_fernet_keys(value.get_secret_value())
        return value


class AdminAuthSettings(PlaylogSettings):
    """Admin credentials. There is no "off" mode: without credentials a service won't start."""

    admin_auth_mode: Literal["token", "basic"] = "token"
    admin_token: SecretStr | None = None
    admin_username: str | None = None
    admin_password: SecretStr | None = None

    @model_validator(mode="after")
    def _credentials_present(self) -> AdminAuthSettings:
        if self.admin_auth_mode == "token":
            token = _check_secret(
                "ADMIN_TOKEN", self.admin_token, min_length=MIN_ADMIN_TOKEN_LENGTH
            )
            if token.get_secret_value().startswith(PERSONAL_TOKEN_PREFIX):
                # The tools would take it for a personal access token, find none, and
                # refuse it: the admin could use /admin but never a tool.
                raise ValueError(
                    f"ADMIN_TOKEN must not start with {PERSONAL_TOKEN_PREFIX!r}, the mark of "
                    "personal access tokens; generate one with `playlog secrets generate-token`"
                )
        else:
            if not (self.admin_username or "").strip():
                raise ValueError("ADMIN_USERNAME is required when ADMIN_AUTH_MODE=basic")
            if ":" in (self.admin_username or ""):
                raise ValueError("ADMIN_USERNAME must not contain ':'")
            _check_secret(
                "ADMIN_PASSWORD", self.admin_password, min_length=MIN_ADMIN_PASSWORD_LENGTH
            )
        return self


LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class LoggingSettings(PlaylogSettings):
    log_level: LogLevel = "INFO"
    log_format: Literal["json", "text"] = "json"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class DatabaseLogSettings(PlaylogSettings):
    """Log records copied into the ``logs`` table (api and collector)."""

    # Records at or above this level are stored; stdout still gets LOG_LEVEL.
    log_db_level: LogLevel = "INFO"
    # Records waiting to be written; beyond this they are dropped and the drop counted.
    log_db_queue_size: int = Field(default=10_000, ge=100, le=1_000_000)
    # The collector deletes stored records older than this once a day.
    log_retention_days: int = Field(default=30, ge=1, le=3650)

    @field_validator("log_db_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class StorageSettings(PlaylogSettings):
    # Uploaded export ZIPs wait here (one folder per user) until their import ends.
    upload_dir: Path = Path(".data/uploads")


class ImportSettings(PlaylogSettings):
    """Limits of export imports: what a ZIP may be before it is refused."""

    # Size of the ZIP file itself; uploads beyond it are refused while streaming (413).
    import_max_zip_size_mb: int = Field(default=500, ge=1, le=100_000)
    # History records in one import, over all members.
    import_max_records: int = Field(default=5_000_000, ge=1, le=1_000_000_000)
    # Zip-bomb guards, checked against the sizes the archive declares and against the
    # bytes actually inflated.
    import_max_uncompressed_mb: int = Field(default=4096, ge=1, le=1_000_000)
    import_max_compression_ratio: float = Field(default=200.0, ge=1, le=100_000)
    import_max_members: int = Field(default=10_000, ge=1, le=1_000_000)
    # Keep ip_addr, user_agent, username, conn_country and platform (dropped by default).
    import_keep_sensitive_fields: bool = False

    @property
    def import_max_zip_size_bytes(self) -> int:
        return self.import_max_zip_size_mb * 1024 * 1024


class SpotifyAppSettings(PlaylogSettings):
    """The Spotify app as a caller of Spotify (api and collector)."""

    spotify_client_id: str | None = None
    # Optional: without it the app signs in as a public client with PKCE only.
    spotify_client_secret: SecretStr | None = None
    spotify_api_base_url: str = "https://api.spotify.com/v1"
    spotify_accounts_base_url: str = "https://accounts.spotify.com"
    # Longest Retry-After a Spotify call waits out; longer ones reschedule the work.
    spotify_max_retry_after_seconds: float = Field(default=60.0, ge=0, le=3600)
    # App-wide limits per process (Spotify limits per app on a rolling 30 s window).
    spotify_max_concurrent_requests: int = Field(default=8, ge=1, le=256)
    spotify_requests_per_30s: int = Field(default=150, ge=1, le=1_000_000)

    @field_validator("spotify_client_id", "spotify_client_secret", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("spotify_api_base_url", "spotify_accounts_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parsed = urlsplit(value)
        if parsed.scheme not in {"http", "https"} or not parsed.hostname:
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @property
    def spotify_configured(self) -> bool:
        return self.spotify_client_id is not None


class SpotifySettings(SpotifyAppSettings):
    """Signing in with Spotify. Without SPOTIFY_CLIENT_ID sign-in is off (history still works)."""

    spotify_redirect_uri: str = "http://127.0.0.1:8000/auth/callback"
    # Also ask for user-read-email and user-read-private.
    spotify_request_email: bool = False
    # Comma-separated Spotify user ids allowed to sign in; empty allows everyone.
    auth_allowed_spotify_ids: str = ""
    # Signs the sign-in cookie; required once a Spotify app is configured.
    auth_state_secret: SecretStr | None = None

    @field_validator("spotify_redirect_uri")
    @classmethod
    def _spotify_redirect_rule(cls, value: str) -> str:
        parsed = urlsplit(value)
        if parsed.scheme == "https" and parsed.hostname:
            return value
        if parsed.scheme == "http" and parsed.hostname == "localhost":
            raise ValueError(
                "Spotify rejects 'localhost' redirect URIs; use the loopback address, "
                "e.g. http://127.0.0.1:8000/auth/callback"
            )
        if parsed.scheme == "http" and parsed.hostname in {"127.0.0.1", "::1"}:
            return value
        raise ValueError("must be https://…, or http://127.0.0.1:PORT/… for local use")

    @model_validator(mode="after")
    def _state_secret_when_configured(self) -> SpotifySettings:
        if self.spotify_client_id is not None:
            _check_secret("AUTH_STATE_SECRET", self.auth_state_secret, min_length=32)
        return self

    @property
    def allowed_spotify_ids(self) -> frozenset[str]:
        return frozenset(i.strip() for i in self.auth_allowed_spotify_ids.split(",") if i.strip())

    @property
    def spotify_scopes(self) -> str:
        scopes = ["user-read-recently-played", "user-top-read"]
        if self.spotify_request_email:
            scopes += ["user-read-email", "user-read-private"]
        return " ".join(scopes)


S = TypeVar("S", bound=BaseSettings)


def load_settings(settings_cls: type[S]) -> S:
    """Build a settings object, or raise ConfigurationError naming each bad variable.

    Pydantic's own message includes the rejected input, which may be a secret, so the
    message is rebuilt from the field names and reasons only.
    """
    try:
        return settings_cls()
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_input=False, include_url=False):
            location = ".".join(str(part) for part in error["loc"]).upper()
            why = "is required" if error["type"] == "missing" else reason(error)
            problems.append(f"{location}: {why}" if location else why)
        raise ConfigurationError("invalid configuration:\n  " + "\n  ".join(problems)) from None
