"""HTML routes of the reviews domain."""

from __future__ import annotations

routes: list[object] = []
