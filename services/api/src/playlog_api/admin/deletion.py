"""Deleting a user for good: database rows, stored log records and uploaded files.

Uploaded export ZIPs hold IP addresses, so they go with the user. Only paths inside
UPLOAD_DIR are ever removed, and no symbolic link is followed out of it; cancelling an
import removes its upload the same way.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from playlog.db.models import ImportJob, LogRecord, User
from playlog.exports.storage import remove_upload_files
from playlog_api.admin.logs import of_user

log = logging.getLogger(__name__)


async def delete_user(session: AsyncSession, user: User, upload_dir: Path) -> None:
    """Delete the user's rows, then their files; the caller commits.

    The rows go first (flushed, not committed): if removing a file fails, the request
    fails and rolls back, and deleting again finishes the job. Every table with a
    ``user_id`` follows the user: by ``ON DELETE CASCADE``, or for plays and their running
    totals by a trigger (migration 0005). Log records only carry the id in their
    context, so they are deleted here.
    """
    storage_paths = await session.scalars(
        select(ImportJob.storage_path).where(
            ImportJob.user_id == user.id, ImportJob.storage_path.is_not(None)
        )
    )
    paths = [path for path in storage_paths if path]
    await session.execute(delete(LogRecord).where(of_user(user.id)))
    await session.delete(user)
    await session.flush()
    removed = await asyncio.to_thread(remove_uploads, upload_dir, user.id, paths)
    # No user_id in the context: this record is the trace of the deletion and stays.
    log.info("deleted user %s and %d uploaded file(s) or folder(s)", user.id, removed)


def remove_uploads(upload_dir: Path, user_id: uuid.UUID, storage_paths: Iterable[str]) -> int:
    """Remove the user's upload folder and their imports' files that lie inside
    ``upload_dir``; return how many paths were removed."""
    root = upload_dir.resolve()
    removed = remove_upload_files(root, storage_paths)
    folder = root / str(user_id)
    if folder.is_symlink():
        folder.unlink()
        removed += 1
    elif folder.is_dir():
        # rmtree removes links inside the folder without following them.
        shutil.rmtree(folder)
        removed += 1
    return removed
