"""Care case use cases (docs/care.md)."""

from __future__ import annotations
