"""JSON shapes of the trust API: scores, their breakdown and history, complaints."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

ClaimText = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
NoteText = Annotated[str, msgspec.Meta(max_length=500)]


class DimOut(msgspec.Struct):
    key: str  # product | logistics | aftersales | claims
    score: str | None  # "4.62"; None when the dimension has no data
    weight_bp: int


class ScoreOut(msgspec.Struct):
    entity_type: str  # shop | product | creator
    entity_id: int
    status: str  # scored | new
    score: str | None
    score_c: int | None  # hundredths: 462 is 4.62
    dims: list[DimOut]
    trusted: bool  # the trusted-shop badge (shops only)
    orders_90: int  # delivered order lines in the last 90 days
    min_orders: int  # what a score needs
    computed_at: dt.datetime | None
    # The windows end here: the last full computation (nightly); events since then move the
    # counts without moving the windows.
    as_of: dt.datetime | None


class IndicatorOut(msgspec.Struct):
    key: str
    dimension: str
    unit: str  # rate | hours | stars
    window_days: int
    applies: bool  # False: no data in the window; its weight goes to the dimension's others
    value: float | None
    display: str  # "1.25%", "52.30 h", "4.62"
    numerator: int
    denominator: int
    points: str | None
    weight_bp: int
    curve: list[list[float]]  # the knots [x, points]
    hint: str


class DimensionOut(msgspec.Struct):
    key: str
    score: str | None
    weight_bp: int
    indicators: list[IndicatorOut]


class BreakdownOut(msgspec.Struct):
    score: ScoreOut
    dimensions: list[DimensionOut]
    rules: str  # "default" or the category slug whose curves and weights applied
    flash_sale_restricted: bool
    settlement_days: int | None  # shops only


class LineRef(msgspec.Struct):
    order_id: int
    line_id: int
    title: str
    at: dt.datetime | None  # when it entered the window (delivered, paid, resolved...)
    detail: str
    counts_against: bool


class IndicatorLinesOut(msgspec.Struct):
    indicator: str
    items: list[LineRef]
    next_cursor: str | None


class HistoryPoint(msgspec.Struct):
    day: dt.date
    score: str | None


class ComplaintIn(msgspec.Struct, forbid_unknown_fields=True):
    """What the creator said about the item, and what arrived instead."""

    claim: ClaimText


class ComplaintDecisionIn(msgspec.Struct, forbid_unknown_fields=True):
    decision: Literal["upheld", "dismissed"]
    note: NoteText = ""


class ComplaintOut(msgspec.Struct):
    id: int
    order_id: int
    line_id: int
    product_id: int
    shop_id: int
    creator_id: int
    title: str
    claim: str
    status: str  # pending | upheld | dismissed
    created_at: dt.datetime
    decided_at: dt.datetime | None
    decision_note: str


class ComplaintPage(msgspec.Struct):
    items: list[ComplaintOut]
    next_cursor: str | None
