"""content: short videos and their linked products

Revision ID: 0020_content
Revises: 0019_social
Create Date: 2026-11-30 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import trustlive.db

revision: str = "0020_content"
down_revision: str | None = "0019_social"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "videos",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("creator_id", BIG_ID, nullable=False),
        sa.Column("title", sa.String(length=80), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("cover_path", sa.String(length=255), nullable=False),
        sa.Column("video_path", sa.String(length=255), nullable=True),
        sa.Column("video_type", sa.String(length=32), nullable=True),
        sa.Column("video_bytes", sa.BigInteger(), nullable=True),
        sa.Column("external_url", sa.String(length=500), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("like_count", sa.Integer(), nullable=False),
        sa.Column("taken_down_at", trustlive.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("taken_down_by_id", BIG_ID, nullable=True),
        sa.Column("taken_down_reason", sa.String(length=200), nullable=True),
        sa.Column("created_at", trustlive.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", trustlive.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('published', 'hidden', 'taken_down', 'deleted')", name=op.f("ck_videos_status_known")
        ),
        sa.CheckConstraint(
            "(video_path IS NULL) <> (external_url IS NULL)", name=op.f("ck_videos_one_source")
        ),
        sa.CheckConstraint("like_count >= 0", name=op.f("ck_videos_likes_not_negative")),
        sa.CheckConstraint("length(title) BETWEEN 1 AND 80", name=op.f("ck_videos_title_length")),
        sa.CheckConstraint("length(description) <= 1000", name=op.f("ck_videos_description_length")),
        sa.ForeignKeyConstraint(["creator_id"], ["users.id"], name=op.f("fk_videos_creator_id_users")),
        sa.ForeignKeyConstraint(
            ["taken_down_by_id"], ["users.id"], name=op.f("fk_videos_taken_down_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_videos")),
    )
    with op.batch_alter_table("videos", schema=None) as batch_op:
        batch_op.create_index("ix_videos_creator", ["creator_id", "created_at"], unique=False)
        batch_op.create_index("ix_videos_status", ["status", "created_at"], unique=False)

    op.create_table(
        "video_products",
        sa.Column("video_id", BIG_ID, autoincrement=False, nullable=False),
        sa.Column("product_id", BIG_ID, autoincrement=False, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["video_id"], ["videos.id"], name=op.f("fk_video_products_video_id_videos"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_video_products_product_id_products")
        ),
        sa.PrimaryKeyConstraint("video_id", "product_id", name=op.f("pk_video_products")),
    )
    with op.batch_alter_table("video_products", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_video_products_product_id"), ["product_id"], unique=False)

    op.create_table(
        "video_likes",
        sa.Column("video_id", BIG_ID, autoincrement=False, nullable=False),
        sa.Column("user_id", BIG_ID, autoincrement=False, nullable=False),
        sa.Column("created_at", trustlive.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["video_id"], ["videos.id"], name=op.f("fk_video_likes_video_id_videos"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_video_likes_user_id_users")),
        sa.PrimaryKeyConstraint("video_id", "user_id", name=op.f("pk_video_likes")),
    )
    with op.batch_alter_table("video_likes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_video_likes_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("video_likes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_video_likes_user_id"))
    op.drop_table("video_likes")
    with op.batch_alter_table("video_products", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_video_products_product_id"))
    op.drop_table("video_products")
    with op.batch_alter_table("videos", schema=None) as batch_op:
        batch_op.drop_index("ix_videos_status")
        batch_op.drop_index("ix_videos_creator")
    op.drop_table("videos")
