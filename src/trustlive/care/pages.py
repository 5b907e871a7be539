"""HTML routes of the care domain."""

from __future__ import annotations

routes: list[object] = []
