"""Log lines are JSON with context, and credentials in URLs are redacted."""

from __future__ import annotations

import json
import logging

import pytest

from playlog.logging import JsonFormatter, RedactingFilter, redact


def test_oauth_query_values_are_redacted() -> None:
    line = '127.0.0.1 - "GET /auth/callback?code=AQBxyz-secret&state=s3cr3t HTTP/1.1" 200'
    assert redact(line) == (
        '127.0.0.1 - "GET /auth/callback?code=[redacted]&state=[redacted] HTTP/1.1" 200'
    )
    assert redact("refresh_token=abc access_token=def") == (
        "refresh_token=[redacted] access_token=[redacted]"
    )
    assert redact("GET /v1/me/player/recently-played?limit=50") == (
        "GET /v1/me/player/recently-played?limit=50"
    )


def test_records_are_json_with_context_and_redacted(caplog: pytest.LogCaptureFixture) -> None:
    record = logging.makeLogRecord(
        {
            "name": "uvicorn.access",
            "levelname": "INFO",
            "levelno": logging.INFO,
            "msg": '%s - "GET %s HTTP/1.1" %d',
            "args": ("127.0.0.1", "/auth/callback?code=AQB-secret&state=xyz", 200),
            "user_id": "u-1",
        }
    )
    assert RedactingFilter().filter(record)
    line = json.loads(JsonFormatter("api").format(record))
    assert line["service"] == "api"
    assert line["level"] == "INFO"
    assert line["user_id"] == "u-1"
    assert "AQB-secret" not in line["message"]
    assert "code=[redacted]" in line["message"]
