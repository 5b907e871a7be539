"""Pages of the shell itself: home (the shelf's front), the ops console front, language switch, health."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.response import Redirect, Template
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.accounts.service import Principal
from trustlive.catalog import service as catalog
from trustlive.live import service as live
from trustlive.web.i18n import LOCALES
from trustlive.web.policy import allow, public
from trustlive.web.security import LANG_COOKIE


@get("/", **public())
async def home(db: AsyncSession, viewer: Principal | None) -> Template:
    categories = await catalog.list_categories(db)
    latest = await catalog.latest_products(db, 24)
    live_now = await live.list_public_sessions(db, viewer, status="live", before_id=None, limit=8)
    context = {"categories": categories, "products": latest, "viewer": viewer, "live_now": live_now}
    return Template("home.html", context=context)


@get("/ops", **allow("ops"))
async def ops_home() -> Template:
    """The ops console's front: links to each area ops manage."""
    return Template("ops.html")


@get("/lang/{locale:str}", **public())
async def switch_language(locale: str, request: Request[Any, Any, Any]) -> Redirect:
    """Remember the chosen UI language in a cookie and go back where the user was."""
    if locale not in LOCALES:
        locale = "zh_Hans"
    back = request.query_params.get("next") or "/"
    if not back.startswith("/") or back.startswith("//"):
        back = "/"
    response = Redirect(back)
    response.set_cookie(LANG_COOKIE, locale, max_age=365 * 86400, samesite="lax", httponly=True)
    return response


@get("/healthz", **public(), include_in_schema=False)
async def health(db: AsyncSession) -> Response[dict[str, str]]:
    await db.execute(text("SELECT 1"))
    return Response({"status": "ok"})


@get("/api/v1/ping", **public(), include_in_schema=False, sync_to_thread=False)
def ping() -> dict[str, bool]:
    """A route that does nothing: the baseline the benchmarks compare real routes against."""
    return {"ok": True}


routes = [ping, home, ops_home, switch_language, health]
