"""Tables of the social domain: who follows which creator or shop, and each target's follower
count.

A follow names its target by type and id (``creator`` -> users.id, ``shop`` -> shops.id), so one
table serves both kinds; the target's existence is checked by the service when the follow is made.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from trustlive.db import Base, BigId, UTCDateTime, utcnow


class TargetType(enum.StrEnum):
    creator = "creator"  # a user holding the creator role
    shop = "shop"


TARGET_TYPES = tuple(t.value for t in TargetType)
_KNOWN = f"target_type IN ({', '.join(repr(t) for t in TARGET_TYPES)})"


class Follow(Base):
    """One user following one creator or shop. The newest-first list of a user's follows reads
    the (user_id, id) index; a target's followers read (target_type, target_id)."""

    __tablename__ = "follows"
    __table_args__ = (
        # Following twice is decided here: two racing follows cannot both land.
        UniqueConstraint("user_id", "target_type", "target_id"),
        CheckConstraint(_KNOWN, name="target_type_known"),
        Index("ix_follows_user", "user_id", "id"),
        Index("ix_follows_target", "target_type", "target_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    target_type: Mapped[str] = mapped_column(String(8), nullable=False)
    target_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class FollowerCount(Base):
    """How many users follow a target, changed in the same transaction as the follow rows (one
    atomic ``followers = followers ± 1`` per follow or unfollow), so pages read one row instead of
    counting the follows on every view. A target nobody ever followed has no row: 0."""

    __tablename__ = "follower_counts"
    __table_args__ = (
        CheckConstraint(_KNOWN, name="target_type_known"),
        CheckConstraint("followers >= 0", name="followers_not_negative"),
    )

    target_type: Mapped[str] = mapped_column(String(8), primary_key=True)
    target_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    followers: Mapped[int] = mapped_column(Integer, nullable=False)
