"""care cases: specialists, follow-up schedules, notes

Revision ID: 0012_care
Revises: 0011_reviews
Create Date: 2026-11-29 23:55:00
"""

from collections.abc import Sequence

revision: str = "0012_care"
down_revision: str | None = "0011_reviews"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
