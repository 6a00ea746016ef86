"""Typed settings pieces. Services combine the pieces they need and fail fast on load.

Every field is read from the environment variable of the same name (upper case). Secrets
are ``SecretStr`` so they never appear in a repr, a log line or an error message.
"""

from __future__ import annotations

import re
from typing import Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from playlog.errors import ConfigurationError

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
            _check_secret("ADMIN_TOKEN", self.admin_token, min_length=MIN_ADMIN_TOKEN_LENGTH)
        else:
            if not (self.admin_username or "").strip():
                raise ValueError("ADMIN_USERNAME is required when ADMIN_AUTH_MODE=basic")
            if ":" in (self.admin_username or ""):
                raise ValueError("ADMIN_USERNAME must not contain ':'")
            _check_secret(
                "ADMIN_PASSWORD", self.admin_password, min_length=MIN_ADMIN_PASSWORD_LENGTH
            )
        return self


class LoggingSettings(PlaylogSettings):
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


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
            reason = error["msg"].removeprefix("Value error, ")
            if error["type"] == "missing":
                reason = "is required"
            problems.append(f"{location}: {reason}" if location else reason)
        raise ConfigurationError("invalid configuration:\n  " + "\n  ".join(problems)) from None
