"""Opening an export ZIP without extracting it: finding history members, refusing hostile
archives, and streaming a member's JSON records.

Limits are checked twice: against what the ZIP directory declares before anything is
inflated, and against the bytes actually inflated while reading, so an archive that
lies about its sizes is stopped as well.
"""

from __future__ import annotations

import hashlib
import re
import zipfile
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import IO, Any, Literal, Protocol

import ijson
import orjson

from playlog.errors import ValidationFailed
from playlog.exports.storage import ZIP_SIGNATURE

Format = Literal["extended", "account_data"]

_BOM = b"\xef\xbb\xbf"
_CHUNK = 256 * 1024
# Bulk parsing (see _bulk): cuts tried per chunk (a record's nested objects and names
# may hold a few "}"), and the most unparsed bytes held.
_BULK_TRIES = 8
_BULK_MAX = 4 * 1024 * 1024
MB = 1024 * 1024

# History files by name (any folder depth). Video history is deliberately absent.
_NAME_PATTERNS: tuple[tuple[re.Pattern[str], Format], ...] = (
    (re.compile(r"^streaming_history_audio_.*\.json$", re.IGNORECASE), "extended"),
    (re.compile(r"^endsong(_\d+)?\.json$", re.IGNORECASE), "extended"),
    (re.compile(r"^streaminghistory\d*\.json$", re.IGNORECASE), "account_data"),
    (re.compile(r"^streaminghistory_(music|podcast)_\d+\.json$", re.IGNORECASE), "account_data"),
)
# Keys every record of a family carries; a file named like history whose records lack
# them is not history (e.g. a renamed playlist file).
REQUIRED_KEYS: dict[Format, frozenset[str]] = {
    "extended": frozenset({"ts", "ms_played"}),
    "account_data": frozenset({"endTime", "msPlayed"}),
}


class ArchiveLimits(Protocol):
    """What an archive may be (``ImportSettings``, or its copy in the reader process,
    which does not load the settings machinery)."""

    @property
    def import_max_zip_size_mb(self) -> int: ...
    @property
    def import_max_zip_size_bytes(self) -> int: ...
    @property
    def import_max_uncompressed_mb(self) -> int: ...
    @property
    def import_max_compression_ratio(self) -> float: ...
    @property
    def import_max_members(self) -> int: ...


class ExportRejected(ValidationFailed):
    """The file is refused. Found on opening it, nothing of it is stored; found while
    reading it (a cap on records or inflated bytes), the history files before stay stored
    and the message says so (a re-import skips them)."""

    code = "export_rejected"


class MemberFailed(Exception):
    """One history member cannot be read; it is skipped whole and named in the report."""


@dataclass(frozen=True)
class HistoryMember:
    info: zipfile.ZipInfo
    format: Format

    @property
    def name(self) -> str:
        return self.info.filename

    @property
    def size(self) -> int:
        return self.info.file_size

    @property
    def compressed_size(self) -> int:
        return self.info.compress_size


def classify(name: str) -> Format | None:
    """The history family a member's path names, or None for anything else. Folders may
    be separated by backslashes (some Windows tools write them so)."""
    path = PurePosixPath(name.replace("\\", "/"))
    if "__MACOSX" in path.parts or path.name.startswith("._"):
        return None
    for pattern, family in _NAME_PATTERNS:
        if pattern.match(path.name):
            return family
    return None


def _natural_key(member: HistoryMember) -> tuple[int, list[Any]]:
    # Extended history first, so account-data rows of the same plays meet them stored;
    # "…_2.json" before "…_10.json".
    parts = re.split(r"(\d+)", member.name)
    return (0 if member.format == "extended" else 1, [int(p) if p.isdigit() else p for p in parts])


class ExportArchive:
    """A ZIP export opened for reading; use as a context manager."""

    def __init__(self, path: Path, limits: ArchiveLimits) -> None:
        self.path = path
        self.limits = limits
        self.inflated = 0
        self.size = path.stat().st_size
        self._zip = _open_zip(path, self.size, limits)
        try:
            self.members, self.ignored = self._history_members()
        except BaseException:
            self._zip.close()
            raise

    def __enter__(self) -> ExportArchive:
        return self

    def __exit__(self, *_: object) -> None:
        self._zip.close()

    def _history_members(self) -> tuple[list[HistoryMember], list[str]]:
        infos = self._zip.infolist()
        if len(infos) > self.limits.import_max_members:
            raise ExportRejected(
                f"the ZIP holds {len(infos)} files, more than IMPORT_MAX_MEMBERS "
                f"({self.limits.import_max_members})"
            )
        members: list[HistoryMember] = []
        ignored: list[str] = []
        for info in infos:
            family = None if info.is_dir() else classify(info.filename)
            if family is None:
                if not info.is_dir():
                    ignored.append(info.filename)
                continue
            if info.flag_bits & 0x1:
                raise ExportRejected(
                    "the ZIP is password-protected; download the export again and upload it "
                    "as Spotify sent it"
                )
            self._check_ratio(info.filename, info.file_size, info.compress_size)
            members.append(HistoryMember(info, family))
        if not members:
            raise ExportRejected(
                "no Spotify streaming history in the ZIP (looked for "
                "Streaming_History_Audio_*.json, endsong_*.json and StreamingHistory*.json)"
            )
        declared = sum(member.size for member in members)
        if declared > self.limits.import_max_uncompressed_mb * MB:
            raise ExportRejected(
                f"the history files declare {declared / MB:.0f} MB uncompressed, more than "
                f"IMPORT_MAX_UNCOMPRESSED_MB ({self.limits.import_max_uncompressed_mb})"
            )
        return sorted(members, key=_natural_key), ignored

    def _check_ratio(self, name: str, size: int, compressed: int) -> None:
        ratio = size / max(compressed, 1)
        if ratio > self.limits.import_max_compression_ratio:
            raise ExportRejected(
                f"{name} inflates {ratio:.0f}-fold, more than IMPORT_MAX_COMPRESSION_RATIO "
                f"({self.limits.import_max_compression_ratio:g}): refusing a likely zip bomb"
            )

    def digest(self, member: HistoryMember) -> str:
        """sha256 of a member's content, read without parsing."""
        with self._stream(member) as stream:
            while stream.read(_CHUNK):
                pass
            return stream.hexdigest()

    def records(self, member: HistoryMember, sink: MemberRead) -> Iterator[dict[str, Any]]:
        """Yield the records of a member one by one; ``sink`` receives its digest.

        Raises :class:`MemberFailed` for content that is not a JSON array of objects with
        the family's keys. The member is read to its end (which makes zipfile verify its
        CRC) before the last record is handed out, so a damaged member never looks whole.
        """
        with self._stream(member) as stream:
            yield from _parse(stream, member)
            sink.digest = stream.hexdigest()

    def _stream(self, member: HistoryMember) -> _MemberStream:
        try:
            raw = self._zip.open(member.info)
        except NotImplementedError as exc:
            raise MemberFailed(f"unsupported compression: {exc}") from None
        except (zipfile.BadZipFile, OSError) as exc:
            raise MemberFailed(f"damaged in the ZIP: {exc}") from None
        return _MemberStream(raw, member, self)


@dataclass
class MemberRead:
    """Filled in once a member has been read completely."""

    digest: str = ""


def _open_zip(path: Path, size: int, limits: ArchiveLimits) -> zipfile.ZipFile:
    if size > limits.import_max_zip_size_bytes:
        raise ExportRejected(
            f"the file is {size / MB:.0f} MB, more than IMPORT_MAX_ZIP_SIZE_MB "
            f"({limits.import_max_zip_size_mb})"
        )
    with path.open("rb") as handle:
        head = handle.read(len(ZIP_SIGNATURE))
    if head != ZIP_SIGNATURE:
        raise ExportRejected("not a ZIP file (a Spotify export is a .zip archive)")
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
        raise ExportRejected(f"the ZIP is truncated or damaged ({exc})") from None


class _MemberStream:
    """A member's bytes: BOM stripped, inflated bytes counted and capped, digest kept."""

    def __init__(self, raw: IO[bytes], member: HistoryMember, archive: ExportArchive) -> None:
        self._raw = raw
        self._member = member
        self._archive = archive
        self._hash = hashlib.sha256()
        self._first = True
        self.count = 0

    def __enter__(self) -> _MemberStream:
        return self

    def __exit__(self, *_: object) -> None:
        self._raw.close()

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def read(self, size: int = -1) -> bytes:
        # Never "everything": a member is read in bounded chunks whatever is asked.
        if size == 0:
            return b""
        try:
            data = self._raw.read(size if size > 0 else _CHUNK)
        except zipfile.BadZipFile as exc:
            raise MemberFailed(f"damaged in the ZIP ({exc})") from None
        except (OSError, EOFError, ValueError) as exc:
            raise MemberFailed(f"cannot be inflated ({exc})") from None
        self._hash.update(data)
        self._account(len(data))
        if self._first and data:
            self._first = False
            if data.startswith(_BOM):
                data = data[len(_BOM) :]
        return data

    def _account(self, count: int) -> None:
        self.count += count
        self._archive.inflated += count
        limits = self._archive.limits
        if self.count > self._member.size:
            raise ExportRejected(
                f"{self._member.name} inflates beyond the size its ZIP entry declares"
            )
        self._archive._check_ratio(self._member.name, self.count, self._member.compressed_size)
        if self._archive.inflated > limits.import_max_uncompressed_mb * MB:
            raise ExportRejected(
                f"the history files inflate beyond IMPORT_MAX_UNCOMPRESSED_MB "
                f"({limits.import_max_uncompressed_mb})"
            )


class _Chunks(Protocol):
    def read(self, size: int = -1) -> bytes: ...


class _Peeked:
    """Put back bytes read while checking how a member starts."""

    def __init__(self, head: bytes, stream: _MemberStream) -> None:
        self._head = head
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        if size == 0:  # ijson probes with read(0) whether the stream gives bytes
            return b""
        if self._head:
            head, self._head = self._head, b""
            return head
        return self._stream.read(size)


def _parse(stream: _MemberStream, member: HistoryMember) -> Iterator[dict[str, Any]]:
    head = b""
    while not head:  # blank chunks are dropped as they come: a run of them costs no copies
        chunk = stream.read(_CHUNK)
        if not chunk:
            raise MemberFailed("the file is empty")
        head = chunk.lstrip()
    if head[:1] == b"{":
        raise MemberFailed("expected a JSON array of records, found a JSON object")
    if head[:1] != b"[":
        raise MemberFailed("not JSON: the file does not start with a JSON array")
    required = REQUIRED_KEYS[member.format]
    count = 0
    try:
        for record in _records(stream, head[1:]):
            if count == 0:
                if not isinstance(record, dict):
                    raise MemberFailed(
                        f"expected JSON objects as records, found {_json_type(record)}"
                    )
                if not required <= record.keys():
                    raise MemberFailed(
                        "records do not look like Spotify streaming history (missing "
                        + ", ".join(sorted(required - record.keys()))
                        + ")"
                    )
            count += 1
            yield record
        # Whatever follows the array must be blank; reading to the end also makes
        # zipfile check the member's CRC.
        while tail := stream.read(_CHUNK):
            if tail.strip():
                raise MemberFailed("unexpected data after the JSON array")
    except ijson.IncompleteJSONError as exc:
        where = f" after record {count}" if count else ""
        if "trailing garbage" in str(exc):
            raise MemberFailed("unexpected data after the JSON array") from None
        if "premature EOF" in str(exc) or "Incomplete JSON" in str(exc):
            raise MemberFailed(f"the JSON ends abruptly{where} (file truncated?)") from None
        raise MemberFailed(f"not valid JSON{where}: {first_line(exc)}") from None
    except ijson.JSONError as exc:
        where = f" after record {count}" if count else ""
        raise MemberFailed(f"not valid JSON{where}: {first_line(exc)}") from None
    except UnicodeDecodeError:
        raise MemberFailed("not UTF-8 text") from None


def _records(stream: _MemberStream, rest: bytes) -> Iterator[Any]:
    """The array's elements, from ``rest`` (what follows its ``[``) and the stream.

    Runs of whole records are parsed in bulk (:func:`_bulk`); where that cannot go on,
    the streaming parser takes over from the last record parsed, and judges what is
    there: the array's end, or an error with its own message.
    """
    rest, started = yield from _bulk(stream, rest)
    body = rest.lstrip()
    if body[:1] == b"]" and not body[1:].strip():
        return
    # After parsed records the rest starts at their separator: an empty object stands
    # in for them, so the streaming parser sees a well-formed array up to that point.
    prefix = b"[{}" if started else b"["
    # Numbers come as Decimals (the float parser refuses one beyond a double's range, such
    # as 1e400, and would fail the whole file for it) and are made floats, as the bulk
    # parser gives them: out of range, an infinity, which the record checks refuse.
    items = ijson.items(_Peeked(prefix + rest, stream), "item", use_float=False, buf_size=_CHUNK)
    if started:
        next(items, None)
    yield from map(_floats, items)


def _floats(value: Any) -> Any:
    """``value`` with the Decimals in it as floats."""
    if value.__class__ is Decimal:
        return float(value)
    if value.__class__ is dict:
        return {key: _floats(item) for key, item in value.items()}
    if value.__class__ is list:
        return [_floats(item) for item in value]
    return value


def _bulk(stream: _Chunks, rest: bytes) -> Generator[Any, None, tuple[bytes, bool]]:
    """Parse whole records a chunk at a time; return the unparsed rest and whether any
    record was parsed.

    Each chunk is cut after its last ``}`` and parsed as an array. A cut that is not the
    end of a top-level record (inside a string, or in a nested object) leaves an
    unterminated string or object, so such a parse fails at its very end, and then the
    ``}`` before is tried, or the next chunk read. A parse that fails before its end
    found broken (or unusual) JSON, and that, the end of the array, or a record larger
    than :data:`_BULK_MAX` stops this and is left to the streaming parser.
    """
    started = False
    while True:
        chunk = stream.read(_CHUNK)
        rest += chunk
        body = rest.lstrip()
        if started:
            if not body and chunk:
                rest = b""  # blank between records: kept, it would be copied again and again
                continue
            if body[:1] != b",":
                return rest, started
            body = body[1:]
        parsed = None
        cut = body.rfind(b"}")
        for _ in range(_BULK_TRIES):
            if cut < 0:
                break
            document = b"[" + body[: cut + 1] + b"]"
            try:
                parsed = orjson.loads(document)
                break
            except orjson.JSONDecodeError as exc:
                # orjson counts the position in characters of the text it decoded.
                if exc.pos < len(exc.doc) - 1:
                    return rest, started
                cut = body.rfind(b"}", 0, cut)
        if parsed is None:
            if not chunk or len(rest) > _BULK_MAX:
                return rest, started
            continue
        started = True
        rest = body[cut + 1 :]
        yield from parsed


def _json_type(value: object) -> str:
    names = {str: "strings", int: "numbers", float: "numbers", bool: "booleans", list: "arrays"}
    return names.get(type(value), "null values" if value is None else type(value).__name__)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
