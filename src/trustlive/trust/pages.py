"""HTML routes of the trust domain (docs/scores.md): a creator's public page with their reputation
score, the owner's drill-down of a score (total → dimensions → indicators → the order lines behind
each), the buyer's report of a false claim on an order line, and ops' complaint queue with the
"recompute all scores now" button. Thin: parse the form into the API's structs, call
trust.service, render.

The public badge (``trust/_badge.html``, macro ``score_badge``) is rendered by the shop, product and
creator pages; the shop and product handlers (catalog.pages) fetch the score with
``trust.score_of``. Forms re-render with the error and what was typed when the user can fix it
(422, 409); refusals and missing things get the error page.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from litestar import get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trustlive.accounts import service as accounts
from trustlive.accounts.service import Principal
from trustlive.catalog import service as catalog
from trustlive.db import utcnow
from trustlive.errors import DomainError, NotFound, ValidationFailed
from trustlive.orders import service as orders
from trustlive.orders.schemas import OrderOut
from trustlive.trust import service as trust
from trustlive.trust.schemas import BreakdownOut, ComplaintDecisionIn, ComplaintIn, HistoryPoint
from trustlive.web.forms import bad_fields, fixable, parse, readable, text
from trustlive.web.i18n import N_, gettext
from trustlive.web.pagination import before_id
from trustlive.web.policy import allow, public, signed_in
from trustlive.web.validation import MAX_ID

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
Cursor = Annotated[str | None, Parameter(max_length=200)]
Short = Annotated[str, Parameter(max_length=40)]

PAGE_SIZE = 20
HISTORY_DAYS = 90
MAX_CLAIM = 500
MAX_NOTE = 500

# Complaint queue tabs: pending first (what ops must decide), then the decided ones.
COMPLAINT_TABS = (("pending", N_("Pending")), ("upheld", N_("Upheld")), ("dismissed", N_("Dismissed")),
                  ("all", N_("All")))  # fmt: skip
COMPLAINT_STATUS = {
    "pending": N_("Waiting for the platform"),
    "upheld": N_("Upheld"),
    "dismissed": N_("Dismissed"),
}

# What the pages say for the service's refusals (the JSON API keeps the service's English).
ERROR_TEXT = {
    "already_complained": N_("You have already reported this item."),
    "not_delivered": N_("You can report a false claim once the item has been delivered."),
    "no_creator": N_("No creator sold you this item, so there is no claim to report."),
    "complaint_window_closed": N_("The time to report this item is over."),
    "already_decided": N_("This complaint has already been decided."),
    "order_not_found": N_("We could not find that order."),
    "line_not_found": N_("We could not find that item in this order."),
    "not_yours": N_(
        "Only the shop's people, the creator themself and the platform can see how this score is made."
    ),
    "indicator_not_found": N_("That indicator does not exist."),
    "bad_entity_type": N_("Scores are kept for shops, products and creators only."),
    "complaint_not_found": N_("We could not find that complaint."),
}


def _readable(err: DomainError) -> DomainError:
    return readable(err, ERROR_TEXT)


def _fixable(err: DomainError) -> DomainError:
    """Errors the user can fix on the form come back to it; the rest go to the error page."""
    return fixable(_readable(err))


def _label(labels: dict[str, str], key: str) -> str:
    return gettext(labels[key]) if key in labels else key


# --- a creator's public page ------------------------------------------------------------------


@get("/creators/{creator_id:int}", **public())
async def creator_page(creator_id: int, db: AsyncSession, viewer: Principal | None) -> Template:
    """A creator's public page: their name and reputation score (带货口碑分) with its badge."""
    user = await accounts.get_user(db, creator_id)
    if "creator" not in await accounts.roles_of(db, creator_id):
        raise NotFound(gettext("We could not find that creator."), code="creator_not_found")
    context = {
        "creator": user,
        "score": await trust.score_of(db, "creator", creator_id),
        "is_me": viewer is not None and viewer.id == creator_id,
    }
    return Template("trust/creator.html", context=context)


# --- the owner's drill-down -------------------------------------------------------------------


async def _entity(db: AsyncSession, entity_type: str, entity_id: int) -> dict[str, str]:
    """The name of what a score is about and where its public and console pages are (asked after
    the service has checked that the caller may see the score)."""
    if entity_type == "shop":
        shop = await catalog.get_shop(db, entity_id)
        return {
            "name": shop.name,
            "public_url": f"/shops/{shop.slug}",
            "console_url": f"/console?shop={shop.id}",
        }
    if entity_type == "product":
        cards = await catalog.product_cards(db, [entity_id])
        name = cards[0].title if cards else str(entity_id)
        return {
            "name": name,
            "public_url": f"/p/{entity_id}",
            "console_url": f"/console/products/{entity_id}",
        }
    user = await accounts.get_user(db, entity_id)
    return {"name": user.display_name, "public_url": f"/creators/{entity_id}", "console_url": "/console/live"}


def _chart(points: list[HistoryPoint]) -> dict[str, Any]:
    """The history as trust.js draws it: one label per day, None where the entity was "new"."""
    return {
        "labels": [p.day.isoformat() for p in points],
        "values": [float(p.score) if p.score is not None else None for p in points],
        "label": gettext("Score"),
    }


def _knot(unit: str, x: float) -> str:
    """A curve knot's x as the indicator shows its value: "1.2%", "48 h", "4.5"."""
    if unit == "rate":
        return f"{x * 100:.2f}".rstrip("0").rstrip(".") + "%"
    if unit == "hours":
        return f"{x:g} h"
    return f"{x:g}"


def _indicators(b: BreakdownOut) -> dict[str, Any]:
    return {i.key: i for d in b.dimensions for i in d.indicators}


@get("/console/scores/{entity_type:str}/{entity_id:int}", **signed_in())
async def score_page(entity_type: str, entity_id: int, db: AsyncSession, me: Principal) -> Template:
    """A score explained to its owner (the shop's staff, the creator themself) and to ops: total,
    dimensions, indicators with value, points, window, weight, curve and what to do, a link to the
    order lines behind each, the shop's effects and the 90-day history."""
    try:
        breakdown = await trust.breakdown(db, me, entity_type, entity_id)
        history = await trust.history(db, entity_type, entity_id, days=HISTORY_DAYS)
    except DomainError as err:
        raise _readable(err) from None
    context = {
        "entity_type": entity_type,
        "entity_id": entity_id,
        "entity": await _entity(db, entity_type, entity_id),
        "b": breakdown,
        "score": breakdown.score,
        "chart": _chart(history),
        "history_days": HISTORY_DAYS,
        "hints": {key: gettext(hint) for key, hint in trust.HINTS.items()},
        "indicator_labels": {key: _label(trust.INDICATOR_LABELS, key) for key in _indicators(breakdown)},
        "dimension_labels": {d.key: _label(trust.DIMENSION_LABELS, d.key) for d in breakdown.dimensions},
        "knot": _knot,
    }
    return Template("trust/breakdown.html", context=context)


def _line_cursor(cursor: str | None) -> int | None:
    """Where the list of lines continues: the service's cursor (a line id), or the API's opaque
    kind; anything else is a 400 ``bad_cursor``."""
    if cursor and cursor.isascii() and cursor.isdigit() and len(cursor) <= 19 and 0 < int(cursor) <= MAX_ID:
        return int(cursor)
    return before_id(cursor)


@get("/console/scores/{entity_type:str}/{entity_id:int}/indicators/{key:str}", **signed_in())
async def indicator_page(
    entity_type: str, entity_id: int, key: str, db: AsyncSession, me: Principal, cursor: Cursor = None,
    show: Short = "",
) -> Template:  # fmt: skip
    """The order lines behind one indicator, newest first: those counting against the score (what
    to fix), or with ``show=all`` every line it was computed over, those against it marked."""
    every = show == "all"
    try:
        lines = await trust.indicator_lines(
            db, me, entity_type, entity_id, key, before=_line_cursor(cursor), limit=PAGE_SIZE,
            against_only=not every,
        )  # fmt: skip
        breakdown = await trust.breakdown(db, me, entity_type, entity_id)
    except DomainError as err:
        raise _readable(err) from None
    indicator = _indicators(breakdown).get(key)
    context = {
        "entity_type": entity_type,
        "entity_id": entity_id,
        "entity": await _entity(db, entity_type, entity_id),
        "key": key,
        "indicator": indicator,
        "indicator_label": _label(trust.INDICATOR_LABELS, key),
        "hint": gettext(trust.HINTS[key]) if key in trust.HINTS else "",
        "items": lines.items,
        "next_cursor": lines.next_cursor,
        "links_orders": entity_type in ("shop", "product") or me.is_ops,
        "show_all": every,
    }
    return Template("trust/indicator.html", context=context)


# --- the buyer's complaint of a false claim ---------------------------------------------------


async def order_complaints(db: AsyncSession, viewer: Principal, order: OrderOut) -> dict[str, Any]:
    """What the buyer's order page shows (``trust/_order_complaints.html``): per line a creator
    sold, the buyer's complaint or None, and whether a new one can still be filed (received, and
    within the service's window). Nothing for anyone but the buyer."""
    if order.buyer_id != viewer.id:
        return {"trust_complaints": {}, "complaints_open": False}
    found = {
        line.id: await trust.complaint_of_line(db, viewer, line.id) for line in order.lines if line.creator_id
    }
    received = order.delivered_at or order.completed_at
    window = dt.timedelta(days=trust.COMPLAINT_WINDOW_DAYS)
    is_open = received is not None and utcnow() <= received + window
    return {"trust_complaints": found, "complaints_open": is_open}


def _complaint_data(typed: str) -> ComplaintIn:
    """The complaint as the API's struct; its rule (1 to 500 characters) refuses in the page's words."""
    try:
        return parse(ComplaintIn, {"claim": typed})
    except ValidationFailed:
        if typed:
            message = gettext("Keep it to %(n)s characters (it has %(len)s).") % {
                "n": MAX_CLAIM,
                "len": len(typed),
            }
        else:
            message = gettext("Say what the creator claimed and what you received.")
        raise ValidationFailed(message, field="claim") from None


async def _complaint_page(
    db: AsyncSession, me: Principal, order_id: int, line_id: int, **extra: Any
) -> Template:
    order = await orders.get_order(db, me, order_id)
    line = next((ln for ln in order.lines if ln.id == line_id), None)
    if order.buyer_id != me.id:
        raise _readable(NotFound("order not found", code="order_not_found"))
    if line is None:
        raise _readable(NotFound("line not found", code="line_not_found"))
    status = extra.pop("status_code", 200)
    context = {
        "order": order,
        "line": line,
        "complaint": await trust.complaint_of_line(db, me, line_id),
        "status_labels": COMPLAINT_STATUS,
        "max_claim": MAX_CLAIM,
        "typed": "",
        "error": None,
        "bad": set(),
        **extra,
    }
    return Template("trust/complaint.html", context=context, status_code=status)


@get("/orders/{order_id:int}/lines/{line_id:int}/complaint", **signed_in())
async def complaint_page(order_id: int, line_id: int, db: AsyncSession, me: Principal) -> Template:
    """The report form for one line of the buyer's order, or the report's status once filed."""
    return await _complaint_page(db, me, order_id, line_id)


@post("/orders/{order_id:int}/lines/{line_id:int}/complaint", **signed_in())
async def post_complaint(
    order_id: int, line_id: int, data: Form, db: AsyncSession, me: Principal
) -> Template | Redirect:
    """File a complaint that the item was not as the creator described it (虚假宣传); ops decide."""
    typed = text(data, "claim")
    try:
        await trust.file_complaint(db, me, order_id, line_id, _complaint_data(typed))
    except DomainError as err:
        await db.rollback()
        _fixable(err)
        return await _complaint_page(
            db,
            me,
            order_id,
            line_id,
            typed=typed,
            error=err,
            bad=bad_fields(err),
            status_code=err.status_code,
        )
    return Redirect(f"/orders/{order_id}?done=complained#complaint-line-{line_id}", status_code=303)


# --- ops: the complaint queue and the recompute button ----------------------------------------


async def _ops_page(
    db: AsyncSession, me: Principal, status: str, cursor: str | None = None, **extra: Any
) -> Template:
    tab = status if status in dict(COMPLAINT_TABS) else "pending"
    try:
        page = await trust.list_complaints(
            db, me, None if tab == "all" else tab, before=before_id(cursor), limit=PAGE_SIZE
        )
    except DomainError as err:
        raise _readable(err) from None
    code = extra.pop("status_code", 200)
    shops = await catalog.shops_by_ids(db, sorted({c.shop_id for c in page.items}))
    creators = await accounts.users_by_ids(db, sorted({c.creator_id for c in page.items}))
    context = {
        "tabs": COMPLAINT_TABS,
        "tab": tab,
        "items": page.items,
        "next_cursor": page.next_cursor,
        "shop_names": {s.id: s.name for s in shops},
        "creator_names": {i: u.display_name for i, u in creators.items()},
        "status_labels": COMPLAINT_STATUS,
        "max_note": MAX_NOTE,
        "error": None,
        "error_complaint": None,
        "bad": set(),
        "typed": "",
        "decided": None,
        "recomputed": None,
        **extra,
    }
    return Template("trust/ops_complaints.html", context=context, status_code=code)


@get("/ops/complaints", **allow("ops"))
async def ops_complaints(
    db: AsyncSession, me: Principal, status: Short = "pending", cursor: Cursor = None,
    decided: int | None = None, recomputed: int | None = None,
) -> Template:  # fmt: skip
    """Buyers' complaints of false claims, pending first, each with its uphold / dismiss form."""
    return await _ops_page(db, me, status, cursor, decided=decided, recomputed=recomputed)


def _decision_data(form: dict[str, str]) -> ComplaintDecisionIn:
    try:
        return parse(ComplaintDecisionIn, {"decision": form["decision"], "note": form["note"]})
    except ValidationFailed as err:
        if bad_fields(err) == {"decision"}:
            raise ValidationFailed(gettext("Choose uphold or dismiss."), field="decision") from None
        message = gettext("Keep the note to %(n)s characters.") % {"n": MAX_NOTE}
        raise ValidationFailed(message, field="note") from None


@post("/ops/complaints/{complaint_id:int}/decision", **allow("ops"))
async def decide(complaint_id: int, data: Form, db: AsyncSession, me: Principal) -> Template | Redirect:
    """Uphold (it counts against the creator's reputation score) or dismiss a complaint."""
    form = {name: text(data, name) for name in ("decision", "note", "status")}
    try:
        await trust.decide_complaint(db, me, complaint_id, _decision_data(form))
    except DomainError as err:
        await db.rollback()
        _fixable(err)
        return await _ops_page(
            db, me, form["status"], error=err, error_complaint=complaint_id, typed=form["note"],
            bad=bad_fields(err), status_code=err.status_code,
        )  # fmt: skip
    back = form["status"] if form["status"] in dict(COMPLAINT_TABS) else "pending"
    return Redirect(f"/ops/complaints?status={back}&decided={complaint_id}", status_code=303)


@post("/ops/scores/recompute", **allow("ops"))
async def recompute(uow: async_sessionmaker[AsyncSession]) -> Redirect:
    """Recompute every score now (the nightly job, on demand), then say how many were scored."""
    done = await trust.recompute_all(uow)
    scored = sum(done.get(kind, 0) for kind in ("shop", "product", "creator"))
    return Redirect(f"/ops/complaints?recomputed={scored}", status_code=303)


routes = [
    creator_page,
    score_page,
    indicator_page,
    complaint_page,
    post_complaint,
    ops_complaints,
    decide,
    recompute,
]
