"""Tables of the content domain: short videos (作品), the products each one links, and likes.

A video plays either a file uploaded to the media folder or an external playback URL (a CDN, a
media server): exactly one of the two, decided by a CHECK so no row can have both or neither.
``like_count`` is a counter kept in step with ``video_likes`` in the same transaction (one row per
user and video, a primary key), so pages and the feed read one column instead of counting.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from trustlive.db import Base, BigId, TimestampMixin, UTCDateTime, utcnow

MAX_TITLE = 80
MAX_DESCRIPTION = 1000
MAX_URL = 500
MAX_PRODUCTS = 20
MAX_REASON = 200


class VideoStatus(enum.StrEnum):
    published = "published"  # public: pages, lists and the feeds show it
    hidden = "hidden"  # the creator took it off; they may publish it again
    taken_down = "taken_down"  # ops took it off; only ops may restore it
    deleted = "deleted"  # the creator deleted it: gone for everyone, the row kept for the records


class Video(TimestampMixin, Base):
    """A creator's short video: title, description, cover, and the file or external URL it plays."""

    __tablename__ = "videos"
    __table_args__ = (
        CheckConstraint("status IN ('published', 'hidden', 'taken_down', 'deleted')", name="status_known"),
        CheckConstraint("(video_path IS NULL) <> (external_url IS NULL)", name="one_source"),
        CheckConstraint("like_count >= 0", name="likes_not_negative"),
        CheckConstraint(f"length(title) BETWEEN 1 AND {MAX_TITLE}", name="title_length"),
        CheckConstraint(f"length(description) <= {MAX_DESCRIPTION}", name="description_length"),
        # A creator's page and the follow feed read newest first within a few creators; the
        # fresh pool of the discovery feed reads the newest published videos of everyone.
        Index("ix_videos_creator", "creator_id", "created_at"),
        Index("ix_videos_status", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    creator_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    title: Mapped[str] = mapped_column(String(MAX_TITLE), nullable=False)
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)
    cover_path: Mapped[str] = mapped_column(String(255), nullable=False)  # under the media folder
    video_path: Mapped[str | None] = mapped_column(String(255), nullable=True)  # an uploaded file
    video_type: Mapped[str | None] = mapped_column(String(32), nullable=True)  # video/mp4, video/webm
    video_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    external_url: Mapped[str | None] = mapped_column(String(MAX_URL), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=VideoStatus.published, nullable=False)
    like_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    taken_down_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    taken_down_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    taken_down_reason: Mapped[str | None] = mapped_column(String(MAX_REASON), nullable=True)


class VideoProduct(Base):
    """A product linked from a video, in the order the creator chose (0-20 per video)."""

    __tablename__ = "video_products"

    video_id: Mapped[int] = mapped_column(
        ForeignKey("videos.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    product_id: Mapped[int] = mapped_column(
        ForeignKey("products.id"), primary_key=True, autoincrement=False, index=True
    )
    position: Mapped[int] = mapped_column(Integer, default=0, nullable=False)


class VideoLike(Base):
    """One user's like of one video: the primary key makes a second like of the same video a
    no-op however many arrive at once."""

    __tablename__ = "video_likes"

    video_id: Mapped[int] = mapped_column(
        ForeignKey("videos.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id"), primary_key=True, autoincrement=False, index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
