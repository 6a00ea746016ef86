"""``playlog import``: the same import code from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from playlog.testing.exports import (
    episode_play,
    extended_member,
    track_play,
    write_zip,
)
from playlog.testing.processes import run_playlog


def test_import_prints_the_report_as_json_and_reimport_adds_nothing(
    database_url: str, user: str, tmp_path: Path
) -> None:
    path = write_zip(
        tmp_path / "my_spotify_data.zip",
        {
            extended_member(): [
                track_play("2023-05-01T10:00:00Z"),
                track_play("2023-05-01T10:00:00Z"),
                episode_play("2023-05-01T11:00:00Z", "512ojhOuo1ktJprKbVcKyQ", "Ep", "Show", 9000),
                track_play("yesterday"),
            ]
        },
    )
    result = run_playlog(database_url, "import", str(path), "--user", user, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    counts = ("records_seen", "plays_inserted", "skips_inserted", "duplicates")
    # The 9-second episode is stored as a skip, not counted as a play.
    assert {key: report[key] for key in counts} == {
        "records_seen": 4,
        "plays_inserted": 1,
        "skips_inserted": 1,
        "duplicates": 1,
    }
    assert report["skipped"] == {"bad_timestamp": 1}
    assert (report["earliest"], report["latest"]) == (
        "2023-05-01T10:00:00Z",
        "2023-05-01T11:00:00Z",
    )
    assert report["formats"] == ["extended"]
    # Measured over the import (a report of a run not yet ended says 0.0).
    assert report["elapsed_s"] > 0
    assert path.exists(), "the command must never delete the user's own file"

    again = run_playlog(database_url, "import", str(path), "--user", user)
    assert again.returncode == 0, again.stderr
    assert "plays inserted:     0" in again.stdout
    assert "duplicates:         3" in again.stdout


@pytest.mark.parametrize(
    ("content", "user_arg", "message"),
    [
        (b"not a zip at all", None, "not a ZIP file"),
        (None, "00000000-0000-0000-0000-000000000000", "no user with id"),
        (None, "someone", "--user must be a user id"),
    ],
)
def test_bad_input_is_one_line_and_a_failing_exit_code(
    database_url: str,
    user: str,
    tmp_path: Path,
    content: bytes | None,
    user_arg: str | None,
    message: str,
) -> None:
    path = tmp_path / "export.zip"
    if content is None:
        write_zip(path, {extended_member(): [track_play("2023-05-01T10:00:00Z")]})
    else:
        path.write_bytes(content)
    result = run_playlog(database_url, "import", str(path), "--user", user_arg or user)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("playlog: error: ")
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    # With --json, the same reason as a JSON object on stdout as well.
    as_json = run_playlog(database_url, "import", str(path), "--user", user_arg or user, "--json")
    assert as_json.returncode == 1
    answer = json.loads(as_json.stdout)
    assert answer["status"] == "error"
    assert message in answer["error"]
    assert as_json.stderr == result.stderr


def test_a_file_whose_every_member_fails_exits_non_zero(
    database_url: str, user: str, tmp_path: Path
) -> None:
    path = write_zip(tmp_path / "export.zip", {extended_member(): b'{"an": "object"}'})
    result = run_playlog(database_url, "import", str(path), "--user", user, "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["status"] == "error"
    # The report says why, as the job and the tools show it, not only its file's entry.
    assert report["error"].startswith(f"no history file could be imported; {extended_member()}: ")
    assert "found a JSON object" in report["error"]
    assert result.stderr == f"playlog: error: {report['error']}\n"
