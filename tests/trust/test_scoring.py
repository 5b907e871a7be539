"""The arithmetic of the scores at its boundaries: every indicator's value, every default curve at
its knots and between them, weights when an indicator has no data, the "new" threshold, rounding,
the flash-sale restriction's hysteresis, settlement tiers, the feed multiplier and bad
configuration."""

from __future__ import annotations

import numpy as np
import pytest

from trustlive.trust import scoring

CFG = scoring.load()
RULES = CFG.default


def counts(**values: int) -> dict[str, np.ndarray]:
    base = {name: 0 for name in scoring.COUNTS}
    base.update(values)
    return {k: np.array([v], dtype=np.int64) for k, v in base.items()}


def points(key: str, x: float) -> float:
    xs, ys = RULES.curves[key]
    return float(np.interp(x, xs, ys))


@pytest.mark.parametrize(
    ("key", "x", "expected"),
    [
        ("negative_review_rate", 0.0, 5.0), ("negative_review_rate", 0.012, 4.0),
        ("negative_review_rate", 0.006, 4.5), ("negative_review_rate", 0.2, 0.0), ("negative_review_rate", 0.9, 0.0),
        ("quality_refund_rate", 0.01, 4.0), ("quality_refund_rate", 0.05, 2.0),
        ("inspection_failure_rate", 0.05, 3.0), ("inspection_failure_rate", 0.3, 0.0),
        ("on_time_shipping_rate", 1.0, 5.0), ("on_time_shipping_rate", 0.98, 4.0),
        ("on_time_shipping_rate", 0.6, 0.0), ("on_time_shipping_rate", 0.1, 0.0),
        ("delivery_hours", 10, 5.0), ("delivery_hours", 48, 5.0), ("delivery_hours", 60, 4.5),
        ("delivery_hours", 240, 0.0), ("handling_hours", 24, 4.0), ("handling_hours", 168, 0.0),
        ("dispute_rate", 0.001, 4.0), ("dispute_rate", 0.02, 0.0),
        ("service_rating", 5, 5.0), ("service_rating", 4.5, 4.0), ("service_rating", 1, 0.0),
        ("false_claim_rate", 0.002, 4.0), ("false_claim_rate", 0.05, 0.0),
    ],
)  # fmt: skip
def test_default_curves_at_and_between_their_knots(key: str, x: float, expected: float) -> None:
    assert points(key, x) == pytest.approx(expected)


def test_a_negative_review_rate_of_at_most_1_2_percent_earns_at_least_4_points() -> None:
    for rate in (0, 0.001, 0.0119, 0.012):
        assert points("negative_review_rate", rate) >= 4
    assert points("negative_review_rate", 0.0121) < 4


def test_indicator_values_and_when_they_apply() -> None:
    v = scoring.indicator_values(counts(
        delivered_60=200, negative_60=3, quality_refunds_60=250, inspected_60=0, ship_due_30=40,
        shipped_on_time_30=39, delivered_30=100, delivery_s_30=100 * 50 * 3600, aftersales_30=2,
        aftersales_s_30=2 * 36 * 3600, disputes_lost_30=1, service_rated_30=4, service_sum_30=18, false_claims_60=1,
    ))  # fmt: skip
    got = {k: (round(float(val[0]), 6), bool(ok[0])) for k, (val, ok) in v.items()}
    assert got == {
        "negative_review_rate": (0.015, True), "quality_refund_rate": (1.0, True),  # capped at 100%
        "inspection_failure_rate": (0.0, False), "on_time_shipping_rate": (0.975, True),
        "delivery_hours": (50.0, True), "handling_hours": (36.0, True), "dispute_rate": (0.01, True),
        "service_rating": (4.5, True), "false_claim_rate": (0.005, True),
    }  # fmt: skip


def test_weights_are_shared_by_the_indicators_with_data_and_small_shops_are_new() -> None:
    # Only the negative-review rate has data in the product dimension: it carries it alone.
    c = counts(delivered_90=30, delivered_60=100, negative_60=0)
    r = scoring.score("product", c, RULES)
    assert int(r.score_c[0]) == 500 and int(r.dims_c["product"][0]) == 500
    assert int(scoring.score("product", counts(delivered_90=9, delivered_60=9), RULES).score_c[0]) == -1
    assert int(scoring.score("product", counts(delivered_90=10, delivered_60=10), RULES).score_c[0]) == 500
    # A shop with enough lines but no data in any dimension of the window is still new.
    assert int(scoring.score("shop", counts(delivered_90=40), RULES).score_c[0]) == -1
    shop = scoring.score("shop", counts(delivered_90=29, delivered_60=29), RULES)
    assert int(shop.score_c[0]) == -1 and int(shop.dims_c["product"][0]) == -1


def test_rounding_is_half_up_to_hundredths() -> None:
    assert scoring.hundredths(np.array([4.625, 4.624999, 0.005, 5.0, 0.0])).tolist() == [463, 462, 1, 500, 0]


def test_the_flash_sale_restriction_has_hysteresis() -> None:
    e = CFG.effects
    was = np.array([False, False, True, True, True, False, True])
    due = np.array([10, 10, 100, 100, 100, 4, 0])
    late = np.array([1, 0, 5, 4, 3, 4, 0])
    got = scoring.restriction({"ship_due_7": due, "shipped_late_7": late}, was, e).tolist()
    # 10% enters; 5% keeps it (between the lines); 4% keeps it; 3% lifts; 4 of 4 due is too few
    # to enter; nothing due lifts it.
    assert got == [True, False, True, True, False, False, False]


def test_settlement_tiers_and_the_feed_multiplier() -> None:
    e = CFG.effects
    assert [scoring.settlement_days(s, e) for s in (500, 450, 449, 400, 399, 0, None)] == [
        7,
        7,
        15,
        15,
        20,
        20,
        15,
    ]
    assert [scoring.quality_multiplier(s, e) for s in (500, 450, 400, 300, 0, None)] == pytest.approx(
        [1.2, 1.1, 1.0, 0.8, 0.5, 1.0]
    )


def test_category_overrides_and_bad_configuration() -> None:
    cfg = scoring.load({"categories": {"jade": {"curves": {"negative_review_rate": [[0, 5], [0.05, 4], [0.2, 0]]},
                                                  "min_orders": {"product": 5}}}})  # fmt: skip
    assert cfg.categories["jade"].min_orders["product"] == 5 and cfg.default.min_orders["product"] == 10
    assert cfg.categories["jade"].curves["negative_review_rate"][0] == (0.0, 0.05, 0.2)
    bad = [
        {"curves": {"dispute_rate": [[0.1, 5], [0.05, 0]]}},  # x must increase
        {"curves": {"dispute_rate": [[0, 6], [1, 0]]}},  # points 0-5
        {"dimensions": {"logistics": {"on_time_shipping_rate": 5000, "delivery_hours": 4000}}},  # sum
        {"dimensions": {"logistics": {"made_up": 10000}}},
        {"totals": {"shop": {"product": 10000.5}}},
        {"min_orders": {"shop": 0}},
        {"nonsense": 1},
        {"categories": {"jade": {"effects": {}}}},
        {"effects": {"flash_sale_lift_bp": 2000}},
        {"effects": {"settlement_default_days": 200}},
    ]
    for over in bad:
        with pytest.raises(scoring.ConfigError):
            scoring.load(over)


def test_a_config_file_that_cannot_be_read_stops_start_up(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "scores.json"
    path.write_text('{"min_orders": {"shop": 50}}')
    assert scoring.load_file(str(path)).default.min_orders["shop"] == 50
    path.write_text("{not json")
    with pytest.raises(SystemExit, match="TRUSTLIVE_SCORES_CONFIG"):
        scoring.load_file(str(path))
    with pytest.raises(SystemExit):
        scoring.load_file(str(tmp_path / "missing.json"))


@pytest.mark.parametrize(
    ("resolution", "answered_h", "arbitrated_h", "arrived_h", "ended_h", "expected_h"),
    [
        ("approved", 5, None, None, 5, 5),  # a refund the shop approved: its answer ends it
        ("approved", 5, None, 50, 60, 15),  # a return: the parcel's 45 h with buyer and carrier left out
        ("auto_approved", None, None, None, 48, 48),  # the shop let the deadline pass: in full
        ("rejected", 8, None, None, 80, 8),  # the shop's answer, not the request's closing
        ("return_not_sent", 6, None, None, 174, 6),  # approved; the wait for the buyer is not the shop's
        ("arbitrated_buyer", 8, 40, None, 41, 40),  # ops' decision
        ("arbitrated_seller", 8, 30, None, 31, 30),
        ("already_refunded", 3, None, None, 3, 3),
        ("withdrawn", None, None, None, 2, None),  # not handled by the shop: does not count
        ("outdated", None, None, None, 72, None),
    ],
)
def test_handling_time_per_resolution(
    resolution: str, answered_h: float | None, arbitrated_h: float | None, arrived_h: float | None,
    ended_h: float, expected_h: float | None,
) -> None:  # fmt: skip
    import datetime as dt
    from types import SimpleNamespace

    from trustlive.aftersales.service import _handled_seconds

    t0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)

    def at(hours: float | None) -> dt.datetime | None:
        return None if hours is None else t0 + dt.timedelta(hours=hours)

    request = SimpleNamespace(resolution=resolution, created_at=t0, responded_at=at(answered_h),
                              arbitrated_at=at(arbitrated_h), return_arrived_at=at(arrived_h), resolved_at=at(ended_h))  # fmt: skip
    expected = None if expected_h is None else expected_h * 3600
    assert _handled_seconds(request) == expected
