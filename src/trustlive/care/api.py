"""JSON routes of the care domain: thin wrappers over care.service."""

from __future__ import annotations

routes: list[object] = []
