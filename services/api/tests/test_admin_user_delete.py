"""DELETE /admin/users/{id}: every row of the user, their logs and uploads; nothing else."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from playlog.db.models import ApiToken, Base, ImportedMember, OAuthClient, OAuthGrant, Track, User
from playlog.testing.factories import (
    add_gap,
    add_import_job,
    add_job_run,
    add_log,
    add_plays,
    add_user,
)
from playlog_api.admin.logs import of_user

# The user_id column of every table that belongs to a user, read from the models, so a
# new table of the user is checked without being listed here.
USER_COLUMNS = {
    table.name: table.c.user_id for table in Base.metadata.sorted_tables if "user_id" in table.c
}


async def owned(session: AsyncSession, user_id: uuid.UUID) -> dict[str, int]:
    """Rows per user table that belong to ``user_id``, and their log records."""
    counts = {
        table: await session.scalar(select(func.count()).where(column == user_id)) or 0
        for table, column in USER_COLUMNS.items()
    }
    counts["logs"] = await session.scalar(select(func.count()).where(of_user(user_id))) or 0
    return counts


async def add_everything(session: AsyncSession, name: str) -> User:
    user = await add_user(session, name, checkpoint="polling")
    session.add(ApiToken(user_id=user.id, name="claude", token_hash=uuid.uuid4().hex, prefix="p"))
    start = datetime(2025, 1, 1, tzinfo=UTC)
    await add_job_run(session, user.id)
    await add_gap(session, user.id, start, start + timedelta(hours=2))
    await add_plays(session, user.id, 2)
    await add_log(session, f"polled {name}", user_id=user.id)
    session.add(
        ImportedMember(
            user_id=user.id,
            digest=uuid.uuid4().hex,
            crc32=1,
            size_bytes=2,
            name="a.json",
            format="extended",
            report={},
        )
    )
    # A connector the user allowed, whose code was not exchanged yet.
    session.add(OAuthClient(client_id=f"connector-{name}", registration={}))
    await session.flush()
    session.add(
        OAuthGrant(
            request_hash=uuid.uuid4().hex,
            client_id=f"connector-{name}",
            request={},
            user_id=user.id,
            expires_at=start,
        )
    )
    return user


async def test_delete_removes_every_row_of_the_user_and_nothing_else(
    client: httpx.AsyncClient, db_session: AsyncSession, admin: dict[str, str]
) -> None:
    user = await add_everything(db_session, "Gone")
    other = await add_everything(db_session, "Stays")
    await add_import_job(db_session, user.id)
    await add_import_job(db_session, other.id)
    track_id = (await add_plays(db_session, user.id, 1)).track_id
    await db_session.commit()
    user_id, other_id = user.id, other.id
    assert all((await owned(db_session, user_id)).values())  # every table has a row to delete
    others = await owned(db_session, other_id)

    response = await client.delete(f"/admin/users/{user_id}", headers=admin)

    assert response.status_code == 204
    assert response.content == b""
    db_session.expire_all()
    assert await db_session.get(User, user_id) is None
    assert set((await owned(db_session, user_id)).values()) == {0}
    assert await owned(db_session, other_id) == others
    assert await db_session.get(Track, track_id) is not None  # the catalogue stays
    again = await client.delete(f"/admin/users/{user_id}", headers=admin)
    assert again.status_code == 404


@dataclass
class Uploads:
    """Files around the upload dir; ``referenced`` are the storage paths of the user's
    imports, ``other_file`` is the one of another user's import."""

    root: Path
    own_folder: Path
    shared_place: Path
    link_inside: Path
    outside: Path
    other_file: Path
    referenced: list[Path]


def lay_out(root: Path, user_id: uuid.UUID, other_id: uuid.UUID) -> Uploads:
    outside = root.parent / "outside"
    outside.mkdir()
    for name in ("secret.zip", "linked.zip"):
        (outside / name).write_bytes(b"keep me")
    own = root / str(user_id)
    (own / "nested").mkdir(parents=True)
    (own / "export.zip").write_bytes(b"zip")
    (own / "nested" / "part.zip").write_bytes(b"zip")
    (own / "escape").symlink_to(outside)  # a link inside the folder to outside
    shared_place = root / "incoming" / "export-of-user.zip"
    shared_place.parent.mkdir()
    shared_place.write_bytes(b"zip")
    link_inside = root / "link.zip"
    link_inside.symlink_to(outside / "linked.zip")
    other_file = root / str(other_id) / "theirs.zip"
    other_file.parent.mkdir()
    other_file.write_bytes(b"zip")
    referenced = [
        shared_place,
        link_inside,
        outside / "secret.zip",  # outside the upload dir: never removed
        root / ".." / "outside" / "secret.zip",
        own / "escape" / "secret.zip",  # through a link out of the upload dir
        root,  # the upload dir itself
    ]
    return Uploads(root, own, shared_place, link_inside, outside, other_file, referenced)


def assert_only_the_users_uploads_went(uploads: Uploads) -> None:
    assert not uploads.own_folder.exists()
    assert not uploads.shared_place.exists()
    assert not uploads.link_inside.is_symlink()
    assert (uploads.outside / "linked.zip").read_bytes() == b"keep me"
    assert (uploads.outside / "secret.zip").read_bytes() == b"keep me"
    assert uploads.other_file.read_bytes() == b"zip"
    assert uploads.root.is_dir()


async def test_delete_removes_uploads_inside_the_upload_dir_only(
    client: httpx.AsyncClient,
    db_session: AsyncSession,
    admin: dict[str, str],
    uploads: Path,
) -> None:
    user = await add_user(db_session)
    other = await add_user(db_session, "Other")
    layout = lay_out(uploads, user.id, other.id)
    for path in layout.referenced:
        await add_import_job(db_session, user.id, storage_path=str(path))
    await add_import_job(db_session, other.id, storage_path=str(layout.other_file))
    await db_session.commit()

    response = await client.delete(f"/admin/users/{user.id}", headers=admin)

    assert response.status_code == 204
    assert_only_the_users_uploads_went(layout)


async def test_delete_without_uploads_works(
    client: httpx.AsyncClient, db_session: AsyncSession, admin: dict[str, str]
) -> None:
    user = await add_user(db_session)
    await add_import_job(db_session, user.id, storage_path="/nonexistent/file.zip")
    await db_session.commit()
    user_id = user.id
    response = await client.delete(f"/admin/users/{user_id}", headers=admin)
    assert response.status_code == 204
    db_session.expire_all()
    assert await db_session.get(User, user_id) is None
