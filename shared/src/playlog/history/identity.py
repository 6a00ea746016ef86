"""Identity of played items and the cross-source duplicate rule (DESIGN §6).

The same play can reach Playlog twice: polled from the API and again from an export,
or from both export families. Such rows are one play when they belong to the same user,
name the same item and end within :data:`CROSS_SOURCE_WINDOW` of each other (widened by
the minute rounding of account-data rows). Rows of the same source and precision are
only duplicates when they match exactly, which the primary key of plays enforces.
"""

from __future__ import annotations

import bisect
import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

CROSS_SOURCE_WINDOW = timedelta(seconds=120)
# Account-data exports give end times to the minute ("2024-01-15 10:30").
MINUTE_ROUNDING = timedelta(seconds=60)
# The widest window any pair of rows can need; range queries use it as their margin.
MAX_MATCH_WINDOW = CROSS_SOURCE_WINDOW + MINUTE_ROUNDING
# A row is a play when it lasted at least this long (or its length is unknown); shorter
# ones are skips. Spotify lists nothing shorter among the recently played.
PLAY_MIN_MS = 30_000
API_SOURCE = "spotify_api"

_SPACES = re.compile(r"\s+")


def normalise(text: str | None) -> str:
    """Case- and width-insensitive form of a name, for matching names across sources."""
    if not text:
        return ""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _SPACES.sub(" ", folded).strip()


def _digest(*parts: str | None) -> str:
    joined = "\x1f".join(normalise(part) for part in parts)
    return hashlib.sha1(joined.encode("utf-8"), usedforsecurity=False).hexdigest()


def local_track_id(artist: str | None, track: str | None, album: str | None) -> str:
    """Deterministic id of an item without a Spotify URI (local files, name-only exports)."""
    return "local:" + _digest(artist, track, album)


def local_artist_id(name: str) -> str:
    return "local:" + _digest(name)


@dataclass(frozen=True)
class PlayIdentity:
    """What the duplicate rule compares: when it ended, which item, and how precise."""

    played_at: datetime
    track_id: str
    artist_name: str | None
    track_name: str | None
    source: str
    source_format: str | None = None
    # Known for export rows; None for API rows (Spotify does not say).
    ms_played: int | None = None

    @property
    def names(self) -> tuple[str, str]:
        return normalise(self.artist_name), normalise(self.track_name)

    @property
    def has_spotify_id(self) -> bool:
        return not self.track_id.startswith("local:")


def same_play(a: PlayIdentity, b: PlayIdentity) -> bool:
    """True when two rows of different sources or precisions record one playback."""
    if (a.source, a.source_format) == (b.source, b.source_format):
        return a.played_at == b.played_at and a.track_id == b.track_id
    # Spotify lists a playback in the recently played only after 30 s: an API row is
    # never the same playback as a shorter export row (a replay of the same track is).
    for api, other in ((a, b), (b, a)):
        if (
            api.source == API_SOURCE
            and other.ms_played is not None
            and other.ms_played < PLAY_MIN_MS
        ):
            return False
    window = CROSS_SOURCE_WINDOW
    if "account_data" in (a.source_format, b.source_format):
        window += MINUTE_ROUNDING
    if abs(a.played_at - b.played_at) > window:
        return False
    if a.has_spotify_id and b.has_spotify_id:
        return a.track_id == b.track_id
    # One side knows only names: compare primary artist and title.
    return a.names == b.names and a.names != ("", "")


def match_one_to_one(
    new: Sequence[PlayIdentity], stored: Sequence[PlayIdentity]
) -> list[tuple[int, int]]:
    """Pairs ``(i, j)`` of ``new[i]`` and ``stored[j]`` recording one playback.

    A stored row stands for one playback, so it absorbs at most one new row (and the
    other way round): pairs are taken nearest in time first, and a replay within the
    window is still a play of its own.
    """
    order = sorted(range(len(stored)), key=lambda j: stored[j].played_at)
    times = [stored[j].played_at for j in order]
    candidates = []
    for i, row in enumerate(new):
        low = bisect.bisect_left(times, row.played_at - MAX_MATCH_WINDOW)
        high = bisect.bisect_right(times, row.played_at + MAX_MATCH_WINDOW)
        for j in order[low:high]:
            if same_play(row, stored[j]):
                candidates.append((abs(row.played_at - stored[j].played_at), i, j))
    candidates.sort()
    used_new: set[int] = set()
    used_stored: set[int] = set()
    pairs = []
    for _, i, j in candidates:
        if i not in used_new and j not in used_stored:
            used_new.add(i)
            used_stored.add(j)
            pairs.append((i, j))
    return pairs
