"""JSON shapes of the reviews API."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

Rating = Annotated[int, msgspec.Meta(ge=1, le=5)]
ReviewText = Annotated[str, msgspec.Meta(max_length=500)]
ReplyText = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class ReviewIn(msgspec.Struct, forbid_unknown_fields=True):
    """A new review of one order line (photos travel as multipart files named ``photos``)."""

    rating_product: Rating
    rating_logistics: Rating
    rating_service: Rating
    text: ReviewText = ""


class ReviewPatch(msgspec.Struct, forbid_unknown_fields=True):
    """An edit inside the edit window: only what is sent changes. New ``photos`` replace the old
    ones; ``clear_photos`` removes them."""

    rating_product: Rating | None = None
    rating_logistics: Rating | None = None
    rating_service: Rating | None = None
    text: ReviewText | None = None
    clear_photos: bool = False


class ReplyIn(msgspec.Struct, forbid_unknown_fields=True):
    text: ReplyText


class PhotoOut(msgspec.Struct):
    url: str
    width: int
    height: int


class ReplyOut(msgspec.Struct):
    text: str
    replied_at: dt.datetime
    edited_at: dt.datetime | None


class ReviewOut(msgspec.Struct):
    id: int
    product_id: int
    shop_id: int
    buyer: str  # masked: first character and "**"
    title: str
    variant: str
    rating_product: int
    rating_logistics: int
    rating_service: int
    text: str
    photos: list[PhotoOut]
    created_at: dt.datetime
    edited_at: dt.datetime | None
    edit_until: dt.datetime
    reply: ReplyOut | None
    # Only for the review's buyer and its shop (the public lists leave them out).
    order_id: int | None = None
    order_line_id: int | None = None


class ReviewPage(msgspec.Struct):
    items: list[ReviewOut]
    next_cursor: str | None


class RatingsOut(msgspec.Struct):
    """A product's ratings: averages to two decimals (None without reviews), and how many
    reviews gave the product each number of stars (keys "1" to "5")."""

    product_id: int
    count: int
    avg_product: float | None
    avg_logistics: float | None
    avg_service: float | None
    distribution: dict[str, int]
    with_photos: int
    low: int  # product rating 1 or 2
