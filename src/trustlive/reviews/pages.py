"""HTML routes of the reviews domain: a product's reviews, the buyer's review form (new and
edit), and the shop's reviews console with its reply forms. Thin: parse the form into the API's
structs, call reviews.service, render.

Forms re-render with the error and what the user typed when the user can fix it (422, 413, 415,
409); refusals and missing things get the error page. The order pages show the per-line form
(``reviews/_order_panel.html``); it posts here and comes back to the order when it succeeds.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import get, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.accounts.service import Principal
from trustlive.catalog import service as catalog
from trustlive.config import Settings
from trustlive.errors import DomainError, FieldError, Forbidden, ValidationFailed
from trustlive.reviews import service
from trustlive.reviews.api import read_upload
from trustlive.reviews.schemas import ReplyIn, ReviewIn, ReviewPatch
from trustlive.web.forms import bad_fields, checked, fixable, parse, safe_next, text
from trustlive.web.i18n import N_, gettext
from trustlive.web.pagination import before_id, trim_page
from trustlive.web.policy import public, signed_in

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
Multipart = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)]
Cursor = Annotated[str | None, Parameter(max_length=200)]
Short = Annotated[str, Parameter(max_length=200)]

PAGE_SIZE = 20
MAX_ID = 2**62

# The three ratings, in the order the forms ask for them.
RATINGS = (
    ("rating_product", N_("Product")),
    ("rating_logistics", N_("Logistics")),
    ("rating_service", N_("Service")),
)
PRODUCT_FILTERS = (("", N_("All")), ("photos", N_("With photos")), ("low", N_("Low ratings")))
SHOP_FILTERS = (
    ("", N_("All")),
    ("unreplied", N_("Not replied")),
    ("low", N_("Low ratings")),
    ("photos", N_("With photos")),
)

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
    """The error in the reader's language when it is one of ours (its code stays)."""
    text_ = ERROR_TEXT.get(err.code)
    if text_:
        err.message = gettext(text_)
    return err


def _fixable(err: DomainError) -> DomainError:
    """Errors the user can fix on the form come back to it; the rest go to the error page."""
    return fixable(_readable(err))


def _filter_chips(chosen: str, choices: tuple[tuple[str, str], ...]) -> str:
    if chosen not in {key for key, _ in choices}:
        raise _readable(ValidationFailed("filter: no such filter", field="filter", code="bad_filter"))
    return chosen


# --- a product's reviews ----------------------------------------------------------------------


@get("/p/{product_id:int}/reviews", **public())
async def product_reviews_page(
    product_id: int, db: AsyncSession, viewer: Principal | None, filter: Short = "", cursor: Cursor = None
) -> Template:
    """All of a product's reviews, newest first, with photos or low ratings only on request."""
    chosen = _filter_chips(filter, PRODUCT_FILTERS)
    product, ratings, items = await service.product_review_page(
        db, viewer, product_id, filter=chosen, before_id=before_id(cursor), limit=PAGE_SIZE + 1
    )
    reviews, next_cursor = trim_page(items, PAGE_SIZE)
    context = {
        "product": product,
        "ratings": ratings,
        "items": reviews,
        "next_cursor": next_cursor,
        "filter": chosen,
        "filters": PRODUCT_FILTERS,
    }
    return Template("reviews/product_reviews.html", context=context)


# --- the buyer's review form ------------------------------------------------------------------


def _review_fields(form: dict[str, str], *, editing: bool) -> dict[str, Any]:
    """The typed ratings and text; errors name the field, in the reader's language."""
    fields: dict[str, Any] = {}
    problems = []
    for name, label in RATINGS:
        raw = form[name]
        if raw in ("1", "2", "3", "4", "5"):
            fields[name] = int(raw)
        elif raw or not editing:
            problems.append(
                FieldError(name, gettext("Rate %(what)s from 1 to 5 stars.") % {"what": gettext(label)})
            )
    if len(form["text"]) > service.MAX_TEXT:
        message = gettext("Keep the review to %(n)s characters (it has %(len)s).") % {
            "n": service.MAX_TEXT, "len": len(form["text"])}  # fmt: skip
        problems.append(FieldError("text", message))
    if problems:
        raise ValidationFailed(problems[0].message, fields=problems)
    fields["text"] = form["text"]
    return fields


def _files(data: dict[str, Any]) -> list[UploadFile]:
    """The chosen photos (an empty file input still sends one part with no name: skipped)."""
    raw = data.get("photos")
    parts = raw if isinstance(raw, list) else [raw] if raw is not None else []
    return [p for p in parts if isinstance(p, UploadFile) and p.filename]


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
    form = {
        name: text(data, name)
        for name in ("rating_product", "rating_logistics", "rating_service", "text", "mode")
    }
    editing = form["mode"] == "edit"
    try:
        fields = _review_fields(form, editing=editing)
        files = _files(data)
        if len(files) > service.MAX_PHOTOS:
            raise ValidationFailed(
                f"photos: at most {service.MAX_PHOTOS}", field="photos", code="too_many_photos"
            )
        photos = [await read_upload(f, settings.max_upload_bytes) for f in files]
        if editing:
            patch = parse(ReviewPatch, {**fields, "clear_photos": checked(data, "clear_photos")})
            await service.edit_review(db, me, order_id, line_id, patch, photos, settings)
        else:
            await service.post_review(db, me, order_id, line_id, parse(ReviewIn, fields), photos, settings)
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
    shops = await catalog.shops_of(db, me)
    if not shops:
        if not me.has("merchant"):
            raise Forbidden(
                gettext("The shop console is for merchants and shop staff."), code="not_shop_staff"
            )
        return Redirect("/console", status_code=303)  # open a shop first
    if shop_id is None:
        shop = next((s for s in shops if s.owner_id == me.id), shops[0])
    else:
        shop = next((s for s in shops if s.id == shop_id), None)
        if shop is None:
            raise Forbidden(gettext("this is not your shop"), code="not_your_shop")
    chosen = _filter_chips(filter, SHOP_FILTERS)
    items = await service.list_shop_reviews(
        db, me, shop.id, filter=chosen, before_id=before_id(cursor), limit=PAGE_SIZE + 1
    )
    reviews, next_cursor = trim_page(items, PAGE_SIZE)
    status = extra.pop("status_code", 200)
    context = {
        "shops": shops,
        "shop": shop,
        "section_url": "/console/reviews",
        "items": reviews,
        "next_cursor": next_cursor,
        "filter": chosen,
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
    shop_id = int(form["shop"]) if form["shop"].isdigit() and 0 < int(form["shop"]) < MAX_ID else None
    try:
        if not form["text"]:
            raise ValidationFailed(gettext("Write your reply first."), field="text")
        if len(form["text"]) > service.MAX_TEXT:
            raise ValidationFailed(
                gettext("Keep the reply to %(n)s characters.") % {"n": service.MAX_TEXT}, field="text"
            )
        await service.reply(db, me, review_id, parse(ReplyIn, {"text": form["text"]}))
    except DomainError as err:
        await db.rollback()
        _fixable(err)
        return await _console_page(
            db, me, shop_id, form["filter"] if form["filter"] in dict(SHOP_FILTERS) else "", error=err,
            error_review=review_id, typed=form["text"], status_code=err.status_code,
        )  # fmt: skip
    query = f"shop={shop_id}&" if shop_id else ""
    if form["filter"] in dict(SHOP_FILTERS) and form["filter"]:
        query += f"filter={form['filter']}&"  # back to the list the shop was working through
    default = f"/console/reviews?{query}saved={review_id}#review-{review_id}"
    return Redirect(safe_next(form["next"], default), status_code=303)


routes = [product_reviews_page, review_page, post_review, console_reviews, reply]
