"""per-line and shipping refunds, settlement holds, shop return terms

Revision ID: 0008_aftersales_terms
Revises: 0007_fulfillment
Create Date: 2026-11-29 23:40:58.845790
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_aftersales_terms"
down_revision: str | None = "0007_fulfillment"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing rows start at zero refunds allocated, no holds, buyer-paid returns and no address.
    with op.batch_alter_table("order_lines", schema=None) as batch_op:
        batch_op.add_column(sa.Column("refunded_fen", sa.BigInteger(), nullable=False, server_default="0"))
        batch_op.create_check_constraint(
            "line_refunds", "refunded_fen >= 0 AND refunded_fen <= line_total_fen"
        )

    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("shipping_refunded_fen", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("settlement_holds", sa.Integer(), nullable=False, server_default="0"))
        batch_op.create_check_constraint(
            "shipping_refunds", "shipping_refunded_fen >= 0 AND shipping_refunded_fen <= shipping_fen"
        )
        batch_op.create_check_constraint("settlement_holds", "settlement_holds >= 0")

    with op.batch_alter_table("shop_terms", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("covers_return_shipping", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("return_address", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("shop_terms", schema=None) as batch_op:
        batch_op.drop_column("return_address")
        batch_op.drop_column("covers_return_shipping")

    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_constraint("settlement_holds", type_="check")
        batch_op.drop_constraint("shipping_refunds", type_="check")
        batch_op.drop_column("settlement_holds")
        batch_op.drop_column("shipping_refunded_fen")

    with op.batch_alter_table("order_lines", schema=None) as batch_op:
        batch_op.drop_constraint("line_refunds", type_="check")
        batch_op.drop_column("refunded_fen")
