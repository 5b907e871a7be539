"""reviews and merchant replies

Revision ID: 0011_reviews
Revises: 0010_aftersales
Create Date: 2026-11-29 23:50:00
"""

from collections.abc import Sequence

revision: str = "0011_reviews"
down_revision: str | None = "0010_aftersales"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
