"""partial indexes: each order-deadline index holds only the orders in its status; the outbox index
holds only pending events (the unused topic index goes)

Revision ID: 0005_partial_indexes
Revises: 0004_payments
Create Date: 2026-11-22 10:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_partial_indexes"
down_revision: str | None = "0004_payments"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DUE = (
    ("ix_orders_pay_due", "ix_orders_status_pay_deadline", "pay_deadline", "pending_payment"),
    ("ix_orders_confirm_due", "ix_orders_status_auto_confirm_at", "auto_confirm_at", "delivered"),
    ("ix_orders_settle_due", "ix_orders_status_settle_at", "settle_at", "completed"),
)
PENDING = sa.text("published_at IS NULL")


def upgrade() -> None:
    for name, old, column, status in DUE:
        op.drop_index(old, table_name="orders")
        where = sa.text(f"status = '{status}'")
        op.create_index(name, "orders", [column], postgresql_where=where, sqlite_where=where)
    op.drop_index("ix_outbox_events_topic", table_name="outbox_events")
    op.drop_index("ix_outbox_events_published_at", table_name="outbox_events")
    op.create_index(
        "ix_outbox_events_pending", "outbox_events", ["id"], postgresql_where=PENDING, sqlite_where=PENDING
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_events_pending", table_name="outbox_events")
    op.create_index("ix_outbox_events_published_at", "outbox_events", ["published_at"])
    op.create_index("ix_outbox_events_topic", "outbox_events", ["topic"])
    for name, old, column, _ in DUE:
        op.drop_index(name, table_name="orders")
        op.create_index(old, "orders", ["status", column])
