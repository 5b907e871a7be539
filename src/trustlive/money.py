"""Money is integer fen (分) everywhere. Never float.

Parsing accepts yuan text as people type it ("12", "12.5", "12.50", "¥1,299.00"); formatting is
for display only. Amounts are checked against explicit bounds so absurd prices are refused early.
"""

from __future__ import annotations

import re

from trustlive.errors import ValidationFailed

Fen = int

# 10 million yuan: far above any single listing here, far below integer overflow anywhere.
MAX_PRICE_FEN: Fen = 10_000_000_00

_YUAN_RE = re.compile(r"^(?P<int>\d{1,9})(?:\.(?P<frac>\d{1,2}))?$")


def parse_yuan(text: str, *, field: str = "price") -> Fen:
    """'12.50' -> 1250. Raises ValidationFailed naming ``field`` for anything else."""
    cleaned = text.strip().replace(",", "").removeprefix("¥").removeprefix("￥").strip()
    match = _YUAN_RE.match(cleaned)
    if not match:
        raise ValidationFailed(f"{field}: not an amount in yuan (e.g. 12.50)", field=field)
    frac = (match.group("frac") or "").ljust(2, "0")
    return int(match.group("int")) * 100 + int(frac or 0)


def format_fen(amount: Fen, *, symbol: str = "¥") -> str:
    sign = "-" if amount < 0 else ""
    yuan, fen = divmod(abs(amount), 100)
    return f"{sign}{symbol}{yuan:,}.{fen:02d}"


def check_price(amount: int, *, field: str = "price_fen", allow_zero: bool = False) -> Fen:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise ValidationFailed(f"{field} must be an integer number of fen", field=field)
    if amount < 0 or (amount == 0 and not allow_zero):
        raise ValidationFailed(f"{field} must be greater than zero", field=field)
    if amount > MAX_PRICE_FEN:
        raise ValidationFailed(f"{field} is above the maximum of {format_fen(MAX_PRICE_FEN)}", field=field)
    return amount


def apply_rate_bp(amount: Fen, rate_bp: int) -> Fen:
    """Share of ``amount`` at ``rate_bp`` basis points (1/100 of a percent), rounded half up."""
    return (amount * rate_bp + 5_000) // 10_000
