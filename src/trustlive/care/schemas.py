"""JSON shapes of the care API."""

from __future__ import annotations
