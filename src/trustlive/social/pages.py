"""HTML routes of the social domain: the follow button (a fragment the creator and shop pages load
with htmx, and a small page of its own for browsers without JavaScript), its form, and the
``/following`` page. Thin: parse the form, call social.service, render.

The creator and shop pages include ``social/_follow_button.html``, which asks
``/follow/{type}/{id}`` for the button in place: those pages' handlers need not know about
follows. Without JavaScript the same address is a page with the button; its form posts here and
comes back to the page it came from. A refused follow (409, 422) comes back with the error: the
fragment for htmx, the follow page otherwise.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.accounts.service import Principal
from trustlive.errors import DomainError, ValidationFailed
from trustlive.social import service
from trustlive.web.forms import fixable, readable, safe_next, text
from trustlive.web.i18n import N_
from trustlive.web.policy import public, signed_in

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
Cursor = Annotated[str | None, Parameter(max_length=200)]
Short = Annotated[str, Parameter(max_length=200)]
Kind = Annotated[str, Parameter(max_length=20)]

PAGE_SIZE = 20
ACTIONS = ("follow", "unfollow")
# The tabs of /following: what a caller sends -> the service's target type (None: both).
TABS = (("", N_("All")), ("creator", N_("Creators")), ("shop", N_("Shops")))

# What the pages say for the service's refusals (the JSON API keeps the service's English).
ERROR_TEXT = {
    "already_following": N_("You already follow this."),
    "not_following": N_("You do not follow this."),
    "cannot_follow_self": N_("You cannot follow yourself or a shop you work for."),
    "creator_not_found": N_("We could not find that creator."),
    "bad_target_type": N_("You can follow creators and shops only."),
    "bad_action": N_("Choose to follow or to unfollow."),
}


def _readable(err: DomainError) -> DomainError:
    return readable(err, ERROR_TEXT)


def _is_htmx(request: Request[Any, Any, Any]) -> bool:
    return request.headers.get("hx-request") == "true"


# --- the follow button --------------------------------------------------------------------------


async def _button(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    viewer: Principal | None,
    target_type: str,
    target_id: int,
    back: str,
    *,
    error: DomainError | None = None,
    status_code: int = 200,
) -> Template:
    """The button with the target's count, as a fragment (htmx) or as the follow page."""
    try:
        target, state = await service.target_and_state(db, viewer, target_type, target_id)
    except DomainError as err:
        raise _readable(err) from None
    context = {
        "target": target,
        "follow": state,
        "next": safe_next(back, target.url),
        "error": _readable(error) if error else None,
    }
    name = "social/_follow.html" if _is_htmx(request) else "social/follow.html"
    return Template(name, context=context, status_code=status_code)


@get("/follow/{target_type:str}/{target_id:int}", **public())
async def follow_button(
    target_type: str, target_id: int, request: Request[Any, Any, Any], db: AsyncSession,
    viewer: Principal | None, next: Short = "",
) -> Template:  # fmt: skip
    """The follow button of a creator or shop with its follower count; signed out, a "sign in to
    follow" link. ``next``: the page it sits on (where the form comes back to)."""
    return await _button(request, db, viewer, target_type, target_id, next)


@post("/follow/{target_type:str}/{target_id:int}", **signed_in())
async def follow_form(
    target_type: str, target_id: int, data: Form, request: Request[Any, Any, Any], db: AsyncSession,
    me: Principal,
) -> Template | Redirect:  # fmt: skip
    """Follow (``action=follow``) or unfollow (``action=unfollow``); back to ``next`` (the creator
    or shop page, or /following), or the button again for htmx."""
    action, back = text(data, "action"), text(data, "next")
    try:
        if action not in ACTIONS:
            raise ValidationFailed("action: follow or unfollow", field="action", code="bad_action")
        if action == "follow":
            await service.follow(db, me, target_type, target_id)
        else:
            await service.unfollow(db, me, target_type, target_id)
    except DomainError as err:
        await db.rollback()
        if err.code in ("bad_target_type", "creator_not_found", "shop_not_found"):
            raise _readable(err) from None  # nothing to show a button for
        if err.code != "not_following":  # that one the button answers: here is how to follow
            fixable(err)
        return await _button(
            request, db, me, target_type, target_id, back, error=err, status_code=err.status_code
        )
    if _is_htmx(request):
        return await _button(request, db, me, target_type, target_id, back)
    return Redirect(safe_next(back, "/following"), status_code=303)


# --- what I follow ------------------------------------------------------------------------------


@get("/following", **signed_in())
async def following_page(db: AsyncSession, me: Principal, type: Kind = "", cursor: Cursor = None) -> Template:
    """The creators and shops the user follows, newest first, with a tab per kind (``type``)."""
    try:
        page = await service.follows_page(db, me, target_type=type or None, cursor=cursor, limit=PAGE_SIZE)
    except DomainError as err:
        raise _readable(err) from None
    context = {
        "items": page.items,
        "next_cursor": page.next_cursor,
        "tab": type,
        "tabs": TABS,
        "here": "/following" + (f"?type={type}" if type else ""),
    }
    return Template("social/following.html", context=context)


routes = [follow_button, follow_form, following_page]
