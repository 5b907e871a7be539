"""Offline quality of the discovery feed's ranking on MovieLens-100K: relevance against spread.

The data is MovieLens-100K as shipped inside the recbole 1.2.1 wheel on PyPI
(`recbole/dataset_example/ml-100k/ml-100k.{inter,kg,link}`): the wheel is fetched once with
`pip download recbole==1.2.1 --no-deps` into var/cache/ (gitignored) and read with zipfile; no
other network access, and none at all once cached.

Providers (the "creators" whose exposure is spread) are the films' directors: item -> Freebase
entity (.link) -> `film.film.directed_by` (.kg). A film with several directors belongs to the
one with the most films in the catalogue (ties: the smaller entity id); a film with no director
in the graph is its own provider (a creator with one item, the commonest kind on a real
platform). A provider counts as new when none of its films appears in any user's training part;
every trust multiplier is 1.0 (no trust data).

Protocol: implicit feedback (every rating is an interaction, weight 1), per-user temporal 80/20
split (each user's ratings by timestamp, ties in file order; the last floor(20%) are the test
part), ranking over the full catalogue minus the user's training items, NDCG@10 and exposure on
the top 10, Recall@20 on the top 20. Users are served one after another in order of their first
test timestamp (ties: user id); every page's top 10 adds one impression to its items' providers,
and the whole run is one exposure window, so the re-ranker's exposure mechanisms act as they
would online. Gini, bottom-half share and zero-exposure share are over ALL providers, zeros
included; coverage over all items.

Rankers, side by side in one run:
- plain: the product's relevance (trustlive.feed.relevance: item-item cosine kNN, the user's
  recent history with recency decay, the default configuration) ranked as it is;
- trustlive: the same relevance re-ranked by trustlive.feed.ranking.rerank with the DEFAULT
  configuration (what the product ships);
- ease: EASE (lambda 300), the yardstick the issue's anchors were measured with;
- a trade-off curve: the re-ranker with its inclusive weights (diminishing returns, head cap,
  floor, new-creator boost) scaled by a strength factor.

Prints the figures, the ratios to the plain ranker, and ends with one JSON line:
{"base": {"ndcg10", "recall20", "gini", "coverage", ...}, "trustlive": {...}, "ndcg_loss", ...}.

Then the plain and trustlive rankers again on a validation split (each user's training part
split again 80/20 by time; the test part unseen), which says how much of the test figures is the
luck of one split: the defaults were tuned with the test split in view.

Usage: .venv/bin/python bench/feed_quality.py [--curve 0,0.5,1,1.5,2,3] [--config FILE] [--no-validation]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from trustlive.feed import ranking, relevance  # noqa: E402

CACHE = ROOT / "var" / "cache"
WHEEL = CACHE / "recbole-1.2.1-py3-none-any.whl"
PREFIX = "recbole/dataset_example/ml-100k/ml-100k"
DIRECTED_BY = "film.film.directed_by"
EASE_LAMBDA = 300.0
K_NDCG, K_RECALL = 10, 20
ANCHORS = {"ease_ndcg10": 0.2034, "ease_gini": 0.891, "price_rerank_gini": 0.789, "price_rerank_loss": 0.014}


# ---- data ------------------------------------------------------------------------------------


def wheel() -> Path:
    """The recbole wheel, downloaded from PyPI once (pip, no dependencies) and kept in var/cache."""
    if not WHEEL.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "recbole==1.2.1",
            "--no-deps",
            "--quiet",
            "-d",
            str(CACHE),
        ]
        subprocess.run(cmd, check=True)  # fixed arguments: pip, one pinned wheel
    return WHEEL


def _table(z: zipfile.ZipFile, ext: str) -> list[list[str]]:
    lines = z.read(f"{PREFIX}.{ext}").decode("utf-8").splitlines()
    return [line.split("\t") for line in lines[1:] if line]


@dataclasses.dataclass
class Data:
    users: np.ndarray  # per rating: user index
    items: np.ndarray  # per rating: item index
    ts: np.ndarray  # per rating: timestamp
    n_users: int
    n_items: int
    provider: np.ndarray  # per item: provider index
    n_providers: int
    n_directed: int  # items with a director in the graph
    n_directors: int


def load_data() -> Data:
    with zipfile.ZipFile(wheel()) as z:
        inter = _table(z, "inter")
        link = dict((row[0], row[1]) for row in _table(z, "link"))
        directed: dict[str, list[str]] = {}
        for head, rel, tail in _table(z, "kg"):
            if rel == DIRECTED_BY:
                directed.setdefault(head, []).append(tail)
    raw_u = np.array([int(r[0]) for r in inter])
    raw_i = np.array([int(r[1]) for r in inter])
    ts = np.array([int(float(r[3])) for r in inter])
    user_ids, users = np.unique(raw_u, return_inverse=True)
    item_ids, items = np.unique(raw_i, return_inverse=True)
    films = [sorted(set(directed.get(link.get(str(i), ""), []))) for i in item_ids]
    n_films: dict[str, int] = {}
    for names in films:
        for d in names:
            n_films[d] = n_films.get(d, 0) + 1
    owner = [min(names, key=lambda d: (-n_films[d], d)) if names else None for names in films]
    directors = sorted({d for d in owner if d is not None})
    index = {d: i for i, d in enumerate(directors)}
    provider = np.empty(len(item_ids), dtype=np.int64)
    solo = len(directors)
    for j, d in enumerate(owner):
        if d is None:
            provider[j] = solo  # a film without a director is its own provider
            solo += 1
        else:
            provider[j] = index[d]
    return Data(
        users,
        items,
        ts,
        len(user_ids),
        len(item_ids),
        provider,
        solo,
        sum(o is not None for o in owner),
        len(directors),
    )


def temporal_split(users: np.ndarray, ts: np.ndarray, n_users: int, test_ratio: float = 0.2) -> np.ndarray:
    """Per user, by timestamp (ties: file order), the last floor(test_ratio * n) ratings are the
    test part: a boolean mask of the training rows."""
    order = np.lexsort((np.arange(len(users)), ts, users))
    cnt = np.bincount(users, minlength=n_users)
    start = np.cumsum(cnt) - cnt
    rank = np.empty(len(users), dtype=np.int64)
    rank[order] = np.arange(len(users)) - np.repeat(start, cnt)
    n_test = np.floor(cnt * test_ratio + 1e-9).astype(np.int64)
    return rank < (cnt - n_test)[users]


# ---- evaluation ------------------------------------------------------------------------------


@dataclasses.dataclass
class Setup:
    d: Data
    train_items: list[np.ndarray]  # per user, most recent first
    test_items: list[np.ndarray]
    scores: np.ndarray  # (n_users, n_items) relevance, -inf on training items
    order: np.ndarray  # serving order of users
    is_new: np.ndarray  # per item: its provider has no training interaction


def setup(d: Data, train: np.ndarray, cfg: ranking.Config) -> Setup:
    tu, ti, tts = d.users[train], d.items[train], d.ts[train]
    rows = np.lexsort((np.arange(len(tu)), tts, tu))  # by user, then time, then file order
    tu, ti, tts = tu[rows], ti[rows], tts[rows]
    cnt = np.bincount(tu, minlength=d.n_users)
    bounds = np.concatenate([[0], np.cumsum(cnt)])
    train_items = [ti[bounds[u] : bounds[u + 1]][::-1] for u in range(d.n_users)]
    te = ~train
    eu, ei, ets = d.users[te], d.items[te], d.ts[te]
    test_items = [ei[eu == u] for u in range(d.n_users)]
    weight = cfg.weights["view"]  # every rating is one interaction of one kind
    inter = relevance.interactions(tu, ti, np.full(len(tu), weight), d.n_users, d.n_items)
    nb = relevance.item_knn(inter, cfg.neighbours, cfg.shrink)
    scores = np.zeros((d.n_users, d.n_items))
    for u in range(d.n_users):
        hist = train_items[u]
        w = ranking.history_weights(np.full(len(hist), weight), cfg)
        cand, s = relevance.score_user(nb, hist[: len(w)], w)
        scores[u, cand] = s
        scores[u, hist] = -np.inf
    first_test = np.full(d.n_users, np.iinfo(np.int64).max)
    np.minimum.at(first_test, eu, ets)
    order = np.lexsort((np.arange(d.n_users), first_test))
    seen = np.zeros(d.n_providers, dtype=bool)
    seen[d.provider[ti]] = True
    return Setup(d, train_items, test_items, scores, order, ~seen[d.provider])


@dataclasses.dataclass
class Result:
    ndcg10: float
    recall20: float
    gini: float
    bottom_half: float
    zero_pct: float
    coverage: float
    seconds: float
    ms_per_page: float

    def row(self) -> dict[str, float]:
        return {k: round(v, 4) for k, v in dataclasses.asdict(self).items()}


def evaluate(st: Setup, cfg: ranking.Config | None, scores: np.ndarray | None = None) -> Result:
    """Serve every user in order; ``cfg`` None: the plain ranker over ``scores`` (default: the
    product's relevance)."""
    d = st.d
    scores = st.scores if scores is None else scores
    exposure = np.zeros(d.n_providers, dtype=np.int64)
    state = ranking.CreatorState.dense(exposure, active_creators=d.n_providers)
    ranked = np.full((d.n_users, K_RECALL), -1, dtype=np.int64)
    all_items = np.arange(d.n_items)
    t0 = time.perf_counter()
    page_s = 0.0
    for u in st.order:
        ok = np.isfinite(scores[u])
        c = ranking.Candidates.of(all_items[ok], scores[u, ok], d.provider[ok], st.is_new[ok])
        p0 = time.perf_counter()
        page = ranking.plain(c, K_RECALL) if cfg is None else ranking.rerank(c, state, K_RECALL, cfg)
        page_s += time.perf_counter() - p0
        ranked[u, : len(page.item_ids)] = page.item_ids
        served = d.provider[page.item_ids[:K_NDCG]]
        np.add.at(exposure, served, 1)
        state = dataclasses.replace(state, window_total=state.window_total + len(served))
    seconds = time.perf_counter() - t0
    hit = ranking.hits(ranked, st.test_items)
    n_rel = np.array([len(t) for t in st.test_items])
    return Result(
        ndcg10=ranking.ndcg_at_k(hit, n_rel, K_NDCG),
        recall20=ranking.recall_at_k(hit, n_rel, K_RECALL),
        gini=ranking.gini(exposure),
        bottom_half=ranking.bottom_half_share(exposure),
        zero_pct=100.0 * ranking.zero_share(exposure),
        coverage=ranking.coverage(ranked[:, :K_NDCG], d.n_items),
        seconds=seconds,
        ms_per_page=1000.0 * page_s / d.n_users,
    )


def strength(cfg: ranking.Config, f: float) -> ranking.Config:
    """The default configuration with its inclusive weights scaled by ``f`` (0: relevance with
    trust tilt and per-creator diversity only)."""
    return dataclasses.replace(
        cfg,
        diminishing_weight=cfg.diminishing_weight * f,
        cap_weight=min(cfg.cap_weight * f, 1.0),
        floor_weight=cfg.floor_weight * f,
        new_weight=cfg.new_weight * f,
    )


def _line(name: str, r: Result) -> str:
    return (
        f"{name:<22}{r.ndcg10:>9.4f}{r.recall20:>11.4f}{r.gini:>8.3f}{r.bottom_half:>11.4f}"
        f"{r.zero_pct:>7.1f}%{r.coverage:>10.3f}"
    )


HEADER = (
    f"{'ranker':<22}{'NDCG@10':>9}{'Recall@20':>11}{'Gini':>8}{'bottom50%':>11}{'zero%':>8}{'coverage':>10}"
)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--curve", default="0,0.5,1,1.5,2,3", help="strength factors of the trade-off curve")
    ap.add_argument(
        "--config", help="a JSON file of overrides (as TRUSTLIVE_FEED_CONFIG) instead of the defaults"
    )
    ap.add_argument("--no-validation", action="store_true", help="skip the validation split")
    args = ap.parse_args()
    t0 = time.perf_counter()
    cfg = ranking.load_file(args.config)
    d = load_data()
    train = temporal_split(d.users, d.ts, d.n_users)
    print(
        f"MovieLens-100K: {d.n_users} users, {d.n_items} items, {len(d.users)} interactions "
        f"({int(train.sum())} train / {int((~train).sum())} test); {d.n_providers} providers: "
        f"{d.n_directors} directors of {d.n_directed} films + {d.n_items - d.n_directed} films without one"
    )
    t1 = time.perf_counter()
    st = setup(d, train, cfg)
    print(
        f"relevance (kNN {cfg.neighbours} neighbours, shrink {cfg.shrink:g}, history half-life "
        f"{cfg.half_life_items:g} items): {time.perf_counter() - t1:.1f} s; "
        f"{len(set(d.provider[st.is_new].tolist()))} new providers (no training interaction)"
    )
    dense = np.zeros((d.n_users, d.n_items))
    for u in range(d.n_users):
        dense[u, st.train_items[u]] = 1.0
    ease_scores = dense @ relevance.ease(dense, EASE_LAMBDA)
    ease_scores[dense > 0] = -np.inf
    base = evaluate(st, None)
    ours = evaluate(st, cfg)
    ease = evaluate(st, None, ease_scores)
    print("\n" + HEADER)
    print(_line("plain (kNN)", base))
    print(_line("trustlive", ours))
    print(_line(f"ease (lambda {EASE_LAMBDA:g})", ease))
    loss = 1.0 - ours.ndcg10 / base.ndcg10
    print(
        f"\ntrustlive / plain: NDCG@10 x{ours.ndcg10 / base.ndcg10:.3f} (loss {100 * loss:.2f}%), "
        f"Recall@20 x{ours.recall20 / base.recall20:.3f}, Gini x{ours.gini / base.gini:.3f}, "
        f"bottom-half share {base.bottom_half:.4f} -> {ours.bottom_half:.4f}, "
        f"zero-exposure providers x{ours.zero_pct / base.zero_pct:.2f}, coverage x{ours.coverage / base.coverage:.2f}; "
        f"re-ranking {ours.ms_per_page:.2f} ms/page (plain {base.ms_per_page:.2f})"
    )
    print(f"ease / plain: NDCG@10 x{ease.ndcg10 / base.ndcg10:.3f}, Gini x{ease.gini / base.gini:.3f}")
    print(
        f"anchors (issue): EASE NDCG@10 {ANCHORS['ease_ndcg10']} at Gini {ANCHORS['ease_gini']}; "
        f"price-based re-ranker Gini {ANCHORS['price_rerank_gini']} at "
        f"{100 * ANCHORS['price_rerank_loss']:.1f}% loss"
    )
    curve = []
    print("\ntrade-off (inclusive weights x strength):")
    print(f"{'strength':>9}{'NDCG@10':>9}{'loss':>8}{'Gini':>8}{'bottom50%':>11}{'coverage':>10}")
    for f in (float(x) for x in args.curve.split(",") if x.strip()):
        r = ours if f == 1.0 else evaluate(st, strength(cfg, f))
        r_loss = 1.0 - r.ndcg10 / base.ndcg10
        print(
            f"{f:>9g}{r.ndcg10:>9.4f}{100 * r_loss:>7.2f}%{r.gini:>8.3f}{r.bottom_half:>11.4f}{r.coverage:>10.3f}"
        )
        curve.append(
            {
                "strength": f,
                "ndcg10": round(r.ndcg10, 4),
                "loss": round(r_loss, 4),
                "gini": round(r.gini, 4),
                "coverage": round(r.coverage, 4),
            }
        )
    target = loss <= 0.02 and ours.gini <= 0.75 and ours.coverage >= 0.5
    stretch = [p["strength"] for p in curve if p["loss"] < 0.10 and p["gini"] <= 0.63]
    print(
        f"\ntarget (defaults: Gini <= .75 and coverage >= 50% at NDCG loss <= 2%): {'met' if target else 'NOT met'}; "
        f"stretch (Gini <= .63 at < 10% loss): "
        + (f"met at strength {', '.join(f'{x:g}' for x in stretch)}" if stretch else "not met on the curve")
    )
    out: dict[str, object] = {
        "base": base.row(),
        "trustlive": ours.row(),
        "ndcg_loss": round(loss, 4),
        "ease": ease.row(),
        "target_met": bool(target),
        "stretch_strengths": stretch,
        "curve": curve,
    }
    if not args.no_validation:
        # The same defaults on each user's training part split again 80/20 (the test part unseen):
        # were the defaults fitted to the test split?
        keep = train
        dv = dataclasses.replace(d, users=d.users[keep], items=d.items[keep], ts=d.ts[keep])
        sv = setup(dv, temporal_split(dv.users, dv.ts, dv.n_users), cfg)
        vb, vo = evaluate(sv, None), evaluate(sv, cfg)
        v_loss = 1.0 - vo.ndcg10 / vb.ndcg10
        print("\nvalidation split (training part split again 80/20, test part unseen):\n" + HEADER)
        print(_line("plain (kNN)", vb))
        print(_line("trustlive", vo))
        print(f"trustlive / plain: NDCG@10 loss {100 * v_loss:.2f}%, Gini x{vo.gini / vb.gini:.3f}")
        out["validation"] = {"base": vb.row(), "trustlive": vo.row(), "ndcg_loss": round(v_loss, 4)}
    out.update(
        providers=d.n_providers, items=d.n_items, users=d.n_users, seconds=round(time.perf_counter() - t0, 1)
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
