"""JSON shapes of the reviews API."""

from __future__ import annotations
