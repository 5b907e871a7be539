"""JSON routes of the feed domain: thin wrappers over feed.service.

Both feeds page with opaque cursors (``limit`` 1-50, default 20). Every page has a ``serve_id``:
impressions, views and clicks are reported against it (``POST /feed/events``), and only the
positions it served to the caller are accepted.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get, post
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.accounts.service import Principal
from trustlive.config import Settings
from trustlive.feed import service
from trustlive.feed.schemas import EventsIn, EventsOut, ExposureOut, FeedPageOut, GrantIn, GrantOut, GrantPage
from trustlive.web.pagination import before_id, trim_page
from trustlive.web.policy import allow, public, signed_in

Limit = Annotated[int, Parameter(ge=1, le=service.MAX_LIMIT)]
Cursor = Annotated[str | None, Parameter(max_length=200)]
Short = Annotated[str, Parameter(max_length=20)]
Days = Annotated[int, Parameter(ge=1, le=service.MAX_DASHBOARD_DAYS)]
ListLimit = Annotated[int, Parameter(ge=1, le=100)]
TAGS = ["feed"]


def address(request: Request[Any, Any, Any]) -> str | None:
    return request.client.host if request.client else None


@get("/feed/following", tags=TAGS, **signed_in())
async def following(
    db: AsyncSession, me: Principal, limit: Limit = service.DEFAULT_LIMIT, cursor: Cursor = None
) -> FeedPageOut:
    """The follow feed: live rooms of followed creators on air first, then their videos and the
    followed shops' products, newest first. 422 `bad_cursor` for a cursor this feed did not issue."""
    return await service.follow_feed(db, me, limit=limit, cursor=cursor)


@get("/feed/discovery", tags=TAGS, **public())
async def discovery(
    db: AsyncSession, viewer: Principal | None, settings: Settings, limit: Limit = service.DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> FeedPageOut:  # fmt: skip
    """The discovery feed, re-ranked so exposure spreads across creators (docs/feed.md). Signed
    out: fresh content, new creators and live rooms. The cursor continues the scroll without
    repeating anything it served; 422 `bad_cursor` for another user's, the other feed's or a
    day-old cursor."""
    return await service.discovery_feed(db, viewer, service.config_for(settings), limit=limit, cursor=cursor)


@post("/feed/events", status_code=200, tags=TAGS, **public())
async def report(
    data: EventsIn, db: AsyncSession, viewer: Principal | None, request: Request[Any, Any, Any]
) -> EventsOut:
    """Impressions, views and clicks of served positions, in batches of 1-100 (`{"events":
    [{"serve", "position", "kind"}]}`). 422 `not_served` (nothing written) when any names a
    position not served to you in that page; a report already recorded changes nothing; 429
    past 240 requests a minute."""
    return await service.record_events(db, viewer, data, caller=service.caller_key(viewer, address(request)))


@get("/ops/feed/exposure", tags=TAGS, **allow("ops"))
async def exposure(
    db: AsyncSession, me: Principal, settings: Settings, days: Days = 7, feed: Short = "all",
    provider_type: Short = "all",
) -> ExposureOut:  # fmt: skip
    """Exposure spread per day over `days` (1-90, default 7): Gini, bottom-half share, new
    creators' share and zero share over every provider with something published, and the
    window's Lorenz curve. `feed` all/discovery/follow, `provider_type` all/creator/shop."""
    return await service.exposure_dashboard(
        db, me, service.config_for(settings), days=days, feed=feed, provider_type=provider_type
    )


@get("/ops/feed/grants", tags=TAGS, **allow("ops"))
async def grants(
    db: AsyncSession, me: Principal, status: Short = "", provider_type: Short = "",
    provider_id: Annotated[int | None, Parameter(ge=1, le=2**62)] = None, limit: ListLimit = 20,
    cursor: Cursor = None,
) -> GrantPage:  # fmt: skip
    """Traffic-reward grants, newest first, with their use: `status` running, scheduled, spent,
    ended or revoked; `provider_type` with `provider_id` for one provider."""
    items = await service.list_grants(
        db, me, status=status, provider_type=provider_type, provider_id=provider_id,
        before_id=before_id(cursor), limit=limit + 1,
    )  # fmt: skip
    return GrantPage(*trim_page(items, limit))


@post("/ops/feed/grants", status_code=201, tags=TAGS, **allow("ops"))
async def grant(data: GrantIn, db: AsyncSession, me: Principal) -> GrantOut:
    """Grant a creator or a shop a budget of discovery impressions (川流) until `ends_at`, with a
    reason. 404 `provider_not_found`; 422 `bad_period`."""
    return await service.create_grant(db, me, data)


@get("/ops/feed/grants/{grant_id:int}", tags=TAGS, **allow("ops"))
async def grant_detail(grant_id: int, db: AsyncSession, me: Principal) -> GrantOut:
    return await service.get_grant(db, me, grant_id)


@post("/ops/feed/grants/{grant_id:int}/revoke", status_code=200, tags=TAGS, **allow("ops"))
async def revoke(grant_id: int, db: AsyncSession, me: Principal) -> GrantOut:
    """Stop a grant now; 409 `grant_over` when it was revoked already or has ended."""
    return await service.revoke_grant(db, me, grant_id)


routes = [following, discovery, report, exposure, grants, grant, grant_detail, revoke]
