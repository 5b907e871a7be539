"""Every query of the social domain."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.db import utcnow
from trustlive.social.models import Follow, FollowerCount


def _insert(session: AsyncSession, table: Any) -> Any:
    """INSERT with ON CONFLICT support for the session's database."""
    dialect = session.bind.dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


_FOLLOW_KEY = [Follow.user_id, Follow.target_type, Follow.target_id]


async def insert_follow(session: AsyncSession, user_id: int, target_type: str, target_id: int) -> int | None:
    """The new follow's id, or None when the user follows the target already. The unique
    constraint decides, in one statement: a concurrent twin makes this one wait for its outcome
    (PostgreSQL) or for the write lock (SQLite), then do nothing."""
    stmt = (
        _insert(session, Follow)
        .values(user_id=user_id, target_type=target_type, target_id=target_id, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=_FOLLOW_KEY)
        .returning(Follow.id)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def insert_follows(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> list[tuple[str, int, int]]:
    """Many follows at once (user_id, target_type, target_id, created_at); those already there are
    skipped. Returns (target_type, target_id, user_id) of the rows inserted."""
    if not rows:
        return []
    stmt = (
        _insert(session, Follow)
        .values(list(rows))
        .on_conflict_do_nothing(index_elements=_FOLLOW_KEY)
        .returning(Follow.target_type, Follow.target_id, Follow.user_id)
    )
    return [(r.target_type, r.target_id, r.user_id) for r in await session.execute(stmt)]


async def delete_follow(session: AsyncSession, user_id: int, target_type: str, target_id: int) -> bool:
    """True when the user followed the target (the row is gone now). Of two racing unfollows one
    deletes the row and the other, waiting on it, finds nothing."""
    stmt = (
        delete(Follow)
        .where(Follow.user_id == user_id, Follow.target_type == target_type, Follow.target_id == target_id)
        .returning(Follow.id)
    )
    return (await session.execute(stmt)).scalar_one_or_none() is not None


async def add_followers(session: AsyncSession, target_type: str, target_id: int, delta: int) -> int:
    """Add ``delta`` to the target's count in one atomic statement and return the new count. An
    increment creates the row (upsert); a decrement updates the row the follow being removed has
    made. The row's lock orders concurrent changes, and each adds to the value it finds, so the
    count is the number of follows whatever the interleaving; the CHECK refuses a negative one."""
    if delta > 0:
        stmt = _insert(session, FollowerCount).values(
            target_type=target_type, target_id=target_id, followers=delta
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[FollowerCount.target_type, FollowerCount.target_id],
            set_={"followers": FollowerCount.followers + delta},
        ).returning(FollowerCount.followers)
        return int((await session.execute(stmt)).scalar_one())
    found = await session.execute(
        update(FollowerCount)
        .where(FollowerCount.target_type == target_type, FollowerCount.target_id == target_id)
        .values(followers=FollowerCount.followers + delta)
        .returning(FollowerCount.followers)
        .execution_options(synchronize_session=False)
    )
    return int(found.scalar_one_or_none() or 0)


async def follower_counts(session: AsyncSession, target_type: str, ids: Sequence[int]) -> dict[int, int]:
    """The stored counts of those targets (targets without a row are left out)."""
    if not ids:
        return {}
    stmt = select(FollowerCount.target_id, FollowerCount.followers).where(
        FollowerCount.target_type == target_type, FollowerCount.target_id.in_(sorted(set(ids)))
    )
    return {r.target_id: r.followers for r in await session.execute(stmt)}


async def following_among(
    session: AsyncSession, user_id: int, target_type: str, ids: Sequence[int]
) -> set[int]:
    """Which of ``ids`` the user follows (the unique index: user, type, target)."""
    if not ids:
        return set()
    stmt = select(Follow.target_id).where(
        Follow.user_id == user_id, Follow.target_type == target_type, Follow.target_id.in_(sorted(set(ids)))
    )
    return set(await session.scalars(stmt))


async def followed_targets(session: AsyncSession, user_id: int) -> list[tuple[str, int]]:
    """Everything the user follows, newest first."""
    stmt = (
        select(Follow.target_type, Follow.target_id)
        .where(Follow.user_id == user_id)
        .order_by(Follow.id.desc())
    )
    return [(r.target_type, r.target_id) for r in await session.execute(stmt)]


async def list_follows(
    session: AsyncSession, user_id: int, *, target_type: str | None, before_id: int | None, limit: int
) -> list[Follow]:
    """One page of the user's follows, newest first (the (user_id, id) index)."""
    stmt = select(Follow).where(Follow.user_id == user_id).order_by(Follow.id.desc()).limit(limit)
    if target_type is not None:
        stmt = stmt.where(Follow.target_type == target_type)
    if before_id is not None:
        stmt = stmt.where(Follow.id < before_id)
    return list(await session.scalars(stmt))


async def count_rows(session: AsyncSession, target_type: str, target_id: int) -> int:
    """The follows of one target, counted (tests and checks compare it with the kept count)."""
    stmt = select(func.count()).where(Follow.target_type == target_type, Follow.target_id == target_id)
    return int(await session.scalar(stmt) or 0)
