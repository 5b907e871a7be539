"""JSON routes of the reviews domain: thin wrappers over reviews.service."""

from __future__ import annotations

routes: list[object] = []
