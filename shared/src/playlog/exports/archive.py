"""Opening an export ZIP without extracting it: finding history members, refusing hostile
archives, and streaming a member's JSON records.

Limits are checked twice: against what the ZIP directory declares before anything is
inflated, and against the bytes actually inflated while reading, so an archive that
lies about its sizes is stopped as well.
"""

from __future__ import annotations

import functools
import hashlib
import lzma
import math
import re
import struct
import sys
import zipfile
import zlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import IO, Any, Literal, Protocol

import ijson
import orjson

from playlog.errors import ValidationFailed
from playlog.exports.storage import EMPTY_ZIP_REFUSAL, EMPTY_ZIP_SIGNATURE, ZIP_SIGNATURE

Format = Literal["extended", "account_data"]

_BOM = b"\xef\xbb\xbf"
_CHUNK = 256 * 1024
# Bulk parsing (see _bulk): cuts tried per chunk (a record's nested objects and names
# may hold a few "}"), and the most unparsed bytes held.
_BULK_TRIES = 8
_BULK_MAX = 4 * 1024 * 1024
MB = 1024 * 1024
# How deep a record's values may nest (the bulk parser's own limit, with the array).
MAX_DEPTH = 1023

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
    # Bytes of the file from this entry's header to the next entry's (or the directory):
    # all its compressed data can be, whatever its entry declares.
    span: int

    @property
    def name(self) -> str:
        return self.info.filename

    @property
    def size(self) -> int:
        return self.info.file_size

    @property
    def compressed_size(self) -> int:
        """Compressed bytes: as declared, but never more than the file holds for it."""
        return min(self.info.compress_size, self.span)


def _path(name: str) -> PurePosixPath:
    """A member's path; folders may be separated by backslashes (some Windows tools
    write them so)."""
    return PurePosixPath(name.replace("\\", "/"))


def classify(name: str) -> Format | None:
    """The history family a member's path names, or None for anything else."""
    path = _path(name)
    if "__MACOSX" in path.parts or path.name.startswith("._"):
        return None
    for pattern, family in _NAME_PATTERNS:
        if pattern.match(path.name):
            return family
    return None


def _member_order(member: HistoryMember) -> tuple[int, int, list[Any]]:
    """Extended history first, so account-data rows of the same plays meet them stored;
    then by the file's own sequence number, the last number of its name.

    Spotify numbers each family's files in the order of their plays, and their names
    carry the years they span: by name "…_2017-2018_6.json" would come before
    "…_2017_1.json". Stored out of time order, every later member's plays land in the
    middle of the plays' index instead of at its end, and PostgreSQL splits a full page
    there in half where it leaves the last page 90% full (a million plays: 13,087 leaf
    pages 56% full instead of 8,202 90% full, and a first import about 4% slower). The
    whole name, with its numbers compared as numbers ("…_2.json" before "…_10.json"),
    breaks ties.
    """
    # ASCII digits only: other characters count as digits for str.isdigit ("²") but not
    # for int().
    numbers = re.findall(r"[0-9]+", _path(member.name).stem)
    parts = re.split(r"([0-9]+)", member.name)
    natural = [int(part) if index % 2 else part for index, part in enumerate(parts)]
    return (
        0 if member.format == "extended" else 1,
        int(numbers[-1]) if numbers else -1,
        natural,
    )


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
        _check_member_count(len(infos), self.limits)
        # Where each entry's bytes end: at the next entry's header, or the directory.
        offsets = sorted({info.header_offset for info in infos})
        ends = dict(
            zip(offsets, [*offsets[1:], getattr(self._zip, "start_dir", self.size)], strict=True)
        )
        members: list[HistoryMember] = []
        ignored: list[str] = []
        for info in infos:
            if not info.filename:
                ignored.append("(an entry without a name)")
                continue
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
            member = HistoryMember(
                info, family, max(ends[info.header_offset] - info.header_offset, 0)
            )
            self._check_ratio(member.name, member.size, member.compressed_size)
            members.append(member)
        if not members:
            raise ExportRejected(
                "no Spotify streaming history in the ZIP (looked for "
                "Streaming_History_Audio_*.json, endsong_*.json and StreamingHistory*.json)"
            )
        declared = sum(member.size for member in members)
        if declared > self.limits.import_max_uncompressed_mb * MB:
            raise ExportRejected(
                f"the history files declare {_mb(declared)} uncompressed, more than "
                f"IMPORT_MAX_UNCOMPRESSED_MB ({self.limits.import_max_uncompressed_mb})"
            )
        return sorted(members, key=_member_order), ignored

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
        """Yield the records of a member one by one; ``sink`` follows the bytes inflated
        so far and receives the digest at the end.

        Raises :class:`MemberFailed` for content that is not a JSON array of objects with
        the family's keys. The member is read to its end (which makes zipfile verify its
        CRC) before the last record is handed out, so a damaged member never looks whole.
        """
        with self._stream(member, sink) as stream:
            yield from _parse(stream, member)
            sink.digest = stream.hexdigest()

    def _stream(self, member: HistoryMember, sink: MemberRead | None = None) -> _MemberStream:
        try:
            raw = self._zip.open(member.info)
        except NotImplementedError as exc:
            raise MemberFailed(f"unsupported compression: {first_line(exc)}") from None
        except (zipfile.BadZipFile, OSError, UnicodeDecodeError) as exc:
            raise MemberFailed(f"damaged in the ZIP: {first_line(exc)}") from None
        return _MemberStream(raw, member, self, sink)


@dataclass
class MemberRead:
    """How far a member has been read: its bytes inflated so far, and its digest once it
    has been read completely."""

    inflated: int = 0
    digest: str = ""


def _mb(size: int) -> str:
    """A size in MB, rounded up to a tenth: never shown equal to a cap it exceeds."""
    return f"{math.ceil(size * 10 / MB) / 10:g} MB"


def _check_member_count(count: int, limits: ArchiveLimits) -> None:
    if count > limits.import_max_members:
        raise ExportRejected(
            f"the ZIP holds {count} files, more than IMPORT_MAX_MEMBERS "
            f"({limits.import_max_members})"
        )


# The end-of-directory records: the classic one (22 bytes and a comment of up to 64 KB
# at the end of the file) and, for large archives, the ZIP64 one its locator points to.
_END = b"PK\x05\x06"
_END64_LOCATOR = b"PK\x06\x07"
_END64 = b"PK\x06\x06"
# A directory entry is 46 bytes with its name, extra field and comment (about 150 bytes
# in all in Spotify's exports); many times that per entry on average is no export's.
_DIRECTORY_BYTES_PER_ENTRY = 4096


def _check_directory(handle: IO[bytes], size: int, limits: ArchiveLimits) -> None:
    """Refuse a directory of more entries than IMPORT_MAX_MEMBERS (or of more bytes than
    they could need) from its end record, before zipfile reads every entry into memory:
    half a million entries took 318 MB and five seconds only to be refused then."""
    tail_size = min(size, 22 + 65535)
    handle.seek(size - tail_size)
    tail = handle.read(tail_size)
    at = tail.rfind(_END)
    if at < 0 or len(tail) - at < 22:
        return  # not found: zipfile says what is wrong
    entries, directory_size = struct.unpack_from("<HI", tail, at + 10)
    if entries == 0xFFFF or directory_size == 0xFFFFFFFF:
        locator = tail[at - 20 : at] if at >= 20 else b""
        if locator[:4] == _END64_LOCATOR:
            (offset,) = struct.unpack_from("<Q", locator, 8)
            handle.seek(min(offset, size))
            record = handle.read(56)
            if record[:4] == _END64 and len(record) == 56:
                entries, directory_size = struct.unpack_from("<QQ", record, 32)
    _check_member_count(entries, limits)
    if directory_size > max(entries, 1) * _DIRECTORY_BYTES_PER_ENTRY:
        raise ExportRejected(
            f"the ZIP's directory is {_mb(directory_size)} for {entries} files: damaged or hostile"
        )


def _open_zip(path: Path, size: int, limits: ArchiveLimits) -> zipfile.ZipFile:
    if size > limits.import_max_zip_size_bytes:
        raise ExportRejected(
            f"the file is {_mb(size)}, more than IMPORT_MAX_ZIP_SIZE_MB "
            f"({limits.import_max_zip_size_mb})"
        )
    with path.open("rb") as handle:
        head = handle.read(len(ZIP_SIGNATURE))
        if head == EMPTY_ZIP_SIGNATURE:
            raise ExportRejected(EMPTY_ZIP_REFUSAL)
        if head != ZIP_SIGNATURE:
            raise ExportRejected("not a ZIP file (a Spotify export is a .zip archive)")
        _check_directory(handle, size, limits)
    try:
        return zipfile.ZipFile(path)
    except NotImplementedError as exc:
        raise ExportRejected(
            f"the ZIP uses a feature this reader does not support ({first_line(exc)})"
        ) from None
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        OSError,
        ValueError,
        UnicodeDecodeError,
        struct.error,
    ) as exc:
        raise ExportRejected(f"the ZIP is truncated or damaged ({first_line(exc)})") from None


class _MemberStream:
    """A member's bytes: BOM stripped, inflated bytes counted and capped, digest kept."""

    def __init__(
        self,
        raw: IO[bytes],
        member: HistoryMember,
        archive: ExportArchive,
        sink: MemberRead | None = None,
    ) -> None:
        self._raw = raw
        self._member = member
        self._archive = archive
        self._sink = sink
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
            raise MemberFailed(f"damaged in the ZIP ({first_line(exc)})") from None
        except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) as exc:
            raise MemberFailed(f"cannot be inflated ({first_line(exc)})") from None
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
        if self._sink is not None:
            self._sink.inflated = self.count
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


_DIGITS = b"0123456789"


@functools.cache
def _digit_run(longest: int) -> re.Pattern[bytes]:
    return re.compile(rb"[0-9]{%d}" % (longest + 1))


class _Peeked:
    """The streaming parser's input: bytes read while checking how a member starts put
    back, then the member's, with no run of more digits than Python converts to an int.

    The C parser crashed the process (a segfault) when such a number was followed by
    anything but a separator, a truncated member's end among them: the conversion fails
    inside it, and it goes on as if it had not. Such a run (a number, or text of digits)
    fails the member here before the parser sees it. The bulk parser needs no such check:
    it refuses a number beyond a double's range, and the streaming parser, reading
    through this, takes over from there."""

    def __init__(self, head: bytes, stream: _MemberStream) -> None:
        self._head = head
        self._stream = stream
        # Digits at the end of what was handed out so far (a run may span two reads).
        self._trailing_digits = 0

    def read(self, size: int = -1) -> bytes:
        if size == 0:  # ijson probes with read(0) whether the stream gives bytes
            return b""
        if self._head:
            data, self._head = self._head, b""
        else:
            data = self._stream.read(size)
        longest = sys.get_int_max_str_digits()
        if data and longest:
            self._check_digits(data, longest)
        return data

    def _check_digits(self, data: bytes, longest: int) -> None:
        leading = len(data) - len(data.lstrip(_DIGITS))
        if self._trailing_digits + leading > longest or _digit_run(longest).search(data):
            raise MemberFailed(f"a number has more than {longest} digits")
        if leading == len(data):
            self._trailing_digits += leading
        else:
            self._trailing_digits = len(data) - len(data.rstrip(_DIGITS))


def _parse(stream: _MemberStream, member: HistoryMember) -> Iterator[dict[str, Any]]:
    head = b""
    while not head:  # blank chunks are dropped as they come: a run of them costs no copies
        chunk = stream.read(_CHUNK)
        if not chunk:
            raise MemberFailed("the file is empty")
        head = chunk.lstrip()
    if head[:1] == b"{":
        raise MemberFailed("expected a JSON array of records, found a JSON object")
    if head[:2] in (b"\xff\xfe", b"\xfe\xff") or head[1:2] == b"\x00":
        raise MemberFailed("UTF-16 text, not UTF-8 as Spotify writes it (re-saved by an editor?)")
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
        raise MemberFailed(_invalid(exc, where)) from None
    except ijson.JSONError as exc:
        where = f" after record {count}" if count else ""
        raise MemberFailed(_invalid(exc, where)) from None
    except UnicodeDecodeError:
        raise MemberFailed("not UTF-8 text") from None


def _invalid(exc: ijson.JSONError, where: str) -> str:
    """The parser's complaint without the text it quotes after it (records' own bytes,
    IP addresses among them), which reports and logs must not hold."""
    message = exc.args[0] if exc.args else ""
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    head = str(message).strip().splitlines()[0] if str(message).strip() else ""
    if "invalid bytes in UTF8" in head:
        return f"not UTF-8 text{where}"
    return f"not valid JSON{where}" + (f": {head}" if head else "")


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
    events = ijson.basic_parse(_Peeked(prefix + rest, stream), use_float=False, buf_size=_CHUNK)
    items = _elements(events)
    if started:
        next(items, None)
    # No integer Python will not convert reaches the parser (see _Peeked).
    yield from items


def _elements(events: Iterator[tuple[str, Any]]) -> Iterator[Any]:
    """The elements of the array whose events these are, built without recursion and
    nested at most :data:`MAX_DEPTH` levels (as the bulk parser allows): a value nested
    ever deeper costs memory and time by its depth only, and fails the member once too
    deep. The streaming parser's own ``items`` keeps a path string per level, which made
    a 200 KB member of nested arrays take gigabytes."""
    next(events, None)  # the array's own start
    stack: list[Any] = []
    keys: list[Any] = []
    for event, value in events:
        if event == "map_key":
            keys[-1] = value
            continue
        if event == "start_map" or event == "start_array":
            if len(stack) >= MAX_DEPTH:
                raise MemberFailed(f"JSON nested deeper than {MAX_DEPTH} levels")
            stack.append({} if event == "start_map" else [])
            keys.append(None)
            continue
        if event == "end_map" or event == "end_array":
            if not stack:
                continue  # the array's end; the parser goes on to check what follows
            value = stack.pop()
            keys.pop()
        elif value.__class__ is Decimal:
            value = float(value)
        if not stack:
            yield value
        elif stack[-1].__class__ is dict:
            stack[-1][keys[-1]] = value
        else:
            stack[-1].append(value)


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
