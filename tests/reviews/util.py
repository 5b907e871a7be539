"""Shared pieces of the review tests: orders taken to completion through the services, and the
outcome read straight from the tables."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from tests.helpers import image_bytes
from tests.orders.world import World, build
from trustlive.catalog.service import Upload
from trustlive.db import transaction
from trustlive.events import OutboxEvent
from trustlive.orders import service as orders
from trustlive.orders.schemas import ItemIn, OrderIn, ShipIn
from trustlive.reviews.models import Review, ReviewPhoto
from trustlive.reviews.schemas import ReviewIn

__all__ = ["World", "build"]


async def placed(w: World, buyer: int, key: str, quantity: int = 1) -> int:
    """A paid order of the kids' shop's SKU (no inspection), paid straight through the orders
    service: money is not what these tests are about."""
    person = w.buyers[buyer]
    data = OrderIn(items=[ItemIn(sku_id=w.skus[0], quantity=quantity)], address_id=w.addresses[person.id])  # type: ignore[arg-type]
    async with transaction(w.sessionmaker) as s:
        order = (await orders.place_order(s, person, data, key)).orders[0]
        await orders.mark_paid(s, order.id, order.total_fen, f"test:{key}")
        return order.id


async def advance(w: World, order_id: int, to: str) -> None:
    """Move a paid order on: shipped, delivered, completed (the buyer confirms receipt)."""
    steps = ("shipped", "delivered", "completed")
    async with transaction(w.sessionmaker) as s:
        order = await orders.load_order(s, order_id)
        for step in steps[: steps.index(to) + 1]:
            if step == "shipped" and order.status == "paid":
                await orders.ship_order(
                    s, w.merchants[0], order_id, ShipIn(carrier="SF", tracking_no=f"SF{order_id:06d}")
                )
            elif step == "delivered" and order.status in ("paid", "shipped"):
                await orders.mark_delivered(s, w.merchants[0], order_id)
            elif step == "completed":
                await orders.confirm_receipt(s, w.buyers[_buyer_index(w, order.buyer_id)], order_id)
            order = await orders.load_order(s, order_id)


def _buyer_index(w: World, buyer_id: int) -> int:
    return next(i for i, b in enumerate(w.buyers) if b.id == buyer_id)


async def completed(w: World, buyer: int, key: str) -> tuple[int, int]:
    """A completed order of ``buyer``: (order id, its line id)."""
    order_id = await placed(w, buyer, key)
    await advance(w, order_id, "completed")
    async with transaction(w.sessionmaker) as s:
        order = await orders.load_order(s, order_id)
    return order_id, order.lines[0].id


def rating(p: int = 5, logistics: int = 5, service: int = 5, text: str = "") -> ReviewIn:
    return ReviewIn(rating_product=p, rating_logistics=logistics, rating_service=service, text=text)  # type: ignore[arg-type]


def png(name: str = "p.png") -> Upload:
    return Upload(name, "image/png", image_bytes("PNG"))


async def review_rows(w: World) -> list[Review]:
    async with transaction(w.sessionmaker) as s:
        return list(await s.scalars(select(Review).order_by(Review.id)))


async def photo_rows(w: World) -> list[ReviewPhoto]:
    async with transaction(w.sessionmaker) as s:
        return list(await s.scalars(select(ReviewPhoto).order_by(ReviewPhoto.id)))


async def events_of(w: World, topic: str) -> list[dict]:
    async with transaction(w.sessionmaker) as s:
        rows = await s.scalars(select(OutboxEvent).where(OutboxEvent.topic == topic).order_by(OutboxEvent.id))
        return [dict(e.payload) for e in rows]


def stored_files(media_dir: Path) -> list[Path]:
    folder = media_dir / "reviews"
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []
