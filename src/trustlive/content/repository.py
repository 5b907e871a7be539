"""Every query of the content domain."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.content.models import Video, VideoLike, VideoProduct, VideoStatus
from trustlive.db import in_param


def _insert(session: AsyncSession, table: Any) -> Any:
    """INSERT with ON CONFLICT support for the session's database."""
    return (postgresql.insert if session.bind.dialect.name == "postgresql" else sqlite.insert)(table)


async def get_video(session: AsyncSession, video_id: int) -> Video | None:
    stmt = select(Video).where(Video.id == video_id).execution_options(populate_existing=True)
    return await session.scalar(stmt)


async def card_rows(session: AsyncSession, video_ids: Sequence[int]) -> list[Any]:
    """(id, creator_id, title, cover_path, created_at, like_count, status) of many videos, as
    read-only rows in one statement prepared once whatever their number (the feeds' cards)."""
    if not video_ids:
        return []
    conn = await session.connection()
    rows = await conn.execute(
        _card_rows_statement(session.bind.dialect.name), {"ids": sorted(set(video_ids))}
    )
    return list(rows)


_CARD_COLUMNS = (Video.id, Video.creator_id, Video.title, Video.cover_path, Video.created_at, Video.like_count,
                 Video.status)  # fmt: skip


@functools.cache
def _card_rows_statement(dialect: str):  # type: ignore[no-untyped-def]
    return select(*_CARD_COLUMNS).where(in_param(Video.id, "ids", dialect))


async def transition(
    session: AsyncSession, video_id: int, from_statuses: Sequence[str], **values: Any
) -> Video | None:
    """Move a video on from one of ``from_statuses``, decided by one UPDATE on the row as the
    database holds it: of two racing changes (the creator publishing again while ops take it
    down) the second finds the status moved and changes nothing. None when it did not apply."""
    stmt = (
        update(Video)
        .where(Video.id == video_id, Video.status.in_(list(from_statuses)))
        .values(**values)
        .returning(Video)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return await session.scalar(stmt)


async def products_of(session: AsyncSession, video_ids: Sequence[int]) -> dict[int, list[int]]:
    """Video id -> its linked product ids, in the creator's order."""
    if not video_ids:
        return {}
    conn = await session.connection()
    rows = await conn.execute(
        _products_of_statement(session.bind.dialect.name), {"ids": sorted(set(video_ids))}
    )
    found: dict[int, list[int]] = {}
    for video_id, product_id in rows:
        found.setdefault(video_id, []).append(product_id)
    return found


@functools.cache
def _products_of_statement(dialect: str):  # type: ignore[no-untyped-def]
    vp = VideoProduct
    return (
        select(vp.video_id, vp.product_id)
        .where(in_param(vp.video_id, "ids", dialect))
        .order_by(vp.video_id, vp.position)
    )


async def set_products(session: AsyncSession, video_id: int, product_ids: Sequence[int]) -> None:
    await session.execute(delete(VideoProduct).where(VideoProduct.video_id == video_id))
    if product_ids:
        await session.execute(
            VideoProduct.__table__.insert(),
            [{"video_id": video_id, "product_id": p, "position": i} for i, p in enumerate(product_ids)],
        )


async def list_of_creator(
    session: AsyncSession, creator_id: int, *, statuses: Sequence[str], before_id: int | None, limit: int
) -> list[Video]:
    """A creator's videos in the given statuses, newest first."""
    stmt = (
        select(Video)
        .where(Video.creator_id == creator_id, Video.status.in_(list(statuses)))
        .order_by(Video.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        stmt = stmt.where(Video.id < before_id)
    return list(await session.scalars(stmt))


def _older_than(before: tuple[dt.datetime, int] | None) -> Any:
    if before is None:
        return None
    at, video_id = before
    return or_(Video.created_at < at, and_(Video.created_at == at, Video.id < video_id))


async def recent_of(
    session: AsyncSession, creator_ids: Sequence[int], *, limit: int, before: tuple[dt.datetime, int] | None
) -> list[Any]:
    """Published videos of these creators as card rows (``card_rows``), newest first (created_at,
    then id), older than ``before``."""
    if not creator_ids:
        return []
    dialect = session.bind.dialect.name
    stmt = (
        select(*_CARD_COLUMNS)
        .where(in_param(Video.creator_id, "ids", dialect), Video.status == VideoStatus.published)
        .order_by(Video.created_at.desc(), Video.id.desc())
        .limit(limit)
    )
    older = _older_than(before)
    if older is not None:
        stmt = stmt.where(older)
    return list(await session.execute(stmt, {"ids": sorted(set(creator_ids))}))


async def recent_since(session: AsyncSession, since: dt.datetime, *, limit: int) -> list[Any]:
    """Published videos created at or after ``since`` as card rows, newest first."""
    stmt = (
        select(*_CARD_COLUMNS)
        .where(Video.status == VideoStatus.published, Video.created_at >= since)
        .order_by(Video.created_at.desc(), Video.id.desc())
        .limit(limit)
    )
    return list(await session.execute(stmt))


# --- likes ------------------------------------------------------------------------------------


async def add_like(session: AsyncSession, video_id: int, user_id: int, now: dt.datetime) -> bool:
    """Insert the like; False when it is there already. On PostgreSQL a concurrent insert of the
    same pair waits for the other transaction and then inserts nothing if that one committed."""
    stmt = (
        _insert(session, VideoLike)
        .values(video_id=video_id, user_id=user_id, created_at=now)
        .on_conflict_do_nothing(index_elements=[VideoLike.video_id, VideoLike.user_id])
        .returning(VideoLike.video_id)
    )
    return (await session.execute(stmt)).first() is not None


async def remove_like(session: AsyncSession, video_id: int, user_id: int) -> bool:
    """Delete the like; False when there was none (or a concurrent unlike deleted it first)."""
    stmt = (
        delete(VideoLike)
        .where(VideoLike.video_id == video_id, VideoLike.user_id == user_id)
        .returning(VideoLike.video_id)
    )
    return (await session.execute(stmt)).first() is not None


async def bump_likes(session: AsyncSession, video_id: int, delta: int) -> int:
    """Add ``delta`` to the counter in the database (never read-modify-write in Python: two
    likes at once add two) and give the new count."""
    stmt = (
        update(Video)
        .where(Video.id == video_id)
        .values(like_count=Video.like_count + delta)
        .returning(Video.like_count)
        .execution_options(synchronize_session=False)
    )
    return int(await session.scalar(stmt) or 0)


async def like_count(session: AsyncSession, video_id: int) -> int:
    return int(await session.scalar(select(Video.like_count).where(Video.id == video_id)) or 0)


async def liked_by(session: AsyncSession, user_id: int, video_ids: Sequence[int]) -> set[int]:
    if not video_ids:
        return set()
    stmt = select(VideoLike.video_id).where(
        VideoLike.user_id == user_id, VideoLike.video_id.in_(sorted(set(video_ids)))
    )
    return set(await session.scalars(stmt))
