"""Cursor pagination shared by every list endpoint.

Lists return ``{"items": [...], "next_cursor": "..." | null}``. A cursor is opaque to clients
(base64 of a small JSON object); a cursor that does not decode is a 400, never a 500.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from trustlive.errors import BadRequest

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def encode_cursor(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, *keys: str) -> dict[str, int] | None:
    """Decode a cursor whose ``keys`` must all be non-negative integers."""
    if cursor is None or cursor == "":
        return None
    try:
        if len(cursor) > 200:
            raise ValueError
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        if not isinstance(data, dict) or set(data) != set(keys):
            raise ValueError
        for key in keys:
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError
        return data
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadRequest(
            "cursor: not a cursor this server issued", field="cursor", code="bad_cursor"
        ) from None


def before_id(cursor: str | None) -> int | None:
    """The id a newest-first list continues below (cursor ``{"before": id}``)."""
    decoded = decode_cursor(cursor, "before")
    return decoded["before"] if decoded else None


def trim_page(items: list[Any], limit: int) -> tuple[list[Any], str | None]:
    """Trim a list fetched with ``limit + 1`` and give the cursor of the next page, if any."""
    if len(items) <= limit:
        return items, None
    items = items[:limit]
    return items, encode_cursor({"before": items[-1].id})
