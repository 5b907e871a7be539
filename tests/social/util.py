"""Shared pieces of the follow tests: a small world built through the services (two shops, a
creator, buyers, a staff member of the first shop) and the outcome read straight from the tables."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import select, update

from tests.orders.world import World, build, principal
from trustlive.accounts import service as accounts
from trustlive.accounts.service import Principal
from trustlive.catalog import service as catalog
from trustlive.catalog.models import Shop
from trustlive.db import transaction
from trustlive.errors import DomainError
from trustlive.events import OutboxEvent
from trustlive.social import service
from trustlive.social.models import Follow, FollowerCount


@dataclass
class Social:
    w: World
    staff: Principal  # works for shop 0
    creators: list[Principal]  # creator1 (the world's) and more

    @property
    def sessionmaker(self):  # type: ignore[no-untyped-def]
        return self.w.sessionmaker


async def world(url: str, *, buyers: int = 2, creators: int = 1) -> Social:
    w = await build(url, buyers=buyers)
    hashed = await accounts.hash_password("correct-horse-9")
    async with transaction(w.sessionmaker) as s:
        staff = principal(await accounts.create_user(s, username="staff1", password_hash=hashed))
        more = [
            principal(
                await accounts.create_user(
                    s, username=f"creator{i}", password_hash=hashed, roles=["creator"]
                ),
                "creator",
            )
            for i in range(2, creators + 1)
        ]
    async with transaction(w.sessionmaker) as s:
        await catalog.add_staff(s, w.merchants[0], w.shops[0], "staff1")
    return Social(w, staff, [w.creator, *more])


async def follow(sw: Social, who: Principal, kind: str, target_id: int):  # type: ignore[no-untyped-def]
    async with transaction(sw.sessionmaker) as s:
        return await service.follow(s, who, kind, target_id)


async def unfollow(sw: Social, who: Principal, kind: str, target_id: int):  # type: ignore[no-untyped-def]
    async with transaction(sw.sessionmaker) as s:
        return await service.unfollow(s, who, kind, target_id)


async def refused(coro, status: int, code: str | None = None) -> DomainError:  # type: ignore[no-untyped-def]
    with pytest.raises(DomainError) as info:
        await coro
    assert info.value.status_code == status, info.value
    if code is not None:
        assert info.value.code == code, info.value
    return info.value


async def follow_rows(sw: Social) -> list[tuple[int, str, int]]:
    async with transaction(sw.sessionmaker) as s:
        rows = await s.execute(
            select(Follow.user_id, Follow.target_type, Follow.target_id).order_by(Follow.id)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


async def counts(sw: Social) -> dict[tuple[str, int], int]:
    """The kept counts, straight from their table."""
    async with transaction(sw.sessionmaker) as s:
        rows = await s.execute(
            select(FollowerCount.target_type, FollowerCount.target_id, FollowerCount.followers)
        )
        return {(r.target_type, r.target_id): r.followers for r in rows}


async def events_of(sw: Social, topic: str) -> list[dict]:
    async with transaction(sw.sessionmaker) as s:
        rows = await s.scalars(select(OutboxEvent).where(OutboxEvent.topic == topic).order_by(OutboxEvent.id))
        return [dict(e.payload) for e in rows]


async def close_shop(sw: Social, shop_id: int) -> None:
    async with transaction(sw.sessionmaker) as s:
        await s.execute(update(Shop).where(Shop.id == shop_id).values(status="suspended"))
