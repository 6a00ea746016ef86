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

from playlog.text import NUL, REPLACEMENT

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
_NULL = b"\xff\xff\xff\xff"
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# Length-prefixed int4; timestamptz values are microseconds since 2000-01-01 UTC.
_INT4 = struct.Struct(">ii").pack
_LENGTH = struct.Struct(">i").pack
_JSONB_VERSION = b"\x01"
_ITEM_FIELDS = b"\x00\x08"
# Encoded text values by value: exports repeat the same few thousand ids and reasons.
# Only short values are kept (ids and reasons are), so a hostile file cannot fill the
# caches with long strings.
_TEXT_CACHE_SIZE = 100_000
_CACHED_TEXT_MAX = 100
_texts: dict[str, bytes] = {}


def encode(value: str) -> bytes:
    """UTF-8 that PostgreSQL's text takes: :func:`playlog.text.storable`, encoded at once
    (the export reader's hot path: no decoding back)."""
    if NUL in value:
        value = value.replace(NUL, REPLACEMENT)
    try:
        return value.encode()
    except UnicodeEncodeError:
        return value.encode(errors="replace")


def _text(value: str | None) -> bytes:
    if value is None:
        return _NULL
    encoded = _texts.get(value)
    if encoded is None:
        data = encode(value)
        encoded = _LENGTH(len(data)) + data
        if len(value) <= _CACHED_TEXT_MAX:
            if len(_texts) >= _TEXT_CACHE_SIZE:
                _texts.clear()
            _texts[value] = encoded
    return encoded


# The six behaviour columns (reasons, then flags) of a staged play, encoded, by what a
# record holds: exports combine a few reasons and flags in a few hundred ways. Keyed by
# the reasons and the ids of the flags (see :func:`behaviour`).
_BEHAVIOUR_CACHE_SIZE = 4096
behaviour_cache: dict[tuple[object, ...], bytes] = {}
_TRUE = b"\x00\x00\x00\x01\x01"
_FALSE = b"\x00\x00\x00\x01\x00"
# Account data knows nothing of how a play started or ended.
NO_BEHAVIOUR = _NULL * 6
# A staged row's field count, its timestamp's length and its value.
_ROW_START = struct.Struct(">hiq").pack


def behaviour(
    start: object, end: object, shuffle: object, skipped: object, offline: object, incognito: object
) -> bytes:
    """The encoded behaviour columns of a record's values: a reason that is not a
    non-empty string, and a flag that is not a bool, are NULL.

    Cached by the reasons and the flags' ids: only True, False and None are flags (1 ==
    True, but 1 is not one), and being singletons their ids stand for them; the id of
    anything else is NULL, whatever object holds that id later. The importer's hot path
    looks the cache up with the same key itself and calls this only when it misses.
    """
    flags = (shuffle, skipped, offline, incognito)
    key = (start, end, *map(id, flags))
    try:
        return behaviour_cache[key]
    except KeyError:
        cacheable = all(
            not isinstance(reason, str) or len(reason) <= _CACHED_TEXT_MAX for reason in key[:2]
        )
    except TypeError:  # a reason that cannot be hashed (a list, an object)
        cacheable = False
    encoded = b"".join(
        (
            _text(start if isinstance(start, str) and start else None),
            _text(end if isinstance(end, str) and end else None),
            *(_TRUE if flag is True else _FALSE if flag is False else _NULL for flag in flags),
        )
    )
    if cacheable:
        if len(behaviour_cache) >= _BEHAVIOUR_CACHE_SIZE:
            behaviour_cache.clear()
        behaviour_cache[key] = encoded
    return encoded


def stage_row(
    played_at: datetime, track_id: str, ms: int | None, behaviour: bytes, sensitive: str | None
) -> bytes:
    """One row of :data:`playlog.exports.records.STAGE_COLUMNS`; ``behaviour`` from
    :func:`behaviour` (the importer's hot path encodes rows inline, in the same way)."""
    if sensitive is None:
        kept = _NULL
    else:
        data = encode(sensitive)
        kept = _LENGTH(len(data) + 1) + _JSONB_VERSION + data
    return b"".join(
        (
            _ROW_START(10, 8, (played_at - _EPOCH) // _MICROSECOND),
            # _text's cache looked up inline: nearly every id is cached, and the call
            # costs about as much as the lookup.
            _texts.get(track_id) or _text(track_id),
            _NULL if ms is None else _INT4(4, ms),
            behaviour,
            kept,
        )
    )


def stage_rows(rows: list[bytes]) -> bytes:
    """One COPY of rows encoded by :func:`stage_row`."""
    return b"".join((HEADER, *rows, TRAILER))


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
                data = encode(value)
                append(_LENGTH(len(data)))
                append(data)
    append(TRAILER)
    return b"".join(parts)
