"""Spotify export ZIPs for tests: records of both families, hostile archives, and the
project's synthetic export generator (``scripts/export_generator.py``) with a check of an
import report against the generator's ground truth."""

from __future__ import annotations

import importlib.util
import json
import struct
import sys
import zipfile
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

EXTENDED_DIR = "Spotify Extended Streaming History"
ACCOUNT_DIR = "Spotify Account Data"
Member = bytes | str | list[Any] | dict[str, Any]


def track_play(
    ts: str,
    track_id: str | None = "4uLU6hMCjMI75M1A2tKUQC",
    *,
    name: str | None = "Never Gonna Give You Up",
    artist: str | None = "Rick Astley",
    album: str | None = "Whenever You Need Somebody",
    ms_played: Any = 213_000,
    **extra: Any,
) -> dict[str, Any]:
    """An extended-history music record, with every key a real one has."""
    record: dict[str, Any] = {
        "ts": ts,
        "platform": "android",
        "ms_played": ms_played,
        "conn_country": "DE",
        "ip_addr": "192.0.2.10",
        "master_metadata_track_name": name,
        "master_metadata_album_artist_name": artist,
        "master_metadata_album_album_name": album,
        "spotify_track_uri": f"spotify:track:{track_id}" if track_id else None,
        "episode_name": None,
        "episode_show_name": None,
        "spotify_episode_uri": None,
        "audiobook_title": None,
        "audiobook_uri": None,
        "audiobook_chapter_uri": None,
        "audiobook_chapter_title": None,
        "reason_start": "trackdone",
        "reason_end": "trackdone",
        "shuffle": False,
        "skipped": False,
        "offline": False,
        "offline_timestamp": None,
        "incognito_mode": False,
    }
    record.update(extra)
    return record


def episode_play(ts: str, episode_id: str, name: str, show: str, ms_played: int) -> dict[str, Any]:
    return track_play(
        ts,
        None,
        name=None,
        artist=None,
        album=None,
        ms_played=ms_played,
        episode_name=name,
        episode_show_name=show,
        spotify_episode_uri=f"spotify:episode:{episode_id}",
    )


def chapter_play(ts: str, chapter_id: str, chapter: str, book: str) -> dict[str, Any]:
    return track_play(
        ts,
        None,
        name=None,
        artist=None,
        album=None,
        ms_played=600_000,
        audiobook_title=book,
        audiobook_uri="spotify:show:book",
        audiobook_chapter_uri=f"spotify:episode:{chapter_id}",
        audiobook_chapter_title=chapter,
    )


def account_play(
    end_time: str, artist: str, track: str, ms_played: Any = 200_000
) -> dict[str, Any]:
    return {"endTime": end_time, "artistName": artist, "trackName": track, "msPlayed": ms_played}


def write_zip(path: Path, members: Mapping[str, Member]) -> Path:
    """A ZIP of ``members``: bytes and text as given, anything else as JSON."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            if isinstance(content, bytes):
                data = content
            elif isinstance(content, str):
                data = content.encode("utf-8")
            else:
                data = json.dumps(content, ensure_ascii=False, indent=2).encode("utf-8")
            archive.writestr(name, data)
    return path


def extended_member(index: int = 0) -> str:
    return f"{EXTENDED_DIR}/Streaming_History_Audio_2023-2024_{index}.json"


async def delete_users_and_their_catalog(engine: AsyncEngine, user_ids: list[Any]) -> None:
    """Committed test users go with everything they own, including the catalog rows
    (tracks and artists are shared, so they outlive their users otherwise) no one plays."""
    async with engine.begin() as connection:
        await connection.execute(text("DELETE FROM users WHERE id = ANY(:ids)"), {"ids": user_ids})
        await connection.execute(
            text(
                "DELETE FROM tracks t WHERE NOT EXISTS "
                "(SELECT 1 FROM plays p WHERE p.track_id = t.track_id)"
            )
        )
        await connection.execute(
            text(
                "DELETE FROM artists a WHERE NOT EXISTS "
                "(SELECT 1 FROM track_artists l WHERE l.artist_id = a.artist_id)"
            )
        )


def decode_stage_row(row: bytes) -> tuple[Any, ...]:
    """A staged play encoded by ``copydata.stage_row``, decoded into the values of
    ``STAGE_COLUMNS`` (played_at, track_id, ms_played, two reasons, four flags, the
    sensitive fields as JSON text)."""
    (count,) = struct.unpack_from(">h", row)
    offset, fields = 2, []
    for _ in range(count):
        (length,) = struct.unpack_from(">i", row, offset)
        offset += 4
        fields.append(None if length < 0 else row[offset : offset + length])
        offset += max(length, 0)
    if offset != len(row):
        raise ValueError(f"{len(row) - offset} bytes after the row's {count} fields")
    if count != 10:
        raise ValueError(f"a staged play has 10 fields, not {count}")
    at, track, ms, start, end, *flags, sensitive = fields
    if at is None or track is None:
        raise ValueError("a staged play needs its time and its item")
    widths = [(at, 8), (ms, 4), *((flag, 1) for flag in flags)]
    if any(value is not None and len(value) != width for value, width in widths):
        raise ValueError("a timestamp, int4 or bool field of the wrong width")
    if sensitive is not None and sensitive[:1] != b"\x01":
        raise ValueError("jsonb without its version byte")
    return (
        datetime(2000, 1, 1, tzinfo=UTC)
        + timedelta(microseconds=int.from_bytes(at, "big", signed=True)),
        track.decode(),
        None if ms is None else int.from_bytes(ms, "big", signed=True),
        None if start is None else start.decode(),
        None if end is None else end.decode(),
        *(None if flag is None else flag == b"\x01" for flag in flags),
        None if sensitive is None else sensitive[1:].decode(),  # after jsonb's version
    )


# The generator is a script of the source checkout, beside the packages.
GENERATOR = Path(__file__).resolve().parents[4] / "scripts" / "export_generator.py"


@cache
def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("export_generator", GENERATOR)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Its dataclasses look their module up while it loads.
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


def generate_export(path: Path, **options: Any) -> dict[str, Any]:
    """Writes a synthetic export (the generator's ``generate_export``: ``records``,
    ``seed``, ``family``, ``traps``) and returns its ground truth as a dict."""
    truth: dict[str, Any] = vars(_generator().generate_export(path, **options))
    return truth


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def report_mismatches(report: Mapping[str, Any], truth: Mapping[str, Any]) -> list[str]:
    """What an import report (``ImportReport.model_dump(mode="json")`` or the CLI's
    ``--json``, of a first import or a re-import: each reads every record) says
    differently from the generator's truth."""
    skipped = {"bad_timestamp": truth["bad_timestamp"], "no_identity": truth["no_identity"]}
    expected: dict[str, Any] = {
        "records_seen": truth["records"],
        "skipped": {reason: count for reason, count in sorted(skipped.items()) if count},
        "files": truth["per_member"],
        "formats": sorted(truth["formats"]),
        "earliest": _when(truth["earliest"]),
        "latest": _when(truth["latest"]),
    }
    found = {
        "records_seen": report["records_seen"],
        "skipped": report["skipped"],
        "files": {member["name"]: member["records"] for member in report["files"]},
        "formats": report["formats"],
        "earliest": _when(report["earliest"]),
        "latest": _when(report["latest"]),
    }
    return [
        f"{key}: {found[key]!r}, truth {expected[key]!r}"
        for key in expected
        if found[key] != expected[key]
    ]
