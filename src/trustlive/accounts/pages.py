"""HTML routes for accounts: sign in and out, register, my account, ops role management."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from litestar import Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trustlive.accounts import service
from trustlive.accounts.api import client_ip
from trustlive.accounts.models import Role
from trustlive.accounts.schemas import RegisterIn
from trustlive.catalog import service as catalog
from trustlive.config import Settings
from trustlive.errors import DomainError
from trustlive.web.forms import parse, safe_next, text
from trustlive.web.i18n import N_
from trustlive.web.policy import allow, public, signed_in
from trustlive.web.security import SESSION_COOKIE

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]

# Role names are shown through _(role); listed here so that extraction puts them in the catalog.
ROLE_LABELS = (N_("buyer"), N_("creator"), N_("merchant"), N_("ops"), N_("inspector"), N_("care_specialist"))


def _cookie_secure(settings: Settings, request: Request[Any, Any, Any]) -> bool:
    if settings.cookie_secure in ("true", "false"):
        return settings.cookie_secure == "true"
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"


def _signed_in_redirect(
    token: str, target: str, settings: Settings, request: Request[Any, Any, Any]
) -> Redirect:
    response = Redirect(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.session_days * 86400,
        httponly=True,
        samesite="lax",
        secure=_cookie_secure(settings, request),
        path="/",
    )
    return response


@get("/login", **public())
async def login_form(request: Request[Any, Any, Any]) -> Template:
    return Template("accounts/login.html", context={"next": safe_next(request.query_params.get("next"))})


@post("/login", **public())
async def login_submit(
    data: Form,
    request: Request[Any, Any, Any],
    uow: async_sessionmaker[AsyncSession],
    throttle: service.Throttle,
    settings: Settings,
) -> Template | Redirect:
    target = safe_next(text(data, "next"))
    try:
        token, _ = await service.sign_in(
            uow,
            throttle,
            settings,
            username=text(data, "username"),
            password=text(data, "password"),
            client_ip=client_ip(request),
            kind="web",
            user_agent=request.headers.get("user-agent"),
        )
    except DomainError as err:
        return Template(
            "accounts/login.html",
            status_code=err.status_code,
            headers=err.headers,
            context={"error": err, "next": target, "username": text(data, "username")},
        )
    return _signed_in_redirect(token, target, settings, request)


@get("/register", **public())
async def register_form() -> Template:
    return Template("accounts/register.html", context={"form": {}})


@post("/register", **public())
async def register_submit(
    data: Form,
    request: Request[Any, Any, Any],
    db: AsyncSession,
    uow: async_sessionmaker[AsyncSession],
    throttle: service.Throttle,
    settings: Settings,
) -> Template | Redirect:
    raw_roles = data.get("roles", [])
    roles = raw_roles if isinstance(raw_roles, list) else [raw_roles]
    form = {"username": text(data, "username"), "display_name": text(data, "display_name"), "roles": roles}
    try:
        payload = parse(RegisterIn, {**form, "password": text(data, "password")})
        await service.register(
            db,
            username=payload.username,
            password=payload.password,
            display_name=payload.display_name,
            roles=list(payload.roles),
        )
        await db.commit()  # the new account must exist before the sign-in below opens a session
        token, _ = await service.sign_in(
            uow,
            throttle,
            settings,
            username=payload.username,
            password=payload.password,
            client_ip=client_ip(request),
            kind="web",
            user_agent=request.headers.get("user-agent"),
        )
    except DomainError as err:
        await db.rollback()
        return Template(
            "accounts/register.html", status_code=err.status_code, context={"error": err, "form": form}
        )
    return _signed_in_redirect(token, "/me", settings, request)


@post("/logout", **public())
async def logout(request: Request[Any, Any, Any], db: AsyncSession) -> Redirect:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await service.sign_out(db, token)
    response = Redirect("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@get("/me", **signed_in())
async def my_account(me: service.Principal, db: AsyncSession) -> Template:
    user = await service.get_user(db, me.id)
    shops = await catalog.shops_of(db, me)  # staff without the merchant role reach the console here
    return Template("accounts/me.html", context={"user": user, "roles": sorted(me.roles), "shops": shops})


async def _ops_users_page(
    db: AsyncSession, me: service.Principal, query: str | None, **extra: Any
) -> Template:
    status = extra.pop("status_code", 200)
    rows = await service.list_users(db, me, query=query, limit=50)
    return Template(
        "accounts/ops_users.html",
        context={
            "rows": rows,
            "q": query or "",
            "all_roles": [r.value for r in Role],
            "error": None,
            **extra,
        },
        status_code=status,
    )


@get("/ops/users", **allow(Role.ops))
async def ops_users(me: service.Principal, db: AsyncSession, request: Request[Any, Any, Any]) -> Template:
    query = (request.query_params.get("q") or "").strip()[:64] or None
    return await _ops_users_page(db, me, query)


@post("/ops/users/{user_id:int}/roles", **allow(Role.ops))
async def ops_set_role(
    user_id: int, data: Form, me: service.Principal, db: AsyncSession
) -> Template | Redirect:
    role, action = text(data, "role"), text(data, "action")
    username = (await service.get_user(db, user_id)).username  # kept: a rollback expires the row
    try:
        if action == "revoke":
            await service.revoke_role(db, me, user_id, role)
        else:
            await service.grant_role(db, me, user_id, role)
    except DomainError as err:
        await db.rollback()
        if err.status_code == 403:
            raise
        return await _ops_users_page(
            db, me, username, error=err, error_user=user_id, status_code=err.status_code
        )
    # Back to the same account: the list's search matches usernames, so search for this one.
    return Redirect(f"/ops/users?q={quote(username)}&changed={user_id}", status_code=303)


routes = [
    login_form,
    login_submit,
    register_form,
    register_submit,
    logout,
    my_account,
    ops_users,
    ops_set_role,
]
