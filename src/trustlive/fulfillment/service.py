"""Use cases of fulfillment: ship an order (and have its parcel tracked), apply tracking events,
show a parcel's journey; the QC warehouse (先鉴后发): ops' set-up, routing, the inspector's
console, the labs' signed result callbacks, the turnaround deadline and public certificates."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

import msgspec
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive import events
from trustlive.accounts import service as accounts
from trustlive.accounts.service import Principal
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
from trustlive.fulfillment import repository as repo
from trustlive.fulfillment.models import (
    STAGES,
    QcCase,
    QcInspector,
    QcLab,
    QcLabEvent,
    QcPhoto,
    QcRoute,
    QcWarehouse,
    Shipment,
    TrackingEvent,
)
from trustlive.fulfillment.schemas import (
    Carrier,
    CaseOut,
    CertificateOut,
    InspectionIn,
    InspectorIn,
    InspectorOut,
    InspectorQueue,
    LabAck,
    LabIn,
    LabOut,
    LabPublic,
    LabResultData,
    LabResultEvent,
    ParcelChoice,
    ParcelIn,
    PhotoOut,
    QcPanel,
    QcSetupOut,
    ReceiveIn,
    RouteIn,
    RouteOut,
    ShipmentOut,
    TrackingAck,
    TrackingEventOut,
    TrackingUpdate,
    WarehouseIn,
    WarehouseOut,
)
from trustlive.fulfillment.tracking import Tracker
from trustlive.ledger import service as ledger
from trustlive.orders import service as orders
from trustlive.orders.schemas import OrderOut, ShipIn
from trustlive.payments import service as payments
from trustlive.signing import check_signature

# A shipment's leg: where the parcel goes. The seller ships ``to_buyer``, or ``to_qc`` when the
# order must be inspected first (先鉴后发); the QC warehouse forwards a passed item ``qc_to_buyer``
# and sends a failed one back ``qc_to_seller``; a buyer's return goes back ``return``.
TO_BUYER = "to_buyer"
TO_QC = "to_qc"
QC_TO_BUYER = "qc_to_buyer"
QC_TO_SELLER = "qc_to_seller"
RETURN = "return"
LEGS = (TO_BUYER, TO_QC, QC_TO_BUYER, QC_TO_SELLER, RETURN)
# The carriers shops and warehouses ship with and buyers send returns with; the code is stored on
# the parcel (the tracking service reports by it), the name is shown translated.
CARRIERS = {
    "SF": N_("SF Express"),
    "ZTO": N_("ZTO Express"),
    "YTO": N_("YTO Express"),
    "YD": N_("Yunda Express"),
    "EMS": N_("China Post EMS"),
    "JD": N_("JD Logistics"),
}
assert set(CARRIERS) == set(get_args(Carrier)), "schemas.Carrier lists the same codes"
# Legs whose delivery is the buyer receiving the order (starts auto-confirm).
DELIVERS_ORDER = frozenset({TO_BUYER, QC_TO_BUYER})


async def ship(
    session: AsyncSession, actor: Principal, order_id: int, data: ShipIn, tracker: Tracker
) -> OrderOut:
    """The seller hands the parcel to the carrier: the order moves to shipped (its rules and
    errors are the orders domain's), a shipment records the parcel, and the tracking service is
    asked to report its stages. An order that must be inspected first (先鉴后发) goes to its QC
    warehouse instead (leg ``to_qc``) and opens its inspection case; 409 ``no_qc_warehouse`` (and
    nothing shipped) when no active warehouse takes its category."""
    order = await orders.ship_order(session, actor, order_id, data)
    assert order.carrier is not None and order.tracking_no is not None and order.shipped_at is not None
    leg = TO_BUYER
    if order.requires_inspection:
        warehouse = await _route(session, order)
        if warehouse is None:
            raise Conflict(N_("No QC warehouse takes this category yet, so it cannot ship. Please contact the "
                              "platform."), code="no_qc_warehouse")  # fmt: skip
        leg = TO_QC
        await _open_case(session, order, warehouse)
    session.add(Shipment(order_id=order.id, leg=leg, carrier=order.carrier, tracking_no=order.tracking_no,
                         stage=STAGES[0], stage_at=order.shipped_at, created_at=utcnow()))  # fmt: skip
    tracker.subscribe(session, order.carrier, order.tracking_no, order.shipped_at)
    await session.flush()
    return order


async def send_parcel(
    session: AsyncSession, order_id: int, leg: str, carrier: str, tracking_no: str, tracker: Tracker,
    at: dt.datetime | None = None,
) -> Shipment:  # fmt: skip
    """For other domains (the QC warehouse's forward and return legs, a buyer's return): record a
    parcel of ``order_id`` on its ``leg`` and have the tracking service report its stages. The
    caller has checked who may send it; the order's own status is not touched here.

    A parcel has a waybill of its own: a number one of the order's parcels on another leg has
    already (compared normalised, whatever the carrier) is 409 ``tracking_in_use``, since one
    number would mix their journeys. Parcels on the same leg may share one (a box carrying two
    returns of the order, as a seller's box may carry several orders)."""
    if leg not in LEGS:
        raise ValueError(f"unknown leg {leg!r}")
    number = normalise_number(tracking_no)
    if any(
        s.leg != leg and normalise_number(s.tracking_no) == number
        for s in await repo.shipments_of(session, order_id)
    ):
        raise Conflict(N_("That tracking number is already on another parcel of this order; enter the new parcel's."),
                       code="tracking_in_use", field="tracking_no")  # fmt: skip
    at = at or utcnow()
    shipment = Shipment(order_id=order_id, leg=leg, carrier=carrier, tracking_no=tracking_no, stage=STAGES[0],
                        stage_at=at, created_at=at)  # fmt: skip
    session.add(shipment)
    tracker.subscribe(session, carrier, tracking_no, at)
    await session.flush()
    return shipment


async def parcels_of(
    session: AsyncSession, order_ids: list[int], leg: str | None = None
) -> list[ShipmentOut]:
    """For other domains: the parcels of these orders (on one leg, if given), without their
    journeys, oldest first. No permission check."""
    return [_shipment_out(s, []) for s in await repo.shipments_of_orders(session, order_ids, leg)]


async def handle_webhook(
    session: AsyncSession,
    tracker: Tracker,
    headers: Mapping[str, str],
    body: bytes,
    now: dt.datetime | None = None,
    policy: orders.OrderPolicy = orders.DEFAULT_POLICY,
) -> TrackingAck:
    """Verify, dedupe and apply one tracking event. 400 (nothing changes) for a bad signature or
    payload; a repeated event id is acknowledged as ``duplicate`` and changes nothing."""
    update = tracker.verify_webhook(headers, body, now)
    shipments = await repo.shipments_by_tracking(session, update.carrier, update.tracking_no)
    record = TrackingEvent(
        provider=tracker.name, event_id=update.id, carrier=update.carrier, tracking_no=update.tracking_no,
        stage=update.stage, at=update.at, location=update.location, received_at=now or utcnow(),
        outcome="unknown_shipment" if not shipments else "stale",
    )  # fmt: skip
    if (
        await add_once(session, record, lambda: repo.tracking_event(session, tracker.name, update.id))
        is not None
    ):
        return TrackingAck(True, update.id, "duplicate")
    for shipment in shipments:
        if await _advance(session, shipment, update, policy):
            record.outcome = "applied"
    await session.flush()
    return TrackingAck(True, update.id, record.outcome)


async def _advance(
    session: AsyncSession, shipment: Shipment, update: TrackingUpdate, policy: orders.OrderPolicy
) -> bool:
    """Move the shipment forward to the event's stage; an older stage arriving late is stale."""
    if STAGES.index(update.stage) <= STAGES.index(shipment.stage):
        return False
    shipment.stage, shipment.stage_at = update.stage, update.at
    if update.stage == "delivered":
        shipment.delivered_at = update.at
        if shipment.leg in DELIVERS_ORDER:
            await orders.carrier_delivered(session, shipment.order_id, update.at, shipment.carrier, policy)
    return True


async def shipments_of_order(session: AsyncSession, viewer: Principal, order_id: int) -> list[ShipmentOut]:
    """The order's parcels with their journeys, for the buyer, the shop and ops (404 for anyone
    else, like the order itself)."""
    return await journeys(session, await orders.get_order(session, viewer, order_id))


async def journeys(session: AsyncSession, order: OrderOut) -> list[ShipmentOut]:
    """The parcels of an order its reader was already allowed to see (``order`` comes from
    ``orders.get_order``), for pages that show the order anyway."""
    shipments = await repo.shipments_of(session, order.id)
    events = await repo.events_of(session, [(s.carrier, s.tracking_no) for s in shipments])
    return [
        _shipment_out(s, [TrackingEventOut(e.stage, e.at, e.location) for e in events
                          if (e.carrier, e.tracking_no) == (s.carrier, s.tracking_no)])
        for s in shipments
    ]  # fmt: skip


def _shipment_out(s: Shipment, events: list[TrackingEventOut]) -> ShipmentOut:
    return ShipmentOut(s.id, s.order_id, s.leg, s.carrier, s.tracking_no, s.stage, s.stage_at, s.created_at,
                       s.delivered_at, events)  # fmt: skip


# --- the QC warehouse (先鉴后发) ---------------------------------------------------------------
#
# An order whose category must be inspected ships seller → QC warehouse (leg to_qc), which opens
# its case. The warehouse's inspector receives the parcel (the turnaround clock starts), records
# the inspection and its certificate (or the lab posts it, signed), then forwards a passed item
# to the buyer (qc_to_buyer) or returns a failed one to the shop (qc_to_seller); a failure
# refunds the buyer in full at once. Every move of a case is a conditional UPDATE on its status.


INBOUND, RECEIVED, PASSED, FAILED, FORWARDED, RETURNED = (
    "inbound", "received", "passed", "failed", "forwarded", "returned",
)  # fmt: skip
MAX_PHOTOS = 9
QUEUE_LIMIT = 200
LAB_SIGNATURE_HEADER = "x-lab-signature"
_CMA_RE = re.compile(r"[0-9]{12}")
_CNAS_RE = re.compile(r"L[0-9]{4,5}")
_CERTIFICATE_RE = re.compile(r"[A-Z0-9][A-Z0-9-]{3,39}")


@dataclass(frozen=True)
class QcPolicy:
    """The QC warehouse's configuration (docs/inspection.md): the turnaround from arrival to
    result, the lab's fee per inspection and who pays it, and the key the labs' callback secrets
    are derived from."""

    turnaround_hours: int = 48
    fee_fen: int = 2000
    fee_payer: str = "shop"  # shop | platform (config.py checks both)
    secret_key: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> QcPolicy:
        return cls(
            settings.qc_turnaround_hours, settings.qc_fee_fen, settings.qc_fee_payer, settings.secret_key
        )


def lab_secret(policy: QcPolicy, lab_id: int) -> str:
    """The key a lab signs its result callbacks with: derived from the app's secret key and the
    lab's id, so each lab has its own and none is stored."""
    label = f"trustlive/qc/lab/{lab_id}".encode()
    return hmac.new(policy.secret_key.encode(), label, hashlib.sha256).hexdigest()


def lab_path(lab_id: int) -> str:
    return f"/api/v1/qc/labs/{lab_id}/results"


def normalise_number(number: str) -> str:
    """A lab's certificate number or a waybill number as we store, look up and compare it: no
    spaces, upper case."""
    return "".join(number.split()).upper()


def check_certificate(number: str) -> str:
    """The certificate number normalised, or 422 ``bad_certificate_no``: checked before anything
    is stored (a lab's event row holds it too)."""
    normalised = normalise_number(number)
    if not _CERTIFICATE_RE.fullmatch(normalised):
        raise ValidationFailed(N_("A certificate number is 4 to 40 letters, digits or dashes."),
                               field="certificate_no", code="bad_certificate_no")  # fmt: skip
    return normalised


def weight_text(weight_mg: int | None) -> str | None:
    """Milligrams as grams with two decimals: 12340 -> "12.34"."""
    if weight_mg is None:
        return None
    return f"{weight_mg // 1000}.{(weight_mg % 1000) // 10:02d}"


def _require_ops(actor: Principal) -> None:
    if not actor.is_ops:
        raise Forbidden(N_("Only platform operations can do this."), code="ops_only")


# --- set-up: labs -----------------------------------------------------------------------------


def _accreditation(data: LabIn) -> tuple[str | None, str | None]:
    """The CMA and CNAS numbers as labs write them ("CNAS L1234" is L1234); at least one."""
    cma = "".join((data.cma_no or "").split()) or None
    cnas = "".join((data.cnas_no or "").split()).upper().removeprefix("CNAS").lstrip("-:") or None
    if cma is not None and not _CMA_RE.fullmatch(cma):
        raise ValidationFailed(N_("A CMA number has 12 digits."), field="cma_no")
    if cnas is not None and not _CNAS_RE.fullmatch(cnas):
        raise ValidationFailed(
            N_("A CNAS laboratory number is L and 4 or 5 digits, e.g. L1234."), field="cnas_no"
        )
    if cma is None and cnas is None:
        raise ValidationFailed(N_("A lab needs its CMA number, its CNAS number or both."), field="cma_no",
                               code="accreditation_required")  # fmt: skip
    return cma, cnas


def lab_out(lab: QcLab, policy: QcPolicy | None = None) -> LabOut:
    out = LabOut(lab.id, lab.name, lab.cma_no, lab.cnas_no, lab.is_active)
    if policy is not None:  # ops only
        out.callback_path, out.callback_secret = lab_path(lab.id), lab_secret(policy, lab.id)
    return out


def _lab_public(lab: QcLab) -> LabPublic:
    return LabPublic(lab.name, lab.cma_no, lab.cnas_no)


async def _save_unique(
    session: AsyncSession, change: Callable[[], None], message: str, code: str, field: str
) -> None:
    """Make ``change`` (an add, assignments) and flush it in a savepoint: a unique name taken by
    a concurrent request is a 409, not a 500. The change is made inside the savepoint because
    ``begin_nested`` first flushes what is pending, outside it."""
    try:
        async with session.begin_nested():
            change()
            await session.flush()
    except IntegrityError:
        raise Conflict(message, code=code, field=field) from None


async def create_lab(session: AsyncSession, actor: Principal, data: LabIn, policy: QcPolicy) -> LabOut:
    _require_ops(actor)
    data = validated(data)
    cma, cnas = _accreditation(data)
    name = data.name.strip()
    if await repo.lab_by_name(session, name) is not None:
        raise Conflict(N_("Another lab already has this name."), code="lab_name_taken", field="name")
    lab = QcLab(name=name, cma_no=cma, cnas_no=cnas, is_active=data.is_active)
    await _save_unique(
        session, lambda: session.add(lab), N_("Another lab already has this name."), "lab_name_taken", "name"
    )
    return lab_out(lab, policy)


async def _lab(session: AsyncSession, lab_id: int, field: str | None = None) -> QcLab:
    lab = await repo.get_lab(session, lab_id)
    if lab is None:
        raise NotFound(N_("We could not find that lab."), code="lab_not_found", field=field)
    return lab


async def get_lab(session: AsyncSession, actor: Principal, lab_id: int, policy: QcPolicy) -> LabOut:
    _require_ops(actor)
    return lab_out(await _lab(session, lab_id), policy)


async def update_lab(
    session: AsyncSession, actor: Principal, lab_id: int, data: LabIn, policy: QcPolicy
) -> LabOut:
    _require_ops(actor)
    data = validated(data)
    lab = await _lab(session, lab_id)
    cma, cnas = _accreditation(data)
    name = data.name.strip()
    other = await repo.lab_by_name(session, name)
    if other is not None and other.id != lab.id:
        raise Conflict(N_("Another lab already has this name."), code="lab_name_taken", field="name")

    def change() -> None:
        lab.name, lab.cma_no, lab.cnas_no, lab.is_active = name, cma, cnas, data.is_active

    await _save_unique(session, change, N_("Another lab already has this name."), "lab_name_taken", "name")
    return lab_out(lab, policy)


# --- set-up: warehouses, routes, inspectors ---------------------------------------------------


async def _warehouses_out(
    session: AsyncSession, warehouses: list[QcWarehouse], routes: list[QcRoute] | None = None
) -> list[WarehouseOut]:
    """Warehouses with their lab's name, their inspectors and the categories routed to them
    (four queries whatever the number; three when the caller has the routes)."""
    ids = [w.id for w in warehouses]
    labs = await repo.labs_by_ids(session, [w.lab_id for w in warehouses])
    staff = await repo.inspectors_of(session, ids)
    users = await accounts.users_by_ids(session, sorted({i.user_id for i in staff}))
    if routes is None:
        routes = await repo.list_routes(session) if warehouses else []
    out = []
    for w in warehouses:
        people = [
            InspectorOut(i.user_id, users[i.user_id].username, users[i.user_id].display_name)
            for i in staff
            if i.warehouse_id == w.id and i.user_id in users
        ]
        routed = [r.category_id for r in routes if r.warehouse_id == w.id]
        lab = labs.get(w.lab_id)
        out.append(WarehouseOut(w.id, w.name, w.recipient, w.phone, w.region, w.detail, w.lab_id,
                                lab.name if lab else "", w.is_active, w.is_default, people, routed))  # fmt: skip
    return out


async def setup(session: AsyncSession, actor: Principal, policy: QcPolicy) -> QcSetupOut:
    """Everything ops manage: labs, warehouses (with inspectors and routed categories), routes."""
    _require_ops(actor)
    warehouses = await repo.list_warehouses(session)
    routes = await repo.list_routes(session)
    default = next((w.id for w in warehouses if w.is_default), None)
    return QcSetupOut(
        [lab_out(lab, policy) for lab in await repo.list_labs(session)],
        await _warehouses_out(session, warehouses, routes),
        [RouteOut(r.category_id, r.warehouse_id) for r in routes],
        default,
    )


async def list_labs(session: AsyncSession, actor: Principal) -> list[LabOut]:
    """The labs, for ops' warehouse forms (without their callback keys)."""
    _require_ops(actor)
    return [lab_out(lab) for lab in await repo.list_labs(session)]


async def _warehouse(session: AsyncSession, warehouse_id: int, field: str | None = None) -> QcWarehouse:
    warehouse = await repo.get_warehouse(session, warehouse_id)
    if warehouse is None:
        raise NotFound(N_("We could not find that QC warehouse."), code="warehouse_not_found", field=field)
    return warehouse


async def get_warehouse(session: AsyncSession, actor: Principal, warehouse_id: int) -> WarehouseOut:
    _require_ops(actor)
    return (await _warehouses_out(session, [await _warehouse(session, warehouse_id)]))[0]


async def _apply_warehouse(session: AsyncSession, warehouse: QcWarehouse, data: WarehouseIn) -> None:
    """Check and store a new or edited warehouse (one flush, in a savepoint): a name or the
    default taken by a concurrent request is a 409 of its own, not a 500."""
    lab = await _lab(session, data.lab_id, field="lab_id")
    if not lab.is_active and data.is_active:
        raise ValidationFailed(
            N_("That lab is closed; choose an active one."), field="lab_id", code="lab_inactive"
        )
    if data.is_default and not data.is_active:
        raise ValidationFailed(N_("The default warehouse must be open."), field="is_default",
                               code="default_inactive")  # fmt: skip
    name = data.name.strip()
    other = await repo.warehouse_by_name(session, name)
    if other is not None and other.id != warehouse.id:
        raise Conflict(N_("Another QC warehouse already has this name."), code="warehouse_name_taken",
                       field="name")  # fmt: skip
    own_id = warehouse.id  # None for a new one
    try:
        # Every change inside the savepoint (``begin_nested`` flushes what is pending first).
        async with session.begin_nested():
            if data.is_default and not warehouse.is_default:
                await repo.clear_default(session, own_id)  # before our default is flushed
            warehouse.name, warehouse.lab_id, warehouse.is_active = name, lab.id, data.is_active
            warehouse.recipient, warehouse.phone = data.recipient.strip(), data.phone.strip()
            warehouse.region, warehouse.detail = data.region.strip(), data.detail.strip()
            warehouse.is_default = data.is_default
            session.add(warehouse)
            await session.flush()
    except IntegrityError:
        with session.no_autoflush:
            twin = await repo.warehouse_by_name(session, name)
        if twin is not None and twin.id != own_id:
            raise Conflict(N_("Another QC warehouse already has this name."), code="warehouse_name_taken",
                           field="name") from None  # fmt: skip
        if data.is_default:  # uq_qc_warehouses_default: another became the default meanwhile
            raise Conflict(N_("Another warehouse was made the default at the same time. Reload the page and try "
                              "again."), code="default_taken", field="is_default") from None  # fmt: skip
        raise


async def create_warehouse(session: AsyncSession, actor: Principal, data: WarehouseIn) -> WarehouseOut:
    _require_ops(actor)
    data = validated(data)
    warehouse = QcWarehouse(is_default=False)
    await _apply_warehouse(session, warehouse, data)
    return (await _warehouses_out(session, [warehouse]))[0]


async def update_warehouse(
    session: AsyncSession, actor: Principal, warehouse_id: int, data: WarehouseIn
) -> WarehouseOut:
    _require_ops(actor)
    data = validated(data)
    warehouse = await _warehouse(session, warehouse_id)
    await _apply_warehouse(session, warehouse, data)
    return (await _warehouses_out(session, [warehouse]))[0]


async def set_route(session: AsyncSession, actor: Principal, data: RouteIn) -> list[RouteOut]:
    """Route an inspection category to a warehouse, or (``warehouse_id`` null) back to the default."""
    _require_ops(actor)
    data = validated(data)
    category = await catalog.get_category(session, data.category_id)
    if not category.requires_inspection:
        raise ValidationFailed(N_("Only categories that require inspection are routed to a QC warehouse."),
                               field="category_id", code="not_inspected")  # fmt: skip
    if data.warehouse_id is None:
        await repo.delete_route(session, category.id)
    else:
        warehouse = await _warehouse(session, data.warehouse_id, field="warehouse_id")
        # One statement (an upsert), so two first routes of a category at once do not collide.
        await repo.put_route(session, category.id, warehouse.id, utcnow())
    return [RouteOut(r.category_id, r.warehouse_id) for r in await repo.list_routes(session)]


async def add_inspector(
    session: AsyncSession, actor: Principal, warehouse_id: int, data: InspectorIn
) -> WarehouseOut:
    """Assign an account holding the inspector role (ops grant it on the users page) to a
    warehouse; 422 ``not_an_inspector`` for anyone else. Assigning twice changes nothing."""
    _require_ops(actor)
    data = validated(data)
    warehouse = await _warehouse(session, warehouse_id)
    if data.user_id is not None:
        user = await accounts.get_user(session, data.user_id)
        field = "user_id"
    elif data.username:
        user = await accounts.get_user_by_username(session, data.username)
        field = "username"
    else:
        raise ValidationFailed(N_("Name the inspector's account."), field="username")
    if "inspector" not in await accounts.roles_of(session, user.id):
        raise ValidationFailed(N_("That account does not hold the inspector role. Grant it on the users page "
                                  "first."), field=field, code="not_an_inspector")  # fmt: skip
    if await repo.inspector(session, warehouse.id, user.id) is None:
        # A concurrent assignment of the same account may commit first: the result is the same.
        row = QcInspector(warehouse_id=warehouse.id, user_id=user.id, added_by_id=actor.id, added_at=utcnow())
        await add_once(session, row, lambda: repo.inspector(session, warehouse.id, user.id))
    return (await _warehouses_out(session, [warehouse]))[0]


async def remove_inspector(
    session: AsyncSession, actor: Principal, warehouse_id: int, user_id: int
) -> WarehouseOut:
    _require_ops(actor)
    warehouse = await _warehouse(session, warehouse_id)
    row = await repo.inspector(session, warehouse.id, user_id)
    if row is None:
        raise NotFound(N_("That account does not work at this warehouse."), code="inspector_not_found")
    await session.delete(row)
    await session.flush()
    return (await _warehouses_out(session, [warehouse]))[0]


async def overdue(session: AsyncSession, actor: Principal, now: dt.datetime | None = None) -> list[CaseOut]:
    """Ops' alert list: received items past their turnaround deadline without a result."""
    _require_ops(actor)
    now = now or utcnow()
    return await _cases_out(session, await repo.overdue_cases(session, now, QUEUE_LIMIT), now)


# --- routing and shipping to the warehouse ----------------------------------------------------


async def _route(session: AsyncSession, order: OrderOut) -> QcWarehouse | None:
    """The open warehouse for the order: its inspected lines in order, each line's category and
    then that category's parent, the first with a route to an open warehouse; else the default
    warehouse if it is open (docs/inspection.md, "Routing")."""
    sku_ids = [line.sku_id for line in order.lines if line.requires_inspection]
    skus = await catalog.skus_for_sale(session, sku_ids)
    categories = {c.id: c for c in await catalog.list_categories(session, include_inactive=True)}
    candidates: list[int] = []
    for sku_id in sku_ids:
        if sku_id in skus:
            category_id = skus[sku_id].category_id
            parent = categories[category_id].parent_id if category_id in categories else None
            candidates += [category_id] + ([parent] if parent else [])
    routes = await repo.routes_for(session, candidates)
    warehouses = await repo.warehouses_by_ids(session, list(routes.values()))
    for category_id in candidates:
        warehouse = warehouses.get(routes.get(category_id, 0))
        if warehouse is not None and warehouse.is_active:
            return warehouse
    default = await repo.default_warehouse(session)
    return default if default is not None and default.is_active else None


async def _open_case(session: AsyncSession, order: OrderOut, warehouse: QcWarehouse) -> QcCase:
    assert order.carrier is not None and order.tracking_no is not None
    # The number is stored normalised: scans compare it as is, through ix_qc_cases_inbound.
    case = QcCase(order_id=order.id, shop_id=order.shop_id, warehouse_id=warehouse.id, status=INBOUND,
                  inbound_carrier=order.carrier, inbound_tracking_no=normalise_number(order.tracking_no),
                  notes="", fee_fen=0, refunded_fen=0, created_at=utcnow())  # fmt: skip
    session.add(case)
    await session.flush()  # orders.uq_qc_cases_order_id: one case per order (ship_order moved it once)
    events.record(session, "fulfillment.inspection_opened",
                  {"case_id": case.id, "order_id": order.id, "shop_id": order.shop_id, "warehouse_id": warehouse.id})  # fmt: skip
    return case


# --- reading cases ----------------------------------------------------------------------------


async def _cases_out(
    session: AsyncSession, cases: list[QcCase], now: dt.datetime | None = None, *, send_to: bool = False,
    order: OrderOut | None = None,
) -> list[CaseOut]:  # fmt: skip
    """Cases with their warehouse, lab, items, photos and parcels, in a fixed number of queries
    (one fewer when the caller has the cases' ``order`` already)."""
    if not cases:
        return []
    now = now or utcnow()
    order_ids = [c.order_id for c in cases]
    warehouses = await repo.warehouses_by_ids(session, [c.warehouse_id for c in cases])
    labs = await repo.labs_by_ids(
        session,
        [c.lab_id or warehouses[c.warehouse_id].lab_id for c in cases if c.warehouse_id in warehouses],
    )
    if order is not None and set(order_ids) == {order.id}:
        found = {order.id: order}
    else:
        found = await orders.orders_by_ids(session, order_ids)
    photos = await repo.photos_of(session, [c.id for c in cases])
    parcels = await parcels_of(session, order_ids)
    out = []
    for c in cases:
        warehouse = warehouses.get(c.warehouse_id)
        lab = labs.get(c.lab_id or (warehouse.lab_id if warehouse else 0))
        order = found.get(c.order_id)
        inbound = [p for p in parcels if p.order_id == c.order_id and p.leg == TO_QC]
        onward = [p for p in parcels if p.order_id == c.order_id and p.leg in (QC_TO_BUYER, QC_TO_SELLER)]
        to_return = c.status in (RECEIVED, PASSED) and _gone(order)
        out.append(CaseOut(
            id=c.id, order_id=c.order_id, shop_id=c.shop_id, warehouse_id=c.warehouse_id,
            warehouse_name=warehouse.name if warehouse else "", status=c.status, inbound_carrier=c.inbound_carrier,
            inbound_tracking_no=c.inbound_tracking_no, inbound_stage=inbound[-1].stage if inbound else STAGES[0],
            items=[line.title for line in order.lines] if order else [], created_at=c.created_at,
            received_at=c.received_at, due_at=c.due_at,
            overdue=c.status == RECEIVED and c.due_at is not None and c.due_at <= now and not to_return,
            overdue_alerted_at=c.overdue_alerted_at, result=c.result, certificate_no=c.certificate_no,
            material=c.material, weight_mg=c.weight_mg, weight_g=weight_text(c.weight_mg), notes=c.notes,
            lab=_lab_public(lab) if lab else None, inspected_at=c.inspected_at, source=c.source, fee_fen=c.fee_fen,
            fee_payer=c.fee_payer, refunded_fen=c.refunded_fen, forwarded_at=c.forwarded_at,
            returned_at=c.returned_at,
            photos=[PhotoOut(p.id, f"/media/{p.path}", p.width, p.height) for p in photos if p.case_id == c.id],
            parcels=onward, order_status=order.status if order else "", to_return=to_return,
        ))  # fmt: skip
    if send_to:
        for item in out:
            if item.status == FAILED or item.to_return:
                item.send_to = (
                    await orders.get_shop_terms(session, item.shop_id, private=True)
                ).return_address
            elif item.status == PASSED and item.order_id in found:
                item.send_to = dict(found[item.order_id].address)
    return out


def _gone(order: OrderOut | None) -> bool:
    """The buyer has had every fen back: the item goes back to the shop, no result is awaited.
    The one rule; pages and lists read it as ``CaseOut.to_return`` (the SQL of the overdue
    queries as ``repo.GONE``)."""
    return order is not None and order.status in repo.GONE


async def _case_for(session: AsyncSession, actor: Principal, case_id: int, *, lock: bool = False) -> QcCase:
    """The case if the actor works at its warehouse (ops may read any); 404 otherwise, so an
    inspector learns nothing about other warehouses' parcels."""
    case = await repo.get_case(session, case_id, lock=lock)
    if case is None or not (
        (actor.is_ops and not lock) or case.warehouse_id in await repo.warehouse_ids_of(session, actor.id)
    ):
        raise NotFound(N_("We could not find that inspection case."), code="case_not_found")
    return case


async def get_case(
    session: AsyncSession, actor: Principal, case_id: int, now: dt.datetime | None = None
) -> CaseOut:
    """One case for an inspector of its warehouse (or ops), with where to send the item next."""
    return await _case_out(session, await _case_for(session, actor, case_id), now)


async def _case_out(session: AsyncSession, case: QcCase, now: dt.datetime | None) -> CaseOut:
    """The case as ``get_case`` shows it; the inspector's actions answer with the row they moved
    (``repo.move_case`` keeps it current), already checked by ``_case_for``."""
    return (await _cases_out(session, [case], now, send_to=True))[0]


async def inspector_queue(
    session: AsyncSession, actor: Principal, now: dt.datetime | None = None
) -> InspectorQueue:
    """The inspector's console: overdue arrivals first, parcels on their way, arrivals waiting
    for inspection (deadline first), inspected items to forward or return, and items whose buyer
    was refunded in full while here, to return to the shop as they are."""
    now = now or utcnow()
    mine = await repo.warehouse_ids_of(session, actor.id)
    warehouses = await _warehouses_out(session, list((await repo.warehouses_by_ids(session, mine)).values()))
    inbound = await repo.cases_in(session, mine, (INBOUND,), QUEUE_LIMIT)
    arrivals = await repo.cases_in(session, mine, (RECEIVED,), QUEUE_LIMIT)
    outbound = await repo.cases_in(session, mine, (PASSED, FAILED), QUEUE_LIMIT)
    everything = await _cases_out(session, [*inbound, *arrivals, *outbound], now)
    by_id = {c.id: c for c in everything}
    to_return = [by_id[c.id] for c in [*arrivals, *outbound] if by_id[c.id].to_return]
    returning = {c.id for c in to_return}
    waiting = [by_id[c.id] for c in arrivals if c.id not in returning]
    return InspectorQueue(
        warehouses=warehouses,
        overdue=[c for c in waiting if c.overdue],
        inbound=[by_id[c.id] for c in inbound],
        arrivals=waiting,
        outbound=[by_id[c.id] for c in outbound if c.id not in returning],
        to_return=to_return,
    )


# --- the inspector's actions ------------------------------------------------------------------


def _state_error(case: QcCase, wanted: str) -> InvalidTransition:
    """The 409 for acting on a case in the wrong state, in words the inspector can act on."""
    if case.status == INBOUND:
        return InvalidTransition(N_("This parcel has not been received at the warehouse yet."),
                                 code="not_received")  # fmt: skip
    if wanted == "receive":
        return InvalidTransition(N_("This parcel has been received already."), code="already_received")
    if wanted == "inspect":
        return InvalidTransition(N_("This item has been inspected already; a case has one inspection."),
                                 code="already_inspected")  # fmt: skip
    if case.status == RECEIVED:
        return InvalidTransition(N_("Record the inspection first."), code="not_inspected")
    if wanted == "forward" and case.status == FAILED:
        return InvalidTransition(N_("This item failed inspection: it goes back to the shop, not to the buyer."),
                                 code="inspection_failed")  # fmt: skip
    if wanted == "return" and case.status == PASSED:
        return InvalidTransition(
            N_("This item passed inspection: forward it to the buyer."), code="inspection_passed"
        )
    return InvalidTransition(N_("This item has left the warehouse already."), code="already_sent")


def _refunded_error() -> InvalidTransition:
    return InvalidTransition(N_("The buyer has been refunded in full already: send the item back to the shop."),
                             code="order_refunded")  # fmt: skip


async def _locked_order(session: AsyncSession, order_id: int) -> OrderOut:
    """The order read under its row lock (held until commit), for moves that must not race a
    refund. Take it after the case's lock and never before a payment intent's (refunds lock the
    intent, then the order): the lock order stays payment intent → order → stock → ledger head."""
    await orders.lock_order(session, order_id)
    return await orders.load_order(session, order_id)


async def receive(
    session: AsyncSession, actor: Principal, case_id: int, policy: QcPolicy, now: dt.datetime | None = None
) -> CaseOut:
    """The parcel is at the warehouse: the turnaround clock starts (``due_at``)."""
    now = now or utcnow()
    case = await _case_for(session, actor, case_id, lock=True)
    await _receive(session, actor, case, policy, now)
    return await _case_out(session, case, now)


async def _receive(
    session: AsyncSession, actor: Principal, case: QcCase, policy: QcPolicy, now: dt.datetime
) -> None:
    due = now + dt.timedelta(hours=policy.turnaround_hours)
    if case.status != INBOUND or not await repo.move_case(
        session, case.id, (INBOUND,), status=RECEIVED, received_at=now, received_by_id=actor.id, due_at=due,
        updated_at=now,
    ):  # fmt: skip
        raise _state_error(case, "receive")


class AmbiguousParcel(Conflict):
    """409 ``ambiguous_parcel``: parcels of several shops or carriers are on their way under the
    number scanned; the body lists them (``error.candidates``) for the inspector to pick."""

    def __init__(self, candidates: list[ParcelChoice]) -> None:
        super().__init__(N_("Several parcels on their way to your warehouse have this tracking number: choose the "
                            "one in your hands."), code="ambiguous_parcel", field="tracking_no")  # fmt: skip
        self.candidates = candidates

    def to_dict(self) -> dict[str, object]:
        body = super().to_dict()
        body["error"]["candidates"] = msgspec.to_builtins(self.candidates)  # type: ignore[index]
        return body


async def receive_parcel(
    session: AsyncSession, actor: Principal, data: ReceiveIn, policy: QcPolicy, now: dt.datetime | None = None
) -> list[CaseOut]:
    """Receive by the tracking number on the parcel (scanned or typed), and its carrier if given:
    the cases of the inspector's warehouses still on their way under that number, when they are
    one parcel (one shop, one carrier: a parcel may carry several of its orders). 404 when none
    is; 409 ``already_received`` when they were received already (a racing scan included); 409
    ``ambiguous_parcel`` listing the candidates when parcels of several shops or carriers share the
    number (the inspector then receives the one in hand by its case)."""
    data = validated(data)
    now = now or utcnow()
    mine = await repo.warehouse_ids_of(session, actor.id)
    found = await repo.cases_by_tracking(session, mine, normalise_number(data.tracking_no))
    if data.carrier is not None:
        carrier = data.carrier.strip().upper()
        found = [c for c in found if c.inbound_carrier.strip().upper() == carrier]
    waiting = [c for c in found if c.status == INBOUND]
    if not waiting:
        if found:
            raise InvalidTransition(N_("This parcel has been received already."), code="already_received",
                                    field="tracking_no")  # fmt: skip
        raise NotFound(N_("No parcel on its way to your warehouse has this tracking number."),
                       field="tracking_no", code="parcel_not_found")  # fmt: skip
    if len({(c.shop_id, c.inbound_carrier.strip().upper()) for c in waiting}) > 1:
        titles = await orders.orders_by_ids(session, [c.order_id for c in waiting])
        raise AmbiguousParcel([
            ParcelChoice(c.id, c.order_id, c.shop_id, c.inbound_carrier, c.inbound_tracking_no,
                         [line.title for line in titles[c.order_id].lines] if c.order_id in titles else [])
            for c in waiting
        ])  # fmt: skip
    ids = [c.id for c in waiting]
    due = now + dt.timedelta(hours=policy.turnaround_hours)
    if await repo.receive_cases(session, ids, actor.id, now, due) != len(ids):
        # A racing scan received them first (its update committed while ours waited for it).
        raise InvalidTransition(N_("This parcel has been received already."), code="already_received",
                                field="tracking_no")  # fmt: skip
    return await _cases_out(session, await repo.cases_by_ids(session, ids), now)


def _check_photo_room(existing: int, adding: int) -> None:
    if existing + adding > MAX_PHOTOS:
        raise Conflict(N_("An inspection has at most 9 photos."), code="too_many_photos", field="photos")


async def _store_photos(
    session: AsyncSession, case: QcCase, uploads: list[catalog.Upload], media_dir: Path, max_bytes: int
) -> None:
    position = await repo.count_photos(session, case.id)
    _check_photo_room(position, len(uploads))
    for upload in uploads:
        stored = catalog.store_image(session, upload, media_dir, f"qc/{case.id}", max_bytes, field="photos")
        session.add(QcPhoto(case_id=case.id, path=stored.path, content_type=stored.content_type,
                            byte_size=stored.byte_size, width=stored.width, height=stored.height, position=position,
                            uploaded_at=utcnow()))  # fmt: skip
        position += 1
    await session.flush()


async def add_photo(
    session: AsyncSession,
    actor: Principal,
    case_id: int,
    upload: catalog.Upload,
    media_dir: Path,
    max_bytes: int,
) -> PhotoOut:
    """A photo of the item, before its inspection is recorded (the certificate's photos are
    fixed with its result)."""
    case = await _case_for(session, actor, case_id, lock=True)
    if case.status != RECEIVED:
        raise _state_error(case, "inspect")
    await _store_photos(session, case, [upload], media_dir, max_bytes)
    last = (await repo.photos_of(session, [case.id]))[-1]
    return PhotoOut(last.id, f"/media/{last.path}", last.width, last.height)


async def record_inspection(
    session: AsyncSession, actor: Principal, case_id: int, data: InspectionIn, policy: QcPolicy, *,
    photos: list[catalog.Upload] | None = None, media_dir: Path | None = None, max_bytes: int = 0,
    now: dt.datetime | None = None,
) -> CaseOut:  # fmt: skip
    """The inspector records the result (once per case) and its certificate, with photos. Pass:
    the item waits to be forwarded. Fail: the buyer is refunded in full at once."""
    data = validated(data)
    now = now or utcnow()
    case = await _case_for(session, actor, case_id, lock=True)
    warehouse = await _warehouse(session, case.warehouse_id)
    await _apply_result(
        session, case, data, warehouse.lab_id, actor.id, "console", policy, now,
        photos=photos or [], media_dir=media_dir, max_bytes=max_bytes,
    )  # fmt: skip
    return await _case_out(session, case, now)


async def _apply_result(
    session: AsyncSession, case: QcCase, data: InspectionIn | LabResultData, lab_id: int, actor_id: int | None,
    source: str, policy: QcPolicy, now: dt.datetime, *, photos: list[catalog.Upload] | None = None,
    media_dir: Path | None = None, max_bytes: int = 0,
) -> None:  # fmt: skip
    """Record an inspection from the console or a lab's callback, by the same rules: once, only
    for a received item of an order still awaiting it, with a certificate number nobody has used;
    then the lab's fee and, for a failure, the buyer's full refund. The ledger is written last
    (lock order: payment, order, ledger).

    ``case`` is locked. A pass also locks the order's row before reading it, so a full refund
    committing meanwhile is seen (409 ``order_refunded``) or waits for us (and then refunds an
    inspected item, as after any forwarding). A failure must not: its refund locks the payment
    intent, which comes before the order; the refund re-reads the order under that lock instead."""
    number = check_certificate(data.certificate_no)
    if case.status != RECEIVED:
        raise _state_error(case, "inspect")
    if data.result == "pass":
        order = await _locked_order(session, case.order_id)
    else:
        order = await orders.load_order(session, case.order_id)
    if _gone(order):
        raise _refunded_error()
    if await repo.case_by_certificate(session, number) is not None:
        raise Conflict(N_("This certificate number is already used by another certificate."),
                       code="certificate_taken", field="certificate_no")  # fmt: skip
    if photos:
        assert media_dir is not None
        await _store_photos(session, case, photos, media_dir, max_bytes)
    fee = policy.fee_fen
    payer = policy.fee_payer if fee else None
    status = PASSED if data.result == "pass" else FAILED
    # A failure gives the buyer back everything still paid (0 when nothing is left).
    refund = max(order.paid_fen - order.refunded_fen, 0) if status == FAILED else 0
    try:
        async with session.begin_nested():
            moved = await repo.move_case(
                session, case.id, (RECEIVED,), status=status, result=data.result, certificate_no=number,
                material=data.material.strip(), weight_mg=data.weight_mg, notes=data.notes.strip(), lab_id=lab_id,
                inspected_at=now, inspected_by_id=actor_id, source=source, fee_fen=fee, fee_payer=payer,
                refunded_fen=refund, updated_at=now,
            )  # fmt: skip
    except IntegrityError:  # a concurrent inspection took the number first
        raise Conflict(N_("This certificate number is already used by another certificate."),
                       code="certificate_taken", field="certificate_no") from None  # fmt: skip
    if not moved:
        raise InvalidTransition(N_("This item has been inspected already; a case has one inspection."),
                                code="already_inspected")  # fmt: skip
    if status == FAILED:
        try:
            await _refund_in_full(session, case.id, order, number, refund)
        except InvalidTransition as err:  # refunded in full since we read it
            if err.code == "not_refundable":
                raise _refunded_error() from None
            raise
        events.record(session, "fulfillment.inspection_failed", {
            "case_id": case.id, "order_id": order.id, "shop_id": order.shop_id,
            "product_ids": sorted({line.product_id for line in order.lines}), "certificate_no": number,
            "refunded_fen": refund,
        })  # fmt: skip
    else:
        events.record(session, "fulfillment.inspection_passed",
                      {"case_id": case.id, "order_id": order.id, "shop_id": order.shop_id, "certificate_no": number})  # fmt: skip
    if fee:
        account = ledger.shop_payable(order.shop_id) if payer == "shop" else ledger.PLATFORM_FEE_REVENUE
        await ledger.post(
            session, kind="inspection_fee", ref=f"qc:{case.id}", idempotency_key=f"qcfee:{case.id}",
            postings=ledger.inspection_fee_postings(account, fee),
            memo=f"inspection of order {order.id}, certificate {number}",
        )  # fmt: skip
    await session.flush()


async def _refund_in_full(
    session: AsyncSession, case_id: int, order: OrderOut, certificate_no: str, amount: int
) -> None:
    """Give the buyer back ``amount``, everything still paid, allocated to what is left of each
    line and of shipping so that settlement and commissions see it right; when earlier
    order-level refunds make those parts exceed the amount, unallocated (a full refund never
    settles anyway)."""
    if amount <= 0:
        return
    lines = {line.id: line.line_total_fen - line.refunded_fen for line in order.lines}
    lines = {k: v for k, v in lines.items() if v > 0}
    shipping = order.shipping_fen - order.shipping_refunded_fen
    if sum(lines.values()) + shipping > amount:
        lines, shipping = {}, 0
    await payments.refund_order(
        session, order.id, amount, f"failed inspection, certificate {certificate_no}", f"qc:{case_id}",
        lines=lines or None, shipping_fen=shipping,
    )  # fmt: skip


async def forward(
    session: AsyncSession, actor: Principal, case_id: int, data: ParcelIn, tracker: Tracker,
    now: dt.datetime | None = None,
) -> CaseOut:  # fmt: skip
    """Send a passed item on to the buyer's address (leg ``qc_to_buyer``): its delivery delivers
    the order."""
    data = validated(data)
    now = now or utcnow()
    case = await _case_for(session, actor, case_id, lock=True)
    if case.status != PASSED:
        raise _state_error(case, "forward")
    # Under the order's lock: a full refund either committed before (we see it) or waits until
    # the item is on its way (and then is the after-sale of a delivered item, not a stale read).
    order = await _locked_order(session, case.order_id)
    if order.status != "shipped":
        raise _refunded_error()
    if not await repo.move_case(
        session, case.id, (PASSED,), status=FORWARDED, forwarded_at=now, updated_at=now
    ):
        raise _state_error(case, "forward")
    await send_parcel(session, case.order_id, QC_TO_BUYER, data.carrier.strip(), data.tracking_no.strip(), tracker,
                      now)  # fmt: skip
    events.record(session, "fulfillment.inspection_forwarded",
                  {"case_id": case.id, "order_id": case.order_id, "certificate_no": case.certificate_no})  # fmt: skip
    return await _case_out(session, case, now)


async def return_to_seller(
    session: AsyncSession, actor: Principal, case_id: int, data: ParcelIn, tracker: Tracker,
    now: dt.datetime | None = None,
) -> CaseOut:  # fmt: skip
    """Send the item back to the shop's return address (leg ``qc_to_seller``): a failed item, or
    one whose buyer was refunded in full before it was forwarded. 409 ``no_return_address`` while
    the shop has none: the item is held at the warehouse."""
    data = validated(data)
    now = now or utcnow()
    case = await _case_for(session, actor, case_id, lock=True)
    allowed: tuple[str, ...] = (FAILED,)
    if case.status in (RECEIVED, PASSED) and _gone(await _locked_order(session, case.order_id)):
        allowed = (RECEIVED, PASSED)
    if case.status not in allowed:
        raise _state_error(case, "return")
    terms = await orders.get_shop_terms(session, case.shop_id, private=True)
    if not terms.return_address:
        raise Conflict(N_("The shop has no return address yet: the item is held at the warehouse until it sets "
                          "one."), code="no_return_address")  # fmt: skip
    if not await repo.move_case(session, case.id, allowed, status=RETURNED, returned_at=now, updated_at=now):
        raise _state_error(case, "return")
    await send_parcel(session, case.order_id, QC_TO_SELLER, data.carrier.strip(), data.tracking_no.strip(), tracker,
                      now)  # fmt: skip
    events.record(session, "fulfillment.inspection_returned", {"case_id": case.id, "order_id": case.order_id,
                                                                "shop_id": case.shop_id})  # fmt: skip
    return await _case_out(session, case, now)


# --- the labs' result callbacks ---------------------------------------------------------------


def parse_lab_event(body: bytes) -> LabResultEvent:
    try:
        return msgspec.json.decode(body, type=LabResultEvent)
    except (msgspec.ValidationError, msgspec.DecodeError):
        raise BadRequest("body is not an inspection result event", code="bad_payload") from None


async def handle_lab_result(
    session: AsyncSession, lab_id: int, headers: Mapping[str, str], body: bytes, policy: QcPolicy,
    now: dt.datetime | None = None,
) -> LabAck:  # fmt: skip
    """A lab posts a result from its own system, signed with its key (``X-Lab-Signature: t=<unix>,
    v1=<hex HMAC-SHA256 of "t.body">``, 5 minutes tolerance). 400 and nothing recorded when it
    does not verify; a repeated event id answers ``duplicate`` and changes nothing; a case of
    another lab's warehouse is a 404; otherwise the console's rules (409 certificate reuse, ...).
    Each accepted event is kept once in ``qc_lab_events``."""
    now = now or utcnow()
    lab = await repo.get_lab(session, lab_id)
    if lab is None or not lab.is_active:
        raise NotFound("no such lab", code="lab_not_found")
    header = next((v for k, v in headers.items() if k.lower() == LAB_SIGNATURE_HEADER), None)
    check_signature(lab_secret(policy, lab.id), header, body, now)
    event = parse_lab_event(body)
    data = event.data
    if data.case_id is None and data.order_id is None:
        raise BadRequest("data: name the case_id or the order_id", code="bad_payload")
    seen = await repo.lab_event(session, lab.id, event.id)
    if seen is not None:
        return LabAck(True, event.id, "duplicate", seen.case_id)
    number = check_certificate(data.certificate_no)  # before the event row stores it
    case_id = data.case_id
    if case_id is None:
        by_order = await repo.case_of_order(session, data.order_id or 0)
        case_id = by_order.id if by_order is not None else None
    case = await repo.get_case(session, case_id, lock=True) if case_id is not None else None
    warehouse = await repo.get_warehouse(session, case.warehouse_id) if case is not None else None
    if (
        case is None
        or warehouse is None
        or warehouse.lab_id != lab.id
        or (data.order_id is not None and case.order_id != data.order_id)
    ):
        raise NotFound("no inspection case of this lab's warehouse matches", code="case_not_found")
    record = QcLabEvent(lab_id=lab.id, event_id=event.id, case_id=case.id, result=data.result,
                        certificate_no=number, received_at=now)  # fmt: skip
    twin = await add_once(session, record, lambda: repo.lab_event(session, lab.id, event.id))
    if twin is not None:  # the same event, delivered twice at once: the other copy applied it
        return LabAck(True, event.id, "duplicate", twin.case_id)
    await _apply_result(session, case, data, lab.id, None, "lab", policy, now)
    return LabAck(True, event.id, "applied", case.id)


# --- the public certificate and the order pages -----------------------------------------------


async def certificate(session: AsyncSession, number: str) -> CertificateOut:
    """A certificate as anyone may verify it (nothing private: no buyer, address, order or
    price). 404 for a number no inspection has."""
    number = normalise_number(number)
    case = await repo.case_by_certificate(session, number) if _CERTIFICATE_RE.fullmatch(number) else None
    if case is None or case.result is None or case.inspected_at is None:
        raise NotFound(N_("No certificate has this number. Check it against the paper certificate."),
                       code="certificate_not_found")  # fmt: skip
    [out] = await _cases_out(session, [case])
    assert out.lab is not None and out.material is not None and out.weight_mg is not None and out.weight_g
    return CertificateOut(number, case.result, out.lab, out.warehouse_name, out.material, out.weight_mg, out.weight_g,
                          case.inspected_at, out.items, [p.url for p in out.photos])  # fmt: skip


async def _brief(session: AsyncSession, warehouse: QcWarehouse | None) -> WarehouseOut | None:
    """A warehouse as order pages show it: name, address, lab's name; not who works there nor
    what is routed to it (at most one query: the lab, often in the session already)."""
    if warehouse is None:
        return None
    lab = await repo.get_lab(session, warehouse.lab_id)
    return WarehouseOut(warehouse.id, warehouse.name, warehouse.recipient, warehouse.phone, warehouse.region,
                        warehouse.detail, warehouse.lab_id, lab.name if lab else "", warehouse.is_active,
                        warehouse.is_default)  # fmt: skip


async def qc_of_order(
    session: AsyncSession, order: OrderOut, viewer: Principal | None = None
) -> QcPanel | None:
    """What the order pages show about the order's inspection (None when it has none): where to
    send it (the shop, before shipping), where it is (at the lab, passed with its certificate,
    forwarded, failed and refunded), and for the shop its failures. ``order`` is one its reader
    may see; the shop's count of failures is counted only for a ``viewer`` of the shop or ops
    (without a viewer, the page decides what to show)."""
    if not order.requires_inspection:
        return None
    return await _panel(session, order, viewer is None or await _shop_view(session, viewer, order))


async def _shop_view(session: AsyncSession, viewer: Principal, order: OrderOut) -> bool:
    return viewer.is_ops or await catalog.is_shop_member(session, viewer, order.shop_id)


async def _panel(session: AsyncSession, order: OrderOut, shop_view: bool) -> QcPanel | None:
    case = await repo.case_of_order(session, order.id)
    if case is None and order.status in repo.GONE:
        return None  # it never went to a warehouse and never will
    failures = await repo.count_failures(session, order.shop_id) if shop_view else 0
    if case is None:
        routed = await _route(session, order) if order.status == "paid" else None
        return QcPanel(await _brief(session, routed), None, shop_failures=failures)
    [out] = await _cases_out(session, [case], order=order)
    held = (
        case.status == FAILED
        and not (await orders.get_shop_terms(session, case.shop_id, private=True)).return_address
    )
    return QcPanel(
        await _brief(session, await repo.get_warehouse(session, case.warehouse_id)), out, held, failures
    )


async def order_inspection(session: AsyncSession, viewer: Principal, order_id: int) -> QcPanel | None:
    """The order's inspection for its buyer, its shop and ops (404 for anyone else). The buyer
    does not see what is the shop's business (as on the order page): its count of failures, the
    lab's fee and who paid it."""
    order = await orders.get_order(session, viewer, order_id)
    if not order.requires_inspection:
        return None
    shop_view = await _shop_view(session, viewer, order)
    panel = await _panel(session, order, shop_view)
    if panel is not None and panel.case is not None and not shop_view:
        panel.case.fee_fen, panel.case.fee_payer = 0, None
    return panel


# --- delivery of an inspected order -----------------------------------------------------------


async def deliver(
    session: AsyncSession, actor: Principal, order_id: int, policy: orders.OrderPolicy
) -> OrderOut:
    """Mark an order delivered by hand (the delivered routes call this): ``orders.mark_delivered``,
    told whether the QC warehouse has forwarded the item of an order that must be inspected. Its
    rules decide: such an order is delivered by the warehouse's parcel, by hand only by ops and
    only once forwarded (409 ``inspection_route`` before, and for the shop)."""
    case = await repo.case_of_order(session, order_id)
    return await orders.mark_delivered(
        session, actor, order_id, policy, inspected_ok=case is not None and case.status == FORWARDED
    )


# --- the turnaround deadline ------------------------------------------------------------------


async def due_overdue_alerts(session: AsyncSession, now: dt.datetime, limit: int = 200) -> list[int]:
    return await repo.due_overdue_alerts(session, now, limit)


async def alert_overdue(session: AsyncSession, case_id: int, now: dt.datetime) -> bool:
    """Mark a received case past its turnaround deadline as alerted and tell ops (outbox), once:
    the conditional update lets one worker win, and a restarted sweep finds it done."""
    if not await repo.mark_overdue_alerted(session, case_id, now):
        return False
    case = await repo.get_case(session, case_id)
    assert case is not None and case.due_at is not None
    events.record(session, "fulfillment.inspection_overdue", {
        "case_id": case.id, "order_id": case.order_id, "warehouse_id": case.warehouse_id,
        "due_at": case.due_at.isoformat(),
    })  # fmt: skip
    return True


# --- trust scores -----------------------------------------------------------------------------


async def score_inspections(
    session: AsyncSession, order_ids: list[int]
) -> dict[int, tuple[dt.datetime, bool]]:
    """For the trust scores: order id -> (when it was inspected, whether it failed)."""
    return {
        r.order_id: (r.inspected_at, r.result == "fail")
        for r in await repo.score_inspections(session, order_ids)
    }
