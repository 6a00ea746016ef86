"""PostgreSQL's binary COPY format for staged plays and catalog items.

The export reader process encodes its batches itself, so the importer's event loop only
forwards bytes to the server: no per-row Python work is left on the side that talks to
the database, and the server parses no text (timestamps arrive as integers).

Format: a fixed header, then per row a field count and each field as a length-prefixed
value in the type's binary form (length -1 for NULL), then a trailer.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
_NULL = b"\xff\xff\xff\xff"
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# Length-prefixed timestamptz (microseconds since 2000-01-01 UTC) and int4.
_TIMESTAMP = struct.Struct(">iq").pack
_INT4 = struct.Struct(">ii").pack
_LENGTH = struct.Struct(">i").pack
_BOOL = {True: b"\x00\x00\x00\x01\x01", False: b"\x00\x00\x00\x01\x00"}
_JSONB_VERSION = b"\x01"
_STAGE_FIELDS = b"\x00\x0a"
_ITEM_FIELDS = b"\x00\x08"
# Encoded text values by value: exports repeat the same few thousand ids and reasons.
_TEXT_CACHE_SIZE = 100_000
_texts: dict[str, bytes] = {}


def _text(value: str | None) -> bytes:
    if value is None:
        return _NULL
    encoded = _texts.get(value)
    if encoded is None:
        data = value.encode()
        encoded = _LENGTH(len(data)) + data
        if len(_texts) >= _TEXT_CACHE_SIZE:
            _texts.clear()
        _texts[value] = encoded
    return encoded


def _flag(value: bool | None) -> bytes:
    return _NULL if value is None else _BOOL[value]


def stage_rows(rows: Iterable[tuple[Any, ...]]) -> bytes:
    """One COPY of rows in :data:`playlog.exports.records.STAGE_COLUMNS` order."""
    parts = [HEADER]
    append = parts.append
    for played_at, track_id, ms, start, end, shuffle, skipped, offline, incognito, kept in rows:
        if kept is None:
            sensitive = _NULL
        else:
            data = kept.encode()
            sensitive = _LENGTH(len(data) + 1) + _JSONB_VERSION + data
        append(
            b"".join(
                (
                    _STAGE_FIELDS,
                    _TIMESTAMP(8, (played_at - _EPOCH) // _MICROSECOND),
                    _text(track_id),
                    _NULL if ms is None else _INT4(4, ms),
                    _text(start),
                    _text(end),
                    _flag(shuffle),
                    _flag(skipped),
                    _flag(offline),
                    _flag(incognito),
                    sensitive,
                )
            )
        )
    append(TRAILER)
    return b"".join(parts)


def items(rows: Iterable[tuple[str | None, ...]]) -> bytes:
    """One COPY of catalog items, all text, in ``loader.ITEM_COLUMNS`` order."""
    parts = [HEADER]
    append = parts.append
    for item in rows:
        append(_ITEM_FIELDS)
        # Not through the cache: names are mostly seen once per import.
        for value in item:
            if value is None:
                append(_NULL)
            else:
                data = value.encode()
                append(_LENGTH(len(data)))
                append(data)
    append(TRAILER)
    return b"".join(parts)
