"""Connections of every service plan each statement for its values, without JIT."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


async def test_connections_plan_for_the_bound_values(db_engine: AsyncEngine) -> None:
    async with db_engine.connect() as connection:
        mode = await connection.scalar(text("SHOW plan_cache_mode"))
        jit = await connection.scalar(text("SHOW jit"))
    # PostgreSQL's defaults are 'auto' (generic plans after five runs) and 'on'.
    assert (mode, jit) == ("force_custom_plan", "off")
