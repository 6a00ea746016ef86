"""An HTTP client over ASGITransport that also runs the app's lifespan; paging through lists."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI


@asynccontextmanager
async def asgi_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


async def walk_pages(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], **params: Any
) -> tuple[list[Any], int]:
    """Every item of a keyset-paginated list (``items``, ``next_cursor``) and the number
    of pages it took."""
    items: list[Any] = []
    pages = 0
    cursor: str | None = None
    seen: set[str] = set()
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get(path, headers=headers, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["items"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages
        # A cursor that comes back again would page forever: fail instead.
        assert cursor not in seen, f"{path} returned the cursor {cursor!r} twice"
        seen.add(cursor)
