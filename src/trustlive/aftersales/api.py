"""JSON routes of the aftersales domain: thin wrappers over aftersales.service."""

from __future__ import annotations

routes: list[object] = []
