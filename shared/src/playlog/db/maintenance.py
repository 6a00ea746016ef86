"""Housekeeping shared by the api (on demand) and the collector (daily)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func
from sqlalchemy.ext.asyncio import AsyncSession

from playlog.db.models import LogRecord


async def purge_logs(session: AsyncSession, older_than: timedelta) -> int:
    """Delete stored log records older than ``older_than``; return how many went.

    Age is measured against the database clock (``now()``), like ``timestamp`` itself.
    The caller owns the transaction.
    """
    result = await session.execute(
        delete(LogRecord).where(LogRecord.timestamp < func.now() - older_than)
    )
    return cast(CursorResult[Any], result).rowcount
