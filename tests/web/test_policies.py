"""Every route declares who may call it; the route table is walked, nothing is trusted by name."""

from __future__ import annotations

from pathlib import Path

from litestar.routes import HTTPRoute

from tests.helpers import make_settings
from trustlive.app import create_app
from trustlive.web.policy import POLICY_KEY


def test_every_route_declares_a_policy(tmp_path: Path) -> None:
    app = create_app(make_settings("sqlite+aiosqlite:///:memory:", tmp_path))
    missing = []
    checked = 0
    for route in app.routes:
        handlers = route.route_handlers if isinstance(route, HTTPRoute) else [route.route_handler]
        for handler in handlers:
            if handler.fn.__module__.startswith("litestar.") and handler.http_methods == {"OPTIONS"}:
                continue  # Litestar's own automatic OPTIONS (CORS preflight) answer: no data behind it
            checked += 1
            if not handler.opt.get(POLICY_KEY):
                missing.append(f"{sorted(getattr(handler, 'http_methods', []))} {route.path}")
    assert checked > 20
    assert not missing, f"routes without a policy: {missing}"


def test_policy_is_not_inherited_from_the_app(tmp_path: Path) -> None:
    """The check above must be able to fail: a handler without a policy is reported."""
    from litestar import get

    @get("/unguarded")
    async def unguarded() -> str:
        return "x"

    assert not unguarded.opt.get(POLICY_KEY)
