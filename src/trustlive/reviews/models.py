"""Tables of the reviews domain."""

from __future__ import annotations
