"""ship-by deadline: orders.ship_by (set when paid) and orders.shipped_late_minutes (set when
shipped); orders paid before this revision get paid_at + 48 hours, the default

Revision ID: 0006_ship_by
Revises: 0005_partial_indexes
Create Date: 2026-11-22 12:40:00
"""

import datetime as dt
import math
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from trustlive.db import UTCDateTime

revision: str = "0006_ship_by"
down_revision: str | None = "0005_partial_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEFAULT_SHIP_HOURS = 48


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("ship_by", UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("shipped_late_minutes", sa.Integer(), nullable=True))
    # Backfill in Python: date arithmetic is spelled differently on each backend. UTCDateTime
    # reads and writes aware UTC datetimes on both.
    conn = op.get_bind()
    orders = sa.table(
        "orders", sa.column("id", sa.BigInteger), sa.column("paid_at", UTCDateTime()),
        sa.column("shipped_at", UTCDateTime()), sa.column("ship_by", UTCDateTime()),
        sa.column("shipped_late_minutes", sa.Integer),
    )  # fmt: skip
    rows = conn.execute(
        sa.select(orders.c.id, orders.c.paid_at, orders.c.shipped_at).where(orders.c.paid_at.is_not(None))
    )
    for order_id, paid_at, shipped_at in rows.all():
        ship_by = paid_at + dt.timedelta(hours=DEFAULT_SHIP_HOURS)
        late = None
        if shipped_at is not None:
            late = max(0, math.ceil((shipped_at - ship_by).total_seconds() / 60))
        conn.execute(
            orders.update().where(orders.c.id == order_id).values(ship_by=ship_by, shipped_late_minutes=late)
        )


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("shipped_late_minutes")
        batch.drop_column("ship_by")
