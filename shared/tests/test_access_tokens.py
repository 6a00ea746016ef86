"""Personal access tokens: only the hash is stored, and only live tokens authenticate."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from playlog.access_tokens import (
    DISPLAY_PREFIX_LENGTH,
    MAX_ACTIVE_TOKENS,
    MAX_PRESENTED_LENGTH,
    authenticate_token,
    create_token,
    generate_token,
    hash_token,
    list_tokens,
    revoke_token,
)
from playlog.db.engine import create_sessionmaker, db_now
from playlog.db.models import ApiToken, User
from playlog.errors import Conflict, NotFound, ValidationFailed
from playlog.testing.factories import add_user


async def new_user(session: AsyncSession, name: str = "Ada") -> User:
    return await add_user(session, name, authorized_days_ago=None, checkpoint=None)


async def column(session: AsyncSession, token_id: uuid.UUID, name: str) -> Any:
    """A column as stored, read past the session's identity map."""
    statement = text(f"SELECT {name} FROM api_tokens WHERE id = :id")  # noqa: S608 - our names
    return await session.scalar(statement, {"id": token_id})


async def set_column(session: AsyncSession, token_id: uuid.UUID, assignment: str) -> None:
    statement = text(f"UPDATE api_tokens SET {assignment} WHERE id = :id")  # noqa: S608
    await session.execute(statement, {"id": token_id})


def test_generated_tokens_are_plg_and_256_random_bits() -> None:
    tokens = {generate_token() for _ in range(1000)}
    assert len(tokens) == 1000
    for token in tokens:
        assert re.fullmatch(r"plg_[A-Za-z0-9_-]{43}", token), token
        assert len(base64.urlsafe_b64decode(token[4:] + "=")) == 32
    # Every URL-safe base64 character turns up in random text of this length.
    assert len(set("".join(token[4:] for token in tokens))) == 64


def test_hash_is_sha256_hex() -> None:
    token = generate_token()
    assert hash_token(token) == hashlib.sha256(token.encode()).hexdigest()
    assert hash_token(token) != hash_token(token + "x")


async def test_only_the_hash_and_a_prefix_are_stored(db_session: AsyncSession) -> None:
    user = await new_user(db_session)
    issued = await create_token(db_session, user.id, "  claude desktop  ")
    row = await db_session.scalar(
        text("SELECT to_jsonb(t)::text FROM api_tokens t WHERE id = :id"), {"id": issued.token.id}
    )
    assert row is not None
    assert issued.secret not in row
    assert issued.secret[DISPLAY_PREFIX_LENGTH:] not in row
    assert await column(db_session, issued.token.id, "token_hash") == hash_token(issued.secret)
    assert issued.token.prefix == issued.secret[:DISPLAY_PREFIX_LENGTH]
    assert issued.token.name == "claude desktop"
    assert issued.token.user_id == user.id
    assert issued.token.revoked_at is None
    assert issued.token.last_used_at is None


async def test_a_live_token_authenticates_as_its_owner(db_session: AsyncSession) -> None:
    ada, bob = await new_user(db_session), await new_user(db_session, "Bob")
    ada_token = await create_token(db_session, ada.id, "ada")
    bob_token = await create_token(db_session, bob.id, "bob")

    found = await authenticate_token(db_session, ada_token.secret)
    assert found is not None
    assert (found.id, found.user_id) == (ada_token.token.id, ada.id)
    assert found.last_used_at == await db_now(db_session)
    found = await authenticate_token(db_session, bob_token.secret)
    assert found is not None
    assert found.user_id == bob.id


async def test_wrong_tokens_do_not_authenticate(db_session: AsyncSession) -> None:
    user = await new_user(db_session)
    secret = (await create_token(db_session, user.id, "t")).secret
    last = "A" if secret[-1] != "A" else "B"
    for wrong in (generate_token(), secret[:-1] + last, secret[:-1], secret + "A", "", "plg_"):
        assert await authenticate_token(db_session, wrong) is None, wrong
    assert await authenticate_token(db_session, secret) is not None


async def test_revoked_and_expired_tokens_do_not_authenticate(db_session: AsyncSession) -> None:
    user = await new_user(db_session)
    revoked = await create_token(db_session, user.id, "revoked")
    expired = await create_token(
        db_session, user.id, "expired", expires_at=datetime.now(UTC) + timedelta(days=1)
    )
    later = await create_token(
        db_session, user.id, "later", expires_at=datetime.now(UTC) + timedelta(days=1)
    )
    await revoke_token(db_session, user.id, revoked.token.id)
    # Expired at the database's clock, which is the start of the transaction.
    await set_column(db_session, expired.token.id, "expires_at = now()")

    assert await authenticate_token(db_session, revoked.secret) is None
    assert await authenticate_token(db_session, expired.secret) is None
    assert await authenticate_token(db_session, later.secret) is not None
    assert await column(db_session, revoked.token.id, "last_used_at") is None


async def test_foreign_and_overlong_strings_are_refused_before_the_lookup(
    db_session: AsyncSession,
) -> None:
    user = await new_user(db_session)
    # Rows whose hashes match: only the shape checks can refuse these.
    presented = {
        "no prefix": "xyz_" + "a" * 43,
        "too long": "plg_" + "a" * (MAX_PRESENTED_LENGTH - 3),
        "longest": "plg_" + "b" * (MAX_PRESENTED_LENGTH - 4),
    }
    for name, value in presented.items():
        db_session.add(
            ApiToken(user_id=user.id, name=name, token_hash=hash_token(value), prefix=value[:12])
        )
    await db_session.flush()

    assert await authenticate_token(db_session, presented["no prefix"]) is None
    assert await authenticate_token(db_session, presented["too long"]) is None
    for not_ascii in ("plg_\ud800", "plg_é" + "a" * 42):
        assert await authenticate_token(db_session, not_ascii) is None
    longest = await authenticate_token(db_session, presented["longest"])
    assert longest is not None
    assert longest.name == "longest"


async def test_last_used_at_is_written_at_most_once_a_minute(db_session: AsyncSession) -> None:
    user = await new_user(db_session)
    issued = await create_token(db_session, user.id, "t")
    token_id = issued.token.id
    now = await db_now(db_session)

    await authenticate_token(db_session, issued.secret)
    assert await column(db_session, token_id, "last_used_at") == now

    await set_column(db_session, token_id, "last_used_at = now() - interval '59 seconds'")
    found = await authenticate_token(db_session, issued.secret)
    assert found is not None
    assert found.last_used_at == now - timedelta(seconds=59)
    assert await column(db_session, token_id, "last_used_at") == now - timedelta(seconds=59)

    await set_column(db_session, token_id, "last_used_at = now() - interval '61 seconds'")
    found = await authenticate_token(db_session, issued.secret)
    assert found is not None
    assert found.last_used_at == now
    assert await column(db_session, token_id, "last_used_at") == now


async def test_active_tokens_are_capped_per_user(db_session: AsyncSession) -> None:
    user, other = await new_user(db_session), await new_user(db_session, "Bob")
    tokens = [await create_token(db_session, user.id, f"t{n}") for n in range(MAX_ACTIVE_TOKENS)]
    with pytest.raises(Conflict, match=f"already has {MAX_ACTIVE_TOKENS} active tokens"):
        await create_token(db_session, user.id, "one too many")
    await create_token(db_session, other.id, "someone else's")

    await revoke_token(db_session, user.id, tokens[0].token.id)
    await create_token(db_session, user.id, "in place of a revoked one")
    with pytest.raises(Conflict):
        await create_token(db_session, user.id, "one too many")
    # An expired token cannot be used either, so it does not count.
    await set_column(db_session, tokens[1].token.id, "expires_at = now()")
    await create_token(db_session, user.id, "in place of an expired one")


@pytest.mark.parametrize("name", ["", "   ", "x" * 101, "two\nlines", "tab\there"])
async def test_bad_names_are_refused(db_session: AsyncSession, name: str) -> None:
    user = await new_user(db_session)
    with pytest.raises(ValidationFailed, match="token name"):
        await create_token(db_session, user.id, name)
    assert await list_tokens(db_session, user.id) == []


async def test_names_are_trimmed_and_may_be_100_characters(db_session: AsyncSession) -> None:
    user = await new_user(db_session)
    issued = await create_token(db_session, user.id, " " + "x" * 100 + " ")
    assert issued.token.name == "x" * 100


async def test_expiry_must_be_aware_and_in_the_future(db_session: AsyncSession) -> None:
    user = await new_user(db_session)
    now = await db_now(db_session)
    with pytest.raises(ValidationFailed, match="time zone"):
        await create_token(db_session, user.id, "t", expires_at=datetime(2099, 1, 1))
    with pytest.raises(ValidationFailed, match="in the future"):
        await create_token(db_session, user.id, "t", expires_at=now)
    issued = await create_token(db_session, user.id, "t", expires_at=now + timedelta(minutes=5))
    assert issued.token.expires_at == now + timedelta(minutes=5)


async def test_unknown_user(db_session: AsyncSession) -> None:
    missing = uuid.uuid4()
    with pytest.raises(NotFound, match=f"no user with id {missing}"):
        await create_token(db_session, missing, "t")
    with pytest.raises(NotFound, match=f"no user with id {missing}"):
        await list_tokens(db_session, missing)
    with pytest.raises(NotFound, match=f"no user with id {missing}"):
        await revoke_token(db_session, missing, uuid.uuid4())


async def test_list_is_newest_first_with_revoked_ones(db_session: AsyncSession) -> None:
    user, other = await new_user(db_session), await new_user(db_session, "Bob")
    first = await create_token(db_session, user.id, "first")
    second = await create_token(db_session, user.id, "second")
    await create_token(db_session, other.id, "not theirs")
    await set_column(db_session, first.token.id, "created_at = now() - interval '1 day'")
    await revoke_token(db_session, user.id, second.token.id)

    listed = await list_tokens(db_session, user.id)
    assert [row.token.name for row in listed] == ["second", "first"]
    assert listed[0].token.revoked_at is not None
    assert [row.active for row in listed] == [False, True]


async def test_revoking_is_idempotent_and_only_for_the_owner(db_session: AsyncSession) -> None:
    ada, bob = await new_user(db_session), await new_user(db_session, "Bob")
    issued = await create_token(db_session, ada.id, "t")

    with pytest.raises(NotFound, match="has no token"):
        await revoke_token(db_session, bob.id, issued.token.id)
    with pytest.raises(NotFound, match="has no token"):
        await revoke_token(db_session, ada.id, uuid.uuid4())
    assert await authenticate_token(db_session, issued.secret) is not None

    revoked = await revoke_token(db_session, ada.id, issued.token.id)
    assert revoked.revoked_at == await db_now(db_session)
    await set_column(db_session, issued.token.id, "revoked_at = now() - interval '1 hour'")
    again = await revoke_token(db_session, ada.id, issued.token.id)
    assert again.revoked_at == await db_now(db_session) - timedelta(hours=1)


async def test_concurrent_creations_cannot_both_pass_the_cap(db_engine: AsyncEngine) -> None:
    sessionmaker = create_sessionmaker(db_engine)
    async with sessionmaker.begin() as session:
        user_id = (await new_user(session, "Concurrent")).id
        for n in range(MAX_ACTIVE_TOKENS - 1):
            await create_token(session, user_id, f"t{n}")
    try:
        async with sessionmaker() as first, sessionmaker() as second:
            await create_token(first, user_id, "first")  # the last free place, uncommitted
            second_pid = await second.scalar(text("SELECT pg_backend_pid()"))
            racing = asyncio.create_task(create_token(second, user_id, "second"))
            # Let the second creation run until it finishes or waits for the first.
            while not racing.done():
                async with db_engine.connect() as watcher:
                    waiting = await watcher.scalar(
                        text(
                            "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = :p"
                        ),
                        {"p": second_pid},
                    )
                if waiting:
                    break
                await asyncio.sleep(0.01)
            await first.commit()
            with pytest.raises(Conflict):
                await racing
    finally:
        async with db_engine.begin() as connection:
            await connection.execute(text("DELETE FROM users WHERE id = :id"), {"id": user_id})
