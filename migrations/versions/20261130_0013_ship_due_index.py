"""ops' list of overdue shipments: a partial index of paid orders' ship-by deadlines

Revision ID: 0013_ship_due_index
Revises: 0012_care
Create Date: 2026-11-30 00:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_ship_due_index"
down_revision: str | None = "0012_care"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index(
            "ix_orders_ship_due",
            ["ship_by"],
            unique=False,
            postgresql_where=sa.text("status = 'paid'"),
            sqlite_where=sa.text("status = 'paid'"),
        )


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_ship_due", postgresql_where=sa.text("status = 'paid'"),
                            sqlite_where=sa.text("status = 'paid'"))  # fmt: skip
