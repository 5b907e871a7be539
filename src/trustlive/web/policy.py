"""Who may call a route. Every handler declares exactly one policy, spread into its decorator:

    @get("/shops/{shop_id:int}", **public())
    @post("/shops", **allow(Role.merchant))
    @get("/me", **signed_in())

``tests/web/test_policies.py`` walks the route table and fails on any handler without one.
Object-level checks (is this *your* shop?) live in the services, which receive the Principal.
Guards are coroutines: Litestar runs a plain function guard in a worker thread.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from trustlive.accounts.service import Principal
from trustlive.errors import Forbidden, Unauthorized

POLICY_KEY = "policy"


def current_principal(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    user = connection.scope.get("user")
    return user if isinstance(user, Principal) else None


async def _require_signed_in(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    if current_principal(connection) is None:
        raise Unauthorized("sign in first")


def _require_roles(roles: frozenset[str]):  # type: ignore[no-untyped-def]
    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = current_principal(connection)
        if principal is None:
            raise Unauthorized("sign in first")
        if not principal.has(*roles):
            raise Forbidden(f"this needs the {' or '.join(sorted(roles))} role", code="role_required")

    return guard


def public() -> dict[str, Any]:
    """Anyone, signed in or not."""
    return {"opt": {POLICY_KEY: "public"}}


def signed_in() -> dict[str, Any]:
    """Any signed-in account."""
    return {"guards": [_require_signed_in], "opt": {POLICY_KEY: "signed_in"}}


def allow(*roles: str) -> dict[str, Any]:
    """Signed-in accounts holding at least one of ``roles``."""
    if not roles:
        raise ValueError("allow() needs at least one role")
    wanted = frozenset(str(r) for r in roles)
    return {"guards": [_require_roles(wanted)], "opt": {POLICY_KEY: "roles:" + ",".join(sorted(wanted))}}
