"""The ranking core at known values: the metrics (Gini, Lorenz, bottom-half share, NDCG, recall,
coverage), each re-ranking mechanism moving what it should and nothing when its weight is 0,
deterministic ties, the configuration's validation, and the item-item relevance against a brute
force computation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from trustlive.feed import ranking, relevance
from trustlive.feed.ranking import Candidates, ConfigError, CreatorState

OFF = {
    "trust_weight": 0,
    "protect_top": 0,
    "diminishing": {"weight": 0},
    "head_cap": {"weight": 0},
    "floor": {"weight": 0},
    "new_creator": {"weight": 0},
    "grant": {"weight": 0},
    "per_creator": 0,
}


def only(**rerank: object) -> ranking.Config:
    """Every mechanism off but those given."""
    merged: dict[str, object] = dict(OFF)
    merged.update(rerank)
    return ranking.load({"rerank": merged})


def page_items(c: Candidates, state: CreatorState, k: int, cfg: ranking.Config) -> list[int]:
    return ranking.rerank(c, state, k, cfg).item_ids.tolist()


NOBODY = CreatorState.of({}, active_creators=10)


# ---- metrics -------------------------------------------------------------------------------------


def test_gini_known_values() -> None:
    assert ranking.gini([5, 5, 5, 5]) == pytest.approx(0.0)
    assert ranking.gini([0, 0, 0, 7]) == pytest.approx(3 / 4)  # all to one of n: (n - 1) / n
    assert ranking.gini([0] * 99 + [1]) == pytest.approx(99 / 100)
    assert ranking.gini([0, 0, 1, 1]) == pytest.approx(0.5)
    assert ranking.gini([1, 2, 3, 4]) == pytest.approx(0.25)
    assert ranking.gini([3, 1, 4, 2]) == ranking.gini([1, 2, 3, 4])  # order does not matter
    assert ranking.gini([0, 0, 0]) == 0.0
    assert ranking.gini([]) == 0.0


def test_lorenz_bottom_half_zero_share_coverage() -> None:
    pop, share = ranking.lorenz([1, 1, 0, 0])
    assert pop.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert share.tolist() == [0.0, 0.0, 0.0, 0.5, 1.0]
    at, sampled = ranking.lorenz([1, 1, 0, 0], points=3)
    assert at.tolist() == [0.0, 0.5, 1.0] and sampled.tolist() == [0.0, 0.0, 1.0]
    pop, share = ranking.lorenz([0, 0])
    assert share.tolist() == pop.tolist()  # nobody exposed: the diagonal, not a division by zero
    assert ranking.bottom_half_share([4, 3, 2, 1]) == pytest.approx(0.3)
    assert ranking.bottom_half_share([1, 1, 1, 1, 6]) == pytest.approx(0.2)  # n // 2 = 2 providers
    assert ranking.bottom_half_share([0, 0, 0, 5]) == 0.0
    assert ranking.zero_share([0, 0, 1, 3]) == 0.5
    assert ranking.coverage([[1, 2, -1], [2, 3, 3]], 10) == pytest.approx(0.3)


def test_ndcg_and_recall_known_values() -> None:
    hit = np.array([[1, 0, 0], [0, 1, 0], [0, 1, 1], [0, 0, 0]], dtype=bool)
    n_rel = np.array([1, 1, 2, 0])  # the last user has nothing to find: left out
    expected = [1.0, 1 / math.log2(3), (1 / math.log2(3) + 1 / 2) / (1 + 1 / math.log2(3))]
    assert ranking.ndcg_at_k(hit, n_rel, 3) == pytest.approx(np.mean(expected))
    assert ranking.ndcg_at_k(hit, n_rel, 1) == pytest.approx(1 / 3)
    assert ranking.recall_at_k(hit, n_rel, 3) == pytest.approx((1 + 1 + 1) / 3)
    assert ranking.recall_at_k(hit, n_rel, 2) == pytest.approx((1 + 1 + 0.5) / 3)
    ranked = np.array([[5, 7, -1], [1, 2, 3]])
    assert ranking.hits(ranked, [np.array([7, -1]), np.array([9])]).tolist() == [
        [False, True, False],
        [False, False, False],
    ]


# ---- re-ranking ----------------------------------------------------------------------------------


def test_plain_ranks_by_relevance_ties_by_lower_item_id() -> None:
    c = Candidates.of([30, 10, 20, 40], [0.5, 0.9, 0.5, 0.1], [1, 2, 3, 4])
    assert ranking.plain(c, 3).item_ids.tolist() == [10, 20, 30]
    cfg = only()
    assert page_items(c, NOBODY, 4, cfg) == [10, 20, 30, 40]


def test_same_page_whatever_the_candidates_order() -> None:
    rng = np.random.default_rng(7)
    n = 200
    items = rng.permutation(10_000)[:n]
    rel = rng.integers(0, 5, n).astype(float)  # many ties
    creators = rng.integers(1, 30, n)
    new = rng.random(n) < 0.1
    exposure = {int(c): int(rng.integers(0, 500)) for c in np.unique(creators)}
    state = CreatorState.of(exposure, {3: 5}, active_creators=40)
    first = ranking.rerank(Candidates.of(items, rel, creators, new), state, 20)
    perm = rng.permutation(n)
    again = ranking.rerank(Candidates.of(items[perm], rel[perm], creators[perm], new[perm]), state, 20)
    assert first.item_ids.tolist() == again.item_ids.tolist()
    assert np.array_equal(first.scores, again.scores)


def test_trust_tilt() -> None:
    c = Candidates.of([1, 2], [0.9, 0.8], [10, 20], trust=[0.5, 1.0])
    assert page_items(c, NOBODY, 2, only()) == [1, 2]
    assert page_items(c, NOBODY, 2, only(trust_weight=1.0)) == [2, 1]
    # Unknown trust is neutral.
    c = Candidates.of([1, 2], [0.9, 0.8], [10, 20])
    assert page_items(c, NOBODY, 2, only(trust_weight=1.0)) == [1, 2]


def test_diminishing_returns_push_a_much_exposed_creator_down() -> None:
    # 10 creators, 1000 impressions: the average is 100; creator 10 had 900 (x = 9).
    state = CreatorState.of({10: 900, 20: 100}, window_total=1000, active_creators=10)
    c = Candidates.of([1, 2], [1.0, 0.5], [10, 20])
    assert page_items(c, state, 2, only()) == [1, 2]
    cfg = only(diminishing={"weight": 1.0, "knee": 1.0})
    assert page_items(c, state, 2, cfg) == [2, 1]
    s = ranking.scores(c, state, cfg)
    assert s[0] == pytest.approx(1.0 / (1.0 + math.log(1 + 8)))
    assert s[1] == pytest.approx(0.5)  # at the average: below the knee, untouched
    # Concave: each further impression costs less than the one before.
    xs = np.array([2.0, 3.0, 5.0, 9.0, 17.0])
    penalty = 1.0 / (1.0 + np.log1p(xs - 1.0))
    assert np.all(np.diff(penalty) < 0) and np.all(np.diff(np.diff(penalty)) > 0)


def test_head_cap() -> None:
    state = CreatorState.of({10: 300, 20: 10}, window_total=1000, active_creators=10)
    c = Candidates.of([1, 2], [1.0, 0.6], [10, 20])
    cap = {"weight": 0.5, "share": 0.2, "min_window": 1000}
    assert page_items(c, state, 2, only(head_cap=cap)) == [2, 1]  # 30% > 20%: score halved
    assert ranking.scores(c, state, only(head_cap=cap))[0] == pytest.approx(0.5)
    # Below the share, or while the window is too small to say who is a head: untouched.
    assert page_items(c, state, 2, only(head_cap={**cap, "share": 0.4})) == [1, 2]
    assert page_items(c, state, 2, only(head_cap={**cap, "min_window": 1001})) == [1, 2]
    # Weight 1: to the bottom, but still served when nothing else is left.
    full = only(head_cap={**cap, "weight": 1.0})
    assert page_items(c, state, 2, full) == [2, 1]
    assert page_items(Candidates.of([1], [1.0], [10]), state, 2, full) == [1]


def test_exposure_floor_boosts_until_reached() -> None:
    # Average 100 impressions; floor at half of it: 50.
    state = CreatorState.of({10: 0, 20: 25, 30: 50, 40: 500}, window_total=1000, active_creators=10)
    c = Candidates.of([1, 2, 3, 4], [0.1, 0.1, 0.1, 1.0], [10, 20, 30, 40])
    cfg = only(floor={"weight": 0.4, "level": 0.5})
    s = ranking.scores(c, state, cfg)
    assert s.tolist() == pytest.approx([0.1 + 0.4, 0.1 + 0.2, 0.1, 1.0])
    assert page_items(c, state, 2, only(floor={"weight": 1.0, "level": 0.5})) == [1, 4]


def test_min_average_smooths_an_empty_window() -> None:
    state = CreatorState.of({10: 3}, window_total=3, active_creators=10)
    c = Candidates.of([1, 2], [1.0, 0.9], [10, 20])
    # An average of 0.3 impressions would make creator 10 ten times the average after 3.
    steep = only(diminishing={"weight": 1.0, "knee": 1.0}, min_average=0.1)
    assert page_items(c, state, 2, steep) == [2, 1]
    calm = only(diminishing={"weight": 1.0, "knee": 1.0}, min_average=8)
    assert page_items(c, state, 2, calm) == [1, 2]


def test_new_creator_boost_lifts_an_item_nobody_interacted_with_and_fades() -> None:
    c = Candidates.of([1, 2, 3], [1.0, 0.5, 0.0], [10, 20, 30], is_new=[False, False, True])
    assert page_items(c, NOBODY, 2, only()) == [1, 2]
    cfg = only(new_creator={"weight": 0.6, "level": 1.0})
    assert page_items(c, NOBODY, 2, cfg) == [1, 3]
    # At the average exposure the boost is gone.
    at_avg = CreatorState.of({30: 100}, window_total=1000, active_creators=10)
    assert page_items(c, at_avg, 2, cfg) == [1, 2]
    half = CreatorState.of({30: 50}, window_total=1000, active_creators=10)
    assert ranking.scores(c, half, cfg)[2] == pytest.approx(0.3)


def test_grant_boosts_while_budget_remains_and_reports_what_it_consumes() -> None:
    c = Candidates.of([1, 2, 3, 4], [1.0, 0.9, 0.2, 0.1], [10, 11, 20, 20])
    state = CreatorState.of({}, {20: 1, 11: 5}, active_creators=10)
    cfg = only(grant={"weight": 1.0})
    page = ranking.rerank(c, state, 3, cfg)
    assert page.item_ids.tolist() == [2, 3, 4]  # 0.9 + 1, then creator 20's two items
    # Creator 20 had 1 impression left of its grant: two served, one consumed; creator 11: one.
    assert dict(zip(page.grant_creators.tolist(), page.grant_used.tolist(), strict=True)) == {11: 1, 20: 1}
    assert dict(zip(page.exposure_creators.tolist(), page.exposure_counts.tolist(), strict=True)) == {
        11: 1,
        20: 2,
    }
    spent = CreatorState.of({}, {20: 0}, active_creators=10)
    page = ranking.rerank(c, spent, 3, cfg)
    assert page.item_ids.tolist() == [1, 2, 3] and len(page.grant_creators) == 0
    # Off: the grant changes nothing, and nothing is consumed by the plain ranker either.
    assert page_items(c, state, 3, only()) == [1, 2, 3]
    assert len(ranking.plain(c, 3).grant_creators) == 0


def test_per_creator_limit_in_a_page() -> None:
    c = Candidates.of([1, 2, 3, 4, 5], [1.0, 0.9, 0.8, 0.7, 0.1], [10, 10, 10, 10, 20])
    assert page_items(c, NOBODY, 3, only()) == [1, 2, 3]
    assert page_items(c, NOBODY, 3, only(per_creator=2)) == [1, 2, 5]
    assert page_items(c, NOBODY, 5, only(per_creator=1)) == [1, 5]  # fewer than k: ran out
    # The protected top counts toward the limit.
    assert page_items(c, NOBODY, 3, only(per_creator=2, protect_top=1)) == [1, 2, 5]


def test_protected_top_goes_by_relevance_alone() -> None:
    state = CreatorState.of({10: 900}, window_total=1000, active_creators=10)
    c = Candidates.of([1, 2, 3, 4], [1.0, 0.95, 0.5, 0.4], [10, 10, 20, 30])
    cfg = only(diminishing={"weight": 2.0, "knee": 0.0})
    assert page_items(c, state, 4, cfg) == [3, 4, 1, 2]
    protected = only(diminishing={"weight": 2.0, "knee": 0.0}, protect_top=1)
    assert page_items(c, state, 4, protected) == [1, 3, 4, 2]
    # A user the filter knows nothing about: nothing to protect, the boosts place the page.
    cold = Candidates.of([1, 2], [0.0, 0.0], [10, 20], is_new=[False, True])
    assert page_items(cold, NOBODY, 2, only(protect_top=5, new_creator={"weight": 0.2})) == [2, 1]


def test_defaults_spread_a_head_creator_over_many_requests() -> None:
    """Online: the same head creator tops every user's relevance; as its window exposure grows
    the defaults hand its slots below the protected top to others."""
    n_creators = 50
    exposure = np.zeros(n_creators, dtype=np.int64)
    rng = np.random.default_rng(1)
    head_items = []
    for _ in range(200):
        items = np.arange(100)
        rel = np.where(items < 20, 1.0 - items / 100, rng.random(100) * 0.5)  # creator 0 owns 0-19
        creators = np.where(items < 20, 0, 1 + items % (n_creators - 1))
        state = CreatorState.dense(exposure, active_creators=n_creators)
        page = ranking.rerank(Candidates.of(items, rel, creators), state, 10)
        np.add.at(exposure, page.creator_ids, 1)
        head_items.append(int((page.creator_ids == 0).sum()))
    assert head_items[0] == 2  # per_creator
    assert head_items[-1] == 2  # protected top: still its best two
    assert ranking.gini(exposure) < 0.5
    assert (exposure > 0).sum() == n_creators


def test_candidates_and_state_checks() -> None:
    with pytest.raises(ValueError, match="same length"):
        Candidates.of([1, 2], [0.1], [1, 2])
    with pytest.raises(ValueError, match="at most once"):
        Candidates.of([1, 1], [0.1, 0.2], [1, 2])
    with pytest.raises(ValueError, match="trust"):
        Candidates.of([1], [0.1], [1], trust=[-1.0])
    with pytest.raises(ValueError, match="finite"):
        Candidates.of([1], [float("nan")], [1])
    state = CreatorState.of({5: 7}, {9: 3})
    exposure, grants = state.lookup(np.array([5, 9, 1, 100]))
    assert exposure.tolist() == [7, 0, 0, 0] and grants.tolist() == [0, 3, 0, 0]
    assert state.window_total == 7
    empty = ranking.rerank(Candidates.of([], [], []), NOBODY, 10)
    assert len(empty.item_ids) == 0


def test_interaction_weights() -> None:
    assert ranking.kind_weights(["view", "purchase", "impression"]).tolist() == [1.0, 4.0, 0.05]
    with pytest.raises(ValueError, match="unknown interaction kind 'share'"):
        ranking.kind_weights(["share"])
    cfg = ranking.load({"relevance": {"half_life_items": 1.0, "history_items": 3}})
    assert ranking.history_weights([1, 1, 2, 1, 1], cfg).tolist() == [1.0, 0.5, 0.5]


# ---- configuration ---------------------------------------------------------------------------


def test_defaults_and_deep_merge() -> None:
    cfg = ranking.load({"rerank": {"floor": {"weight": 0.5}}})
    assert cfg.floor_weight == 0.5
    assert cfg.floor_level == ranking.DEFAULTS["rerank"]["floor"]["level"]
    assert cfg.per_creator == ranking.DEFAULTS["rerank"]["per_creator"]
    assert ranking.DEFAULTS["rerank"]["floor"]["weight"] == ranking.DEFAULT.floor_weight  # not mutated
    priors = ranking.load({"relevance": {"live": {"affinity": 1.0}, "seen_factor": 0}})
    assert (priors.live_affinity, priors.seen_factor) == (1.0, 0.0)
    assert (priors.live_weight, priors.fresh_weight, priors.fresh_half_life_hours) == (0.6, 0.3, 48.0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"rerank": {"flor": {"weight": 1}}}, "unknown key 'rerank.flor'"),
        ({"bogus": 1}, "unknown key 'bogus'"),
        ({"rerank": {"floor": 0.3}}, "rerank.floor: a mapping"),
        ({"rerank": {"floor": {"weight": -0.1}}}, "rerank.floor.weight: a number at least 0"),
        ({"rerank": {"floor": {"weight": "0.3"}}}, "rerank.floor.weight"),
        ({"rerank": {"floor": {"level": 0}}}, "rerank.floor.level: a number above 0"),
        (
            {"rerank": {"head_cap": {"weight": 1.5}}},
            "rerank.head_cap.weight: a number at least 0 and at most 1",
        ),
        ({"rerank": {"head_cap": {"share": 0}}}, "rerank.head_cap.share"),
        ({"rerank": {"per_creator": 1.5}}, "rerank.per_creator: a whole number"),
        ({"rerank": {"per_creator": True}}, "rerank.per_creator: a whole number"),
        ({"rerank": {"trust_weight": float("inf")}}, "rerank.trust_weight"),
        ({"relevance": {"weights": {"like": 0.5}}}, "must increase impression < view < like < purchase"),
        ({"relevance": {"neighbours": 0}}, "relevance.neighbours: a whole number from 1"),
        ({"window_hours": 0}, "window_hours"),
        (
            {"relevance": {"fresh": {"half_life_hours": 0}}},
            "relevance.fresh.half_life_hours: a number above 0",
        ),
        ({"relevance": {"live": {"weight": -1}}}, "relevance.live.weight: a number at least 0"),
        ({"relevance": {"seen_factor": 1.5}}, "relevance.seen_factor: a number at least 0 and at most 1"),
    ],
)
def test_bad_configuration_is_refused_with_its_path(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        ranking.load(overrides)


def test_load_file(tmp_path: object) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path))
    good = folder / "feed.json"
    good.write_text(json.dumps({"rerank": {"per_creator": 3}}), encoding="utf-8")
    assert ranking.load_file(str(good)).per_creator == 3
    assert ranking.load_file(None).per_creator == ranking.DEFAULT.per_creator
    bad = folder / "bad.json"
    bad.write_text('{"rerank": {"per_creator": -1}}', encoding="utf-8")
    with pytest.raises(SystemExit, match="TRUSTLIVE_FEED_CONFIG .*rerank.per_creator"):
        ranking.load_file(str(bad))
    broken = folder / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(SystemExit, match="TRUSTLIVE_FEED_CONFIG"):
        ranking.load_file(str(broken))
    with pytest.raises(SystemExit, match="TRUSTLIVE_FEED_CONFIG"):
        ranking.load_file(str(folder / "missing.json"))
    listing = folder / "list.json"
    listing.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(SystemExit, match="a JSON object"):
        ranking.load_file(str(listing))


# ---- relevance -------------------------------------------------------------------------------


def _random_interactions(seed: int = 3, n_users: int = 40, n_items: int = 30) -> relevance.Interactions:
    rng = np.random.default_rng(seed)
    n = 400
    users = rng.integers(0, n_users, n)
    items = np.minimum(rng.geometric(0.12, n) - 1, n_items - 1)  # long-tailed popularity
    weights = rng.choice([0.05, 1.0, 2.0, 4.0], n)
    return relevance.interactions(users, items, weights, n_users, n_items)


def test_interactions_keep_the_strongest_event() -> None:
    inter = relevance.interactions([0, 0, 0, 1, 1], [2, 2, 1, 2, 0], [1.0, 4.0, 0.05, 2.0, 0.0], 2, 3)
    assert inter.dense().tolist() == [[0.0, 0.05, 4.0], [0.0, 0.0, 2.0]]
    assert inter.item_users.tolist() == [0, 0, 1]
    with pytest.raises(ValueError, match="out of range"):
        relevance.interactions([0], [3], [1.0], 2, 3)


def test_item_knn_matches_brute_force_in_any_blocks() -> None:
    inter = _random_interactions()
    x = inter.dense()
    shrink, k = 2.0, 5
    gram = x.T @ x
    norms = np.sqrt(np.diag(gram))
    sim = gram / (np.outer(norms, norms) + shrink)
    np.fill_diagonal(sim, 0.0)
    nb = relevance.item_knn(inter, k, shrink)
    assert nb.index.shape == (x.shape[1], k)
    for method in ("dense", "sparse"):  # in many small blocks, and in one
        for cells, pairs in ((31, 50), (1 << 20, 1 << 20)):
            other = relevance.item_knn(inter, k, shrink, block_cells=cells, block_pairs=pairs, method=method)
            assert np.array_equal(nb.index, other.index) and np.allclose(nb.sim, other.sim)
    for i in range(x.shape[1]):
        row = sim[i]
        expected = [j for j in np.lexsort((np.arange(len(row)), -row)) if row[j] > 0][:k]
        assert nb.index[i][: len(expected)].tolist() == expected
        assert np.allclose(nb.sim[i][: len(expected)], row[expected], rtol=1e-6)
        assert (nb.index[i][len(expected) :] == -1).all()


def test_item_knn_ties_go_to_the_lower_id() -> None:
    # Items 1, 2 and 3 co-occur with item 0 equally: its 2 neighbours are 1 and 2.
    inter = relevance.interactions([0, 0, 0, 0], [0, 3, 2, 1], [1.0] * 4, 1, 4)
    for method in ("dense", "sparse"):
        assert relevance.item_knn(inter, 2, 0.0, method=method).index[0].tolist() == [1, 2]


def test_score_user_is_the_weighted_sum_of_neighbours() -> None:
    inter = _random_interactions(seed=5)
    x = inter.dense()
    nb = relevance.item_knn(inter, 8, 1.0)
    full = relevance.score_all(nb, x)
    for u in (0, 3, 11):
        items, w = inter.row(u)
        cand, s = relevance.score_user(nb, items, w)
        assert not np.isin(cand, items).any()
        assert np.allclose(s, full[u, cand])
        positive = np.setdiff1d(np.flatnonzero(full[u] > 0), items)
        assert sorted(cand.tolist()) == positive.tolist()
        assert list(s) == sorted(s, reverse=True)
    items, w = inter.row(0)
    cand, _ = relevance.score_user(nb, items, w, exclude=np.array([cand[0]]), limit=3)
    assert len(cand) <= 3 and cand[0] not in cand[1:]
    assert len(relevance.score_user(nb, np.array([], dtype=np.int64), np.array([]))[0]) == 0


def test_recent_keeps_each_users_latest_items() -> None:
    inter = relevance.interactions([0, 0, 0, 1], [0, 1, 2, 0], [1.0, 1.0, 1.0, 1.0], 2, 3)
    ts = np.array([30, 10, 20, 5])  # aligned with user_items: user 0's items 0, 1, 2; user 1's 0
    kept = relevance.recent(inter, ts, 2)
    assert kept.dense().tolist() == [[1.0, 0.0, 1.0], [1.0, 0.0, 0.0]]


def test_ease_is_the_zero_diagonal_ridge_regression() -> None:
    x = _random_interactions(seed=9, n_items=8).dense()
    lam = 3.0
    b = relevance.ease(x, lam)
    assert np.allclose(np.diag(b), 0.0)
    for j in range(x.shape[1]):
        others = [i for i in range(x.shape[1]) if i != j]
        xo = x[:, others]
        col = np.linalg.solve(xo.T @ xo + lam * np.eye(len(others)), xo.T @ x[:, j])
        # EASE's constraint is a Lagrange multiplier on the diagonal: same as dropping column j.
        assert np.allclose(b[others, j], col, atol=1e-8)
