"""feed: each neighbour row carries its item's kind, ref, provider and publishing time

A discovery page read its collaborative candidates by joining every neighbour to feed_items
(480 random lookups a page); now the build copies what the ranking needs into the row. The
neighbours are derived data: the table is emptied and the build's clock reset, so the feed task
rebuilds it at its next run (until then pages have no collaborative candidates, only the pools).

Revision ID: 0023_feed_neighbour_items
Revises: 0022_product_images_index
Create Date: 2026-11-30 14:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import trustlive.db

revision: str = "0023_feed_neighbour_items"
down_revision: str | None = "0022_product_images_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("kind", "ref_id", "provider_type", "provider_id", "published_at")


def _empty() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("TRUNCATE feed_neighbours")
    else:
        op.execute("DELETE FROM feed_neighbours")
    op.execute("DELETE FROM feed_state WHERE key = 'neighbours_at'")


def upgrade() -> None:
    _empty()
    with op.batch_alter_table("feed_neighbours", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=8), nullable=False))
        batch_op.add_column(sa.Column("ref_id", sa.BigInteger(), nullable=False))
        batch_op.add_column(sa.Column("provider_type", sa.String(length=8), nullable=False))
        batch_op.add_column(sa.Column("provider_id", sa.BigInteger(), nullable=False))
        batch_op.add_column(sa.Column("published_at", trustlive.db.UTCDateTime(timezone=True), nullable=False))


def downgrade() -> None:
    _empty()
    with op.batch_alter_table("feed_neighbours", schema=None) as batch_op:
        for name in reversed(COLUMNS):
            batch_op.drop_column(name)
