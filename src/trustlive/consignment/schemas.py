"""JSON shapes of the consignment API (docs/consignment.md)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

Fen = Annotated[int, msgspec.Meta(ge=1, le=1_000_000_000)]
Title = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Description = Annotated[str, msgspec.Meta(max_length=2000)]
Grade = Annotated[str, msgspec.Meta(min_length=1, max_length=20)]
Notes = Annotated[str, msgspec.Meta(max_length=500)]
Id = Annotated[int, msgspec.Meta(ge=1, le=2**62)]


class ItemIn(msgspec.Struct, forbid_unknown_fields=True):
    """A consignor's item for an appraiser creator (photos travel as multipart files ``photos``)."""

    appraiser_id: Id
    title: Title
    category_id: Id
    description: Description = ""
    asking_fen: Fen | None = None


class AppraisalIn(msgspec.Struct, forbid_unknown_fields=True):
    """The creator's valuation, recorded during one of their live sessions (``session_id``)."""

    session_id: Id
    valuation_fen: Fen
    grade: Grade
    notes: Notes = ""


class FeatureIn(msgspec.Struct, forbid_unknown_fields=True):
    session_id: Id


class WaiverIn(msgspec.Struct, forbid_unknown_fields=True):
    """No consignment fee on sales whose order is placed from ``starts_at`` until ``ends_at``."""

    starts_at: dt.datetime
    ends_at: dt.datetime


class UserRefOut(msgspec.Struct):
    id: int
    name: str


class PhotoOut(msgspec.Struct):
    url: str
    width: int
    height: int


class AppraisalOut(msgspec.Struct):
    id: int
    session_id: int
    valuation_fen: int
    grade: str
    notes: str
    created_at: dt.datetime


class ItemOut(msgspec.Struct):
    id: int
    title: str
    description: str
    category_id: int
    asking_fen: int | None
    status: str  # submitted | appraised | listed | settled | declined | withdrawn
    sold: bool  # listed and its one unit taken by an order
    consignor: UserRefOut
    appraiser: UserRefOut
    shop_id: int
    photos: list[PhotoOut]
    valuation_fen: int | None
    grade: str | None
    notes: str
    session_id: int | None
    appraised_at: dt.datetime | None
    fee_bp: int | None
    product_id: int | None
    order_id: int | None
    fee_fen: int | None
    proceeds_fen: int | None
    settled_at: dt.datetime | None
    created_at: dt.datetime
    appraisals: list[AppraisalOut] = []


class ItemPage(msgspec.Struct):
    items: list[ItemOut]
    next_cursor: str | None = None


class WaiverOut(msgspec.Struct):
    id: int
    starts_at: dt.datetime
    ends_at: dt.datetime
    active: bool


class TermsOut(msgspec.Struct):
    """A creator's consignment terms: the fee now (0 while a waiver runs) and the waivers."""

    creator_id: int
    fee_bp: int
    fee_bp_now: int
    waived_until: dt.datetime | None
    waivers: list[WaiverOut]


class AppraiserOut(msgspec.Struct):
    id: int
    name: str
    shop_id: int
    shop_name: str
