"""JSON shapes of the aftersales API."""

from __future__ import annotations
