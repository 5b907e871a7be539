"""JSON shapes of the catalog API (also what services hand to pages)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

Slug = Annotated[str, msgspec.Meta(min_length=2, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")]
Name64 = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Title = Annotated[str, msgspec.Meta(min_length=1, max_length=120)]
LongText = Annotated[str, msgspec.Meta(max_length=5000)]
Fen = Annotated[int, msgspec.Meta(ge=1, le=1_000_000_000)]
Stock = Annotated[int, msgspec.Meta(ge=0, le=1_000_000)]
SkuCode = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
OptionName = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
OptionValue = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
BasisPoints = Annotated[int, msgspec.Meta(ge=0, le=10_000)]
ReturnDays = Annotated[int, msgspec.Meta(ge=0, le=90)]
# Alliance commission the merchant offers creators, in basis points of the commission base.
CommissionBp = Annotated[int, msgspec.Meta(ge=0, le=9000)]
BuyerLimit = Annotated[int, msgspec.Meta(ge=1, le=10_000)]


# --- categories -------------------------------------------------------------------------------


class CategoryIn(msgspec.Struct, forbid_unknown_fields=True):
    slug: Slug
    name_zh: Name64
    name_en: Name64
    parent_id: int | None = None
    requires_inspection: bool = False
    return_window_days: ReturnDays = 7
    service_fee_bp: BasisPoints = 500
    position: int = 0


class CategoryPatch(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    # Absent: keep the parent. null: make it a top-level category. An id: move it under that one.
    parent_id: int | None | msgspec.UnsetType = msgspec.UNSET
    name_zh: Name64 | None = None
    name_en: Name64 | None = None
    requires_inspection: bool | None = None
    return_window_days: ReturnDays | None = None
    service_fee_bp: BasisPoints | None = None
    is_active: bool | None = None
    position: int | None = None


class CategoryOut(msgspec.Struct):
    id: int
    slug: str
    name_zh: str
    name_en: str
    parent_id: int | None
    requires_inspection: bool
    return_window_days: int
    service_fee_bp: int
    is_active: bool
    position: int


# --- shops ------------------------------------------------------------------------------------


class ShopIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Name64
    description: LongText = ""
    slug: Slug | None = None


class ShopPatch(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    name: Name64 | None = None
    description: LongText | None = None


class ShopOut(msgspec.Struct):
    id: int
    slug: str
    name: str
    description: str
    logo_url: str | None
    owner_id: int
    status: str
    created_at: dt.datetime


class StaffIn(msgspec.Struct, forbid_unknown_fields=True):
    username: Annotated[str, msgspec.Meta(min_length=3, max_length=32)]


class StaffOut(msgspec.Struct):
    user_id: int
    username: str
    display_name: str
    role: str


# --- products ---------------------------------------------------------------------------------


class OptionIn(msgspec.Struct, forbid_unknown_fields=True):
    name: OptionName
    values: Annotated[list[OptionValue], msgspec.Meta(min_length=1, max_length=50)]


class SkuIn(msgspec.Struct, forbid_unknown_fields=True):
    price_fen: Fen
    stock: Stock
    option_values: Annotated[list[OptionValue], msgspec.Meta(max_length=3)] = []
    code: SkuCode | None = None
    per_buyer_limit: BuyerLimit | None = None


class ProductIn(msgspec.Struct, forbid_unknown_fields=True):
    title: Title
    category_id: int
    skus: Annotated[list[SkuIn], msgspec.Meta(min_length=1, max_length=500)]
    description: LongText = ""
    options: Annotated[list[OptionIn], msgspec.Meta(max_length=3)] = []
    commission_bp: CommissionBp = 0


class ProductPatch(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    title: Title | None = None
    description: LongText | None = None
    category_id: int | None = None
    commission_bp: CommissionBp | None = None


class SkuPatch(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    price_fen: Fen | None = None
    stock: Stock | None = None
    code: SkuCode | None = None
    is_active: bool | None = None
    # Absent: keep. null: no limit. A number: at most that many per buyer (flash sales).
    per_buyer_limit: BuyerLimit | None | msgspec.UnsetType = msgspec.UNSET


class OptionOut(msgspec.Struct):
    name: str
    values: list[str]


class SkuOut(msgspec.Struct):
    id: int
    code: str
    option_values: list[str]
    price_fen: int
    stock: int
    is_active: bool
    per_buyer_limit: int | None = None


class ImageOut(msgspec.Struct):
    id: int
    url: str
    width: int
    height: int
    content_type: str
    byte_size: int


class ProductOut(msgspec.Struct):
    id: int
    shop_id: int
    shop_slug: str
    shop_name: str
    category_id: int
    title: str
    description: str
    status: Literal["draft", "published", "unpublished"]
    options: list[OptionOut]
    skus: list[SkuOut]
    images: list[ImageOut]
    requires_inspection: bool
    return_window_days: int
    published_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime
    commission_bp: int = 0


class ProductCard(msgspec.Struct):
    id: int
    title: str
    status: str
    shop_id: int
    shop_name: str
    shop_slug: str
    min_price_fen: int
    max_price_fen: int
    stock: int
    image_url: str | None


class ProductPage(msgspec.Struct):
    items: list[ProductCard]
    next_cursor: str | None


class ShopPage(msgspec.Struct):
    items: list[ShopOut]
    next_cursor: str | None
