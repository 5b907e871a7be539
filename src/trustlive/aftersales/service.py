"""After-sales use cases (docs/aftersales.md)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.accounts.service import Principal
from trustlive.orders.schemas import OrderOut


async def order_panel(session: AsyncSession, viewer: Principal, order: OrderOut) -> Any:
    """What the order pages show about after-sales for ``order`` (already visible to ``viewer``)."""
    return None
