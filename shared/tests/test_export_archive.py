"""Reading export ZIPs: finding history, hostile archives, malformed members."""

from __future__ import annotations

import base64
import io
import json
import math
import random
import re
import tracemalloc
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from playlog.exports import copydata
from playlog.exports.archive import (
    ExportArchive,
    ExportRejected,
    MemberFailed,
    MemberRead,
    _bulk,
    classify,
)
from playlog.exports.records import MemberRows
from playlog.history.identity import local_track_id
from playlog.settings import ImportSettings
from playlog.testing.exports import (
    ACCOUNT_DIR,
    EXTENDED_DIR,
    account_play,
    decode_stage_row,
    episode_play,
    extended_member,
    track_play,
    write_zip,
)

LIMITS = ImportSettings()


def read_all(path: Path, limits: ImportSettings = LIMITS) -> dict[str, Any]:
    """Every member's outcome: its records, or the reason it failed."""
    outcome: dict[str, Any] = {}
    with ExportArchive(path, limits) as archive:
        for member in archive.members:
            try:
                outcome[member.name] = list(archive.records(member, MemberRead()))
            except MemberFailed as exc:
                outcome[member.name] = str(exc)
    return outcome


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("Spotify Extended Streaming History/Streaming_History_Audio_2019-2020_3.json", "extended"),
        ("a/b/c/streaming_history_audio_2024.json", "extended"),
        ("MyData/endsong_0.json", "extended"),
        ("MyData/StreamingHistory0.json", "account_data"),
        ("Spotify Account Data/StreamingHistory_music_2.json", "account_data"),
        ("Spotify Account Data/StreamingHistory_podcast_0.json", "account_data"),
        ("Spotify Extended Streaming History/Streaming_History_Video_2019-2024.json", None),
        ("__MACOSX/Spotify Extended Streaming History/._Streaming_History_Audio_2020_0.json", None),
        ("Spotify Account Data/Userdata.json", None),
        ("Spotify Account Data/Playlist1.json", None),
        ("Spotify Extended Streaming History/ReadMeFirst_ExtendedStreamingHistory.pdf", None),
        # Folders written with backslashes (some Windows tools do).
        ("Spotify Extended Streaming History\\Streaming_History_Audio_2020_0.json", "extended"),
        ("my_spotify_data\\Spotify Account Data\\StreamingHistory0.json", "account_data"),
        ("__MACOSX\\x\\._Streaming_History_Audio_2020_0.json", None),
    ],
)
def test_history_members_are_found_by_name_at_any_depth(name: str, family: str | None) -> None:
    assert classify(name) == family


def test_members_are_ordered_extended_first_and_numerically(tmp_path: Path) -> None:
    path = write_zip(
        tmp_path / "export.zip",
        {
            f"{ACCOUNT_DIR}/StreamingHistory_music_0.json": [
                account_play("2024-01-01 10:00", "A", "B")
            ],
            extended_member(10): [track_play("2024-01-01T10:00:00Z")],
            extended_member(2): [track_play("2024-01-01T10:00:00Z")],
            f"{ACCOUNT_DIR}/Playlist1.json": {"playlists": []},
        },
    )
    with ExportArchive(path, LIMITS) as archive:
        assert [m.name for m in archive.members] == [
            extended_member(2),
            extended_member(10),
            f"{ACCOUNT_DIR}/StreamingHistory_music_0.json",
        ]
        assert archive.ignored == [f"{ACCOUNT_DIR}/Playlist1.json"]


def test_members_are_ordered_by_their_sequence_number_not_the_years_they_span(
    tmp_path: Path,
) -> None:
    # Spotify's own names: by name, "2017-2018_2" would sort before "2017_1".
    extended = [
        f"{EXTENDED_DIR}/Streaming_History_Audio_{years}_{n}.json"
        for n, years in enumerate(["2016-2017", "2017", "2017-2018", "2018", "2018"])
    ]
    account = [f"{ACCOUNT_DIR}/StreamingHistory{n}.json" for n in (0, 1, 2, 10)]
    members: dict[str, Any] = {
        **{name: [account_play("2024-01-01 10:00", "A", "B")] for name in reversed(account)},
        **{name: [track_play("2024-01-01T10:00:00Z")] for name in reversed(extended)},
    }
    with ExportArchive(write_zip(tmp_path / "export.zip", members), LIMITS) as archive:
        assert [m.name for m in archive.members] == extended + account


def test_a_utf8_bom_is_stripped(tmp_path: Path) -> None:
    body = '[{"ts": "2024-01-01T10:00:00Z", "ms_played": 1, "spotify_track_uri": "x"}]'
    path = write_zip(tmp_path / "e.zip", {extended_member(): b"\xef\xbb\xbf" + body.encode()})
    assert read_all(path)[extended_member()][0]["ms_played"] == 1


def test_not_a_zip_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "e.zip"
    path.write_bytes(b"%PDF-1.7 definitely not a zip")
    with pytest.raises(ExportRejected, match="not a ZIP file"):
        ExportArchive(path, LIMITS)


def test_an_empty_zip_is_rejected_as_empty_not_as_no_zip(tmp_path: Path) -> None:
    path = tmp_path / "e.zip"
    with zipfile.ZipFile(path, "w"):
        pass
    with pytest.raises(ExportRejected, match=r"^the ZIP is empty: it holds no files"):
        ExportArchive(path, LIMITS)


def test_a_truncated_zip_is_rejected(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "e.zip", {extended_member(): [track_play("2024-01-01T10:00:00Z")]})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ExportRejected, match="truncated or damaged"):
        ExportArchive(path, LIMITS)


def test_a_zip_without_history_is_rejected(tmp_path: Path) -> None:
    path = write_zip(
        tmp_path / "e.zip",
        {f"{ACCOUNT_DIR}/Userdata.json": {"username": "x"}, f"{ACCOUNT_DIR}/Playlist1.json": {}},
    )
    with pytest.raises(ExportRejected, match="no Spotify streaming history"):
        ExportArchive(path, LIMITS)


def test_an_encrypted_zip_is_rejected(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "e.zip", {extended_member(): [track_play("2024-01-01T10:00:00Z")]})
    data = bytearray(path.read_bytes())
    # Set the "encrypted" flag bit in the local and central headers (a password-protected
    # archive; the stdlib cannot write one).
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = data.find(signature)
        data[start + offset] |= 0x1
    path.write_bytes(bytes(data))
    with pytest.raises(ExportRejected, match="password-protected"):
        ExportArchive(path, LIMITS)


def test_a_zip_bomb_is_rejected_by_its_declared_ratio(tmp_path: Path) -> None:
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(extended_member(), b"[" + b" " * 20_000_000 + b"]")
    with pytest.raises(ExportRejected, match="zip bomb"):
        ExportArchive(path, LIMITS)


def test_a_zip_bomb_lying_about_its_size_is_stopped_while_inflating(tmp_path: Path) -> None:
    path = tmp_path / "bomb.zip"
    payload = b"[" + b" " * 5_000_000 + b"]"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(extended_member(), payload)
    data = bytearray(path.read_bytes())
    # Declare 1,000 bytes uncompressed in the central directory (offset 24 of its entry).
    central = data.find(b"PK\x01\x02")
    data[central + 24 : central + 28] = (1000).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with ExportArchive(path, LIMITS) as archive:
        (member,) = archive.members
        with pytest.raises(MemberFailed, match=r"damaged in the ZIP .*CRC"):
            list(archive.records(member, MemberRead()))
        # Inflating stopped at the declared size, not at the 5 MB the data really holds.
        assert archive.inflated <= 1000


def test_total_uncompressed_size_is_capped(tmp_path: Path) -> None:
    path = write_zip(
        tmp_path / "e.zip",
        # Incompressible, so only the total trips, not the ratio.
        {extended_member(i): b"[" + random.Random(i).randbytes(700_000) + b"]" for i in range(2)},
    )
    limits = ImportSettings(import_max_uncompressed_mb=1)
    with pytest.raises(ExportRejected, match="IMPORT_MAX_UNCOMPRESSED_MB"):
        ExportArchive(path, limits)


def test_member_count_and_file_size_are_capped(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "e.zip", {f"junk/{i}.txt": "x" for i in range(20)})
    with pytest.raises(ExportRejected, match="IMPORT_MAX_MEMBERS"):
        ExportArchive(path, ImportSettings(import_max_members=10))
    big = tmp_path / "big.zip"
    big.write_bytes(b"PK\x03\x04" + b"\0" * (1024 * 1024 + 1))
    with pytest.raises(ExportRejected, match="IMPORT_MAX_ZIP_SIZE_MB"):
        ExportArchive(big, ImportSettings(import_max_zip_size_mb=1))


# A member of one good play.
GOOD = json.dumps([track_play("2024-01-01T10:00:00Z")]).encode()


def test_a_zip_bomb_lying_about_its_compressed_size_is_judged_by_the_bytes_it_holds(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(extended_member(), b"[" + b" " * 2_000_000 + b"]")
        archive.writestr("padding.bin", random.Random(1).randbytes(120_000), zipfile.ZIP_STORED)
    data = bytearray(path.read_bytes())
    # Declare 100,000 compressed bytes (offset 20 of the central entry): a ratio of 20,
    # while the member's own bytes (a few KB before the next entry) inflate ~1,000-fold.
    central = data.find(b"PK\x01\x02")
    data[central + 20 : central + 24] = (100_000).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(ExportRejected, match="zip bomb"):
        ExportArchive(path, LIMITS)


def test_the_member_count_is_read_from_the_directory_end_before_the_directory(
    tmp_path: Path,
) -> None:
    path = write_zip(tmp_path / "e.zip", {f"junk/{i}.txt": "x" for i in range(20)})
    data = bytearray(path.read_bytes())
    # Wreck every directory entry: only the end record's count can be read.
    central = data.find(b"PK\x01\x02")
    end = data.rfind(b"PK\x05\x06")
    data[central:end] = b"\0" * (end - central)
    path.write_bytes(bytes(data))
    with pytest.raises(ExportRejected, match="holds 20 files, more than IMPORT_MAX_MEMBERS"):
        ExportArchive(path, ImportSettings(import_max_members=10))
    with pytest.raises(ExportRejected, match="truncated or damaged"):
        ExportArchive(path, LIMITS)
    # A directory far larger than its entries need.
    data[end + 12 : end + 16] = (200_000_000).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(ExportRejected, match=r"directory is 190\.8 MB for 20 files"):
        ExportArchive(path, LIMITS)


def test_a_zip_needing_a_newer_reader_is_refused_clearly(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "e.zip", {extended_member(): GOOD})
    data = bytearray(path.read_bytes())
    central = data.find(b"PK\x01\x02")
    data[central + 6] = 99  # "version needed to extract": 9.9
    path.write_bytes(bytes(data))
    with pytest.raises(ExportRejected, match="feature this reader does not support"):
        ExportArchive(path, LIMITS)


def test_odd_entry_names_are_ignored_or_ordered_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "e.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(zipfile.ZipInfo(""), b"nameless")
        archive.writestr("My Data 1\u00b2/" + extended_member(3).split("/")[-1], GOOD)
        archive.writestr("My Data 1\u00b2/" + extended_member(2).split("/")[-1], GOOD)
    with ExportArchive(path, LIMITS) as archive:
        assert [member.name[-6:] for member in archive.members] == ["2.json", "3.json"]
        assert archive.ignored == ["(an entry without a name)"]


@pytest.mark.parametrize("method", [zipfile.ZIP_DEFLATED, zipfile.ZIP_LZMA, zipfile.ZIP_BZIP2])
def test_corrupt_compressed_data_fails_its_member_only(tmp_path: Path, method: int) -> None:
    path = tmp_path / "e.zip"
    body = json.dumps([track_play(f"2024-01-01T10:{m:02}:00Z") for m in range(60)]).encode()
    with zipfile.ZipFile(path, "w", method) as archive:
        archive.writestr(extended_member(0), body)
        archive.writestr(extended_member(1), GOOD)
    data = bytearray(path.read_bytes())
    # Scramble the middle of the first member's compressed data.
    start = data.find(b"PK\x03\x04") + 30 + len(extended_member(0))
    for offset in range(start + 40, start + 80):
        data[offset] ^= 0x5A
    path.write_bytes(bytes(data))
    outcome = read_all(path)
    assert isinstance(outcome[extended_member(0)], str)
    assert re.search(r"cannot be inflated|damaged in the ZIP", outcome[extended_member(0)])
    assert len(outcome[extended_member(1)]) == 1


@pytest.mark.parametrize("depth", [1_100, 100_000])
def test_values_nested_too_deep_fail_their_member_in_time_and_memory_bounded_by_depth(
    tmp_path: Path, depth: int
) -> None:
    nested = b"[" * depth + b"]" * depth
    record = b'{"ts": "2024-01-01T10:00:00Z", "ms_played": 1, "x": ' + nested + b"}"
    path = tmp_path / "e.zip"
    with zipfile.ZipFile(path, "w") as archive:  # stored: within any ratio
        archive.writestr(extended_member(0), b"[" + record + b"]")
        archive.writestr(extended_member(1), GOOD)
    tracemalloc.start()
    try:
        outcome = read_all(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert outcome[extended_member(0)] == "JSON nested deeper than 1023 levels"
    assert len(outcome[extended_member(1)]) == 1
    assert peak < 50 * 1024 * 1024


def test_values_nested_within_the_limit_are_read_by_the_streaming_parser(tmp_path: Path) -> None:
    # A number beyond a double stops the bulk parser; what follows is streamed, nesting
    # and all.
    record = track_play("2024-01-01T10:00:00Z")
    nested = "[" * 1_000 + '"deep"' + "]" * 1_000
    body = '[{"ts": "2024-01-01T09:00:00Z", "ms_played": 1e400}, ' + json.dumps(record)
    body = body[:-1] + f', "x": {nested}}}]'
    path = write_zip(tmp_path / "e.zip", {extended_member(): body.encode()})
    first, second = read_all(path)[extended_member()]
    assert first["ms_played"] == math.inf
    value = second.pop("x")
    assert second == record
    for _ in range(1_000):
        (value,) = value
    assert value == "deep"


def _digits_across_reads(digits: bytes) -> bytes:
    head = b'[{"ts": "2024-01-01T09:00:00Z", "ms_played": 1e400}, {"ts": "2024-01-01T10:00:00Z"'
    tail = b'", "ms_played": '
    # The parsers read 256 KiB at a time and the bulk one gives up after two reads: the
    # digits straddle the end of the second. Letters that do not compress (a blank pad
    # would look like a zip bomb).
    pad_length = 512 * 1024 - len(digits) // 2 - len(head) - len(b', "pad": "') - len(tail)
    pad = base64.b64encode(random.Random(4).randbytes(pad_length))[:pad_length]
    return head + b', "pad": "' + pad + tail + digits + b"}]"


def test_an_integer_of_thousands_of_digits_fails_its_member_only(tmp_path: Path) -> None:
    digits = b"7" * 5000
    record = b'{"ts": "2024-01-01T10:00:00Z", "ms_played": '
    members = {
        extended_member(0): b"[" + record + digits + b"}]",
        # Followed by something else than a separator, or by the member's end, such a
        # number crashed the streaming parser (a segfault, which took the import down).
        extended_member(1): b"[" + record + digits + b"x}]",
        extended_member(2): b"[" + record + digits,
        extended_member(3): b"[" + digits + b"x]",
        # Split between two reads of the streaming parser, after a record the bulk
        # parser gave up on.
        extended_member(4): _digits_across_reads(digits),
        extended_member(5): GOOD,
    }
    outcome = read_all(write_zip(tmp_path / "e.zip", members))
    for index in range(5):
        assert outcome[extended_member(index)] == "a number has more than 4300 digits", index
    assert len(outcome[extended_member(5)]) == 1
    # As many digits as Python converts are read as they are.
    exact = b"[" + record + b"7" * 4300 + b', "x": 1e400}, ' + GOOD[1:]
    outcome = read_all(write_zip(tmp_path / "f.zip", {extended_member(0): exact}))
    assert outcome[extended_member(0)][0]["ms_played"] == int("7" * 4300)


def test_parser_complaints_do_not_quote_the_records(tmp_path: Path) -> None:
    latin1 = '[{"ts": "2024-01-01T10:00:00Z", "ms_played": 1, "ip_addr": "203.0.113.77",'
    latin1 += ' "master_metadata_track_name": "Caf\u00e9"}]'
    broken = b'[{"ts": "2024-01-01T10:00:00Z", "ip_addr": "203.0.113.78", "ms_played": 1} x'
    path = write_zip(
        tmp_path / "e.zip",
        {extended_member(0): latin1.encode("latin-1"), extended_member(1): broken},
    )
    outcome = read_all(path)
    assert outcome[extended_member(0)] == "not UTF-8 text"
    assert outcome[extended_member(1)].startswith("not valid JSON after record 1")
    assert "203.0.113" not in outcome[extended_member(1)]


def test_sizes_in_messages_are_never_rounded_down_to_the_cap(tmp_path: Path) -> None:
    big = tmp_path / "big.zip"
    big.write_bytes(b"PK\x03\x04" + b"\0" * (1024 * 1024 + 1))
    with pytest.raises(ExportRejected, match=r"the file is 1\.1 MB, more than"):
        ExportArchive(big, ImportSettings(import_max_zip_size_mb=1))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is not json", "not JSON"),
        (b'{"ts": "2024-01-01T10:00:00Z"}', "found a JSON object"),
        (b'[{"ts": "2024-01-01T10:00:00Z", "ms_played": 1}, {"ts": "2024-', "ends abruptly"),
        (b'["a", "b"]', "found strings"),
        (b'[{"ts": "x", "ms_played": 1}, oops]', "not valid JSON"),
        (b'[{"name": "a playlist"}]', "do not look like Spotify streaming history"),
        (b'[{"ts": "2024-01-01T10:00:00Z", "ms_played": 1}] trailing', "after the JSON array"),
        (b"", "empty"),
        (b"\xff\xfe[\x00{\x00", "UTF-16 text"),
        ("[{}]".encode("utf-16-le"), "UTF-16 text"),
    ],
)
def test_malformed_members_fail_with_a_clear_reason(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = write_zip(tmp_path / "e.zip", {extended_member(): content})
    outcome = read_all(path)[extended_member()]
    assert isinstance(outcome, str)
    assert message in outcome


# Names that hold what the bulk parser cuts at (a "}" ends a record) and more.
_TRICKY_NAMES = ("Plain", "Brace } inside", '"}, {" quoted', "Ends with }", "\\}", "Ünï}cödé ♫")


def _tricky_records(count: int) -> list[dict[str, Any]]:
    records = []
    for i in range(count):
        name = _TRICKY_NAMES[i % len(_TRICKY_NAMES)]
        record = track_play(
            f"2024-01-01T{i // 3600 % 24:02}:{i // 60 % 60:02}:{i % 60:02}Z", name=f"{name} {i}"
        )
        if i % 7 == 0:  # fields a future export may add, nested
            record["extra"] = {"ids": [i, {"deep": "}"}], "note": None}
        records.append(record)
    return records


@pytest.mark.parametrize(
    "layout",
    [
        "indented",
        "compact",
        "one huge string",
        "bom and blanks",
        "empty array",
        "blank runs between records",
    ],
)
def test_records_are_read_exactly_whatever_their_layout(tmp_path: Path, layout: str) -> None:
    """Records are parsed in bulk a chunk at a time, falling back to the streaming
    parser where a chunk cannot be cut; either way every record comes out as written."""
    records = _tricky_records(3000)
    if layout == "one huge string":
        records[1000]["master_metadata_track_name"] = "}, {" * 200_000  # 800 KB
    if layout == "empty array":
        records = []
    indent = None if layout == "compact" else 2
    content = json.dumps(records, ensure_ascii=False, indent=indent).encode()
    if layout == "bom and blanks":
        content = b"\xef\xbb\xbf \n\t" + content + b" \n" * 300_000
    if layout == "blank runs between records":
        # Megabytes of blanks before the array, before a separator and after one.
        blanks = b" " * 1_000_000
        encoded = [json.dumps(record, ensure_ascii=False).encode() for record in records]
        content = (
            blanks + b"[" + encoded[0] + blanks + b"," + blanks + b",".join(encoded[1:]) + b"]"
        )
    assert len(content) > 600_000 or not records
    path = write_zip(tmp_path / "e.zip", {extended_member(): content})
    assert read_all(path)[extended_member()] == records


@pytest.mark.parametrize("indent", [None, 2])
@pytest.mark.parametrize("huge", [False, True])
def test_valid_records_are_all_parsed_in_bulk(indent: int | None, huge: bool) -> None:
    """Braces in names, nested objects and a record larger than a chunk only make the
    bulk parser cut elsewhere or read on: none of it is left to the streaming parser."""
    records = _tricky_records(3000)
    if huge:
        records[1000]["master_metadata_track_name"] = "}, {" * 200_000
    # Names as real exports write them: UTF-8, not \u escapes.
    content = json.dumps(records, ensure_ascii=False, indent=indent).encode()
    bulk = _bulk(io.BytesIO(content[1:]), b"")
    parsed: list[Any] = []
    while True:
        try:
            parsed.append(next(bulk))
        except StopIteration as stop:
            rest, started = stop.value
            break
    assert parsed == records
    assert (rest.strip(), started) == (b"]", True)


@pytest.mark.parametrize(
    ("tail", "message"),
    [
        (b",]", "not valid JSON after record 3000"),
        (b', {"ts": "2024-01-02T00:00:00Z", "ms_pla', "ends abruptly after record 3000"),
        (b"]" + b" " * 600_000 + b"x", "unexpected data after the JSON array"),
        (b"] x", "unexpected data after the JSON array"),
        (b"}]", "not valid JSON after record 3000"),
        (b", oops]", "not valid JSON after record 3000"),
    ],
)
def test_a_member_broken_after_many_records_names_where(
    tmp_path: Path, tail: bytes, message: str
) -> None:
    content = json.dumps(_tricky_records(3000), indent=2).encode()
    assert content.endswith(b"]")
    path = write_zip(tmp_path / "e.zip", {extended_member(): content[:-1] + tail})
    outcome = read_all(path)[extended_member()]
    assert isinstance(outcome, str)
    assert message in outcome


def test_a_bad_token_midway_names_the_records_before_it(tmp_path: Path) -> None:
    records = json.dumps(_tricky_records(3000), indent=2).encode()
    marker = b'"ms_played": 213000'
    position = -1
    for _ in range(2001):  # the 2001st record's ms_played
        position = records.index(marker, position + 1)
    broken = records[:position] + b'"ms_played": 21x3000' + records[position + len(marker) :]
    path = write_zip(tmp_path / "e.zip", {extended_member(): broken})
    outcome = read_all(path)[extended_member()]
    assert isinstance(outcome, str)
    assert outcome.startswith("not valid JSON after record 2000: ")


def test_numbers_beyond_a_double_skip_their_record_not_the_file(tmp_path: Path) -> None:
    """A number no double holds (1e400) stops the bulk parser; the streaming parser reads
    the rest of the file, an infinity skips its record as an invalid ms_played, and the
    records after it, numbers written with a fraction included, read as in bulk."""
    before = [json.dumps(track_play(f"2024-01-01T10:0{n}:00Z")) for n in range(3)]
    numbers = [("1e400", "1"), ("-1e400", "2"), ("213000.0", "1e400"), ("1e-400", "[1.5]")]
    after = [
        f'{{"ts": "2024-01-01T11:0{n}:00Z", "ms_played": {ms}, "offline_timestamp": {offline},'
        ' "spotify_track_uri": "spotify:track:4uLU6hMCjMI75M1A2tKUQC"}'
        for n, (ms, offline) in enumerate(numbers)
    ]
    content = "[" + ",".join(before + after) + "]"
    path = write_zip(tmp_path / "e.zip", {extended_member(): content.encode()})
    records = read_all(path)[extended_member()]
    assert isinstance(records, list)
    assert [record["ms_played"] for record in records[3:]] == [
        float("inf"),
        float("-inf"),
        213000.0,
        0.0,
    ]
    assert records[5]["offline_timestamp"] == float("inf")
    assert records[6]["offline_timestamp"] == [1.5]
    assert all(type(record["ms_played"]) is float for record in records[3:])
    rows = MemberRows("extended", set(), keep_sensitive=False)
    for record in records:
        rows.add(record)
    assert dict(rows.skipped) == {"invalid_ms_played": 2}
    assert [decode_stage_row(row)[2] for row in rows.rows] == [213_000] * 4 + [0]


def test_records_become_rows_or_counted_skips() -> None:
    rows = MemberRows("extended", set(), keep_sensitive=False)
    for record in (
        track_play("2024-01-01T10:00:00Z"),
        track_play("2024-13-45T25:61:00Z"),
        track_play("not a date"),
        track_play("2024-01-01T10:05:00Z", ms_played="213000"),
        track_play("2024-01-01T10:06:00Z", ms_played=-5),
        track_play("2024-01-01T10:07:00Z", None, name=None, artist=None, album=None),
        "a string, not a record",
        track_play("2024-01-01T10:08:00Z", ms_played=None),
    ):
        rows.add(record)
    assert rows.records == 8
    assert dict(rows.skipped) == {
        "bad_timestamp": 2,
        "invalid_ms_played": 2,
        "no_identity": 1,
        "not_an_object": 1,
    }
    decoded = [decode_stage_row(row) for row in rows.rows]
    assert [(row[1], row[2]) for row in decoded] == [
        ("4uLU6hMCjMI75M1A2tKUQC", 213_000),
        ("4uLU6hMCjMI75M1A2tKUQC", None),
    ]
    # No sensitive field travels unless asked for.
    assert all(row[-1] is None for row in decoded)


def test_wrong_types_in_a_record_become_nulls_or_skips() -> None:
    rows = MemberRows("extended", set(), keep_sensitive=False)
    flags = {"shuffle": True, "skipped": False, "offline": True, "incognito_mode": False}
    cases: list[dict[str, Any]] = [
        {"ms_played": 213_000.0},
        # 0 and 1 equal False and True, but are not flags: after the same reasons with
        # real flags, so an encoding cached for those must not answer for them.
        {"shuffle": 0, "skipped": 0, "offline": 0.0, "incognito_mode": 0},
        {"reason_start": "clickrow", "reason_end": "fwdbtn", **flags},
        {"reason_start": "clickrow", "reason_end": "fwdbtn", "shuffle": 1, "offline": "true"},
        {"reason_start": ["clickrow"], "reason_end": {"x": 1}, **flags},
        {"reason_start": "", "reason_end": 7, **flags},
    ]
    for minute, fields in enumerate(cases):
        rows.add(track_play(f"2024-01-01T10:0{minute}:00Z", **fields))
    bad_times: list[Any] = [None, 12345, ["2024-01-01T10:00:00Z"]]
    for ts in bad_times:
        rows.add(track_play(ts))
    for ms in (1.5, True, "1", float("inf"), 2**31):
        rows.add(track_play("2024-01-01T11:00:00Z", ms_played=ms))
    decoded = [decode_stage_row(row) for row in rows.rows]
    assert [row[3:9] for row in decoded] == [
        ("trackdone", "trackdone", False, False, False, False),
        ("trackdone", "trackdone", None, None, None, None),
        ("clickrow", "fwdbtn", True, False, True, False),
        ("clickrow", "fwdbtn", None, False, None, False),
        (None, None, True, False, True, False),
        (None, None, True, False, True, False),
    ]
    assert decoded[0][2] == 213_000
    assert dict(rows.skipped) == {"bad_timestamp": 3, "invalid_ms_played": 5}


def test_repeated_behaviour_is_encoded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    encoded: list[tuple[object, ...]] = []
    original = copydata.behaviour

    def counted(*values: object) -> bytes:
        encoded.append(values)
        return original(*values)

    monkeypatch.setattr(copydata, "behaviour", counted)
    copydata.behaviour_cache.clear()
    rows = MemberRows("extended", set(), keep_sensitive=False)
    for minute in range(5):
        rows.add(track_play(f"2024-01-01T10:0{minute}:00Z", reason_end="fwdbtn"))
    assert len(rows.rows) == 5
    assert encoded == [("trackdone", "fwdbtn", False, False, False, False)]


@pytest.mark.parametrize("uri", ["spotify:track:", 12345, ["spotify:track:x"], ""])
def test_a_track_uri_without_an_id_falls_back_to_the_names(uri: Any) -> None:
    rows = MemberRows("extended", set(), keep_sensitive=False)
    rows.add(track_play("2024-01-01T10:00:00Z", spotify_track_uri=uri))
    rows.add(track_play("2024-01-01T10:01:00Z", name=None, spotify_track_uri=uri))
    expected = local_track_id(
        "Rick Astley", "Never Gonna Give You Up", "Whenever You Need Somebody"
    )
    assert [decode_stage_row(row)[1] for row in rows.rows] == [expected]
    assert rows.items[expected][5] is None  # no URI kept for a local id
    assert dict(rows.skipped) == {"no_identity": 1}


def test_sensitive_fields_are_kept_only_when_asked() -> None:
    rows = MemberRows("extended", set(), keep_sensitive=True)
    rows.add(track_play("2024-01-01T10:00:00Z", username="someone"))
    assert decode_stage_row(rows.rows[0])[-1] == (
        '{"ip_addr": "192.0.2.10", "username": "someone", "conn_country": "DE", '
        '"platform": "android"}'
    )
    # An infinity (1e400 in the file) has no JSON spelling that jsonb takes: a null.
    # Arrays and objects are not Spotify's values for these fields: left out, however
    # deep (a thousand levels would overflow the JSON encoder).
    deep: Any = "x"
    for _ in range(1_020):
        deep = [deep]
    rows.add(track_play("2024-01-01T10:05:00Z", ip_addr=float("inf"), platform=deep))
    assert decode_stage_row(rows.rows[1])[-1] == '{"ip_addr": null, "conn_country": "DE"}'


def test_account_data_rows_use_names_and_minutes() -> None:
    rows = MemberRows("account_data", set(), keep_sensitive=False)
    rows.add(account_play("2024-01-15 10:30", "Sigur Rós", "Hoppípolla"))
    rows.add(
        {
            "endTime": "2024-01-15 11:30",
            "podcastName": "Show",
            "episodeName": "Ep 1",
            "msPlayed": 100,
        }
    )
    music = decode_stage_row(rows.rows[0])
    assert music[0].isoformat() == "2024-01-15T10:30:00+00:00"
    assert music[1].startswith("local:")
    assert music[3:] == (None,) * 7  # no reasons, flags or sensitive fields
    kinds = {item[1] for item in rows.items.values()}
    assert kinds == {"track", "episode"}


def test_a_time_with_another_offset_is_the_same_instant_in_utc() -> None:
    for family, record in (
        ("extended", track_play("2024-01-01T12:30:00+02:00")),
        ("account_data", account_play("2024-01-01T12:30:00+02:00", "A", "B")),
    ):
        rows = MemberRows(family, set(), keep_sensitive=False)  # type: ignore[arg-type]
        rows.add(record)
        assert rows.earliest == rows.latest == datetime(2024, 1, 1, 10, 30, tzinfo=UTC)
        assert rows.earliest is not None
        assert rows.earliest.tzinfo is UTC


@pytest.mark.parametrize(
    "ts",
    [
        "9999-12-31T23:59:00Z",
        "9999-12-31T20:00:00-05:00",
        "0001-01-01T00:01:00Z",
        "1999-12-31T23:59:59Z",
        "2101-01-01T00:00:00Z",
        "2024-01-15",
    ],
)
def test_times_outside_any_window_or_without_a_time_are_bad_timestamps(ts: str) -> None:
    extended = MemberRows("extended", set(), keep_sensitive=False)
    extended.add(track_play(ts))
    account = MemberRows("account_data", set(), keep_sensitive=False)
    account.add(account_play(ts.replace("T", " ")[:16], "Artist", "Track", 60_000))
    for rows in (extended, account):
        assert rows.rows == []
        assert dict(rows.skipped) == {"bad_timestamp": 1}


def test_the_first_and_last_storable_moments_are_plays() -> None:
    rows = MemberRows("extended", set(), keep_sensitive=False)
    rows.add(track_play("2000-01-01T00:00:00Z"))
    rows.add(track_play("2100-12-31T23:59:59Z"))
    assert len(rows.rows) == 2


def test_an_overlong_spotify_id_is_identified_by_the_names() -> None:
    rows = MemberRows("extended", set(), keep_sensitive=False)
    rows.add(track_play("2024-01-01T10:00:00Z", "x" * 4000))
    rows.add(track_play("2024-01-01T10:01:00Z", "y" * 64))
    rows.add(episode_play("2024-01-01T11:00:00Z", "e" * 4000, "Episode", "Show", 60_000))
    ids = [decode_stage_row(row)[1] for row in rows.rows]
    assert ids[0] == local_track_id(
        "Rick Astley", "Never Gonna Give You Up", "Whenever You Need Somebody"
    )
    assert ids[1] == "y" * 64
    assert ids[2] == local_track_id("Show", "Episode", None)


def test_nul_characters_and_lone_surrogates_are_made_storable() -> None:
    rows = MemberRows("extended", set(), keep_sensitive=True)
    rows.add(
        track_play(
            "2024-01-01T10:00:00Z",
            "a\x00b",
            name="Bad\x00Name \ud800",
            ip_addr="192.0.2.\x001",
            platform="\udfff",
        )
    )
    (row,) = [decode_stage_row(row) for row in rows.rows]
    assert row[1] == "a\ufffdb"
    assert json.loads(row[-1])["ip_addr"] == "192.0.2.\ufffd1"
    assert json.loads(row[-1])["platform"] == "?"
    item = copydata.items(rows.items.values())
    assert b"Bad\xef\xbf\xbdName ?" in item
    assert b"\x00b" not in item
