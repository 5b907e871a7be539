"""The QC warehouse's test world: the order tests' shops (shop 1 sells jade, which must be
inspected), two accredited labs with a warehouse each (the first is the default), an inspector at
each, and helpers that pay through the sandbox and ship as the shop would."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from tests.helpers import make_settings
from tests.orders.world import World, build, principal, set_shipping
from tests.payments.util import buyer_pays, deliver, place, start
from trustlive.accounts import service as accounts
from trustlive.accounts.service import Principal
from trustlive.catalog import service as catalog
from trustlive.config import Settings
from trustlive.db import transaction
from trustlive.events import OutboxEvent
from trustlive.fulfillment import service
from trustlive.fulfillment.models import QcCase
from trustlive.fulfillment.schemas import InspectionIn, InspectorIn, LabIn, ParcelIn, WarehouseIn
from trustlive.fulfillment.tracking import Tracker, get_tracker
from trustlive.orders.schemas import ShipIn
from trustlive.signing import sign

JADE_PRICE = 128000  # the world's jade SKU (shop 1)
JADE_SHIPPING = 1200  # shop 1's flat shipping fee, set here


@dataclass
class Qc:
    w: World
    settings: Settings
    policy: service.QcPolicy
    tracker: Tracker
    labs: list[int]
    warehouses: list[int]
    inspectors: list[Principal]  # inspectors[i] works at warehouses[i]
    jade: int  # the jade category's id

    @property
    def merchant(self) -> Principal:
        return self.w.merchants[1]


def warehouse_in(name: str, lab_id: int, **changes: Any) -> WarehouseIn:
    fields = {"name": name, "recipient": "质检仓收货组", "phone": "0571-8888 0000", "region": "浙江省杭州市余杭区",
              "detail": f"{name} 仓库路 8 号", "lab_id": lab_id, **changes}  # fmt: skip
    return WarehouseIn(**fields)


async def qc_world(url: str, tmp_path: Path, **overrides: Any) -> Qc:
    settings = make_settings(url, tmp_path, **overrides)
    w = await build(url)
    policy = service.QcPolicy.from_settings(settings)
    hashed = await accounts.hash_password("correct-horse-9")
    async with transaction(w.sessionmaker) as s:
        inspectors = [
            principal(
                await accounts.create_user(
                    s, username=f"inspector{i}", password_hash=hashed, roles=["inspector"]
                ),
                "inspector",
            )  # fmt: skip
            for i in (1, 2)
        ]
        jade = (await catalog.get_category_by_slug(s, "jade")).id
    async with transaction(w.sessionmaker) as s:
        lab_a = await service.create_lab(
            s, w.ops, LabIn(name="国检珠宝检测中心", cma_no="201901123456"), policy
        )
        lab_b = await service.create_lab(
            s, w.ops, LabIn(name="华南宝玉石检测站", cnas_no="CNAS L1234"), policy
        )
        house_a = await service.create_warehouse(
            s, w.ops, warehouse_in("杭州质检仓", lab_a.id, is_default=True)
        )
        house_b = await service.create_warehouse(s, w.ops, warehouse_in("深圳质检仓", lab_b.id))
        for inspector, house in zip(inspectors, (house_a, house_b), strict=True):
            await service.add_inspector(s, w.ops, house.id, InspectorIn(user_id=inspector.id))
    await set_shipping(w, 1, JADE_SHIPPING, None)
    return Qc(w, settings, policy, get_tracker(settings, "sandbox"), [lab_a.id, lab_b.id], [house_a.id, house_b.id],
              inspectors, jade)  # fmt: skip


async def paid_jade(q: Qc, buyer: int = 0, key: str = "jade") -> int:
    """A jade order of ``buyer``, paid through the sandbox provider (captured into escrow)."""
    (order,) = await place(q.w, buyer, (q.w.skus[1], 1), key=key)
    intent = await start(q.w, q.settings, buyer, [order.id], f"pay-{key}")
    await buyer_pays(q.w, q.settings, intent)
    await deliver(q.w, q.settings)
    return order.id


async def shipped_jade(
    q: Qc, buyer: int = 0, key: str = "jade", tracking_no: str | None = None
) -> tuple[int, int]:
    """A paid jade order shipped by the shop to its QC warehouse; returns (order id, case id)."""
    order_id = await paid_jade(q, buyer, key)
    async with transaction(q.w.sessionmaker) as s:
        await service.ship(
            s, q.merchant, order_id, ShipIn("SF", tracking_no or f"SF{order_id:08d}"), q.tracker
        )
    async with transaction(q.w.sessionmaker) as s:
        case_id = await s.scalar(select(QcCase.id).where(QcCase.order_id == order_id))
    assert case_id is not None
    return order_id, case_id


async def received(q: Qc, buyer: int = 0, key: str = "jade", inspector: int = 0) -> tuple[int, int]:
    order_id, case_id = await shipped_jade(q, buyer, key)
    async with transaction(q.w.sessionmaker) as s:
        await service.receive(s, q.inspectors[inspector], case_id, q.policy)
    return order_id, case_id


def inspection(result: str = "pass", number: str = "NGTC-2026-0001", **changes: Any) -> InspectionIn:
    fields = {"result": result, "material": "和田玉", "weight_mg": 52340, "certificate_no": number,
              "notes": "白度好，无裂", **changes}  # fmt: skip
    return InspectionIn(**fields)


PARCEL = ParcelIn("SF", "SFQC0000001")


async def inspect(q: Qc, case_id: int, data: InspectionIn, inspector: int = 0) -> None:
    async with transaction(q.w.sessionmaker) as s:
        await service.record_inspection(s, q.inspectors[inspector], case_id, data, q.policy)


async def case_row(q: Qc, case_id: int) -> QcCase:
    async with transaction(q.w.sessionmaker) as s:
        case = await s.get(QcCase, case_id)
        assert case is not None
        return case


async def events_of(q: Qc, topic: str) -> list[dict[str, Any]]:
    async with transaction(q.w.sessionmaker) as s:
        rows = await s.scalars(
            select(OutboxEvent.payload).where(OutboxEvent.topic == topic).order_by(OutboxEvent.id)
        )
        return list(rows)


async def count(q: Qc, model: type, **where: Any) -> int:
    async with transaction(q.w.sessionmaker) as s:
        return await s.scalar(select(func.count()).select_from(model).filter_by(**where)) or 0


def hours(n: float) -> dt.timedelta:
    return dt.timedelta(hours=n)


def lab_headers(
    policy: service.QcPolicy, lab_id: int, body: bytes, now: dt.datetime | None = None
) -> dict[str, str]:
    """The headers a lab sends with ``body``, signed with its key (docs/inspection.md)."""
    timestamp = int((now or dt.datetime.now(dt.UTC)).timestamp())
    return {
        "Content-Type": "application/json",
        "X-Lab-Signature": sign(service.lab_secret(policy, lab_id), body, timestamp),
    }
