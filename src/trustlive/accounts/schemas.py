"""JSON shapes of the accounts API."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

SelfServiceRole = Literal["buyer", "creator", "merchant"]
AnyRole = Literal["buyer", "creator", "merchant", "ops", "inspector", "care_specialist"]

Username = Annotated[str, msgspec.Meta(min_length=3, max_length=32, examples=["jade_zhou"])]
Password = Annotated[str, msgspec.Meta(min_length=8, max_length=128)]
DisplayName = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class RegisterIn(msgspec.Struct, forbid_unknown_fields=True):
    username: Username
    password: Password
    display_name: DisplayName
    roles: list[SelfServiceRole] = []


class TokenIn(msgspec.Struct, forbid_unknown_fields=True):
    username: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class UserOut(msgspec.Struct):
    id: int
    username: str
    display_name: str
    roles: list[str]
    created_at: dt.datetime


class TokenOut(msgspec.Struct):
    access_token: str
    token_type: str
    expires_in: int
    user: UserOut


class RoleIn(msgspec.Struct, forbid_unknown_fields=True):
    role: AnyRole


class RolesOut(msgspec.Struct):
    user_id: int
    roles: list[str]


class UserPage(msgspec.Struct):
    items: list[UserOut]
    next_cursor: str | None
