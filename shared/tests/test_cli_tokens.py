"""``playlog tokens``: create, list and revoke personal access tokens from the command line."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from playlog.access_tokens import authenticate_token, create_token, hash_token, revoke_token
from playlog.db.engine import create_sessionmaker
from playlog.db.models import ApiToken
from playlog.testing.processes import run_playlog


async def authenticate(engine: AsyncEngine, secret: str) -> ApiToken | None:
    async with create_sessionmaker(engine).begin() as session:
        return await authenticate_token(session, secret)


async def test_create_prints_a_working_token(
    database_url: str, db_engine: AsyncEngine, user: str
) -> None:
    result = run_playlog(database_url, "tokens", "create", "--user", user, "--name", "Claude")
    assert result.returncode == 0, result.stderr
    [secret] = result.stdout.splitlines()
    assert secret.startswith("plg_")
    assert "shown only this once" in result.stderr
    found = await authenticate(db_engine, secret)
    assert found is not None
    assert (str(found.user_id), found.name) == (user, "Claude")
    assert str(found.id) in result.stderr


async def test_create_json_list_and_revoke(
    database_url: str, db_engine: AsyncEngine, user: str
) -> None:
    created = run_playlog(database_url, "tokens", "create", "--user", user, "--json")
    assert created.returncode == 0, created.stderr
    body = json.loads(created.stdout)
    assert set(body) == {"id", "name", "prefix", "token"}
    assert body["name"] == "cli"
    assert body["prefix"] == body["token"][:12]
    other = run_playlog(database_url, "tokens", "create", "--user", user, "--name", "other")
    assert other.returncode == 0, other.stderr

    listed = run_playlog(database_url, "tokens", "list", "--user", user, "--json")
    assert listed.returncode == 0, listed.stderr
    assert body["token"] not in listed.stdout
    assert hash_token(body["token"]) not in listed.stdout
    rows = {row["id"]: row for row in json.loads(listed.stdout)}
    other_token = await authenticate(db_engine, other.stdout.strip())
    assert other_token is not None
    assert set(rows) == {body["id"], str(other_token.id)}
    assert rows[body["id"]]["status"] == "active"
    assert rows[body["id"]]["prefix"] == body["prefix"]

    revoked = run_playlog(database_url, "tokens", "revoke", "--user", user, body["id"])
    assert revoked.returncode == 0, revoked.stderr
    assert body["id"] in revoked.stdout
    assert await authenticate(db_engine, body["token"]) is None
    assert await authenticate(db_engine, other.stdout.strip()) is not None

    plain = run_playlog(database_url, "tokens", "list", "--user", user)
    assert plain.returncode == 0, plain.stderr
    lines = {line.split()[0]: line for line in plain.stdout.splitlines()}
    assert set(lines) == set(rows)
    assert " revoked " in lines[body["id"]]
    assert body["prefix"] in lines[body["id"]]
    again = run_playlog(database_url, "tokens", "revoke", "--user", user, body["id"])
    assert again.returncode == 0, again.stderr


async def test_a_token_issued_for_a_revoked_parent_is_listed_as_ended(
    database_url: str, db_engine: AsyncEngine, user: str
) -> None:
    async with create_sessionmaker(db_engine).begin() as session:
        parent = await create_token(session, uuid.UUID(user), "signed in with")
        child = await create_token(
            session, uuid.UUID(user), "Chat (OAuth)", parent_id=parent.token.id
        )
        await revoke_token(session, uuid.UUID(user), parent.token.id)
    listed = run_playlog(database_url, "tokens", "list", "--user", user, "--json")
    assert listed.returncode == 0, listed.stderr
    statuses = {row["name"]: row["status"] for row in json.loads(listed.stdout)}
    assert statuses == {"signed in with": "revoked", "Chat (OAuth)": "ended"}
    assert await authenticate(db_engine, child.secret) is None


UNKNOWN = "00000000-0000-0000-0000-000000000000"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "--user", "someone"], "--user must be an id"),
        (["create", "--user", UNKNOWN], f"no user with id {UNKNOWN}"),
        (["create", "--user", "{user}", "--name", " "], "token name must not be empty"),
        (["list", "--user", "someone"], "--user must be an id"),
        (["list", "--user", UNKNOWN], f"no user with id {UNKNOWN}"),
        (["revoke", "--user", UNKNOWN, UNKNOWN], f"no user with id {UNKNOWN}"),
        (["revoke", "--user", "{user}", UNKNOWN], f"has no token with id {UNKNOWN}"),
        (["revoke", "--user", "{user}", "token"], "TOKEN_ID must be an id"),
    ],
)
def test_bad_input_is_one_line_and_a_failing_exit_code(
    database_url: str, user: str, args: list[str], message: str
) -> None:
    result = run_playlog(database_url, "tokens", *(arg.format(user=user) for arg in args))
    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr.startswith("playlog: error: ")
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
