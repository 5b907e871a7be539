"""HTML routes of the consignment domain: the consignor's "my consignments" (submit form, list,
accept / decline / withdraw) and the creator's console queue (appraise during a live session,
feature a listed item, fee waivers). Thin: parse the form into the API's structs, call
consignment.service, render; a form the user can fix comes back with the error."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.accounts.service import Principal
from trustlive.config import Settings
from trustlive.consignment import service
from trustlive.consignment.schemas import AppraisalIn, FeatureIn, ItemIn, WaiverIn
from trustlive.errors import DomainError, NotFound
from trustlive.reviews.api import read_photos
from trustlive.web.forms import bad_fields, fixable, integer, parse, readable, text, yuan
from trustlive.web.i18n import N_
from trustlive.web.pagination import before_id, trim_page
from trustlive.web.policy import allow, signed_in
from trustlive.web.validation import MAX_ID

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
Multipart = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)]
Cursor = Annotated[str | None, Parameter(max_length=200)]

PAGE_SIZE = 20
STATUSES = (N_("submitted"), N_("appraised"), N_("listed"), N_("settled"), N_("declined"), N_("withdrawn"))
ACTIONS = {"accept", "decline", "withdraw"}
ERROR_TEXT = {
    "not_an_appraiser": N_("That account is not a creator with a shop: only they take consignments."),
    "own_item": N_("You cannot consign an item to yourself."),
    "not_appraised": N_("This item is not waiting for your answer."),
    "already_sold": N_("This item has been bought: it can no longer be withdrawn."),
    "closed": N_("This item is closed."),
    "not_live": N_("Appraise during one of your live sessions: go live first."),
    "not_appraisable": N_("This item cannot be appraised now."),
    "in_the_past": N_("That period is over already."),
}


def _readable(err: DomainError) -> DomainError:
    return readable(err, ERROR_TEXT)


# --- the consignor ----------------------------------------------------------------------------


async def _mine_page(db: AsyncSession, me: Principal, cursor: str | None = None, **extra: Any) -> Template:
    items, next_cursor = trim_page(
        await service.my_items(db, me, before_id=before_id(cursor), limit=PAGE_SIZE), PAGE_SIZE
    )
    status = extra.pop("status_code", 200)
    context = {
        "items": items,
        "next_cursor": next_cursor,
        "categories": await service.categories(db),
        "form": {},
        "error": None,
        "bad": set(),
        "done": None,
        **extra,
    }
    return Template("consignment/mine.html", context=context, status_code=status)


@get("/consignments", **signed_in())
async def my_consignments(
    db: AsyncSession, me: Principal, cursor: Cursor = None, done: str | None = None
) -> Template:
    """The consignor's items: what became of each, the appraisals to answer, and the submit form."""
    return await _mine_page(db, me, cursor, done=done if done in (*ACTIONS, "submitted") else None)


@post("/consignments", **signed_in())
async def submit(data: Multipart, db: AsyncSession, me: Principal, settings: Settings) -> Template | Redirect:
    """Send an item to an appraiser creator (by username), with photos."""
    form = {k: text(data, k) for k in ("appraiser", "title", "category_id", "description", "asking")}
    try:
        who = await service.appraiser_by_username(db, form["appraiser"])
        fields: dict[str, Any] = {"appraiser_id": who.id, "title": form["title"],
                                  "category_id": integer(data, "category_id", minimum=1, maximum=MAX_ID),
                                  "description": form["description"]}  # fmt: skip
        if form["asking"]:
            fields["asking_fen"] = yuan(data, "asking")
        photos = await read_photos(data.get("photos"), settings.max_upload_bytes)
        await service.submit(db, me, parse(ItemIn, fields), photos, settings)
    except DomainError as err:
        await db.rollback()
        fixable(_readable(err))
        bad = {"photos" if f.startswith("photos") else f for f in bad_fields(err)}
        bad = {"appraiser" if f == "appraiser_id" else "asking" if f == "asking_fen" else f for f in bad}
        return await _mine_page(db, me, form=form, error=err, bad=bad, status_code=err.status_code)
    return Redirect("/consignments?done=submitted", status_code=303)


@post("/consignments/{item_id:int}/{action:str}", **signed_in())
async def decide(
    item_id: int, action: str, db: AsyncSession, me: Principal, settings: Settings
) -> Template | Redirect:
    """Accept or decline the appraisal, or withdraw the item."""
    if action not in ACTIONS:
        raise NotFound("no such action", code="not_found")
    try:
        if action == "accept":
            await service.accept(db, me, item_id, settings)
        elif action == "decline":
            await service.decline(db, me, item_id)
        else:
            await service.withdraw(db, me, item_id)
    except DomainError as err:
        await db.rollback()
        fixable(_readable(err))
        return await _mine_page(db, me, error=err, status_code=err.status_code)
    return Redirect(f"/consignments?done={action}#item-{item_id}", status_code=303)


# --- the creator's console --------------------------------------------------------------------


async def _console_page(
    db: AsyncSession, me: Principal, settings: Settings, cursor: str | None = None, **extra: Any
) -> Template:
    items, next_cursor = trim_page(
        await service.queue(db, me, before_id=before_id(cursor), limit=PAGE_SIZE), PAGE_SIZE
    )
    status = extra.pop("status_code", 200)
    context = {
        "items": items,
        "next_cursor": next_cursor,
        "terms": await service.terms(db, me.id, settings),
        "live_session_id": await service.live_session_id(db, me.id),
        "error": None,
        "error_item": None,
        "done": None,
        **extra,
    }
    return Template("consignment/console.html", context=context, status_code=status)


@get("/console/consignments", **allow("creator"))
async def console(
    db: AsyncSession, me: Principal, settings: Settings, cursor: Cursor = None, done: str | None = None
) -> Template:
    """Items sent to the creator: appraise them during a live session, feature the listed ones;
    the consignment fee and its waivers."""
    return await _console_page(
        db, me, settings, cursor, done=done if done in ("appraised", "featured", "waived") else None
    )


@post("/console/consignments/{item_id:int}/appraise", **allow("creator"))
async def appraise(
    item_id: int, data: Form, db: AsyncSession, me: Principal, settings: Settings
) -> Template | Redirect:
    try:
        fields = {"session_id": integer(data, "session_id", minimum=1, maximum=MAX_ID),
                  "valuation_fen": yuan(data, "valuation"), "grade": text(data, "grade"), "notes": text(data, "notes")}  # fmt: skip
        await service.appraise(db, me, item_id, parse(AppraisalIn, fields), settings)
    except DomainError as err:
        await db.rollback()
        fixable(_readable(err))
        return await _console_page(
            db, me, settings, error=err, error_item=item_id, status_code=err.status_code
        )
    return Redirect(f"/console/consignments?done=appraised#item-{item_id}", status_code=303)


@post("/console/consignments/{item_id:int}/feature", **allow("creator"))
async def feature(
    item_id: int, data: Form, db: AsyncSession, me: Principal, settings: Settings
) -> Template | Redirect:
    try:
        session_id = integer(data, "session_id", minimum=1, maximum=MAX_ID)
        await service.feature(db, me, item_id, FeatureIn(session_id))
    except DomainError as err:
        await db.rollback()
        fixable(_readable(err))
        return await _console_page(
            db, me, settings, error=err, error_item=item_id, status_code=err.status_code
        )
    return Redirect(f"/console/consignments?done=featured#item-{item_id}", status_code=303)


@post("/console/consignments/waivers", **allow("creator"))
async def add_waiver(data: Form, db: AsyncSession, me: Principal, settings: Settings) -> Template | Redirect:
    """A fee waiver from one local date and time to another (the form's times are Asia/Shanghai)."""
    try:
        waiver = parse(WaiverIn, {"starts_at": service.local_input(text(data, "starts_at")),
                                  "ends_at": service.local_input(text(data, "ends_at"))})  # fmt: skip
        await service.add_waiver(db, me, waiver, settings)
    except DomainError as err:
        await db.rollback()
        fixable(_readable(err))
        return await _console_page(db, me, settings, error=err, status_code=err.status_code)
    return Redirect("/console/consignments?done=waived", status_code=303)


routes = [my_consignments, submit, decide, console, appraise, feature, add_waiver]
