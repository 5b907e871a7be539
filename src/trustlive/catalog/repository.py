"""All catalog queries, including the full-text index of published products.

Search works on pre-segmented text: CJK characters become one token each and a query becomes a
phrase of them, so "和田玉" matches "新疆和田玉手镯" on both SQLite FTS5 and PostgreSQL tsvector,
for terms of any length. Latin words and numbers stay whole (lower-cased) tokens.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from trustlive.catalog.models import (
    Category,
    Product,
    ProductImage,
    ProductStatus,
    Shop,
    ShopStaff,
    Sku,
)
from trustlive.db import in_param

# CJK ideographs, kana, hangul, full-width forms: one token per character.
_CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_TOKEN_RE = re.compile(rf"[{_CJK}]|[^\W{_CJK}_]+", re.UNICODE)


def segment(value: str) -> list[str]:
    return [t.lower() for t in _TOKEN_RE.findall(value or "")]


def segmented_text(value: str) -> str:
    return " ".join(segment(value))


def _terms(query: str) -> list[list[str]]:
    """Whitespace-separated query terms, each a list of tokens (a phrase)."""
    return [tokens for part in query.split() if (tokens := segment(part))]


# --- categories -------------------------------------------------------------------------------


async def list_categories(session: AsyncSession, *, include_inactive: bool) -> list[Category]:
    stmt = select(Category).order_by(Category.position, Category.id)
    if not include_inactive:
        stmt = stmt.where(Category.is_active.is_(True))
    return list(await session.scalars(stmt))


async def get_category(session: AsyncSession, category_id: int) -> Category | None:
    return await session.get(Category, category_id)


async def get_category_by_slug(session: AsyncSession, slug: str) -> Category | None:
    return await session.scalar(select(Category).where(Category.slug == slug))


async def child_category_ids(session: AsyncSession, category_id: int) -> list[int]:
    return list(await session.scalars(select(Category.id).where(Category.parent_id == category_id)))


# --- shops ------------------------------------------------------------------------------------


async def get_shop(session: AsyncSession, shop_id: int) -> Shop | None:
    return await session.get(Shop, shop_id)


async def get_shop_by_slug(session: AsyncSession, slug: str) -> Shop | None:
    return await session.scalar(select(Shop).where(Shop.slug == slug))


async def shop_name_taken(session: AsyncSession, name: str, *, except_id: int | None = None) -> bool:
    stmt = select(func.count()).where(func.lower(Shop.name) == name.lower())
    if except_id is not None:
        stmt = stmt.where(Shop.id != except_id)
    return bool(await session.scalar(stmt))


async def slug_taken(session: AsyncSession, slug: str) -> bool:
    return bool(await session.scalar(select(func.count()).where(Shop.slug == slug)))


async def count_owned_shops(session: AsyncSession, user_id: int) -> int:
    return await session.scalar(select(func.count()).where(Shop.owner_id == user_id)) or 0


async def staff_role(session: AsyncSession, shop_id: int, user_id: int) -> str | None:
    return await session.scalar(
        select(ShopStaff.role).where(ShopStaff.shop_id == shop_id, ShopStaff.user_id == user_id)
    )


async def list_staff(session: AsyncSession, shop_id: int) -> list[ShopStaff]:
    return list(
        await session.scalars(select(ShopStaff).where(ShopStaff.shop_id == shop_id).order_by(ShopStaff.id))
    )


async def remove_staff(session: AsyncSession, shop_id: int, user_id: int) -> bool:
    result = await session.execute(
        delete(ShopStaff).where(
            ShopStaff.shop_id == shop_id, ShopStaff.user_id == user_id, ShopStaff.role != "owner"
        )
    )
    return result.rowcount > 0


async def shops_of_member(session: AsyncSession, user_id: int) -> list[Shop]:
    stmt = (
        select(Shop)
        .join(ShopStaff, ShopStaff.shop_id == Shop.id)
        .where(ShopStaff.user_id == user_id)
        .order_by(Shop.id)
    )
    return list(await session.scalars(stmt))


async def list_shops(session: AsyncSession, *, after_id: int | None, limit: int) -> list[Shop]:
    stmt = select(Shop).where(Shop.status == "active").order_by(Shop.id).limit(limit)
    if after_id is not None:
        stmt = stmt.where(Shop.id > after_id)
    return list(await session.scalars(stmt))


# --- products ---------------------------------------------------------------------------------


async def get_product(session: AsyncSession, product_id: int, *, full: bool = False) -> Product | None:
    if not full:
        return await session.get(Product, product_id)
    stmt = (
        select(Product)
        .where(Product.id == product_id)
        .options(selectinload(Product.options), selectinload(Product.skus), selectinload(Product.images))
        .execution_options(populate_existing=True)
    )
    return await session.scalar(stmt)


async def get_sku(session: AsyncSession, sku_id: int) -> Sku | None:
    return await session.get(Sku, sku_id)


async def sku_codes_taken(
    session: AsyncSession, shop_id: int, codes: list[str], *, except_sku: int | None = None
) -> list[str]:
    if not codes:
        return []
    stmt = select(Sku.code).where(Sku.shop_id == shop_id, Sku.code.in_(codes))
    if except_sku is not None:
        stmt = stmt.where(Sku.id != except_sku)
    return list(await session.scalars(stmt))


async def count_images(session: AsyncSession, product_id: int) -> int:
    return await session.scalar(select(func.count()).where(ProductImage.product_id == product_id)) or 0


async def get_image(session: AsyncSession, image_id: int) -> ProductImage | None:
    return await session.get(ProductImage, image_id)


async def list_shop_products(
    session: AsyncSession, shop_id: int, *, statuses: list[str], after_id: int | None, limit: int
) -> list[Product]:
    stmt = (
        select(Product)
        .where(Product.shop_id == shop_id, Product.status.in_(statuses))
        .order_by(Product.id.desc())
        .limit(limit)
    )
    if after_id is not None:
        stmt = stmt.where(Product.id < after_id)
    return list(await session.scalars(stmt))


async def list_category_products(
    session: AsyncSession, category_ids: list[int], *, after_id: int | None, limit: int
) -> list[Product]:
    stmt = (
        select(Product)
        .join(Shop, Shop.id == Product.shop_id)
        .where(
            Product.category_id.in_(category_ids),
            Product.status == ProductStatus.published,
            Shop.status == "active",
        )
        .order_by(Product.id.desc())
        .limit(limit)
    )
    if after_id is not None:
        stmt = stmt.where(Product.id < after_id)
    return list(await session.scalars(stmt))


async def latest_published(session: AsyncSession, limit: int) -> list[Product]:
    stmt = (
        select(Product)
        .join(Shop, Shop.id == Product.shop_id)
        .where(Product.status == ProductStatus.published, Shop.status == "active")
        .order_by(Product.published_at.desc(), Product.id.desc())
        .limit(limit)
    )
    return list(await session.scalars(stmt))


async def published_of_shops(
    session: AsyncSession, shop_ids: list[int], *, limit: int, before: tuple[Any, int] | None = None
) -> list[Any]:
    """(id, shop_id, published_at) of these active shops' published products, newest first,
    continuing below ``before`` (published_at, id) when given."""
    if not shop_ids:
        return []
    stmt = (
        select(Product.id, Product.shop_id, Product.published_at)
        .join(Shop, Shop.id == Product.shop_id)
        .where(
            in_param(Product.shop_id, "ids", session.bind.dialect.name),
            Product.status == ProductStatus.published,
            Product.published_at.is_not(None),
            Shop.status == "active",
        )
        .order_by(Product.published_at.desc(), Product.id.desc())
        .limit(limit)
    )
    if before is not None:
        at, below = before
        stmt = stmt.where((Product.published_at < at) | ((Product.published_at == at) & (Product.id < below)))
    return list((await session.execute(stmt, {"ids": sorted(set(shop_ids))})).all())


async def published_after(session: AsyncSession, after_id: int, limit: int) -> list[Any]:
    """(id, shop_id, published_at) of published products of active shops in id order, from
    ``after_id`` on: for a reader that walks them all in pages."""
    stmt = (
        select(Product.id, Product.shop_id, Product.published_at)
        .join(Shop, Shop.id == Product.shop_id)
        .where(
            Product.id > after_id,
            Product.status == ProductStatus.published,
            Product.published_at.is_not(None),
            Shop.status == "active",
        )
        .order_by(Product.id)
        .limit(limit)
    )
    return list((await session.execute(stmt)).all())


async def card_rows(session: AsyncSession, product_ids: list[int]) -> list[Any]:
    """(id, title, status, shop_id, shop_name, shop_slug, min_price_fen, max_price_fen, stock,
    image_path) of many products in one statement, prepared once whatever their number: the
    price range and stock of the active SKUs, the first picture (lists and feeds show many
    cards a page)."""
    if not product_ids:
        return []
    conn = await session.connection()
    rows = await conn.execute(
        _card_rows_statement(session.bind.dialect.name), {"ids": sorted(set(product_ids))}
    )
    return list(rows)


@functools.cache
def _card_rows_statement(dialect: str):  # type: ignore[no-untyped-def]
    p, k, i = Product, Sku, ProductImage
    prices = (
        select(k.product_id, func.min(k.price_fen).label("lo"), func.max(k.price_fen).label("hi"),
               func.sum(k.stock).label("stock"))
        .where(in_param(k.product_id, "ids", dialect), k.is_active.is_(True))
        .group_by(k.product_id)
        .subquery()
    )  # fmt: skip
    image = select(i.path).where(i.product_id == p.id).order_by(i.id).limit(1).scalar_subquery()
    return (
        select(p.id, p.title, p.status, Shop.id, Shop.name, Shop.slug, func.coalesce(prices.c.lo, 0),
               func.coalesce(prices.c.hi, 0), func.coalesce(prices.c.stock, 0), image)
        .join(Shop, Shop.id == p.shop_id)
        .outerjoin(prices, prices.c.product_id == p.id)
        .where(in_param(p.id, "ids", dialect))
    )  # fmt: skip


async def shops_by_ids(session: AsyncSession, shop_ids: list[int]) -> dict[int, Shop]:
    if not shop_ids:
        return {}
    return {s.id: s for s in await session.scalars(select(Shop).where(Shop.id.in_(set(shop_ids))))}


# --- search index -----------------------------------------------------------------------------


async def index_product(session: AsyncSession, product: Product, extra: str) -> None:
    """(Re)index one product; ``extra`` carries category and shop names for matching."""
    title = segmented_text(product.title)
    body = segmented_text(f"{product.description} {extra}")
    await unindex_product(session, product.id)
    if session.bind.dialect.name == "sqlite":
        await session.execute(
            text("INSERT INTO product_search(rowid, title, body) VALUES (:id, :title, :body)"),
            {"id": product.id, "title": title, "body": body},
        )
    else:
        await session.execute(
            text(
                "INSERT INTO product_search(product_id, doc) VALUES (:id, "
                "setweight(to_tsvector('simple', :title), 'A') || setweight(to_tsvector('simple', :body), 'B'))"
            ),
            {"id": product.id, "title": title, "body": body},
        )


async def unindex_product(session: AsyncSession, product_id: int) -> None:
    column = "rowid" if session.bind.dialect.name == "sqlite" else "product_id"
    await session.execute(text(f"DELETE FROM product_search WHERE {column} = :id"), {"id": product_id})


async def search_products(
    session: AsyncSession, query: str, *, category_ids: list[int] | None, offset: int, limit: int
) -> list[int]:
    """Product ids of published products matching every term, best first."""
    terms = _terms(query)
    if not terms:
        return []
    params: dict[str, object] = {"limit": limit, "offset": offset}
    category_filter = ""
    if category_ids:
        names = []
        for i, cid in enumerate(category_ids):
            params[f"c{i}"] = cid
            names.append(f":c{i}")
        category_filter = f" AND p.category_id IN ({', '.join(names)})"
    if session.bind.dialect.name == "sqlite":
        # Each term is a quoted FTS5 phrase; tokens are letters/digits only, so quoting is safe.
        params["match"] = " AND ".join('"' + " ".join(t) + '"' for t in terms)
        sql = (
            "SELECT p.id FROM product_search s JOIN products p ON p.id = s.rowid "
            "JOIN shops sh ON sh.id = p.shop_id "
            "WHERE product_search MATCH :match AND p.status = 'published' AND sh.status = 'active'"
            f"{category_filter} ORDER BY bm25(product_search, 10.0, 1.0), p.id DESC "
            "LIMIT :limit OFFSET :offset"
        )
    else:
        parts = []
        for i, tokens in enumerate(terms):
            params[f"t{i}"] = " ".join(tokens)
            parts.append(f"phraseto_tsquery('simple', :t{i})")
        tsquery = " && ".join(parts)
        sql = (
            f"SELECT p.id FROM product_search s JOIN products p ON p.id = s.product_id "
            "JOIN shops sh ON sh.id = p.shop_id "
            f"WHERE s.doc @@ ({tsquery}) AND p.status = 'published' AND sh.status = 'active'"
            f"{category_filter} ORDER BY ts_rank(s.doc, {tsquery}) DESC, p.id DESC "
            "LIMIT :limit OFFSET :offset"
        )
    return list(await session.scalars(text(sql), params))


async def staff_user_ids(session: AsyncSession, shop_id: int) -> list[int]:
    return list(await session.scalars(select(ShopStaff.user_id).where(ShopStaff.shop_id == shop_id)))


# --- stock ------------------------------------------------------------------------------------


async def skus_with_policies(session: AsyncSession, sku_ids: list[int]) -> list[Any]:
    """Rows of what checkout snapshots from a SKU, its product, category and shop."""
    if not sku_ids:
        return []
    conn = await session.connection()  # Core: checkout reads these for every batch
    rows = await conn.execute(
        _skus_with_policies_statement(session.bind.dialect.name), {"ids": sorted(set(sku_ids))}
    )
    return list(rows)


@functools.cache
def _skus_with_policies_statement(dialect: str):  # type: ignore[no-untyped-def]
    return (
        select(
            Sku.id.label("sku_id"), Sku.product_id, Sku.shop_id, Product.title, Sku.code, Sku.option_values,
            Sku.price_fen, Sku.per_buyer_limit, Product.commission_bp, Product.category_id, Category.service_fee_bp,
            Category.return_window_days, Category.requires_inspection, Product.status.label("product_status"),
            Sku.is_active, Shop.status.label("shop_status"), Sku.stock,
        )
        .join(Product, Product.id == Sku.product_id)
        .join(Category, Category.id == Product.category_id)
        .join(Shop, Shop.id == Sku.shop_id)
        .where(in_param(Sku.id, "ids", dialect))
    )  # fmt: skip


async def take_stock(session: AsyncSession, sku_id: int, quantity: int) -> bool:
    result = await session.execute(
        update(Sku)
        .where(Sku.id == sku_id, Sku.stock >= quantity)
        .values(stock=Sku.stock - quantity)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


async def return_stock(session: AsyncSession, sku_id: int, quantity: int) -> None:
    await session.execute(
        update(Sku)
        .where(Sku.id == sku_id)
        .values(stock=Sku.stock + quantity)
        .execution_options(synchronize_session=False)
    )


async def lock_stock(session: AsyncSession, sku_ids: list[int]) -> dict[int, int]:
    """Available stock of these SKUs, rows locked in id order (PostgreSQL; SQLite's write lock
    already covers the transaction)."""
    if not sku_ids:
        return {}
    dialect = session.bind.dialect.name
    conn = await session.connection()
    rows = await conn.execute(_stock_statement(dialect), {"ids": sorted(set(sku_ids))})
    return dict(rows.all())  # type: ignore[arg-type]


@functools.cache
def _stock_statement(dialect: str):  # type: ignore[no-untyped-def]
    stmt = select(Sku.id, Sku.stock).where(in_param(Sku.id, "ids", dialect)).order_by(Sku.id)
    return stmt.with_for_update() if dialect == "postgresql" else stmt
