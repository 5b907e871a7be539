"""A small world for the score tests: shops, products, creators and orders written straight into
the source tables with the times a test needs (delivered 45 days ago, shipped 3 hours late...).
The trust domain then reads them through the source domains' services like any other data: the
thing under test (fact derivation, windows, curves, scores) is all real."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.accounts.models import User
from trustlive.aftersales.models import AftersalesRequest
from trustlive.catalog.models import Category, Product, Shop, Sku
from trustlive.fulfillment.models import QcCase, QcLab, QcWarehouse
from trustlive.orders.models import Checkout, Order, OrderLine
from trustlive.reviews.models import Review
from trustlive.trust.models import Complaint

NOW = dt.datetime(2026, 11, 30, 4, 0, tzinfo=dt.UTC)  # 12:00 in Shanghai
_seq = itertools.count(1)


def ago(days: float = 0, hours: float = 0) -> dt.datetime:
    return NOW - dt.timedelta(days=days, hours=hours)


@dataclass
class World:
    session: AsyncSession
    buyer_id: int = 0
    orders: list[int] = field(default_factory=list)

    async def user(self, name: str) -> int:
        u = User(username=f"{name}{next(_seq)}", display_name=name, password_hash="x")
        self.session.add(u)
        await self.session.flush()
        return u.id

    async def category(self, slug: str, inspection: bool = False) -> int:
        c = Category(slug=f"{slug}", name_zh=slug, name_en=slug, requires_inspection=inspection)
        self.session.add(c)
        await self.session.flush()
        return c.id

    async def shop(self, owner_id: int) -> int:
        n = next(_seq)
        s = Shop(owner_id=owner_id, slug=f"shop-{n}", name=f"Shop {n}")
        self.session.add(s)
        await self.session.flush()
        return s.id

    async def product(self, shop_id: int, category_id: int) -> tuple[int, int]:
        p = Product(
            shop_id=shop_id, category_id=category_id, title=f"Product {next(_seq)}", status="published"
        )
        self.session.add(p)
        await self.session.flush()
        sku = Sku(product_id=p.id, shop_id=shop_id, code=f"SKU{p.id}", option_values=[], combo_key="",
                  price_fen=10_000, stock=1000)  # fmt: skip
        self.session.add(sku)
        await self.session.flush()
        return p.id, sku.id

    async def order(
        self, shop_id: int, product: tuple[int, int], category_id: int, *, creator_id: int | None = None,
        paid: dt.datetime, ship_hours: float | None = 10, ship_by_hours: float = 48,
        deliver_hours: float | None = 60, status: str | None = None, refunded_at: dt.datetime | None = None,
    ) -> tuple[int, int]:  # fmt: skip
        """One paid order of one line; shipped ``ship_hours`` and delivered ``deliver_hours``
        after payment (None: not yet)."""
        if not self.buyer_id:
            self.buyer_id = await self.user("buyer")
        checkout = Checkout(
            buyer_id=self.buyer_id, idempotency_key=f"k{next(_seq)}", request_hash="h", total_fen=10_000
        )
        self.session.add(checkout)
        await self.session.flush()
        shipped = paid + dt.timedelta(hours=ship_hours) if ship_hours is not None else None
        delivered = (
            paid + dt.timedelta(hours=deliver_hours) if (deliver_hours is not None and shipped) else None
        )
        if status is None:
            status = "completed" if delivered else "shipped" if shipped else "paid"
        o = Order(checkout_id=checkout.id, buyer_id=self.buyer_id, shop_id=shop_id, status=status, goods_fen=10_000,
                  shipping_fen=0, total_fen=10_000, paid_fen=10_000, address={}, pay_deadline=paid,
                  paid_at=paid, ship_by=paid + dt.timedelta(hours=ship_by_hours), shipped_at=shipped,
                  delivered_at=delivered, completed_at=delivered, created_at=paid,
                  updated_at=refunded_at or paid)  # fmt: skip
        self.session.add(o)
        await self.session.flush()
        line = OrderLine(order_id=o.id, sku_id=product[1], product_id=product[0], title="Item", sku_code="S",
                         option_values=[], unit_price_fen=10_000, quantity=1, line_total_fen=10_000, source="shelf",
                         creator_id=creator_id, commission_bp=0, category_id=category_id, service_fee_bp=500,
                         return_window_days=7, requires_inspection=False)  # fmt: skip
        self.session.add(line)
        await self.session.flush()
        self.orders.append(o.id)
        return o.id, line.id

    async def review(self, order_id: int, line_id: int, product: int, service: int = 5, *,
                     first: int | None = None, shop_id: int, product_id: int) -> None:  # fmt: skip
        self.session.add(Review(
            order_id=order_id, order_line_id=line_id, product_id=product_id, shop_id=shop_id, buyer_id=self.buyer_id,
            title="Item", rating_product=product, rating_product_first=first or product, rating_logistics=5,
            rating_service=service, created_at=NOW, edit_until=NOW,
        ))  # fmt: skip
        await self.session.flush()

    async def aftersales(
        self, order_id: int, line_id: int | None, shop_id: int, *, reason: str, opened: dt.datetime,
        hours: float, status: str = "refunded", resolution: str = "approved", arbitrated: bool = False,
    ) -> None:  # fmt: skip
        resolved = opened + dt.timedelta(hours=hours)
        self.session.add(AftersalesRequest(
            order_id=order_id, line_id=line_id, buyer_id=self.buyer_id, shop_id=shop_id, kind="refund_only",
            reason=reason, seller_cause=reason in ("quality", "wrong_item", "not_as_described", "not_received"),
            amount_fen=100, status=status, created_at=opened, updated_at=resolved, responded_at=resolved,
            resolution=resolution, resolved_at=resolved, arbitrated_at=resolved if arbitrated else None,
        ))  # fmt: skip
        await self.session.flush()

    async def inspection(self, order_id: int, shop_id: int, at: dt.datetime, failed: bool) -> None:
        lab = QcLab(name=f"Lab {next(_seq)}")
        self.session.add(lab)
        await self.session.flush()
        wh = QcWarehouse(
            name=f"WH {next(_seq)}", recipient="r", phone="1", region="r", detail="d", lab_id=lab.id
        )
        self.session.add(wh)
        await self.session.flush()
        self.session.add(QcCase(order_id=order_id, shop_id=shop_id, warehouse_id=wh.id, status="failed" if failed else "passed",
                                inbound_carrier="sf", inbound_tracking_no=f"T{next(_seq)}", inspected_at=at,
                                result="fail" if failed else "pass"))  # fmt: skip
        await self.session.flush()

    async def complaint(self, order_id: int, line_id: int, creator_id: int, shop_id: int, product_id: int,
                        decided: dt.datetime, status: str = "upheld") -> None:  # fmt: skip
        self.session.add(Complaint(order_id=order_id, order_line_id=line_id, buyer_id=self.buyer_id,
                                   creator_id=creator_id, shop_id=shop_id, product_id=product_id, title="Item",
                                   claim="said real jade", status=status, created_at=decided, decided_at=decided))  # fmt: skip
        await self.session.flush()
