"""Webhook signatures, shared by every sandbox that calls us back (payments, logistics).

Stripe's scheme: header ``t=<unix time>,v1=<hex>`` where ``<hex>`` is HMAC-SHA256 over
``"{t}.{body}"`` with the shared secret; a timestamp more than five minutes away from our clock is
refused, so a captured request cannot be replayed later (a replay within the window is caught by
the receiver's event-id dedup).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

from trustlive.db import utcnow
from trustlive.errors import BadRequest

SIGNATURE_TOLERANCE = dt.timedelta(minutes=5)


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The signature header value for ``body`` sent at ``timestamp`` (unix seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def check_signature(secret: str, header: str | None, body: bytes, now: dt.datetime | None = None) -> None:
    """Raise 400 ``bad_signature`` unless ``header`` signs ``body`` with ``secret`` within the
    tolerance. Any ``v1`` entry may match (so secrets can be rotated by sending two)."""
    if not header:
        raise BadRequest("missing webhook signature", code="bad_signature")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise BadRequest("malformed webhook signature", code="bad_signature")
    now_ts = (now or utcnow()).timestamp()
    if abs(now_ts - timestamp) > SIGNATURE_TOLERANCE.total_seconds():
        raise BadRequest("webhook timestamp outside the 5-minute tolerance", code="bad_signature")
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise BadRequest("webhook signature does not match", code="bad_signature")
