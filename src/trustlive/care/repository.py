"""Every query of the care domain."""

from __future__ import annotations
