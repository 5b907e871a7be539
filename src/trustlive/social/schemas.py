"""JSON shapes of the social API."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

MAX_ID = 2**62  # as web.validation: ids beyond it name nothing

TargetTypeName = Literal["creator", "shop"]


class FollowIn(msgspec.Struct, forbid_unknown_fields=True):
    """Follow a creator (a user with the creator role) or a shop."""

    target_type: TargetTypeName
    target_id: Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)]


class FollowStateOut(msgspec.Struct):
    """Where a follow stands after a follow or unfollow, or as a viewer sees it: ``following`` is
    None for someone signed out; ``is_self`` when the target is the viewer (their own creator
    account, a shop they own or staff), who cannot follow it."""

    target_type: str
    target_id: int
    followers: int
    following: bool | None = None
    is_self: bool = False


class FollowOut(msgspec.Struct):
    """One entry of a user's followed list. ``available`` is false for a shop that is closed or a
    user who no longer holds the creator role: the follow stays until the user removes it."""

    id: int  # the follow's own id (the cursor continues below it)
    target_type: str
    target_id: int
    name: str
    url: str  # the target's public page
    logo_url: str | None
    followers: int
    available: bool
    followed_at: dt.datetime


class FollowPage(msgspec.Struct):
    items: list[FollowOut]
    next_cursor: str | None
