"""feed: served pages, impressions and clicks, interactions, exposure, grants, item neighbours

Revision ID: 0021_feed
Revises: 0020_content
Create Date: 2026-11-30 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import trustlive.db

revision: str = "0021_feed"
down_revision: str | None = "0020_content"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = (
    "feed_state",
    "feed_neighbours",
    "feed_interactions",
    "feed_exposure",
    "feed_events",
    "feed_grants",
    "feed_serves",
    "feed_providers",
    "feed_items",
)


def upgrade() -> None:
    op.create_table(
        "feed_items",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("ref_id", sa.BigInteger(), nullable=False),
        sa.Column("provider_type", sa.String(length=8), nullable=False),
        sa.Column("provider_id", sa.BigInteger(), nullable=False),
        sa.Column("published_at", trustlive.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.CheckConstraint("kind IN ('video', 'product')", name=op.f("ck_feed_items_kind_known")),
        sa.CheckConstraint("provider_type IN ('creator', 'shop')", name=op.f("ck_feed_items_provider_known")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_items")),
        sa.UniqueConstraint("kind", "ref_id", name=op.f("uq_feed_items_kind_ref_id")),
    )
    with op.batch_alter_table("feed_items", schema=None) as batch_op:
        batch_op.create_index("ix_feed_items_fresh", ["active", "published_at", "id"], unique=False)
        batch_op.create_index(
            "ix_feed_items_provider", ["provider_type", "provider_id", "published_at"], unique=False
        )

    op.create_table(
        "feed_providers",
        sa.Column("provider_type", sa.String(length=8), nullable=False),
        sa.Column("provider_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("first_item_at", trustlive.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("active_items", sa.Integer(), nullable=False),
        sa.Column("window_impressions", sa.BigInteger(), nullable=False),
        sa.Column("exposure_at", trustlive.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("active_items >= 0", name=op.f("ck_feed_providers_active_items")),
        sa.PrimaryKeyConstraint("provider_type", "provider_id", name=op.f("pk_feed_providers")),
    )
    with op.batch_alter_table("feed_providers", schema=None) as batch_op:
        batch_op.create_index("ix_feed_providers_exposure_at", ["exposure_at"], unique=False)
        batch_op.create_index("ix_feed_providers_first", ["first_item_at"], unique=False)
        batch_op.create_index(
            "ix_feed_providers_tail",
            ["window_impressions", "provider_type", "provider_id"],
            unique=False,
            postgresql_where=sa.text("active_items > 0"),
            sqlite_where=sa.text("active_items > 0"),
        )

    op.create_table(
        "feed_serves",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("feed", sa.String(length=12), nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("created_at", trustlive.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("page", sa.SmallInteger(), nullable=False),
        sa.Column("first_position", sa.Integer(), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("seen", sa.JSON(), nullable=False),
        sa.CheckConstraint("feed IN ('follow', 'discovery')", name=op.f("ck_feed_serves_feed_known")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_feed_serves_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_serves")),
    )
    with op.batch_alter_table("feed_serves", schema=None) as batch_op:
        batch_op.create_index("ix_feed_serves_created", ["created_at"], unique=False)

    op.create_table(
        "feed_grants",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("provider_type", sa.String(length=8), nullable=False),
        sa.Column("provider_id", sa.BigInteger(), nullable=False),
        sa.Column("budget", sa.Integer(), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("starts_at", trustlive.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", trustlive.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", trustlive.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", trustlive.db.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "provider_type IN ('creator', 'shop')", name=op.f("ck_feed_grants_provider_known")
        ),
        sa.CheckConstraint("budget > 0", name=op.f("ck_feed_grants_budget_positive")),
        sa.CheckConstraint("used >= 0 AND used <= budget", name=op.f("ck_feed_grants_used_within_budget")),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_feed_grants_created_by_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_grants")),
    )
    with op.batch_alter_table("feed_grants", schema=None) as batch_op:
        batch_op.create_index("ix_feed_grants_ends", ["ends_at"], unique=False)
        batch_op.create_index("ix_feed_grants_provider", ["provider_type", "provider_id"], unique=False)

    op.create_table(
        "feed_events",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("serve_id", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("feed", sa.String(length=12), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("item_kind", sa.String(length=8), nullable=False),
        sa.Column("ref_id", sa.BigInteger(), nullable=False),
        sa.Column("provider_type", sa.String(length=8), nullable=False),
        sa.Column("provider_id", sa.BigInteger(), nullable=False),
        sa.Column("grant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("created_at", trustlive.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('impression', 'view', 'click')", name=op.f("ck_feed_events_kind_known")),
        sa.ForeignKeyConstraint(
            ["grant_id"], ["feed_grants.id"], name=op.f("fk_feed_events_grant_id_feed_grants")
        ),
        sa.ForeignKeyConstraint(
            ["serve_id"], ["feed_serves.id"], name=op.f("fk_feed_events_serve_id_feed_serves")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_events")),
        sa.UniqueConstraint(
            "serve_id", "position", "kind", name=op.f("uq_feed_events_serve_id_position_kind")
        ),
    )
    with op.batch_alter_table("feed_events", schema=None) as batch_op:
        batch_op.create_index("ix_feed_events_created", ["created_at"], unique=False)
        batch_op.create_index("ix_feed_events_grant", ["grant_id"], unique=False)

    op.create_table(
        "feed_exposure",
        sa.Column("hour", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("feed", sa.String(length=12), nullable=False),
        sa.Column("provider_type", sa.String(length=8), nullable=False),
        sa.Column("provider_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("impressions", sa.BigInteger(), nullable=False),
        sa.Column("clicks", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "impressions >= 0 AND clicks >= 0", name=op.f("ck_feed_exposure_counts_not_negative")
        ),
        sa.PrimaryKeyConstraint(
            "hour", "feed", "provider_type", "provider_id", name=op.f("pk_feed_exposure")
        ),
    )

    op.create_table(
        "feed_interactions",
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("item_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("last_at", trustlive.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('impression', 'view', 'click', 'like', 'purchase')",
            name=op.f("ck_feed_interactions_kind_known"),
        ),
        sa.PrimaryKeyConstraint("user_id", "item_id", "kind", name=op.f("pk_feed_interactions")),
    )
    with op.batch_alter_table("feed_interactions", schema=None) as batch_op:
        batch_op.create_index("ix_feed_interactions_last", ["last_at"], unique=False)
        batch_op.create_index("ix_feed_interactions_recent", ["user_id", "last_at"], unique=False)

    op.create_table(
        "feed_neighbours",
        sa.Column("item_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("rank", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("neighbour_id", sa.BigInteger(), nullable=False),
        sa.Column("sim", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("item_id", "rank", name=op.f("pk_feed_neighbours")),
    )

    op.create_table(
        "feed_state",
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", trustlive.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_feed_state")),
    )


def downgrade() -> None:
    for name in TABLES:  # children first
        op.drop_table(name)
