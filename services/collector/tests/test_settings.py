"""Collector settings: defaults of the brief, and combinations that cannot work."""

from __future__ import annotations

import pytest

from playlog.errors import ConfigurationError
from playlog.settings import load_settings
from playlog_collector.settings import CollectorSettings


@pytest.fixture
def base_env(monkeypatch: pytest.MonkeyPatch, encryption_key: str) -> pytest.MonkeyPatch:
    monkeypatch.setenv("DATABASE_URL", "postgresql://playlog@127.0.0.1/playlog")
    monkeypatch.setenv("TOKEN_ENCRYPTION_KEY", encryption_key)
    return monkeypatch


def test_defaults_follow_the_brief(base_env: pytest.MonkeyPatch) -> None:
    settings = load_settings(CollectorSettings)
    assert settings.collector_interval_seconds == 600
    assert settings.initial_sync_enabled is True
    assert settings.initial_sync_max_days == 30
    assert settings.initial_sync_max_requests == 200
    assert settings.initial_sync_stop_on_no_progress is True
    assert settings.initial_sync_concurrency == 2
    assert settings.log_retention_days == 30
    assert settings.spotify_configured is False


def test_a_lease_shorter_than_a_rate_limit_wait_is_refused(base_env: pytest.MonkeyPatch) -> None:
    base_env.setenv("COLLECTOR_LEASE_SECONDS", "30")
    base_env.setenv("SPOTIFY_MAX_RETRY_AFTER_SECONDS", "60")
    with pytest.raises(ConfigurationError, match="COLLECTOR_LEASE_SECONDS must exceed"):
        load_settings(CollectorSettings)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("COLLECTOR_INTERVAL_SECONDS", "0"),
        ("COLLECTOR_CONCURRENCY", "0"),
        ("INITIAL_SYNC_MAX_DAYS", "-1"),
        ("INITIAL_SYNC_MAX_REQUESTS", "lots"),
        ("INITIAL_SYNC_ENABLED", "perhaps"),
        ("SPOTIFY_REQUESTS_PER_30S", "0"),
        ("LOG_RETENTION_DAYS", "0"),
    ],
)
def test_bad_values_name_the_variable(base_env: pytest.MonkeyPatch, name: str, value: str) -> None:
    base_env.setenv(name, value)
    with pytest.raises(ConfigurationError, match=name):
        load_settings(CollectorSettings)
