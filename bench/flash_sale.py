"""Flash sale over HTTP against the real server on PostgreSQL.

Starts the server (uvicorn, 2 workers) on a fresh PostgreSQL database, seeds many buyers (each
with an API token and an address) and one flash SKU per round, then from a separate process
measures, side by side, in rounds:

1. the same server's no-op route (`GET /api/v1/ping`) throughput at the same concurrency, before
   the first rush and after each (a rush is compared with the mean of the readings either side);
2. a rush of `POST /api/v1/orders` on the round's SKU, every buyer with its own token and
   Idempotency-Key, until the stock is gone and beyond.

After each rush it checks the database: oversell (units sold beyond the stock) and lost acks (201
answers whose order does not exist). Prints each round, the medians over rounds, and ends with one
JSON line: {"orders_per_s", "noop_rps", "ratio", "p50_ms", "p99_ms", "oversell", "lost_acks"}.

Usage: .venv/bin/python bench/flash_sale.py [--buyers 6000] [--stock 5000] [--rounds 3] [--concurrency 256]
Needs PostgreSQL (TRUSTLIVE_BENCH_POSTGRES_URL, default postgresql://root@127.0.0.1:5432/test).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

ADMIN_URL = os.environ.get("TRUSTLIVE_BENCH_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/test")


# --- a small HTTP/1.1 keep-alive client: the load generator must not be the bottleneck ---------


def encode_request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
    return (head + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode() + body


class Conn:
    """Sends requests encoded beforehand (``encode_request``): the client's own work should take
    as little CPU as it can from the server it measures."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(raw)
        assert self.reader is not None
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        data = await self.reader.readexactly(length) if length else b""
        return status, data


async def _noop(host: str, port: int, concurrency: int, seconds: float) -> dict:
    done = 0
    stop = time.perf_counter() + seconds
    ping = encode_request("GET", "/api/v1/ping", {})

    async def worker() -> None:
        nonlocal done
        conn = Conn(host, port)
        while time.perf_counter() < stop:
            status, _ = await conn.request(ping)
            assert status == 200
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"rps": done / (time.perf_counter() - start)}


async def _rush(host: str, port: int, concurrency: int, jobs: list[dict]) -> dict:
    queue = [
        encode_request("POST", "/api/v1/orders", {"Authorization": f"Bearer {job['token']}", "Idempotency-Key": job["key"],
                       "Content-Type": "application/json"}, json.dumps(job["body"]).encode())
        for job in reversed(jobs)
    ]  # fmt: skip
    latencies: list[float] = []
    accepted: list[int] = []
    codes: dict[str, int] = {}
    last_accept = 0.0

    async def worker() -> None:
        nonlocal last_accept
        conn = Conn(host, port)
        while queue:
            raw = queue.pop()
            t0 = time.perf_counter()
            status, data = await conn.request(raw)
            latencies.append(time.perf_counter() - t0)
            if status == 201:
                accepted.append(json.loads(data)["id"])
                last_accept = time.perf_counter()
            else:
                code = json.loads(data)["error"]["code"] if data else str(status)
                codes[code] = codes.get(code, 0) + 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    selling = (last_accept - start) if accepted else elapsed
    return {
        "elapsed": elapsed,
        "selling": selling,
        "latencies": latencies,
        "accepted": accepted,
        "codes": codes,
    }


def _load(kind: str, host: str, port: int, concurrency: int, arg, out) -> None:  # type: ignore[no-untyped-def]
    result = asyncio.run(
        _noop(host, port, concurrency, arg) if kind == "noop" else _rush(host, port, concurrency, arg)
    )
    out.put(result)


def run_load(kind: str, host: str, port: int, concurrency: int, arg) -> dict:  # type: ignore[no-untyped-def]
    """In a separate process, as a real client would be."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_load, args=(kind, host, port, concurrency, arg, out))
    proc.start()
    result = out.get()
    proc.join()
    return result


# --- set-up and checks (straight through the services) -----------------------------------------


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _seed(url: str, buyers: int, stock: int, rounds: int) -> tuple[list[int], list[dict], list[dict]]:
    from trustlive.accounts import service as accounts
    from trustlive.accounts.service import Principal
    from trustlive.catalog import service as catalog
    from trustlive.catalog.schemas import CategoryIn, ProductIn, ShopIn, SkuIn
    from trustlive.db import create_engine, create_sessionmaker, transaction
    from trustlive.orders import service as orders
    from trustlive.orders.schemas import AddressIn

    engine = create_engine(url)
    sm = create_sessionmaker(engine)
    hashed = await accounts.hash_password("bench-password")
    try:
        async with transaction(sm) as s:
            ops = await accounts.create_user(s, username="ops1", password_hash=hashed, roles=["ops"])
            merchant = await accounts.create_user(
                s, username="merchant1", password_hash=hashed, roles=["merchant"]
            )
        ops_p = Principal(ops.id, "ops1", "ops1", frozenset({"ops"}))
        m_p = Principal(merchant.id, "merchant1", "merchant1", frozenset({"merchant"}))
        async with transaction(sm) as s:
            category = await catalog.create_category(
                s, ops_p, CategoryIn(slug="flash", name_zh="秒杀", name_en="Flash")
            )
            shop = await catalog.open_shop(s, m_p, ShopIn(name="秒杀小店"))
            sku_ids = []
            for r in range(rounds):  # one flash SKU per round
                product = await catalog.create_product(
                    s, m_p, shop.id,
                    ProductIn(title=f"秒杀 {r + 1}：和田玉平安扣", category_id=category.id,
                              skus=[SkuIn(price_fen=9900, stock=stock)]),
                )  # fmt: skip
                await catalog.publish(s, m_p, product.id)
                sku_ids.append((await catalog.product_detail(s, m_p, product.id)).skus[0].id)
            warm = await catalog.create_product(
                s, m_p, shop.id,
                ProductIn(title="预热：试单", category_id=category.id, skus=[SkuIn(price_fen=100, stock=buyers)]),
            )  # fmt: skip
            await catalog.publish(s, m_p, warm.id)
            warm_sku_id = (await catalog.product_detail(s, m_p, warm.id)).skus[0].id
        jobs = []
        for start in range(0, buyers, 500):
            async with transaction(sm) as s:
                for i in range(start, min(start + 500, buyers)):
                    user = await accounts.create_user(s, username=f"fan{i:05d}", password_hash=hashed)
                    p = Principal(user.id, user.username, user.display_name, frozenset({"buyer"}))
                    address = await orders.add_address(
                        s,
                        p,
                        AddressIn(
                            recipient="粉丝",
                            phone="13800000000",
                            region="四川省成都市",
                            detail="天府大道 1 号",
                        ),
                    )
                    token, _ = await accounts.open_session(s, user, kind="api", days=1)
                    body = {
                        "items": [{"sku_id": sku_ids[0], "quantity": 1}],
                        "address_id": address.id,
                        "source": "live_room",
                    }
                    jobs.append({"token": token, "key": str(uuid.uuid4()), "body": body})
        # The same buyers first buy a warm-up SKU: every worker's connections and prepared
        # statements are ready before the measured rush, as they would be in a live server.
        warm_jobs = [{**j, "key": str(uuid.uuid4()), "body": {**j["body"], "items": [{"sku_id": warm_sku_id, "quantity": 1}]}}
                     for j in jobs]  # fmt: skip
        return sku_ids, jobs, warm_jobs
    finally:
        await engine.dispose()


async def _check(url: str, sku_id: int, stock: int, accepted: list[int]) -> dict:
    from sqlalchemy import func, select

    from trustlive.catalog.models import Sku
    from trustlive.db import create_engine, create_sessionmaker, transaction
    from trustlive.orders.models import Order, OrderLine

    engine = create_engine(url)
    try:
        async with transaction(create_sessionmaker(engine)) as s:
            sold = await s.scalar(
                select(func.coalesce(func.sum(OrderLine.quantity), 0)).where(OrderLine.sku_id == sku_id)
            )
            left = await s.scalar(select(Sku.stock).where(Sku.id == sku_id))
            found = (
                set(await s.scalars(select(Order.id).where(Order.id.in_(accepted)))) if accepted else set()
            )
        return {"sold": sold, "left": left, "oversell": max(0, sold - stock) + (1 if left < 0 else 0),
                "lost_acks": len(set(accepted) - found), "conserved": sold + left == stock}  # fmt: skip
    finally:
        await engine.dispose()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_ready(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the server exited during start-up")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"GET /api/v1/ping HTTP/1.1\r\nHost: x\r\n\r\n")
                if b"200" in sock.recv(100):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("the server did not start")


def _profile_workers(server_pid: int) -> list[subprocess.Popen]:  # type: ignore[type-arg]
    """With TRUSTLIVE_BENCH_PROFILE=DIR, records each worker with py-spy during the rush only
    (raw collapsed stacks of the thread holding the GIL, that is CPU, in DIR/worker-PID.txt;
    py-spy is looked up on PATH)."""
    out = os.environ.get("TRUSTLIVE_BENCH_PROFILE")
    if not out:
        return []
    Path(out).mkdir(parents=True, exist_ok=True)
    children = Path(f"/proc/{server_pid}/task/{server_pid}/children").read_text().split()
    return [subprocess.Popen(["py-spy", "record", "--pid", pid, "--rate", "250", "--gil", "--format", "raw",
                              "--output", f"{out}/worker-{pid}.txt"], stdout=subprocess.DEVNULL)
            for pid in children]  # fmt: skip


def _cpu(server_pid: int) -> dict[str, float]:
    """CPU seconds so far of the server's workers, of PostgreSQL, of this process's finished
    children (the load generators) and of the whole machine (busy time of all cores)."""
    tick = os.sysconf("SC_CLK_TCK")

    def proc(pid: str) -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / tick

    workers = Path(f"/proc/{server_pid}/task/{server_pid}/children").read_text().split()
    postgres = 0.0
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() in ("postgres", "postmaster"):
                postgres += proc(entry.name)
        except OSError:
            continue  # a backend that just exited
    cpu = Path("/proc/stat").read_text().split("\n")[0].split()[1:]
    busy = (sum(map(int, cpu)) - int(cpu[3]) - int(cpu[4])) / tick  # all but idle and iowait
    children = os.times()
    return {"workers": sum(proc(pid) for pid in workers), "postgres": postgres,
            "load": children.children_user + children.children_system, "machine": busy}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--buyers", type=int, default=6000)
    parser.add_argument("--stock", type=int, default=5000, help="units of each round's SKU")
    parser.add_argument("--rounds", type=int, default=3)
    # Open connections of the load generator, for the no-op route and the rush alike. A flash
    # sale's buyers arrive together: 256 is still far fewer than the buyers who press "buy".
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--noop-seconds", type=float, default=3.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--warm-up", type=int, default=1000, help="orders placed before measuring")
    args = parser.parse_args()

    from trustlive import migrate
    from trustlive.config import normalise_database_url

    name = f"trustlive_bench_{os.getpid()}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    url = normalise_database_url(urlsplit(ADMIN_URL)._replace(path=f"/{name}").geturl())
    server = None
    try:
        migrate.upgrade(url)
        print(
            f"seeding {args.buyers} buyers with tokens and addresses, {args.rounds} SKUs of {args.stock} units ...",
            flush=True,
        )
        sku_ids, jobs, warm_jobs = asyncio.run(_seed(url, args.buyers, args.stock, args.rounds))
        port = _free_port()
        env = {**os.environ, "TRUSTLIVE_DATABASE_URL": url, "TRUSTLIVE_TASK_INTERVAL_SECONDS": "0",
               "TRUSTLIVE_VAR_DIR": f"/tmp/{name}"}  # fmt: skip
        env.pop("TRUSTLIVE_REDIS_URL", None)
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "trustlive.app:create_app", "--factory", "--host", "127.0.0.1",
             "--port", str(port), "--workers", str(args.workers), "--log-level", "warning", "--no-access-log"],
            env=env, cwd=ROOT,
        )  # fmt: skip
        _wait_ready(port, server)
        run_load("noop", "127.0.0.1", port, args.concurrency, 1.0)  # warm-up
        run_load("rush", "127.0.0.1", port, args.concurrency, warm_jobs[: args.warm_up])
        # Rounds alternate the no-op route and a rush on a fresh SKU; each rush is compared with
        # the no-op readings either side of it. On a shared machine one reading can be off by a
        # third; the medians over rounds are what is reported.
        noops = [run_load("noop", "127.0.0.1", port, args.concurrency, args.noop_seconds)["rps"]]
        rushes, cpu = [], {}
        for r, sku_id in enumerate(sku_ids):
            round_jobs = [{**j, "key": str(uuid.uuid4()), "body": {**j["body"], "items": [{"sku_id": sku_id, "quantity": 1}]}}
                          for j in jobs]  # fmt: skip
            profilers = _profile_workers(server.pid) if r == 0 else []
            cpu_before = _cpu(server.pid)
            rush = run_load("rush", "127.0.0.1", port, args.concurrency, round_jobs)
            for k, v in _cpu(server.pid).items():
                cpu[k] = cpu.get(k, 0.0) + v - cpu_before[k]
            for p in profilers:
                p.send_signal(signal.SIGINT)  # py-spy writes its file on ^C
                p.wait(timeout=60)
            noops.append(run_load("noop", "127.0.0.1", port, args.concurrency, args.noop_seconds)["rps"])
            rush["check"] = asyncio.run(_check(url, sku_id, args.stock, rush["accepted"]))
            rush["noop"] = (noops[r] + noops[r + 1]) / 2
            rush["orders_per_s"] = len(rush["accepted"]) / rush["selling"]  # while the stock lasted
            rushes.append(rush)
    finally:
        if server is not None:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=60)
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    for r, rush in enumerate(rushes, 1):
        check = rush["check"]
        print(f"round {r}: {len(rush['accepted'])} of {len(jobs)} accepted ({rush['codes']}) in {rush['elapsed']:.2f} s; "
              f"{rush['orders_per_s']:.0f} orders/s, no-op {rush['noop']:.0f} req/s, ratio {rush['orders_per_s'] / rush['noop']:.3f}; "
              f"sold {check['sold']}, left {check['left']}, conserved {check['conserved']}")  # fmt: skip
    orders_per_s = statistics.median(r["orders_per_s"] for r in rushes)
    noop_rps = statistics.median(r["noop"] for r in rushes)
    ratio = statistics.median(r["orders_per_s"] / r["noop"] for r in rushes)
    lat = sorted(x for r in rushes for x in r["latencies"])
    p50 = statistics.median(lat) * 1000
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
    oversell = sum(r["check"]["oversell"] for r in rushes)
    lost = sum(r["check"]["lost_acks"] for r in rushes)
    print(
        f"medians of {len(rushes)} rounds: {orders_per_s:.0f} orders/s, no-op {noop_rps:.0f} req/s, ratio {ratio:.3f}"
    )
    print(f"latency p50 / p99:  {p50:.1f} ms / {p99:.1f} ms (all rounds)")
    # Per attempt (refusals included): where the two cores went during the rushes.
    per = {k: v / (len(jobs) * len(rushes)) * 1000 for k, v in cpu.items()}
    print(f"CPU per attempt:    workers {per['workers']:.3f} ms, PostgreSQL {per['postgres']:.3f} ms, "
          f"load generator {per['load']:.3f} ms, whole machine {per['machine']:.3f} ms")  # fmt: skip
    print(f"oversell {oversell}, lost acks {lost}")
    print(json.dumps({
        "orders_per_s": round(orders_per_s, 1), "noop_rps": round(noop_rps, 1), "ratio": round(ratio, 3),
        "p50_ms": round(p50, 2), "p99_ms": round(p99, 2), "oversell": oversell, "lost_acks": lost,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
