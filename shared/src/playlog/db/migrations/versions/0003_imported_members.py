"""History members already imported per user (content digests).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "imported_members",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("digest", sa.Text(), nullable=False),
        sa.Column("crc32", sa.BigInteger(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("format", sa.Text(), nullable=False),
        sa.Column("import_job_id", sa.Uuid(), nullable=True),
        sa.Column("report", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "imported_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["import_job_id"],
            ["import_jobs.id"],
            name=op.f("fk_imported_members_import_job_id_import_jobs"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_imported_members_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_imported_members")),
        sa.UniqueConstraint("user_id", "digest", name=op.f("uq_imported_members_user_id_digest")),
    )
    op.create_index(
        op.f("ix_imported_members_import_job_id"),
        "imported_members",
        ["import_job_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_imported_members_user_id_crc32_size_bytes"),
        "imported_members",
        ["user_id", "crc32", "size_bytes"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_imported_members_user_id_crc32_size_bytes"), table_name="imported_members"
    )
    op.drop_index(op.f("ix_imported_members_import_job_id"), table_name="imported_members")
    op.drop_table("imported_members")
