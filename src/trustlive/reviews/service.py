"""Review use cases."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.accounts.service import Principal
from trustlive.orders.schemas import OrderOut


async def order_panel(session: AsyncSession, viewer: Principal, order: OrderOut) -> Any:
    """What the order pages show about reviews for ``order`` (already visible to ``viewer``)."""
    return None


async def product_reviews(session: AsyncSession, product_id: int) -> Any:
    """The ratings summary and latest reviews a product page shows."""
    return None
