"""All account queries."""

from __future__ import annotations

import datetime as dt
import functools

from sqlalchemy import bindparam, case, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.accounts.models import AuthSession, LoginThrottle, User, UserRole
from trustlive.db import UTCDateTime, in_param


async def get_user(session: AsyncSession, user_id: int) -> User | None:
    return await session.get(User, user_id)


async def get_user_by_username(session: AsyncSession, username: str) -> User | None:
    return await session.scalar(select(User).where(User.username == username))


async def username_taken(session: AsyncSession, username: str) -> bool:
    return (await session.scalar(select(func.count()).where(User.username == username))) > 0


async def roles_of(session: AsyncSession, user_id: int) -> set[str]:
    return set(await session.scalars(select(UserRole.role).where(UserRole.user_id == user_id)))


async def roles_of_many(session: AsyncSession, user_ids: list[int]) -> dict[int, set[str]]:
    result: dict[int, set[str]] = {uid: set() for uid in user_ids}
    if not user_ids:
        return result
    rows = await session.execute(
        select(UserRole.user_id, UserRole.role).where(UserRole.user_id.in_(user_ids))
    )
    for uid, role in rows:
        result[uid].add(role)
    return result


async def add_role(session: AsyncSession, user_id: int, role: str, granted_by_id: int | None) -> bool:
    """Idempotent; returns True when the role was new."""
    exists = await session.scalar(
        select(func.count()).where(UserRole.user_id == user_id, UserRole.role == role)
    )
    if exists:
        return False
    session.add(UserRole(user_id=user_id, role=role, granted_by_id=granted_by_id))
    await session.flush()
    return True


async def remove_role(session: AsyncSession, user_id: int, role: str) -> bool:
    result = await session.execute(delete(UserRole).where(UserRole.user_id == user_id, UserRole.role == role))
    return result.rowcount > 0


async def count_role(session: AsyncSession, role: str) -> int:
    return await session.scalar(select(func.count()).where(UserRole.role == role)) or 0


async def list_users(
    session: AsyncSession, *, query: str | None, role: str | None, after_id: int | None, limit: int
) -> list[User]:
    stmt = select(User).order_by(User.id).limit(limit)
    if after_id is not None:
        stmt = stmt.where(User.id > after_id)
    if query:
        like = f"%{query}%"
        stmt = stmt.where(or_(User.username.ilike(like), User.display_name.ilike(like)))
    if role:
        stmt = stmt.where(User.id.in_(select(UserRole.user_id).where(UserRole.role == role)))
    return list(await session.scalars(stmt))


async def principal_rows(
    session: AsyncSession, token_hashes: list[str], now: dt.datetime
) -> dict[str, tuple[int, str, str, str, str]]:
    """The callers behind many tokens in ONE query: token hash → (user id, username, display
    name, session kind, comma-joined roles). This runs for every authenticated request (batched
    across concurrent ones), so it reads plain columns and the statement is built once per dialect."""
    stmt = _principal_statement(session.bind.dialect.name)
    conn = await session.connection()  # Core: plain rows, no ORM execution machinery
    rows = await conn.execute(stmt, {"token_hashes": token_hashes, "now": now})
    return {row[0]: tuple(row[1:]) for row in rows}  # type: ignore[misc]


@functools.cache
def _principal_statement(dialect: str):  # type: ignore[no-untyped-def]
    concat = func.string_agg if dialect == "postgresql" else func.group_concat
    roles = (
        select(func.coalesce(concat(UserRole.role, ","), ""))
        .where(UserRole.user_id == User.id)
        .scalar_subquery()
    )
    return (
        select(AuthSession.token_hash, User.id, User.username, User.display_name, AuthSession.kind, roles)
        .join(User, User.id == AuthSession.user_id)
        .where(
            in_param(AuthSession.token_hash, "token_hashes", dialect),
            AuthSession.revoked_at.is_(None),
            AuthSession.expires_at > bindparam("now", type_=UTCDateTime()),
            User.is_active.is_(True),
        )
    )


async def revoke_session(session: AsyncSession, token_hash: str, now: dt.datetime) -> bool:
    result = await session.execute(
        update(AuthSession)
        .where(AuthSession.token_hash == token_hash, AuthSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return result.rowcount > 0


async def revoke_all_sessions(session: AsyncSession, user_id: int, now: dt.datetime) -> None:
    await session.execute(
        update(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def throttle_failures(session: AsyncSession, keys: list[str], since: dt.datetime) -> int:
    """Highest failure count among ``keys`` whose window started after ``since``."""
    value = await session.scalar(
        select(func.max(LoginThrottle.failures)).where(
            LoginThrottle.key.in_(keys), LoginThrottle.window_started_at > since
        )
    )
    return value or 0


async def throttle_window_start(
    session: AsyncSession, keys: list[str], since: dt.datetime
) -> dt.datetime | None:
    return await session.scalar(
        select(func.min(LoginThrottle.window_started_at)).where(
            LoginThrottle.key.in_(keys), LoginThrottle.window_started_at > since
        )
    )


async def throttle_record_failure(
    session: AsyncSession, key: str, now: dt.datetime, since: dt.datetime
) -> None:
    """Atomic upsert: start a new window when the old one has expired, else count one more."""
    insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(LoginThrottle).values(key=key, failures=1, window_started_at=now)
    expired = LoginThrottle.window_started_at <= since
    stmt = stmt.on_conflict_do_update(
        index_elements=[LoginThrottle.key],
        set_={
            "failures": case((expired, 1), else_=LoginThrottle.failures + 1),
            "window_started_at": case((expired, now), else_=LoginThrottle.window_started_at),
        },
    )
    await session.execute(stmt)


async def throttle_clear(session: AsyncSession, key: str) -> None:
    await session.execute(delete(LoginThrottle).where(LoginThrottle.key == key))


async def users_by_ids(session: AsyncSession, user_ids: list[int]) -> dict[int, User]:
    if not user_ids:
        return {}
    return {u.id: u for u in await session.scalars(select(User).where(User.id.in_(set(user_ids))))}


async def display_names(session: AsyncSession, user_ids: list[int]) -> dict[int, str]:
    """Id -> display name of many users in one statement prepared once whatever their number
    (feed cards name hundreds of creators a minute)."""
    if not user_ids:
        return {}
    conn = await session.connection()
    rows = await conn.execute(
        _display_names_statement(session.bind.dialect.name), {"ids": sorted(set(user_ids))}
    )
    return {user_id: name for user_id, name in rows}


@functools.cache
def _display_names_statement(dialect: str):  # type: ignore[no-untyped-def]
    return select(User.id, User.display_name).where(in_param(User.id, "ids", dialect))
