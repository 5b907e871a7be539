"""social: follows of creators and shops

Revision ID: 0019_social
Revises: 0018_trust_as_of
Create Date: 2026-11-30 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import trustlive.db

revision: str = "0019_social"
down_revision: str | None = "0018_trust_as_of"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
KNOWN = "target_type IN ('creator', 'shop')"


def upgrade() -> None:
    op.create_table(
        "follows",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("user_id", BIG_ID, nullable=False),
        sa.Column("target_type", sa.String(length=8), nullable=False),
        sa.Column("target_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", trustlive.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(KNOWN, name=op.f("ck_follows_target_type_known")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_follows_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_follows")),
        # Following twice is decided by this constraint, also under a race.
        sa.UniqueConstraint(
            "user_id", "target_type", "target_id", name=op.f("uq_follows_user_id_target_type_target_id")
        ),
    )
    op.create_index("ix_follows_user", "follows", ["user_id", "id"], unique=False)
    op.create_index("ix_follows_target", "follows", ["target_type", "target_id"], unique=False)
    op.create_table(
        "follower_counts",
        sa.Column("target_type", sa.String(length=8), nullable=False),
        sa.Column("target_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("followers", sa.Integer(), nullable=False),
        sa.CheckConstraint(KNOWN, name=op.f("ck_follower_counts_target_type_known")),
        sa.CheckConstraint("followers >= 0", name=op.f("ck_follower_counts_followers_not_negative")),
        sa.PrimaryKeyConstraint("target_type", "target_id", name=op.f("pk_follower_counts")),
    )


def downgrade() -> None:
    op.drop_table("follower_counts")
    op.drop_index("ix_follows_target", table_name="follows")
    op.drop_index("ix_follows_user", table_name="follows")
    op.drop_table("follows")
