"""JSON shapes of the content API, and the card other domains (the feeds) read."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

from trustlive.catalog.service import ProductCard
from trustlive.content.models import MAX_DESCRIPTION, MAX_PRODUCTS, MAX_REASON, MAX_TITLE, MAX_URL

Id = Annotated[int, msgspec.Meta(ge=1, le=2**62)]
Title = Annotated[str, msgspec.Meta(max_length=MAX_TITLE)]  # 1-80 once trimmed (the service)
Description = Annotated[str, msgspec.Meta(max_length=MAX_DESCRIPTION)]
ProductIds = Annotated[list[Id], msgspec.Meta(max_length=MAX_PRODUCTS)]
Url = Annotated[str, msgspec.Meta(max_length=MAX_URL)]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_REASON)]


class VideoIn(msgspec.Struct, forbid_unknown_fields=True):
    """A new video. The cover travels as a multipart file named ``cover``; the video as a file
    named ``video`` (MP4 or WebM) OR as ``video_url`` (http/https): exactly one of the two."""

    title: Title
    description: Description = ""
    product_ids: ProductIds = msgspec.field(default_factory=list)
    video_url: Url | None = None


class VideoPatch(msgspec.Struct, forbid_unknown_fields=True):
    """An edit: only what is sent changes (``product_ids`` replaces the list; [] removes them all)."""

    title: Title | None = None
    description: Description | None = None
    product_ids: ProductIds | None = None


class TakeDownIn(msgspec.Struct, forbid_unknown_fields=True):
    reason: Reason


class VideoOut(msgspec.Struct):
    id: int
    creator_id: int
    creator_name: str
    title: str
    description: str
    cover_url: str
    # What a player plays: the uploaded file under /media/, or the external URL.
    playback_url: str
    source: str  # "file" or "external"
    video_type: str | None  # "video/mp4" or "video/webm" for a file; None for an external URL
    status: str
    like_count: int
    product_ids: list[int]  # every linked product, in the creator's order
    products: list[ProductCard]  # the linked products a buyer can see now (published)
    created_at: dt.datetime
    updated_at: dt.datetime
    liked: bool | None = None  # whether the viewer likes it (None: nobody signed in)
    # Only for the creator and ops.
    taken_down_reason: str | None = None


class VideoPage(msgspec.Struct):
    items: list[VideoOut]
    next_cursor: str | None


class LikeOut(msgspec.Struct):
    video_id: int
    liked: bool
    like_count: int


class VideoCard(msgspec.Struct, frozen=True):
    """What the feeds need of a video to rank and show it: no description, no playback."""

    id: int
    creator_id: int
    title: str
    cover_url: str
    created_at: dt.datetime
    like_count: int
    status: str
