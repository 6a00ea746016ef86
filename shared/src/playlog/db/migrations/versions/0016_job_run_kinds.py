"""Job runs are polls and initial syncs only.

``job_runs`` allowed two more kinds that nothing records: ``import_zip`` (an export
import is an ``import_jobs`` row, with its progress and report) and ``enrich``. Tools and
routes offered them as filters that could never match anything.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _allow(*kinds: str) -> None:
    # The name as stored (op.f: the naming convention is applied already).
    name = op.f("ck_job_runs_job_type_valid")
    op.drop_constraint(name, "job_runs", type_="check")
    allowed = ", ".join(f"'{kind}'" for kind in kinds)
    op.create_check_constraint(name, "job_runs", f"job_type IN ({allowed})")


def upgrade() -> None:
    _allow("initial_sync", "poll")


def downgrade() -> None:
    _allow("import_zip", "initial_sync", "poll", "enrich")
