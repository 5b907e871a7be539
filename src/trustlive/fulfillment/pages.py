"""HTML routes of fulfillment: ops' QC set-up (labs, warehouses, routing, inspectors, the overdue
list), the QC warehouse's inspector console, and the public certificate page. Thin: parse the
form into the API's structs, call fulfillment.service, render.

Forms re-render with the error and what was typed when it can be fixed there (422, 409, 413, 415,
and 404s that name a field); "not your warehouse" and "no such thing" get the error page.
"""

from __future__ import annotations

import re
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
from trustlive.errors import DomainError, NotFound
from trustlive.fulfillment import service
from trustlive.fulfillment.schemas import (
    InspectionIn,
    InspectorIn,
    LabIn,
    ParcelIn,
    ReceiveIn,
    RouteIn,
    WarehouseIn,
)
from trustlive.fulfillment.tracking import Tracker
from trustlive.web.forms import bad_fields, checked, fixable, integer, invalid, parse, text, to_upload
from trustlive.web.i18n import gettext
from trustlive.web.policy import allow, public
from trustlive.web.validation import MAX_ID

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
Multipart = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)]
Short = Annotated[str, Parameter(max_length=200)]
Number = Annotated[str, Parameter(max_length=64)]

MATERIALS = ("和田玉", "翡翠", "碧玉", "南红玛瑙", "18K金", "铂金 Pt950", "足金 999")
_WEIGHT_RE = re.compile(r"(\d{1,6})(?:\.(\d{1,2}))?")
_TRACKING_RE = re.compile(r"[A-Za-z0-9-]{4,64}")

# API field paths -> the forms' names.
_INSPECTION_FIELDS = {r"weight_mg": "weight"}


def _policy(settings: Settings) -> service.QcPolicy:
    return service.QcPolicy.from_settings(settings)


def _common(context: dict[str, Any]) -> dict[str, Any]:
    return {"carriers": service.CARRIERS, **context}


# --- ops: the QC set-up -----------------------------------------------------------------------

LAB_FIELDS = ("name", "cma_no", "cnas_no")
WAREHOUSE_FIELDS = ("name", "recipient", "phone", "region", "detail", "lab_id")


def _lab_form(data: dict[str, Any]) -> dict[str, Any]:
    form: dict[str, Any] = {name: text(data, name) for name in LAB_FIELDS}
    form["is_active"] = checked(data, "is_active")
    return form


def _lab_in(form: dict[str, Any]) -> LabIn:
    return parse(LabIn, {"name": form["name"], "cma_no": form["cma_no"] or None, "cnas_no": form["cnas_no"] or None,
                         "is_active": form["is_active"]})  # fmt: skip


def _warehouse_form(data: dict[str, Any]) -> dict[str, Any]:
    form: dict[str, Any] = {name: text(data, name) for name in WAREHOUSE_FIELDS}
    form["is_active"], form["is_default"] = checked(data, "is_active"), checked(data, "is_default")
    return form


def _warehouse_in(form: dict[str, Any]) -> WarehouseIn:
    if not form["lab_id"]:
        raise invalid("lab_id", gettext("choose the lab that works there"))
    values = {k: form[k] for k in WAREHOUSE_FIELDS} | {
        "is_active": form["is_active"],
        "is_default": form["is_default"],
    }
    values["lab_id"] = integer(form, "lab_id", minimum=1, maximum=MAX_ID)
    return parse(WarehouseIn, values)


async def _ops_page(db: AsyncSession, me: Principal, settings: Settings, **extra: Any) -> Template:
    setup = await service.setup(db, me, _policy(settings))
    categories = [
        c for c in await catalog.list_categories(db, include_inactive=True) if c.requires_inspection
    ]
    status = extra.pop("status_code", 200)
    context = _common({
        "setup": setup,
        "categories": categories,
        "routes": {r.category_id: r.warehouse_id for r in setup.routes},
        "warehouse_names": {w.id: w.name for w in setup.warehouses},
        "overdue": await service.overdue(db, me),
        "lab_form": {"is_active": True},
        "warehouse_form": {"is_active": True},
        "error": None,
        "error_form": None,
        "bad": set(),
        "saved": None,
        **extra,
    })  # fmt: skip
    return Template("fulfillment/ops_qc.html", context=context, status_code=status)


@get("/ops/qc", **allow("ops"))
async def ops_qc(db: AsyncSession, me: Principal, settings: Settings, saved: Short = "") -> Template:
    """QC warehouses: inspections past their deadline first, then labs, warehouses and routing."""
    return await _ops_page(db, me, settings, saved=saved or None)


@post("/ops/qc/labs", **allow("ops"))
async def ops_create_lab(
    data: Form, db: AsyncSession, me: Principal, settings: Settings
) -> Template | Redirect:
    form = _lab_form({**data, "is_active": "on"})
    try:
        lab = await service.create_lab(db, me, _lab_in(form), _policy(settings))
    except DomainError as err:
        await db.rollback()
        return await _ops_page(db, me, settings, lab_form=form, error=fixable(err), error_form="lab",
                               bad=bad_fields(err), status_code=err.status_code)  # fmt: skip
    return Redirect(f"/ops/qc/labs/{lab.id}?saved=created", status_code=303)


async def _lab_page(
    db: AsyncSession, me: Principal, settings: Settings, lab_id: int, **extra: Any
) -> Template:
    lab = await service.get_lab(db, me, lab_id, _policy(settings))
    status = extra.pop("status_code", 200)
    form = {
        "name": lab.name,
        "cma_no": lab.cma_no or "",
        "cnas_no": lab.cnas_no or "",
        "is_active": lab.is_active,
    }
    context = _common({"lab": lab, "form": form, "error": None, "bad": set(), "saved": None, **extra})
    return Template("fulfillment/ops_lab.html", context=context, status_code=status)


@get("/ops/qc/labs/{lab_id:int}", **allow("ops"))
async def ops_lab(
    lab_id: int, db: AsyncSession, me: Principal, settings: Settings, saved: Short = ""
) -> Template:
    """One lab: its accreditation, and where and how its system posts results (path and key)."""
    return await _lab_page(db, me, settings, lab_id, saved=saved or None)


@post("/ops/qc/labs/{lab_id:int}", **allow("ops"))
async def ops_edit_lab(
    lab_id: int, data: Form, db: AsyncSession, me: Principal, settings: Settings
) -> Template | Redirect:
    form = _lab_form(data)
    try:
        await service.update_lab(db, me, lab_id, _lab_in(form), _policy(settings))
    except DomainError as err:
        await db.rollback()
        return await _lab_page(db, me, settings, lab_id, form=form, error=fixable(err), bad=bad_fields(err),
                               status_code=err.status_code)  # fmt: skip
    return Redirect(f"/ops/qc/labs/{lab_id}?saved=saved", status_code=303)


@post("/ops/qc/warehouses", **allow("ops"))
async def ops_create_warehouse(
    data: Form, db: AsyncSession, me: Principal, settings: Settings
) -> Template | Redirect:
    form = _warehouse_form({**data, "is_active": "on"})
    try:
        warehouse = await service.create_warehouse(db, me, _warehouse_in(form))
    except DomainError as err:
        await db.rollback()
        return await _ops_page(db, me, settings, warehouse_form=form, error=fixable(err), error_form="warehouse",
                               bad=bad_fields(err), status_code=err.status_code)  # fmt: skip
    return Redirect(f"/ops/qc/warehouses/{warehouse.id}?saved=created", status_code=303)


async def _warehouse_page(db: AsyncSession, me: Principal, warehouse_id: int, **extra: Any) -> Template:
    warehouse = await service.get_warehouse(db, me, warehouse_id)
    labs = await service.list_labs(db, me)
    status = extra.pop("status_code", 200)
    form = {**{k: getattr(warehouse, k) for k in WAREHOUSE_FIELDS}, "is_active": warehouse.is_active,
            "is_default": warehouse.is_default}  # fmt: skip
    categories = {c.id: c for c in await catalog.list_categories(db, include_inactive=True)}
    context = _common({
        "warehouse": warehouse, "labs": labs, "categories": categories, "form": form, "error": None,
        "error_form": None, "bad": set(), "saved": None, "username": "", **extra,
    })  # fmt: skip
    return Template("fulfillment/ops_warehouse.html", context=context, status_code=status)


@get("/ops/qc/warehouses/{warehouse_id:int}", **allow("ops"))
async def ops_warehouse(warehouse_id: int, db: AsyncSession, me: Principal, saved: Short = "") -> Template:
    """One warehouse: address, lab, open/closed, default, and its inspectors."""
    return await _warehouse_page(db, me, warehouse_id, saved=saved or None)


@post("/ops/qc/warehouses/{warehouse_id:int}", **allow("ops"))
async def ops_edit_warehouse(
    warehouse_id: int, data: Form, db: AsyncSession, me: Principal
) -> Template | Redirect:
    form = _warehouse_form(data)
    try:
        await service.update_warehouse(db, me, warehouse_id, _warehouse_in(form))
    except DomainError as err:
        await db.rollback()
        return await _warehouse_page(db, me, warehouse_id, form=form, error=fixable(err),
                                     error_form="warehouse", bad=bad_fields(err), status_code=err.status_code)  # fmt: skip
    return Redirect(f"/ops/qc/warehouses/{warehouse_id}?saved=saved", status_code=303)


@post("/ops/qc/warehouses/{warehouse_id:int}/inspectors", **allow("ops"))
async def ops_add_inspector(
    warehouse_id: int, data: Form, db: AsyncSession, me: Principal
) -> Template | Redirect:
    username = text(data, "username").lstrip("@")
    try:
        if not username:
            raise invalid("username", gettext("enter the inspector's username"))
        await service.add_inspector(db, me, warehouse_id, parse(InspectorIn, {"username": username}))
    except DomainError as err:
        await db.rollback()
        return await _warehouse_page(db, me, warehouse_id, username=username, error=fixable(err),
                                     error_form="inspector", bad={"username"}, status_code=err.status_code)  # fmt: skip
    return Redirect(f"/ops/qc/warehouses/{warehouse_id}?saved=inspector#inspectors", status_code=303)


@post("/ops/qc/warehouses/{warehouse_id:int}/inspectors/{user_id:int}/remove", **allow("ops"))
async def ops_remove_inspector(warehouse_id: int, user_id: int, db: AsyncSession, me: Principal) -> Redirect:
    await service.remove_inspector(db, me, warehouse_id, user_id)
    return Redirect(f"/ops/qc/warehouses/{warehouse_id}?saved=removed#inspectors", status_code=303)


@post("/ops/qc/routes", **allow("ops"))
async def ops_set_route(
    data: Form, db: AsyncSession, me: Principal, settings: Settings
) -> Template | Redirect:
    form = {"category_id": text(data, "category_id"), "warehouse_id": text(data, "warehouse_id")}
    try:
        route = {
            "category_id": integer(form, "category_id", minimum=1, maximum=MAX_ID),
            "warehouse_id": integer(form, "warehouse_id", minimum=1, maximum=MAX_ID)
            if form["warehouse_id"]
            else None,
        }
        await service.set_route(db, me, parse(RouteIn, route))
    except DomainError as err:
        await db.rollback()
        return await _ops_page(db, me, settings, error=fixable(err), error_form="routes", bad=bad_fields(err),
                               status_code=err.status_code)  # fmt: skip
    return Redirect("/ops/qc?saved=routes#routing", status_code=303)


# --- the inspector's console ------------------------------------------------------------------


async def _console(db: AsyncSession, me: Principal, **extra: Any) -> Template:
    status = extra.pop("status_code", 200)
    context = _common({
        "queue": await service.inspector_queue(db, me), "form": {}, "error": None, "bad": set(), "notice": None,
        "choices": [], **extra,
    })  # fmt: skip
    return Template("fulfillment/inspect.html", context=context, status_code=status)


@get("/inspect", **allow("inspector"))
async def inspect_console(db: AsyncSession, me: Principal, received: Short = "") -> Template:
    """The inspector's warehouses: overdue arrivals, parcels on their way (with their tracking
    stage), arrivals waiting for inspection, inspected items to forward or return."""
    return await _console(db, me, notice=received or None)


@post("/inspect/receive", **allow("inspector"))
async def receive_parcel(
    data: Form, db: AsyncSession, me: Principal, settings: Settings
) -> Template | Redirect:
    """Scan or type the tracking number on a parcel at the door (and its carrier, optional).
    When parcels of several shops or carriers share the number, the console lists them to pick
    the one in hand."""
    form = {"tracking_no": text(data, "tracking_no").replace(" ", ""), "carrier": text(data, "carrier")}
    try:
        if not _TRACKING_RE.fullmatch(form["tracking_no"]):
            raise invalid("tracking_no", gettext("4 to 64 letters, digits or dashes, as on the waybill"))
        if form["carrier"] and form["carrier"] not in service.CARRIERS:
            raise invalid("carrier", gettext("choose the carrier"))
        body = {"tracking_no": form["tracking_no"], "carrier": form["carrier"] or None}
        cases = await service.receive_parcel(db, me, parse(ReceiveIn, body), _policy(settings))
    except DomainError as err:
        await db.rollback()
        choices = err.candidates if isinstance(err, service.AmbiguousParcel) else []
        return await _console(db, me, form=form, error=fixable(err), bad=bad_fields(err), choices=choices,
                              status_code=err.status_code)  # fmt: skip
    if len(cases) == 1:
        return Redirect(f"/inspect/cases/{cases[0].id}?done=received", status_code=303)
    return Redirect(f"/inspect?received={len(cases)}", status_code=303)


async def _case_page(db: AsyncSession, me: Principal, case_id: int, **extra: Any) -> Template:
    case = await service.get_case(db, me, case_id)
    status = extra.pop("status_code", 200)
    context = _common({
        "case": case, "materials": MATERIALS, "max_photos": service.MAX_PHOTOS, "form": {}, "error": None,
        "error_form": None, "bad": set(), "done": None, **extra,
    })  # fmt: skip
    return Template("fulfillment/case.html", context=context, status_code=status)


@get("/inspect/cases/{case_id:int}", **allow("inspector"))
async def case_page(case_id: int, db: AsyncSession, me: Principal, done: Short = "") -> Template:
    """One case: the item, its deadline, and the next step (receive, inspect, forward, return)."""
    return await _case_page(db, me, case_id, done=done or None)


@post("/inspect/cases/{case_id:int}/receive", **allow("inspector"))
async def receive_case(
    case_id: int, db: AsyncSession, me: Principal, settings: Settings
) -> Template | Redirect:
    try:
        await service.receive(db, me, case_id, _policy(settings))
    except DomainError as err:
        await db.rollback()
        return await _case_page(db, me, case_id, error=fixable(err), status_code=err.status_code)
    return Redirect(f"/inspect/cases/{case_id}?done=received", status_code=303)


def _weight_mg(form: dict[str, Any]) -> int:
    """Grams as typed ("52.34", "52,34", "52.34g") in milligrams."""
    raw = form["weight"].lower().removesuffix("g").strip().replace(",", ".")
    found = _WEIGHT_RE.fullmatch(raw)
    mg = int(found.group(1)) * 1000 + int((found.group(2) or "").ljust(2, "0")) * 10 if found else 0
    if not 0 < mg <= 100_000_000:
        raise invalid("weight", gettext("enter the weight in grams, at most two decimals (e.g. 52.34)"))
    return mg


async def _photos(data: dict[str, Any], settings: Settings) -> list[catalog.Upload]:
    files = data.get("photos")
    files = files if isinstance(files, list) else [files]
    chosen = [f for f in files if isinstance(f, UploadFile) and f.filename]
    if len(chosen) > service.MAX_PHOTOS:
        raise invalid("photos", gettext("at most 9 photos"))
    return [await to_upload(f, settings.max_upload_bytes) for f in chosen]


@post("/inspect/cases/{case_id:int}/inspection", **allow("inspector"))
async def record_inspection(
    case_id: int, data: Multipart, db: AsyncSession, me: Principal, settings: Settings
) -> Template | Redirect:
    """The result with material, weight, notes, photos and the lab's certificate number."""
    form = {name: text(data, name) for name in ("result", "material", "weight", "certificate_no", "notes")}
    try:
        if form["result"] not in ("pass", "fail"):
            raise invalid("result", gettext("choose pass or fail"))
        body = {"result": form["result"], "material": form["material"], "weight_mg": _weight_mg(form),
                "certificate_no": form["certificate_no"], "notes": form["notes"]}  # fmt: skip
        photos = await _photos(data, settings)
        await service.record_inspection(
            db, me, case_id, parse(InspectionIn, body), _policy(settings), photos=photos,
            media_dir=settings.media_dir, max_bytes=settings.max_upload_bytes,
        )  # fmt: skip
    except DomainError as err:
        await db.rollback()
        return await _case_page(db, me, case_id, form=form, error=fixable(err), error_form="inspection",
                                bad=bad_fields(err, _INSPECTION_FIELDS), status_code=err.status_code)  # fmt: skip
    return Redirect(f"/inspect/cases/{case_id}?done={form['result']}", status_code=303)


def _parcel(data: dict[str, Any]) -> tuple[dict[str, str], ParcelIn]:
    form = {"carrier": text(data, "carrier"), "tracking_no": text(data, "tracking_no").replace(" ", "")}
    if form["carrier"] not in service.CARRIERS:
        raise invalid("carrier", gettext("choose the carrier"))
    if not _TRACKING_RE.fullmatch(form["tracking_no"]):
        raise invalid("tracking_no", gettext("4 to 64 letters, digits or dashes, as on the waybill"))
    return form, parse(ParcelIn, form)


async def _send(
    case_id: int, data: dict[str, Any], db: AsyncSession, me: Principal, tracker: Tracker, which: str
) -> Template | Redirect:
    form = {"carrier": text(data, "carrier"), "tracking_no": text(data, "tracking_no")}
    try:
        form, parcel = _parcel(data)
        if which == "forward":
            await service.forward(db, me, case_id, parcel, tracker)
        else:
            await service.return_to_seller(db, me, case_id, parcel, tracker)
    except DomainError as err:
        await db.rollback()
        return await _case_page(db, me, case_id, form=form, error=fixable(err), error_form=which,
                                bad=bad_fields(err), status_code=err.status_code)  # fmt: skip
    return Redirect(f"/inspect/cases/{case_id}?done={which}ed", status_code=303)


@post("/inspect/cases/{case_id:int}/forward", **allow("inspector"))
async def forward(
    case_id: int, data: Form, db: AsyncSession, me: Principal, tracker: Tracker
) -> Template | Redirect:
    """A passed item goes on to the buyer, with the carrier's tracking number."""
    return await _send(case_id, data, db, me, tracker, "forward")


@post("/inspect/cases/{case_id:int}/return", **allow("inspector"))
async def return_to_seller(
    case_id: int, data: Form, db: AsyncSession, me: Principal, tracker: Tracker
) -> Template | Redirect:
    """A failed item goes back to the shop's return address."""
    return await _send(case_id, data, db, me, tracker, "return")


# --- the public certificate page --------------------------------------------------------------


@get("/certificates", **public())
async def certificate_search(number: Short = "") -> Template | Redirect:
    """Look a certificate up by its number (the search box of the certificate page)."""
    number = service.normalise_number(number)
    if number:
        return Redirect(f"/certificates/{number}", status_code=303)
    return Template("fulfillment/certificate.html", context={"cert": None, "number": "", "missing": False})


@get("/certificates/{number:str}", **public())
async def certificate_page(number: Number, db: AsyncSession) -> Template:
    """Anyone can verify a certificate: result, lab and its accreditation, warehouse, material,
    weight, date, item and photos. Nothing private. An unknown number is a 404 with the search box."""
    try:
        cert = await service.certificate(db, number)
    except NotFound:
        return Template("fulfillment/certificate.html", context={"cert": None, "number": number, "missing": True},
                        status_code=404)  # fmt: skip
    return Template(
        "fulfillment/certificate.html", context={"cert": cert, "number": cert.number, "missing": False}
    )


routes = [
    ops_qc,
    ops_create_lab,
    ops_lab,
    ops_edit_lab,
    ops_create_warehouse,
    ops_warehouse,
    ops_edit_warehouse,
    ops_add_inspector,
    ops_remove_inspector,
    ops_set_route,
    inspect_console,
    receive_parcel,
    case_page,
    receive_case,
    record_inspection,
    forward,
    return_to_seller,
    certificate_search,
    certificate_page,
]
