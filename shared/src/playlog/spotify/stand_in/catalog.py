"""A deterministic synthetic music catalogue, rendered in Spotify's JSON shapes."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Any

_WORDS = [
    "midnight",
    "velvet",
    "neon",
    "river",
    "glass",
    "echo",
    "paper",
    "satellite",
    "amber",
    "hollow",
    "golden",
    "static",
    "silver",
    "winter",
    "ocean",
    "northern",
    "quiet",
    "electric",
    "wild",
    "lunar",
    "crimson",
    "summer",
    "distant",
    "borrowed",
    "secret",
    "falling",
    "broken",
    "painted",
    "electric",
    "gentle",
    "restless",
    "fading",
    "burning",
    "city",
    "garden",
    "signal",
    "mirror",
    "window",
    "horizon",
    "harbor",
    "desert",
    "forest",
    "thunder",
    "feather",
    "lantern",
    "canyon",
    "island",
    "season",
    "shadow",
    "morning",
    "engine",
    "caravan",
    "compass",
    "meadow",
]
_FIRST = [
    "Ana",
    "Bo",
    "Cleo",
    "Dara",
    "Eli",
    "Fen",
    "Gia",
    "Hal",
    "Ivo",
    "Juno",
    "Kai",
    "Lior",
    "Mara",
    "Nico",
    "Odile",
    "Pia",
    "Rui",
    "Sol",
    "Tove",
]
_LAST = [
    "Ahlberg",
    "Brandt",
    "Castell",
    "Duarte",
    "Eskola",
    "Falk",
    "Greco",
    "Halvorsen",
    "Ikeda",
    "Jansen",
    "Kowal",
]
_SPECIAL = ("Sigur Rós", "Beyoncé", "Mötley Crüe", "坂本 龍一", "Björk", "🎧 Headphone Club")
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
API_BASE = "https://api.spotify.com/v1"
OPEN_BASE = "https://open.spotify.com"


def spotify_id(kind: str, number: int, seed: int) -> str:
    """A stable 22-character base62 id, like Spotify's."""
    digest = int.from_bytes(hashlib.sha256(f"{seed}:{kind}:{number}".encode()).digest()[:17])
    chars = []
    for _ in range(22):
        digest, index = divmod(digest, 62)
        chars.append(_ALPHABET[index])
    return "".join(chars)


@dataclass(frozen=True)
class CatalogArtist:
    id: str
    name: str


@dataclass(frozen=True)
class CatalogAlbum:
    id: str
    name: str
    artist: CatalogArtist
    release_date: str
    total_tracks: int


@dataclass(frozen=True)
class CatalogTrack:
    id: str
    name: str
    duration_ms: int
    album: CatalogAlbum
    artists: tuple[CatalogArtist, ...]
    track_number: int
    explicit: bool


class Catalog:
    def __init__(self, seed: int, artist_count: int) -> None:
        rng = random.Random(seed)  # noqa: S311 - simulation, not security
        self.artists: list[CatalogArtist] = []
        self.albums: list[CatalogAlbum] = []
        self.tracks: list[CatalogTrack] = []
        for number in range(artist_count):
            name = (
                _SPECIAL[number]
                if number < len(_SPECIAL)
                else rng.choice(
                    [
                        f"{rng.choice(_FIRST)} {rng.choice(_LAST)}",
                        f"The {rng.choice(_WORDS).title()} {rng.choice(_WORDS).title()}s",
                        f"{rng.choice(_WORDS).title()} {rng.choice(_WORDS).title()}",
                    ]
                )
            )
            self.artists.append(CatalogArtist(spotify_id("artist", number, seed), name))
        for artist in self.artists:
            for _ in range(rng.randint(1, 3)):
                album_number = len(self.albums)
                album = CatalogAlbum(
                    id=spotify_id("album", album_number, seed),
                    name=" ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 3))).title(),
                    artist=artist,
                    release_date=f"{rng.randint(1968, 2026)}-{rng.randint(1, 12):02d}-"
                    f"{rng.randint(1, 28):02d}",
                    total_tracks=rng.randint(6, 14),
                )
                self.albums.append(album)
                for track_number in range(1, album.total_tracks + 1):
                    featured = (
                        (rng.choice(self.artists),)
                        if rng.random() < 0.15 and len(self.artists) > 1
                        else ()
                    )
                    self.tracks.append(
                        CatalogTrack(
                            id=spotify_id("track", len(self.tracks), seed),
                            name=" ".join(
                                rng.choice(_WORDS) for _ in range(rng.randint(1, 4))
                            ).capitalize(),
                            duration_ms=rng.randint(95_000, 420_000),
                            album=album,
                            artists=(artist, *(a for a in featured if a != artist)),
                            track_number=track_number,
                            explicit=rng.random() < 0.1,
                        )
                    )
        self.tracks_by_id = {track.id: track for track in self.tracks}
        self.artists_by_id = {artist.id: artist for artist in self.artists}


def _simplified_artist(artist: CatalogArtist) -> dict[str, Any]:
    return {
        "external_urls": {"spotify": f"{OPEN_BASE}/artist/{artist.id}"},
        "href": f"{API_BASE}/artists/{artist.id}",
        "id": artist.id,
        "name": artist.name,
        "type": "artist",
        "uri": f"spotify:artist:{artist.id}",
    }


def _image(kind: str, item_id: str) -> list[dict[str, Any]]:
    return [
        {"url": f"https://i.scdn.co/image/{kind}-{item_id}-{size}", "height": size, "width": size}
        for size in (640, 300, 64)
    ]


def album_json(album: CatalogAlbum) -> dict[str, Any]:
    return {
        "album_type": "album",
        "total_tracks": album.total_tracks,
        "available_markets": ["DE", "GB", "US"],
        "external_urls": {"spotify": f"{OPEN_BASE}/album/{album.id}"},
        "href": f"{API_BASE}/albums/{album.id}",
        "id": album.id,
        "images": _image("album", album.id),
        "name": album.name,
        "release_date": album.release_date,
        "release_date_precision": "day",
        "type": "album",
        "uri": f"spotify:album:{album.id}",
        "artists": [_simplified_artist(album.artist)],
    }


def track_json(track: CatalogTrack) -> dict[str, Any]:
    return {
        "album": album_json(track.album),
        "artists": [_simplified_artist(artist) for artist in track.artists],
        "available_markets": ["DE", "GB", "US"],
        "disc_number": 1,
        "duration_ms": track.duration_ms,
        "explicit": track.explicit,
        "external_ids": {"isrc": f"QZ{track.id[:10].upper()}"},
        "external_urls": {"spotify": f"{OPEN_BASE}/track/{track.id}"},
        "href": f"{API_BASE}/tracks/{track.id}",
        "id": track.id,
        "is_local": False,
        "name": track.name,
        "track_number": track.track_number,
        "type": "track",
        "uri": f"spotify:track:{track.id}",
    }


def artist_json(artist: CatalogArtist) -> dict[str, Any]:
    # Development-mode apps no longer see popularity or followers.
    return {
        "external_urls": {"spotify": f"{OPEN_BASE}/artist/{artist.id}"},
        "genres": [],
        "href": f"{API_BASE}/artists/{artist.id}",
        "id": artist.id,
        "images": _image("artist", artist.id),
        "name": artist.name,
        "type": "artist",
        "uri": f"spotify:artist:{artist.id}",
    }
