"""Generated exports of each family, traps included, through ``playlog import`` against the
generator's ground truth (counted from the rows it wrote, not by any code of the importer):
the report's records, skip reasons, files and time span, the rows stored under the
counting rules, their kinds, the richer family kept when both carry the same plays, no
sensitive field kept, and nothing added by importing the same file again."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from playlog.testing.exports import generate_export, report_mismatches
from playlog.testing.processes import run_playlog

# Two history files at least, so that records repeat in a later one.
RECORDS = 20_000
# The family a stored row comes from: with both, the extended row of a play is kept.
STORED_FORMAT = {"extended": "extended", "account": "account_data", "both": "extended"}


def _import(database_url: str, user: str, path: Path) -> dict[str, Any]:
    done = run_playlog(database_url, "import", str(path), "--user", user, "--json")
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


async def _stored(engine: AsyncEngine, user: str) -> dict[str, Any]:
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                text(
                    "SELECT count(*) AS rows,"
                    " count(*) FILTER (WHERE p.ms_played < 30000) AS skips,"
                    " count(*) FILTER (WHERE t.kind = 'episode') AS episodes,"
                    " count(*) FILTER (WHERE t.kind = 'audiobook') AS audiobooks,"
                    " count(*) FILTER (WHERE p.sensitive IS NOT NULL) AS sensitive,"
                    " array_agg(DISTINCT p.source_format) AS formats"
                    " FROM plays p JOIN tracks t ON t.track_id = p.track_id"
                    " WHERE p.user_id = :user"
                ),
                {"user": uuid.UUID(user)},
            )
        ).one()
    return dict(row._mapping)


@pytest.mark.parametrize("family", ["extended", "account", "both"])
async def test_a_generated_export_imports_to_its_ground_truth(
    database_url: str, db_engine: AsyncEngine, user: str, tmp_path: Path, family: str
) -> None:
    path = tmp_path / "my_spotify_data.zip"
    truth = generate_export(path, records=RECORDS, seed=5, family=family)
    assert truth["repeated"] > 0
    assert truth["bad_timestamp"] > 0
    assert truth["no_identity"] > 0
    assert truth["under_30s"] > 0
    assert truth["episodes"] > 0

    report = _import(database_url, user, path)
    assert report_mismatches(report, truth) == []
    assert report["plays_inserted"] == truth["distinct_plays"] - truth["under_30s"]
    assert report["skips_inserted"] == truth["under_30s"]
    # Every record is stored, skipped for a reason, or a duplicate of one stored.
    not_stored = report["records_seen"] - sum(report["skipped"].values())
    assert report["duplicates"] + report["cross_source_duplicates"] == (
        not_stored - truth["distinct_plays"]
    )
    if family != "both":
        assert (report["duplicates"], report["cross_source_duplicates"]) == (
            truth["repeated"],
            0,
        )

    stored = await _stored(db_engine, user)
    assert stored == {
        "rows": truth["distinct_plays"],
        "skips": truth["under_30s"],
        "episodes": truth["episodes"],
        "audiobooks": truth["audiobooks"],
        "sensitive": 0,
        "formats": [STORED_FORMAT[family]],
    }

    again = _import(database_url, user, path)
    assert report_mismatches(again, truth) == []
    assert (again["plays_inserted"], again["skips_inserted"]) == (0, 0)
    assert await _stored(db_engine, user) == stored
