"""JSON routes for shipments and the tracking webhook: thin wrappers over fulfillment.service."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.accounts.service import Principal
from trustlive.config import Settings
from trustlive.fulfillment import service
from trustlive.fulfillment.schemas import ShipmentOut, TrackingAck
from trustlive.fulfillment.tracking import get_tracker
from trustlive.orders.service import OrderPolicy
from trustlive.web.policy import public, signed_in


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


routes = [order_shipments, tracking_webhook]
