"""Where uploaded export ZIPs wait for their import, and how a ZIP file starts."""

from __future__ import annotations

import uuid
from pathlib import Path

# Every ZIP with at least one member starts with a local file header.
ZIP_SIGNATURE = b"PK\x03\x04"


def upload_path(upload_dir: Path, user_id: uuid.UUID, job_id: uuid.UUID) -> Path:
    """The file an import job reads: one folder per user, one file per job."""
    return upload_dir / str(user_id) / f"{job_id}.zip"
