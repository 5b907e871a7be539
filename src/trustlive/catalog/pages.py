"""HTML routes for the shelf and the merchant / ops consoles."""

from __future__ import annotations

routes: list = []  # type: ignore[type-arg]
