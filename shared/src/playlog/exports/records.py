"""Export records to staged plays: identity, time, behaviour fields, skip reasons.

One :class:`MemberRows` collects a member's plays as rows of :data:`STAGE_COLUMNS`,
encoded for COPY as they are read, plus the catalog items first seen in it. A record
that cannot be a play is counted under a reason and never stored.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from playlog.exports import copydata
from playlog.exports.archive import Format
from playlog.history.identity import local_artist_id, local_track_id
from playlog.text import storable

STAGE_COLUMNS = (
    "played_at",
    "track_id",
    "ms_played",
    "reason_start",
    "reason_end",
    "shuffle",
    "skipped",
    "offline",
    "incognito",
    "sensitive",
)
# Extended-history fields that identify a person or a device (DESIGN §3).
SENSITIVE_FIELDS = (
    "ip_addr",
    "ip_addr_decrypted",
    "user_agent_decrypted",
    "username",
    "conn_country",
    "platform",
)

# Skip reasons, as reported.
NO_IDENTITY = "no_identity"
BAD_TIMESTAMP = "bad_timestamp"
INVALID_MS_PLAYED = "invalid_ms_played"
NOT_AN_OBJECT = "not_an_object"

# (track_id, kind, name, album_name, show_name, uri, artist_id, artist_name)
Item = tuple[str, str, str, str | None, str | None, str | None, str | None, str | None]
_MAX_INT4 = 2**31 - 1
_TRACK_URI = "spotify:track:"
# Spotify ids are 22 characters; a longer "id" (a hostile file's) would not fit the id
# indexes, so the row is identified by its names instead, like a local file.
_MAX_SPOTIFY_ID = 64
_MAX_TRACK_URI = len(_TRACK_URI) + _MAX_SPOTIFY_ID
# The days any analytics window may cover: a timestamp outside is not a play of any
# streaming service (and past the calendar's ends not even storable).
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_LATEST = datetime(2100, 12, 31, 23, 59, 59, tzinfo=UTC)
# "YYYY-MM-DD HH:MM": a date alone is no time of a play.
_SHORTEST_TIME = 16


# Two rows of one family at the same end time with the same item are one play recorded
# twice, unless they differ in length and one of them is shorter than the export's
# precision (a second in extended history, a minute in account data): one account plays
# one stream at a time, so only then can both be real, such as a track that ends and,
# played again on repeat, is skipped before the clock moves on. DESIGN §6: rows of one
# precision are duplicates only when they match exactly. The plays' key is (user, end
# time, item), so the later such rows are stored 1, 2, … microseconds later, inside the
# second or minute the export gives. Spotify's files are in time order, so rows are
# compared with the rows before them that end at the same time as spelled in the file
# (a member repeating the end of the previous one gets the same times again, and so adds
# nothing); in a file out of order, rows apart count as duplicates as before, and so do
# the rows at one time past _MAX_APART (only a hostile file has them).
_MAX_APART = 999
_PRECISION_MS = {"extended": 1_000, "account_data": 60_000}
_UNSEEN = object()


def _apart(
    at_time: dict[str, Any], track_id: str, played_at: datetime, ms: int | None, precision: int
) -> datetime:
    """The end time to store a row at, when rows before it end at the same time:
    ``at_time`` holds their items' lengths (one, or the list of them in file order)."""
    seen = at_time.get(track_id, _UNSEEN)
    if seen is _UNSEEN:
        at_time[track_id] = ms
        return played_at
    if seen == ms:
        return played_at
    lengths: list[int | None] = seen if seen.__class__ is list else [seen]
    try:
        index = lengths.index(ms)
    except ValueError:
        first = lengths[0]
        short = (ms is not None and ms < precision) or (first is not None and first < precision)
        if not short or len(lengths) > _MAX_APART:
            return played_at
        index = len(lengths)
        lengths.append(ms)
    at_time[track_id] = lengths
    return played_at + timedelta(microseconds=index)


# Hashing names costs microseconds; exports name the same few thousand items over and over.
_artist_id = lru_cache(maxsize=65_536)(local_artist_id)
_track_id = lru_cache(maxsize=65_536)(local_track_id)
# Takes whatever a record holds: anything but an ISO 8601 string raises.
_fromisoformat: Callable[[Any], datetime] = datetime.fromisoformat
_stage_row = copydata.stage_row
_behaviours = copydata.behaviour_cache


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _time(value: object) -> datetime | None:
    if not isinstance(value, str) or len(value) < _SHORTEST_TIME:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    # Both export families give UTC; account data without a zone designator. Another
    # offset still names one instant: kept, as UTC like every other (once in range).
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC) if _EARLIEST <= parsed <= _LATEST else None


def _storable(value: Any) -> Any:
    """A kept sensitive value (text or a number) with NULs and lone surrogates replaced
    and an infinity (a number beyond a double's range, such as 1e400) as null: JSON may
    spell all three, PostgreSQL's jsonb takes none."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class MemberRows:
    """Plays and new catalog items of one member, in memory for one batch at a time."""

    def __init__(self, family: Format, known: set[str], *, keep_sensitive: bool) -> None:
        # COPY-encoded (playlog.exports.copydata.stage_row).
        self.rows: list[bytes] = []
        self.items: dict[str, Item] = {}
        self.skipped: Counter[str] = Counter()
        self.records = 0
        self.earliest: datetime | None = None
        self.latest: datetime | None = None
        self._known = known
        self._keep_sensitive = keep_sensitive
        # The last end time as spelled, its first row's item and length, and (once a
        # second row ends then, None before) every item's lengths at that time (_apart).
        self._last_time: str | None = None
        self._first_item = ""
        self._first_ms: int | None = None
        self._at_time: dict[str, Any] | None = None
        self._precision_ms = _PRECISION_MS[family]
        self.add: Callable[[Any], None] = (
            self._add_extended if family == "extended" else self._add_account_data
        )

    def take_rows(self) -> list[bytes]:
        rows, self.rows = self.rows, []
        return rows

    def _item(self, item: Item) -> None:
        if item[0] not in self._known and item[0] not in self.items:
            self.items[item[0]] = item

    def _stored_at(
        self, spelled: str, played_at: datetime, track_id: str, ms: int | None
    ) -> datetime:
        """The end time a row (ending at ``played_at``, spelled so in the file) is
        stored at: its own, or just after it when it is another playback than the rows
        before it at that time (see _apart)."""
        if spelled != self._last_time:
            self._last_time, self._first_item, self._first_ms = spelled, track_id, ms
            self._at_time = None
            return played_at
        return self._at_same_time(played_at, track_id, ms)

    def _at_same_time(self, played_at: datetime, track_id: str, ms: int | None) -> datetime:
        if self._at_time is None:
            self._at_time = {self._first_item: self._first_ms}
        return _apart(self._at_time, track_id, played_at, ms, self._precision_ms)

    def _span(self, played_at: datetime) -> None:
        if self.earliest is None or played_at < self.earliest:
            self.earliest = played_at
        if self.latest is None or played_at > self.latest:
            self.latest = played_at

    def _common(
        self, record: Any, time_key: str, ms_key: str
    ) -> tuple[datetime, int | None] | None:
        self.records += 1
        if not isinstance(record, dict):
            self.skipped[NOT_AN_OBJECT] += 1
            return None
        played_at = _time(record.get(time_key))
        if played_at is None:
            self.skipped[BAD_TIMESTAMP] += 1
            return None
        ms = record.get(ms_key)
        if isinstance(ms, float) and ms.is_integer():
            ms = int(ms)
        if ms is not None and (type(ms) is not int or ms < 0 or ms > _MAX_INT4):
            self.skipped[INVALID_MS_PLAYED] += 1
            return None
        return played_at, ms

    # Runs once per record of an import: the checks of _common and _time and the span are
    # written out here as plain expressions (each call would cost about as much as the
    # work it does), and the row is encoded for COPY at once.
    def _add_extended(self, record: Any) -> None:
        self.records += 1
        if not isinstance(record, dict):
            self.skipped[NOT_AN_OBJECT] += 1
            return
        get = record.get
        ts: Any = get("ts")
        try:
            played_at = _fromisoformat(ts)
        except (TypeError, ValueError):
            self.skipped[BAD_TIMESTAMP] += 1
            return
        if played_at.tzinfo is None:
            played_at = played_at.replace(tzinfo=UTC)
        if len(ts) < _SHORTEST_TIME or not _EARLIEST <= played_at <= _LATEST:
            self.skipped[BAD_TIMESTAMP] += 1
            return
        if played_at.tzinfo is not UTC:  # "Z" parses to UTC itself: no call for it
            played_at = played_at.astimezone(UTC)
        ms = get("ms_played")
        if ms.__class__ is not int and ms is not None:
            ms = int(ms) if ms.__class__ is float and ms.is_integer() else -1
        if ms is not None and not 0 <= ms <= _MAX_INT4:
            self.skipped[INVALID_MS_PLAYED] += 1
            return
        uri = get("spotify_track_uri")
        if (
            uri.__class__ is str
            and uri.startswith(_TRACK_URI)
            and len(_TRACK_URI) < len(uri) <= _MAX_TRACK_URI
        ):
            # Most plays: the id is in the URI, and the item is only built when it is new.
            track_id = uri[len(_TRACK_URI) :]
            if track_id not in self.items and track_id not in self._known:
                self.items[track_id] = _spotify_track(record, track_id, uri)
        else:
            item = _extended_item(record)
            if item is None:
                self.skipped[NO_IDENTITY] += 1
                return
            track_id = item[0]
            self._item(item)
        # _stored_at written out: nearly every row ends at a time of its own.
        if ts != self._last_time:
            self._last_time, self._first_item, self._first_ms = ts, track_id, ms
            self._at_time = None
        else:
            played_at = self._at_same_time(played_at, track_id, ms)
        if self.earliest is None or played_at < self.earliest:
            self.earliest = played_at
        if self.latest is None or played_at > self.latest:
            self.latest = played_at
        sensitive = None
        if self._keep_sensitive:
            # Spotify writes these as text or numbers: anything else is not theirs (and
            # a value nested a thousand levels deep would not survive json.dumps).
            kept = {
                key: value
                for key in SENSITIVE_FIELDS
                if (value := get(key)) is not None and not isinstance(value, list | dict)
            }
            sensitive = json.dumps(kept) if kept else None
            if sensitive is not None and (
                "\\u0000" in sensitive or "\\ud" in sensitive or "Infinity" in sensitive
            ):
                sensitive = json.dumps({key: _storable(value) for key, value in kept.items()})
        start, end = get("reason_start"), get("reason_end")
        shuffle, skipped = get("shuffle"), get("skipped")
        offline, incognito = get("offline"), get("incognito_mode")
        try:  # copydata.behaviour's own cache lookup, without the call
            behaviour = _behaviours[
                (start, end, id(shuffle), id(skipped), id(offline), id(incognito))
            ]
        except (KeyError, TypeError):
            behaviour = copydata.behaviour(start, end, shuffle, skipped, offline, incognito)
        self.rows.append(_stage_row(played_at, track_id, ms, behaviour, sensitive))

    def _add_account_data(self, record: Any) -> None:
        common = self._common(record, "endTime", "msPlayed")
        if common is None:
            return
        item = _account_item(record)
        if item is None:
            self.skipped[NO_IDENTITY] += 1
            return
        self._item(item)
        played_at = self._stored_at(record["endTime"], common[0], item[0], common[1])
        self._span(played_at)
        self.rows.append(_stage_row(played_at, item[0], common[1], copydata.NO_BEHAVIOUR, None))


def _extended_item(record: dict[str, Any]) -> Item | None:
    """The item of a record without a ``spotify:track:<id>`` URI (those are handled by
    :meth:`MemberRows._add_extended`)."""
    track_uri = _text(record.get("spotify_track_uri"))
    track_name = _text(record.get("master_metadata_track_name"))
    if track_uri or track_name:
        if track_name is None:
            return None
        artist = _text(record.get("master_metadata_album_artist_name"))
        album = _text(record.get("master_metadata_album_album_name"))
        return _music(_track_id(artist, track_name, album), track_name, album, None, artist)
    episode_uri = _text(record.get("spotify_episode_uri"))
    episode_name = _text(record.get("episode_name"))
    if episode_uri or episode_name:
        show = _text(record.get("episode_show_name"))
        return _spoken("episode", episode_uri, episode_name, show)
    chapter_uri = _text(record.get("audiobook_chapter_uri"))
    chapter = _text(record.get("audiobook_chapter_title"))
    if chapter_uri or chapter:
        book = _text(record.get("audiobook_title"))
        return _spoken("audiobook", chapter_uri, chapter or book, book)
    return None


def _spotify_track(record: dict[str, Any], spotify_id: str, uri: str) -> Item:
    name = _text(record.get("master_metadata_track_name"))
    album = _text(record.get("master_metadata_album_album_name"))
    artist = _text(record.get("master_metadata_album_artist_name"))
    return _music(spotify_id, name or spotify_id, album, uri, artist)


def _account_item(record: dict[str, Any]) -> Item | None:
    if "podcastName" in record or "episodeName" in record:
        show = _text(record.get("podcastName"))
        episode = _text(record.get("episodeName"))
        return _spoken("episode", None, episode, show) if episode else None
    track_name = _text(record.get("trackName"))
    if track_name is None:
        return None
    artist = _text(record.get("artistName"))
    return _music(_track_id(artist, track_name, None), track_name, None, None, artist)


def _music(
    track_id: str, name: str, album: str | None, uri: str | None, artist: str | None
) -> Item:
    artist_id = _artist_id(artist) if artist else None
    return (track_id, "track", name, album, None, uri, artist_id, artist)


def _spoken(kind: str, uri: str | None, name: str | None, show: str | None) -> Item | None:
    """A podcast episode or audiobook chapter; the show (or book) stands for the artist
    when names are compared across sources."""
    spotify_id = uri.rsplit(":", 1)[-1] if uri and uri.startswith("spotify:") else None
    if spotify_id is not None and not 0 < len(spotify_id) <= _MAX_SPOTIFY_ID:
        spotify_id = None
    if spotify_id is None and name is None:
        return None
    track_id = spotify_id or _track_id(show, name, None)
    return (track_id, kind, name or track_id, None, show, uri if spotify_id else None, None, show)
