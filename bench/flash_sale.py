"""Flash sale over HTTP against the real server on PostgreSQL.

Starts `trustlive serve --workers 2` on a fresh PostgreSQL database, seeds one SKU and many buyers
(each with an API token and an address), then from a separate process measures, side by side:

1. the same server's no-op route (`GET /api/v1/ping`) throughput at the same concurrency, before
   and after the rush (the mean is used);
2. a rush of `POST /api/v1/orders` on the one SKU, every buyer with its own token and
   Idempotency-Key, until the stock is gone and beyond.

Afterwards it checks the database: oversell (units sold beyond the stock) and lost acks (201
answers whose order does not exist). Prints ratios and ends with one JSON line:
{"orders_per_s", "noop_rps", "ratio", "p50_ms", "p99_ms", "oversell", "lost_acks"}.

Usage: .venv/bin/python bench/flash_sale.py [--buyers 3000] [--stock 2000] [--concurrency 64]
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


class Conn:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        self.writer.write(head.encode() + body)
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

    async def worker() -> None:
        nonlocal done
        conn = Conn(host, port)
        while time.perf_counter() < stop:
            status, _ = await conn.request("GET", "/api/v1/ping", {})
            assert status == 200
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"rps": done / (time.perf_counter() - start)}


async def _rush(host: str, port: int, concurrency: int, jobs: list[dict]) -> dict:
    queue = list(reversed(jobs))
    latencies: list[float] = []
    accepted: list[int] = []
    codes: dict[str, int] = {}
    last_accept = 0.0

    async def worker() -> None:
        nonlocal last_accept
        conn = Conn(host, port)
        while queue:
            job = queue.pop()
            body = json.dumps(job["body"]).encode()
            headers = {"Authorization": f"Bearer {job['token']}", "Content-Type": "application/json",
                       "Idempotency-Key": job["key"]}  # fmt: skip
            t0 = time.perf_counter()
            status, data = await conn.request("POST", "/api/v1/orders", headers, body)
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


async def _seed(url: str, buyers: int, stock: int) -> tuple[int, list[dict]]:
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
            product = await catalog.create_product(
                s, m_p, shop.id,
                ProductIn(title="秒杀：和田玉平安扣", category_id=category.id, skus=[SkuIn(price_fen=9900, stock=stock)]),
            )  # fmt: skip
            await catalog.publish(s, m_p, product.id)
            sku_id = (await catalog.product_detail(s, m_p, product.id)).skus[0].id
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
                        "items": [{"sku_id": sku_id, "quantity": 1}],
                        "address_id": address.id,
                        "source": "live_room",
                    }
                    jobs.append({"token": token, "key": str(uuid.uuid4()), "body": body})
        # The same buyers first buy a warm-up SKU: every worker's connections and prepared
        # statements are ready before the measured rush, as they would be in a live server.
        warm_jobs = [{**j, "key": str(uuid.uuid4()), "body": {**j["body"], "items": [{"sku_id": warm_sku_id, "quantity": 1}]}}
                     for j in jobs]  # fmt: skip
        return sku_id, jobs, warm_jobs
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
    parser.add_argument("--buyers", type=int, default=3000)
    parser.add_argument("--stock", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--noop-seconds", type=float, default=5.0)
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
            f"seeding {args.buyers} buyers with tokens and addresses, one SKU of {args.stock} units ...",
            flush=True,
        )
        sku_id, jobs, warm_jobs = asyncio.run(_seed(url, args.buyers, args.stock))
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
        before = run_load("noop", "127.0.0.1", port, args.concurrency, args.noop_seconds)
        profilers = _profile_workers(server.pid)
        cpu_before = _cpu(server.pid)
        rush = run_load("rush", "127.0.0.1", port, args.concurrency, jobs)
        cpu = {k: v - cpu_before[k] for k, v in _cpu(server.pid).items()}
        for p in profilers:
            p.send_signal(signal.SIGINT)  # py-spy writes its file on ^C
            p.wait(timeout=60)
        # The no-op route again after the rush: the mean of the two is less at the mercy of a
        # neighbour on a shared machine than one reading.
        after = run_load("noop", "127.0.0.1", port, args.concurrency, args.noop_seconds)
        noop = {"rps": (before["rps"] + after["rps"]) / 2, "before": before["rps"], "after": after["rps"]}
        check = asyncio.run(_check(url, sku_id, args.stock, rush["accepted"]))
    finally:
        if server is not None:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=60)
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    accepted = len(rush["accepted"])
    # Accepted orders per second while the stock lasted (the rush goes on past it: late buyers get 409).
    orders_per_s = accepted / rush["selling"]
    lat = sorted(rush["latencies"])
    p50 = statistics.median(lat) * 1000
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
    ratio = orders_per_s / noop["rps"]
    print(
        f"no-op route:        {noop['rps']:9.0f} req/s (before {noop['before']:.0f}, after {noop['after']:.0f})"
    )
    print(
        f"orders accepted:    {accepted} of {len(jobs)} attempts ({rush['codes']}) in {rush['elapsed']:.2f} s"
    )
    print(f"orders/s:           {orders_per_s:9.0f}   ratio to no-op: {ratio:.2f}")
    print(f"latency p50 / p99:  {p50:.1f} ms / {p99:.1f} ms")
    # Per attempt (refusals included): where the two cores went during the rush.
    per = {k: v / len(jobs) * 1000 for k, v in cpu.items()}
    print(f"CPU per attempt:    workers {per['workers']:.3f} ms, PostgreSQL {per['postgres']:.3f} ms, "
          f"load generator {per['load']:.3f} ms, whole machine {per['machine']:.3f} ms")  # fmt: skip
    print(f"sold {check['sold']}, left {check['left']}, conserved: {check['conserved']}, "
          f"oversell {check['oversell']}, lost acks {check['lost_acks']}")  # fmt: skip
    print(json.dumps({
        "orders_per_s": round(orders_per_s, 1), "noop_rps": round(noop["rps"], 1), "ratio": round(ratio, 3),
        "p50_ms": round(p50, 2), "p99_ms": round(p99, 2), "oversell": check["oversell"], "lost_acks": check["lost_acks"],
    }))  # fmt: skip


if __name__ == "__main__":
    main()
