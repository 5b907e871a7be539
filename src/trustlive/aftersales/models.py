"""Tables of the after-sales domain (docs/aftersales.md)."""

from __future__ import annotations
