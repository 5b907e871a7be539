"""catalog: index product pictures by product (every product card reads its first picture)

Revision ID: 0022_product_images_index
Revises: 0021_feed
Create Date: 2026-11-30 12:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0022_product_images_index"
down_revision: str | None = "0021_feed"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_product_images_product", "product_images", ["product_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_product_images_product", table_name="product_images")
