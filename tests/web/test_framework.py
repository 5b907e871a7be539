"""The adjustments to Litestar (web/framework.py) and the server's garbage-collector settings:
the same answers as Litestar's own path, and nothing left behind after shutdown."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import msgspec
from litestar import Litestar, Request, get, post
from litestar.datastructures import State
from litestar.di import Provide
from litestar.handlers.base import BaseRouteHandler
from litestar.testing import TestClient
from litestar.utils.scope.state import ScopeState

from tests.helpers import make_settings
from trustlive import migrate
from trustlive.app import create_app
from trustlive.web import framework
from trustlive.web.errors import handle_exception
from trustlive.web.validation import strict_json_body


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


class Parcel(msgspec.Struct):
    weight_g: int
    note: str = ""


def test_the_handler_gets_the_struct_that_was_decoded_strictly(tmp_path: Path) -> None:
    framework.install()
    received: list[tuple[Parcel, Any]] = []

    @post("/parcels", sync_to_thread=False)
    def add(data: Parcel, request: Request[Any, Any, Any]) -> dict[str, int]:
        received.append((data, ScopeState.from_scope(request.scope).json))
        return {"weight_g": data.weight_g}

    app = Litestar(
        [add], before_request=strict_json_body, exception_handlers={Exception: handle_exception},
        state=State({"settings": make_settings(f"sqlite+aiosqlite:///{tmp_path}/unused.db", tmp_path)}),
    )  # fmt: skip
    with TestClient(app) as client:
        ok = client.post("/parcels", json={"weight_g": 250, "note": "翡翠手镯"})
        lenient = client.post("/parcels", json={"weight_g": "250"}, headers={"Accept": "application/json"})
    assert ok.status_code == 201 and ok.json() == {"weight_g": 250}
    assert lenient.status_code == 422 and lenient.json()["error"]["fields"][0]["field"] == "weight_g"
    [(data, decoded)] = received
    assert data == Parcel(250, "翡翠手镯")
    assert decoded is data  # Litestar did not decode and convert the body a second time


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
