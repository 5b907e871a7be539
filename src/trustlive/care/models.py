"""Tables of the care domain (docs/care.md)."""

from __future__ import annotations
