"""Settings fail fast with messages that name the variable and never echo a secret."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from playlog.errors import ConfigurationError
from playlog.settings import (
    AdminAuthSettings,
    DatabaseSettings,
    EncryptionSettings,
    is_placeholder,
    load_settings,
)

GOOD_TOKEN = "t0k3n-" + "a1b2c3d4" * 5


def test_missing_admin_token_is_a_startup_error() -> None:
    with pytest.raises(ConfigurationError, match="ADMIN_TOKEN is required"):
        load_settings(AdminAuthSettings)


@pytest.mark.parametrize(
    "value", ["changeme", "CHANGE-ME", "<admin-token>", "your-token-here", "x" * 40]
)
def test_placeholder_admin_token_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("ADMIN_TOKEN", value)
    with pytest.raises(ConfigurationError, match="ADMIN_TOKEN is a placeholder") as caught:
        load_settings(AdminAuthSettings)
    assert value not in str(caught.value)


def test_short_admin_token_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_TOKEN", "s3cr3t-but-short")
    with pytest.raises(ConfigurationError, match="at least 32 characters") as caught:
        load_settings(AdminAuthSettings)
    assert "s3cr3t-but-short" not in str(caught.value)


def test_admin_token_shaped_like_a_personal_token_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The tools read "Bearer plg_…" as a personal access token: such an admin token would
    # open /admin and be refused by every tool.
    value = "plg_" + "a1b2c3d4" * 5
    monkeypatch.setenv("ADMIN_TOKEN", value)
    with pytest.raises(ConfigurationError, match="must not start with 'plg_'") as caught:
        load_settings(AdminAuthSettings)
    assert value not in str(caught.value)


def test_token_mode_accepts_a_real_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_TOKEN", GOOD_TOKEN)
    settings = load_settings(AdminAuthSettings)
    assert settings.admin_auth_mode == "token"
    assert settings.admin_token is not None
    assert settings.admin_token.get_secret_value() == GOOD_TOKEN
    assert GOOD_TOKEN not in repr(settings)


def test_basic_mode_needs_username_and_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_AUTH_MODE", "basic")
    with pytest.raises(ConfigurationError, match="ADMIN_USERNAME is required"):
        load_settings(AdminAuthSettings)
    monkeypatch.setenv("ADMIN_USERNAME", "ops")
    with pytest.raises(ConfigurationError, match="ADMIN_PASSWORD is required"):
        load_settings(AdminAuthSettings)
    monkeypatch.setenv("ADMIN_PASSWORD", "password")
    with pytest.raises(ConfigurationError, match="ADMIN_PASSWORD is a placeholder"):
        load_settings(AdminAuthSettings)
    monkeypatch.setenv("ADMIN_PASSWORD", "correct horse battery")
    settings = load_settings(AdminAuthSettings)
    assert settings.admin_username == "ops"


def test_unknown_auth_mode_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_AUTH_MODE", "none")
    monkeypatch.setenv("ADMIN_TOKEN", GOOD_TOKEN)
    with pytest.raises(ConfigurationError, match="ADMIN_AUTH_MODE"):
        load_settings(AdminAuthSettings)


def test_invalid_fernet_key_is_refused_without_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    bad = "not-a-fernet-key-but-long-enough-to-look-real"
    monkeypatch.setenv("TOKEN_ENCRYPTION_KEY", bad)
    with pytest.raises(ConfigurationError, match="key 1 is not a valid Fernet key") as caught:
        load_settings(EncryptionSettings)
    assert bad not in str(caught.value)


def test_second_rotation_key_is_checked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    good = Fernet.generate_key().decode()
    monkeypatch.setenv("TOKEN_ENCRYPTION_KEY", f"{good},garbage")
    with pytest.raises(ConfigurationError, match="key 2 is not a valid Fernet key"):
        load_settings(EncryptionSettings)
    monkeypatch.setenv("TOKEN_ENCRYPTION_KEY", f"{good},")
    with pytest.raises(ConfigurationError, match="empty key at position 2"):
        load_settings(EncryptionSettings)


def test_missing_encryption_key_is_a_startup_error() -> None:
    with pytest.raises(ConfigurationError, match="TOKEN_ENCRYPTION_KEY: is required"):
        load_settings(EncryptionSettings)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://root@localhost/playlog", "must be a PostgreSQL URL"),
        ("sqlite:///playlog.db", "must be a PostgreSQL URL"),
        ("not a url", "not a valid database URL"),
        ("postgresql://user@localhost", "must name a database"),
    ],
)
def test_database_url_must_be_postgres(
    monkeypatch: pytest.MonkeyPatch, url: str, message: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    with pytest.raises(ConfigurationError, match=message):
        load_settings(DatabaseSettings)


def test_database_url_gets_the_async_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@db:5432/playlog")
    assert load_settings(DatabaseSettings).database_url == (
        "postgresql+asyncpg://u:p@db:5432/playlog"
    )


def test_every_problem_is_listed_at_once() -> None:
    class Combined(DatabaseSettings, EncryptionSettings, AdminAuthSettings):
        pass

    with pytest.raises(ConfigurationError) as caught:
        load_settings(Combined)
    message = str(caught.value)
    assert "DATABASE_URL: is required" in message
    assert "TOKEN_ENCRYPTION_KEY: is required" in message


@pytest.mark.parametrize(
    ("value", "expected"),
    [("changeme", True), ("${ADMIN_TOKEN}", True), ("aaaaaaaa", True), (GOOD_TOKEN, False)],
)
def test_placeholder_detection(value: str, expected: bool) -> None:
    assert is_placeholder(value) is expected
