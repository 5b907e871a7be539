"""after-sales: refund and return requests, their message thread and evidence photos

Revision ID: 0010_aftersales
Revises: 0009_qc_warehouse
Create Date: 2026-11-29 23:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import trustlive.db

revision: str = "0010_aftersales"
down_revision: str | None = "0009_qc_warehouse"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('aftersales_requests',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('order_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('line_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('buyer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('shop_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=20), nullable=False),
    sa.Column('seller_cause', sa.Boolean(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('amount_fen', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('open_slot', sa.BigInteger(), nullable=True),
    sa.Column('due_at', trustlive.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', trustlive.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', trustlive.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('decision', sa.String(length=20), nullable=True),
    sa.Column('responded_at', trustlive.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('responder_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('reject_reason', sa.Text(), nullable=False),
    sa.Column('escalated_at', trustlive.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('arbitrated_at', trustlive.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('arbitrator_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('arbitration_note', sa.Text(), nullable=False),
    sa.Column('postage_payer', sa.String(length=8), nullable=True),
    sa.Column('return_shipment_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('return_carrier', sa.String(length=32), nullable=True),
    sa.Column('return_tracking_no', sa.String(length=64), nullable=True),
    sa.Column('return_shipped_at', trustlive.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('return_arrived_at', trustlive.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('arrival_confirmed_at', trustlive.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('arrival_confirmed_by', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('resolution', sa.String(length=20), nullable=True),
    sa.Column('resolved_at', trustlive.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('refund_fen', sa.BigInteger(), nullable=False),
    sa.Column('auto_refunded', sa.Boolean(), nullable=False),
    sa.Column('refund_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.CheckConstraint('amount_fen > 0', name=op.f('ck_aftersales_requests_amount')),
    sa.CheckConstraint('refund_fen >= 0', name=op.f('ck_aftersales_requests_refund')),
    sa.ForeignKeyConstraint(['arbitrator_id'], ['users.id'], name=op.f('fk_aftersales_requests_arbitrator_id_users')),
    sa.ForeignKeyConstraint(['arrival_confirmed_by'], ['users.id'], name=op.f('fk_aftersales_requests_arrival_confirmed_by_users')),
    sa.ForeignKeyConstraint(['buyer_id'], ['users.id'], name=op.f('fk_aftersales_requests_buyer_id_users')),
    sa.ForeignKeyConstraint(['line_id'], ['order_lines.id'], name=op.f('fk_aftersales_requests_line_id_order_lines')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_aftersales_requests_order_id_orders')),
    sa.ForeignKeyConstraint(['refund_id'], ['refunds.id'], name=op.f('fk_aftersales_requests_refund_id_refunds')),
    sa.ForeignKeyConstraint(['responder_id'], ['users.id'], name=op.f('fk_aftersales_requests_responder_id_users')),
    sa.ForeignKeyConstraint(['return_shipment_id'], ['shipments.id'], name=op.f('fk_aftersales_requests_return_shipment_id_shipments')),
    sa.ForeignKeyConstraint(['shop_id'], ['shops.id'], name=op.f('fk_aftersales_requests_shop_id_shops')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_aftersales_requests')),
    sa.UniqueConstraint('order_id', 'open_slot', name=op.f('uq_aftersales_requests_order_id_open_slot'))
    )

    with op.batch_alter_table('aftersales_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_aftersales_requests_buyer_id'), ['buyer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_aftersales_requests_order_id'), ['order_id'], unique=False)
        batch_op.create_index('ix_aftersales_requests_shop_status', ['shop_id', 'status'], unique=False)
        batch_op.create_index('ix_aftersales_requests_status_due', ['status', 'due_at'], unique=False)

    op.create_table('aftersales_messages',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('request_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('author_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('side', sa.String(length=8), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', trustlive.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], name=op.f('fk_aftersales_messages_author_id_users')),
    sa.ForeignKeyConstraint(['request_id'], ['aftersales_requests.id'], name=op.f('fk_aftersales_messages_request_id_aftersales_requests'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_aftersales_messages'))
    )

    with op.batch_alter_table('aftersales_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_aftersales_messages_request_id'), ['request_id'], unique=False)

    op.create_table('aftersales_photos',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('request_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('path', sa.String(length=200), nullable=False),
    sa.Column('created_at', trustlive.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['aftersales_messages.id'], name=op.f('fk_aftersales_photos_message_id_aftersales_messages'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['request_id'], ['aftersales_requests.id'], name=op.f('fk_aftersales_photos_request_id_aftersales_requests'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_aftersales_photos'))
    )

    with op.batch_alter_table('aftersales_photos', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_aftersales_photos_request_id'), ['request_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('aftersales_photos', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_aftersales_photos_request_id'))

    op.drop_table('aftersales_photos')

    with op.batch_alter_table('aftersales_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_aftersales_messages_request_id'))

    op.drop_table('aftersales_messages')

    with op.batch_alter_table('aftersales_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_aftersales_requests_status_due')
        batch_op.drop_index('ix_aftersales_requests_shop_status')
        batch_op.drop_index(batch_op.f('ix_aftersales_requests_order_id'))
        batch_op.drop_index(batch_op.f('ix_aftersales_requests_buyer_id'))

    op.drop_table('aftersales_requests')
