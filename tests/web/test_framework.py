"""The adjustments to Litestar (web/framework.py) and the server's garbage-collector settings:
the same answers as Litestar's own path, and nothing left behind after shutdown."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

from litestar import Litestar, Request, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.handlers.base import BaseRouteHandler
from litestar.testing import TestClient

from tests.helpers import make_settings
from trustlive import migrate
from trustlive.app import create_app
from trustlive.web import framework


def test_connection_values_reach_providers_and_guards_see_the_handler() -> None:
    framework.install()
    seen: dict[str, Any] = {}

    def from_state(state: State) -> str:
        return state.greeting

    def from_request(request: Request[Any, Any, Any]) -> str:
        return request.headers.get("x-name", "nobody")

    def from_both(request: Request[Any, Any, Any], state: State) -> str:
        return f"{state.greeting}, {request.url.path}"

    async def guard(connection: Any, handler: BaseRouteHandler) -> None:
        seen.setdefault("handlers", []).append(handler)

    @get("/hello", guards=[guard], sync_to_thread=False)
    def hello(greeting: str, name: str, both: str) -> dict[str, str]:
        return {"greeting": greeting, "name": name, "both": both}

    app = Litestar(
        [hello],
        dependencies={
            "greeting": Provide(from_state, sync_to_thread=False),
            "name": Provide(from_request, sync_to_thread=False),
            "both": Provide(from_both, sync_to_thread=False),
        },  # fmt: skip
        state=State({"greeting": "你好"}),
    )
    with TestClient(app) as client:
        answer = client.get("/hello", headers={"x-name": "xiaolin"})
        client.get("/hello")
    assert answer.status_code == 200
    assert answer.json() == {"greeting": "你好", "name": "xiaolin", "both": "你好, /hello"}
    first, second = seen["handlers"]
    assert first is second and first.fn is hello.fn  # the route's handler, not a copy per request


def test_server_gc_settings_hold_while_the_app_runs_and_are_undone_after(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/gc.db"
    migrate.upgrade(url)
    before = gc.get_threshold()
    app = create_app(make_settings(url, tmp_path))
    with TestClient(app):
        assert gc.get_threshold() == (10_000, 10, 10)
        assert gc.get_freeze_count() > 0  # start-up objects are out of the collector's way
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
