"""What every shop-console page does first: the caller's shops, and the one the page is about."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.accounts.service import Principal
from trustlive.catalog import service as catalog
from trustlive.errors import Forbidden
from trustlive.web.i18n import gettext


async def my_shops(db: AsyncSession, me: Principal) -> list[catalog.Shop]:
    """The shops the caller owns or works for; 403 for someone who is neither a merchant nor staff
    (a merchant without a shop gets an empty list: the page offers to open one)."""
    shops = await catalog.shops_of(db, me)
    if not shops and not me.has("merchant"):
        raise Forbidden(gettext("The shop console is for merchants and shop staff."), code="not_shop_staff")
    return shops


def pick_shop(shops: list[catalog.Shop], me: Principal, shop_id: int | None) -> catalog.Shop:
    """The shop a console page is about: the one asked for, else the caller's own, else the first."""
    if shop_id is not None:
        for shop in shops:
            if shop.id == shop_id:
                return shop
        raise Forbidden(gettext("this is not your shop"), code="not_your_shop")
    return next((s for s in shops if s.owner_id == me.id), shops[0])
