"""Catalog use cases: categories (ops), shops and staff (merchants), products, SKUs, images, shelf.

Permission rules: ops manage categories; a shop's owner manages the shop and its staff; owner and
staff manage its products. Nobody else may touch a shop; unpublished products are invisible (404)
to everyone outside the shop and ops.
"""

from __future__ import annotations

import datetime as dt
import io
import itertools
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

import msgspec
from PIL import Image, UnidentifiedImageError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive import events
from trustlive.accounts import service as accounts
from trustlive.accounts.service import Principal
from trustlive.catalog import repository as repo
from trustlive.catalog.models import (
    Category,
    Product,
    ProductImage,
    ProductOption,
    ProductStatus,
    Shop,
    ShopStaff,
    Sku,
    combo_key,
)
from trustlive.catalog.schemas import (
    CategoryIn,
    CategoryOut,
    CategoryPatch,
    ImageOut,
    OptionOut,
    ProductCard,
    ProductIn,
    ProductOut,
    ProductPatch,
    ShopIn,
    ShopOut,
    ShopPatch,
    SkuIn,
    SkuOut,
    SkuPatch,
    StaffOut,
)
from trustlive.db import delete_on_rollback, utcnow
from trustlive.errors import (
    Conflict,
    FieldError,
    Forbidden,
    InvalidTransition,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
    validated,
)
from trustlive.money import check_price

MAX_IMAGES = 9
MAX_IMAGE_SIDE = 8000
IMAGE_FORMATS = {"JPEG": ("image/jpeg", "jpg"), "PNG": ("image/png", "png"), "WEBP": ("image/webp", "webp")}
MAX_STOCK = 1_000_000


# --- categories -------------------------------------------------------------------------------


def category_out(c: Category) -> CategoryOut:
    return CategoryOut(
        c.id,
        c.slug,
        c.name_zh,
        c.name_en,
        c.parent_id,
        c.requires_inspection,
        c.return_window_days,
        c.service_fee_bp,
        c.is_active,
        c.position,
    )


async def list_categories(session: AsyncSession, *, include_inactive: bool = False) -> list[Category]:
    return await repo.list_categories(session, include_inactive=include_inactive)


async def get_category(session: AsyncSession, category_id: int, *, field: str = "category_id") -> Category:
    category = await repo.get_category(session, category_id)
    if category is None:
        raise NotFound(f"category {category_id} not found", code="category_not_found", field=field)
    return category


async def get_category_by_slug(session: AsyncSession, slug: str) -> Category:
    category = await repo.get_category_by_slug(session, slug)
    if category is None or not category.is_active:
        raise NotFound(f"category {slug!r} not found", code="category_not_found")
    return category


async def create_category(session: AsyncSession, actor: Principal, data: CategoryIn) -> Category:
    data = validated(data)
    _require_ops(actor)
    if await repo.get_category_by_slug(session, data.slug):
        raise Conflict("slug: a category with this slug exists", field="slug", code="slug_taken")
    if data.parent_id is not None:
        parent = await get_category(session, data.parent_id, field="parent_id")
        if parent.parent_id is not None:
            raise ValidationFailed(
                "parent_id: categories nest one level; choose a top-level parent", field="parent_id"
            )
    category = Category(
        slug=data.slug,
        name_zh=data.name_zh.strip(),
        name_en=data.name_en.strip(),
        parent_id=data.parent_id,
        requires_inspection=data.requires_inspection,
        return_window_days=data.return_window_days,
        service_fee_bp=data.service_fee_bp,
        position=data.position,
    )
    session.add(category)
    await session.flush()
    events.record(session, "catalog.category_changed", {"category_id": category.id})
    return category


async def update_category(
    session: AsyncSession, actor: Principal, category_id: int, patch: CategoryPatch
) -> Category:
    patch = validated(patch)
    _require_ops(actor)
    category = await get_category(session, category_id)
    if patch.parent_id is not msgspec.UNSET:
        await _check_parent(session, category, patch.parent_id)
        category.parent_id = patch.parent_id
    for name in patch.__struct_fields__:
        value = getattr(patch, name)
        if name != "parent_id" and value is not None:
            setattr(category, name, value.strip() if isinstance(value, str) else value)
    await session.flush()
    events.record(session, "catalog.category_changed", {"category_id": category.id})
    return category


async def _check_parent(session: AsyncSession, category: Category, parent_id: int | None) -> None:
    """Categories nest one level: a parent must exist, be top-level, and not be the category
    itself; a category that has children cannot move under another."""
    if parent_id is None:
        return
    if parent_id == category.id:
        raise ValidationFailed("parent_id: a category cannot be its own parent", field="parent_id")
    parent = await get_category(session, parent_id, field="parent_id")
    if parent.parent_id is not None:
        raise ValidationFailed(
            "parent_id: categories nest one level; choose a top-level parent", field="parent_id"
        )
    if await repo.child_category_ids(session, category.id):
        raise ValidationFailed(
            "parent_id: this category has subcategories, so it must stay top-level", field="parent_id"
        )


# --- shops ------------------------------------------------------------------------------------


def shop_out(shop: Shop) -> ShopOut:
    logo = f"/media/{shop.logo_path}" if shop.logo_path else None
    return ShopOut(
        shop.id, shop.slug, shop.name, shop.description, logo, shop.owner_id, shop.status, shop.created_at
    )


async def get_shop(session: AsyncSession, shop_id: int) -> Shop:
    shop = await repo.get_shop(session, shop_id)
    if shop is None:
        raise NotFound(f"shop {shop_id} not found", code="shop_not_found")
    return shop


async def get_shop_by_slug(session: AsyncSession, slug: str) -> Shop:
    shop = await repo.get_shop_by_slug(session, slug)
    if shop is None or shop.status != "active":
        raise NotFound(f"shop {slug!r} not found", code="shop_not_found")
    return shop


async def list_shops(session: AsyncSession, *, after_id: int | None, limit: int) -> list[Shop]:
    return await repo.list_shops(session, after_id=after_id, limit=limit)


async def shops_of(session: AsyncSession, actor: Principal) -> list[Shop]:
    return await repo.shops_of_member(session, actor.id)


async def shops_of_user(session: AsyncSession, user_id: int) -> list[Shop]:
    """The shops a user owns or staffs (other domains: "sold by this creator's shop")."""
    return await repo.shops_of_member(session, user_id)


async def _authorize_shop(
    session: AsyncSession, actor: Principal, shop_id: int, *, owner_only: bool = False
) -> Shop:
    """The shop, if ``actor`` is its owner (or staff, unless ``owner_only``); 403 otherwise."""
    shop = await get_shop(session, shop_id)
    role = await repo.staff_role(session, shop_id, actor.id)
    if role is None or (owner_only and role != "owner"):
        raise Forbidden(
            "only the shop's owner can do this" if role else "this is not your shop", code="not_your_shop"
        )
    return shop


async def require_shop_member(
    session: AsyncSession, actor: Principal, shop_id: int, *, owner_only: bool = False
) -> Shop:
    """For other domains (orders, ledger): the shop if ``actor`` owns it or works for it."""
    return await _authorize_shop(session, actor, shop_id, owner_only=owner_only)


async def is_shop_member(session: AsyncSession, actor: Principal | None, shop_id: int) -> bool:
    return await _can_manage(session, actor, shop_id)


def _slug_from_name(name: str) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40]
    return base if len(base) >= 3 else "shop"


async def open_shop(session: AsyncSession, actor: Principal, data: ShopIn) -> Shop:
    data = validated(data)
    if not actor.has("merchant"):
        raise Forbidden("only merchants can open a shop", code="role_required")
    if await repo.count_owned_shops(session, actor.id):
        raise Conflict("you already own a shop", code="shop_exists")
    name = data.name.strip()
    if not name:
        raise ValidationFailed("name: must not be blank", field="name")
    if await repo.shop_name_taken(session, name):
        raise Conflict("name: another shop has this name", field="name", code="shop_name_taken")
    slug = data.slug
    if slug is not None and await repo.slug_taken(session, slug):
        raise Conflict("slug: already taken", field="slug", code="slug_taken")
    if slug is None:
        slug = _slug_from_name(name)
        while await repo.slug_taken(session, slug):
            slug = f"{_slug_from_name(name)}-{secrets.token_hex(2)}"
    shop = Shop(owner_id=actor.id, slug=slug, name=name, description=data.description.strip())
    session.add(shop)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict("name: another shop has this name", field="name", code="shop_name_taken") from exc
    session.add(ShopStaff(shop_id=shop.id, user_id=actor.id, role="owner", added_at=utcnow()))
    await session.flush()
    events.record(session, "catalog.shop_opened", {"shop_id": shop.id, "owner_id": actor.id})
    return shop


async def update_shop(session: AsyncSession, actor: Principal, shop_id: int, patch: ShopPatch) -> Shop:
    patch = validated(patch)
    shop = await _authorize_shop(session, actor, shop_id, owner_only=True)
    if patch.name is not None:
        name = patch.name.strip()
        if not name:
            raise ValidationFailed("name: must not be blank", field="name")
        if await repo.shop_name_taken(session, name, except_id=shop.id):
            raise Conflict("name: another shop has this name", field="name", code="shop_name_taken")
        shop.name = name
    if patch.description is not None:
        shop.description = patch.description.strip()
    await session.flush()
    await _reindex_shop(session, shop)
    return shop


async def set_shop_logo(
    session: AsyncSession, actor: Principal, shop_id: int, upload: Upload, media_dir: Path, max_bytes: int
) -> Shop:
    shop = await _authorize_shop(session, actor, shop_id, owner_only=True)
    stored = store_image(session, upload, media_dir, f"shops/{shop.id}", max_bytes)
    shop.logo_path = stored.path
    await session.flush()
    return shop


async def list_staff(session: AsyncSession, actor: Principal, shop_id: int) -> list[StaffOut]:
    await _authorize_shop(session, actor, shop_id)
    rows = await repo.list_staff(session, shop_id)
    users = await accounts.users_by_ids(session, [r.user_id for r in rows])
    return [
        StaffOut(r.user_id, users[r.user_id].username, users[r.user_id].display_name, r.role) for r in rows
    ]


async def add_staff(session: AsyncSession, actor: Principal, shop_id: int, username: str) -> list[StaffOut]:
    await _authorize_shop(session, actor, shop_id, owner_only=True)
    user = await accounts.get_user_by_username(session, username)
    if await repo.staff_role(session, shop_id, user.id):
        raise Conflict("username: already on this shop's staff", field="username", code="already_staff")
    session.add(ShopStaff(shop_id=shop_id, user_id=user.id, role="staff", added_at=utcnow()))
    await session.flush()
    return await list_staff(session, actor, shop_id)


async def remove_staff(session: AsyncSession, actor: Principal, shop_id: int, user_id: int) -> list[StaffOut]:
    await _authorize_shop(session, actor, shop_id, owner_only=True)
    if not await repo.remove_staff(session, shop_id, user_id):
        raise NotFound(
            "user_id: not on this shop's staff (the owner cannot be removed)",
            field="user_id",
            code="staff_not_found",
        )
    return await list_staff(session, actor, shop_id)


# --- products ---------------------------------------------------------------------------------


def _validate_variants(options: list[tuple[str, list[str]]], skus: list[SkuIn]) -> list[FieldError]:
    errors: list[FieldError] = []
    names = [name.strip() for name, _ in options]
    if len(set(n.lower() for n in names)) != len(names) or any(not n for n in names):
        errors.append(FieldError("options", "option names must be non-blank and distinct"))
    for i, (_, values) in enumerate(options):
        cleaned = [v.strip() for v in values]
        if any(not v for v in cleaned) or len(set(cleaned)) != len(cleaned):
            errors.append(FieldError(f"options[{i}].values", "values must be non-blank and distinct"))
    seen_combos: set[tuple[str, ...]] = set()
    seen_codes: set[str] = set()
    for i, sku in enumerate(skus):
        combo = tuple(v.strip() for v in sku.option_values)
        if len(combo) != len(options):
            errors.append(
                FieldError(
                    f"skus[{i}].option_values", f"needs exactly {len(options)} value(s), one per option"
                )
            )
            continue
        for j, value in enumerate(combo):
            if value not in [v.strip() for v in options[j][1]]:
                errors.append(
                    FieldError(f"skus[{i}].option_values", f"{value!r} is not a value of option {names[j]!r}")
                )
        if combo in seen_combos:
            errors.append(FieldError(f"skus[{i}].option_values", "two SKUs have the same option values"))
        seen_combos.add(combo)
        if sku.code is not None:
            if sku.code in seen_codes:
                errors.append(FieldError(f"skus[{i}].code", f"duplicate SKU code {sku.code!r}"))
            seen_codes.add(sku.code)
        try:
            check_price(sku.price_fen, field=f"skus[{i}].price_fen")
        except ValidationFailed as exc:
            errors.extend(exc.fields)
        if not 0 <= sku.stock <= MAX_STOCK:
            errors.append(FieldError(f"skus[{i}].stock", f"stock must be 0-{MAX_STOCK}"))
    return errors


async def _next_sku_codes(session: AsyncSession, shop_id: int, product_id: int, count: int) -> list[str]:
    codes = [f"P{product_id}-{i + 1}" for i in range(count)]
    if await repo.sku_codes_taken(session, shop_id, codes):
        codes = [f"P{product_id}-{secrets.token_hex(3).upper()}" for _ in range(count)]
    return codes


async def create_product(session: AsyncSession, actor: Principal, shop_id: int, data: ProductIn) -> Product:
    data = validated(data)
    shop = await _authorize_shop(session, actor, shop_id)
    category = await get_category(session, data.category_id)
    if not category.is_active:
        raise ValidationFailed("category_id: this category is closed", field="category_id")
    options = [(o.name.strip(), [v.strip() for v in o.values]) for o in data.options]
    errors = _validate_variants(options, data.skus)
    explicit = [s.code for s in data.skus if s.code]
    taken = await repo.sku_codes_taken(session, shop.id, explicit)
    errors += [FieldError("skus.code", f"SKU code {code!r} is already used in this shop") for code in taken]
    if errors:
        raise ValidationFailed("; ".join(f"{e.field}: {e.message}" for e in errors), fields=errors)
    title = data.title.strip()
    if not title:
        raise ValidationFailed("title: must not be blank", field="title")
    product = Product(
        shop_id=shop.id,
        category_id=category.id,
        title=title,
        description=data.description.strip(),
        status=ProductStatus.draft,
        commission_bp=data.commission_bp,
    )
    session.add(product)
    await session.flush()
    for position, (name, values) in enumerate(options):
        session.add(ProductOption(product_id=product.id, position=position, name=name, values=values))
    generated = iter(await _next_sku_codes(session, shop.id, product.id, len(data.skus)))
    for sku in data.skus:
        values = [v.strip() for v in sku.option_values]
        code = sku.code or next(generated)
        session.add(
            Sku(
                product_id=product.id,
                shop_id=shop.id,
                code=code,
                option_values=values,
                combo_key=combo_key(values),
                price_fen=sku.price_fen,
                stock=sku.stock,
                per_buyer_limit=sku.per_buyer_limit,
            )
        )
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent request took a code first
        raise Conflict(
            "skus.code: a SKU code is already used in this shop", field="skus.code", code="sku_code_taken"
        ) from exc
    events.record(session, "catalog.product_created", {"product_id": product.id, "shop_id": shop.id})
    return product


async def _authorize_product(session: AsyncSession, actor: Principal, product_id: int) -> Product:
    product = await repo.get_product(session, product_id)
    if product is None:
        raise NotFound(f"product {product_id} not found", code="product_not_found")
    await _authorize_shop(session, actor, product.shop_id)
    return product


async def update_product(
    session: AsyncSession, actor: Principal, product_id: int, patch: ProductPatch
) -> Product:
    patch = validated(patch)
    product = await _authorize_product(session, actor, product_id)
    if patch.title is not None:
        if not patch.title.strip():
            raise ValidationFailed("title: must not be blank", field="title")
        product.title = patch.title.strip()
    if patch.description is not None:
        product.description = patch.description.strip()
    if patch.category_id is not None:
        category = await get_category(session, patch.category_id)
        if not category.is_active:
            raise ValidationFailed("category_id: this category is closed", field="category_id")
        product.category_id = category.id
    if patch.commission_bp is not None:
        product.commission_bp = patch.commission_bp
    await session.flush()
    if product.status == ProductStatus.published:
        await _index(session, product)
    return product


async def update_sku(
    session: AsyncSession, actor: Principal, product_id: int, sku_id: int, patch: SkuPatch
) -> Sku:
    patch = validated(patch)
    product = await _authorize_product(session, actor, product_id)
    sku = await repo.get_sku(session, sku_id)
    if sku is None or sku.product_id != product.id:
        raise NotFound(f"SKU {sku_id} not found on product {product_id}", code="sku_not_found")
    if patch.price_fen is not None:
        sku.price_fen = check_price(patch.price_fen)
    if patch.stock is not None:
        if not 0 <= patch.stock <= MAX_STOCK:
            raise ValidationFailed(f"stock: must be 0-{MAX_STOCK}", field="stock")
        sku.stock = patch.stock
    if patch.code is not None and patch.code != sku.code:
        if await repo.sku_codes_taken(session, sku.shop_id, [patch.code], except_sku=sku.id):
            raise Conflict(
                f"code: SKU code {patch.code!r} is already used in this shop",
                field="code",
                code="sku_code_taken",
            )
        sku.code = patch.code
    if patch.is_active is not None:
        sku.is_active = patch.is_active
    if patch.per_buyer_limit is not msgspec.UNSET:
        sku.per_buyer_limit = patch.per_buyer_limit
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict("code: already used in this shop", field="code", code="sku_code_taken") from exc
    return sku


async def publish(session: AsyncSession, actor: Principal, product_id: int) -> Product:
    product = await _authorize_product(session, actor, product_id)
    if product.status == ProductStatus.published:
        return product
    full = await repo.get_product(session, product_id, full=True)
    assert full is not None
    if not any(s.is_active for s in full.skus):
        raise InvalidTransition(
            "a product needs at least one active SKU to be published", code="no_active_sku"
        )
    category = await get_category(session, full.category_id)
    if not category.is_active:
        raise InvalidTransition("the product's category is closed", code="category_closed")
    full.status = ProductStatus.published
    full.published_at = utcnow()
    await session.flush()
    await _index(session, full)
    events.record(session, "catalog.product_published", {"product_id": full.id, "shop_id": full.shop_id})
    return full


async def unpublish(session: AsyncSession, actor: Principal, product_id: int) -> Product:
    product = await _authorize_product(session, actor, product_id)
    if product.status != ProductStatus.published:
        raise InvalidTransition(f"a {product.status} product cannot be unpublished", code="not_published")
    product.status = ProductStatus.unpublished
    await session.flush()
    await repo.unindex_product(session, product.id)
    events.record(
        session, "catalog.product_unpublished", {"product_id": product.id, "shop_id": product.shop_id}
    )
    return product


async def _index(session: AsyncSession, product: Product) -> None:
    category = await get_category(session, product.category_id)
    shop = await get_shop(session, product.shop_id)
    await repo.index_product(session, product, f"{category.name_zh} {category.name_en} {shop.name}")


async def _reindex_shop(session: AsyncSession, shop: Shop) -> None:
    for product in await repo.list_shop_products(
        session, shop.id, statuses=[ProductStatus.published], after_id=None, limit=10_000
    ):
        await _index(session, product)


# --- images -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class StoredImage:
    path: str
    content_type: str
    byte_size: int
    width: int
    height: int


def store_image(
    session: AsyncSession, upload: Upload, media_dir: Path, folder: str, max_bytes: int, field: str = "file"
) -> StoredImage:
    """Check that ``upload`` really is a JPEG/PNG/WebP of sane size, then write it under media_dir."""
    if len(upload.data) == 0:
        raise ValidationFailed(f"{field}: the file is empty", field=field)
    if len(upload.data) > max_bytes:
        raise PayloadTooLarge(f"{field}: larger than {max_bytes // (1024 * 1024)} MB", field=field)
    if not (upload.content_type or "").startswith("image/"):
        raise UnsupportedMediaType(f"{field}: must be a JPEG, PNG or WebP image", field=field)
    try:
        with Image.open(io.BytesIO(upload.data)) as probe:
            fmt = probe.format
            width, height = probe.size
            probe.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise UnsupportedMediaType(f"{field}: not a readable JPEG, PNG or WebP image", field=field) from None
    if fmt not in IMAGE_FORMATS:
        raise UnsupportedMediaType(
            f"{field}: {fmt} images are not accepted; use JPEG, PNG or WebP", field=field
        )
    if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE:
        raise ValidationFailed(f"{field}: larger than {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE} pixels", field=field)
    content_type, ext = IMAGE_FORMATS[fmt]
    relative = f"{folder}/{secrets.token_hex(12)}.{ext}"
    target = media_dir / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(upload.data)
    delete_on_rollback(session, target)
    return StoredImage(relative, content_type, len(upload.data), width, height)


async def add_image(
    session: AsyncSession, actor: Principal, product_id: int, upload: Upload, media_dir: Path, max_bytes: int
) -> ProductImage:
    product = await _authorize_product(session, actor, product_id)
    count = await repo.count_images(session, product.id)
    if count >= MAX_IMAGES:
        raise Conflict(
            f"file: a product has at most {MAX_IMAGES} images", field="file", code="too_many_images"
        )
    stored = store_image(session, upload, media_dir, f"products/{product.id}", max_bytes)
    image = ProductImage(
        product_id=product.id,
        path=stored.path,
        content_type=stored.content_type,
        byte_size=stored.byte_size,
        width=stored.width,
        height=stored.height,
        position=count,
        uploaded_at=utcnow(),
    )
    session.add(image)
    await session.flush()
    return image


async def delete_image(session: AsyncSession, actor: Principal, product_id: int, image_id: int) -> None:
    product = await _authorize_product(session, actor, product_id)
    image = await repo.get_image(session, image_id)
    if image is None or image.product_id != product.id:
        raise NotFound(f"image {image_id} not found on product {product_id}", code="image_not_found")
    await session.delete(image)
    await session.flush()


# --- reading ----------------------------------------------------------------------------------


async def _can_manage(session: AsyncSession, viewer: Principal | None, shop_id: int) -> bool:
    return viewer is not None and await repo.staff_role(session, shop_id, viewer.id) is not None


async def product_detail(session: AsyncSession, viewer: Principal | None, product_id: int) -> ProductOut:
    """A product as its viewer may see it: published to everyone, drafts to the shop and ops."""
    product = await repo.get_product(session, product_id, full=True)
    if product is None:
        raise NotFound(f"product {product_id} not found", code="product_not_found")
    shop = await get_shop(session, product.shop_id)
    visible = product.status == ProductStatus.published and shop.status == "active"
    if not visible and not (viewer and viewer.is_ops) and not await _can_manage(session, viewer, shop.id):
        raise NotFound(f"product {product_id} not found", code="product_not_found")
    category = await get_category(session, product.category_id)
    return ProductOut(
        id=product.id,
        shop_id=shop.id,
        shop_slug=shop.slug,
        shop_name=shop.name,
        category_id=category.id,
        title=product.title,
        description=product.description,
        status=product.status,  # type: ignore[arg-type]
        options=[OptionOut(o.name, list(o.values)) for o in product.options],
        skus=[sku_out(s) for s in product.skus],
        images=[
            ImageOut(i.id, f"/media/{i.path}", i.width, i.height, i.content_type, i.byte_size)
            for i in product.images
        ],
        requires_inspection=category.requires_inspection,
        return_window_days=category.return_window_days,
        published_at=product.published_at,
        commission_bp=product.commission_bp,
        created_at=product.created_at,
        updated_at=product.updated_at,
    )


def sku_out(s: Sku) -> SkuOut:
    return SkuOut(s.id, s.code, list(s.option_values), s.price_fen, s.stock, s.is_active, s.per_buyer_limit)


async def managed_product(
    session: AsyncSession, actor: Principal, product_id: int
) -> tuple[ProductOut, Shop]:
    """A product and its shop for the console: 404 if there is no such product, 403 unless the
    actor works for the shop (ops included: they see the public page, not the editor)."""
    product = await _authorize_product(session, actor, product_id)
    return await product_detail(session, actor, product.id), await get_shop(session, product.shop_id)


async def shops_by_ids(session: AsyncSession, shop_ids: list[int]) -> list[Shop]:
    return list((await repo.shops_by_ids(session, shop_ids)).values())


async def cards(session: AsyncSession, products: list[Product]) -> list[ProductCard]:
    """Cards of products already read, in their order (one statement: ``product_cards``)."""
    return await product_cards(session, [p.id for p in products])


async def product_cards(session: AsyncSession, product_ids: list[int]) -> list[ProductCard]:
    """Cards of the given products in the given order, leaving out any that do not exist, for
    other domains' lists (a live session's featured products). Callers filter by ``status``."""
    rows = {r[0]: r for r in await repo.card_rows(session, product_ids)}
    return [
        ProductCard(*r[:9], f"/media/{r[9]}" if r[9] else None)
        for r in (rows.get(i) for i in dict.fromkeys(product_ids))
        if r is not None
    ]


async def shop_products(
    session: AsyncSession,
    viewer: Principal | None,
    shop_id: int,
    *,
    after_id: int | None,
    limit: int,
    include_unpublished: bool = False,
) -> list[ProductCard]:
    shop = await get_shop(session, shop_id)
    statuses = [ProductStatus.published.value]
    if include_unpublished:
        if not (await _can_manage(session, viewer, shop.id) or (viewer and viewer.is_ops)):
            raise Forbidden("this is not your shop", code="not_your_shop")
        statuses = [s.value for s in ProductStatus]
    elif shop.status != "active":
        raise NotFound(f"shop {shop_id} not found", code="shop_not_found")
    products = await repo.list_shop_products(
        session, shop.id, statuses=statuses, after_id=after_id, limit=limit
    )
    return await cards(session, products)


async def category_products(
    session: AsyncSession, category: Category, *, after_id: int | None, limit: int
) -> list[ProductCard]:
    ids = [category.id, *await repo.child_category_ids(session, category.id)]
    return await cards(
        session, await repo.list_category_products(session, ids, after_id=after_id, limit=limit)
    )


async def latest_products(session: AsyncSession, limit: int = 20) -> list[ProductCard]:
    return await cards(session, await repo.latest_published(session, limit))


async def published_of_shops(
    session: AsyncSession,
    shop_ids: list[int],
    *,
    limit: int,
    before: tuple[dt.datetime, int] | None = None,
) -> list[tuple[int, int, dt.datetime]]:
    """(product id, shop id, published at) of the shops' published products, newest first, below
    ``before`` (published at, product id): the follow feed's products of followed shops."""
    rows = await repo.published_of_shops(session, shop_ids, limit=limit, before=before)
    return [(r.id, r.shop_id, r.published_at) for r in rows]


async def published_after(
    session: AsyncSession, after_id: int, limit: int
) -> list[tuple[int, int, dt.datetime]]:
    """(product id, shop id, published at) of published products in id order after ``after_id``:
    the feed's item index reads the catalogue in pages when it is first built."""
    return [(r.id, r.shop_id, r.published_at) for r in await repo.published_after(session, after_id, limit)]


async def search(
    session: AsyncSession, query: str, *, category_id: int | None = None, offset: int = 0, limit: int = 20
) -> list[ProductCard]:
    query = query.strip()
    if not query:
        raise ValidationFailed("q: enter something to search for", field="q")
    if len(query) > 100:
        raise ValidationFailed("q: at most 100 characters", field="q")
    category_ids = None
    if category_id is not None:
        category = await get_category(session, category_id)
        category_ids = [category.id, *await repo.child_category_ids(session, category.id)]
    ids = await repo.search_products(session, query, category_ids=category_ids, offset=offset, limit=limit)
    return await product_cards(session, ids)


def variant_matrix(options: list[tuple[str, list[str]]]) -> list[list[str]]:
    """Every combination of option values, in option order (the SKU grid a form starts from)."""
    if not options:
        return [[]]
    return [list(combo) for combo in itertools.product(*[values for _, values in options])]


def _require_ops(actor: Principal) -> None:
    if not actor.is_ops:
        raise Forbidden("only ops can do this", code="ops_only")


# --- selling: what checkout needs from the catalog --------------------------------------------


@dataclass(frozen=True)
class SkuForSale:
    """A SKU as checkout snapshots it onto an order line, with the policies in force now."""

    sku_id: int
    product_id: int
    shop_id: int
    title: str
    code: str
    option_values: tuple[str, ...]
    price_fen: int
    per_buyer_limit: int | None
    commission_bp: int
    category_id: int
    service_fee_bp: int
    return_window_days: int
    requires_inspection: bool
    on_sale: bool  # published product, active SKU, active shop
    stock: int  # available when read (unlocked): a hint; reserve_stock decides


async def skus_for_sale(session: AsyncSession, sku_ids: list[int]) -> dict[int, SkuForSale]:
    rows = await repo.skus_with_policies(session, sku_ids)
    return {
        r.sku_id: SkuForSale(
            sku_id=r.sku_id, product_id=r.product_id, shop_id=r.shop_id, title=r.title, code=r.code,
            option_values=tuple(r.option_values), price_fen=r.price_fen, per_buyer_limit=r.per_buyer_limit,
            commission_bp=r.commission_bp, category_id=r.category_id, service_fee_bp=r.service_fee_bp,
            return_window_days=r.return_window_days, requires_inspection=r.requires_inspection,
            on_sale=r.product_status == ProductStatus.published and r.is_active and r.shop_status == "active",
            stock=r.stock,
        )
        for r in rows
    }  # fmt: skip


async def reserve_stock(session: AsyncSession, sku_id: int, quantity: int) -> bool:
    """Take ``quantity`` off the SKU's available stock in one conditional UPDATE: it succeeds for
    exactly as many buyers as there is stock, under any concurrency, on SQLite and PostgreSQL."""
    if quantity <= 0:
        raise ValidationFailed("quantity: must be at least 1", field="quantity")
    return await repo.take_stock(session, sku_id, quantity)


async def release_stock(session: AsyncSession, sku_id: int, quantity: int) -> None:
    """Give reserved stock back (an order was cancelled or refunded before shipping)."""
    if quantity <= 0:
        raise ValidationFailed("quantity: must be at least 1", field="quantity")
    await repo.return_stock(session, sku_id, quantity)


async def lock_stock(session: AsyncSession, sku_ids: list[int]) -> dict[int, int]:
    """For batched checkout: read and lock available stock; take it with ``reserve_stock``."""
    return await repo.lock_stock(session, sku_ids)


# --- for other domains: is a product visible? -------------------------------------------------


async def require_visible_product(session: AsyncSession, viewer: Principal | None, product_id: int) -> None:
    """404 unless ``viewer`` may see the product, by ``product_detail``'s rules (published in an
    active shop; otherwise its shop's staff and ops), reading only the product and shop rows: for
    lists about a product (its reviews) that do not show the product itself."""
    product = await repo.get_product(session, product_id)
    shop = await repo.get_shop(session, product.shop_id) if product is not None else None
    if product is None or shop is None:
        raise NotFound(f"product {product_id} not found", code="product_not_found")
    visible = product.status == ProductStatus.published and shop.status == "active"
    if not visible and not (viewer and viewer.is_ops) and not await _can_manage(session, viewer, shop.id):
        raise NotFound(f"product {product_id} not found", code="product_not_found")
