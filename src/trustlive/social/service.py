"""Follow use cases: a user follows and unfollows creators (users with the creator role) and
shops (active ones); each target's follower count; a user's followed list. The follow feed and
the pages ask here who follows what (``followed_ids``, ``is_following``, ``follower_counts``).

The rules are checked here, the races are decided by the database: following twice is a unique
constraint (two follows at once make one row and one 409), and the follower count moves by one
atomic increment or decrement in the same transaction as the follow row, so it always equals the
number of rows, however many follow and unfollow at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from trustlive import events
from trustlive.accounts import service as accounts
from trustlive.accounts.service import Principal
from trustlive.catalog import service as catalog
from trustlive.db import utcnow
from trustlive.errors import Conflict, NotFound, ValidationFailed
from trustlive.social import repository as repo
from trustlive.social.models import TARGET_TYPES, Follow
from trustlive.social.schemas import MAX_ID, FollowOut, FollowPage, FollowStateOut
from trustlive.web.pagination import MAX_LIMIT, before_id, trim_page

BULK_CHUNK = 1000  # rows per INSERT when following in bulk (SQLite binds at most 32766 values)

_NOT_FOUND = {"creator": "creator_not_found", "shop": "shop_not_found"}


@dataclass(frozen=True)
class Target:
    """A creator or shop as the follow pages and lists show it."""

    type: str
    id: int
    name: str
    url: str
    logo_url: str | None
    available: bool  # a creator holding the role, an active shop: the only ones you can follow


# --- checks -----------------------------------------------------------------------------------


def check_type(target_type: str) -> str:
    """``creator`` or ``shop``; anything else is a 422 ``bad_target_type``."""
    if target_type not in TARGET_TYPES:
        raise ValidationFailed("target_type: creator or shop", field="target_type", code="bad_target_type")
    return target_type


def _not_found(target_type: str, target_id: int) -> NotFound:
    return NotFound(f"{target_type} {target_id} not found", code=_NOT_FOUND[target_type])


async def _targets(session: AsyncSession, target_type: str, ids: Sequence[int]) -> dict[int, Target]:
    """The targets that exist, by id, each marked available or not (a shop that is not active,
    a user without the creator role or whose account is closed is unavailable)."""
    wanted = sorted({i for i in ids if 1 <= i <= MAX_ID})
    if not wanted:
        return {}
    if target_type == "shop":
        return {
            s.id: Target("shop", s.id, s.name, f"/shops/{s.slug}", catalog.shop_out(s).logo_url, s.status == "active")
            for s in await catalog.shops_by_ids(session, wanted)
        }  # fmt: skip
    users = await accounts.users_by_ids(session, wanted)
    roles = await accounts.roles_of_many(session, list(users))
    return {
        u.id: Target("creator", u.id, u.display_name, f"/creators/{u.id}", None,
                     u.is_active and "creator" in roles.get(u.id, set()))
        for u in users.values()
    }  # fmt: skip


async def target(session: AsyncSession, target_type: str, target_id: int) -> Target:
    """A creator or shop one can follow; 404 ``creator_not_found`` / ``shop_not_found`` for an
    unknown or unavailable one, 422 ``bad_target_type`` for another kind of thing."""
    check_type(target_type)
    found = (await _targets(session, target_type, [target_id])).get(target_id)
    if found is None or not found.available:
        raise _not_found(target_type, target_id)
    return found


async def _is_self(session: AsyncSession, actor: Principal, t: Target) -> bool:
    """The actor's own creator account, or a shop they own or work for."""
    if t.type == "creator":
        return actor.id == t.id
    return await catalog.is_shop_member(session, actor, t.id)


def _payload(actor: Principal, target_type: str, target_id: int) -> dict[str, object]:
    return {"user_id": actor.id, "target_type": target_type, "target_id": target_id}


# --- following and unfollowing -----------------------------------------------------------------


async def follow(session: AsyncSession, actor: Principal, target_type: str, target_id: int) -> FollowStateOut:
    """``actor`` follows the creator or shop. 422 ``bad_target_type``; 404 ``creator_not_found`` /
    ``shop_not_found``; 409 ``cannot_follow_self`` (your own creator account, a shop you own or
    staff) and ``already_following``. On success the count is one higher and ``social.followed``
    is recorded; on any error nothing changed."""
    t = await target(session, target_type, target_id)
    if await _is_self(session, actor, t):
        raise Conflict(
            "you cannot follow yourself or a shop you work for", field="target_id", code="cannot_follow_self"
        )
    if await repo.insert_follow(session, actor.id, t.type, t.id) is None:
        raise Conflict(f"you already follow this {t.type}", code="already_following")
    followers = await repo.add_followers(session, t.type, t.id, +1)
    events.record(session, "social.followed", _payload(actor, t.type, t.id))
    return FollowStateOut(t.type, t.id, followers, following=True)


async def unfollow(
    session: AsyncSession, actor: Principal, target_type: str, target_id: int
) -> FollowStateOut:
    """``actor`` stops following. Works for a target that has since become unavailable (a closed
    shop) too. 422 ``bad_target_type``; 404 ``creator_not_found`` / ``shop_not_found`` for a
    target that does not exist, ``not_following`` when the actor does not follow it."""
    check_type(target_type)
    if 1 <= target_id <= MAX_ID and await repo.delete_follow(session, actor.id, target_type, target_id):
        followers = await repo.add_followers(session, target_type, target_id, -1)
        events.record(session, "social.unfollowed", _payload(actor, target_type, target_id))
        return FollowStateOut(target_type, target_id, followers, following=False)
    if target_id not in await _targets(session, target_type, [target_id]):
        raise _not_found(target_type, target_id)
    raise NotFound(f"you do not follow this {target_type}", code="not_following")


async def follow_many(session: AsyncSession, follows: Sequence[tuple[int, str, int]]) -> int:
    """Bulk follows for the simulator and the demo: ``(user_id, target_type, target_id)``, in
    order. Follows of unavailable targets, of oneself (own creator account, own or staffed shop)
    and those already there are skipped; each one made moves its count and records
    ``social.followed``, as ``follow`` does. Returns how many were made."""
    types = {check_type(kind) for _, kind, _ in follows}
    available = {
        (kind, i)
        for kind in types
        for i, t in (await _targets(session, kind, [tid for _, k, tid in follows if k == kind])).items()
        if t.available
    }
    members: dict[int, set[int]] = {}
    for user_id in {u for u, kind, _ in follows if kind == "shop"}:
        members[user_id] = {s.id for s in await catalog.shops_of_user(session, user_id)}
    now = utcnow()
    seen: set[tuple[int, str, int]] = set()
    rows: list[dict[str, object]] = []
    for user_id, kind, tid in follows:
        own = (kind == "creator" and user_id == tid) or (kind == "shop" and tid in members.get(user_id, ()))
        if (kind, tid) in available and not own and (user_id, kind, tid) not in seen:
            seen.add((user_id, kind, tid))
            rows.append({"user_id": user_id, "target_type": kind, "target_id": tid, "created_at": now})
    made: list[tuple[str, int, int]] = []
    for start in range(0, len(rows), BULK_CHUNK):
        made += await repo.insert_follows(session, rows[start : start + BULK_CHUNK])
    per_target: dict[tuple[str, int], int] = {}
    for kind, tid, user_id in made:
        per_target[(kind, tid)] = per_target.get((kind, tid), 0) + 1
        events.record(session, "social.followed", {"user_id": user_id, "target_type": kind, "target_id": tid})
    for (kind, tid), n in sorted(per_target.items()):  # one order for every writer: no deadlock
        await repo.add_followers(session, kind, tid, n)
    return len(made)


# --- reading ------------------------------------------------------------------------------------


async def follow_state(
    session: AsyncSession, viewer: Principal | None, target_type: str, target_id: int
) -> FollowStateOut:
    """The follow button's facts: the target's count, whether the viewer follows it (None when
    signed out) and whether it is the viewer's own. 404/422 as ``follow``."""
    return (await target_and_state(session, viewer, target_type, target_id))[1]


async def target_and_state(
    session: AsyncSession, viewer: Principal | None, target_type: str, target_id: int
) -> tuple[Target, FollowStateOut]:
    """For the follow button: the target (name, page) and ``follow_state``'s facts."""
    t = await target(session, target_type, target_id)
    followers = (await follower_counts(session, t.type, [t.id]))[t.id]
    if viewer is None:
        return t, FollowStateOut(t.type, t.id, followers)
    following = bool(await repo.following_among(session, viewer.id, t.type, [t.id]))
    return t, FollowStateOut(t.type, t.id, followers, following, await _is_self(session, viewer, t))


async def follower_counts(session: AsyncSession, target_type: str, ids: Sequence[int]) -> dict[int, int]:
    """Follower count of every id asked for (0 for a target nobody follows, or no such target):
    one indexed read of the kept counts, never a count over the follows."""
    check_type(target_type)
    wanted = [i for i in ids if 1 <= i <= MAX_ID]
    counts = await repo.follower_counts(session, target_type, wanted)
    return {i: counts.get(i, 0) for i in ids}


async def is_following(session: AsyncSession, user_id: int, target_type: str, ids: Sequence[int]) -> set[int]:
    """Which of ``ids`` (creators or shops) the user follows."""
    check_type(target_type)
    return await repo.following_among(session, user_id, target_type, [i for i in ids if 1 <= i <= MAX_ID])


async def followed_ids(session: AsyncSession, user_id: int) -> dict[str, list[int]]:
    """Everything the user follows, newest first: ``{"creator": [...], "shop": [...]}`` (both
    keys always there). Unavailable targets are included; callers showing them filter."""
    out: dict[str, list[int]] = {kind: [] for kind in TARGET_TYPES}
    for kind, tid in await repo.followed_targets(session, user_id):
        out[kind].append(tid)
    return out


def _limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed(f"limit: 1 to {MAX_LIMIT}", field="limit", code="bad_limit")
    return limit


async def follows_page(
    session: AsyncSession,
    actor: Principal,
    *,
    target_type: str | None = None,
    cursor: str | None = None,
    limit: int = 20,
) -> FollowPage:
    """One page of what ``actor`` follows, newest first, creators and shops together or one
    ``target_type``; ``limit`` 1-100 (else 422 ``bad_limit``), ``cursor`` from the previous
    page (a forged one: 422 ``bad_cursor``)."""
    if target_type is not None:
        check_type(target_type)
    limit, before = _limit(limit), before_id(cursor)
    rows, next_cursor = trim_page(
        await repo.list_follows(
            session, actor.id, target_type=target_type, before_id=before, limit=limit + 1
        ),
        limit,
    )
    return FollowPage(await _outs(session, rows), next_cursor)


async def _outs(session: AsyncSession, rows: Sequence[Follow]) -> list[FollowOut]:
    found: dict[tuple[str, int], Target] = {}
    counts: dict[tuple[str, int], int] = {}
    for kind in TARGET_TYPES:
        ids = [r.target_id for r in rows if r.target_type == kind]
        if ids:
            found |= {(kind, i): t for i, t in (await _targets(session, kind, ids)).items()}
            counts |= {(kind, i): n for i, n in (await follower_counts(session, kind, ids)).items()}
    out = []
    for r in rows:
        key = (r.target_type, r.target_id)
        t = found.get(key)
        out.append(FollowOut(
            id=r.id, target_type=r.target_type, target_id=r.target_id,
            name=t.name if t else "", url=t.url if t else "", logo_url=t.logo_url if t else None,
            followers=counts.get(key, 0), available=bool(t and t.available), followed_at=r.created_at,
        ))  # fmt: skip
    return out


async def kept_and_counted(session: AsyncSession, target_type: str, target_id: int) -> tuple[int, int]:
    """(the kept count, the follows counted): equal, always. For tests and checks."""
    check_type(target_type)
    kept = (await repo.follower_counts(session, target_type, [target_id])).get(target_id, 0)
    return kept, await repo.count_rows(session, target_type, target_id)
