#!/usr/bin/env python3
"""Synthetic Spotify "Download your data" exports, deterministic by seed, for import benchmarks.

Writes a ZIP shaped like the archives Spotify sends: the Extended Streaming History
(``Spotify Extended Streaming History/Streaming_History_Audio_<years>_<n>.json``), the
one-year Account Data history (``Spotify Account Data/StreamingHistory_music_<n>.json`` and
``StreamingHistory_podcast_<n>.json``) or both, next to the files an importer must skip
(video history, read-me PDF, user data, playlists, identity). The listening is one synthetic
listener: ten years ending on 2026-10-31, sessions of back-to-back plays, an evening peak and
a weekly rhythm, a Zipf-like library with non-ASCII and emoji names, skips, podcasts,
audiobooks and local files.

With traps on (the default) the export also carries what real exports contain and an
importer must survive: a UTF-8 BOM, rows with no identity, rows with ms_played 0, rows
repeated in a later file, rows out of time order, a few unparseable timestamps and a
``__MACOSX`` AppleDouble file. :class:`ExportTruth`, counted from the rows as written, says
what a correct importer stores.

The same seed and arguments give the same bytes: one seeded :class:`random.Random` per
purpose (library, timeline, every day, traps), a fixed member timestamp and a fixed member
order. Memory holds one member's records plus the library; days are generated on demand, so
the account-data files can re-create the same plays instead of keeping them.

    .venv/bin/python scripts/export_generator.py OUT.zip --records 1000000 --seed 7 \\
        [--family extended|account|both] [--no-traps] [--truth truth.json]

From another script (scripts import each other as flat modules)::

    from export_generator import ExportTruth, generate_export
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import math
import random
import struct
import time
import zipfile
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from json.encoder import encode_basestring
from pathlib import Path
from typing import IO, Any, cast

END_DAY = date(2026, 10, 31)  # last day of listening: fixed, so output never depends on today
EXTENDED_DIR = "Spotify Extended Streaming History"
ACCOUNT_DIR = "Spotify Account Data"
FAMILIES = ("extended", "account", "both")

_EXTENDED_DAYS = 3653  # ten years, leap days included
_ACCOUNT_DAYS = 365
_EXTENDED_PER_FILE = 16_000
_ACCOUNT_PER_FILE = 10_000
_ZIP_DATE_TIME = (2026, 11, 2, 9, 30, 0)
_COMPRESSLEVEL = 6
_WRITE_BATCH = 2_000  # rows rendered per write into the ZIP stream
_DAY_SECONDS = 86_400
# About what fits into a day: plays average some 220 s of audio; leave room for sleep.
_PLAYS_PER_FULL_DAY = 0.85 * 86_400 / 220
# Ends of one day's plays are distinct seconds of that day; keep far below 86,399.
_MAX_PLAYS_PER_DAY = 40_000

# Shares of all plays.
_EPISODE_SHARE = 0.04
_CHAPTER_SHARE = 0.01
_LOCAL_SHARE = 0.005
# Shares of the traps.
_NO_IDENTITY_SHARE = 0.003
_ZERO_MS_SHARE = 0.005
_REPEAT_SHARE = 0.005
_EXTENDED_BAD_TS = ("2019-13-45T25:61:00Z", "not a date", "0000-00-00T00:00:00Z")
_ACCOUNT_BAD_TS = ("2019-13-45 25:61", "not a date", "0000-00-00 00:00")

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_NULL = "null"


def _rng(seed: int, purpose: str) -> random.Random:
    # One generator per purpose and per day: days can be re-created on their own, and a
    # change in one part of the export does not reshuffle the others.
    return random.Random(f"{seed}:{purpose}")  # noqa: S311 - test data, not secrets


# ---------------------------------------------------------------------------------------
# Public API


@dataclass
class ExportTruth:
    """Ground truth of a generated export, for checking an importer.

    Counted from the rows as written. A row is stored when it has an identity and a valid
    timestamp and is not a repeat; "item id" is the Spotify id from the URI, the
    (artist, track, album) names of a local file, or for account-data rows the
    (artist, track) / (podcast, episode) names with the ``endTime`` minute. With family
    "both" the account-data rows are the same plays as the extended rows of the last year,
    so they add to ``records`` and ``per_member`` but to none of the other counts.
    """

    records: int  # history records written, over all history members, traps included
    per_member: dict[str, int]  # member path in the ZIP -> records in it
    no_identity: int  # records with all track/episode/audiobook names and URIs null
    bad_timestamp: int  # records whose timestamp is unparseable (only with traps)
    repeated: int  # exact copies of an earlier record, placed in a later member
    distinct_plays: int  # unique (ts, item id) among records with identity and valid ts
    episodes: int  # distinct stored rows that are podcast episodes
    audiobooks: int  # distinct stored rows that are audiobook chapters
    under_30s: int  # distinct stored rows with ms_played < 30000
    earliest: str  # ISO-8601 UTC ts of the earliest stored row ("" if none)
    latest: str  # ISO-8601 UTC ts of the latest stored row ("" if none)
    formats: list[str]  # "extended" and/or "account_data"


def generate_export(
    path: Path, *, records: int, seed: int = 1, family: str = "extended", traps: bool = True
) -> ExportTruth:
    """Write a synthetic export ZIP to ``path`` and return its ground truth.

    ``records`` is the number of history records (traps included) of the extended part, or
    of the account-data part with family "account". With family "both" the account-data
    part adds the last year's plays again, so ``ExportTruth.records`` is larger.
    """
    if records < 1:
        raise ValueError("records must be at least 1")
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}")
    tally = _Tally()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=_COMPRESSLEVEL) as zf:
        if family == "account":
            _write_account_family(zf, records, seed, traps, tally)
            formats = ["account_data"]
        else:
            _write_extended_family(zf, records, seed, traps, tally, mirror=family == "both")
            formats = ["extended", "account_data"] if family == "both" else ["extended"]
    return tally.truth(formats)


# ---------------------------------------------------------------------------------------
# Names


_SPECIAL_ARTISTS = (
    "Sigur Rós",
    "Beyoncé",
    "宇多田ヒカル",
    "🎵 Lo-Fi Beats",
    "Björk",
    "Mötley Crüe",
    "Röyksopp",
    "방탄소년단",
    "Céline Dion",
    "Ólafur Arnalds",
    "坂本龍一",
    "Los Ángeles Azules",
    "Måneskin",
    "Zoë Keating",
    "AURORA ✨",
    "Die Ärzte",
)
# Word lists in pairs: (plain, international). Most names are plain English, as in a real
# library, and about one word in eight comes from the accented list.
_Words = tuple[tuple[str, ...], tuple[str, ...]]
_ADJECTIVES: _Words = (
    (
        "Velvet", "Neon", "Crimson", "Hollow", "Golden", "Silver", "Electric", "Quiet", "Wild",
        "Lunar", "Distant", "Secret", "Painted", "Restless", "Fading", "Burning", "Gentle",
        "Northern", "Broken", "Endless", "Midnight", "Paper", "Glass", "Static", "Amber",
        "Bright", "Lonely", "Young", "Sweet", "Cold", "Blue", "Little", "Lost", "Slow",
    ),
    (
        "Dunkle", "Süße", "Blaue", "Étrange", "Dorée", "Lúcida", "Brillante", "Mörka", "Ljusa",
        "Żywa", "Bleu", "Salvaje", "Tiefe", "Cálida", "Frío",
    ),
)  # fmt: skip
_NOUNS: _Words = (
    (
        "River", "Echo", "Lantern", "Harbor", "Desert", "Forest", "Thunder", "Feather",
        "Canyon", "Island", "Season", "Shadow", "Morning", "Signal", "Mirror", "Window",
        "Horizon", "Garden", "Satellite", "Ocean", "Winter", "Summer", "Heart", "Fire", "Rain",
        "Star", "Dream", "Light", "Wave", "Ghost", "Road", "City", "Night", "Sky", "Home",
    ),
    (
        "Café", "Nacht", "Fjäril", "Sœur", "Corazón", "Canção", "Ångest", "Sirène", "Żuraw",
        "Straße", "Mädchen", "Pájaro", "Ciel", "Hjärta",
    ),
)  # fmt: skip
_BAND_WORDS: _Words = (
    (
        "Collective", "Club", "Orchestra", "Trio", "Quartet", "Ensemble", "Project", "Society",
        "Band", "Brothers", "Sisters", "Youth", "Machine", "Express", "Hotel",
    ),
    ("Kollektiv", "Orquesta", "Fräulein", "Compañía"),
)  # fmt: skip
_FIRST_NAMES: _Words = (
    (
        "Anna", "James", "Maya", "Leo", "Nadia", "Ingrid", "Mika", "Aiko", "Tom", "Sarah",
        "Daniel", "Emily", "Lucas", "Olivia", "Noah", "Grace", "Felix", "Hannah",
    ),
    (
        "Zoë", "Chloé", "José", "Björn", "Anaïs", "Søren", "Jürgen", "Małgorzata", "Renée",
        "Joaquín", "Ömer", "Siân", "Léa", "Åsa", "Tomás", "Dagný",
    ),
)  # fmt: skip
_LAST_NAMES: _Words = (
    (
        "Kowalski", "Okafor", "Lindqvist", "Nakamura", "Ferreira", "Moreau", "Baker", "Miller",
        "Walker", "Hayes", "Novak", "Rossi", "Santos", "Berg", "Kim", "Fischer",
    ),
    (
        "Muñoz", "Åström", "Nguyễn", "Dvořák", "Öztürk", "Fernández", "Müller", "García",
        "Håkansson", "Ó Briain", "Šimůnek", "Petrović",
    ),
)  # fmt: skip
_CJK_TITLES = ("夜明け", "さくら", "東京の雨", "花火", "青い春", "사랑", "밤하늘", "月光", "星空")
_TITLE_DECORATIONS = (
    " (Remastered 2011)", " - Live", " (Acoustic)", " (Radio Edit)", " - Demo", " (Interlude)",
    " ✨", " 🔥", " (feat. Léa Moreau)", " (Single Version)", " 💔", " - Instrumental",
)  # fmt: skip
_SHOWS = (
    "Café Philo ☕", "Kurz erklärt", "Nachtgespräche 🌙", "The Daily Byte", "História em Foco",
    "Deep Focus", "Midnight Stories 👻", "Le Journal du Soir", "Tech Talk Tuesday",
    "Geschichten aus der Küche", "Lingua Franca", "Poddar på svenska", "Sci·Fi·Fri 🚀",
)  # fmt: skip
_VIDEO_SHOWS = ("Café Philo ☕ (Video)", "Studio Sessions 🎥", "Kurz erklärt \N{EN DASH} Video")
_BOOKS = (
    "Der Zauberberg", "Les Misérables", "Don Quijote de la Mancha", "Das Parfum", "Moby-Dick",
    "Anna Karenina", "Siddhartha", "Pride and Prejudice", "The Odyssey", "Madame Bovary",
    "Cien años de soledad", "Nils Holgerssons underbara resa",
)  # fmt: skip
_CHAPTER_WORDS = ("Kapitel", "Chapitre", "Capítulo", "Chapter", "Kapitel", "Chapter")
_LOCAL_ARTISTS = ("Proberaum Live", "Unbekannter Interpret", "Omas Kassetten", "Schulband 2009")
_LOCAL_ALBUMS = ("Demo 2009", "Kassette B", "Sprachmemos", "Aufnahmen ♪")
_PLAYLISTS = ("Liked on Radio 📻", "Sommer ☀️", "Focus", "Für die Küche", "Läufe 🏃")


def _word(rng: random.Random, words: _Words) -> str:
    return rng.choice(words[1] if rng.random() < 0.12 else words[0])


def _spotify_id(rng: random.Random) -> str:
    return "".join(rng.choices(_BASE62, k=22))


def _artist_name(rng: random.Random) -> str:
    form = rng.random()
    if form < 0.35:
        return f"{_word(rng, _ADJECTIVES)} {_word(rng, _NOUNS)} {_word(rng, _BAND_WORDS)}"
    if form < 0.6:
        return f"{_word(rng, _FIRST_NAMES)} {_word(rng, _LAST_NAMES)}"
    if form < 0.8:
        return f"{_word(rng, _ADJECTIVES)} {_word(rng, _NOUNS)}"
    if form < 0.9:
        return f"The {_word(rng, _NOUNS)} {_word(rng, _BAND_WORDS)}"
    return f"{_word(rng, _FIRST_NAMES)} & The {_word(rng, _NOUNS)}s"


def _unique(name: str, taken: set[str]) -> str:
    # Names are drawn from small word lists; number the rare repeats instead of redrawing
    # forever, so the (artist, track) names of account data stay one per track.
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name} {n}"
    taken.add(candidate)
    return candidate


def _artist_names(rng: random.Random, count: int) -> list[str]:
    taken: set[str] = set(_LOCAL_ARTISTS)
    names = [_unique(name, taken) for name in _SPECIAL_ARTISTS[:count]]
    names += [_unique(_artist_name(rng), taken) for _ in range(count - len(names))]
    rng.shuffle(names)  # the list order decides how prolific an artist is
    return names


def _title(rng: random.Random) -> str:
    form = rng.random()
    if form < 0.08:
        base = rng.choice(_CJK_TITLES)
    elif form < 0.55:
        base = f"{_word(rng, _ADJECTIVES)} {_word(rng, _NOUNS)}"
    elif form < 0.8:
        base = _word(rng, _NOUNS)
    else:
        base = f"{_word(rng, _NOUNS)} & {_word(rng, _NOUNS)}"
    if rng.random() < 0.15:
        base += rng.choice(_TITLE_DECORATIONS)
    return base


# ---------------------------------------------------------------------------------------
# The library


@dataclass(slots=True, eq=False)
class _Item:
    """Something playable: a track, local file, podcast episode or audiobook chapter."""

    kind: str  # "track", "local", "episode" or "chapter"
    uid: str  # item id of the truth: Spotify id, or the names of a local file
    fields: tuple[str, ...]  # JSON values of the eleven identity keys of an extended row
    names: tuple[str, str]  # JSON values of the two name keys of an account-data row
    duration_ms: int
    pool: list[_Item]  # the list the item sits in (all tracks, a show, a book, local files)
    index: int  # position in pool
    album_next: int = -1  # pool index of the album's next track, -1 after its last


def _json(value: str | None) -> str:
    return _NULL if value is None else encode_basestring(value)


def _identity_fields(
    track: tuple[str, str, str, str | None] | None = None,
    episode: tuple[str, str, str] | None = None,
    chapter: tuple[str, str, str, str] | None = None,
) -> tuple[str, ...]:
    """JSON values of the identity keys, from track_name through audiobook_chapter_title."""
    values: list[str | None] = [None] * 11
    if track is not None:
        values[0:4] = track
    if episode is not None:
        values[4:7] = episode
    if chapter is not None:
        values[7:11] = chapter
    return tuple(_json(value) for value in values)


_NULL_FIELDS = _identity_fields()
_NULL_NAMES = (_NULL, _NULL)


@dataclass
class _Library:
    tracks: list[_Item]
    track_weights: list[float]  # cumulative Zipf weights by popularity rank
    track_order: list[int]  # popularity rank -> track index
    local_files: list[_Item]
    shows: list[list[_Item]]  # episodes per show, oldest first
    show_weights: list[float]  # cumulative
    books: list[list[_Item]]  # chapters per audiobook, in order


def _build_library(rng: random.Random, records: int) -> _Library:
    tracks = _build_tracks(rng, max(500, records // 20), max(200, records // 200))
    order = list(range(len(tracks)))
    rng.shuffle(order)  # so that one era's favourites come from many artists
    shows = _build_shows(rng, max(6, records // 40_000), max(60, records // 37))
    return _Library(
        tracks=tracks,
        # Zipf-Mandelbrot: a few favourites, a long tail, but no single track dominating.
        track_weights=list(itertools.accumulate(1 / (rank + 10) for rank in range(len(tracks)))),
        track_order=order,
        local_files=_build_local_files(),
        shows=shows,
        show_weights=list(itertools.accumulate(1 / (rank + 1) for rank in range(len(shows)))),
        books=_build_books(rng, max(3, records // 100_000)),
    )


def _build_tracks(rng: random.Random, count: int, artist_count: int) -> list[_Item]:
    artists = _artist_names(rng, artist_count)
    # Every artist has a track; the rest go mostly to the first (more prolific) artists.
    weights = list(itertools.accumulate(1 / (rank + 3) ** 0.7 for rank in range(len(artists))))
    per_artist = [1] * len(artists)
    for _ in range(count - len(artists)):
        per_artist[bisect.bisect(weights, rng.random() * weights[-1])] += 1
    tracks: list[_Item] = []
    for artist, size in zip(artists, per_artist, strict=True):
        _add_artist_tracks(rng, tracks, artist, size)
    return tracks


def _add_artist_tracks(rng: random.Random, tracks: list[_Item], artist: str, size: int) -> None:
    titles: set[str] = set()
    albums: set[str] = set()
    while size > 0:
        album_size = min(size, rng.randint(1, 14))
        album = _unique(_title(rng) if album_size > 3 else "Single", albums)
        for position in range(album_size):
            track_id = _spotify_id(rng)
            title = _unique(_title(rng), titles)
            index = len(tracks)
            tracks.append(
                _Item(
                    kind="track",
                    uid=track_id,
                    fields=_identity_fields(
                        track=(title, artist, album, f"spotify:track:{track_id}")
                    ),
                    names=(_json(artist), _json(title)),
                    duration_ms=int(rng.triangular(100_000, 360_000, 190_000)),
                    pool=tracks,
                    index=index,
                    album_next=index + 1 if position < album_size - 1 else -1,
                )
            )
        size -= album_size


def _build_shows(rng: random.Random, count: int, episodes: int) -> list[list[_Item]]:
    taken: set[str] = set()
    names = [_unique(name, taken) for name in _SHOWS[:count]]
    names += [
        _unique(f"{_word(rng, _ADJECTIVES)} {_word(rng, _NOUNS)} Podcast", taken)
        for _ in range(count - len(names))
    ]
    return [_build_show(rng, name, max(20, episodes // count)) for name in names]


def _build_show(rng: random.Random, show: str, count: int) -> list[_Item]:
    episodes: list[_Item] = []
    label = rng.choice(("Folge {n}:", "#{n} \N{EN DASH}", "Ep. {n}:", "Épisode {n} :"))
    for number in range(1, count + 1):
        episode_id = _spotify_id(rng)
        name = f"{label.format(n=number)} {_title(rng)}"
        episodes.append(
            _Item(
                kind="episode",
                uid=episode_id,
                fields=_identity_fields(episode=(name, show, f"spotify:episode:{episode_id}")),
                names=(_json(show), _json(name)),
                duration_ms=rng.randint(10, 75) * 60_000 + rng.randint(0, 59_999),
                pool=episodes,
                index=number - 1,
            )
        )
    return episodes


def _build_books(rng: random.Random, count: int) -> list[list[_Item]]:
    books: list[list[_Item]] = []
    for number in range(count):
        title = _BOOKS[number % len(_BOOKS)]
        if number >= len(_BOOKS):
            title += f" ({number // len(_BOOKS) + 1})"
        book_uri = f"spotify:audiobook:{_spotify_id(rng)}"
        word = rng.choice(_CHAPTER_WORDS)
        chapters: list[_Item] = []
        for index in range(rng.randint(20, 45)):
            chapter_id = _spotify_id(rng)
            name = f"{word} {index + 1}"
            chapters.append(
                _Item(
                    kind="chapter",
                    uid=chapter_id,
                    fields=_identity_fields(
                        chapter=(title, book_uri, f"spotify:chapter:{chapter_id}", name)
                    ),
                    names=(_json(title), _json(name)),
                    duration_ms=rng.randint(8, 45) * 60_000,
                    pool=chapters,
                    index=index,
                )
            )
        books.append(chapters)
    return books


def _build_local_files() -> list[_Item]:
    files: list[_Item] = []
    for artist, album in zip(_LOCAL_ARTISTS, _LOCAL_ALBUMS, strict=True):
        for number in range(1, 11):
            title = f"Track {number:02d}" if number % 3 else f"Aufnahme {number} (final) v2"
            files.append(
                _Item(
                    kind="local",
                    uid="\x00".join((artist, title, album)),
                    fields=_identity_fields(track=(title, artist, album, None)),
                    names=(_json(artist), _json(title)),
                    duration_ms=180_000 + 7_919 * number,
                    pool=files,
                    index=len(files),
                )
            )
    return files


# ---------------------------------------------------------------------------------------
# When the listener listens


@dataclass(frozen=True)
class _Timeline:
    first_day: date
    plays: list[int]  # plays per day
    episodes: list[int]  # podcast episodes among them
    offsets: list[int]  # index in the whole play stream of each day's first play


_WEEKDAY_FACTOR = (1.0, 0.95, 1.0, 1.0, 1.1, 1.3, 1.2)  # Monday first: more at weekends


def _build_timeline(rng: random.Random, days: int, plays: int, episodes: int) -> _Timeline:
    first = END_DAY - timedelta(days=days - 1)
    weights = [_day_weight(rng, first + timedelta(days=d), d / days) for d in range(days)]
    per_day = _apportion(_capped(weights, plays, _PLAYS_PER_FULL_DAY), plays)
    if max(per_day) > _MAX_PLAYS_PER_DAY:
        raise ValueError(f"{plays} plays do not fit in {days} days")
    return _Timeline(
        first_day=first,
        plays=per_day,
        episodes=_share_out(per_day, episodes),
        offsets=list(itertools.accumulate(per_day, initial=0))[:-1],
    )


def _capped(weights: list[float], total: int, cap: float) -> list[float]:
    """Weights scaled to total, with no day above cap and the excess moved to other days.

    A heavy listener would otherwise get days with more than 24 hours of audio. When even
    capped days cannot hold total, the weights stay as they are (and plays overlap).
    """
    if total >= cap * len(weights):
        return weights
    low, high = 0.0, cap * len(weights) / min(w for w in weights if w > 0)
    for _ in range(60):  # bisect the scale at which the capped days sum to total
        scale = (low + high) / 2
        low, high = (
            (scale, high) if sum(min(w * scale, cap) for w in weights) < total else (low, scale)
        )
    return [min(w * high, cap) for w in weights]


def _day_weight(rng: random.Random, day: date, progress: float) -> float:
    if rng.random() < 0.03:
        return 0.05  # ill, travelling, offline: next to nothing
    growth = 0.8 + 0.4 * progress  # listening grew over the years
    season = 1 + 0.12 * math.cos(2 * math.pi * (day.timetuple().tm_yday - 15) / 365)
    return _WEEKDAY_FACTOR[day.weekday()] * growth * season * rng.lognormvariate(0, 0.35)


def _apportion(weights: list[float], total: int) -> list[int]:
    """Integers proportional to weights, summing to total exactly."""
    cumulative = list(itertools.accumulate(weights))
    bounds = [round(c / cumulative[-1] * total) for c in cumulative]
    return [b - a for a, b in itertools.pairwise([0, *bounds])]


def _share_out(per_day: list[int], total: int) -> list[int]:
    """Split total over the days in proportion to per_day, never more than a day's plays."""
    plays = sum(per_day)
    if not plays:
        return [0] * len(per_day)
    bounds = [c * total // plays for c in itertools.accumulate(per_day)]
    return [b - a for a, b in itertools.pairwise([0, *bounds])]


# ---------------------------------------------------------------------------------------
# Plays


@dataclass(slots=True, eq=False)
class _Session:
    platform: str  # JSON values
    country: str
    ip: str
    shuffle: str
    offline: str
    incognito: str
    start_reason: str


@dataclass(slots=True, eq=False)
class _Play:
    kind: str  # kind of the item; kept when a trap removes the item
    item: _Item | None
    session: _Session
    ms: int
    reason_start: str
    reason_end: str
    skipped: bool
    end: int = 0  # epoch seconds, end of playback
    bad_ts: int = -1  # index into the unparseable timestamps, -1 for a valid one


@dataclass(frozen=True)
class _Traps:
    enabled: bool
    no_identity: frozenset[int]  # indices in the play stream
    bad_ts: dict[int, int]  # index in the play stream -> which unparseable timestamp


def _plan_traps(rng: random.Random, plays: int, enabled: bool) -> _Traps:
    if not enabled:
        return _Traps(False, frozenset(), {})
    # Never the first or last play, so the earliest and latest rows are always valid.
    candidates = range(1, max(1, plays - 1))
    bad = min(rng.randint(2, 3), len(candidates))
    blank = min(round(plays * _NO_IDENTITY_SHARE), len(candidates) - bad)
    chosen = rng.sample(candidates, bad + blank)
    return _Traps(True, frozenset(chosen[bad:]), {index: n for n, index in enumerate(chosen[:bad])})


_HOUR_WEIGHTS = tuple(
    itertools.accumulate(
        (2, 1, 1, 0.5, 0.5, 1, 3, 6, 7, 5, 4, 4, 5, 5, 4, 4, 5, 7, 9, 10, 11, 10, 7, 4)
    )
)  # local time: commute, lunch, and most in the evening
_DEVICES = ("android", "windows", "ios", "osx", "web_player", "linux")
_DEVICE_WEIGHTS = (45, 25, 10, 8, 7, 2)
_LEGACY_PLATFORMS = {
    "android": "Android OS 9 API 28 (samsung, SM-G960F)",
    "windows": "Windows 10 (10.0.17134; x64)",
    "ios": "iOS 12.4.1 (iPhone10,6)",
    "osx": "OS X 10.14.6 [x86 8]",
    "web_player": "WebPlayer (websocket RFC6455)",
    "linux": "Linux [x86-64 0]",
}
_MODERN_PLATFORMS_FROM = date(2021, 6, 1)  # Spotify shortened the platform strings
_ABROAD = ("FR", "ES", "IT", "NL", "GB", "US", "JP", "SE", "PT", "AT")
_START_REASONS = ("clickrow", "playbtn", "appload", "remote", "trackdone", "unknown")
_START_WEIGHTS = (50, 20, 15, 8, 5, 2)
# A play started by how the previous one ended, for the reasons that hand over.
_HANDED_OVER = frozenset(("trackdone", "fwdbtn", "backbtn", "remote"))


@dataclass(frozen=True)
class _Day:
    start: int  # epoch seconds of 00:00 UTC
    day: date
    progress: float  # 0 at the start of the ten years, 1 at their end
    utc_offset: int  # hours of the listener's home time zone
    abroad: bool
    country: str  # JSON value


class _Listener:
    """The play stream: every day re-creatable on its own from the seed."""

    def __init__(
        self,
        library: _Library,
        timeline: _Timeline,
        traps: _Traps,
        seed: int,
        *,
        audiobooks: bool,
        minute_unique: bool,
    ) -> None:
        self._library = library
        self._timeline = timeline
        self._traps = traps
        self._seed = seed
        self._chapter_share = _CHAPTER_SHARE / (1 - _EPISODE_SHARE) if audiobooks else 0.0
        self._local_share = _LOCAL_SHARE / (1 - _EPISODE_SHARE)
        # Account data names plays by (artist, track, minute): keep those apart.
        self._minute_unique = minute_unique

    @property
    def days(self) -> int:
        return len(self._timeline.plays)

    def plays(self, from_day: int = 0) -> Iterator[_Play]:
        for number in range(from_day, self.days):
            yield from self._day_plays(number)

    def _day_plays(self, number: int) -> list[_Play]:
        count = self._timeline.plays[number]
        if count == 0:
            return []
        rng = _rng(self._seed, f"day:{number}")
        day = self._day(rng, number)
        sizes = _session_sizes(rng, count)
        plays = self._sessions(rng, day, sizes, self._timeline.episodes[number])
        ends = _layout(rng, day, sizes, [play.ms for play in plays])
        for play, end in zip(plays, ends, strict=True):
            play.end = end
        self._apply_traps(plays, self._timeline.offsets[number])
        if self._minute_unique:
            _separate_minutes(plays)
        return plays

    def _day(self, rng: random.Random, number: int) -> _Day:
        day = self._timeline.first_day + timedelta(days=number)
        ten_years_in = (day - (END_DAY - timedelta(days=_EXTENDED_DAYS - 1))).days
        abroad = rng.random() < 0.04
        return _Day(
            start=(day - date(1970, 1, 1)).days * _DAY_SECONDS,
            day=day,
            progress=ten_years_in / _EXTENDED_DAYS,
            utc_offset=2 if 4 <= day.month <= 10 else 1,  # central Europe, roughly with DST
            abroad=abroad,
            country=_json(rng.choice(_ABROAD) if abroad else "DE"),
        )

    def _sessions(
        self, rng: random.Random, day: _Day, sizes: list[int], episodes: int
    ) -> list[_Play]:
        plays: list[_Play] = []
        left = sum(sizes)
        for size in sizes:
            session = _session(rng, day)
            previous: _Play | None = None
            for _ in range(size):
                # Exactly `episodes` of the day's plays are episodes (selection sampling).
                is_episode = rng.random() * left < episodes
                left -= 1
                episodes -= is_episode
                previous = self._play(rng, day, session, previous, is_episode)
                plays.append(previous)
        return plays

    def _play(
        self,
        rng: random.Random,
        day: _Day,
        session: _Session,
        previous: _Play | None,
        is_episode: bool,
    ) -> _Play:
        item = self._pick(rng, day, session, previous, is_episode)
        ms, reason_end, skipped = _PLAYBACK[item.kind](rng, item.duration_ms)
        if rng.random() < _ZERO_MS_SHARE and self._traps.enabled:
            ms = 0
            reason_end = "fwdbtn" if skipped else "endplay"
        if previous is None:
            reason_start = session.start_reason
        elif previous.reason_end in _HANDED_OVER:
            reason_start = previous.reason_end
        else:
            reason_start = "clickrow"
        return _Play(item.kind, item, session, ms, reason_start, reason_end, skipped)

    def _pick(
        self,
        rng: random.Random,
        day: _Day,
        session: _Session,
        previous: _Play | None,
        is_episode: bool,
    ) -> _Item:
        last = previous.item if previous is not None else None
        if is_episode:
            return self._episode(rng, day, last)
        kind = rng.random()
        if kind < self._chapter_share:
            return self._chapter(rng, day, last)
        if kind < self._chapter_share + self._local_share:
            return rng.choice(self._library.local_files)
        if last is not None and previous is not None and previous.reason_end == "backbtn":
            return last  # back button: the same track again
        return self._track(rng, day, session, last)

    def _track(self, rng: random.Random, day: _Day, session: _Session, last: _Item | None) -> _Item:
        library = self._library
        if (
            last is not None
            and last.kind == "track"
            and last.album_next >= 0
            and session.shuffle == "false"
            and rng.random() < 0.5
        ):
            return library.tracks[last.album_next]  # listening through an album
        rank = bisect.bisect(library.track_weights, rng.random() * library.track_weights[-1])
        # Taste drifts: over ten years the favourites move through most of the library.
        drift = int(day.progress * len(library.tracks) * 0.6)
        return library.tracks[library.track_order[(rank + drift) % len(library.tracks)]]

    def _episode(self, rng: random.Random, day: _Day, last: _Item | None) -> _Item:
        if last is not None and last.kind == "episode" and rng.random() < 0.3:
            return last.pool[min(last.index + 1, len(last.pool) - 1)]  # the next one
        weights = self._library.show_weights
        show = self._library.shows[bisect.bisect(weights, rng.random() * weights[-1])]
        newest = min(len(show) - 1, int(day.progress * len(show)))  # shows grow over time
        return show[max(0, newest - int(rng.expovariate(0.3)))]

    def _chapter(self, rng: random.Random, day: _Day, last: _Item | None) -> _Item:
        if last is not None and last.kind == "chapter" and last.index + 1 < len(last.pool):
            return last.pool[last.index + 1]
        books = self._library.books
        position = day.progress * len(books)  # one book after the other, over the years
        book = books[min(len(books) - 1, int(position))]
        chapter = int((position % 1) * len(book)) + rng.randint(-1, 1)
        return book[min(len(book) - 1, max(0, chapter))]

    def _apply_traps(self, plays: list[_Play], offset: int) -> None:
        if not self._traps.enabled:
            return
        for index, play in enumerate(plays, start=offset):
            if index in self._traps.no_identity:
                play.item = None
            elif index in self._traps.bad_ts:
                play.bad_ts = self._traps.bad_ts[index]


def _session_sizes(rng: random.Random, count: int) -> list[int]:
    sizes: list[int] = []
    while count > 0:
        size = min(count, 1 + int(rng.expovariate(1 / 11)))
        sizes.append(size)
        count -= size
    return sizes


def _session(rng: random.Random, day: _Day) -> _Session:
    device = rng.choices(_DEVICES, weights=_DEVICE_WEIGHTS)[0]
    legacy = day.day < _MODERN_PLATFORMS_FROM
    mobile = device in ("android", "ios")
    return _Session(
        platform=_json(_LEGACY_PLATFORMS[device] if legacy else device),
        country=day.country,
        ip=_json(_ip_address(rng, day, mobile)),
        shuffle=_json_bool(rng.random() < 0.45),
        offline=_json_bool(mobile and rng.random() < 0.05),
        incognito=_json_bool(rng.random() < 0.01),
        start_reason=rng.choices(_START_REASONS, weights=_START_WEIGHTS)[0],
    )


def _ip_address(rng: random.Random, day: _Day, mobile: bool) -> str:
    # Documentation ranges only (RFC 5737, RFC 3849): never a real listener's address.
    if day.abroad:
        return f"192.0.2.{rng.randint(1, 254)}"
    if mobile and rng.random() < 0.5:
        if rng.random() < 0.2:
            return f"2001:db8:{rng.randrange(0x10000):x}:{rng.randrange(0x10000):x}::1"
        return f"203.0.113.{rng.randint(1, 254)}"
    return "198.51.100.23" if day.progress < 0.55 else "198.51.100.87"  # moved house once


def _json_bool(value: bool) -> str:
    return "true" if value else "false"


def _track_playback(rng: random.Random, duration: int) -> tuple[int, str, bool]:
    """ms_played, reason_end, skipped of a track play."""
    roll = rng.random()
    if roll < 0.20:
        return rng.randint(300, 29_000), "fwdbtn", True
    if roll < 0.23:
        return rng.randint(1_000, duration), "backbtn", False
    if roll < 0.27:
        return rng.randint(5_000, duration), "endplay", False
    if roll < 0.28:
        return rng.randint(5_000, duration), "logout", False
    if roll < 0.29:
        return rng.randint(5_000, duration), "remote", False
    if roll < 0.30:
        return rng.randint(1_000, duration), "unknown", False
    return duration - rng.randint(0, 1_500), "trackdone", False


def _spoken_playback(rng: random.Random, duration: int) -> tuple[int, str, bool]:
    """ms_played, reason_end, skipped of an episode or chapter: long, often unfinished."""
    roll = rng.random()
    if roll < 0.08:
        return rng.randint(2_000, 29_000), "endplay", False
    if roll < 0.3:
        return duration, "trackdone", False
    ms = int(rng.triangular(60_000, duration, duration * 0.4))
    return ms, rng.choice(("endplay", "endplay", "logout", "remote")), False


_PLAYBACK: dict[str, Callable[[random.Random, int], tuple[int, str, bool]]] = {
    "track": _track_playback,
    "local": _track_playback,
    "episode": _spoken_playback,
    "chapter": _spoken_playback,
}


def _layout(rng: random.Random, day: _Day, sizes: list[int], ms: list[int]) -> list[int]:
    """End times of a day's plays: strictly increasing, all within the day.

    A play ends its duration after the previous one plus a short gap; sessions start at
    times drawn from the hour profile. A day with more listening than fits runs as one
    stretch, and one with more than 24 hours of audio overlaps plays (several devices).
    """
    steps = [max(1, played // 1000 + rng.randint(0, 3)) for played in ms]
    starts = sorted(_session_start(rng, day) for _ in sizes)
    ends: list[int] = []
    clock = day.start - 120
    for start, session in zip(starts, _split(steps, sizes), strict=True):
        clock = max(start, clock + 120)  # a session running late pushes the next one
        for step in session:
            clock += step
            ends.append(clock)
    if ends[-1] < day.start + _DAY_SECONDS:
        return ends
    return _squeezed(day, starts[0], steps)


def _session_start(rng: random.Random, day: _Day) -> int:
    hour = bisect.bisect(_HOUR_WEIGHTS, rng.random() * _HOUR_WEIGHTS[-1])
    # Local hours before the UTC offset wrap to the end of the UTC day rather than piling
    # up at 00:00 UTC: the hour profile is what matters, not which date gets the session.
    return day.start + (hour - day.utc_offset) % 24 * 3600 + rng.randrange(3600)


def _split(steps: list[int], sizes: list[int]) -> Iterator[list[int]]:
    position = 0
    for size in sizes:
        yield steps[position : position + size]
        position += size


def _squeezed(day: _Day, first_start: int, steps: list[int]) -> list[int]:
    room = _DAY_SECONDS - 1  # ends fall on day.start + 1 … day.start + 86,399
    if sum(steps) > room:
        scale = (room - len(steps)) / sum(steps)
        steps = [max(1, int(step * scale)) for step in steps]
    begin = day.start + min(first_start - day.start, room - sum(steps))
    return list(itertools.accumulate(steps, initial=begin))[1:]


def _separate_minutes(plays: list[_Play]) -> None:
    """Give a play another item when the same names already end in the same minute."""
    seen: set[tuple[int, tuple[str, str]]] = set()
    for play in plays:
        item = play.item
        if item is None:
            continue
        minute = play.end // 60
        for _ in range(len(item.pool)):
            if (minute, item.names) not in seen:
                break
            item = item.pool[(item.index + 1) % len(item.pool)]
        play.item = item
        seen.add((minute, item.names))


# ---------------------------------------------------------------------------------------
# Rendering rows exactly as json.dumps(rows, indent=4, ensure_ascii=False) would, but from
# pre-encoded values: the pure-Python indenting encoder would take most of the run time.


def _row_template(keys: Iterable[str]) -> str:
    return "    {\n" + ",\n".join(f'        "{key}": %s' for key in keys) + "\n    }"


_EXTENDED_KEYS = (
    "ts",
    "platform",
    "ms_played",
    "conn_country",
    "ip_addr",
    "master_metadata_track_name",
    "master_metadata_album_artist_name",
    "master_metadata_album_album_name",
    "spotify_track_uri",
    "episode_name",
    "episode_show_name",
    "spotify_episode_uri",
    "audiobook_title",
    "audiobook_uri",
    "audiobook_chapter_uri",
    "audiobook_chapter_title",
    "reason_start",
    "reason_end",
    "shuffle",
    "skipped",
    "offline",
    "offline_timestamp",
    "incognito_mode",
)
_EXTENDED_ROW = _row_template(_EXTENDED_KEYS)
_MUSIC_ROW = _row_template(("endTime", "artistName", "trackName", "msPlayed"))
_PODCAST_ROW = _row_template(("endTime", "podcastName", "episodeName", "msPlayed"))


def _iso(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _extended_row(play: _Play) -> str:
    session = play.session
    ts = _iso(play.end) if play.bad_ts < 0 else _EXTENDED_BAD_TS[play.bad_ts]
    return _EXTENDED_ROW % (
        encode_basestring(ts),
        session.platform,
        play.ms,
        session.country,
        session.ip,
        *(play.item.fields if play.item is not None else _NULL_FIELDS),
        f'"{play.reason_start}"',
        f'"{play.reason_end}"',
        session.shuffle,
        _json_bool(play.skipped),
        session.offline,
        play.end - play.ms // 1000,  # offline_timestamp: start of playback, in seconds
        session.incognito,
    )


def _account_row(play: _Play) -> str:
    if play.bad_ts < 0:
        end_time = time.strftime("%Y-%m-%d %H:%M", time.gmtime(play.end))
    else:
        end_time = _ACCOUNT_BAD_TS[play.bad_ts]
    template = _PODCAST_ROW if play.kind == "episode" else _MUSIC_ROW
    names = play.item.names if play.item is not None else _NULL_NAMES
    return template % (encode_basestring(end_time), *names, play.ms)


# ---------------------------------------------------------------------------------------
# The ZIP


def _open_member(zf: zipfile.ZipFile, name: str) -> IO[bytes]:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3  # Unix whatever the host, so the bytes do not depend on it
    info.external_attr = 0o644 << 16
    # ZipFile.open() does not apply the archive's compresslevel to a ZipInfo it is given;
    # Python 3.11 keeps the level in this private attribute.
    cast(Any, info)._compresslevel = _COMPRESSLEVEL
    return zf.open(info, "w")


def _write_bytes(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    with _open_member(zf, name) as out:
        out.write(data)


def _write_json(zf: zipfile.ZipFile, name: str, value: object) -> None:
    _write_bytes(zf, name, json.dumps(value, indent=4, ensure_ascii=False).encode())


def _write_rows(zf: zipfile.ZipFile, name: str, rows: Iterable[str], *, bom: bool) -> None:
    """Write a JSON array of rendered rows in batches, never the whole file at once."""
    rows = iter(rows)
    with _open_member(zf, name) as out:
        out.write(b"\xef\xbb\xbf" if bom else b"")
        batch = list(itertools.islice(rows, _WRITE_BATCH))
        if not batch:
            out.write(b"[]")
            return
        out.write(("[\n" + ",\n".join(batch)).encode())
        while batch := list(itertools.islice(rows, _WRITE_BATCH)):
            out.write((",\n" + ",\n".join(batch)).encode())
        out.write(b"\n]")


_FAKE_PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def _apple_double() -> bytes:
    """A small AppleDouble file, as macOS's Archive Utility puts into __MACOSX/."""
    attribute = b"com.apple.quarantine\x000083;671f2a00;Safari;\x00"
    header = struct.pack(">II16sH", 0x00051607, 0x00020000, b"Mac OS X        ", 2)
    first = len(header) + 2 * 12
    entries = struct.pack(">III", 9, first, 32) + struct.pack(">III", 2, first + 32, len(attribute))
    return header + entries + bytes(32) + attribute


def _write_junk(zf: zipfile.ZipFile, member: str) -> None:
    folder, _, file = member.rpartition("/")
    _write_bytes(zf, f"__MACOSX/{folder}/._{file}", _apple_double())


# ---------------------------------------------------------------------------------------
# Members and the truth


@dataclass(frozen=True)
class _MemberPlan:
    fresh: int  # plays of the stream
    repeats: int  # copies of rows of the previous member


def _plan_members(
    rng: random.Random, records: int, per_file: int, traps: bool
) -> list[_MemberPlan]:
    """Members of about per_file records, the last one smaller; repeats included.

    Planned up front so that the records add up exactly and the last member, which has no
    later member to repeat its rows in, is known while the stream is written.
    """
    sizes: list[int] = []
    left = records
    while left > 0:
        size = min(left, per_file + rng.randint(-per_file // 40, per_file // 40))
        sizes.append(size)
        left -= size
    plans = [_MemberPlan(sizes[0], 0)] if sizes else []
    for size in sizes[1:]:
        repeats = round(size * _REPEAT_SHARE) if traps else 0
        plans.append(_MemberPlan(size - repeats, repeats))
    return plans


class _RecentKeys:
    """(time, item) keys of the last minutes.

    Rows are in time order but for a few swapped neighbours and the repeats (counted
    apart), so a second row of the same play can only be close by.
    """

    def __init__(self, window: int = 30) -> None:
        self._window = window
        self._buckets: dict[int, set[Hashable]] = {}
        self._newest = 0

    def add(self, seconds: int, key: Hashable) -> bool:
        minute = seconds // 60
        bucket = self._buckets.get(minute)
        if bucket is None:
            bucket = self._buckets[minute] = set()
            self._prune(minute)
        if key in bucket:
            return False
        bucket.add(key)
        return True

    def _prune(self, minute: int) -> None:
        self._newest = max(self._newest, minute)
        if len(self._buckets) > 2 * self._window:
            oldest = self._newest - self._window
            for old in [m for m in self._buckets if m < oldest]:
                del self._buckets[old]


@dataclass(frozen=True)
class _Format:
    render: Callable[[_Play], str]
    when: Callable[[_Play], int]  # the time the truth keys the row by
    key: Callable[[_Play, _Item], Hashable]


_EXTENDED = _Format(_extended_row, lambda play: play.end, lambda play, item: item.uid)
_ACCOUNT = _Format(
    _account_row,
    lambda play: play.end - play.end % 60,
    lambda play, item: (play.kind == "episode", item.names),
)


class _Tally:
    def __init__(self) -> None:
        self.per_member: dict[str, int] = {}
        self.no_identity = self.bad_timestamp = self.repeated = 0
        self.distinct = self.episodes = self.audiobooks = self.under_30s = 0
        self.earliest: int | None = None
        self.latest: int | None = None

    def count(
        self, name: str, rows: list[tuple[_Play, bool]], fmt: _Format, seen: _RecentKeys
    ) -> None:
        self.per_member[name] = len(rows)
        for play, repeat in rows:
            if repeat:
                self.repeated += 1
            elif play.item is None:
                self.no_identity += 1
            elif play.bad_ts >= 0:
                self.bad_timestamp += 1
            else:
                when = fmt.when(play)
                if seen.add(when, (when, fmt.key(play, play.item))):
                    self._stored(play, when)

    def _stored(self, play: _Play, when: int) -> None:
        self.distinct += 1
        self.episodes += play.kind == "episode"
        self.audiobooks += play.kind == "chapter"
        self.under_30s += play.ms < 30_000
        self.earliest = when if self.earliest is None else min(self.earliest, when)
        self.latest = when if self.latest is None else max(self.latest, when)

    def truth(self, formats: list[str]) -> ExportTruth:
        return ExportTruth(
            records=sum(self.per_member.values()),
            per_member=dict(self.per_member),
            no_identity=self.no_identity,
            bad_timestamp=self.bad_timestamp,
            repeated=self.repeated,
            distinct_plays=self.distinct,
            episodes=self.episodes,
            audiobooks=self.audiobooks,
            under_30s=self.under_30s,
            earliest=_iso(self.earliest) if self.earliest is not None else "",
            latest=_iso(self.latest) if self.latest is not None else "",
            formats=formats,
        )


class _Mixer:
    """Places the repeat and order traps: an overlap with the previous member, swapped rows.

    The repeats are the previous member's last usable rows, again at the start of the next
    member, the way consecutive history files can overlap.
    """

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def mix(self, fresh: list[_Play], copies: list[_Play]) -> list[tuple[_Play, bool]]:
        rows = [(copy, True) for copy in copies] + [(play, False) for play in fresh]
        for _ in range(self._rng.randint(1, 3) if len(rows) > 1 else 0):
            at = self._rng.randrange(len(rows) - 1)
            rows[at], rows[at + 1] = rows[at + 1], rows[at]
        return rows

    def pick(self, fresh: list[_Play], count: int) -> list[_Play]:
        usable = [play for play in fresh if play.item is not None and play.bad_ts < 0]
        if count > len(usable):
            raise RuntimeError(f"{count} repeats planned from {len(usable)} usable rows")
        return usable[len(usable) - count :]


def _write_planned(
    zf: zipfile.ZipFile,
    plays: Iterator[_Play],
    plans: list[_MemberPlan],
    naming: Callable[[int, list[tuple[_Play, bool]]], str],
    fmt: _Format,
    mixer: _Mixer | None,
    tally: _Tally,
    *,
    bom: bool,
) -> list[str]:
    """Write one stream's members; with a mixer, with its repeat and order traps.

    With bom, the first member starts with a UTF-8 byte order mark.
    """
    names: list[str] = []
    copies: list[_Play] = []
    seen = _RecentKeys()  # per stream: each stream is in time order on its own
    for number, plan in enumerate(plans):
        fresh = list(itertools.islice(plays, plan.fresh))
        if len(fresh) != plan.fresh:
            raise RuntimeError(f"play stream ended after {len(fresh)} of {plan.fresh} plays")
        rows = mixer.mix(fresh, copies) if mixer else [(play, False) for play in fresh]
        if mixer and number + 1 < len(plans):
            copies = mixer.pick(fresh, plans[number + 1].repeats)
        names.append(naming(number, rows))
        _write_rows(zf, names[-1], (fmt.render(play) for play, _ in rows), bom=bom and not number)
        tally.count(names[-1], rows, fmt, seen)
    return names


def _audio_name(number: int, rows: list[tuple[_Play, bool]]) -> str:
    ends = [play.end for play, _ in rows if play.bad_ts < 0]
    first, last = time.gmtime(min(ends)).tm_year, time.gmtime(max(ends)).tm_year
    years = str(first) if first == last else f"{first}-{last}"  # as Spotify names them
    return f"{EXTENDED_DIR}/Streaming_History_Audio_{years}_{number}.json"


def _account_naming(stream: str) -> Callable[[int, list[tuple[_Play, bool]]], str]:
    return lambda number, _rows: f"{ACCOUNT_DIR}/StreamingHistory_{stream}_{number}.json"


# ---------------------------------------------------------------------------------------
# Families


def _write_extended_family(
    zf: zipfile.ZipFile, records: int, seed: int, traps: bool, tally: _Tally, *, mirror: bool
) -> None:
    plans = _plan_members(_rng(seed, "members"), records, _EXTENDED_PER_FILE, traps)
    fresh = sum(plan.fresh for plan in plans)
    library = _build_library(_rng(seed, "library"), records)
    timeline = _build_timeline(
        _rng(seed, "timeline"), _EXTENDED_DAYS, fresh, round(fresh * _EPISODE_SHARE)
    )
    trap_plan = _plan_traps(_rng(seed, "traps"), fresh, traps)
    listener = _Listener(library, timeline, trap_plan, seed, audiobooks=True, minute_unique=False)
    mixer = _Mixer(_rng(seed, "mixer")) if traps else None
    _write_bytes(zf, f"{EXTENDED_DIR}/ReadMeFirst_ExtendedStreamingHistory.pdf", _FAKE_PDF)
    names = _write_planned(
        zf, listener.plays(), plans, _audio_name, _EXTENDED, mixer, tally, bom=traps
    )
    video = f"{EXTENDED_DIR}/Streaming_History_Video_2019-2024.json"
    _write_rows(zf, video, _video_rows(seed), bom=False)
    if mirror:
        _write_account_mirror(zf, listener, tally)
        _write_account_extras(zf, library, seed)
    if traps:
        _write_junk(zf, names[0])


def _write_account_family(
    zf: zipfile.ZipFile, records: int, seed: int, traps: bool, tally: _Tally
) -> None:
    member_rng = _rng(seed, "members")
    podcast_records = round(records * _EPISODE_SHARE)
    music = _plan_members(member_rng, records - podcast_records, _ACCOUNT_PER_FILE, traps)
    podcast = _plan_members(member_rng, podcast_records, _ACCOUNT_PER_FILE, traps)
    music_plays = sum(plan.fresh for plan in music)
    podcast_plays = sum(plan.fresh for plan in podcast)
    library = _build_library(_rng(seed, "library"), records)
    timeline = _build_timeline(
        _rng(seed, "timeline"), _ACCOUNT_DAYS, music_plays + podcast_plays, podcast_plays
    )
    trap_plan = _plan_traps(_rng(seed, "traps"), music_plays + podcast_plays, traps)
    listener = _Listener(library, timeline, trap_plan, seed, audiobooks=False, minute_unique=True)
    mixer = _Mixer(_rng(seed, "mixer")) if traps else None
    # Music and podcast members are separate streams of the same plays: the days are
    # generated twice rather than keeping one stream's plays while writing the other's.
    names = _write_planned(
        zf,
        (play for play in listener.plays() if play.kind != "episode"),
        music,
        _account_naming("music"),
        _ACCOUNT,
        mixer,
        tally,
        bom=traps,
    )
    _write_planned(
        zf,
        (play for play in listener.plays() if play.kind == "episode"),
        podcast,
        _account_naming("podcast"),
        _ACCOUNT,
        mixer,
        tally,
        bom=False,
    )
    _write_account_extras(zf, library, seed)
    if traps:
        _write_junk(zf, names[0])


def _write_account_mirror(zf: zipfile.ZipFile, listener: _Listener, tally: _Tally) -> None:
    """The account-data files of the same listener: the last year's stored plays."""
    first_day = max(0, listener.days - _ACCOUNT_DAYS)
    streams = (("music", ("track", "local")), ("podcast", ("episode",)))
    for stream, kinds in streams:
        plays = (
            play
            for play in listener.plays(first_day)
            if play.item is not None and play.bad_ts < 0 and play.kind in kinds
        )
        for number in itertools.count():
            chunk = list(itertools.islice(plays, _ACCOUNT_PER_FILE))
            if not chunk:
                break
            name = f"{ACCOUNT_DIR}/StreamingHistory_{stream}_{number}.json"
            _write_rows(zf, name, map(_account_row, chunk), bom=False)
            tally.per_member[name] = len(chunk)


def _write_account_extras(zf: zipfile.ZipFile, library: _Library, seed: int) -> None:
    rng = _rng(seed, "extras")
    _write_json(zf, f"{ACCOUNT_DIR}/Userdata.json", _userdata(seed))
    _write_json(zf, f"{ACCOUNT_DIR}/Playlist1.json", _playlists(rng, library))
    _write_json(
        zf,
        f"{ACCOUNT_DIR}/Identity.json",
        {
            "displayName": "Zoë Ångström",
            "firstName": "Zoë",
            "lastName": "Ångström",
            "imageUrl": "",
            "largeImageUrl": "",
            "tasteMaker": False,
            "verified": False,
        },
    )


def _userdata(seed: int) -> dict[str, object]:
    return {
        "username": f"listener{seed}",
        "email": f"listener{seed}@example.com",
        "country": "DE",
        "createdFromFacebook": False,
        "facebookUid": None,
        "birthdate": "1990-04-12",
        "gender": "neutral",
        "postalCode": None,
        "mobileNumber": None,
        "mobileOperator": None,
        "mobileBrand": None,
        "creationTime": (END_DAY - timedelta(days=_EXTENDED_DAYS)).isoformat(),
    }


def _playlists(rng: random.Random, library: _Library) -> dict[str, object]:
    keys = ("trackName", "artistName", "albumName", "trackUri")
    playlists: list[dict[str, object]] = []
    for name in _PLAYLISTS:
        # The playlist entries need the plain names, which items keep only JSON-encoded.
        picks = rng.sample(library.tracks, min(len(library.tracks), rng.randint(8, 40)))
        added = (END_DAY - timedelta(days=rng.randint(0, 900))).isoformat()
        items = [
            {
                "track": dict(zip(keys, map(json.loads, item.fields[:4]), strict=True)),
                "episode": None,
                "localTrack": None,
                "addedDate": added,
            }
            for item in picks
        ]
        playlists.append(
            {"name": name, "lastModifiedDate": added, "items": items, "numberOfFollowers": 0}
        )
    return {"playlists": playlists}


def _video_rows(seed: int) -> list[str]:
    """The video history an importer must skip: rows with the audio keys, 2019-2024."""
    rng = _rng(seed, "video")
    first = (date(2019, 1, 1) - date(1970, 1, 1)).days * _DAY_SECONDS
    last = (date(2024, 12, 31) - date(1970, 1, 1)).days * _DAY_SECONDS
    shows: list[list[_Item]] = [_build_show(rng, name, 12) for name in _VIDEO_SHOWS]
    day = _Day(first, date(2019, 1, 1), 0.3, 1, False, _json("DE"))
    plays: list[str] = []
    for end in sorted(rng.randrange(first, last) for _ in range(rng.randint(12, 30))):
        item = rng.choice(rng.choice(shows))
        ms, reason_end, skipped = _spoken_playback(rng, item.duration_ms)
        session = _session(rng, day)
        play = _Play("episode", item, session, ms, session.start_reason, reason_end, skipped, end)
        plays.append(_extended_row(play))
    return plays


# ---------------------------------------------------------------------------------------
# CLI


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("out", type=Path, help="ZIP file to write")
    parser.add_argument(
        "--records",
        type=int,
        default=1_000_000,
        help="history records, traps included (of the extended part with --family both)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--family", choices=FAMILIES, default="extended")
    parser.add_argument("--no-traps", action="store_true", help="a clean export")
    parser.add_argument("--truth", type=Path, help="write the ground truth here as JSON")
    args = parser.parse_args()
    clock = time.monotonic()
    truth = generate_export(
        args.out, records=args.records, seed=args.seed, family=args.family, traps=not args.no_traps
    )
    elapsed = time.monotonic() - clock
    if args.truth is not None:
        args.truth.write_text(json.dumps(asdict(truth), indent=2, ensure_ascii=False) + "\n")
    print(
        f"{args.out}: {truth.records:,} records in {len(truth.per_member)} history members"
        f" ({' + '.join(truth.formats)}), {truth.distinct_plays:,} plays to store,"
        f" {truth.earliest} … {truth.latest}, {args.out.stat().st_size / 1e6:.1f} MB"
        f" in {elapsed:.1f} s"
    )


if __name__ == "__main__":
    main()
