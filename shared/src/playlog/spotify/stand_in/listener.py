"""Simulated time and simulated listeners."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from playlog.spotify.stand_in.catalog import Catalog, CatalogTrack

# Spotify lists only plays of at least 30 seconds in recently-played.
MIN_LISTED_MS = 30_000


class SimulatedClock:
    """Wall time, sped up by ``speed`` and shifted by jumps (a fault the tests inject)."""

    def __init__(self, speed: float = 1.0) -> None:
        self.speed = speed
        self._wall_start = time.time()
        self._mono_start = time.monotonic()
        self._offset = 0.0

    def now(self) -> datetime:
        elapsed = (time.monotonic() - self._mono_start) * self.speed
        return datetime.fromtimestamp(self._wall_start + elapsed + self._offset, UTC)

    def jump(self, seconds: float) -> None:
        self._offset += seconds


@dataclass(frozen=True)
class Play:
    track: CatalogTrack
    # End of playback.
    played_at: datetime
    ms_played: int
    context_uri: str

    @property
    def listed(self) -> bool:
        return self.ms_played >= MIN_LISTED_MS


class Listener:
    """Plays music one track after another: albums in order, shuffles, skips and pauses."""

    def __init__(self, catalog: Catalog, seed: int, start: datetime) -> None:
        self._catalog = catalog
        self._rng = random.Random(seed)  # noqa: S311 - simulation, not security
        self.plays: list[Play] = []
        self._next_end = start
        self._album_queue: list[CatalogTrack] = []
        self._pending: tuple[CatalogTrack, str, int] | None = None
        self._favourites = self._rng.sample(catalog.tracks, k=min(40, len(catalog.tracks)))

    def advance_to(self, now: datetime) -> None:
        """Append every play that has ended by ``now``.

        Each play is decided once, however often this is called, so a seed always
        produces the same history.
        """
        while True:
            if self._pending is None:
                track, context = self._choose()
                skipped = self._rng.random() < 0.12
                ms_played = self._rng.randint(2_000, 29_000) if skipped else track.duration_ms
                self._pending = (track, context, ms_played)
            track, context, ms_played = self._pending
            end = self._next_end + timedelta(milliseconds=ms_played)
            if end > now:
                return
            self._pending = None
            # Spotify reports played_at with millisecond precision.
            end = end.replace(microsecond=end.microsecond // 1000 * 1000)
            self.plays.append(Play(track, end, ms_played, context))
            pause = 0.0 if self._rng.random() < 0.85 else self._rng.uniform(60, 3 * 3600)
            self._next_end = end + timedelta(seconds=pause)

    def listed_plays(self) -> list[Play]:
        return [play for play in self.plays if play.listed]

    def _choose(self) -> tuple[CatalogTrack, str]:
        if self._album_queue:
            track = self._album_queue.pop(0)
            return track, f"spotify:album:{track.album.id}"
        roll = self._rng.random()
        if roll < 0.2:
            album = self._rng.choice(self._catalog.albums)
            self._album_queue = [t for t in self._catalog.tracks if t.album == album]
            track = self._album_queue.pop(0)
            return track, f"spotify:album:{album.id}"
        if roll < 0.6:
            return self._rng.choice(self._favourites), "spotify:playlist:37i9dQZF1DXcBWIGoYBM5M"
        return self._rng.choice(self._catalog.tracks), "spotify:playlist:37i9dQZEVXcQ9COmYvdajy"
