"""live rooms: returning customers' notes, co-streaming links and their revenue shares

Revision ID: 0015_live_customers_costream
Revises: 0014_live
Create Date: 2026-11-30 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import trustlive.db

revision: str = "0015_live_customers_costream"
down_revision: str | None = "0014_live"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.types.TypeEngine:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "live_costreams",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("inviter_session_id", _id(), nullable=False),
        sa.Column("invitee_session_id", _id(), nullable=False),
        sa.Column("inviter_id", _id(), nullable=False),
        sa.Column("invitee_id", _id(), nullable=False),
        sa.Column("share_bp", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", trustlive.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", trustlive.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", trustlive.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_by_id", _id(), nullable=True),
        sa.CheckConstraint("share_bp >= 0 AND share_bp <= 5000", name=op.f("ck_live_costreams_share_range")),
        sa.CheckConstraint(
            "status IN ('invited', 'active', 'declined', 'ended')", name=op.f("ck_live_costreams_status_known")
        ),
        sa.CheckConstraint(
            "inviter_session_id <> invitee_session_id", name=op.f("ck_live_costreams_two_sessions")
        ),
        sa.ForeignKeyConstraint(
            ["inviter_session_id"], ["live_sessions.id"],
            name=op.f("fk_live_costreams_inviter_session_id_live_sessions"),
        ),
        sa.ForeignKeyConstraint(
            ["invitee_session_id"], ["live_sessions.id"],
            name=op.f("fk_live_costreams_invitee_session_id_live_sessions"),
        ),
        sa.ForeignKeyConstraint(["inviter_id"], ["users.id"], name=op.f("fk_live_costreams_inviter_id_users")),
        sa.ForeignKeyConstraint(["invitee_id"], ["users.id"], name=op.f("fk_live_costreams_invitee_id_users")),
        sa.ForeignKeyConstraint(["ended_by_id"], ["users.id"], name=op.f("fk_live_costreams_ended_by_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_live_costreams")),
    )  # fmt: skip
    op.create_index(op.f("ix_live_costreams_invitee_id"), "live_costreams", ["invitee_id"], unique=False)
    for side in ("inviter", "invitee"):
        op.create_index(
            f"ix_live_costreams_open_{side}", "live_costreams", [f"{side}_session_id"], unique=True,
            postgresql_where=sa.text("status IN ('invited', 'active')"),
            sqlite_where=sa.text("status IN ('invited', 'active')"),
        )  # fmt: skip
    op.create_table(
        "live_visits",
        sa.Column("creator_id", _id(), nullable=False),
        sa.Column("user_id", _id(), nullable=False),
        sa.Column("session_id", _id(), nullable=False),
        sa.Column("visited_at", trustlive.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("previous_at", trustlive.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("visits", sa.Integer(), nullable=False),
        sa.Column("card_session_id", sa.BigInteger(), nullable=True),
        sa.Column("card_at", trustlive.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["creator_id"], ["users.id"], name=op.f("fk_live_visits_creator_id_users")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_live_visits_user_id_users")),
        sa.ForeignKeyConstraint(
            ["session_id"], ["live_sessions.id"], name=op.f("fk_live_visits_session_id_live_sessions")
        ),
        sa.PrimaryKeyConstraint("creator_id", "user_id", name=op.f("pk_live_visits")),
    )
    op.create_table(
        "live_customer_notes",
        sa.Column("creator_id", _id(), nullable=False),
        sa.Column("buyer_id", _id(), nullable=False),
        sa.Column("note", sa.String(length=1000), nullable=False),
        sa.Column("updated_at", trustlive.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["creator_id"], ["users.id"], name=op.f("fk_live_customer_notes_creator_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["buyer_id"], ["users.id"], name=op.f("fk_live_customer_notes_buyer_id_users")
        ),
        sa.PrimaryKeyConstraint("creator_id", "buyer_id", name=op.f("pk_live_customer_notes")),
    )
    op.create_table(
        "live_id_blocks",
        sa.Column("name", sa.String(length=20), nullable=False),
        sa.Column("next_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_live_id_blocks")),
    )
    # Comment ids from now on come from reserved blocks, above every id made the old way.
    op.execute(
        "INSERT INTO live_id_blocks (name, next_id) SELECT 'comment', COALESCE(MAX(id), 0) + 1 FROM live_comments"
    )
    with op.batch_alter_table("live_orders") as batch:
        batch.add_column(sa.Column("costream_id", _id(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_live_orders_costream_id_live_costreams"), "live_costreams", ["costream_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("live_orders") as batch:
        batch.drop_constraint(op.f("fk_live_orders_costream_id_live_costreams"), type_="foreignkey")
        batch.drop_column("costream_id")
    op.drop_table("live_id_blocks")
    op.drop_table("live_customer_notes")
    op.drop_table("live_visits")
    for side in ("inviter", "invitee"):
        op.drop_index(f"ix_live_costreams_open_{side}", table_name="live_costreams")
    op.drop_index(op.f("ix_live_costreams_invitee_id"), table_name="live_costreams")
    op.drop_table("live_costreams")
