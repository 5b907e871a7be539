"""ledger: hash-chained transactions and postings, balances, the chain head, payouts

Revision ID: 0002_ledger
Revises: 0001_foundation
Create Date: 2026-11-22 05:04:06.465272
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import trustlive.db


revision: str = '0002_ledger'
down_revision: str | None = '0001_foundation'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Ids of transactions and postings are allocated from ledger_head (no sequence), so they
    # run without gaps in chain order; the head row itself is created by the first posting.
    op.create_table('ledger_balances',
    sa.Column('account', sa.String(length=64), nullable=False),
    sa.Column('balance_fen', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', trustlive.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('account', name=op.f('pk_ledger_balances'))
    )
    op.create_table('ledger_head',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('last_transaction_id', sa.BigInteger(), nullable=False),
    sa.Column('last_posting_id', sa.BigInteger(), nullable=False),
    sa.Column('last_hash', sa.String(length=64), nullable=False),
    sa.Column('updated_at', trustlive.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('id = 1', name=op.f('ck_ledger_head_single_row')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_head'))
    )
    op.create_table('ledger_transactions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('ref', sa.String(length=100), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('memo', sa.String(length=500), nullable=False),
    sa.Column('created_at', trustlive.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_transactions')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_ledger_transactions_idempotency_key'))
    )
    with op.batch_alter_table('ledger_transactions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ledger_transactions_ref'), ['ref'], unique=False)

    op.create_table('ledger_postings',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('transaction_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('account', sa.String(length=64), nullable=False),
    sa.Column('amount_fen', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('amount_fen <> 0', name=op.f('ck_ledger_postings_amount_nonzero')),
    sa.ForeignKeyConstraint(['transaction_id'], ['ledger_transactions.id'], name=op.f('fk_ledger_postings_transaction_id_ledger_transactions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_postings'))
    )
    with op.batch_alter_table('ledger_postings', schema=None) as batch_op:
        batch_op.create_index('ix_ledger_postings_account_id', ['account', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ledger_postings_transaction_id'), ['transaction_id'], unique=False)

    op.create_table('payouts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account', sa.String(length=64), nullable=False),
    sa.Column('owner_kind', sa.String(length=16), nullable=False),
    sa.Column('owner_id', sa.BigInteger(), nullable=False),
    sa.Column('amount_fen', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('bank_account', sa.String(length=64), nullable=False),
    sa.Column('requested_by', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', trustlive.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('completed_at', trustlive.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('failure_reason', sa.Text(), nullable=True),
    sa.CheckConstraint("status IN ('requested', 'paid', 'failed')", name=op.f('ck_payouts_status_known')),
    sa.CheckConstraint('amount_fen > 0', name=op.f('ck_payouts_amount_positive')),
    sa.ForeignKeyConstraint(['requested_by'], ['users.id'], name=op.f('fk_payouts_requested_by_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payouts'))
    )
    with op.batch_alter_table('payouts', schema=None) as batch_op:
        batch_op.create_index('ix_payouts_account_id', ['account', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_payouts_status'), ['status'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('payouts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payouts_status'))
        batch_op.drop_index('ix_payouts_account_id')

    op.drop_table('payouts')
    with op.batch_alter_table('ledger_postings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_postings_transaction_id'))
        batch_op.drop_index('ix_ledger_postings_account_id')

    op.drop_table('ledger_postings')
    with op.batch_alter_table('ledger_transactions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_transactions_ref'))

    op.drop_table('ledger_transactions')
    op.drop_table('ledger_head')
    op.drop_table('ledger_balances')
