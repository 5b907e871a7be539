"""After-sales use cases (docs/aftersales.md): refund-only (仅退款) and return-and-refund (退货退款)
requests, the shop's answer, returns shipped back, refunds through the ledger, escalation to ops
and arbitration, and the thread the parties write in.

Every move of a request is a conditional UPDATE from the statuses it may come from, so the shop
and the deadline sweeper racing (approve vs auto-approve, confirm arrival vs auto-refund) cannot
both win: the loser finds no row to move and refunds nothing. Refunds go through
``payments.service.refund_order`` with the key ``aftersales:<id>``, allocated to the line and to
shipping so that settlement takes them off exactly those (fee and creator commission are computed
on what is left). An open request holds the order's settlement; every end releases it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import or_
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive import events
from trustlive.accounts import service as accounts
from trustlive.accounts.service import Principal
from trustlive.aftersales import repository as repo
from trustlive.aftersales.models import (
    ENDED,
    OPEN,
    AftersalesMessage,
    AftersalesPhoto,
    AftersalesRequest,
    Kind,
    Reason,
    Resolution,
    Status,
)
from trustlive.aftersales.schemas import (
    ArbitrateIn,
    EscalateIn,
    MessageIn,
    MessageOut,
    OptionOut,
    OrderPanel,
    PhotoOut,
    RejectIn,
    RequestBrief,
    RequestDetail,
    RequestIn,
    RequestOut,
    ReturnAddressOut,
    ShipBackIn,
)
from trustlive.catalog import service as catalog
from trustlive.config import Settings
from trustlive.db import add_once, utcnow
from trustlive.errors import (
    N_,
    BadRequest,
    Conflict,
    Forbidden,
    InvalidTransition,
    NotFound,
    ValidationFailed,
    validated,
)
from trustlive.fulfillment import service as fulfillment
from trustlive.fulfillment.tracking import Tracker
from trustlive.orders import service as orders
from trustlive.orders.schemas import LineOut, OrderOut
from trustlive.payments import service as payments
from trustlive.web.pagination import before_id, decode_cursor, encode_cursor, trim_page
from trustlive.web.validation import MAX_ID

# The seller is at fault: the shop refunds shipping too and its shop experience score counts it.
SELLER_CAUSES = frozenset({Reason.quality, Reason.wrong_item, Reason.not_as_described, Reason.not_received})
# Returns whose postage the shop always pays (the buyer sends them freight collect, 到付).
SHOP_PAYS_POSTAGE = frozenset({Reason.quality, Reason.wrong_item, Reason.not_as_described})
RETURN_REASONS = (Reason.no_reason, Reason.quality, Reason.wrong_item, Reason.not_as_described)
KIND_REASONS: dict[str, frozenset[str]] = {
    Kind.refund_only: frozenset({Reason.not_shipped, Reason.not_received, *SHOP_PAYS_POSTAGE}),
    Kind.return_refund: frozenset(RETURN_REASONS),
}
# Order statuses a request can be opened in (paid and not yet settled).
ELIGIBLE = ("paid", "shipped", "delivered", "completed")
MAX_PHOTOS = 9
# Requests a buyer may make, in all, on one line (or on the whole order): a claim refused and
# refused again is not reopened without end.
MAX_REQUESTS_PER_TARGET = 3
WITHDRAWABLE = (Status.pending, Status.rejected, Status.escalated, Status.awaiting_return)


@dataclass(frozen=True)
class AftersalesPolicy:
    """The deadlines (config: TRUSTLIVE_AFTERSALES_RESPONSE_HOURS, _RETURN_SHIP_DAYS,
    _RETURN_REFUND_DAYS, _ESCALATION_DAYS)."""

    response_hours: int = 48  # the shop answers, else the request is approved automatically
    return_ship_days: int = 7  # the buyer ships an approved return back, else it closes
    return_refund_days: int = 7  # after the return arrived: refunded automatically
    escalation_days: int = 7  # the buyer may escalate a rejection to ops

    @classmethod
    def from_settings(cls, settings: Settings) -> AftersalesPolicy:
        return cls(settings.aftersales_response_hours, settings.return_ship_days, settings.return_refund_days,
                   settings.escalation_days)  # fmt: skip


DEFAULT_POLICY = AftersalesPolicy()


@dataclass(frozen=True)
class Media:
    """Where evidence photos go and how large each may be (from Settings)."""

    media_dir: Path
    max_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Media:
        return cls(settings.media_dir, settings.max_upload_bytes)


# --- reading -----------------------------------------------------------------------------------


def _photo_out(photo: AftersalesPhoto) -> PhotoOut:
    return PhotoOut(photo.id, f"/media/{photo.path}")


def request_out(
    row: AftersalesRequest, order: OrderOut | None = None, photos: Sequence[AftersalesPhoto] = ()
) -> RequestOut:
    title = ""
    if order is not None and row.line_id is not None:
        title = next((line.title for line in order.lines if line.id == row.line_id), "")
    return RequestOut(
        id=row.id, order_id=row.order_id, line_id=row.line_id, line_title=title, buyer_id=row.buyer_id,
        shop_id=row.shop_id, kind=row.kind, reason=row.reason, seller_cause=row.seller_cause,
        description=row.description, amount_fen=row.amount_fen, status=row.status, due_at=row.due_at,
        created_at=row.created_at, decision=row.decision, responded_at=row.responded_at,
        reject_reason=row.reject_reason, escalated_at=row.escalated_at, arbitrated_at=row.arbitrated_at,
        arbitration_note=row.arbitration_note, postage_payer=row.postage_payer, return_carrier=row.return_carrier,
        return_tracking_no=row.return_tracking_no, return_shipped_at=row.return_shipped_at,
        return_arrived_at=row.return_arrived_at, arrival_confirmed_at=row.arrival_confirmed_at,
        auto_refunded=row.auto_refunded, resolution=row.resolution, resolved_at=row.resolved_at,
        refund_fen=row.refund_fen,
        photos=[_photo_out(p) for p in photos if p.message_id is None and p.request_id == row.id],
    )  # fmt: skip


async def _outs(session: AsyncSession, rows: list[AftersalesRequest]) -> list[RequestOut]:
    """Requests for a list, with their lines' titles and photos, in three queries."""
    found = await orders.orders_by_ids(session, [r.order_id for r in rows])
    photos = await repo.photos_of(session, [r.id for r in rows])
    return [request_out(r, found.get(r.order_id), photos) for r in rows]


async def request_brief(session: AsyncSession, request_id: int) -> RequestBrief:
    """For other domains (care cases): who and what a request is about. No permission check."""
    row = await repo.get_request(session, request_id)
    if row is None:
        raise NotFound(N_("We could not find that after-sales request."), code="request_not_found")
    return RequestBrief(id=row.id, order_id=row.order_id, buyer_id=row.buyer_id, shop_id=row.shop_id,
                        kind=row.kind, reason=row.reason, status=row.status, amount_fen=row.amount_fen,
                        created_at=row.created_at)  # fmt: skip


async def _side(session: AsyncSession, viewer: Principal, row: AftersalesRequest) -> str | None:
    """Which party ``viewer`` is to the request: buyer, shop, ops (arbitrators see every request),
    care (specialists read requests to open care cases), or None (a stranger: 404)."""
    if row.buyer_id == viewer.id:
        return "buyer"
    if await catalog.is_shop_member(session, viewer, row.shop_id):
        return "shop"
    if viewer.is_ops:
        return "ops"
    if viewer.has("care_specialist"):
        return "care"
    return None


def _not_found() -> NotFound:
    return NotFound(N_("We could not find that after-sales request."), code="request_not_found")


async def _visible(
    session: AsyncSession, viewer: Principal, request_id: int
) -> tuple[AftersalesRequest, str]:
    row = await repo.get_request(session, request_id)
    side = await _side(session, viewer, row) if row is not None else None
    if row is None or side is None:
        raise _not_found()
    return row, side


def _must_be(side: str, wanted: str) -> None:
    if side != wanted:
        message = {
            "buyer": N_("Only the buyer who asked can do this."),
            "shop": N_("Only the shop can do this."),
            "ops": N_("Only platform operations can do this."),
        }[wanted]
        raise Forbidden(message, code=f"not_{wanted}" if wanted != "ops" else "ops_only")


def _wrong_state() -> InvalidTransition:
    return InvalidTransition(
        N_("This request cannot do that in its current state; it may have changed meanwhile."),
        code="invalid_transition",
    )


def _words(value: str, field: str, minimum: int = 1) -> str:
    """Trimmed text that must say something: blank ("   ") is a 422 naming the field, not an
    empty reason, note or message stored."""
    value = value.strip()
    if len(value) < minimum:
        raise ValidationFailed(N_("Write something here."), field=field)
    return value


def actions_for(
    row: AftersalesRequest | RequestOut, side: str, now: dt.datetime, has_address: bool
) -> list[str]:
    """What the reader may do now (the page shows these buttons; the API refuses the rest)."""
    status = row.status
    acts: list[str] = []
    if side == "buyer":
        if status in WITHDRAWABLE:
            acts.append("withdraw")
        if status == Status.rejected and row.due_at is not None and now <= row.due_at:
            acts.append("escalate")
        if status == Status.awaiting_return and has_address and (row.due_at is None or now <= row.due_at):
            acts.append("ship_back")
    elif side == "shop":
        if status == Status.pending:
            acts.append("approve")
            if row.due_at is None or now <= row.due_at:
                acts.append("reject")
        if status == Status.return_shipped:
            acts.append("confirm_arrival")
    elif side == "ops" and status == Status.escalated:
        acts.append("arbitrate")
    if side in ("buyer", "shop", "ops") and status in OPEN:
        acts.append("message")
    if side in ("ops", "care"):
        acts.append("care_case")
    return acts


async def _return_address(session: AsyncSession, shop_id: int) -> ReturnAddressOut | None:
    terms = await orders.get_shop_terms(session, shop_id, private=True)
    a = terms.return_address
    if not a:
        return None
    return ReturnAddressOut(
        a.get("recipient", ""), a.get("phone", ""), a.get("region", ""), a.get("detail", "")
    )


async def get_detail(
    session: AsyncSession, viewer: Principal, request_id: int, policy: AftersalesPolicy = DEFAULT_POLICY,
    now: dt.datetime | None = None,
) -> RequestDetail:  # fmt: skip
    """A request with its evidence and thread, for its buyer, its shop, ops and care specialists
    (404 for anyone else). Reading it also notes a return parcel the carrier reported delivered,
    which starts the refund deadline."""
    row, side = await _visible(session, viewer, request_id)
    now = now or utcnow()
    if (
        row.status == Status.return_shipped
        and row.return_arrived_at is None
        and await _see_arrival(session, row, policy)
    ):
        row = await repo.get_request(session, row.id) or row
    order = await orders.load_order(session, row.order_id)
    if retracted(row, order) and await _close_outdated(session, row, now):
        # Read after the buyer confirmed receipt: the claim ends here rather than at the sweep.
        row = await repo.get_request(session, row.id) or row
    photos = await repo.photos_of(session, [row.id])
    messages = await repo.messages_of(session, row.id)
    names = await accounts.users_by_ids(
        session, sorted({row.buyer_id, *(m.author_id for m in messages if m.author_id)})
    )
    shops = await catalog.shops_by_ids(session, [row.shop_id])
    address = None
    if row.status in (Status.awaiting_return, Status.return_shipped) and side != "care":
        address = await _return_address(session, row.shop_id)
    thread = [
        MessageOut(m.id, m.side, m.author_id,
                   names[m.author_id].display_name if m.author_id in names else "", m.body, m.created_at,
                   [_photo_out(p) for p in photos if p.message_id == m.id])
        for m in messages
    ]  # fmt: skip
    return RequestDetail(
        request=request_out(row, order, photos), messages=thread,
        actions=actions_for(row, side, now, address is not None), viewer_side=side, return_address=address,
        shop_name=shops[0].name if shops else "",
        buyer_name=names[row.buyer_id].display_name if row.buyer_id in names else "",
    )  # fmt: skip


async def list_mine(
    session: AsyncSession, buyer: Principal, *, before_id: int | None, limit: int
) -> list[RequestOut]:
    """The buyer's requests, newest first."""
    return await _outs(session, await repo.requests_of_buyer(session, buyer.id, before_id, limit))


# The shop's and ops' queues: what to do first comes first.
SHOP_TABS: dict[str, tuple[tuple[str, ...], bool]] = {
    "answer": ((Status.pending,), True),  # to answer, nearest deadline first
    "returns": ((Status.awaiting_return, Status.return_shipped), True),
    "disputes": ((Status.rejected, Status.escalated), True),
    "closed": (ENDED, False),
}
OPS_TABS: dict[str, tuple[tuple[str, ...], bool]] = {
    "escalated": ((Status.escalated,), False),
    "open": (OPEN, False),
    "closed": (ENDED, False),
}


def _tab(tabs: dict[str, tuple[tuple[str, ...], bool]], tab: str) -> tuple[tuple[str, ...], bool]:
    if tab not in tabs:
        raise ValidationFailed(N_("Unknown list; choose one of the tabs."), field="tab", code="bad_tab")
    return tabs[tab]


QueueKey = tuple[dt.datetime | None, int]  # (deadline, id) of the last request of a page


def deadline_tab(tab: str) -> bool:
    """Whether the shop's tab is ordered by deadline (paged ``after`` a QueueKey) rather than
    newest first (paged ``before_id``)."""
    return tab in SHOP_TABS and SHOP_TABS[tab][1]


def queue_key(request: RequestOut) -> QueueKey:
    return request.due_at, request.id


# The deadline-ordered tabs page by (deadline, id): the cursor holds the last request's deadline in
# microseconds since 1970 (0: it has none; those come last) and its id. The API and the pages
# share it.
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICRO = dt.timedelta(microseconds=1)
# No deadline lies past the year 9999: a larger number would overflow the date arithmetic.
_MAX_DUE = (dt.datetime(9999, 12, 31, tzinfo=dt.UTC) - _EPOCH) // _MICRO


def queue_page(items: list[RequestOut], limit: int, tab: str) -> tuple[list[RequestOut], str | None]:
    """Trim a shop queue fetched with ``limit + 1`` and give the next page's cursor, if any."""
    page, next_cursor = trim_page(items, limit)
    if next_cursor is None or not deadline_tab(tab):
        return page, next_cursor
    due, last = queue_key(page[-1])
    return page, encode_cursor({"due": (due - _EPOCH) // _MICRO if due else 0, "after": last})


def queue_position(cursor: str | None, tab: str) -> tuple[int | None, QueueKey | None]:
    """``(before_id, after)`` for ``shop_queue`` from a cursor of ``queue_page``: 400
    ``bad_cursor`` for one of another shape, or with a deadline or an id out of range."""
    if not deadline_tab(tab):
        return before_id(cursor), None
    decoded = decode_cursor(cursor, "due", "after")
    if decoded is None:
        return None, None
    if decoded["due"] > _MAX_DUE or decoded["after"] > MAX_ID:
        raise BadRequest("cursor: not a cursor this server issued", field="cursor", code="bad_cursor")
    return None, (_EPOCH + decoded["due"] * _MICRO if decoded["due"] else None, decoded["after"])


async def shop_queue(
    session: AsyncSession, actor: Principal, shop_id: int, tab: str, *, before_id: int | None = None,
    after: QueueKey | None = None, limit: int,
) -> list[RequestOut]:  # fmt: skip
    """A shop's requests: ``answer`` (awaiting its answer, the nearest deadline first),
    ``returns`` (approved returns: coming back, to confirm), ``disputes`` (rejected, escalated),
    ``closed``. Shop staff and ops; 403 for others. Deadline-ordered tabs continue ``after`` the
    (deadline, id) of the last request seen; ``closed`` continues ``before_id``."""
    statuses, by_deadline = _tab(SHOP_TABS, tab)
    if not actor.is_ops:
        await catalog.require_shop_member(session, actor, shop_id)
    rows = await repo.requests_by_status(
        session, statuses, shop_id=shop_id, before_id=None if by_deadline else before_id,
        after=after if by_deadline else None, limit=limit, by_deadline=by_deadline,
    )  # fmt: skip
    return await _outs(session, rows)


async def shop_counts(session: AsyncSession, actor: Principal, shop_id: int) -> dict[str, int]:
    """How many requests each of the shop's tabs holds (for the tab labels)."""
    if not actor.is_ops:
        await catalog.require_shop_member(session, actor, shop_id)
    counts = await repo.count_by_status(session, OPEN, shop_id)
    return {
        key: sum(counts.get(s, 0) for s in statuses)
        for key, (statuses, _) in SHOP_TABS.items()
        if key != "closed"
    }


async def ops_queue(
    session: AsyncSession, actor: Principal, tab: str, *, before_id: int | None, limit: int
) -> list[RequestOut]:
    """For ops: escalated requests to arbitrate, every open request, or closed ones (newest
    first)."""
    if not actor.is_ops:
        raise Forbidden(N_("Only platform operations can do this."), code="ops_only")
    statuses, _ = _tab(OPS_TABS, tab)
    rows = await repo.requests_by_status(session, statuses, before_id=before_id, limit=limit)
    return await _outs(session, rows)


# --- what may be asked ---------------------------------------------------------------------------


def received_at(order: OrderOut) -> dt.datetime | None:
    """When the goods arrived: the carrier's delivery when there is one, else the confirmation of
    receipt (confirmed before the carrier reported it). Not the confirmation first: the automatic
    one comes days after delivery and would reopen a window that had closed."""
    return order.delivered_at or order.completed_at


def window_open(order: OrderOut, line: LineOut, now: dt.datetime) -> bool:
    """七天无理由: within the line's return window (0 = its category is excluded) from receipt."""
    got = received_at(order)
    return (
        line.return_window_days > 0
        and got is not None
        and now <= got + dt.timedelta(days=line.return_window_days)
    )


def closed_targets(requests: Sequence[AftersalesRequest]) -> set[int | None]:
    """Lines (None: the whole order) that take no new request: the platform decided a request on
    it for the shop (final), or it has had ``MAX_REQUESTS_PER_TARGET`` already."""
    counts: dict[int | None, int] = {}
    found: set[int | None] = set()
    for r in requests:
        counts[r.line_id] = counts.get(r.line_id, 0) + 1
        if r.resolution == Resolution.arbitrated_seller or counts[r.line_id] >= MAX_REQUESTS_PER_TARGET:
            found.add(r.line_id)
    return found


def options(order: OrderOut, requests: Sequence[AftersalesRequest], now: dt.datetime) -> list[OptionOut]:
    """What the buyer may ask for now, per line and for the whole order, with the most that can
    be refunded: the goods still unrefunded (line total − its refunds), plus the order's shipping
    still unrefunded when the cause is the seller's or nothing was shipped; never more than what
    is left of the payment. ``requests`` are the order's requests (open and ended): lines and
    orders with an open request are left out, and so are those that take no new one
    (``closed_targets``)."""
    if order.status not in ELIGIBLE:
        return []
    left = order.paid_fen - order.refunded_fen
    if left <= 0:
        return []
    open_requests = [r for r in requests if r.status in OPEN]
    if any(r.line_id is None for r in open_requests):
        return []  # a whole-order request is open: nothing else until it ends
    busy = {r.line_id for r in open_requests} | closed_targets(requests)
    ship_left = max(order.shipping_fen - order.shipping_refunded_fen, 0)

    def capped(goods: int) -> tuple[int, int]:
        goods = min(goods, left)
        return goods, max(min(ship_left, left - goods), 0)

    found: list[OptionOut] = []
    whole_reason = {
        "paid": Reason.not_shipped,
        "shipped": Reason.not_received,
        "delivered": Reason.not_received,
    }
    if order.status in whole_reason and not open_requests and None not in busy:
        reason = whole_reason[order.status]
        goods, ship = capped(sum(line.line_total_fen - line.refunded_fen for line in order.lines))
        found.append(OptionOut(None, Kind.refund_only, [reason], goods, ship, [reason]))
    if order.status in ("delivered", "completed"):
        for line in order.lines:
            line_left = line.line_total_fen - line.refunded_fen
            if line_left <= 0 or line.id in busy:
                continue
            goods, ship = capped(line_left)
            causes = [r.value for r in RETURN_REASONS[1:]]
            reasons = ([Reason.no_reason.value] if window_open(order, line, now) else []) + causes
            got = received_at(order)
            until = (
                got + dt.timedelta(days=line.return_window_days) if got and line.return_window_days else None
            )
            found.append(OptionOut(line.id, Kind.return_refund, reasons, goods, ship, causes, until,
                                   line.return_window_days == 0))  # fmt: skip
            # A partial refund keeping the item, when the seller is at fault (a flaw, a wrong colour).
            found.append(OptionOut(line.id, Kind.refund_only, causes, goods, ship, causes))
    return found


async def order_panel(session: AsyncSession, viewer: Principal, order: OrderOut) -> OrderPanel | None:
    """What the order pages show about after-sales for ``order`` (already visible to ``viewer``):
    its requests, and for its buyer what can be asked for now."""
    rows = await repo.requests_of_order(session, order.id)
    now = utcnow()
    if any(retracted(r, order) for r in rows):
        # The buyer is back on the order page after confirming receipt: the claim ends now.
        for row in rows:
            if retracted(row, order):
                await _close_outdated(session, row, now)
        rows = await repo.requests_of_order(session, order.id)
    is_buyer = order.buyer_id == viewer.id
    found = options(order, rows, now) if is_buyer else []
    if not rows and not found:
        return None
    photos = await repo.photos_of(session, [r.id for r in rows])
    return OrderPanel(order.id, [request_out(r, order, photos) for r in rows], found, is_buyer)


@dataclass(frozen=True)
class RequestForm:
    """What the new-request page shows: the order, the line (None: the whole order), what may be
    asked of this kind for it (None: nothing now), and who pays a return's postage."""

    order: OrderOut
    line: LineOut | None
    option: OptionOut | None
    covers_return_shipping: bool


async def new_request_form(
    session: AsyncSession, buyer: Principal, order_id: int, line_id: int | None, kind: str
) -> RequestForm:
    """For the new-request page: the buyer's order (404 otherwise) and what may be asked."""
    order = await _buyers_order(session, buyer, order_id)
    line = next((x for x in order.lines if x.id == line_id), None)
    if line_id is not None and line is None:
        raise NotFound(N_("This order has no such item."), field="line_id", code="line_not_found")
    found = options(order, await repo.requests_of_order(session, order.id), utcnow())
    option = next((o for o in found if o.line_id == line_id and o.kind == kind), None)
    terms = await orders.get_shop_terms(session, order.shop_id)
    return RequestForm(order, line, option, terms.covers_return_shipping)


async def _buyers_order(session: AsyncSession, buyer: Principal, order_id: int) -> OrderOut:
    try:
        order = await orders.load_order(session, order_id)
    except NotFound:
        order = None
    if order is None or order.buyer_id != buyer.id:
        raise NotFound(N_("We could not find that order."), code="order_not_found", field="order_id")
    return order


# --- opening a request -----------------------------------------------------------------------


async def open_request(
    session: AsyncSession, buyer: Principal, data: RequestIn, policy: AftersalesPolicy = DEFAULT_POLICY, *,
    photos: Sequence[catalog.Upload] = (), media: Media | None = None, now: dt.datetime | None = None,
) -> RequestOut:  # fmt: skip
    """The buyer asks for a refund or a return on one of their orders. Everything is checked
    before anything is written: not your order 404; unpaid, cancelled, refunded or settled 409;
    the wrong kind or reason for the order's state 409/422; no-reason outside the window 409;
    more than is refundable 422; another request open on the line or order 409; photos that are
    not JPEG/PNG/WebP 415. Takes a settlement hold on the order."""
    data = validated(data)
    now = now or utcnow()
    if len(photos) > MAX_PHOTOS:
        raise ValidationFailed(N_("At most 9 photos."), field="photos", code="too_many_photos")
    if data.reason not in KIND_REASONS[data.kind]:
        raise ValidationFailed(N_("That reason does not fit this kind of request."), field="reason",
                               code="reason_not_possible")  # fmt: skip
    order = await _buyers_order(session, buyer, data.order_id)
    line = None
    if data.line_id is not None:
        line = next((x for x in order.lines if x.id == data.line_id), None)
        if line is None:
            raise NotFound(N_("This order has no such item."), field="line_id", code="line_not_found")
    if order.status not in ELIGIBLE or order.paid_fen - order.refunded_fen <= 0:
        raise InvalidTransition(
            N_(
                "After-sales is not possible on this order: it is unpaid, cancelled, fully refunded or settled."
            ),
            code="order_not_eligible",
        )
    choice = next(
        (o for o in options(order, [], now) if o.line_id == data.line_id and o.kind == data.kind), None
    )
    if choice is None:
        raise InvalidTransition(_kind_refusal(order, data), code="wrong_kind", field="kind")
    if data.reason not in choice.reasons:
        if data.reason == Reason.no_reason and line is not None:
            if line.return_window_days == 0:
                raise InvalidTransition(N_("This item's category is excluded from no-reason returns."),
                                        code="no_reason_excluded", field="reason")  # fmt: skip
            raise InvalidTransition(N_("The no-reason return window for this item has closed."),
                                    code="return_window_closed", field="reason")  # fmt: skip
        raise ValidationFailed(N_("That reason does not fit this order's state."), field="reason",
                               code="reason_not_possible")  # fmt: skip
    if data.amount_fen > choice.max_fen(data.reason):
        raise ValidationFailed(N_("That is more than can be refunded for it."), field="amount_fen",
                               code="amount_exceeds_refundable")  # fmt: skip
    # The hold locks the order row, so two requests opened at once on one order are checked one
    # after the other: the second sees the first below.
    await orders.hold_settlement(session, order.id)
    earlier = await repo.requests_of_order(session, order.id)
    for other in earlier:
        if other.status in OPEN and (data.line_id is None or other.line_id in (None, data.line_id)):
            raise Conflict(
                N_("There is already an open request for this; follow that one."), code="request_open"
            )
    same = [r for r in earlier if r.line_id == data.line_id]
    if any(r.resolution == Resolution.arbitrated_seller for r in same):
        raise Conflict(N_("The platform has decided a request about this for the shop; that decision is final."),
                       code="arbitration_final")  # fmt: skip
    if len(same) >= MAX_REQUESTS_PER_TARGET:
        raise Conflict(N_("No more requests can be made about this: there have been 3 already."),
                       code="request_limit_reached")  # fmt: skip
    row = AftersalesRequest(
        order_id=order.id, line_id=data.line_id, buyer_id=buyer.id, shop_id=order.shop_id, kind=data.kind,
        reason=data.reason, seller_cause=data.reason in SELLER_CAUSES, description=data.description.strip(),
        amount_fen=data.amount_fen, status=Status.pending, open_slot=data.line_id or 0,
        due_at=now + dt.timedelta(hours=policy.response_hours), created_at=now, updated_at=now,
    )  # fmt: skip
    # A twin opened at the same moment (a double click) committed first: the unique open slot
    # refuses this one.
    if (
        await add_once(session, row, lambda: repo.open_request_at(session, order.id, data.line_id or 0))
        is not None
    ):
        raise Conflict(N_("There is already an open request for this; follow that one."), code="request_open")
    stored = await _store_photos(session, row.id, None, photos, media) if photos else []
    events.record(session, "aftersales.opened", _payload(row, amount_fen=row.amount_fen))
    return request_out(row, order, stored)


def _kind_refusal(order: OrderOut, data: RequestIn) -> str:
    if data.kind == Kind.return_refund and order.status in ("paid", "shipped"):
        return N_("A return is possible once the goods have arrived.")
    if data.kind == Kind.return_refund or data.line_id is not None:
        return (
            N_("Choose the item this request is about.")
            if data.line_id is None
            else N_("That kind of request is not possible for this item now.")
        )
    return N_(
        "A refund for the whole order is possible only before the goods arrive; choose an item instead."
    )


async def _store_photos(
    session: AsyncSession, request_id: int, message_id: int | None, photos: Sequence[catalog.Upload],
    media: Media | None,
) -> list[AftersalesPhoto]:  # fmt: skip
    """Check and store photos of a request (``message_id`` None) or of one message; the new rows."""
    if media is None:
        raise ValueError("photos need a media folder")
    had = await repo.count_photos(session, request_id, message_id)
    if had + len(photos) > MAX_PHOTOS:
        raise ValidationFailed(N_("At most 9 photos."), field="photos", code="too_many_photos")
    rows = []
    for upload in photos:
        stored = catalog.store_image(session, upload, media.media_dir, f"aftersales/{request_id}", media.max_bytes,
                                     field="photos")  # fmt: skip
        rows.append(AftersalesPhoto(request_id=request_id, message_id=message_id, path=stored.path,
                                    created_at=utcnow()))  # fmt: skip
    session.add_all(rows)
    await session.flush()
    return rows


async def add_evidence(
    session: AsyncSession, buyer: Principal, request_id: int, upload: catalog.Upload, media: Media
) -> PhotoOut:
    """One more evidence photo on the buyer's open request (at most 9)."""
    row, side = await _visible(session, buyer, request_id)
    _must_be(side, "buyer")
    if row.status not in OPEN:
        raise _closed()
    (photo,) = await _store_photos(session, row.id, None, [upload], media)
    return _photo_out(photo)


def _closed() -> InvalidTransition:
    return InvalidTransition(N_("This request is closed."), code="request_closed")


def _payload(row: AftersalesRequest, **extra: Any) -> dict[str, Any]:
    return {"request_id": row.id, "order_id": row.order_id, "shop_id": row.shop_id, "buyer_id": row.buyer_id,
            "kind": row.kind, "reason": row.reason, **extra}  # fmt: skip


# --- the shop's answer -------------------------------------------------------------------------


async def approve(
    session: AsyncSession, actor: Principal, request_id: int, policy: AftersalesPolicy = DEFAULT_POLICY
) -> RequestOut:
    """The shop agrees: a refund-only request is refunded at once; a return waits for the item."""
    row, side = await _visible(session, actor, request_id)
    _must_be(side, "shop")
    if row.status != Status.pending:
        raise _wrong_state()
    await _refuse_retracted(session, row)
    if not await _approve(session, row, Status.pending, Resolution.approved, actor.id, utcnow(), policy):
        raise _wrong_state()
    return await _reload(session, row.id)


async def auto_approve(
    session: AsyncSession, request_id: int, now: dt.datetime, policy: AftersalesPolicy
) -> bool:
    """The sweeper's step: the shop did not answer in time. False when it is not due (any more).
    A whole-order claim the order has outgrown meanwhile is not approved but closed as
    ``outdated`` (``claim_fits``)."""
    row = await repo.get_request(session, request_id)
    if row is None or row.status != Status.pending or row.due_at is None or row.due_at > now:
        return False
    # No refund lock before the transition: the request row is always locked before the payment's
    # (the shop approving at the same moment takes them in that order too).
    if row.line_id is None and is_outdated(row, await orders.load_order(session, row.order_id), now):
        await _close_outdated(session, row, now)
        return False
    return await _approve(session, row, Status.pending, Resolution.auto_approved, None, now, policy)


async def _approve(
    session: AsyncSession, row: AftersalesRequest, from_status: str, decision: str, actor_id: int | None,
    now: dt.datetime, policy: AftersalesPolicy, **values: Any,
) -> bool:  # fmt: skip
    """Approval by the shop, by the deadline or by arbitration. One conditional UPDATE decides who
    wins; only the winner refunds or starts the return."""
    if from_status == Status.pending:
        values.update(responded_at=now, responder_id=actor_id)
    if row.kind == Kind.refund_only:
        if not await repo.transition(session, row.id, (from_status,), Status.refunded, decision=decision,
                                     resolution=decision, resolved_at=now, open_slot=None, due_at=None,
                                     updated_at=now, **values):  # fmt: skip
            return False
        events.record(session, "aftersales.approved", _payload(row, decision=decision))
        await _refund(session, row, actor_id, now)
        return True
    terms = await orders.get_shop_terms(session, row.shop_id, private=True)
    payer = "shop" if row.reason in SHOP_PAYS_POSTAGE or terms.covers_return_shipping else "buyer"
    # Without a return address the buyer cannot send anything: the clock starts when there is one.
    due = now + dt.timedelta(days=policy.return_ship_days) if terms.return_address else None
    if not await repo.transition(session, row.id, (from_status,), Status.awaiting_return, decision=decision,
                                 postage_payer=payer, due_at=due, updated_at=now, **values):  # fmt: skip
        return False
    events.record(session, "aftersales.approved", _payload(row, decision=decision, postage_payer=payer))
    return True


async def reject(
    session: AsyncSession, actor: Principal, request_id: int, data: RejectIn,
    policy: AftersalesPolicy = DEFAULT_POLICY, now: dt.datetime | None = None,
) -> RequestOut:  # fmt: skip
    """The shop says no, with its reason. The buyer may escalate to ops within the escalation
    days; otherwise the request closes as rejected."""
    data = validated(data)
    reason = _words(data.reason, "reason", 2)
    row, side = await _visible(session, actor, request_id)
    _must_be(side, "shop")
    now = now or utcnow()
    if row.status == Status.pending:
        await _refuse_retracted(session, row)
    if row.status == Status.pending and row.due_at is not None and row.due_at < now:
        # Past the deadline the request is approved automatically; a late "no" cannot undo that.
        raise InvalidTransition(N_("The time to answer has passed: the request is approved automatically."),
                                code="response_deadline_passed")  # fmt: skip
    if row.status != Status.pending or not await repo.transition(
        session, row.id, (Status.pending,), Status.rejected, where=[AftersalesRequest.due_at >= now],
        decision=Resolution.rejected, responded_at=now,
        responder_id=actor.id, reject_reason=reason,
        due_at=now + dt.timedelta(days=policy.escalation_days), updated_at=now,
    ):  # fmt: skip
        raise _wrong_state()
    events.record(session, "aftersales.rejected", _payload(row))
    return await _reload(session, row.id)


# --- the buyer ---------------------------------------------------------------------------------


async def escalate(
    session: AsyncSession, buyer: Principal, request_id: int, data: EscalateIn, now: dt.datetime | None = None
) -> RequestOut:
    """The buyer asks ops to arbitrate a rejection (within the escalation days: 409 after)."""
    data = validated(data)
    row, side = await _visible(session, buyer, request_id)
    _must_be(side, "buyer")
    now = now or utcnow()
    if row.status == Status.rejected and row.due_at is not None and row.due_at < now:
        raise InvalidTransition(N_("The time to escalate this request has passed."), code="escalation_closed")
    if row.status != Status.rejected or not await repo.transition(
        session, row.id, (Status.rejected,), Status.escalated, where=[AftersalesRequest.due_at >= now],
        escalated_at=now, due_at=None, updated_at=now,
    ):  # fmt: skip
        raise _wrong_state()
    if data.note.strip():
        session.add(AftersalesMessage(request_id=row.id, author_id=buyer.id, side="buyer", body=data.note.strip(),
                                      created_at=now))  # fmt: skip
    events.record(session, "aftersales.escalated", _payload(row))
    return await _reload(session, row.id)


async def withdraw(session: AsyncSession, buyer: Principal, request_id: int) -> RequestOut:
    """The buyer drops the request (before any refund, and before the item is on its way back)."""
    row, side = await _visible(session, buyer, request_id)
    _must_be(side, "buyer")
    if row.status not in WITHDRAWABLE or not await _close(
        session, row, WITHDRAWABLE, Resolution.withdrawn, utcnow()
    ):
        raise _wrong_state()
    return await _reload(session, row.id)


async def ship_back(
    session: AsyncSession,
    buyer: Principal,
    request_id: int,
    data: ShipBackIn,
    tracker: Tracker,
    now: dt.datetime | None = None,
) -> RequestOut:
    """The buyer has sent the item back: the parcel is recorded (leg ``return``) and tracked;
    its arrival starts the refund deadline."""
    data = validated(data)
    row, side = await _visible(session, buyer, request_id)
    _must_be(side, "buyer")
    now = now or utcnow()
    if row.status != Status.awaiting_return:
        raise _wrong_state()
    if row.due_at is not None and row.due_at < now:
        raise InvalidTransition(
            N_("The time to send the item back has passed."), code="return_deadline_passed"
        )
    if await _return_address(session, row.shop_id) is None:
        raise InvalidTransition(N_("The shop has not given a return address yet; wait for it before sending."),
                                code="no_return_address")  # fmt: skip
    carrier, number = _words(data.carrier, "carrier", 2), data.tracking_no.strip().upper()
    parcel = await fulfillment.send_parcel(  # 409 tracking_in_use: the number of the parcel that brought it
        session, row.order_id, fulfillment.RETURN, carrier, number, tracker, at=now
    )
    if not await repo.transition(session, row.id, (Status.awaiting_return,), Status.return_shipped,
                                 return_carrier=carrier, return_tracking_no=number, return_shipped_at=now,
                                 return_shipment_id=parcel.id, due_at=None, updated_at=now,
                                 where=[or_(AftersalesRequest.due_at.is_(None), AftersalesRequest.due_at >= now)]):  # fmt: skip
        raise _wrong_state()
    events.record(session, "aftersales.return_shipped", _payload(row, carrier=carrier, tracking_no=number))
    return await _reload(session, row.id)


# --- the return arrives --------------------------------------------------------------------------


async def confirm_arrival(session: AsyncSession, actor: Principal, request_id: int) -> RequestOut:
    """The shop has the item back: the refund is issued at once."""
    row, side = await _visible(session, actor, request_id)
    _must_be(side, "shop")
    now = utcnow()
    if row.status != Status.return_shipped or not await repo.transition(
        session, row.id, (Status.return_shipped,), Status.refunded, resolution=row.decision, resolved_at=now,
        arrival_confirmed_at=now, arrival_confirmed_by=actor.id, return_arrived_at=row.return_arrived_at or now,
        open_slot=None, due_at=None, updated_at=now,
    ):  # fmt: skip
        raise _wrong_state()
    events.record(session, "aftersales.return_arrived", _payload(row, confirmed=True))
    await _refund(session, row, actor.id, now)
    return await _reload(session, row.id)


async def _see_arrival(session: AsyncSession, row: AftersalesRequest, policy: AftersalesPolicy) -> bool:
    """The carrier reported the return parcel delivered: record when, and refund automatically
    ``return_refund_days`` later unless the shop confirms first."""
    if row.return_shipment_id is None:
        return False
    parcels = await fulfillment.parcels_of(session, [row.order_id], fulfillment.RETURN)
    parcel = next((p for p in parcels if p.id == row.return_shipment_id), None)
    if parcel is None or parcel.delivered_at is None:
        return False
    return await note_arrival(session, row.id, parcel.delivered_at, policy)


async def note_arrival(
    session: AsyncSession, request_id: int, at: dt.datetime, policy: AftersalesPolicy
) -> bool:
    """Idempotent: only the first sighting sets the arrival and the refund deadline."""
    row = await repo.get_request(session, request_id)
    if row is None or row.status != Status.return_shipped or row.return_arrived_at is not None:
        return False
    if not await repo.set_fields(session, row.id, Status.return_shipped, AftersalesRequest.return_arrived_at.is_(None),
                                 return_arrived_at=at, due_at=at + dt.timedelta(days=policy.return_refund_days),
                                 updated_at=utcnow()):  # fmt: skip
        return False
    events.record(session, "aftersales.return_arrived", _payload(row, confirmed=False))
    return True


async def arrivals_to_note(
    session: AsyncSession, after_id: int, limit: int
) -> tuple[list[tuple[int, dt.datetime]], int | None]:
    """For the sweeper: returns on their way whose parcel the carrier has reported delivered,
    as (request id, delivered at), and the id to continue from (None at the end)."""
    rows = await repo.undated_requests(session, Status.return_shipped, after_id, limit)
    parcels = await fulfillment.parcels_of(session, [r.order_id for r in rows], fulfillment.RETURN)
    delivered = {p.id: p.delivered_at for p in parcels if p.delivered_at is not None}
    found = [(r.id, delivered[r.return_shipment_id]) for r in rows if r.return_shipment_id in delivered]
    return found, (rows[-1].id if len(rows) == limit else None)


async def auto_refund(session: AsyncSession, request_id: int, now: dt.datetime) -> bool:
    """The sweeper's step: the return arrived ``return_refund_days`` ago and the shop has not
    confirmed it: refund automatically."""
    row = await repo.get_request(session, request_id)
    if row is None or row.status != Status.return_shipped or row.due_at is None or row.due_at > now:
        return False
    if not await repo.transition(session, row.id, (Status.return_shipped,), Status.refunded, where=[AftersalesRequest.due_at <= now],
                                 resolution=row.decision, resolved_at=now, auto_refunded=True, open_slot=None,
                                 due_at=None, updated_at=now):  # fmt: skip
        return False
    await _refund(session, row, None, now, auto=True)
    return True


async def start_return_clock(
    session: AsyncSession, request_id: int, now: dt.datetime, policy: AftersalesPolicy
) -> bool:
    """The sweeper's step for an approved return whose shop had no return address: once it has
    one, the buyer's days to send the item start."""
    row = await repo.get_request(session, request_id)
    if row is None or row.status != Status.awaiting_return or row.due_at is not None:
        return False
    if await _return_address(session, row.shop_id) is None:
        return False
    return await repo.set_fields(session, row.id, Status.awaiting_return, AftersalesRequest.due_at.is_(None),
                                 due_at=now + dt.timedelta(days=policy.return_ship_days), updated_at=now)  # fmt: skip


async def clocks_to_start(session: AsyncSession, after_id: int, limit: int) -> tuple[list[int], int | None]:
    rows = await repo.undated_requests(session, Status.awaiting_return, after_id, limit)
    return [r.id for r in rows], (rows[-1].id if len(rows) == limit else None)


# --- claims the order has outgrown --------------------------------------------------------------


def receipt_confirmed(order: OrderOut) -> bool:
    """The buyer confirmed receipt themselves (确认收货). The automatic confirmation, which sets
    ``completed_at`` at or after ``auto_confirm_at``, is not the buyer saying anything."""
    return (
        order.status == "completed"
        and order.completed_at is not None
        and (order.auto_confirm_at is None or order.completed_at < order.auto_confirm_at)
    )


def claim_fits(row: AftersalesRequest | RequestOut, order: OrderOut) -> bool:
    """Whether a whole-order refund-only claim still describes its order: ``not_shipped`` while
    the order is still ``paid``; ``not_received`` while it is ``shipped`` or ``delivered`` (or
    completed automatically) and the buyer has not confirmed receipt. Line requests always fit;
    an order refunded meanwhile is left to the refund step (``already_refunded``)."""
    if row.line_id is not None or order.status not in ELIGIBLE:
        return True
    if row.reason == Reason.not_shipped:
        return order.status == "paid"
    if row.reason == Reason.not_received:
        return order.status in ("shipped", "delivered", "completed") and not receipt_confirmed(order)
    return True


def retracted(row: AftersalesRequest | RequestOut, order: OrderOut) -> bool:
    """A pending ``not_received`` claim whose buyer has since confirmed receipt: withdrawn in
    effect. It closes as ``outdated`` at the next sweep or the next look at it."""
    return (
        row.status == Status.pending
        and row.line_id is None
        and row.reason == Reason.not_received
        and receipt_confirmed(order)
    )


def is_outdated(row: AftersalesRequest, order: OrderOut, now: dt.datetime) -> bool:
    """Whether a pending whole-order claim is to close as ``outdated``: retracted by the buyer's
    confirmation of receipt (at once), or past its answer deadline and no longer fitting the
    order (instead of the automatic approval)."""
    if row.status != Status.pending or row.line_id is not None:
        return False
    due = row.due_at is not None and row.due_at <= now
    return retracted(row, order) or (due and not claim_fits(row, order))


async def _close_outdated(session: AsyncSession, row: AftersalesRequest, now: dt.datetime) -> bool:
    """Close a pending claim the order has outgrown (``outdated``): the hold goes, the buyer is
    told the order moved on and may open a return or a quality claim instead."""
    return await _close(session, row, (Status.pending,), Resolution.outdated, now)


async def _refuse_retracted(session: AsyncSession, row: AftersalesRequest) -> None:
    """The shop answering a claim the buyer has retracted by confirming receipt: 409, nothing
    changes (the claim closes as ``outdated`` when it is next read or swept)."""
    if (
        row.line_id is None
        and row.reason == Reason.not_received
        and retracted(row, await orders.load_order(session, row.order_id))
    ):
        raise InvalidTransition(N_("The buyer has confirmed receiving the order since asking: this request "
                                   "no longer applies and is closed."), code="request_outdated")  # fmt: skip


async def outdated_to_close(
    session: AsyncSession, now: dt.datetime, after_id: int, limit: int
) -> tuple[list[int], int | None]:
    """For the sweeper: pending whole-order claims to close as ``outdated`` — retracted by the
    buyer's confirmation of receipt (at once), or past the answer deadline and no longer fitting
    the order (instead of the automatic approval) — and the id to continue from."""
    rows = await repo.pending_whole_order(session, after_id, limit)
    found = await orders.orders_by_ids(session, [r.order_id for r in rows])
    ids = [r.id for r in rows if r.order_id in found and is_outdated(r, found[r.order_id], now)]
    return ids, (rows[-1].id if len(rows) == limit else None)


async def close_outdated(session: AsyncSession, request_id: int, now: dt.datetime) -> bool:
    """The sweeper's step for one of ``outdated_to_close``, checked again in its transaction."""
    row = await repo.get_request(session, request_id)
    if row is None or row.status != Status.pending or row.line_id is not None:
        return False
    if not is_outdated(row, await orders.load_order(session, row.order_id), now):
        return False
    return await _close_outdated(session, row, now)


# --- closing -----------------------------------------------------------------------------------


async def _close(
    session: AsyncSession, row: AftersalesRequest, from_statuses: tuple[str, ...], resolution: str, now: dt.datetime,
    **values: Any,
) -> bool:  # fmt: skip
    if not await repo.transition(session, row.id, from_statuses, Status.closed, resolution=resolution, resolved_at=now,
                                 open_slot=None, due_at=None, updated_at=now, **values):  # fmt: skip
        return False
    await orders.release_settlement(session, row.order_id)
    events.record(session, "aftersales.closed", _payload(row, resolution=resolution))
    return True


async def close_unsent(session: AsyncSession, request_id: int, now: dt.datetime) -> bool:
    """The sweeper's step: an approved return was not sent back in time."""
    row = await repo.get_request(session, request_id)
    if row is None or row.status != Status.awaiting_return or row.due_at is None or row.due_at > now:
        return False
    return await _close(session, row, (Status.awaiting_return,), Resolution.return_not_sent, now)


async def close_rejected(session: AsyncSession, request_id: int, now: dt.datetime) -> bool:
    """The sweeper's step: a rejection the buyer did not escalate in time stands."""
    row = await repo.get_request(session, request_id)
    if row is None or row.status != Status.rejected or row.due_at is None or row.due_at > now:
        return False
    return await _close(session, row, (Status.rejected,), Resolution.rejected, now)


async def due(session: AsyncSession, status: str, now: dt.datetime, limit: int) -> list[int]:
    return await repo.due_requests(session, status, now, limit)


# --- arbitration ---------------------------------------------------------------------------------


async def arbitrate(
    session: AsyncSession, actor: Principal, request_id: int, data: ArbitrateIn,
    policy: AftersalesPolicy = DEFAULT_POLICY,
) -> RequestOut:  # fmt: skip
    """Ops decide an escalated request: for the buyer it continues as approved (refunded now, or
    the item goes back first); for the seller it closes. Who, when and why are recorded."""
    data = validated(data)
    note = _words(data.note, "note", 2)
    if not actor.is_ops:
        raise Forbidden(N_("Only platform operations can do this."), code="ops_only")
    row, side = await _visible(session, actor, request_id)
    if side in ("buyer", "shop"):
        # Ops staff who bought the item or work for the shop are a party: a colleague decides.
        raise Forbidden(N_("You are a party to this request; another member of platform operations decides it."),
                        code="conflict_of_interest")  # fmt: skip
    if row.status != Status.escalated:
        raise _wrong_state()
    now = utcnow()
    record = {"arbitrated_at": now, "arbitrator_id": actor.id, "arbitration_note": note}
    if data.decision == "buyer":
        won = await _approve(session, row, Status.escalated, Resolution.arbitrated_buyer, actor.id, now, policy,
                             **record)  # fmt: skip
    else:
        won = await _close(session, row, (Status.escalated,), Resolution.arbitrated_seller, now,
                           decision=Resolution.arbitrated_seller, **record)  # fmt: skip
    if not won:
        raise _wrong_state()
    events.record(session, "aftersales.arbitrated", _payload(row, decision=data.decision))
    return await _reload(session, row.id)


# --- the thread --------------------------------------------------------------------------------


async def post_message(
    session: AsyncSession, actor: Principal, request_id: int, data: MessageIn, *,
    photos: Sequence[catalog.Upload] = (), media: Media | None = None,
) -> MessageOut:  # fmt: skip
    """A message from the buyer, the shop or ops on an open request, with up to 9 photos."""
    data = validated(data)
    body = _words(data.body, "body")
    row, side = await _visible(session, actor, request_id)
    if side == "care":
        raise Forbidden(
            N_("Only the buyer, the shop and platform operations write here."), code="not_a_party"
        )
    if row.status not in OPEN:
        raise _closed()
    if len(photos) > MAX_PHOTOS:
        raise ValidationFailed(N_("At most 9 photos."), field="photos", code="too_many_photos")
    message = AftersalesMessage(request_id=row.id, author_id=actor.id, side=side, body=body,
                                created_at=utcnow())  # fmt: skip
    session.add(message)
    await session.flush()
    stored = await _store_photos(session, row.id, message.id, photos, media) if photos else []
    events.record(session, "aftersales.message_posted", _payload(row, message_id=message.id, side=side))
    return MessageOut(message.id, side, actor.id, actor.display_name, message.body, message.created_at,
                      [_photo_out(p) for p in stored])  # fmt: skip


async def add_message_photo(
    session: AsyncSession,
    actor: Principal,
    request_id: int,
    message_id: int,
    upload: catalog.Upload,
    media: Media,
) -> PhotoOut:
    """A photo on one's own message (the API sends them one by one after the text)."""
    row, _ = await _visible(session, actor, request_id)
    message = await repo.get_message(session, message_id)
    if message is None or message.request_id != row.id or message.author_id != actor.id:
        raise NotFound(N_("We could not find that message."), code="message_not_found")
    if row.status not in OPEN:
        raise _closed()
    (photo,) = await _store_photos(session, row.id, message.id, [upload], media)
    return _photo_out(photo)


# --- refunds -----------------------------------------------------------------------------------


def allocate(order: OrderOut, row: AftersalesRequest) -> tuple[int, dict[int, int], int]:
    """What to refund now for ``row`` and how: (amount, {line id: goods part}, shipping part).

    The amount asked, capped by what is still refundable today (other refunds may have come
    first). A line's request takes its goods part from the line and any rest from shipping
    (shipping only for the seller's cause). A whole-order request spreads its goods part over
    the lines' remaining amounts (largest remainder, so the fen add up) and the rest over the
    remaining shipping; when earlier refunds of the order were not allocated to lines, the parts
    would overstate what is left, so none are given and settlement spreads it pro rata."""
    left = order.paid_fen - order.refunded_fen
    ship_left = max(order.shipping_fen - order.shipping_refunded_fen, 0)
    remaining = {line.id: line.line_total_fen - line.refunded_fen for line in order.lines}
    if order.status not in ELIGIBLE or left <= 0:
        return 0, {}, 0
    shipping_ok = row.reason in SELLER_CAUSES or row.reason == Reason.not_shipped
    if row.line_id is not None:
        goods = min(row.amount_fen, max(remaining.get(row.line_id, 0), 0), left)
        ship = min(row.amount_fen - goods, ship_left if shipping_ok else 0, left - goods)
        return goods + ship, ({row.line_id: goods} if goods else {}), ship
    pool = sum(max(v, 0) for v in remaining.values())
    unallocated = (
        order.refunded_fen - sum(line.refunded_fen for line in order.lines) - order.shipping_refunded_fen
    )
    amount = min(row.amount_fen, pool + ship_left, left)
    if unallocated > 0:
        return amount, {}, 0
    goods = min(amount, pool)
    shares = {i: max(v, 0) * goods for i, v in remaining.items()}
    parts = {i: s // pool if pool else 0 for i, s in shares.items()}
    for i in sorted(shares, key=lambda i: (-(shares[i] % pool if pool else 0), i))[
        : goods - sum(parts.values())
    ]:
        parts[i] += 1
    return amount, {i: v for i, v in parts.items() if v > 0}, amount - goods


async def _refund(
    session: AsyncSession,
    row: AftersalesRequest,
    actor_id: int | None,
    now: dt.datetime,
    *,
    auto: bool = False,
) -> None:
    """Pay the buyer back for a request that has just become ``refunded`` (by the winning
    transition), release the order's settlement hold. If nothing is left to refund (the order was
    refunded by other means meanwhile) the request closes as ``already_refunded``.

    The payment's refund lock is taken before the order is read: two requests of one order
    approved at once are sized one after the other, the second capped by what the first left
    (lock order: payment intent, then order)."""
    await payments.lock_refunds(session, row.order_id)
    await orders.lock_order(session, row.order_id)  # the shop shipping meanwhile waits for us
    order = await orders.load_order(session, row.order_id)
    if actor_id is None and not claim_fits(row, order):  # decided by a deadline, not a person
        # The order moved on between the sweeper's look and this lock (the shop shipped): no
        # automatic refund. Rolled back; the next sweep closes the claim as outdated.
        raise InvalidTransition("the order moved on meanwhile", code="request_outdated")
    amount, lines, shipping = allocate(order, row)
    if amount <= 0:
        await repo.transition(session, row.id, (Status.refunded,), Status.closed,
                              resolution=Resolution.already_refunded)  # fmt: skip
        await orders.release_settlement(session, row.order_id)
        events.record(session, "aftersales.closed", _payload(row, resolution=Resolution.already_refunded))
        return
    refund = await payments.refund_order(
        session, row.order_id, amount, f"after-sales request {row.id}", f"aftersales:{row.id}",
        actor_id=actor_id, lines=lines or None, shipping_fen=shipping,
    )  # fmt: skip
    await repo.set_fields(session, row.id, Status.refunded, AftersalesRequest.refund_fen == 0, refund_fen=amount,
                          refund_id=refund.id)  # fmt: skip
    await orders.release_settlement(session, row.order_id)
    events.record(session, "aftersales.refunded", _payload(row, refund_fen=amount, auto=auto))


async def _reload(session: AsyncSession, request_id: int) -> RequestOut:
    """The request as its last conditional UPDATE left it. Only a line's request needs its order,
    for the line's title: read with the lines, without the timeline."""
    row = await repo.get_request(session, request_id)
    assert row is not None
    order = None
    if row.line_id is not None:
        order = (await orders.orders_by_ids(session, [row.order_id])).get(row.order_id)
    return request_out(row, order, await repo.photos_of(session, [row.id]))


# --- trust scores -----------------------------------------------------------------------------

# The causes that say something about the goods (the product dimension of the scores); a parcel
# not sent or not received is a logistics failure, which the shipping indicators already count.
PRODUCT_CAUSES = frozenset({Reason.quality, Reason.wrong_item, Reason.not_as_described})
# Endings the shop did not handle: the buyer withdrew, or the claim was outgrown.
_NOT_HANDLED = frozenset({Resolution.withdrawn, Resolution.outdated})
_ENDS_AT_ANSWER = frozenset({Resolution.rejected, Resolution.return_not_sent})


@dataclass(frozen=True)
class ScoreRequest:
    """What the trust scores read of one ended request (docs/scores.md)."""

    order_id: int
    line_id: int | None  # None: the whole order
    resolved_at: dt.datetime
    quality_refund: bool  # refunded, and the goods were the seller's fault
    handled_seconds: int | None  # the shop's handling time; None when the shop did not handle it
    lost_dispute_at: dt.datetime | None  # ops decided for the buyer


def _handled_seconds(r: Any) -> int | None:
    """Request to resolution, as far as the shop controls it: a rejection ends at the shop's
    answer, and so does an approved return the buyer never sent (the wait for the parcel is the
    buyer's); an arbitration at ops' decision; an approved return does not count the days the
    parcel spent with the buyer and the carrier (approval to arrival). An automatic approval
    counts in full up to its deadline: the shop let it run out."""
    if r.resolution in _NOT_HANDLED:
        return None
    if r.resolution in _ENDS_AT_ANSWER and r.responded_at is not None:
        end = r.responded_at
    elif r.arbitrated_at is not None:
        end = r.arbitrated_at
    else:
        end = r.resolved_at
    seconds = (end - r.created_at).total_seconds()
    if r.return_arrived_at is not None and r.responded_at is not None and end >= r.return_arrived_at:
        seconds -= max(0.0, (r.return_arrived_at - r.responded_at).total_seconds())
    return max(0, int(seconds))


async def score_requests(session: AsyncSession, order_ids: list[int]) -> list[ScoreRequest]:
    return [
        ScoreRequest(
            r.order_id,
            r.line_id,
            r.resolved_at,
            r.status == Status.refunded and r.seller_cause and r.reason in PRODUCT_CAUSES,
            _handled_seconds(r),
            r.arbitrated_at if r.resolution == Resolution.arbitrated_buyer else None,
        )  # fmt: skip
        for r in await repo.score_requests(session, order_ids)
    ]
