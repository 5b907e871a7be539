"""One adjustment to Litestar 2 (pinned <3), kept here so it is easy to find and to drop.

Litestar resolves a handler's independent dependencies concurrently, in an anyio task group, as
soon as there are two of them (``me`` and ``db`` are two). A task group per request costs more
than everything our providers do: they are cheap and never wait on each other. Measured on the
flash-sale benchmark it was 11% of a worker's time. Upstream: litestar-org/litestar#4563.
We resolve them one after another instead; the order of batches (sub-dependencies first) and
the cleanup of generator dependencies are Litestar's own.
"""

from __future__ import annotations

from typing import Any

from litestar._kwargs.cleanup import DependencyCleanupGroup
from litestar._kwargs.dependencies import resolve_dependency
from litestar._kwargs.kwargs_model import KwargsModel
from litestar.connection import ASGIConnection


async def _resolve_dependencies_in_turn(
    self: KwargsModel, connection: ASGIConnection[Any, Any, Any, Any], kwargs: dict[str, Any]
) -> DependencyCleanupGroup:
    cleanup_group = DependencyCleanupGroup()
    for batch in self.dependency_batches:
        for dependency in batch:
            await resolve_dependency(dependency, connection, kwargs, cleanup_group)
    return cleanup_group


def install() -> None:
    KwargsModel.resolve_dependencies = _resolve_dependencies_in_turn  # type: ignore[method-assign]
