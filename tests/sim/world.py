"""Read the demo world back straight from the tables, for comparing two seedings."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.accounts.models import User, UserRole
from trustlive.catalog.models import Category, Product, ProductImage, ProductOption, Shop, ShopStaff, Sku
from trustlive.db import create_engine, create_sessionmaker

COUNTED = (User, UserRole, Category, Shop, ShopStaff, Product, ProductOption, Sku, ProductImage)


async def _rows(session: AsyncSession, stmt: Select[Any]) -> list[tuple[Any, ...]]:
    return sorted(tuple(row) for row in await session.execute(stmt))


async def fingerprint(url: str) -> dict[str, Any]:
    """Counts and sorted natural keys of everything the demo seed makes (ids and paths left out)."""
    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as s:
            counts = {m.__tablename__: await s.scalar(select(func.count()).select_from(m)) for m in COUNTED}
            return {
                "counts": counts,
                "roles": await _rows(
                    s, select(User.username, UserRole.role).join(UserRole, UserRole.user_id == User.id)
                ),
                "users": await _rows(s, select(User.username, User.display_name)),
                "categories": await _rows(
                    s,
                    select(
                        Category.slug,
                        Category.parent_id.is_not(None),
                        Category.requires_inspection,
                        Category.return_window_days,
                        Category.service_fee_bp,
                    ),
                ),
                "shops": await _rows(s, select(Shop.slug, Shop.name, Shop.logo_path.is_not(None))),
                "staff": await _rows(
                    s,
                    select(Shop.slug, User.username, ShopStaff.role)
                    .join(ShopStaff, ShopStaff.shop_id == Shop.id)
                    .join(User, User.id == ShopStaff.user_id),
                ),
                "products": await _rows(
                    s,
                    select(Shop.slug, Product.title, Product.status, Category.slug)
                    .join(Shop, Shop.id == Product.shop_id)
                    .join(Category, Category.id == Product.category_id),
                ),
                "skus": await _rows(
                    s,
                    select(Shop.slug, Sku.code, Sku.price_fen, Sku.stock, Sku.combo_key).join(
                        Shop, Shop.id == Sku.shop_id
                    ),
                ),
                "images": await _rows(
                    s,
                    select(Product.title, ProductImage.content_type, ProductImage.byte_size).join(
                        Product, Product.id == ProductImage.product_id
                    ),
                ),
            }
    finally:
        await engine.dispose()
