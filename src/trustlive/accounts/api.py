"""JSON routes for accounts: thin wrappers over accounts.service."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, delete, get, post
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trustlive.accounts import service
from trustlive.accounts.models import User
from trustlive.accounts.schemas import RegisterIn, RoleIn, RolesOut, TokenIn, TokenOut, UserOut, UserPage
from trustlive.config import Settings
from trustlive.web.pagination import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor, encode_cursor
from trustlive.web.policy import allow, public, signed_in
from trustlive.web.security import bearer_token

Limit = Annotated[int, Parameter(ge=1, le=MAX_LIMIT)]


def user_out(user: User, roles: set[str]) -> UserOut:
    return UserOut(user.id, user.username, user.display_name, sorted(roles), user.created_at)


def client_ip(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


@post("/auth/register", status_code=201, tags=["accounts"], **public())
async def register(data: RegisterIn, db: AsyncSession) -> UserOut:
    """Create an account. Every account is a buyer; `roles` may add creator and/or merchant."""
    user = await service.register(
        db,
        username=data.username,
        password=data.password,
        display_name=data.display_name,
        roles=list(data.roles),
    )
    return user_out(user, await service.roles_of(db, user.id))


@post("/auth/token", status_code=200, tags=["accounts"], **public())
async def issue_token(
    data: TokenIn,
    request: Request[Any, Any, Any],
    uow: async_sessionmaker[AsyncSession],
    throttle: service.Throttle,
    settings: Settings,
    db: AsyncSession,
) -> TokenOut:
    """Exchange username and password for a bearer token (`Authorization: Bearer <token>`)."""
    token, principal = await service.sign_in(
        uow,
        throttle,
        settings,
        username=data.username,
        password=data.password,
        client_ip=client_ip(request),
        kind="api",
        user_agent=request.headers.get("user-agent"),
    )
    user = await service.get_user(db, principal.id)
    return TokenOut(token, "bearer", settings.token_days * 86400, user_out(user, set(principal.roles)))


@delete("/auth/token", status_code=204, tags=["accounts"], **signed_in())
async def revoke_token(request: Request[Any, Any, Any], db: AsyncSession) -> None:
    """Revoke the bearer token this request was made with."""
    token = bearer_token(request)
    if token:
        await service.sign_out(db, token)


@get("/me", tags=["accounts"], **signed_in())
async def me_detail(me: service.Principal, db: AsyncSession) -> UserOut:
    user = await service.get_user(db, me.id)
    return user_out(user, set(me.roles))


@get("/users", tags=["accounts"], **allow("ops"))
async def list_users(
    me: service.Principal,
    db: AsyncSession,
    limit: Limit = DEFAULT_LIMIT,
    q: Annotated[str | None, Parameter(max_length=64)] = None,
    role: Annotated[str | None, Parameter(max_length=32)] = None,
    cursor: Annotated[str | None, Parameter(max_length=200)] = None,
) -> UserPage:
    after = decode_cursor(cursor, "after")
    rows = await service.list_users(
        db, me, query=q, role=role, after_id=after["after"] if after else None, limit=limit + 1
    )
    items = [user_out(u, r) for u, r in rows[:limit]]
    next_cursor = encode_cursor({"after": items[-1].id}) if len(rows) > limit else None
    return UserPage(items, next_cursor)


@get("/users/{user_id:int}", tags=["accounts"], **allow("ops"))
async def user_detail(user_id: int, db: AsyncSession) -> UserOut:
    user = await service.get_user(db, user_id)
    return user_out(user, await service.roles_of(db, user_id))


@post("/users/{user_id:int}/roles", status_code=200, tags=["accounts"], **allow("ops"))
async def grant_role(user_id: int, data: RoleIn, me: service.Principal, db: AsyncSession) -> RolesOut:
    """Grant a role (ops only). Granting a role the user already has changes nothing."""
    return RolesOut(user_id, sorted(await service.grant_role(db, me, user_id, data.role)))


@delete("/users/{user_id:int}/roles/{role:str}", status_code=200, tags=["accounts"], **allow("ops"))
async def revoke_role(user_id: int, role: str, me: service.Principal, db: AsyncSession) -> RolesOut:
    return RolesOut(user_id, sorted(await service.revoke_role(db, me, user_id, role)))


routes = [register, issue_token, revoke_token, me_detail, list_users, user_detail, grant_role, revoke_role]
