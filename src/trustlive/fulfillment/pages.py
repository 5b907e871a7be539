"""HTML routes of fulfillment: the QC warehouse's inspector console, ops' warehouses and labs, and
the public certificate page."""

from __future__ import annotations

routes: list[object] = []
