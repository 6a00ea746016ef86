"""Log lines are JSON with context, and credentials in URLs are redacted."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Iterator, Mapping

import pytest

from playlog.logging import (
    LOGGED_MARK,
    AlreadyLoggedFilter,
    JsonFormatter,
    RedactingFilter,
    configure_logging,
    current_log_context,
    install_filters,
    log_context,
    redact,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # OAuth query values (a callback's query string ends up in the access log).
        (
            '127.0.0.1 - "GET /auth/callback?code=AQBxyz-secret&state=s3cr3t HTTP/1.1" 200',
            '127.0.0.1 - "GET /auth/callback?code=[redacted]&state=[redacted] HTTP/1.1" 200',
        ),
        ("refresh_token=abc access_token=def", "refresh_token=[redacted] access_token=[redacted]"),
        # The consent page's request id answers a pending sign-in for ten minutes.
        (
            '"GET /oauth/consent?request=4lCr-Xy_9 HTTP/1.1" 200',
            '"GET /oauth/consent?request=[redacted] HTTP/1.1" 200',
        ),
        # Tokens as JSON members, in Authorization values, and personal tokens anywhere.
        (
            '{"access_token": "BQD\\"x", "token_type": "Bearer", "refresh_token":"AQ-1"}',
            '{"access_token": "[redacted]", "token_type": "Bearer", "refresh_token":"[redacted]"}',
        ),
        ("Authorization: Bearer BQDk.3-x_y/z+= sent", "Authorization: Bearer [redacted] sent"),
        ("authorization: basic Y2xpZW50OnNlY3JldA==", "authorization: basic [redacted]"),
        ("rejected plg_Abc-12_xyz.", "rejected [redacted]."),
        # Words that only look alike stay.
        ("a bad_request=1", "a bad_request=1"),
        (
            "GET /v1/me/player/recently-played?limit=50",
            "GET /v1/me/player/recently-played?limit=50",
        ),
        (
            '{"token_type": "Bearer"} a plg-file, Bearer.',
            '{"token_type": "Bearer"} a plg-file, Bearer.',
        ),
    ],
)
def test_credentials_are_redacted_and_look_alikes_kept(text: str, expected: str) -> None:
    assert redact(text) == expected


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


def test_context_fields_and_tracebacks_are_redacted_too() -> None:
    try:
        raise RuntimeError("refresh failed for token=SECRET2")
    except RuntimeError:
        record = logging.makeLogRecord(
            {
                "msg": "callback failed",
                "exc_info": sys.exc_info(),
                "url": "/auth/callback?code=SECRET1",
                "attempts": [{"next": "?state=SECRET3"}],
            }
        )
    with log_context(request_id="r-1", link="?access_token=SECRET4"):
        handler = logging.StreamHandler()
        install_filters(handler)
        assert handler.filter(record)
    line = JsonFormatter("api").format(record)
    for secret in ("SECRET1", "SECRET2", "SECRET3", "SECRET4"):
        assert secret not in line
    entry = json.loads(line)
    assert entry["url"] == "/auth/callback?code=[redacted]"
    assert entry["request_id"] == "r-1"
    assert "token=[redacted]" in entry["exception"]


def test_the_servers_second_report_of_a_logged_error_is_dropped() -> None:
    server_filter = AlreadyLoggedFilter()
    logged, unlogged = RuntimeError("handled"), RuntimeError("not handled")
    setattr(logged, LOGGED_MARK, True)

    def record_of(error: Exception) -> logging.LogRecord:
        return logging.getLogger("uvicorn.error").makeRecord(
            "uvicorn.error",
            logging.ERROR,
            __file__,
            1,
            "Exception in ASGI application",
            (),
            (type(error), error, None),
        )

    assert not server_filter.filter(record_of(logged))
    assert server_filter.filter(record_of(unlogged))


def test_log_context_nests_merges_and_restores() -> None:
    assert current_log_context() == {}
    with log_context(user_id="u-1", job_run_id=1):
        with log_context(job_run_id=2, request_id="r-1"):
            assert current_log_context() == {"user_id": "u-1", "job_run_id": 2, "request_id": "r-1"}
            with log_context(user_id=None):
                # None leaves a field out for the block.
                assert current_log_context() == {"job_run_id": 2, "request_id": "r-1"}
        assert current_log_context() == {"user_id": "u-1", "job_run_id": 1}
    assert current_log_context() == {}


def test_log_context_refuses_record_attributes() -> None:
    with pytest.raises(ValueError, match="message, name"), log_context(name="x", message="y"):
        pass


@pytest.fixture
def restored_root_logger() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


def test_stdout_lines_carry_the_context(
    restored_root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("api", "INFO", "json")
    log = logging.getLogger("playlog.tests.logging")
    with log_context(request_id="r-9", user_id="u-1"):
        log.info("with context", extra={"user_id": "u-2"})
    log.info("without")

    with_context, without = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    # extra= is more specific than the surrounding context, so it wins.
    assert (with_context["request_id"], with_context["user_id"]) == ("r-9", "u-2")
    assert "request_id" not in without


async def test_context_is_copied_into_tasks() -> None:
    async def inner() -> Mapping[str, object]:
        return current_log_context()

    with log_context(job_run_id="run-1"):
        task = asyncio.create_task(inner())
    # The task started inside the block keeps that context after the block ended.
    assert await task == {"job_run_id": "run-1"}
