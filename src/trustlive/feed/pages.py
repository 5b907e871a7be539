"""HTML routes of the feed domain: the discovery feed (``/feed``, also ``/discover``) and the follow
feed (``/feed/following``), each in the double-column grid or the single-column full-screen swipe
(the choice is remembered in a cookie); the click-through that logs a click and leads to the item;
ops' exposure dashboard and traffic-reward grants. Thin: parse, call feed.service, render.

The next page of a feed comes as a fragment (``partial=1``) that ``static/feed.js`` appends; without
JavaScript the "More" link loads it as a page.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from litestar import Request, get, post
from litestar.datastructures import Cookie
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.accounts.service import Principal
from trustlive.config import Settings
from trustlive.errors import DomainError
from trustlive.feed import service
from trustlive.feed.api import address
from trustlive.feed.schemas import FeedPageOut, GrantIn
from trustlive.web.forms import bad_fields, fixable, integer, invalid, parse, readable, text
from trustlive.web.i18n import N_, gettext
from trustlive.web.pagination import before_id, trim_page
from trustlive.web.policy import allow, public, signed_in
from trustlive.web.validation import MAX_ID

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
Cursor = Annotated[str | None, Parameter(max_length=200)]
Short = Annotated[str, Parameter(max_length=20)]
ServeId = Annotated[str, Parameter(max_length=32)]

LAYOUT_COOKIE = "tl_feed_layout"
SHANGHAI = ZoneInfo("Asia/Shanghai")
GRANTS_PAGE = 20

LAYOUT_LABELS = {"grid": N_("Grid"), "single": N_("Full screen")}
GRANT_STATUS_LABELS = {
    "running": N_("Running"),
    "scheduled": N_("Scheduled"),
    "spent": N_("Budget used up"),
    "ended": N_("Ended"),
    "revoked": N_("Revoked"),
}
GRANT_TABS = (("", N_("All")), *GRANT_STATUS_LABELS.items())
FEED_LABELS = {"all": N_("Both feeds"), "discovery": N_("Discovery feed"), "follow": N_("Follow feed")}
PROVIDER_LABELS = {"all": N_("Creators and shops"), "creator": N_("Creators"), "shop": N_("Shops")}

# What the pages say for the service's refusals (the JSON API keeps the service's English).
ERROR_TEXT = {
    "not_served": N_("That item was not shown to you in this feed. Open the feed again."),
    "too_many_requests": N_("Too many clicks in a short time. Wait a minute and try again."),
    "ops_only": N_("Only platform ops manage traffic rewards and the exposure dashboard."),
    "provider_not_found": N_("No creator or open shop has that number."),
    "bad_period": N_("The reward must end after it starts and in the future, within a year."),
    "grant_over": N_("This grant is over already."),
    "grant_not_found": N_("We could not find that grant."),
    "bad_status": N_("That filter does not exist."),
    "bad_days": N_("Choose from 1 to 90 days."),
}


def _readable(err: DomainError) -> DomainError:
    return readable(err, ERROR_TEXT)


# --- the feeds --------------------------------------------------------------------------------------


def _layout(request: Request[Any, Any, Any], asked: str) -> tuple[str, list[Cookie]]:
    """The layout to show: the one asked for (remembered for a year), else the remembered one,
    else the grid."""
    if asked in service.LAYOUTS:
        cookie = Cookie(key=LAYOUT_COOKIE, value=asked, max_age=365 * 86400, samesite="lax", httponly=True)
        return asked, [cookie]
    remembered = request.cookies.get(LAYOUT_COOKIE, "")
    return (remembered if remembered in service.LAYOUTS else "grid"), []


def _feed_page(
    feed: str, page: FeedPageOut, layout: str, partial: bool, cookies: list[Cookie], viewer: Principal | None
) -> Template:
    context = {
        "feed": feed,
        "page": page,
        "layout": layout,
        "layouts": LAYOUT_LABELS,
        "viewer": viewer,
        "base_path": "/feed" if feed == "discovery" else "/feed/following",
    }
    name = "feed/_items.html" if partial else "feed/feed.html"
    return Template(name, context=context, cookies=cookies)


@get(["/feed", "/discover"], **public())
async def discovery_page(
    request: Request[Any, Any, Any], db: AsyncSession, viewer: Principal | None, settings: Settings,
    cursor: Cursor = None, layout: Short = "", partial: bool = False,
) -> Template:  # fmt: skip
    """The discovery feed (发现): for everyone; personal when signed in."""
    shown, cookies = _layout(request, layout)
    try:
        page = await service.discovery_feed(db, viewer, service.config_for(settings), cursor=cursor)
    except DomainError as err:
        raise _readable(err) from None
    return _feed_page("discovery", page, shown, partial, cookies, viewer)


@get("/feed/following", **signed_in())
async def following_page(
    request: Request[Any, Any, Any], db: AsyncSession, me: Principal, cursor: Cursor = None, layout: Short = "",
    partial: bool = False,
) -> Template:  # fmt: skip
    """The follow feed (关注): live rooms of followed creators first, then their new videos and
    the followed shops' new products."""
    shown, cookies = _layout(request, layout)
    try:
        page = await service.follow_feed(db, me, cursor=cursor)
    except DomainError as err:
        raise _readable(err) from None
    return _feed_page("follow", page, shown, partial, cookies, me)


@get("/feed/go/{serve_id:str}/{position:int}", **public())
async def go(
    serve_id: ServeId,
    position: int,
    request: Request[Any, Any, Any],
    db: AsyncSession,
    viewer: Principal | None,
) -> Redirect:
    """A card's link: log the click once, then go to the item (a product with the feed as its
    traffic source)."""
    try:
        target = await service.click(
            db, viewer, serve_id, position, caller=service.caller_key(viewer, address(request))
        )
    except DomainError as err:
        raise _readable(err) from None
    return Redirect(target, status_code=303)


# --- ops: the exposure dashboard ------------------------------------------------------------------


@get("/ops/feed/exposure", **allow("ops"))
async def exposure_page(
    db: AsyncSession, me: Principal, settings: Settings, days: Annotated[int, Parameter(ge=1, le=90)] = 7,
    feed: Short = "all", provider_type: Short = "all",
) -> Template:  # fmt: skip
    """How evenly impressions spread across creators and shops, day by day."""
    try:
        out = await service.exposure_dashboard(
            db, me, service.config_for(settings), days=days, feed=feed, provider_type=provider_type
        )
    except DomainError as err:
        raise _readable(err) from None
    chart = {
        "labels": [d.day.strftime("%m-%d") for d in out.per_day],
        "gini": [d.gini for d in out.per_day],
        "bottom": [d.bottom_half_share for d in out.per_day],
        "new": [d.new_share for d in out.per_day],
        "lorenz": [[x, y] for x, y in zip(out.lorenz.population, out.lorenz.exposure, strict=True)],
        "names": {
            "gini": gettext("Gini"),
            "bottom": gettext("Bottom half's share"),
            "new": gettext("New creators' share"),
            "lorenz": gettext("Lorenz curve"),
            "equal": gettext("Equal spread"),
            "population": gettext("Share of providers, least exposed first"),
            "exposure": gettext("Share of impressions"),
        },
    }
    context = {
        "out": out,
        "chart": chart,
        "day_choices": (1, 7, 14, 30, 90),
        "feeds": FEED_LABELS,
        "providers": PROVIDER_LABELS,
    }
    return Template("feed/ops_exposure.html", context=context)


# --- ops: traffic-reward grants -----------------------------------------------------------------------


async def _grants_page(
    db: AsyncSession, me: Principal, status: str = "", cursor: str | None = None, **extra: Any
) -> Template:
    status_code = extra.pop("status_code", 200)
    try:
        items = await service.list_grants(
            db, me, status=status, before_id=before_id(cursor), limit=GRANTS_PAGE + 1
        )
    except DomainError as err:
        raise _readable(err) from None
    grants, next_cursor = trim_page(items, GRANTS_PAGE)
    context = {
        "items": grants,
        "next_cursor": next_cursor,
        "status": status,
        "tabs": GRANT_TABS,
        "status_labels": GRANT_STATUS_LABELS,
        "form": {},
        "error": None,
        "bad": set(),
        "created": None,
        "revoked": None,
        "max_budget": 10_000_000,
        **extra,
    }
    return Template("feed/ops_grants.html", context=context, status_code=status_code)


@get("/ops/feed/grants", **allow("ops"))
async def grants_page(
    db: AsyncSession, me: Principal, status: Short = "", cursor: Cursor = None, created: int | None = None,
    revoked: int | None = None,
) -> Template:  # fmt: skip
    """Traffic rewards (川流): the grants with their budgets and use, and the form for a new one."""
    return await _grants_page(db, me, status, cursor, created=created, revoked=revoked)


def _grant_data(form: dict[str, str]) -> GrantIn:
    """The form as the API's struct: the end is a local (Asia/Shanghai) date and time."""
    raw_end = form["ends_at"]
    try:
        ends = dt.datetime.fromisoformat(raw_end).replace(tzinfo=SHANGHAI) if raw_end else None
    except ValueError:
        ends = None
    if ends is None:
        raise invalid("ends_at", gettext("choose the date and time the reward ends"))
    fields = {
        "provider_type": form["provider_type"],
        "provider_id": integer(form, "provider_id", minimum=1, maximum=MAX_ID),
        "budget": integer(form, "budget", minimum=1, maximum=10_000_000),
        "reason": form["reason"],
        "ends_at": ends,
    }
    return parse(GrantIn, fields)


@post("/ops/feed/grants", **allow("ops"))
async def create_grant(data: Form, db: AsyncSession, me: Principal) -> Template | Redirect:
    form = {
        name: text(data, name) for name in ("provider_type", "provider_id", "budget", "reason", "ends_at")
    }
    try:
        made = await service.create_grant(db, me, _grant_data(form))
    except DomainError as err:
        await db.rollback()
        fixable(_readable(err))
        return await _grants_page(
            db, me, form=form, error=err, bad=bad_fields(err), status_code=err.status_code
        )
    return Redirect(f"/ops/feed/grants?created={made.id}#grant-{made.id}", status_code=303)


@post("/ops/feed/grants/{grant_id:int}/revoke", **allow("ops"))
async def revoke_grant(grant_id: int, db: AsyncSession, me: Principal) -> Template | Redirect:
    try:
        await service.revoke_grant(db, me, grant_id)
    except DomainError as err:
        await db.rollback()
        fixable(_readable(err))
        return await _grants_page(db, me, error=err, status_code=err.status_code)
    return Redirect(f"/ops/feed/grants?revoked={grant_id}#grant-{grant_id}", status_code=303)


routes = [discovery_page, following_page, go, exposure_page, grants_page, create_grant, revoke_grant]
