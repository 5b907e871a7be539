"""HTML routes of the aftersales domain: the buyer's requests (new, list, detail with ship-back,
escalate, withdraw), the shop's queue and answers, ops' escalated queue and arbitration, and the
thread every party writes in. Thin: parse the form into the API's structs, call
aftersales.service, render.

Forms re-render with the error and what was typed when the user can fix it (422, 409, 413, 415,
and 404s naming a field); "not yours" and "no such request" go to the error page."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import get, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.accounts.service import Principal
from trustlive.aftersales import service
from trustlive.aftersales.schemas import ArbitrateIn, EscalateIn, MessageIn, RejectIn, RequestIn, ShipBackIn
from trustlive.catalog import service as catalog
from trustlive.config import Settings
from trustlive.db import utcnow
from trustlive.errors import DomainError, ValidationFailed
from trustlive.fulfillment import service as fulfillment
from trustlive.fulfillment.tracking import Tracker
from trustlive.money import MAX_PRICE_FEN, parse_yuan
from trustlive.web.console import my_shops, pick_shop
from trustlive.web.forms import bad_fields, fixable, integer, invalid, parse, text, to_upload
from trustlive.web.i18n import N_, gettext
from trustlive.web.pagination import before_id, trim_page
from trustlive.web.policy import allow, signed_in
from trustlive.web.validation import MAX_ID

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
Multipart = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)]
Cursor = Annotated[str | None, Parameter(max_length=200)]
Short = Annotated[str, Parameter(max_length=40)]
OptionalId = Annotated[int | None, Parameter(ge=1, le=MAX_ID)]

PAGE_SIZE = 20
QUEUE_SIZE = 50

# API field paths -> the forms' field names.
_FIELDS = {r"amount_fen": "amount", r"description": "description", r"body": "body", r"note": "note"}


def _policy(settings: Settings) -> service.AftersalesPolicy:
    return service.AftersalesPolicy.from_settings(settings)


async def _photos(data: dict[str, Any], settings: Settings) -> list[catalog.Upload]:
    """The files of a multipart form's ``photos`` input (none chosen: an empty list)."""
    raw = data.get("photos")
    files = raw if isinstance(raw, list) else [raw]
    found = [f for f in files if isinstance(f, UploadFile) and f.filename]
    if len(found) > service.MAX_PHOTOS:
        raise invalid("photos", gettext("choose at most 9 photos"))
    return [await to_upload(f, settings.max_upload_bytes) for f in found]


def _common(context: dict[str, Any]) -> dict[str, Any]:
    return {"carriers": fulfillment.CARRIERS, "now": utcnow(), **context}


# --- the buyer: new request --------------------------------------------------------------------


async def _new_page(
    db: AsyncSession, me: Principal, order_id: int, line_id: int | None, kind: str, **extra: Any
) -> Template:
    status = extra.pop("status_code", 200)
    found = await service.new_request_form(db, me, order_id, line_id, kind)
    option = found.option
    form = {"reason": "", "amount": "", "description": ""}
    if option is not None:
        form["reason"] = option.reasons[0] if len(option.reasons) == 1 else ""
    context = _common({
        "found": found, "order": found.order, "line": found.line, "option": option, "kind": kind,
        "form": form, "error": None, "bad": set(), **extra,
    })  # fmt: skip
    return Template("aftersales/new.html", context=context, status_code=status)


@get("/aftersales/new", **signed_in())
async def new_page(
    db: AsyncSession, me: Principal, order: Annotated[int, Parameter(ge=1, le=MAX_ID)], line: OptionalId = None,
    kind: Short = "refund_only",
) -> Template:  # fmt: skip
    """Ask for a refund or a return: on one item (``line``) or the whole order."""
    if kind not in ("refund_only", "return_refund"):
        raise invalid("kind", gettext("choose a refund or a return"))
    return await _new_page(db, me, order, line, kind)


def _amount(form: dict[str, str]) -> int:
    try:
        fen = parse_yuan(form["amount"], field="amount")
    except ValidationFailed:
        raise invalid("amount", gettext("enter an amount in yuan, e.g. 12.50")) from None
    if not 0 < fen <= MAX_PRICE_FEN:
        raise invalid("amount", gettext("enter an amount above zero"))
    return fen


@post("/aftersales", **signed_in())
async def create(data: Multipart, db: AsyncSession, me: Principal, settings: Settings) -> Template | Redirect:
    """The new-request form: kind, reason, amount, what happened, evidence photos."""
    form = {n: text(data, n) for n in ("order_id", "line_id", "kind", "reason", "amount", "description")}
    # The ids and the kind come from the page, not from typing: a wrong one is a 422 of its own.
    order_id = integer(form, "order_id", minimum=1, maximum=MAX_ID)
    line_id = integer(form, "line_id", minimum=1, maximum=MAX_ID) if form["line_id"] else None
    if form["kind"] not in ("refund_only", "return_refund"):
        raise invalid("kind", gettext("reload the page and try again"))
    try:
        if not form["reason"]:
            raise invalid("reason", gettext("choose a reason"))
        body = parse(RequestIn, {
            "order_id": order_id, "line_id": line_id, "kind": form["kind"], "reason": form["reason"],
            "amount_fen": _amount(form), "description": form["description"],
        })  # fmt: skip
        photos = await _photos(data, settings)
        out = await service.open_request(db, me, body, _policy(settings), photos=photos,
                                         media=service.Media.from_settings(settings))  # fmt: skip
    except DomainError as err:
        await db.rollback()
        fixable(err)
        return await _new_page(db, me, order_id, line_id, form["kind"], form=form, error=err,
                               bad=bad_fields(err, _FIELDS), status_code=err.status_code)  # fmt: skip
    return Redirect(f"/aftersales/{out.id}?done=opened", status_code=303)


# --- the buyer's list ----------------------------------------------------------------------------


@get("/aftersales", **signed_in())
async def my_requests(db: AsyncSession, me: Principal, cursor: Cursor = None) -> Template:
    """My refund and return requests, newest first."""
    items = await service.list_mine(db, me, before_id=before_id(cursor), limit=PAGE_SIZE + 1)
    items, next_cursor = trim_page(items, PAGE_SIZE)
    shops = {s.id: s.name for s in await catalog.shops_by_ids(db, sorted({r.shop_id for r in items}))}
    return Template("aftersales/list.html", context=_common({"items": items, "next_cursor": next_cursor,
                                                            "shop_names": shops}))  # fmt: skip


# --- one request -------------------------------------------------------------------------------


async def _detail_page(
    db: AsyncSession, me: Principal, request_id: int, settings: Settings, **extra: Any
) -> Template:
    status = extra.pop("status_code", 200)
    if "error" in extra and extra["error"] is not None:
        fixable(extra["error"])
    detail = await service.get_detail(db, me, request_id, _policy(settings))
    context = _common({
        "detail": detail, "r": detail.request, "side": detail.viewer_side, "actions": detail.actions,
        "policy": _policy(settings), "form": {}, "error": None, "error_form": None, "bad": set(), "done": "",
        **extra,
    })  # fmt: skip
    return Template("aftersales/detail.html", context=context, status_code=status)


@get("/aftersales/{request_id:int}", **signed_in())
async def detail_page(
    request_id: int, db: AsyncSession, me: Principal, settings: Settings, done: Short = ""
) -> Template:
    """A request for its buyer, its shop, ops and care specialists: status, deadlines, evidence,
    the return address, the thread, and what the reader can do now."""
    return await _detail_page(db, me, request_id, settings, done=done)


async def _act(
    db: AsyncSession, me: Principal, request_id: int, settings: Settings, name: str, form: dict[str, Any],
    step: Any,
) -> Template | Redirect:  # fmt: skip
    """Run one action of the detail page: on success back to the page with ``done``; a refusal
    re-renders the page with the error at the form it came from."""
    try:
        await step()
    except DomainError as err:
        await db.rollback()
        return await _detail_page(db, me, request_id, settings, error=err, error_form=name, form=form,
                                  bad=bad_fields(err, _FIELDS), status_code=err.status_code)  # fmt: skip
    return Redirect(f"/aftersales/{request_id}?done={name}", status_code=303)


@post("/aftersales/{request_id:int}/approve", **signed_in())
async def approve(
    request_id: int, db: AsyncSession, me: Principal, settings: Settings
) -> Template | Redirect:
    return await _act(db, me, request_id, settings, "approved", {},
                      lambda: service.approve(db, me, request_id, _policy(settings)))  # fmt: skip


@post("/aftersales/{request_id:int}/reject", **signed_in())
async def reject(
    request_id: int, data: Form, db: AsyncSession, me: Principal, settings: Settings
) -> Template | Redirect:
    form = {"reason": text(data, "reason")}

    async def step() -> None:
        if len(form["reason"]) < 2:
            raise invalid("reason", gettext("say why, so the buyer and the platform can see it"))
        await service.reject(db, me, request_id, parse(RejectIn, form), _policy(settings))

    return await _act(db, me, request_id, settings, "rejected", form, step)


@post("/aftersales/{request_id:int}/confirm-arrival", **signed_in())
async def confirm_arrival(
    request_id: int, db: AsyncSession, me: Principal, settings: Settings
) -> Template | Redirect:
    return await _act(db, me, request_id, settings, "arrived", {},
                      lambda: service.confirm_arrival(db, me, request_id))  # fmt: skip


@post("/aftersales/{request_id:int}/ship-back", **signed_in())
async def ship_back(
    request_id: int, data: Form, db: AsyncSession, me: Principal, settings: Settings, tracker: Tracker
) -> Template | Redirect:
    form = {"carrier": text(data, "carrier"), "tracking_no": text(data, "tracking_no").replace(" ", "")}

    async def step() -> None:
        if form["carrier"] not in fulfillment.CARRIERS:
            raise invalid("carrier", gettext("choose the carrier"))
        await service.ship_back(db, me, request_id, parse(ShipBackIn, form), tracker)

    return await _act(db, me, request_id, settings, "shipped", form, step)


@post("/aftersales/{request_id:int}/escalate", **signed_in())
async def escalate(
    request_id: int, data: Form, db: AsyncSession, me: Principal, settings: Settings
) -> Template | Redirect:
    form = {"note": text(data, "note")}
    return await _act(db, me, request_id, settings, "escalated", form,
                      lambda: service.escalate(db, me, request_id, parse(EscalateIn, form)))  # fmt: skip


@post("/aftersales/{request_id:int}/withdraw", **signed_in())
async def withdraw(
    request_id: int, db: AsyncSession, me: Principal, settings: Settings
) -> Template | Redirect:
    return await _act(db, me, request_id, settings, "withdrawn", {},
                      lambda: service.withdraw(db, me, request_id))  # fmt: skip


@post("/aftersales/{request_id:int}/arbitrate", **allow("ops"))
async def arbitrate(
    request_id: int, data: Form, db: AsyncSession, me: Principal, settings: Settings
) -> Template | Redirect:
    form = {"decision": text(data, "decision"), "note": text(data, "note")}

    async def step() -> None:
        if form["decision"] not in ("buyer", "seller"):
            raise invalid("decision", gettext("decide for the buyer or for the seller"))
        if len(form["note"]) < 2:
            raise invalid("note", gettext("say why: both parties read it"))
        await service.arbitrate(db, me, request_id, parse(ArbitrateIn, form), _policy(settings))

    return await _act(db, me, request_id, settings, "arbitrated", form, step)


@post("/aftersales/{request_id:int}/messages", **signed_in())
async def post_message(
    request_id: int, data: Multipart, db: AsyncSession, me: Principal, settings: Settings
) -> Template | Redirect:
    form = {"body": text(data, "body")}

    async def step() -> None:
        if not form["body"]:
            raise invalid("body", gettext("write a message"))
        photos = await _photos(data, settings)
        await service.post_message(db, me, request_id, parse(MessageIn, form), photos=photos,
                                   media=service.Media.from_settings(settings))  # fmt: skip

    return await _act(db, me, request_id, settings, "message", form, step)


# --- the shop's queue ----------------------------------------------------------------------------

SHOP_TABS = (
    ("answer", N_("To answer")),
    ("returns", N_("Returns")),
    ("disputes", N_("Rejected and escalated")),
    ("closed", N_("Closed")),
)


@get("/console/aftersales", **signed_in())
async def console_queue(
    db: AsyncSession, me: Principal, shop: OptionalId = None, tab: Short = "answer", cursor: Cursor = None
) -> Template | Redirect:
    """The shop's requests: those awaiting its answer first, each with its deadline."""
    shops = await my_shops(db, me)
    if not shops:
        return Redirect("/console", status_code=303)  # open a shop first
    chosen = pick_shop(shops, me, shop)
    before, after = service.queue_position(cursor, tab)
    found = await service.shop_queue(
        db, me, chosen.id, tab, before_id=before, after=after, limit=QUEUE_SIZE + 1
    )
    items, next_cursor = service.queue_page(found, QUEUE_SIZE, tab)
    context = _common({
        "shops": shops, "shop": chosen, "tabs": SHOP_TABS, "tab": tab, "items": items,
        "counts": await service.shop_counts(db, me, chosen.id), "next_cursor": next_cursor,
        "section_url": "/console/aftersales",
    })  # fmt: skip
    return Template("aftersales/console.html", context=context)


# --- ops -----------------------------------------------------------------------------------------

OPS_TABS = (("escalated", N_("Escalated")), ("open", N_("All open")), ("closed", N_("Closed")))


@get("/ops/aftersales", **allow("ops"))
async def ops_queue(
    db: AsyncSession, me: Principal, tab: Short = "escalated", cursor: Cursor = None
) -> Template:
    """Ops: requests escalated for arbitration (and every open or closed one)."""
    items = await service.ops_queue(db, me, tab, before_id=before_id(cursor), limit=PAGE_SIZE + 1)
    items, next_cursor = trim_page(items, PAGE_SIZE)
    shops = {s.id: s.name for s in await catalog.shops_by_ids(db, sorted({r.shop_id for r in items}))}
    context = _common({"tabs": OPS_TABS, "tab": tab, "items": items, "next_cursor": next_cursor,
                       "shop_names": shops})  # fmt: skip
    return Template("aftersales/ops.html", context=context)


routes = [
    new_page, create, my_requests, detail_page, approve, reject, confirm_arrival, ship_back, escalate, withdraw,
    arbitrate, post_message, console_queue, ops_queue,
]  # fmt: skip
