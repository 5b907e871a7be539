"""Adjustments to Litestar 2 (pinned <3), kept here so they are easy to find and to drop.

Each one removes per-request work that costs more than what our code does with it; measured on
the flash-sale benchmark (bench/flash_sale.py), where the request path is half a worker's time.

1. Independent dependencies are resolved one after another, not concurrently in an anyio task
   group: a task group per request cost 11% of a worker, and our providers never wait on each
   other. The order of batches and the cleanup of generator dependencies are Litestar's own.
   Upstream: litestar-org/litestar#4563.
2. A provider that only asks for the connection's own values (``request``, ``state``, ``scope``)
   gets them directly. Litestar ran them through its validation on every request, wrapping the
   application state in a new ``State`` each time.
3. Guards receive the route handler itself, not a shallow copy made per guard and request. Our
   guards (web/policy.py) only read the connection.
"""

from __future__ import annotations

import functools
from typing import Any

from litestar._kwargs.cleanup import DependencyCleanupGroup
from litestar._kwargs.dependencies import resolve_dependency
from litestar._kwargs.kwargs_model import KwargsModel
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

_BUILT_BY_LITESTAR = frozenset({"request", "state", "scope"})


@functools.cache
def _connection_values_only(signature_model: type) -> tuple[str, ...] | None:
    """The provider's parameter names when all of them are the connection's own values."""
    fields = tuple(signature_model._fields)  # type: ignore[attr-defined]
    return fields if set(fields) <= _BUILT_BY_LITESTAR else None


async def _resolve_dependencies_in_turn(
    self: KwargsModel, connection: ASGIConnection[Any, Any, Any, Any], kwargs: dict[str, Any]
) -> DependencyCleanupGroup:
    cleanup_group = DependencyCleanupGroup()
    for batch in self.dependency_batches:
        for dependency in batch:
            provide = dependency.provide
            names = _connection_values_only(provide.signature_model)
            if (
                names is None
                or provide.has_sync_generator_dependency
                or provide.has_async_generator_dependency
            ):
                await resolve_dependency(dependency, connection, kwargs, cleanup_group)
            else:
                given = {"request": connection, "state": connection.app.state, "scope": connection.scope}
                kwargs[dependency.key] = await provide(**{name: given[name] for name in names})
    return cleanup_group


async def _authorize_connection(
    self: BaseRouteHandler, connection: ASGIConnection[Any, Any, Any, Any]
) -> None:
    for guard in self.resolve_guards():
        await guard(connection, self)  # type: ignore[misc]


def install() -> None:
    KwargsModel.resolve_dependencies = _resolve_dependencies_in_turn  # type: ignore[method-assign]
    BaseRouteHandler.authorize_connection = _authorize_connection  # type: ignore[method-assign]
