"""Keyset pagination: opaque cursors, a generic page model and the ``limit``/``cursor`` query
(plus ``matching``, for the optional filters of a list).

A cursor is the sort key of the last item of a page, as a JSON list, base64url-encoded
without padding. The next page starts strictly after that key, so rows inserted or deleted
meanwhile never shift a page: nothing is repeated or skipped. The sort key must be unique
(end it with the primary key).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Generic, TypeVar, TypeVarTuple

from fastapi import Query
from pydantic import BaseModel, TypeAdapter, ValidationError
from sqlalchemy import Select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.elements import ColumnElement

from playlog.errors import ValidationFailed

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
_MAX_CURSOR_LENGTH = 1024

T = TypeVar("T")
R = TypeVar("R")
K = TypeVar("K", bound=tuple[Any, ...])
Ts = TypeVarTuple("Ts")

PageLimit = Annotated[
    int, Query(ge=1, le=MAX_LIMIT, description=f"Items per page (1 to {MAX_LIMIT}).")
]
PageCursor = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=_MAX_CURSOR_LENGTH,
        description="`next_cursor` of the previous page; omit for the first page.",
    ),
]


class Page(BaseModel, Generic[T]):
    items: list[T]
    # Pass as `cursor` to get the next page; null on the last page.
    next_cursor: str | None


def _invalid_cursor(reason: str) -> ValidationFailed:
    return ValidationFailed(
        f"cursor: {reason}; pass the next_cursor of a previous page of this list unchanged",
        details=[{"location": ["query", "cursor"], "message": reason}],
    )


class Keyset(Generic[K]):
    """Pagination of one list by a unique sort key, all ascending or all descending.

    ``key_type`` is the tuple type of the key (``tuple[datetime, uuid.UUID]``); it checks
    decoded cursors, so a cursor of another list, or a tampered one, is a 422.
    """

    def __init__(
        self,
        key_type: type[K],
        *columns: ColumnElement[Any] | QueryableAttribute[Any],
        descending: bool = False,
    ) -> None:
        self._adapter: TypeAdapter[K] = TypeAdapter(key_type)
        self._columns = columns
        self._descending = descending

    def encode(self, key: K) -> str:
        raw = self._adapter.dump_json(key)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    def decode(self, cursor: str) -> K:
        try:
            padded = cursor + "=" * (-len(cursor) % 4)
            values = json.loads(base64.b64decode(padded, altchars=b"-_", validate=True))
        except (binascii.Error, ValueError, RecursionError):
            raise _invalid_cursor("not a cursor issued by this api") from None
        if not isinstance(values, list) or len(values) != len(self._columns):
            raise _invalid_cursor("not a cursor of this list")
        try:
            return self._adapter.validate_python(tuple(values))
        except ValidationError:
            raise _invalid_cursor("not a cursor of this list") from None

    def apply(self, statement: Select[*Ts], cursor: str | None, limit: int) -> Select[*Ts]:
        """Order ``statement`` by the key and fetch one row more than ``limit`` (which tells
        whether another page follows), starting after ``cursor``."""
        if cursor is not None:
            after = self.decode(cursor)
            key = tuple_(*self._columns)
            statement = statement.where(key < after if self._descending else key > after)
        order = [column.desc() if self._descending else column.asc() for column in self._columns]
        return statement.order_by(*order).limit(limit + 1)

    def page(
        self, rows: Sequence[R], limit: int, key: Callable[[R], K]
    ) -> tuple[list[R], str | None]:
        """The rows of this page and the cursor of the next one (None on the last page)."""
        if len(rows) <= limit:
            return list(rows), None
        kept = list(rows[:limit])
        return kept, self.encode(key(kept[-1]))

    async def fetch(
        self,
        session: AsyncSession,
        statement: Select[R],
        cursor: str | None,
        limit: int,
        key: Callable[[R], K],
    ) -> tuple[list[R], str | None]:
        """``apply`` and ``page`` for a statement that selects one entity per row."""
        result = await session.scalars(self.apply(statement, cursor, limit))
        return self.page(result.all(), limit, key)


def matching(
    *filters: tuple[ColumnElement[Any] | QueryableAttribute[Any], object],
) -> list[ColumnElement[bool]]:
    """``column == value`` for every (column, value) whose value is not None: the
    optional equality filters of a list."""
    return [column == value for column, value in filters if value is not None]
