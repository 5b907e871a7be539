"""JSON routes for the catalog: thin wrappers over catalog.service."""

from __future__ import annotations

from typing import Annotated

from litestar import delete, get, patch, post, put
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.accounts.service import Principal
from trustlive.catalog import service
from trustlive.catalog.schemas import (
    CategoryIn,
    CategoryOut,
    CategoryPatch,
    ImageOut,
    ProductIn,
    ProductOut,
    ProductPage,
    ProductPatch,
    ShopIn,
    ShopOut,
    ShopPage,
    ShopPatch,
    SkuOut,
    SkuPatch,
    StaffIn,
    StaffOut,
)
from trustlive.config import Settings
from trustlive.web.forms import to_upload
from trustlive.web.pagination import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor, encode_cursor
from trustlive.web.policy import allow, public, signed_in

Limit = Annotated[int, Parameter(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str | None, Parameter(max_length=200)]
Multipart = Body(media_type=RequestEncodingType.MULTI_PART)


def _page_after(cursor: str | None) -> int | None:
    decoded = decode_cursor(cursor, "before")
    return decoded["before"] if decoded else None


# --- categories -------------------------------------------------------------------------------


@get("/categories", tags=["catalog"], **public())
async def list_categories(db: AsyncSession) -> list[CategoryOut]:
    return [service.category_out(c) for c in await service.list_categories(db)]


@post("/categories", status_code=201, tags=["catalog"], **allow("ops"))
async def create_category(data: CategoryIn, me: Principal, db: AsyncSession) -> CategoryOut:
    return service.category_out(await service.create_category(db, me, data))


@patch("/categories/{category_id:int}", tags=["catalog"], **allow("ops"))
async def update_category(
    category_id: int, data: CategoryPatch, me: Principal, db: AsyncSession
) -> CategoryOut:
    return service.category_out(await service.update_category(db, me, category_id, data))


@get("/categories/{slug:str}/products", tags=["catalog"], **public())
async def category_products(
    slug: str, db: AsyncSession, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> ProductPage:
    category = await service.get_category_by_slug(db, slug)
    items = await service.category_products(db, category, after_id=_page_after(cursor), limit=limit + 1)
    return _product_page(items, limit)


# --- shops ------------------------------------------------------------------------------------


@get("/shops", tags=["catalog"], **public())
async def list_shops(db: AsyncSession, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None) -> ShopPage:
    after = decode_cursor(cursor, "after")
    shops = await service.list_shops(db, after_id=after["after"] if after else None, limit=limit + 1)
    items = [service.shop_out(s) for s in shops[:limit]]
    return ShopPage(items, encode_cursor({"after": items[-1].id}) if len(shops) > limit else None)


@post("/shops", status_code=201, tags=["catalog"], **allow("merchant"))
async def open_shop(data: ShopIn, me: Principal, db: AsyncSession) -> ShopOut:
    """Open the caller's shop (one per merchant account)."""
    return service.shop_out(await service.open_shop(db, me, data))


@get("/me/shops", tags=["catalog"], **signed_in())
async def my_shops(me: Principal, db: AsyncSession) -> list[ShopOut]:
    """Shops the caller owns or works for."""
    return [service.shop_out(s) for s in await service.shops_of(db, me)]


@get("/shops/{shop_id:int}", tags=["catalog"], **public())
async def shop_detail(shop_id: int, db: AsyncSession) -> ShopOut:
    shop = await service.get_shop(db, shop_id)
    return service.shop_out(await service.get_shop_by_slug(db, shop.slug))


@patch("/shops/{shop_id:int}", tags=["catalog"], **signed_in())
async def update_shop(shop_id: int, data: ShopPatch, me: Principal, db: AsyncSession) -> ShopOut:
    return service.shop_out(await service.update_shop(db, me, shop_id, data))


@put("/shops/{shop_id:int}/logo", tags=["catalog"], **signed_in())
async def upload_logo(
    shop_id: int, data: Annotated[UploadFile, Multipart], me: Principal, db: AsyncSession, settings: Settings
) -> ShopOut:
    upload = await to_upload(data, settings.max_upload_bytes)
    shop = await service.set_shop_logo(db, me, shop_id, upload, settings.media_dir, settings.max_upload_bytes)
    return service.shop_out(shop)


@get("/shops/{shop_id:int}/staff", tags=["catalog"], **signed_in())
async def list_staff(shop_id: int, me: Principal, db: AsyncSession) -> list[StaffOut]:
    return await service.list_staff(db, me, shop_id)


@post("/shops/{shop_id:int}/staff", status_code=201, tags=["catalog"], **signed_in())
async def add_staff(shop_id: int, data: StaffIn, me: Principal, db: AsyncSession) -> list[StaffOut]:
    return await service.add_staff(db, me, shop_id, data.username)


@delete("/shops/{shop_id:int}/staff/{user_id:int}", status_code=200, tags=["catalog"], **signed_in())
async def remove_staff(shop_id: int, user_id: int, me: Principal, db: AsyncSession) -> list[StaffOut]:
    return await service.remove_staff(db, me, shop_id, user_id)


@get("/shops/{shop_id:int}/products", tags=["catalog"], **public())
async def shop_products(
    shop_id: int,
    db: AsyncSession,
    viewer: Principal | None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    include_unpublished: bool = False,
) -> ProductPage:
    """Published products; shop staff may add `include_unpublished=true` to see drafts too."""
    items = await service.shop_products(
        db,
        viewer,
        shop_id,
        after_id=_page_after(cursor),
        limit=limit + 1,
        include_unpublished=include_unpublished,
    )
    return _product_page(items, limit)


# --- products ---------------------------------------------------------------------------------


@post("/shops/{shop_id:int}/products", status_code=201, tags=["catalog"], **signed_in())
async def create_product(shop_id: int, data: ProductIn, me: Principal, db: AsyncSession) -> ProductOut:
    """Create a draft product with its options and SKUs (codes are generated when omitted)."""
    product = await service.create_product(db, me, shop_id, data)
    return await service.product_detail(db, me, product.id)


@get("/products/{product_id:int}", tags=["catalog"], **public())
async def product_detail(product_id: int, db: AsyncSession, viewer: Principal | None) -> ProductOut:
    return await service.product_detail(db, viewer, product_id)


@patch("/products/{product_id:int}", tags=["catalog"], **signed_in())
async def update_product(product_id: int, data: ProductPatch, me: Principal, db: AsyncSession) -> ProductOut:
    await service.update_product(db, me, product_id, data)
    return await service.product_detail(db, me, product_id)


@patch("/products/{product_id:int}/skus/{sku_id:int}", tags=["catalog"], **signed_in())
async def update_sku(product_id: int, sku_id: int, data: SkuPatch, me: Principal, db: AsyncSession) -> SkuOut:
    s = await service.update_sku(db, me, product_id, sku_id, data)
    return service.sku_out(s)


@post("/products/{product_id:int}/publish", status_code=200, tags=["catalog"], **signed_in())
async def publish(product_id: int, me: Principal, db: AsyncSession) -> ProductOut:
    await service.publish(db, me, product_id)
    return await service.product_detail(db, me, product_id)


@post("/products/{product_id:int}/unpublish", status_code=200, tags=["catalog"], **signed_in())
async def unpublish(product_id: int, me: Principal, db: AsyncSession) -> ProductOut:
    await service.unpublish(db, me, product_id)
    return await service.product_detail(db, me, product_id)


@post("/products/{product_id:int}/images", status_code=201, tags=["catalog"], **signed_in())
async def add_image(
    product_id: int,
    data: Annotated[UploadFile, Multipart],
    me: Principal,
    db: AsyncSession,
    settings: Settings,
) -> ImageOut:
    """Upload a JPEG, PNG or WebP (at most TRUSTLIVE_MAX_UPLOAD_BYTES, 9 per product)."""
    upload = await to_upload(data, settings.max_upload_bytes)
    i = await service.add_image(db, me, product_id, upload, settings.media_dir, settings.max_upload_bytes)
    return ImageOut(i.id, f"/media/{i.path}", i.width, i.height, i.content_type, i.byte_size)


@delete("/products/{product_id:int}/images/{image_id:int}", status_code=204, tags=["catalog"], **signed_in())
async def delete_image(product_id: int, image_id: int, me: Principal, db: AsyncSession) -> None:
    await service.delete_image(db, me, product_id, image_id)


# --- shelf search -----------------------------------------------------------------------------


@get("/search", tags=["catalog"], **public())
async def search(
    db: AsyncSession,
    q: Annotated[str, Parameter(min_length=1, max_length=100)],
    limit: Limit = DEFAULT_LIMIT,
    category_id: int | None = None,
    cursor: Cursor = None,
) -> ProductPage:
    """Full-text search over published products; Chinese terms of any length match."""
    offset = decode_cursor(cursor, "offset")
    start = offset["offset"] if offset else 0
    items = await service.search(db, q, category_id=category_id, offset=start, limit=limit + 1)
    more = len(items) > limit
    return ProductPage(items[:limit], encode_cursor({"offset": start + limit}) if more else None)


def _product_page(items: list, limit: int) -> ProductPage:  # type: ignore[type-arg]
    more = len(items) > limit
    items = items[:limit]
    return ProductPage(items, encode_cursor({"before": items[-1].id}) if more else None)


routes = [
    list_categories,
    create_category,
    update_category,
    category_products,
    list_shops,
    open_shop,
    my_shops,
    shop_detail,
    update_shop,
    upload_logo,
    list_staff,
    add_staff,
    remove_staff,
    shop_products,
    create_product,
    product_detail,
    update_product,
    update_sku,
    publish,
    unpublish,
    add_image,
    delete_image,
    search,
]
