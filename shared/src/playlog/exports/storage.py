"""Where uploaded export ZIPs wait for their import, how a ZIP file starts, and removing
uploads safely.

Paths of uploads come from the database; only those inside UPLOAD_DIR are ever removed,
and no symbolic link is followed out of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

# Every ZIP with at least one member starts with a local file header; one without any
# is only its end record.
ZIP_SIGNATURE = b"PK\x03\x04"
EMPTY_ZIP_SIGNATURE = b"PK\x05\x06"
EMPTY_ZIP_REFUSAL = "the ZIP is empty: it holds no files, so no Spotify streaming history"
_UPLOAD_SUFFIX = ".zip"
_PART_SUFFIX = ".part"
# An upload file that no pending or running job reads and that has not changed for this
# long is left over (an upload cut off by a crash, a job whose end did not delete it).
LEFTOVER_AFTER_S = 3600.0


def upload_path(upload_dir: Path, user_id: uuid.UUID, job_id: uuid.UUID) -> Path:
    """The file an import job reads: one folder per user, one file per job."""
    return upload_dir / str(user_id) / f"{job_id}{_UPLOAD_SUFFIX}"


def part_path(path: Path) -> Path:
    """Where the upload for ``path`` is written; it gets its final name once complete."""
    return path.with_name(path.name + _PART_SUFFIX)


def remove_upload_files(upload_dir: Path, storage_paths: Iterable[str | None]) -> int:
    """Remove the files at ``storage_paths`` that lie inside ``upload_dir``; return how
    many were removed. Paths outside it (and None) are left alone. A file that cannot be
    removed (permissions, a read-only disk) is logged and the others still go: whatever
    owned it has ended either way."""
    root = upload_dir.resolve()
    removed = 0
    for path in storage_paths:
        target = inside(root, Path(path)) if path else None
        # unlink() removes a symbolic link itself, never what it points to.
        if target is not None and (target.is_symlink() or target.is_file()):
            try:
                target.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("could not delete an import upload: %s", type(exc).__name__)
                continue
            removed += 1
    return removed


async def delete_upload(upload_dir: Path, path: str | None) -> None:
    """Remove one upload as :func:`remove_upload_files` does, off the event loop."""
    await asyncio.to_thread(remove_upload_files, upload_dir, [path])


def remove_leftover_uploads(upload_dir: Path, live: Iterable[str]) -> int:
    """Remove the upload files (``<user>/<job>.zip`` and ``.zip.part``) that no path in
    ``live`` names and that have not changed for LEFTOVER_AFTER_S; return how many went.
    A file still being written, or just renamed into place for a job about to be
    committed, is recent and stays. Removal is :func:`remove_upload_files`'s, so a
    folder that links out of UPLOAD_DIR is not followed."""
    root = upload_dir.resolve()
    if not root.is_dir():
        return 0
    kept = {target for path in live if (target := inside(root, Path(path))) is not None}
    cutoff = time.time() - LEFTOVER_AFTER_S
    doomed = []
    for pattern in (f"*/*{_UPLOAD_SUFFIX}", f"*/*{_UPLOAD_SUFFIX}{_PART_SUFFIX}"):
        for path in root.glob(pattern):
            with contextlib.suppress(OSError):  # gone meanwhile
                if path not in kept and path.lstat().st_mtime < cutoff:
                    doomed.append(str(path))
    return remove_upload_files(upload_dir, doomed)


def inside(root: Path, path: Path) -> Path | None:
    """``path`` with its folders resolved (the last part is not followed), if it lies
    inside ``root``. Relative paths are relative to the working directory, as the
    collector opens them."""
    if path.name in ("", ".", ".."):
        return None
    target = path.parent.resolve() / path.name
    return target if target != root and target.is_relative_to(root) else None
