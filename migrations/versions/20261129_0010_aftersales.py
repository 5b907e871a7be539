"""after-sales requests, messages, evidence, care cases

Revision ID: 0010_aftersales
Revises: 0009_qc_warehouse
Create Date: 2026-11-29 23:50:00
"""

from collections.abc import Sequence

revision: str = "0010_aftersales"
down_revision: str | None = "0009_qc_warehouse"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
