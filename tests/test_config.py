"""Settings come from TRUSTLIVE_* variables with working defaults; a bad value stops the start-up
with a message naming the variable, never a half-configured app."""

from __future__ import annotations

from pathlib import Path

import pytest

from trustlive.config import load_settings


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    monkeypatch.setenv("TRUSTLIVE_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("TRUSTLIVE_SECRET_KEY", "k" * 48)
    for name in ("QC_FEE_PAYER", "QC_FEE_FEN", "QC_TURNAROUND_HOURS", "AFTERSALES_RESPONSE_HOURS",
                 "RETURN_SHIP_DAYS", "RETURN_REFUND_DAYS", "ESCALATION_DAYS", "REVIEW_EDIT_HOURS"):  # fmt: skip
        monkeypatch.delenv(f"TRUSTLIVE_{name}", raising=False)
    return monkeypatch


def test_after_sale_and_inspection_defaults(env: pytest.MonkeyPatch) -> None:
    s = load_settings()
    assert (s.qc_turnaround_hours, s.qc_fee_fen, s.qc_fee_payer) == (48, 2000, "shop")
    assert (s.aftersales_response_hours, s.return_ship_days, s.return_refund_days, s.escalation_days) == (
        48,
        7,
        7,
        7,
    )
    assert s.review_edit_hours == 24


def test_settings_are_read_from_the_environment(env: pytest.MonkeyPatch) -> None:
    env.setenv("TRUSTLIVE_QC_FEE_PAYER", "Platform")
    env.setenv("TRUSTLIVE_QC_FEE_FEN", "0")
    env.setenv("TRUSTLIVE_AFTERSALES_RESPONSE_HOURS", "24")
    s = load_settings()
    assert (s.qc_fee_payer, s.qc_fee_fen, s.aftersales_response_hours) == ("platform", 0, 24)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("QC_FEE_PAYER", "buyer"),
        ("RETURN_SHIP_DAYS", "seven"),
        ("QC_FEE_FEN", "-1"),
        ("QC_TURNAROUND_HOURS", "0"),
    ],
)
def test_a_bad_value_stops_with_the_variable_named(env: pytest.MonkeyPatch, name: str, value: str) -> None:
    env.setenv(f"TRUSTLIVE_{name}", value)
    with pytest.raises(SystemExit, match=f"TRUSTLIVE_{name}"):
        load_settings()
