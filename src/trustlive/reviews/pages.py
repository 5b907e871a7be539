"""HTML routes of the reviews domain: a product's reviews, the buyer's review form (new and
edit), and the shop's reviews console with its reply forms. Thin: parse the form into the API's
structs, call reviews.service, render.

Forms re-render with the error and what the user typed when the user can fix it (422, 413, 415,
409); refusals and missing things get the error page. The order pages show the per-line form
(``reviews/_order_panel.html``); it posts here and comes back to the order when it succeeds.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.accounts.service import Principal
from trustlive.config import Settings
from trustlive.errors import DomainError, FieldError, ValidationFailed
from trustlive.reviews import service
from trustlive.reviews.api import read_photos
from trustlive.reviews.schemas import ReplyIn, ReviewIn, ReviewPatch
from trustlive.web.console import my_shops, pick_shop
from trustlive.web.forms import bad_fields, checked, fixable, integer, parse, readable, safe_next, text
from trustlive.web.i18n import N_, gettext
from trustlive.web.pagination import before_id, trim_page
from trustlive.web.policy import public, signed_in
from trustlive.web.validation import MAX_ID

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
Multipart = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)]
Cursor = Annotated[str | None, Parameter(max_length=200)]
Short = Annotated[str, Parameter(max_length=200)]

PAGE_SIZE = 20

RATINGS = service.RATINGS
# The chips' labels for the service's filters (the service owns the keys and checks them).
FILTER_LABELS = {
    "": N_("All"), "photos": N_("With photos"), "low": N_("Low ratings"), "unreplied": N_("Not replied")
}  # fmt: skip
PRODUCT_FILTERS = tuple((key, FILTER_LABELS[key]) for key in service.PRODUCT_FILTERS)
SHOP_FILTERS = tuple((key, FILTER_LABELS[key]) for key in service.SHOP_FILTERS)

# What the pages say for the service's refusals (the JSON API keeps the service's English).
ERROR_TEXT = {
    "already_reviewed": N_("You have already reviewed this item. You can edit your review instead."),
    "not_completed": N_("You can review this order once you have confirmed receipt."),
    "order_refunded": N_("This order was refunded in full, so it cannot be reviewed."),
    "line_refunded": N_("This item was returned and refunded, so it cannot be reviewed."),
    "edit_window_closed": N_("The time to edit this review is over."),
    "review_not_found": N_("We could not find that review."),
    "line_not_found": N_("We could not find that item in this order."),
    "too_many_photos": N_("Add at most 9 photos."),
    "nothing_to_change": N_("Change something first."),
    "not_your_shop": N_("Only the shop that sold this item can reply to its reviews."),
    "bad_filter": N_("That filter does not exist."),
}


def _readable(err: DomainError) -> DomainError:
    return readable(err, ERROR_TEXT)


def _fixable(err: DomainError) -> DomainError:
    """Errors the user can fix on the form come back to it; the rest go to the error page."""
    return fixable(_readable(err))


# --- a product's reviews ----------------------------------------------------------------------


@get("/p/{product_id:int}/reviews", **public())
async def product_reviews_page(
    product_id: int, db: AsyncSession, viewer: Principal | None, filter: Short = "", cursor: Cursor = None
) -> Template:
    """All of a product's reviews, newest first, with photos or low ratings only on request."""
    try:
        product, ratings, items = await service.product_review_page(
            db, viewer, product_id, filter=filter, before_id=before_id(cursor), limit=PAGE_SIZE + 1
        )
    except DomainError as err:
        raise _readable(err) from None
    reviews, next_cursor = trim_page(items, PAGE_SIZE)
    context = {
        "product": product,
        "ratings": ratings,
        "items": reviews,
        "next_cursor": next_cursor,
        "filter": filter,
        "filters": PRODUCT_FILTERS,
    }
    return Template("reviews/product_reviews.html", context=context)


# --- the buyer's review form ------------------------------------------------------------------


def _review_data(form: dict[str, str], data: dict[str, Any], *, editing: bool) -> ReviewIn | ReviewPatch:
    """The form as the API's struct (an edit leaves out the ratings not chosen). The struct's rules
    decide; when they refuse, every field they refuse is marked, in the page's words."""
    struct: type[ReviewIn | ReviewPatch] = ReviewPatch if editing else ReviewIn
    fields: dict[str, Any] = {name: form[name] for name, _ in RATINGS if form[name] or not editing}
    fields["text"] = form["text"]
    if editing:
        fields["clear_photos"] = checked(data, "clear_photos")
    try:
        return parse(struct, fields)
    except ValidationFailed as err:
        rules = {f.name: f.type for f in msgspec.structs.fields(struct)}
        problems = [FieldError(name, _field_text(name, form)) for name, value in fields.items()
                    if not _fits(value, rules[name])]  # fmt: skip
        if not problems:
            raise
        raise ValidationFailed(problems[0].message, fields=problems) from err


def _fits(value: Any, rule: Any) -> bool:
    try:
        msgspec.convert(value, rule, strict=False)
    except msgspec.ValidationError:
        return False
    return True


def _field_text(name: str, form: dict[str, str]) -> str:
    """What the review form says about a refused field, in the reader's language."""
    if name == "text":
        return gettext("Keep the review to %(n)s characters (it has %(len)s).") % {
            "n": service.MAX_TEXT, "len": len(form["text"])}  # fmt: skip
    return gettext("Rate %(what)s from 1 to 5 stars.") % {"what": gettext(dict(RATINGS)[name])}


def _reply_data(typed: str) -> ReplyIn:
    """The reply as the API's struct; its rule (1 to 500 characters) refuses in the page's words."""
    try:
        return parse(ReplyIn, {"text": typed})
    except ValidationFailed:
        if typed:
            message = gettext("Keep the reply to %(n)s characters.") % {"n": service.MAX_TEXT}
        else:
            message = gettext("Write your reply first.")
        raise ValidationFailed(message, field="text") from None


async def _form_page(db: AsyncSession, me: Principal, order_id: int, line_id: int, **extra: Any) -> Template:
    try:
        order, line, review = await service.review_form(db, me, order_id, line_id)
    except DomainError as err:
        raise _readable(err) from None
    status = extra.pop("status_code", 200)
    form = {name: str(getattr(review, name)) for name, _ in RATINGS} | {"text": review.text} if review else {}
    context = {
        "order": order,
        "line": line,
        "review": review,
        "ratings": RATINGS,
        "form": form,
        "error": None,
        "bad": set(),
        "max_photos": service.MAX_PHOTOS,
        "max_text": service.MAX_TEXT,
        **extra,
    }
    return Template("reviews/form.html", context=context, status_code=status)


@get("/orders/{order_id:int}/lines/{line_id:int}/review", **signed_in())
async def review_page(order_id: int, line_id: int, db: AsyncSession, me: Principal) -> Template:
    """The review form for one line of the buyer's completed order; their review to edit while
    the edit window is open."""
    return await _form_page(db, me, order_id, line_id)


@post("/orders/{order_id:int}/lines/{line_id:int}/review", **signed_in())
async def post_review(
    order_id: int, line_id: int, data: Multipart, db: AsyncSession, me: Principal, settings: Settings
) -> Template | Redirect:
    """Post (``mode`` new, from the order page or the form page) or edit (``mode`` edit) a review."""
    form = {name: text(data, name) for name in (*(name for name, _ in RATINGS), "text", "mode")}
    editing = form["mode"] == "edit"
    try:
        review = _review_data(form, data, editing=editing)
        photos = await read_photos(data.get("photos"), settings.max_upload_bytes)
        if isinstance(review, ReviewPatch):
            await service.edit_review(db, me, order_id, line_id, review, photos, settings)
        else:
            await service.post_review(db, me, order_id, line_id, review, photos, settings)
    except DomainError as err:
        await db.rollback()
        _fixable(err)
        bad = {"photos" if f.startswith("photos") else f for f in bad_fields(err)}
        return await _form_page(
            db, me, order_id, line_id, form=form, error=err, bad=bad, status_code=err.status_code
        )
    return Redirect(f"/orders/{order_id}?done=reviewed#review-line-{line_id}", status_code=303)


# --- the shop's reviews console ---------------------------------------------------------------


async def _console_page(
    db: AsyncSession,
    me: Principal,
    shop_id: int | None,
    filter: str = "",
    cursor: str | None = None,
    **extra: Any,
) -> Template | Redirect:
    shops = await my_shops(db, me)
    if not shops:
        return Redirect("/console", status_code=303)  # open a shop first
    shop = pick_shop(shops, me, shop_id)
    try:
        items = await service.list_shop_reviews(
            db, me, shop.id, filter=filter, before_id=before_id(cursor), limit=PAGE_SIZE + 1
        )
    except DomainError as err:
        raise _readable(err) from None
    reviews, next_cursor = trim_page(items, PAGE_SIZE)
    status = extra.pop("status_code", 200)
    context = {
        "shops": shops,
        "shop": shop,
        "section_url": "/console/reviews",
        "items": reviews,
        "next_cursor": next_cursor,
        "filter": filter,
        "filters": SHOP_FILTERS,
        "ratings": RATINGS,
        "max_text": service.MAX_TEXT,
        "error": None,
        "error_review": None,
        "typed": "",
        "saved": None,
        **extra,
    }
    return Template("reviews/console.html", context=context, status_code=status)


@get("/console/reviews", **signed_in())
async def console_reviews(
    db: AsyncSession, me: Principal, shop: int | None = None, filter: Short = "", cursor: Cursor = None,
    saved: int | None = None,
) -> Template | Redirect:  # fmt: skip
    """The shop's reviews, newest first (not replied / low ratings / with photos), each with its
    reply form."""
    return await _console_page(db, me, shop, filter, cursor, saved=saved)


@post("/console/reviews/{review_id:int}/reply", **signed_in())
async def reply(review_id: int, data: Form, db: AsyncSession, me: Principal) -> Template | Redirect:
    """The shop's reply (or its edit); back to where the form was (the console list, the order)."""
    form = {name: text(data, name) for name in ("text", "shop", "filter", "next")}
    shop_id = integer(form, "shop", minimum=1, maximum=MAX_ID) if form["shop"] else None
    # Back to the list the shop was working through (an unknown filter: the whole list).
    back_to = form["filter"] if form["filter"] in service.SHOP_FILTERS else ""
    try:
        await service.reply(db, me, review_id, _reply_data(form["text"]))
    except DomainError as err:
        await db.rollback()
        _fixable(err)
        return await _console_page(
            db, me, shop_id, back_to, error=err, error_review=review_id, typed=form["text"],
            status_code=err.status_code,
        )  # fmt: skip
    query = f"shop={shop_id}&" if shop_id else ""
    if back_to:
        query += f"filter={back_to}&"
    default = f"/console/reviews?{query}saved={review_id}#review-{review_id}"
    return Redirect(safe_next(form["next"], default), status_code=303)


routes = [product_reviews_page, review_page, post_review, console_reviews, reply]
