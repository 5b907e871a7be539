"""Every query of the aftersales domain."""

from __future__ import annotations
