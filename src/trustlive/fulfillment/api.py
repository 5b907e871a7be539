"""JSON routes for shipments, the tracking webhook and the QC warehouse (ops' set-up, the
inspector's actions, the labs' signed result callbacks, public certificates): thin wrappers over
fulfillment.service."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, delete, get, post, put
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.accounts.service import Principal
from trustlive.config import Settings
from trustlive.fulfillment import service
from trustlive.fulfillment.schemas import (
    CaseOut,
    CertificateOut,
    InspectionIn,
    InspectorIn,
    InspectorQueue,
    LabAck,
    LabIn,
    LabOut,
    ParcelIn,
    PhotoOut,
    QcPanel,
    QcSetupOut,
    ReceiveIn,
    RouteIn,
    RouteOut,
    ShipmentOut,
    TrackingAck,
    WarehouseIn,
    WarehouseOut,
)
from trustlive.fulfillment.tracking import Tracker, get_tracker
from trustlive.orders.service import OrderPolicy
from trustlive.web.forms import to_upload
from trustlive.web.policy import allow, public, signed_in

Multipart = Body(media_type=RequestEncodingType.MULTI_PART)
Number = Annotated[str, Parameter(max_length=64)]


@get("/orders/{order_id:int}/shipments", tags=["fulfillment"], **signed_in())
async def order_shipments(order_id: int, me: Principal, db: AsyncSession) -> list[ShipmentOut]:
    """The order's parcels and each one's journey (stages with time and place), for its buyer,
    its shop and ops."""
    return await service.shipments_of_order(db, me, order_id)


@post("/logistics/webhooks/{service_name:str}", status_code=200, tags=["fulfillment"], **public())
async def tracking_webhook(
    service_name: str,
    request: Request[Any, Any, Any],
    db: AsyncSession,
    settings: Settings,
    order_policy: OrderPolicy,
) -> TrackingAck:
    """A tracking service's event, authenticated by its signature (sandbox: header
    `X-Sandbox-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`, 5 minutes tolerance). 400
    `bad_signature` or `bad_payload` and nothing changes when it does not verify; a repeated event
    id answers 200 with outcome `duplicate`. A `delivered` stage moves a shipped order to delivered."""
    body = await request.body()
    return await service.handle_webhook(
        db, get_tracker(settings, service_name), dict(request.headers), body, policy=order_policy
    )


# --- the QC warehouse: ops' set-up ------------------------------------------------------------


def _policy(settings: Settings) -> service.QcPolicy:
    return service.QcPolicy.from_settings(settings)


@get("/qc", tags=["qc"], **allow("ops"))
async def qc_setup(me: Principal, db: AsyncSession, settings: Settings) -> QcSetupOut:
    """Labs (with their callback path and secret), warehouses (with inspectors and routed
    categories), routes and the default warehouse."""
    return await service.setup(db, me, _policy(settings))


@post("/qc/labs", status_code=201, tags=["qc"], **allow("ops"))
async def create_lab(data: LabIn, me: Principal, db: AsyncSession, settings: Settings) -> LabOut:
    """An accredited lab: name, CMA number (12 digits) and/or CNAS number (`L1234`); 422 without
    either, 409 `lab_name_taken`."""
    return await service.create_lab(db, me, data, _policy(settings))


@get("/qc/labs/{lab_id:int}", tags=["qc"], **allow("ops"))
async def get_lab(lab_id: int, me: Principal, db: AsyncSession, settings: Settings) -> LabOut:
    return await service.get_lab(db, me, lab_id, _policy(settings))


@put("/qc/labs/{lab_id:int}", tags=["qc"], **allow("ops"))
async def update_lab(lab_id: int, data: LabIn, me: Principal, db: AsyncSession, settings: Settings) -> LabOut:
    return await service.update_lab(db, me, lab_id, data, _policy(settings))


@post("/qc/warehouses", status_code=201, tags=["qc"], **allow("ops"))
async def create_warehouse(data: WarehouseIn, me: Principal, db: AsyncSession) -> WarehouseOut:
    """A QC warehouse with its address and lab; `is_default` makes it the default for inspection
    categories without a route (the previous default stops being one)."""
    return await service.create_warehouse(db, me, data)


@get("/qc/warehouses/{warehouse_id:int}", tags=["qc"], **allow("ops"))
async def get_warehouse(warehouse_id: int, me: Principal, db: AsyncSession) -> WarehouseOut:
    return await service.get_warehouse(db, me, warehouse_id)


@put("/qc/warehouses/{warehouse_id:int}", tags=["qc"], **allow("ops"))
async def update_warehouse(
    warehouse_id: int, data: WarehouseIn, me: Principal, db: AsyncSession
) -> WarehouseOut:
    return await service.update_warehouse(db, me, warehouse_id, data)


@put("/qc/routes", tags=["qc"], **allow("ops"))
async def set_route(data: RouteIn, me: Principal, db: AsyncSession) -> list[RouteOut]:
    """Route an inspection category to a warehouse (`warehouse_id: null` removes the route);
    422 `not_inspected` for a category that needs no inspection."""
    return await service.set_route(db, me, data)


@post("/qc/warehouses/{warehouse_id:int}/inspectors", status_code=201, tags=["qc"], **allow("ops"))
async def add_inspector(
    warehouse_id: int, data: InspectorIn, me: Principal, db: AsyncSession
) -> WarehouseOut:
    """Assign an account holding the inspector role; 422 `not_an_inspector` for anyone else."""
    return await service.add_inspector(db, me, warehouse_id, data)


@delete(
    "/qc/warehouses/{warehouse_id:int}/inspectors/{user_id:int}", status_code=200, tags=["qc"], **allow("ops")
)
async def remove_inspector(warehouse_id: int, user_id: int, me: Principal, db: AsyncSession) -> WarehouseOut:
    return await service.remove_inspector(db, me, warehouse_id, user_id)


@get("/qc/overdue", tags=["qc"], **allow("ops"))
async def overdue(me: Principal, db: AsyncSession) -> list[CaseOut]:
    """Received items past their turnaround deadline without a result, the longest overdue first."""
    return await service.overdue(db, me)


# --- the QC warehouse: the inspector ----------------------------------------------------------


@get("/qc/cases", tags=["qc"], **allow("inspector"))
async def my_queue(me: Principal, db: AsyncSession) -> InspectorQueue:
    """The caller's warehouses: overdue arrivals, parcels on their way, arrivals waiting for
    inspection (deadline first), inspected items to forward or return."""
    return await service.inspector_queue(db, me)


@get("/qc/cases/{case_id:int}", tags=["qc"], **allow("inspector", "ops"))
async def get_case(case_id: int, me: Principal, db: AsyncSession) -> CaseOut:
    """One case (404 unless it is at one of the caller's warehouses; ops see any)."""
    return await service.get_case(db, me, case_id)


@post("/qc/receive", status_code=200, tags=["qc"], **allow("inspector"))
async def receive_parcel(
    data: ReceiveIn, me: Principal, db: AsyncSession, settings: Settings
) -> list[CaseOut]:
    """Receive a parcel by its tracking number (scanned) and optionally its `carrier`: its cases
    start their turnaround clock. 409 `already_received`; 409 `ambiguous_parcel` when parcels of
    several shops or carriers share the number, listing them in `error.candidates` (receive the
    one in hand with `POST /qc/cases/{id}/receive`, or scan again with its carrier)."""
    return await service.receive_parcel(db, me, data, _policy(settings))


@post("/qc/cases/{case_id:int}/receive", status_code=200, tags=["qc"], **allow("inspector"))
async def receive(case_id: int, me: Principal, db: AsyncSession, settings: Settings) -> CaseOut:
    return await service.receive(db, me, case_id, _policy(settings))


@post("/qc/cases/{case_id:int}/photos", status_code=201, tags=["qc"], **allow("inspector"))
async def add_photo(
    case_id: int, data: Annotated[UploadFile, Multipart], me: Principal, db: AsyncSession, settings: Settings
) -> PhotoOut:
    """A photo of the item (JPEG, PNG or WebP), before the result is recorded; at most 9."""
    upload = await to_upload(data, settings.max_upload_bytes)
    return await service.add_photo(db, me, case_id, upload, settings.media_dir, settings.max_upload_bytes)


@post("/qc/cases/{case_id:int}/inspection", status_code=200, tags=["qc"], **allow("inspector"))
async def record_inspection(
    case_id: int, data: InspectionIn, me: Principal, db: AsyncSession, settings: Settings
) -> CaseOut:
    """The result (`pass`/`fail`), material, weight in mg (a multiple of 10), notes and the lab's
    certificate number (unique: 409 `certificate_taken`). A failure refunds the buyer in full."""
    return await service.record_inspection(db, me, case_id, data, _policy(settings))


@post("/qc/cases/{case_id:int}/forward", status_code=200, tags=["qc"], **allow("inspector"))
async def forward(case_id: int, data: ParcelIn, me: Principal, db: AsyncSession, tracker: Tracker) -> CaseOut:
    """Send a passed item to the buyer (carrier code, e.g. `SF`, and tracking number); 409
    `order_refunded` when the buyer has been refunded in full."""
    return await service.forward(db, me, case_id, data, tracker)


@post("/qc/cases/{case_id:int}/return", status_code=200, tags=["qc"], **allow("inspector"))
async def return_to_seller(
    case_id: int, data: ParcelIn, me: Principal, db: AsyncSession, tracker: Tracker
) -> CaseOut:
    """Send a failed item back to the shop's return address; 409 `no_return_address` (held)."""
    return await service.return_to_seller(db, me, case_id, data, tracker)


# --- the labs, anyone, the order's people ------------------------------------------------------


@post("/qc/labs/{lab_id:int}/results", status_code=200, tags=["qc"], **public())
async def lab_result(
    lab_id: int, request: Request[Any, Any, Any], db: AsyncSession, settings: Settings
) -> LabAck:
    """A lab's result from its own system, signed with its key (header `X-Lab-Signature:
    t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`, 5 minutes tolerance; docs/inspection.md). 400
    `bad_signature`/`bad_payload` and nothing recorded when it does not verify; a repeated event
    id answers `duplicate`; 404 for a case of another lab's warehouse."""
    body = await request.body()
    return await service.handle_lab_result(db, lab_id, dict(request.headers), body, _policy(settings))


@get("/certificates/{number:str}", tags=["qc"], **public())
async def certificate(number: Number, db: AsyncSession) -> CertificateOut:
    """Verify a certificate by its number: result, lab and accreditation, material, weight, date,
    item and photos; nothing private."""
    return await service.certificate(db, number)


@get("/orders/{order_id:int}/inspection", tags=["qc"], **signed_in())
async def order_inspection(order_id: int, me: Principal, db: AsyncSession) -> QcPanel | None:
    """The order's inspection (null when it needs none), for its buyer, its shop and ops."""
    return await service.order_inspection(db, me, order_id)


routes = [
    order_shipments,
    tracking_webhook,
    qc_setup,
    create_lab,
    get_lab,
    update_lab,
    create_warehouse,
    get_warehouse,
    update_warehouse,
    set_route,
    add_inspector,
    remove_inspector,
    overdue,
    my_queue,
    get_case,
    receive_parcel,
    receive,
    add_photo,
    record_inspection,
    forward,
    return_to_seller,
    lab_result,
    certificate,
    order_inspection,
]
