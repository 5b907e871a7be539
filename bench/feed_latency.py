"""Feed latency on a big world: a 20-item discovery page (and a follow-feed page) for random
signed-in buyers over a million items and a hundred thousand creators, on PostgreSQL.

Builds (or, with `--reuse`, reuses a kept database generated with the same sizes) a world with
the world simulator (`trustlive.sim.world`, bulk mode: `--items` 1,000,000 videos and products,
`--creators` 100,000 creators with KuaiRand-shaped videos, `--merchants` 20,000 shops, `--buyers`
100,000 buyers with their follows and `--touches-per-buyer` 20 interactions each), then runs the
feed's precompute, timing each step: the item index's first-run backfill, the exposure window,
the item neighbours of collaborative filtering (all of them again with `--reuse`, but for the
backfill, which runs once per database), then `VACUUM ANALYZE`s the tables the pages read (a live
database's autovacuum would have); with `--reuse --no-precompute` it measures the kept world as
the run that kept it left it. Then measures, side by
side:

1. in-process: `feed.service.discovery_feed` (and `follow_feed`) in one transaction each (the
   page and its served-page row committed; the garbage collector set as a server worker sets it,
   `app._server_gc`), for `--requests` (2000) random buyers after
   `--warm-up` (300), sequentially and with `--concurrency` (8) at once;
2. over HTTP: the real app (`uvicorn trustlive.app:create_app`, `--workers` 2, as
   bench/flash_sale.py serves it) answering `GET /api/v1/feed/discovery?limit=20` (and
   `/feed/following`) with each buyer's API token, from a separate load-generator process (a
   keep-alive HTTP/1.1 client), sequentially and with the same concurrency;
3. where a discovery page's time goes: `--profile` (300) sequential in-process requests with the
   feed's steps timed (each named function of `feed.service` and the queries it makes, from
   SQLAlchemy's cursor events), per request.

Prints p50/p99/mean and pages/s for each, the ratios, the breakdown, and ends with ONE JSON line:
{"items", "creators", "buyers", "p99_ms_inprocess", "p99_ms_http", "p50_ms_inprocess", ...}.
Targets: p99 <= 20 ms in-process, <= 50 ms over HTTP (sequential).

Usage: .venv/bin/python bench/feed_latency.py [--items 1000000] [--creators 100000] [--buyers 100000]
       [--requests 2000] [--concurrency 8] [--keep] [--reuse] [--no-http] [--profile 300]
Needs PostgreSQL (TRUSTLIVE_BENCH_POSTGRES_URL, default postgresql://root@127.0.0.1:5432/test).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from bench.flash_sale import ADMIN_URL, Conn, _admin, _free_port, _wait_ready, encode_request  # noqa: E402

DB_NAME = "trustlive_bench_feed"
LIMIT = 20


async def _admin_in(raw_url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(raw_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))] * 1000 if xs else float("nan")


def _figures(lat: list[float], wall: float) -> dict[str, float]:
    return {
        "n": len(lat), "p50_ms": statistics.median(lat) * 1000 if lat else float("nan"),
        "p99_ms": _pct(lat, 0.99), "mean_ms": statistics.fmean(lat) * 1000 if lat else float("nan"),
        "max_ms": max(lat) * 1000 if lat else float("nan"), "per_s": len(lat) / wall if wall else 0.0,
    }  # fmt: skip


# --- the world ----------------------------------------------------------------------------------


def _settings(url: str, var: Path) -> Any:
    from trustlive.config import Settings

    return Settings(database_url=url, redis_url=None, secret_key="bench-secret-key-" + "x" * 32, var_dir=var,
                    media_dir=var / "media", cookie_secure="false", task_interval_seconds=0)  # fmt: skip


async def _build(url: str, a: argparse.Namespace, var: Path, progress: Any) -> dict[str, Any]:
    from trustlive.db import create_engine, create_sessionmaker
    from trustlive.sim.world import WorldSpec, generate_world

    spec = WorldSpec(
        buyers=a.buyers, creators=a.creators, merchants=a.merchants, seed=a.seed, items=a.items,
        touches_per_buyer=a.touches_per_buyer, follows_per_buyer=a.follows_per_buyer, mode="bulk", precompute=False,
    )  # fmt: skip
    engine = create_engine(url)
    bars: dict[str, Any] = {}

    def report(stage: str, done: int, total: int) -> None:
        if stage not in bars:
            bars[stage] = progress.add_task(stage, total=total)
        progress.update(bars[stage], completed=done, total=total)

    try:
        summary = await generate_world(
            create_sessionmaker(engine), spec, report, settings=_settings(url, var)
        )
    finally:
        await engine.dispose()
    return {"lines": summary.lines(), "phases": summary.phases, **summary.as_dict()}


async def _precompute(url: str, raw_url: str, var: Path, backfill: bool) -> dict[str, Any]:
    """The feed task's steps, each timed: backfill (first run only), window, neighbours."""
    from sqlalchemy import func, select

    from trustlive.db import create_engine, create_sessionmaker, transaction
    from trustlive.feed import service as feed
    from trustlive.feed import tasks as feed_tasks
    from trustlive.feed.models import FeedInteraction

    engine = create_engine(url)
    sm = create_sessionmaker(engine)
    config = feed.config_for(_settings(url, var))
    out: dict[str, Any] = {}
    try:
        if backfill:
            t0 = time.perf_counter()
            async with transaction(sm) as s:
                out["backfill_indexed"] = await feed.backfill(s)
            out["backfill_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        async with transaction(sm) as s:
            out["window_providers"] = await feed.advance_window(s, config)
        out["window_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        out["neighbour_rows"] = await feed_tasks.build_neighbours(sm, config, force=True)
        out["neighbours_s"] = time.perf_counter() - t0
        async with transaction(sm) as s:
            out["interaction_rows"] = await s.scalar(select(func.count()).select_from(FeedInteraction))
    finally:
        await engine.dispose()
    # A live database's tables have been vacuumed (hint bits, visibility map) and analysed by
    # autovacuum; a freshly loaded and rebuilt one has not.
    t0 = time.perf_counter()
    await _admin_in(raw_url, "VACUUM ANALYZE " + ", ".join(VACUUMED))
    out["vacuum_s"] = time.perf_counter() - t0
    return out


VACUUMED = ("feed_neighbours", "feed_items", "feed_interactions", "feed_providers", "feed_exposure", "products",
            "product_images", "skus", "videos", "users", "follows", "shops")  # fmt: skip


async def _people(url: str, seed: int, n: int, rng: random.Random, tokens: bool) -> dict[str, Any]:
    """``n`` random buyers of the world (as principals, with an API token each when asked), and
    which of them follow someone."""
    from sqlalchemy import select

    from trustlive.accounts import service as accounts
    from trustlive.accounts.models import User
    from trustlive.accounts.service import Principal
    from trustlive.db import create_engine, create_sessionmaker, transaction
    from trustlive.sim.world import buyer_username
    from trustlive.social.models import Follow

    engine = create_engine(url)
    try:
        async with transaction(create_sessionmaker(engine)) as s:
            first = await s.scalar(select(User.id).where(User.username == buyer_username(seed, 0)))
            last = await s.scalar(
                select(User.id).where(User.username.like(f"w{seed}-b%")).order_by(User.id.desc())
            )
            assert first is not None and last is not None, "the world has no buyers"
            chosen = sorted(rng.sample(range(first, last + 1), min(n, last - first + 1)))
            users = await accounts.users_by_ids(s, chosen)
            following = set(
                await s.scalars(select(Follow.user_id).where(Follow.user_id.in_(chosen)).distinct())
            )
            out: dict[str, Any] = {"principals": [], "tokens": {}, "following": following}
            for uid in chosen:
                u = users[uid]
                out["principals"].append(Principal(u.id, u.username, u.display_name, frozenset({"buyer"})))
                if tokens:
                    token, _ = await accounts.open_session(s, u, kind="api", days=1)
                    out["tokens"][uid] = token
        return out
    finally:
        await engine.dispose()


# --- in-process ---------------------------------------------------------------------------------


async def _inprocess(
    url: str, var: Path, people: dict[str, Any], a: argparse.Namespace, rng: random.Random
) -> dict[str, Any]:
    from trustlive.db import create_engine, create_sessionmaker, transaction
    from trustlive.feed import service as feed

    engine = create_engine(url)
    sm = create_sessionmaker(engine)
    config = feed.config_for(_settings(url, var))
    principals = people["principals"]
    followers = [p for p in principals if p.id in people["following"]] or principals

    async def discovery(viewer: Any) -> int:
        async with transaction(sm) as s:
            return len((await feed.discovery_feed(s, viewer, config, limit=LIMIT)).items)

    async def follow(viewer: Any) -> int:
        async with transaction(sm) as s:
            return len((await feed.follow_feed(s, viewer, limit=LIMIT)).items)

    async def run(
        call: Any, who: list[Any], n: int, concurrency: int
    ) -> tuple[list[float], float, list[int]]:
        queue = [who[rng.randrange(len(who))] for _ in range(n)]
        lat: list[float] = []
        sizes: list[int] = []

        async def worker() -> None:
            while queue:
                viewer = queue.pop()
                t0 = time.perf_counter()
                sizes.append(await call(viewer))
                lat.append(time.perf_counter() - t0)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return lat, time.perf_counter() - start, sizes

    try:
        out: dict[str, Any] = {}
        await run(discovery, principals, a.warm_up, 1)
        await run(follow, followers, max(50, a.warm_up // 3), 1)
        for name, call, who in (("discovery", discovery, principals), ("follow", follow, followers)):
            lat, wall, sizes = await run(call, who, a.requests, 1)
            out[f"{name}_seq"] = {**_figures(lat, wall), "items_mean": statistics.fmean(sizes)}
            lat, wall, sizes = await run(call, who, a.requests, a.concurrency)
            out[f"{name}_conc"] = {**_figures(lat, wall), "items_mean": statistics.fmean(sizes)}
        if a.profile:
            out["profile"] = await _profile(sm, engine, discovery, principals, a.profile, rng)
        return out
    finally:
        await engine.dispose()


STEPS = ("discovery_feed", "_discovery_candidates", "_history", "_pool_arrays",
         "_live_pool", "_rank", "_provider_state", "_running_grants", "_trust_of", "_hydrate", "_serve")  # fmt: skip
REPO_STEPS = ("history", "neighbours_of", "newest_items", "add_serve",
              "providers_changed", "running_grants")  # fmt: skip


async def _profile(
    sm: Any, engine: Any, discovery: Any, who: list[Any], n: int, rng: random.Random
) -> dict[str, Any]:
    """Sequential discovery pages with the feed's steps timed: each named function of
    feed.service (nested ones overlap their callers), the repository functions it calls, the
    other domains' services, and every SQL statement (by its first 90 characters)."""
    from sqlalchemy import event

    from trustlive.accounts import service as accounts
    from trustlive.catalog import service as catalog
    from trustlive.content import service as content
    from trustlive.feed import ranking
    from trustlive.feed import repository as repo
    from trustlive.feed import service as feed
    from trustlive.trust import service as trust

    spent: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    restore: list[tuple[Any, str, Any]] = []

    def wrap(module: Any, name: str, label: str) -> None:
        original = getattr(module, name, None)
        if original is None:
            return
        restore.append((module, name, original))
        if asyncio.iscoroutinefunction(original):

            async def timed_async(*args: Any, **kw: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    return await original(*args, **kw)
                finally:
                    spent[label] += time.perf_counter() - t0
                    calls[label] += 1

            setattr(module, name, timed_async)
        else:

            def timed(*args: Any, **kw: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    return original(*args, **kw)
                finally:
                    spent[label] += time.perf_counter() - t0
                    calls[label] += 1

            setattr(module, name, timed)

    for name in STEPS:
        wrap(feed, name, f"feed.{name}")
    for name in REPO_STEPS:
        wrap(repo, name, f"feed.repository.{name}")
    wrap(ranking, "rerank", "feed.ranking.rerank")
    wrap(trust, "quality_multipliers", "trust.quality_multipliers")
    wrap(content, "video_cards", "content.video_cards")
    wrap(catalog, "product_cards", "catalog.product_cards")
    wrap(accounts, "display_names", "accounts.display_names")
    sql_spent: dict[str, float] = defaultdict(float)
    sql_calls: dict[str, int] = defaultdict(int)

    def before(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        conn.info.setdefault("bench_t0", []).append(time.perf_counter())

    def after(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        key = " ".join(statement.split())[:90]
        sql_spent[key] += time.perf_counter() - conn.info["bench_t0"].pop()
        sql_calls[key] += 1

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    event.listen(engine.sync_engine, "after_cursor_execute", after)
    lat = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            await discovery(who[rng.randrange(len(who))])
            lat.append(time.perf_counter() - t0)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", before)
        event.remove(engine.sync_engine, "after_cursor_execute", after)
        for module, name, original in restore:
            setattr(module, name, original)
    steps = sorted(((k, v / n * 1000, calls[k] / n) for k, v in spent.items()), key=lambda x: -x[1])
    sql = sorted(((k, v / n * 1000, sql_calls[k] / n) for k, v in sql_spent.items()), key=lambda x: -x[1])
    return {"requests": n, "mean_ms": statistics.fmean(lat) * 1000, "p99_ms": _pct(lat, 0.99),
            "steps": steps, "sql": sql[:15], "sql_total_ms": sum(v for _, v, _ in sql)}  # fmt: skip


# --- over HTTP ----------------------------------------------------------------------------------


async def _http_load(port: int, raws: list[bytes], concurrency: int) -> dict[str, Any]:
    queue = list(reversed(raws))
    lat: list[float] = []
    codes: dict[int, int] = defaultdict(int)
    items: list[int] = []

    async def worker() -> None:
        conn = Conn("127.0.0.1", port)
        while queue:
            raw = queue.pop()
            t0 = time.perf_counter()
            status, body = await conn.request(raw)
            lat.append(time.perf_counter() - t0)
            codes[status] += 1
            if status == 200:
                items.append(len(json.loads(body)["items"]))

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"lat": lat, "wall": time.perf_counter() - start, "codes": dict(codes), "items": items}


def _load_proc(port: int, raws: list[bytes], concurrency: int, out: Any) -> None:
    out.put(asyncio.run(_http_load(port, raws, concurrency)))


def _run_load(port: int, raws: list[bytes], concurrency: int) -> dict[str, Any]:
    """In a separate process, as a real client would be."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_load_proc, args=(port, raws, concurrency, out))
    proc.start()
    result = out.get()
    proc.join()
    return result


def _http(
    url: str, var: Path, people: dict[str, Any], a: argparse.Namespace, rng: random.Random
) -> dict[str, Any]:
    tokens = people["tokens"]
    everyone = list(tokens)
    followers = [u for u in everyone if u in people["following"]] or everyone

    def requests(path: str, who: list[int], n: int) -> list[bytes]:
        return [encode_request("GET", path, {"Authorization": f"Bearer {tokens[who[rng.randrange(len(who))]]}"})
                for _ in range(n)]  # fmt: skip

    port = _free_port()
    env = {**os.environ, "TRUSTLIVE_DATABASE_URL": url, "TRUSTLIVE_TASK_INTERVAL_SECONDS": "0",
           "TRUSTLIVE_VAR_DIR": str(var)}  # fmt: skip
    env.pop("TRUSTLIVE_REDIS_URL", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "trustlive.app:create_app", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--workers", str(a.workers), "--log-level", "warning", "--no-access-log"],
        env=env, cwd=ROOT,
    )  # fmt: skip
    out: dict[str, Any] = {}
    try:
        _wait_ready(port, server)
        discovery = f"/api/v1/feed/discovery?limit={LIMIT}"
        follow = f"/api/v1/feed/following?limit={LIMIT}"
        _run_load(port, requests(discovery, everyone, a.warm_up), a.concurrency)  # every worker warmed
        _run_load(port, requests(follow, followers, max(50, a.warm_up // 3)), a.concurrency)
        for name, path, who in (("discovery", discovery, everyone), ("follow", follow, followers)):
            for label, concurrency in (("seq", 1), ("conc", a.concurrency)):
                r = _run_load(port, requests(path, who, a.requests), concurrency)
                out[f"{name}_{label}"] = {**_figures(r["lat"], r["wall"]), "codes": r["codes"],
                                          "items_mean": statistics.fmean(r["items"]) if r["items"] else 0.0}  # fmt: skip
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
    return out


# --- the run ----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000, help="videos + products")
    parser.add_argument("--creators", type=int, default=100_000)
    parser.add_argument("--merchants", type=int, default=20_000, help="shops")
    parser.add_argument("--buyers", type=int, default=100_000)
    parser.add_argument(
        "--touches-per-buyer", type=float, default=20.0, help="items each buyer interacted with"
    )
    parser.add_argument("--follows-per-buyer", type=float, default=6.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--requests", type=int, default=2000, help="timed pages per measurement")
    parser.add_argument("--warm-up", type=int, default=300, help="pages before measuring")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--users", type=int, default=2000, help="distinct random buyers asking")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--profile", type=int, default=300, help="profiled sequential requests (0: none)")
    parser.add_argument("--no-http", action="store_true", help="in-process only")
    parser.add_argument("--no-precompute", action="store_true",
                        help="with --reuse: measure the kept world as the run that kept it left it (no "
                             "window, neighbours or VACUUM again)")  # fmt: skip
    parser.add_argument("--database", default=DB_NAME, help="the database to (re)create")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards (then --reuse it)")
    parser.add_argument(
        "--reuse", action="store_true", help="reuse a kept database generated with the same sizes"
    )
    a = parser.parse_args()

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from trustlive import migrate
    from trustlive.config import normalise_database_url

    console = Console(width=max(Console().width, 150))
    raw_url = urlsplit(ADMIN_URL)._replace(path=f"/{a.database}").geturl()
    url = normalise_database_url(raw_url)
    sizes = {"items": a.items, "creators": a.creators, "merchants": a.merchants, "buyers": a.buyers,
             "touches_per_buyer": a.touches_per_buyer, "follows_per_buyer": a.follows_per_buyer, "seed": a.seed}  # fmt: skip
    rng = random.Random(a.seed)
    var = Path(tempfile.mkdtemp(prefix="trustlive-feed-bench-"))

    async def kept() -> dict[str, Any]:
        import asyncpg

        conn = await asyncpg.connect(ADMIN_URL)
        try:
            note = await conn.fetchval(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1", a.database
            )
        finally:
            await conn.close()
        return json.loads(note) if note else {}

    def bar() -> Progress:
        return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console, transient=True)  # fmt: skip

    note = asyncio.run(kept()) if a.reuse else {}
    reused = note.get("sizes") == sizes
    world: dict[str, Any] = note.get("world", {}) if reused else {}
    generate_s = None
    try:
        if reused:
            console.print(f"reusing {a.database} ({a.items:,} items, {a.creators:,} creators)")
            for line in world.get("lines", []):
                console.print(line, highlight=False)
            migrate.upgrade(url)
        else:
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{a.database}" WITH (FORCE)'))
            asyncio.run(_admin(f'CREATE DATABASE "{a.database}"'))
            migrate.upgrade(url)
            console.print(f"generating {a.items:,} items, {a.creators:,} creators, {a.merchants:,} shops, "
                          f"{a.buyers:,} buyers ...")  # fmt: skip
            t0 = time.perf_counter()
            with bar() as progress:
                world = asyncio.run(_build(url, a, var, progress))
            generate_s = time.perf_counter() - t0
            kept_note = json.dumps(
                {"sizes": sizes, "world": {k: v for k, v in world.items() if k != "phases"}},
                ensure_ascii=False,
            ).replace("'", "''")
            asyncio.run(_admin(f"COMMENT ON DATABASE \"{a.database}\" IS '{kept_note}'"))
            for line in world["lines"]:
                console.print(line, highlight=False)
            console.print("  phases: " + ", ".join(f"{k} {v:.1f} s" for k, v in world["phases"].items()))
        if reused and a.no_precompute:
            pre = note.get("precompute", {})
            console.print(
                "feed precompute: skipped (--no-precompute); the kept world's neighbours and window"
            )
        else:
            with console.status("feed precompute: backfill, window, neighbours ..."):
                pre = asyncio.run(_precompute(url, raw_url, var, backfill=not reused))
            console.print(
                "feed precompute: "
                + (f"backfill {pre['backfill_s']:.1f} s ({pre['backfill_indexed']:,} indexed), " if "backfill_s" in pre else "")
                + f"window {pre['window_s']:.1f} s ({pre['window_providers']:,} providers), neighbours "
                f"{pre['neighbours_s']:.1f} s ({pre['neighbour_rows']:,} rows from {pre['interaction_rows']:,} interactions); "
                f"then VACUUM ANALYZE {pre['vacuum_s']:.1f} s"
            )  # fmt: skip
            if a.keep or a.reuse:  # what --no-precompute reports later
                world_note = {k: v for k, v in world.items() if k != "phases"}
                kept_note = json.dumps({"sizes": sizes, "world": world_note, "precompute": pre},
                                       ensure_ascii=False).replace("'", "''")  # fmt: skip
                asyncio.run(_admin(f"COMMENT ON DATABASE \"{a.database}\" IS '{kept_note}'"))
        people = asyncio.run(_people(url, a.seed, a.users, rng, tokens=not a.no_http))
        with console.status(f"in-process: {a.requests:,} pages x 4 ..."):
            # With the garbage collector set as in a server worker (app._server_gc): the page's
            # work as a worker does it, without the HTTP around it.
            from trustlive.app import _server_gc

            with _server_gc():
                inproc = asyncio.run(_inprocess(url, var, people, a, rng))
        http = {} if a.no_http else _http(url, var, people, a, rng)
    finally:
        shutil.rmtree(var, ignore_errors=True)  # the server's var dir and the world's pictures
        if not (a.keep or a.reuse):
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{a.database}" WITH (FORCE)'))

    table = Table(
        title=f"feed pages ({LIMIT} items): {a.items:,} items, {a.creators:,} creators, {a.buyers:,} buyers"
    )
    for col in (
        "page",
        "how",
        "in-process p50",
        "p99",
        "pages/s",
        "HTTP p50",
        "p99",
        "pages/s",
        "HTTP/in-process p99",
    ):
        table.add_column(col, justify="right")
    for name in ("discovery", "follow"):
        for label, how in (("seq", "sequential"), ("conc", f"{a.concurrency} at once")):
            i = inproc[f"{name}_{label}"]
            h = http.get(f"{name}_{label}")
            table.add_row(
                name, how, f"{i['p50_ms']:.1f} ms", f"{i['p99_ms']:.1f} ms", f"{i['per_s']:.0f}",
                f"{h['p50_ms']:.1f} ms" if h else "-", f"{h['p99_ms']:.1f} ms" if h else "-",
                f"{h['per_s']:.0f}" if h else "-", f"{h['p99_ms'] / i['p99_ms']:.2f}" if h else "-",
            )  # fmt: skip
    console.print(table)
    for name in ("discovery", "follow"):
        i = inproc[f"{name}_seq"]
        extra = f"; HTTP answers {http[f'{name}_seq']['codes']}" if http else ""
        console.print(f"{name}: {i['items_mean']:.1f} items a page on average{extra}", highlight=False)
    prof = inproc.get("profile")
    if prof:
        steps = Table(title=f"where a discovery page's time goes ({prof['requests']} sequential pages, "
                            f"mean {prof['mean_ms']:.1f} ms, p99 {prof['p99_ms']:.1f} ms; nested steps overlap)")  # fmt: skip
        for col in ("step", "ms per page", "calls per page"):
            steps.add_column(col, justify="right" if col != "step" else "left")
        for name, ms, per in prof["steps"]:
            steps.add_row(name, f"{ms:.2f}", f"{per:.2f}")
        console.print(steps)
        sql = Table(title=f"SQL per discovery page: {prof['sql_total_ms']:.2f} ms in all (top statements)")
        for col in ("statement", "ms per page", "calls per page"):
            sql.add_column(col, justify="right" if col != "statement" else "left")
        for stmt, ms, per in prof["sql"]:
            sql.add_row(stmt, f"{ms:.2f}", f"{per:.2f}")
        console.print(sql)
    p99_in = inproc["discovery_seq"]["p99_ms"]
    p99_http = http["discovery_seq"]["p99_ms"] if http else None
    console.print(f"targets: discovery p99 <= 20 ms in-process ({p99_in:.1f} ms: {'met' if p99_in <= 20 else 'MISSED'}), "
                  + (f"<= 50 ms over HTTP ({p99_http:.1f} ms: {'met' if p99_http <= 50 else 'MISSED'})" if http else "HTTP not run"),
                  highlight=False)  # fmt: skip

    def r(x: float | None) -> float | None:
        return None if x is None else round(x, 2)

    print(json.dumps({
        "items": a.items, "creators": a.creators, "buyers": a.buyers, "merchants": a.merchants,
        "p99_ms_inprocess": r(p99_in), "p99_ms_http": r(p99_http),
        "p50_ms_inprocess": r(inproc["discovery_seq"]["p50_ms"]),
        "p50_ms_http": r(http["discovery_seq"]["p50_ms"]) if http else None,
        "p99_ms_inprocess_concurrent": r(inproc["discovery_conc"]["p99_ms"]),
        "p99_ms_http_concurrent": r(http["discovery_conc"]["p99_ms"]) if http else None,
        "pages_per_s_http_concurrent": r(http["discovery_conc"]["per_s"]) if http else None,
        "follow_p99_ms_inprocess": r(inproc["follow_seq"]["p99_ms"]),
        "follow_p99_ms_http": r(http["follow_seq"]["p99_ms"]) if http else None,
        "concurrency": a.concurrency, "requests": a.requests, "workers": a.workers,
        "generate_s": r(generate_s), "reused": reused, "precomputed": not (reused and a.no_precompute),
        "neighbours_s": r(pre.get("neighbours_s")), "neighbour_rows": pre.get("neighbour_rows"),
        "interaction_rows": pre.get("interaction_rows"), "backfill_s": r(pre.get("backfill_s")),
        "window_s": r(pre.get("window_s")), "vacuum_s": r(pre.get("vacuum_s")), "one_item_share": world.get("one_item_share"), "follower_gini": world.get("follower_gini"),
        "top1_share": world.get("top1_share"),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
