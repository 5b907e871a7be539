"""JSON routes of the social domain: thin wrappers over social.service."""

from __future__ import annotations

from typing import Annotated

from litestar import delete, get, post
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.accounts.service import Principal
from trustlive.social import service
from trustlive.social.schemas import FollowIn, FollowPage, FollowStateOut
from trustlive.web.pagination import DEFAULT_LIMIT, MAX_LIMIT
from trustlive.web.policy import public, signed_in

Limit = Annotated[int, Parameter(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str | None, Parameter(max_length=200)]
Kind = Annotated[str | None, Parameter(max_length=20)]


@post("/follows", status_code=201, tags=["social"], **signed_in())
async def follow(data: FollowIn, me: Principal, db: AsyncSession) -> FollowStateOut:
    """Follow a creator or a shop: `{"target_type": "creator" | "shop", "target_id": 7}`. 404
    `creator_not_found` / `shop_not_found`; 409 `cannot_follow_self` (your own creator account, a
    shop you own or staff) and `already_following`; 422 for another `target_type`."""
    return await service.follow(db, me, data.target_type, data.target_id)


@delete("/follows/{target_type:str}/{target_id:int}", status_code=200, tags=["social"], **signed_in())
async def unfollow(target_type: str, target_id: int, me: Principal, db: AsyncSession) -> FollowStateOut:
    """Stop following (`/follows/creator/7`, `/follows/shop/3`). 404 `not_following`, or
    `creator_not_found` / `shop_not_found` for no such target; 422 `bad_target_type`."""
    return await service.unfollow(db, me, target_type, target_id)


@get("/me/follows", tags=["social"], **signed_in())
async def my_follows(
    me: Principal, db: AsyncSession, type: Kind = None, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> FollowPage:
    """What you follow, newest first: creators and shops, or `type=creator` / `type=shop`; each
    with its name, page, follower count and whether it is still `available`."""
    return await service.follows_page(db, me, target_type=type or None, cursor=cursor, limit=limit)


@get("/creators/{creator_id:int}/followers", tags=["social"], **public())
async def creator_followers(creator_id: int, db: AsyncSession, viewer: Principal | None) -> FollowStateOut:
    """The creator's follower count; `following` (null when signed out) and `is_self` for the
    caller. 404 `creator_not_found` for a user who is not a creator."""
    return await service.follow_state(db, viewer, "creator", creator_id)


@get("/shops/{shop_id:int}/followers", tags=["social"], **public())
async def shop_followers(shop_id: int, db: AsyncSession, viewer: Principal | None) -> FollowStateOut:
    """The shop's follower count, as for creators. 404 `shop_not_found` for a closed or unknown shop."""
    return await service.follow_state(db, viewer, "shop", shop_id)


routes = [follow, unfollow, my_follows, creator_followers, shop_followers]
