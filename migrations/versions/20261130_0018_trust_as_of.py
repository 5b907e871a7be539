"""trust scores: the time each score's windows were evaluated at (as_of_ts)

Revision ID: 0018_trust_as_of
Revises: 0017_trust
Create Date: 2026-11-30 10:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_trust_as_of"
down_revision: str | None = "0017_trust"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # 0: never evaluated at a known time, so the entity's next refresh reads its facts afresh.
    with op.batch_alter_table("trust_scores") as batch:
        batch.add_column(sa.Column("as_of_ts", sa.BigInteger(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("trust_scores") as batch:
        batch.drop_column("as_of_ts")
