"""Money is integer fen: parsing, formatting, bounds, rates."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trustlive.errors import ValidationFailed
from trustlive.money import MAX_PRICE_FEN, apply_rate_bp, check_price, format_fen, parse_yuan


@pytest.mark.parametrize(
    ("text", "fen"),
    [("12", 1200), ("12.5", 1250), ("12.50", 1250), ("0.01", 1), ("¥1,299.00", 129900), (" ￥59 ", 5900)],
)
def test_parse_yuan(text: str, fen: int) -> None:
    assert parse_yuan(text) == fen


@pytest.mark.parametrize(
    "text", ["", "abc", "-3", "1.234", "1e5", "12.", ".5", "NaN", "1 000", "99999999999"]
)
def test_parse_yuan_rejects(text: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_yuan(text, field="price")
    assert info.value.fields[0].field == "price"


@given(st.integers(min_value=0, max_value=MAX_PRICE_FEN))
def test_format_then_parse_round_trips(fen: int) -> None:
    assert parse_yuan(format_fen(fen)) == fen


def test_check_price_bounds() -> None:
    assert check_price(1) == 1
    for bad in (0, -1, MAX_PRICE_FEN + 1, 1.5, True, "100"):
        with pytest.raises(ValidationFailed):
            check_price(bad)  # type: ignore[arg-type]
    assert check_price(0, allow_zero=True) == 0


@given(st.integers(min_value=0, max_value=10**12), st.integers(min_value=0, max_value=10_000))
def test_rate_share_never_exceeds_the_amount(amount: int, rate_bp: int) -> None:
    share = apply_rate_bp(amount, rate_bp)
    assert 0 <= share <= amount
    assert abs(share * 10_000 - amount * rate_bp) <= 5_000  # rounded to the nearest fen


def test_format_fen() -> None:
    assert format_fen(128000) == "¥1,280.00"
    assert format_fen(-5) == "-¥0.05"
