"""Shapes of the fulfillment domain: shipments and verified tracking events; the QC warehouse's
set-up, cases, inspections, lab callbacks and public certificates."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec


class TrackingUpdate(msgspec.Struct, frozen=True):
    """A verified tracking event, in our own terms whatever the tracking service."""

    id: str
    carrier: str
    tracking_no: str
    stage: str
    at: dt.datetime
    location: str = ""


class TrackingAck(msgspec.Struct):
    received: bool
    event_id: str
    outcome: str  # applied | stale | unknown_shipment | duplicate


class TrackingEventOut(msgspec.Struct):
    stage: str
    at: dt.datetime
    location: str


class ShipmentOut(msgspec.Struct):
    id: int
    order_id: int
    leg: str
    carrier: str
    tracking_no: str
    stage: str
    stage_at: dt.datetime
    shipped_at: dt.datetime  # handed to the carrier
    delivered_at: dt.datetime | None
    events: list[TrackingEventOut]


# --- the QC warehouse -------------------------------------------------------------------------

# Ids are 63-bit in both databases; nothing we hand out comes near 2**62.
Id = Annotated[int, msgspec.Meta(ge=1, le=2**62)]
Phone = Annotated[str, msgspec.Meta(pattern=r"^\+?[0-9][0-9 -]{5,18}$")]
TrackingNo = Annotated[str, msgspec.Meta(min_length=4, max_length=64, pattern=r"^[A-Za-z0-9-]+$")]
Result = Literal["pass", "fail"]
# Text that is stored trimmed must not be blank: r"\S" (searched, not anchored) wants one
# character that is not a space, r"(?s)\S.*\S" two, so "  " or " x " never become "" or "x".
Text1 = Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=r"\S")]
Name = Annotated[str, msgspec.Meta(min_length=2, max_length=64, pattern=r"(?s)\S.*\S")]
Region = Annotated[str, msgspec.Meta(min_length=2, max_length=64, pattern=r"(?s)\S.*\S")]
Detail = Annotated[str, msgspec.Meta(min_length=2, max_length=200, pattern=r"(?s)\S.*\S")]
Material = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"\S")]
# As the lab prints it: spaces are dropped before it is checked (4 to 40 letters, digits, dashes)
# and stored, so 48 leaves room for them and nothing longer reaches the service.
CertificateNo = Annotated[str, msgspec.Meta(min_length=4, max_length=48)]
# The carriers the warehouse ships with: the codes of ``service.CARRIERS`` (the tracking service
# reports by them; a parcel under any other name would never be delivered).
Carrier = Literal["SF", "ZTO", "YTO", "YD", "EMS", "JD"]
# Grams with up to two decimals, as milligrams (a multiple of 10); at most 100 kg.
WeightMg = Annotated[int, msgspec.Meta(ge=10, le=100_000_000, multiple_of=10)]


class LabIn(msgspec.Struct, forbid_unknown_fields=True):
    """An accredited lab. At least one of the CMA number (资质认定, 12 digits) and the CNAS
    laboratory number (L followed by 4 or 5 digits, "CNAS L1234" is accepted too)."""

    name: Name
    cma_no: Annotated[str, msgspec.Meta(max_length=24)] | None = None
    cnas_no: Annotated[str, msgspec.Meta(max_length=24)] | None = None
    is_active: bool = True


class WarehouseIn(msgspec.Struct, forbid_unknown_fields=True):
    """A QC warehouse: its address (sellers ship to it), the lab that works there, whether it takes
    new parcels, and whether it is the default for inspection categories without a route."""

    name: Name
    recipient: Text1
    phone: Phone
    region: Region
    detail: Detail
    lab_id: Id
    is_active: bool = True
    is_default: bool = False


class RouteIn(msgspec.Struct, forbid_unknown_fields=True):
    """Orders of this inspection category go to this warehouse (``null``: remove the route, the
    default warehouse takes them)."""

    category_id: Id
    warehouse_id: Id | None


class InspectorIn(msgspec.Struct, forbid_unknown_fields=True):
    """An account holding the inspector role, by id or by username."""

    user_id: Id | None = None
    username: Annotated[str, msgspec.Meta(min_length=1, max_length=32)] | None = None


class ReceiveIn(msgspec.Struct, forbid_unknown_fields=True):
    """A parcel at the warehouse's door: its tracking number, scanned or typed, and its carrier
    when several parcels on their way share the number (as the shop entered it, any case)."""

    tracking_no: TrackingNo
    carrier: Annotated[str, msgspec.Meta(min_length=2, max_length=32, pattern=r"\S")] | None = None


class InspectionIn(msgspec.Struct, forbid_unknown_fields=True):
    result: Result
    material: Material
    weight_mg: WeightMg
    certificate_no: CertificateNo
    notes: Annotated[str, msgspec.Meta(max_length=1000)] = ""


class ParcelIn(msgspec.Struct, forbid_unknown_fields=True):
    """A parcel the warehouse sends on (to the buyer) or back (to the shop)."""

    carrier: Carrier
    tracking_no: TrackingNo


class LabResultData(msgspec.Struct, forbid_unknown_fields=True):
    result: Result
    material: Material
    weight_mg: WeightMg
    certificate_no: CertificateNo
    case_id: Id | None = None
    order_id: Id | None = None
    notes: Annotated[str, msgspec.Meta(max_length=1000)] = ""


class LabResultEvent(msgspec.Struct, forbid_unknown_fields=True):
    """What a lab posts to ``/api/v1/qc/labs/{lab_id}/results`` (signed)."""

    id: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    type: Literal["inspection.completed"]
    created: int
    data: LabResultData


class LabAck(msgspec.Struct):
    received: bool
    event_id: str
    outcome: str  # applied | duplicate
    case_id: int


class LabOut(msgspec.Struct):
    id: int
    name: str
    cma_no: str | None
    cnas_no: str | None
    is_active: bool
    # For ops, to give the lab: where to post results and the key that signs them.
    callback_path: str = ""
    callback_secret: str = ""


class LabPublic(msgspec.Struct):
    name: str
    cma_no: str | None
    cnas_no: str | None


class InspectorOut(msgspec.Struct):
    user_id: int
    username: str
    display_name: str


class WarehouseOut(msgspec.Struct):
    id: int
    name: str
    recipient: str
    phone: str
    region: str
    detail: str
    lab_id: int
    lab_name: str
    is_active: bool
    is_default: bool
    inspectors: list[InspectorOut] = []
    category_ids: list[int] = []  # the categories routed here


class RouteOut(msgspec.Struct):
    category_id: int
    warehouse_id: int


class QcSetupOut(msgspec.Struct):
    labs: list[LabOut]
    warehouses: list[WarehouseOut]
    routes: list[RouteOut]
    default_warehouse_id: int | None


class PhotoOut(msgspec.Struct):
    id: int
    url: str
    width: int
    height: int


class CaseOut(msgspec.Struct):
    """An order's inspection case as the warehouse (and ops) see it."""

    id: int
    order_id: int
    shop_id: int
    warehouse_id: int
    warehouse_name: str
    status: str  # inbound | received | passed | failed | forwarded | returned
    inbound_carrier: str
    inbound_tracking_no: str
    inbound_stage: str  # the seller's parcel as the tracking service reports it
    items: list[str]  # titles of the order's lines
    created_at: dt.datetime
    received_at: dt.datetime | None
    due_at: dt.datetime | None
    overdue: bool
    overdue_alerted_at: dt.datetime | None
    result: str | None
    certificate_no: str | None
    material: str | None
    weight_mg: int | None
    weight_g: str | None  # "12.34"
    notes: str
    lab: LabPublic | None
    inspected_at: dt.datetime | None
    source: str | None  # console | lab
    fee_fen: int
    fee_payer: str | None
    refunded_fen: int
    forwarded_at: dt.datetime | None
    returned_at: dt.datetime | None
    photos: list[PhotoOut] = []
    parcels: list[ShipmentOut] = []  # what the warehouse sent on or back
    order_status: str = ""
    # Received or passed, but the buyer was refunded in full meanwhile: it goes back to the shop as
    # it is (no result awaited, never overdue, not forwarded).
    to_return: bool = False
    # Where the warehouse sends it: the buyer's address (passed) or the shop's return address
    # (failed, or to return; None while the shop has none: the item is held at the warehouse).
    send_to: dict[str, str] | None = None


class InspectorQueue(msgspec.Struct):
    warehouses: list[WarehouseOut]
    overdue: list[CaseOut]  # received, past the turnaround deadline, no result yet
    inbound: list[CaseOut]  # shipped to the warehouse, not received yet
    arrivals: list[CaseOut]  # received, waiting for their inspection (deadline first)
    outbound: list[CaseOut]  # inspected, to forward (passed) or return (failed)
    # Received or passed, but the buyer was refunded in full meanwhile: back to the shop as it is.
    to_return: list[CaseOut] = []


class ParcelChoice(msgspec.Struct):
    """One of several parcels on their way under the same tracking number (other shops, other
    carriers): the inspector receives the one in their hands (``POST /qc/cases/{id}/receive``)."""

    case_id: int
    order_id: int
    shop_id: int
    carrier: str
    tracking_no: str
    items: list[str]


class CertificateOut(msgspec.Struct):
    """A certificate as anyone may verify it: nothing about the buyer, the order or the price."""

    number: str
    result: str
    lab: LabPublic
    warehouse_name: str
    material: str
    weight_mg: int
    weight_g: str
    inspected_at: dt.datetime
    items: list[str]
    photos: list[str]  # URLs


class QcPanel(msgspec.Struct):
    """What an order page shows about the order's inspection (``_order_qc.html``)."""

    warehouse: WarehouseOut | None  # where it goes (paid, not shipped yet) or went
    case: CaseOut | None
    held: bool = False  # failed, and the shop has no return address yet
    shop_failures: int = 0  # failed inspections of the shop, all time (the shop's view)
