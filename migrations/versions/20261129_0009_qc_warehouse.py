"""QC warehouses, labs, inspectors, inspections and certificates

Revision ID: 0009_qc_warehouse
Revises: 0008_aftersales_terms
Create Date: 2026-11-29 23:50:00
"""

from collections.abc import Sequence

revision: str = "0009_qc_warehouse"
down_revision: str | None = "0008_aftersales_terms"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
