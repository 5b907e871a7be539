"""HTML routes for the shelf (search, category, shop and product pages) and the merchant and ops
consoles. Thin: parse the form into the API's structs, call catalog.service, render.

Forms re-render with the error and what the user typed when the user can fix the problem (422,
409, 413, 415, an unknown username); "not your shop" and "no such thing" get the error page.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.accounts.service import Principal
from trustlive.catalog import service
from trustlive.catalog.models import Category
from trustlive.catalog.schemas import (
    CategoryIn,
    CategoryPatch,
    ProductIn,
    ProductPatch,
    ShopIn,
    ShopPatch,
    SkuPatch,
    StaffIn,
)
from trustlive.config import Settings
from trustlive.errors import DomainError, ValidationFailed
from trustlive.reviews import service as reviews
from trustlive.trust import service as trust
from trustlive.web.console import my_shops, pick_shop
from trustlive.web.forms import (
    bad_fields,
    checked,
    fixable,
    integer,
    invalid,
    parse,
    percent_bp,
    split_values,
    text,
    to_upload,
    yuan,
)
from trustlive.web.i18n import N_, gettext
from trustlive.web.pagination import before_id, decode_cursor, encode_cursor, trim_page
from trustlive.web.policy import allow, public, signed_in

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
Upload = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)]
Cursor = Annotated[str | None, Parameter(max_length=200)]

PAGE_SIZE = 24
CONSOLE_PAGE_SIZE = 50
MAX_FORM_OPTIONS = 2

# Shown through _(status) / _(role) in templates; listed here so extraction finds them.
_LABELS = (N_("draft"), N_("published"), N_("unpublished"), N_("owner"), N_("staff"))

# API field paths -> the new-product form's field names, so the right inputs get marked.
_PRODUCT_FORM_FIELDS = {
    r"skus(\[\d+\])?\.price_fen": "price",
    r"skus(\[\d+\])?\.stock": "stock",
    r"skus.*": "options",
    r"options\[0\].*": "option1_values",
    r"options\[1\].*": "option2_values",
}
_SKU_FORM_FIELDS = {r"price_fen": "price"}
_CATEGORY_FORM_FIELDS = {r"service_fee_bp": "service_fee"}


def _is_htmx(request: Request[Any, Any, Any]) -> bool:
    return request.headers.get("hx-request") == "true"


# --- shelf ------------------------------------------------------------------------------------


@get("/search", **public())
async def search_page(
    db: AsyncSession, q: Annotated[str, Parameter(max_length=1000)] = "", cursor: Cursor = None
) -> Template:
    """Shelf search. An empty query is an invitation to search, not an error."""
    query = q.strip()
    context: dict[str, Any] = {"q": query, "products": [], "next_cursor": None, "error": None}
    if not query:
        context["categories"] = await service.list_categories(db)
        return Template("catalog/search.html", context=context)
    decoded = decode_cursor(cursor, "offset")
    start = decoded["offset"] if decoded else 0
    try:
        items = await service.search(db, query, offset=start, limit=PAGE_SIZE + 1)
    except ValidationFailed as err:
        return Template("catalog/search.html", context={**context, "error": err}, status_code=err.status_code)
    more = len(items) > PAGE_SIZE
    context.update(
        products=items[:PAGE_SIZE],
        next_cursor=encode_cursor({"offset": start + PAGE_SIZE}) if more else None,
        searched=True,
    )
    return Template("catalog/search.html", context=context)


@get("/c/{slug:str}", **public())
async def category_page(slug: str, db: AsyncSession, cursor: Cursor = None) -> Template:
    category = await service.get_category_by_slug(db, slug)
    everything = await service.list_categories(db)
    items = await service.category_products(db, category, after_id=before_id(cursor), limit=PAGE_SIZE + 1)
    products, next_cursor = trim_page(items, PAGE_SIZE)
    return Template(
        "catalog/category.html",
        context={
            "category": category,
            "parent": next((c for c in everything if c.id == category.parent_id), None),
            "children": [c for c in everything if c.parent_id == category.id],
            "products": products,
            "next_cursor": next_cursor,
        },
    )


@get("/shops/{slug:str}", **public())
async def shop_page(slug: str, db: AsyncSession, viewer: Principal | None, cursor: Cursor = None) -> Template:
    shop = await service.get_shop_by_slug(db, slug)
    items = await service.shop_products(db, viewer, shop.id, after_id=before_id(cursor), limit=PAGE_SIZE + 1)
    products, next_cursor = trim_page(items, PAGE_SIZE)
    return Template(
        "catalog/shop.html",
        context={
            "shop": service.shop_out(shop),
            "products": products,
            "next_cursor": next_cursor,
            "trust_score": await trust.score_of(db, "shop", shop.id),
        },  # fmt: skip
    )


@get("/p/{product_id:int}", **public())
async def product_page(product_id: int, db: AsyncSession, viewer: Principal | None) -> Template:
    """A product as the viewer may see it (the service hides unpublished ones from outsiders)."""
    product = await service.product_detail(db, viewer, product_id)
    category = await service.get_category(db, product.category_id)
    manages = viewer is not None and any(s.id == product.shop_id for s in await service.shops_of(db, viewer))
    skus = [s for s in product.skus if s.is_active]
    return Template(
        "catalog/product.html",
        context={
            "product": product,
            "category": category,
            "skus": skus,
            "min_price": min((s.price_fen for s in skus), default=0),
            "max_price": max((s.price_fen for s in skus), default=0),
            "stock": sum(s.stock for s in skus),
            "manages": manages,
            "reviews": await reviews.product_reviews(db, product_id),
            "trust_score": await trust.score_of(db, "product", product_id),
            "shop_score": await trust.score_of(db, "shop", product.shop_id),
        },
    )


# --- merchant console: shop -------------------------------------------------------------------


async def _console(
    db: AsyncSession, me: Principal, shop_id: int | None, cursor: str | None = None, **extra: Any
) -> Template:
    shops = await my_shops(db, me)
    if not shops:
        return Template("catalog/console_open.html", context={"form": {}, **extra})
    shop = pick_shop(shops, me, shop_id)
    staff = await service.list_staff(db, me, shop.id)
    items = await service.shop_products(
        db, me, shop.id, after_id=before_id(cursor), limit=CONSOLE_PAGE_SIZE + 1, include_unpublished=True
    )
    products, next_cursor = trim_page(items, CONSOLE_PAGE_SIZE)
    status = extra.pop("status_code", 200)
    context = {
        "shops": shops,
        "shop": service.shop_out(shop),
        "is_owner": shop.owner_id == me.id,
        "owns_a_shop": any(s.owner_id == me.id for s in shops),
        "staff": staff,
        "products": products,
        "next_cursor": next_cursor,
        "form": {},
        "error": None,
        "error_form": None,
        "bad": set(),
        **extra,
    }
    return Template("catalog/console.html", context=context, status_code=status)


@get("/console", **signed_in())
async def console(
    db: AsyncSession, me: Principal, shop: int | None = None, cursor: Cursor = None
) -> Template:
    """The merchant console: open a shop, or run the one(s) you own or work for."""
    return await _console(db, me, shop, cursor)


@get("/console/shops/new", **allow("merchant"))
async def open_shop_form() -> Template:
    return Template("catalog/console_open.html", context={"form": {}})


@post("/console/shops", **allow("merchant"))
async def open_shop(data: Form, db: AsyncSession, me: Principal) -> Template | Redirect:
    form = {"name": text(data, "name"), "description": text(data, "description")}
    try:
        shop = await service.open_shop(db, me, parse(ShopIn, form))
    except DomainError as err:
        await db.rollback()
        fixable(err)
        return Template(
            "catalog/console_open.html",
            context={"form": form, "error": err, "bad": bad_fields(err)},
            status_code=err.status_code,
        )
    return Redirect(f"/console?shop={shop.id}", status_code=303)


@post("/console/shops/{shop_id:int}", **signed_in())
async def edit_shop(shop_id: int, data: Form, db: AsyncSession, me: Principal) -> Template | Redirect:
    form = {"name": text(data, "name"), "description": text(data, "description")}
    try:
        await service.update_shop(db, me, shop_id, parse(ShopPatch, form))
    except DomainError as err:
        await db.rollback()
        return await _console(
            db,
            me,
            shop_id,
            form=form,
            error=fixable(err),
            error_form="shop",
            bad=bad_fields(err),
            status_code=err.status_code,
        )
    return Redirect(f"/console?shop={shop_id}", status_code=303)


@post("/console/shops/{shop_id:int}/logo", **signed_in())
async def upload_logo(
    shop_id: int, data: Upload, db: AsyncSession, me: Principal, settings: Settings
) -> Template | Redirect:
    try:
        upload = await _upload(data, settings)
        await service.set_shop_logo(db, me, shop_id, upload, settings.media_dir, settings.max_upload_bytes)
    except DomainError as err:
        await db.rollback()
        return await _console(
            db, me, shop_id, error=fixable(err), error_form="logo", bad={"file"}, status_code=err.status_code
        )
    return Redirect(f"/console?shop={shop_id}", status_code=303)


@post("/console/shops/{shop_id:int}/staff", **signed_in())
async def add_staff(shop_id: int, data: Form, db: AsyncSession, me: Principal) -> Template | Redirect:
    form = {"username": text(data, "username")}
    try:
        await service.add_staff(db, me, shop_id, parse(StaffIn, form).username)
    except DomainError as err:
        await db.rollback()
        return await _console(
            db,
            me,
            shop_id,
            form=form,
            error=fixable(err),
            error_form="staff",
            bad={"username"},
            status_code=err.status_code,
        )
    return Redirect(f"/console?shop={shop_id}#staff", status_code=303)


@post("/console/shops/{shop_id:int}/staff/{user_id:int}/remove", **signed_in())
async def remove_staff(shop_id: int, user_id: int, db: AsyncSession, me: Principal) -> Redirect:
    await service.remove_staff(db, me, shop_id, user_id)
    return Redirect(f"/console?shop={shop_id}#staff", status_code=303)


async def _upload(data: dict[str, Any], settings: Settings) -> service.Upload:
    file = data.get("file")
    if not isinstance(file, UploadFile) or not file.filename:
        raise invalid("file", gettext("choose an image to upload"))
    return await to_upload(file, settings.max_upload_bytes)


# --- merchant console: products ---------------------------------------------------------------


def _new_product_payload(form: dict[str, str]) -> tuple[int, ProductIn]:
    """The new-product form as the API's ProductIn: every combination of option values is a SKU
    with the default price and stock (edited per SKU afterwards)."""
    shop_id = integer(form, "shop_id", minimum=1, maximum=2**62)
    options = []
    for i in range(1, MAX_FORM_OPTIONS + 1):
        name, values = form[f"option{i}_name"], split_values(form[f"option{i}_values"])
        if name or values:
            if not name:
                raise invalid(f"option{i}_name", gettext("give this option a name, e.g. Size"))
            if not values:
                raise invalid(f"option{i}_values", gettext("list at least one value"))
            options.append({"name": name, "values": values})
    price = yuan(form, "price")
    stock = integer(form, "stock", minimum=0, maximum=service.MAX_STOCK)
    matrix = service.variant_matrix([(o["name"], o["values"]) for o in options])
    raw = {
        "title": form["title"],
        "description": form["description"],
        "category_id": form["category_id"] or None,
        "options": options,
        "skus": [{"price_fen": price, "stock": stock, "option_values": combo} for combo in matrix],
    }
    if raw["category_id"] is None:
        raise invalid("category_id", gettext("choose a category"))
    return shop_id, parse(ProductIn, raw)


_NEW_PRODUCT_FIELDS = (
    "shop_id", "title", "category_id", "description", "option1_name", "option1_values",
    "option2_name", "option2_values", "price", "stock",
)  # fmt: skip


@get("/console/products/new", **signed_in())
async def new_product_form(db: AsyncSession, me: Principal, shop: int | None = None) -> Template | Redirect:
    shops = await my_shops(db, me)
    if not shops:
        return Redirect("/console", status_code=303)  # open a shop first
    chosen = pick_shop(shops, me, shop)
    return Template(
        "catalog/product_new.html",
        context={
            "shop": chosen,
            "categories": await service.list_categories(db),
            "form": {"shop_id": str(chosen.id), "stock": "100"},
            "bad": set(),
        },
    )


@post("/console/products/new", **signed_in())
async def create_product(data: Form, db: AsyncSession, me: Principal) -> Template | Redirect:
    form = {name: text(data, name) for name in _NEW_PRODUCT_FIELDS}
    try:
        shop_id, payload = _new_product_payload(form)
        product = await service.create_product(db, me, shop_id, payload)
    except DomainError as err:
        await db.rollback()
        fixable(err)
        shops = await my_shops(db, me)
        shop_id = int(form["shop_id"]) if form["shop_id"].isdigit() else None
        return Template(
            "catalog/product_new.html",
            context={
                "shop": pick_shop(shops, me, shop_id) if shops else None,
                "categories": await service.list_categories(db),
                "form": form,
                "error": err,
                "bad": bad_fields(err, _PRODUCT_FORM_FIELDS),
            },
            status_code=err.status_code,
        )
    return Redirect(f"/console/products/{product.id}", status_code=303)


async def _editor(db: AsyncSession, me: Principal, product_id: int, **extra: Any) -> Template:
    product, shop = await service.managed_product(db, me, product_id)
    status = extra.pop("status_code", 200)
    context = {
        "product": product,
        "shop": shop,
        "categories": await service.list_categories(db),
        "error": None,
        "error_form": None,
        "form": {},
        "bad": set(),
        "sku_errors": {},
        "sku_forms": {},
        "saved": None,
        **extra,
    }
    return Template("catalog/product_edit.html", context=context, status_code=status)


@get("/console/products/{product_id:int}", **signed_in())
async def product_editor(
    product_id: int, db: AsyncSession, me: Principal, saved: str | None = None
) -> Template:
    return await _editor(db, me, product_id, saved=saved)


@post("/console/products/{product_id:int}", **signed_in())
async def edit_product(product_id: int, data: Form, db: AsyncSession, me: Principal) -> Template | Redirect:
    form = {name: text(data, name) for name in ("title", "description", "category_id")}
    try:
        patch = parse(ProductPatch, {**form, "category_id": form["category_id"] or None})
        await service.update_product(db, me, product_id, patch)
    except DomainError as err:
        await db.rollback()
        return await _editor(
            db,
            me,
            product_id,
            error=fixable(err),
            error_form="product",
            form=form,
            bad=bad_fields(err),
            status_code=err.status_code,
        )
    return Redirect(f"/console/products/{product_id}?saved=product", status_code=303)


@post("/console/products/{product_id:int}/skus/{sku_id:int}", **signed_in())
async def edit_sku(
    product_id: int, sku_id: int, data: Form, db: AsyncSession, me: Principal, request: Request[Any, Any, Any]
) -> Template | Redirect:
    """One SKU row. htmx posts it in place and gets the row back; without JS the page reloads."""
    form = {"code": text(data, "code"), "price": text(data, "price"), "stock": text(data, "stock")}
    form["is_active"] = "on" if checked(data, "is_active") else ""
    try:
        patch = SkuPatch(
            price_fen=yuan(form, "price"),
            stock=integer(form, "stock", minimum=0, maximum=service.MAX_STOCK),
            code=parse(SkuPatch, {"code": form["code"] or None}).code,
            is_active=bool(form["is_active"]),
        )
        sku = await service.update_sku(db, me, product_id, sku_id, patch)
    except DomainError as err:
        await db.rollback()
        fixable(err)
        if _is_htmx(request):
            product, _ = await service.managed_product(db, me, product_id)
            row = next((s for s in product.skus if s.id == sku_id), None)
            if row is None:
                raise
            return Template(
                "catalog/_sku_row_partial.html",
                context={"product": product, "sku": row, "row_error": err,
                         "row_form": form, "row_bad": bad_fields(err, _SKU_FORM_FIELDS)},
                status_code=err.status_code,
            )  # fmt: skip
        return await _editor(
            db,
            me,
            product_id,
            sku_errors={sku_id: err},
            sku_forms={sku_id: form},
            bad=bad_fields(err, _SKU_FORM_FIELDS),
            status_code=err.status_code,
        )
    if _is_htmx(request):
        product, _ = await service.managed_product(db, me, product_id)
        row = next(s for s in product.skus if s.id == sku.id)
        return Template(
            "catalog/_sku_row_partial.html",
            context={"product": product, "sku": row, "row_saved": True, "row_bad": set()},
        )
    return Redirect(f"/console/products/{product_id}?saved=sku#sku-{sku_id}", status_code=303)


async def _status_change(
    db: AsyncSession, me: Principal, product_id: int, publish_it: bool
) -> Template | Redirect:
    try:
        if publish_it:
            await service.publish(db, me, product_id)
        else:
            await service.unpublish(db, me, product_id)
    except DomainError as err:
        await db.rollback()
        return await _editor(db, me, product_id, error=fixable(err), status_code=err.status_code)
    saved = "published" if publish_it else "unpublished"
    return Redirect(f"/console/products/{product_id}?saved={saved}", status_code=303)


@post("/console/products/{product_id:int}/publish", **signed_in())
async def publish(product_id: int, db: AsyncSession, me: Principal) -> Template | Redirect:
    return await _status_change(db, me, product_id, publish_it=True)


@post("/console/products/{product_id:int}/unpublish", **signed_in())
async def unpublish(product_id: int, db: AsyncSession, me: Principal) -> Template | Redirect:
    return await _status_change(db, me, product_id, publish_it=False)


@post("/console/products/{product_id:int}/images", **signed_in())
async def add_image(
    product_id: int, data: Upload, db: AsyncSession, me: Principal, settings: Settings
) -> Template | Redirect:
    try:
        upload = await _upload(data, settings)
        await service.add_image(db, me, product_id, upload, settings.media_dir, settings.max_upload_bytes)
    except DomainError as err:
        await db.rollback()
        return await _editor(
            db,
            me,
            product_id,
            error=fixable(err),
            error_form="images",
            bad={"file"},
            status_code=err.status_code,
        )
    return Redirect(f"/console/products/{product_id}?saved=image#images", status_code=303)


@post("/console/products/{product_id:int}/images/{image_id:int}/delete", **signed_in())
async def delete_image(product_id: int, image_id: int, db: AsyncSession, me: Principal) -> Redirect:
    await service.delete_image(db, me, product_id, image_id)
    return Redirect(f"/console/products/{product_id}#images", status_code=303)


# --- ops console: categories ------------------------------------------------------------------


def _category_form(data: dict[str, Any]) -> dict[str, str]:
    names = ("slug", "name_zh", "name_en", "parent_id", "return_window_days", "service_fee", "position")
    form = {name: text(data, name) for name in names}
    form["requires_inspection"] = "on" if checked(data, "requires_inspection") else ""
    form["is_active"] = "on" if checked(data, "is_active") else ""
    return form


def _category_values(form: dict[str, str]) -> dict[str, Any]:
    """Typed values shared by the create and edit forms; errors name the form's fields."""
    return {
        "name_zh": form["name_zh"],
        "name_en": form["name_en"],
        "requires_inspection": bool(form["requires_inspection"]),
        "return_window_days": integer(form, "return_window_days", minimum=0, maximum=90),
        "service_fee_bp": percent_bp(form, "service_fee"),
        "position": integer(form, "position", minimum=-1_000_000, maximum=1_000_000)
        if form["position"]
        else 0,
    }


async def _categories_page(db: AsyncSession, **extra: Any) -> Template:
    status = extra.pop("status_code", 200)
    categories: list[Category] = await service.list_categories(db, include_inactive=True)
    context = {
        "categories": categories,
        "by_id": {c.id: c for c in categories},
        "form": {"return_window_days": "7", "service_fee": "5", "position": "0"},
        "error": None,
        "editing": None,
        "bad": set(),
        **extra,
    }
    return Template("catalog/ops_categories.html", context=context, status_code=status)


@get("/ops/categories", **allow("ops"))
async def ops_categories(db: AsyncSession) -> Template:
    return await _categories_page(db)


@post("/ops/categories", **allow("ops"))
async def ops_create_category(data: Form, db: AsyncSession, me: Principal) -> Template | Redirect:
    form = _category_form(data)
    try:
        values = {**_category_values(form), "slug": form["slug"], "parent_id": form["parent_id"] or None}
        category = await service.create_category(db, me, parse(CategoryIn, values))
    except DomainError as err:
        await db.rollback()
        return await _categories_page(
            db,
            form=form,
            error=fixable(err),
            bad=bad_fields(err, _CATEGORY_FORM_FIELDS),
            status_code=err.status_code,
        )
    return Redirect(f"/ops/categories#category-{category.id}", status_code=303)


@post("/ops/categories/{category_id:int}", **allow("ops"))
async def ops_edit_category(
    category_id: int, data: Form, db: AsyncSession, me: Principal
) -> Template | Redirect:
    form = _category_form(data)
    form["id"] = str(category_id)  # keeps the category out of its own parent list on a re-render
    try:
        values = {
            **_category_values(form),
            "is_active": bool(form["is_active"]),
            "parent_id": form["parent_id"] or None,
        }
        await service.update_category(db, me, category_id, parse(CategoryPatch, values))
    except DomainError as err:
        await db.rollback()
        return await _categories_page(
            db,
            editing=category_id,
            edit_form=form,
            error=fixable(err),
            bad=bad_fields(err, _CATEGORY_FORM_FIELDS),
            status_code=err.status_code,
        )
    return Redirect(f"/ops/categories#category-{category_id}", status_code=303)


routes = [
    search_page,
    category_page,
    shop_page,
    product_page,
    console,
    open_shop_form,
    open_shop,
    edit_shop,
    upload_logo,
    add_staff,
    remove_staff,
    new_product_form,
    create_product,
    product_editor,
    edit_product,
    edit_sku,
    publish,
    unpublish,
    add_image,
    delete_image,
    ops_categories,
    ops_create_category,
    ops_edit_category,
]
