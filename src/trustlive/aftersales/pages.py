"""HTML routes of the aftersales domain."""

from __future__ import annotations

routes: list[object] = []
