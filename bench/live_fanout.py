"""Live room fan-out over real WebSockets: N viewers in one room, batched frames versus naive.

Starts the real trustlive app under uvicorn (one worker, SQLite in a temporary directory, no
Redis) with a live session on air, connects N viewers to its room from separate load-generator
processes (a lean WebSocket client written here on asyncio), and publishes into the room on a
fixed schedule:

- comments (P2) from signed-in publisher connections over the WebSocket, their send time in the
  text;
- likes (P3) from the same connections;
- state (P0, the flash sale's stock) and purchases (P1) from a small publisher task inside the
  server process (`create_bench_app`, used only by this benchmark), which calls the hub directly
  (real orders would cost the server more than the fan-out being measured), each value carrying
  its publish time.

Every message carries its publish time on the same clock as the viewers, so each viewer measures
latency per class. Then the same run again with `TRUSTLIVE_LIVE_FANOUT=naive` (one frame per
message). Prints, for both, deliveries/s (messages delivered to viewers, each message in a frame
counted), p50/p99 latency per class, drops, server CPU and messages/s accepted into the room, with
ratios, and ends with one JSON line: {"viewers", "msgs_in_per_s", "deliveries_per_s", "p99_ms":
{"state", "purchase", "comment"}, "drops", "naive_deliveries_per_s", "naive_p99_ms"}.

Usage: .venv/bin/python bench/live_fanout.py [--viewers 5000] [--rate 1000] [--seconds 10] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from bench.flash_sale import _free_port, _wait_ready  # noqa: E402  (one way to start a server)

# The mix of one second's messages at --rate 1000 (scaled to --rate): what a busy flash-sale
# room sees. Comments come from the load generators; state and purchases from the server task.
MIX = {"state": 50, "purchase": 100, "comment": 600, "like": 250}
CLASSES = ("state", "purchase", "comment")


# --- a lean WebSocket client: the load generator must not be the bottleneck ------------------
#
# Server frames are unmasked, so a text frame's payload is a slice of what the socket read. All
# viewers of one room receive the same bytes for a frame (it is encoded once per room), so each
# load process decodes a frame once, keyed by its bytes, and every other viewer only looks it up.
# No permessage-deflate is offered. Client frames are masked with a zero key (the RFC asks for an
# unpredictable key against proxy cache poisoning; no proxy here, and servers do not check).


def ws_frame(payload: bytes) -> bytes:
    """A masked (zero key) FIN text frame."""
    n = len(payload)
    if n < 126:
        head = bytes((0x81, 0x80 | n))
    elif n < 65536:
        head = bytes((0x81, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x81, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + b"\x00\x00\x00\x00" + payload


PONG = bytes((0x8A, 0x80)) + b"\x00\x00\x00\x00"
CLOSE = bytes((0x88, 0x82)) + b"\x00\x00\x00\x00" + (1000).to_bytes(2, "big")


class Frames:
    """The distinct server frames one load process has seen, decoded once each."""

    def __init__(self) -> None:
        self.index: dict[bytes, int] = {}
        self.info: list[dict[str, Any]] = []

    def lookup(self, payload: bytes) -> int:
        idx = self.index.get(payload)
        if idx is None:
            if len(self.index) > 4096:
                self.index.clear()  # old frames are never sent again
            idx = self.index[payload] = len(self.info)
            self.info.append(decode_frame(payload))
        return idx


def _bench_ts(value: Any) -> float | None:
    if isinstance(value, dict):
        bt = value.get("bt")
        return float(bt) if isinstance(bt, int | float) else None
    return None


def _comment_ts(item: dict[str, Any]) -> float | None:
    """The publisher wrote its send time (ms) as the comment's first word."""
    try:
        return float(str(item.get("x", "")).partition(" ")[0])
    except ValueError:
        return None


def decode_frame(payload: bytes) -> dict[str, Any]:
    import msgspec

    try:
        msg = msgspec.json.decode(payload)
    except msgspec.DecodeError:
        return {"t": "?", "crc": zlib.crc32(payload), "n": len(payload)}
    t = msg.get("t")
    info: dict[str, Any] = {"t": t, "crc": zlib.crc32(payload), "n": len(payload), "ts": msg.get("ts")}
    if t == "frame":
        s = msg.get("s") or {}
        p = msg.get("p") or []
        c = msg.get("c") or []
        info["deliveries"] = len(s) + len(p) + len(c) + (1 if msg.get("k") else 0)
        info["counts"] = {
            "state": len(s),
            "purchase": len(p),
            "comment": len(c),
            "counter": 1 if msg.get("k") else 0,
        }
        info["pn"] = msg.get("pn") or 0
        info["cn_extra"] = max(0, (msg.get("cn") or len(c)) - len(c))
        bts = {
            "state": [x for x in (_bench_ts(v) for v in s.values()) if x is not None],
            "purchase": [x for x in (_bench_ts(i) for i in p) if x is not None],
            "comment": [x for x in (_comment_ts(i) for i in c) if x is not None],
        }
        info["bt"] = bts
        # A comment's "ts" is when the server accepted it: its send-to-accept time, apart.
        info["ingest"] = [
            i["ts"] - bt
            for i in c
            if isinstance(i.get("ts"), int | float) and (bt := _comment_ts(i)) is not None
        ]
        info["likes"] = (msg.get("k") or {}).get("likes")
    elif t == "snapshot":
        info["likes"] = (msg.get("k") or {}).get("likes")
    elif t in ("error", "bye"):
        info["code"] = msg.get("code")
    return info


class Load:
    """One load process's shared state: frames seen and every (viewer, frame, time) receipt."""

    def __init__(self) -> None:
        self.frames = Frames()
        self.recording = False
        self.rec_viewer: list[int] = []
        self.rec_frame: list[int] = []
        self.rec_time: list[float] = []
        self.acks = 0
        self.errors: dict[str, int] = {}
        self.byes: dict[str, int] = {}
        self.closed = 0


class Viewer(asyncio.Protocol):
    def __init__(self, load: Load, vid: int, request: bytes, ready: asyncio.Future[None]) -> None:
        self.load, self.vid, self.request, self.ready = load, vid, request, ready
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.open = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self.request)  # type: ignore[union-attr]

    def connection_lost(self, exc: Exception | None) -> None:
        self.load.closed += 1
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"viewer {self.vid} closed during the handshake"))

    def send(self, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(ws_frame(payload))

    def data_received(self, data: bytes) -> None:
        if self.buf:
            data = self.buf + data
            self.buf = b""
        if not self.open:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.buf = data
                return
            status = data[: data.find(b"\r\n")]
            if b" 101 " not in status + b" ":
                if not self.ready.done():
                    self.ready.set_exception(ConnectionError(f"handshake refused: {status!r}"))
                self.transport.close()  # type: ignore[union-attr]
                return
            self.open = True
            if self.ready.done():  # given up on (past the connect deadline): not a viewer
                self.transport.close()  # type: ignore[union-attr]
                return
            self.ready.set_result(None)
            data = data[end + 4 :]
        load = self.load
        pos, size = 0, len(data)
        while size - pos >= 2:
            b1 = data[pos + 1] & 0x7F
            if b1 < 126:
                start, length = pos + 2, b1
            elif b1 == 126:
                if size - pos < 4:
                    break
                start, length = pos + 4, int.from_bytes(data[pos + 2 : pos + 4], "big")
            else:
                if size - pos < 10:
                    break
                start, length = pos + 10, int.from_bytes(data[pos + 2 : pos + 10], "big")
            end = start + length
            if end > size:
                break
            op = data[pos] & 0x0F
            pos = end
            if op == 1:
                idx = load.frames.lookup(data[start:end])
                if load.recording:
                    load.rec_viewer.append(self.vid)
                    load.rec_frame.append(idx)
                    load.rec_time.append(time.time())
                else:
                    self.other(idx)
            elif op == 9:
                self.transport.write(PONG)  # type: ignore[union-attr]
            elif op == 8:
                self.transport.close()  # type: ignore[union-attr]
                return
        if pos < size:
            self.buf = data[pos:]

    def other(self, idx: int) -> None:
        """Frames outside the window: only errors, acks and byes are counted."""
        info = self.load.frames.info[idx]
        t = info["t"]
        if t == "ack":
            self.load.acks += 1
        elif t == "error":
            self.load.errors[info["code"]] = self.load.errors.get(info["code"], 0) + 1
        elif t == "bye":
            self.load.byes[info["code"]] = self.load.byes.get(info["code"], 0) + 1


def handshake(host: str, port: int, path: str, token: str | None) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    head = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: http://{host}:{port}\r\n"
    )
    if token:
        head += f"Authorization: Bearer {token}\r\n"
    return (head + "\r\n").encode()


async def connect_all(load: Load, host: str, port: int, path: str, vids: list[int], tokens: dict[int, str],
                      deadline: float, parallel: int = 200) -> dict[int, Viewer]:  # fmt: skip
    """Connect the viewers, ``parallel`` handshakes at a time, until ``deadline`` (time.time());
    those not connected by then are given up. Returns the connected ones."""
    loop = asyncio.get_running_loop()
    viewers: dict[int, Viewer] = {}
    gate = asyncio.Semaphore(parallel)

    async def one(vid: int) -> None:
        async with gate:
            for attempt in range(5):
                if time.time() >= deadline:
                    return
                ready: asyncio.Future[None] = loop.create_future()
                request = handshake(host, port, path, tokens.get(vid))
                transport = None
                try:
                    transport, proto = await loop.create_connection(
                        lambda r=ready, q=request: Viewer(load, vid, q, r), host, port
                    )
                    await asyncio.wait_for(ready, max(0.1, deadline - time.time()))
                    viewers[vid] = proto
                    return
                except (OSError, TimeoutError):
                    if transport is not None:
                        transport.close()
                    await asyncio.sleep(0.2 * (attempt + 1))

    await asyncio.gather(*(one(v) for v in vids))
    return viewers


# --- one load process ----------------------------------------------------------------------


def _percentiles(hist: dict[int, int], qs: tuple[float, ...]) -> list[float | None]:
    total = sum(hist.values())
    if not total:
        return [None for _ in qs]
    out, seen, keys = [], 0, sorted(hist)
    targets = [q * total for q in qs]
    i = 0
    for k in keys:
        seen += hist[k]
        while i < len(targets) and seen >= targets[i]:
            out.append(float(k))
            i += 1
    while len(out) < len(qs):
        out.append(float(keys[-1]))
    return out


async def _load_main(job: dict[str, Any], control: Any, out: Any) -> None:
    load = Load()
    host, port, path = job["host"], job["port"], job["path"]
    tokens = {int(k): v for k, v in job["tokens"].items()}
    viewers = await connect_all(load, host, port, path, job["vids"], tokens, job["connect_deadline"])
    publishers = [viewers[v] for v in sorted(tokens) if v in viewers]
    out.put({"ready": len(viewers)})
    schedule = await asyncio.get_running_loop().run_in_executor(None, control.get)
    # Publish comments and likes on a fixed schedule (catching up after a late wake-up), from
    # pub_start to t1; record receipts from t0 to t1 + tail (frames are then kept by their
    # server timestamp).
    t_pub, t0, t1, tail = schedule["pub_start"], schedule["t0"], schedule["t1"], schedule["tail"]
    comment_rate, like_rate = job["comment_rate"], job["like_rate"]
    sent = {"comment": 0, "like": 0}
    cpu0 = time.process_time()
    n = 0
    while (now := time.time()) < t1:
        if now >= t0 and not load.recording:
            load.recording = True
            cpu0 = time.process_time()
        if now >= t_pub and publishers:
            elapsed = now - t_pub
            for _ in range(int(elapsed * comment_rate) - sent["comment"]):
                pub = publishers[n % len(publishers)]
                n += 1
                text = f"{time.time() * 1000:.1f} bench comment {n}"
                pub.send(json.dumps({"t": "comment", "x": text, "ref": str(n)}).encode())
                sent["comment"] += 1
            for _ in range(int(elapsed * like_rate) - sent["like"]):
                pub = publishers[n % len(publishers)]
                n += 1
                pub.send(b'{"t":"like","n":1}')
                sent["like"] += 1
        await asyncio.sleep(0.005)
    await asyncio.sleep(max(0.0, t1 + tail - time.time()))
    load.recording = False
    cpu = time.process_time() - cpu0
    # Publishers' acks/errors arrived during the window too: count them from the receipts.
    frames = load.frames.info
    for f in load.rec_frame:
        t = frames[f]["t"]
        if t == "ack":
            load.acks += 1
        elif t == "error":
            load.errors[frames[f]["code"]] = load.errors.get(frames[f]["code"], 0) + 1
        elif t == "bye":
            load.byes[frames[f]["code"]] = load.byes.get(frames[f]["code"], 0) + 1
    # Per viewer: the frames it received in the window (by server timestamp); per class: a
    # latency histogram in ms over every delivery.
    t0ms, t1ms = t0 * 1000, t1 * 1000
    hist: dict[str, dict[int, int]] = {c: {} for c in (*CLASSES, "frame")}
    per_viewer: dict[int, int] = {}
    seen: dict[tuple[int, int], dict[str, Any]] = {}
    deliveries = snapshots = 0
    for v, f, tr in zip(load.rec_viewer, load.rec_frame, load.rec_time, strict=True):
        info = frames[f]
        if info["t"] == "snapshot":
            snapshots += 1
            continue
        if info["t"] != "frame" or not (t0ms <= (info["ts"] or 0) < t1ms):
            continue
        per_viewer[v] = per_viewer.get(v, 0) + 1
        seen.setdefault((info["crc"], info["n"]), info)
        deliveries += info["deliveries"]
        trms = tr * 1000
        h = hist["frame"]
        k = int(trms - info["ts"])
        h[k] = h.get(k, 0) + 1
        for cls, bts in info["bt"].items():
            h = hist[cls]
            for bt in bts:
                k = int(trms - bt)
                h[k] = h.get(k, 0) + 1
    h = hist["comment_accept"] = {}
    for info in seen.values():
        for ms in info["ingest"]:
            h[int(ms)] = h.get(int(ms), 0) + 1
    out.put({
        "viewers": len(viewers), "cpu": cpu, "deliveries": deliveries, "snapshots": snapshots,
        "per_viewer": per_viewer, "hist": hist, "sent": sent, "acks": load.acks, "errors": load.errors,
        "byes": load.byes, "closed": load.closed, "vids": list(viewers),
        "frames": {f"{k[0]}:{k[1]}": {"counts": i["counts"], "pn": i["pn"], "cn_extra": i["cn_extra"],
                                      "likes": i["likes"], "ts": i["ts"]} for k, i in seen.items()},
    })  # fmt: skip
    for viewer in viewers.values():
        if viewer.transport is not None and not viewer.transport.is_closing():
            viewer.transport.write(CLOSE)
            viewer.transport.close()
    await asyncio.sleep(0.2)


def _load_process(job: dict[str, Any], control: Any, out: Any) -> None:
    try:
        import uvloop

        uvloop.run(_load_main(job, control, out))
    except ImportError:
        asyncio.run(_load_main(job, control, out))


# --- the server side: the real app plus, for this benchmark only, a P0/P1 publisher ----------


def create_bench_app() -> Any:
    """The trustlive app (``uvicorn bench.live_fanout:create_bench_app --factory``) with a task
    that publishes P0 state and P1 purchases into the room through the hub, on the schedule
    that the benchmark writes to ``$TRUSTLIVE_BENCH_CONTROL/start.json``; it writes what it
    published to ``published.json``. With ``TRUSTLIVE_BENCH_CPROFILE=FILE`` the server process
    is profiled (cProfile) during the measured window."""
    from trustlive.app import create_app

    app = create_app()
    control = Path(os.environ["TRUSTLIVE_BENCH_CONTROL"])
    tasks: list[asyncio.Task[None]] = []

    async def start(app: Any) -> None:
        tasks.append(asyncio.create_task(_bench_publisher(app, control)))

    async def stop(app: Any) -> None:
        for task in tasks:
            task.cancel()

    app.on_startup.append(start)
    app.on_shutdown.insert(0, stop)
    return app


async def _bench_publisher(app: Any, control: Path) -> None:
    while True:  # the benchmark writes the schedule once its viewers are connected
        if (control / "start.json").exists():
            break
        await asyncio.sleep(0.05)
    job = json.loads((control / "start.json").read_text())
    hub, room = app.state.live_hub, job["room"]
    t_pub, t0, t1 = job["pub_start"], job["t0"], job["t1"]
    state_rate, purchase_rate = job["state_rate"], job["purchase_rate"]
    # What the room takes in, counted where the domain hands it to the hub (the hub's own
    # methods, wrapped on this instance): acks and counters can lag far behind under load.
    taken = {"state": 0, "purchase": 0, "comment": 0, "like": 0}
    comment, count = hub.comment, hub.count

    def counted_comment(room_id: int, item: dict[str, Any]) -> None:
        taken["comment"] += 1
        comment(room_id, item)

    def counted_count(room_id: int, name: str, n: int = 1) -> None:
        if name == "likes":
            taken["like"] += 1
        count(room_id, name, n)

    hub.comment, hub.count = counted_comment, counted_count
    profile_to = os.environ.get("TRUSTLIVE_BENCH_CPROFILE")
    profiler = None
    marks: dict[str, Any] = {}
    sent_s = sent_p = 0
    while (now := time.time()) < t1:
        if "t0" not in marks and now >= t0:
            marks["t0"] = {"taken": dict(taken), "room": _room_stats(hub, room), "at": now}
            if profile_to:
                import cProfile

                profiler = cProfile.Profile(time.thread_time)  # the event loop thread's CPU only
                profiler.enable()
        if now >= t_pub:
            elapsed = now - t_pub
            for _ in range(int(elapsed * state_rate) - sent_s):
                sent_s += 1  # the flash sale's stock left, latest wins
                taken["state"] += 1
                hub.set_state(room, "stock", {"left": 1_000_000 - sent_s, "bt": time.time() * 1000})
            for _ in range(int(elapsed * purchase_rate) - sent_p):
                sent_p += 1
                taken["purchase"] += 1
                ms = time.time() * 1000
                hub.purchase(room, {"id": sent_p, "u": f"粉丝{sent_p % 997}", "title": "和田玉平安扣",
                                    "q": 1, "ts": int(ms), "bt": ms})  # fmt: skip
        await asyncio.sleep(0.005)
    marks["t1"] = {"taken": dict(taken), "room": _room_stats(hub, room), "at": time.time()}
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile_to)
    (control / "published.json").write_text(json.dumps(marks))


def _room_stats(hub: Any, room_id: int) -> dict[str, Any]:
    """The hub's counters for the room (frames, deliveries, fan-out seconds), where it has them."""
    room = getattr(hub, "rooms", {}).get(room_id)
    stats = getattr(room, "stats", None)
    return stats() if callable(stats) else {}


# --- set-up --------------------------------------------------------------------------------


async def _seed(url: str, publishers: int) -> tuple[int, list[str]]:
    """A creator with a live session on air, and signed-in publishers (API tokens)."""
    import datetime as dt

    from trustlive.accounts import service as accounts
    from trustlive.accounts.service import Principal
    from trustlive.config import load_settings
    from trustlive.db import create_engine, create_sessionmaker, transaction
    from trustlive.live import service as live
    from trustlive.live.schemas import SessionIn

    settings = load_settings()
    engine = create_engine(url)
    sm = create_sessionmaker(engine)
    hashed = await accounts.hash_password("bench-password")
    try:
        async with transaction(sm) as s:
            user = await accounts.create_user(s, username="creator1", password_hash=hashed, roles=["creator"])
        creator = Principal(user.id, "creator1", "creator1", frozenset({"creator"}))
        async with transaction(sm) as s:
            when = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
            session = await live.create_session(
                s, creator, SessionIn(title="和田玉直播鉴定", scheduled_at=when), None, settings
            )
            await live.start_session(s, creator, session.id, settings)
        tokens = []
        async with transaction(sm) as s:
            for i in range(publishers):
                fan = await accounts.create_user(s, username=f"fan{i:04d}", password_hash=hashed)
                token, _ = await accounts.open_session(s, fan, kind="api", days=1)
                tokens.append(token)
        return session.id, tokens
    finally:
        await engine.dispose()


def _cpu_of(pids: list[int]) -> tuple[float, float]:
    """CPU seconds (user, system) so far of these processes and their children."""
    tick = os.sysconf("SC_CLK_TCK")
    user = system = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            user += int(fields[11]) / tick
            system += int(fields[12]) / tick
            kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            u, s = _cpu_of([int(k) for k in kids])
            user, system = user + u, system + s
    return user, system


def _machine_busy() -> float:
    tick = os.sysconf("SC_CLK_TCK")
    cpu = Path("/proc/stat").read_text().split("\n")[0].split()[1:]
    return (sum(map(int, cpu)) - int(cpu[3]) - int(cpu[4])) / tick  # all but idle and iowait


# --- one measured run: a fresh server process, the load processes, the figures ---------------


def run_once(args: argparse.Namespace, url: str, var_dir: Path, room: int, tokens: list[str], fanout: str) -> dict[str, Any]:  # fmt: skip
    from trustlive.live.wire import UVICORN_WS

    control = Path(tempfile.mkdtemp(prefix=f"control-{fanout}-", dir=var_dir))
    port = _free_port()
    env = {**os.environ, "TRUSTLIVE_DATABASE_URL": url, "TRUSTLIVE_VAR_DIR": str(var_dir),
           "TRUSTLIVE_TASK_INTERVAL_SECONDS": "0", "TRUSTLIVE_LIVE_FANOUT": fanout,
           "TRUSTLIVE_LIVE_COMMENT_RATE": args.comment_rate_limit, "TRUSTLIVE_BENCH_CONTROL": str(control)}  # fmt: skip
    env.pop("TRUSTLIVE_REDIS_URL", None)
    if args.profile and fanout == "batched":
        env["TRUSTLIVE_BENCH_CPROFILE"] = args.profile
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", os.environ.get("TRUSTLIVE_BENCH_APP", "bench.live_fanout:create_bench_app"), "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", "--no-access-log", "--ws", UVICORN_WS,
         "--ws-per-message-deflate", "false"],
        env=env, cwd=ROOT,
    )  # fmt: skip
    procs: list[Any] = []
    try:
        _wait_ready(port, server)
        ctx = mp.get_context("spawn")
        out = ctx.Queue()
        scale = args.rate / sum(MIX.values())
        vids = list(range(args.viewers))
        # Publishers are the first viewers, spread over the load processes.
        pub_of = {v: tokens[v] for v in range(min(len(tokens), args.viewers))}
        controls = []
        for i in range(args.clients):
            mine = vids[i :: args.clients]
            job = {"host": "127.0.0.1", "port": port, "path": f"/api/v1/live/sessions/{room}/ws", "vids": mine,
                   "tokens": {v: pub_of[v] for v in mine if v in pub_of}, "connect_deadline": time.time() + args.connect_s,
                   "comment_rate": MIX["comment"] * scale / args.clients, "like_rate": MIX["like"] * scale / args.clients}  # fmt: skip
            q = ctx.Queue()
            proc = ctx.Process(target=_load_process, args=(job, q, out))
            proc.start()
            procs.append(proc)
            controls.append(q)
        started = time.time()
        connected = sum(out.get(timeout=300)["ready"] for _ in procs)
        print(
            f"  [{fanout}] {connected} of {args.viewers} viewers connected in {time.time() - started:.1f} s",
            flush=True,
        )
        now = time.time() + 0.5
        schedule = {"pub_start": now, "t0": now + args.warm_up, "t1": now + args.warm_up + args.seconds, "tail": 1.0,
                    "room": room, "state_rate": MIX["state"] * scale, "purchase_rate": MIX["purchase"] * scale}  # fmt: skip
        (control / "start.json").write_text(json.dumps(schedule))
        for q in controls:
            q.put(schedule)
        time.sleep(max(0.0, schedule["t0"] - time.time()))
        cpu0, busy0 = _cpu_of([server.pid]), _machine_busy()
        load0 = _cpu_of([p.pid for p in procs])
        time.sleep(max(0.0, schedule["t1"] - time.time()))
        cpu1, busy1 = _cpu_of([server.pid]), _machine_busy()
        load1 = _cpu_of([p.pid for p in procs])
        results = [out.get(timeout=600) for _ in procs]
        for proc in procs:
            proc.join(timeout=30)
        published: dict[str, Any] = {}
        for _ in range(100):
            if (control / "published.json").exists():
                published = json.loads((control / "published.json").read_text())
                break
            time.sleep(0.1)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return summarise(args, results, published, schedule, {
        "server": sum(cpu1) - sum(cpu0), "server_sys": cpu1[1] - cpu0[1], "load": sum(load1) - sum(load0),
        "load_sys": load1[1] - load0[1], "machine": busy1 - busy0})  # fmt: skip


def summarise(args: argparse.Namespace, results: list[dict[str, Any]], published: dict[str, Any],
              schedule: dict[str, Any], cpu: dict[str, float]) -> dict[str, Any]:  # fmt: skip
    seconds = args.seconds
    hist: dict[str, dict[int, int]] = {}
    frames: dict[str, dict[str, Any]] = {}
    per_viewer: dict[int, int] = {}
    errors: dict[str, int] = {}
    byes: dict[str, int] = {}
    for r in results:
        for cls, h in r["hist"].items():
            merged = hist.setdefault(cls, {})
            for k, n in h.items():
                merged[int(k)] = merged.get(int(k), 0) + n
        frames.update(r["frames"])
        per_viewer.update(r["per_viewer"])
        for k, n in r["errors"].items():
            errors[k] = errors.get(k, 0) + n
        for k, n in r["byes"].items():
            byes[k] = byes.get(k, 0) + n
    viewers = sum(r["viewers"] for r in results)
    deliveries = sum(r["deliveries"] for r in results)
    # Frames the room sent in the window (seen by at least one viewer); a viewer that did not
    # get one skipped it. Viewers that got nothing at all (disconnected) are counted apart.
    room_frames = len(frames)
    got = [per_viewer.get(v, 0) for r in results for v in r["vids"]]
    skipped = sum(room_frames - n for n in got if n)
    silent = sum(1 for n in got if not n)
    sampled_away = sum(f["cn_extra"] for f in frames.values())
    merged_away = sum(f["pn"] for f in frames.values())
    state_shown = sum(f["counts"]["state"] for f in frames.values())
    sent = {k: sum(r["sent"][k] for r in results) for k in ("comment", "like")}
    acks = sum(r["acks"] for r in results)
    window = seconds + args.warm_up  # the publishers ran from pub_start to t1
    # Taken into the room during the window, counted in the server where the domain hands
    # messages to the hub (comments that passed the checks, likes) or the bench task publishes.
    t0, t1 = published.get("t0", {}), published.get("t1", {})
    span = max(1e-9, t1.get("at", 1.0) - t0.get("at", 0.0))
    taken = {k: (t1.get("taken", {}).get(k, 0) - t0.get("taken", {}).get(k, 0)) / span
             for k in ("comment", "like", "state", "purchase")}  # fmt: skip
    hub0, hub1 = t0.get("room") or {}, t1.get("room") or {}
    hub = {k: hub1[k] - hub0.get(k, 0) for k in ("frames", "deliveries", "fanout_s") if k in hub1}
    lat = {cls: _percentiles(hist.get(cls, {}), (0.5, 0.99)) for cls in (*CLASSES, "frame", "comment_accept")}
    return {
        "viewers": viewers, "room_frames_per_s": room_frames / seconds,
        "comment_frames_per_s": sum(1 for f in frames.values() if f["counts"]["comment"]) / seconds, "deliveries_per_s": deliveries / seconds,
        "msgs_in_per_s": sum(taken.values()), "taken": taken, "comments_acked_per_s": acks / window,
        "comments_sent_per_s": sent["comment"] / window, "likes_sent_per_s": sent["like"] / window,
        "errors": errors, "byes": byes, "hub": {k: v / span for k, v in hub.items()},
        "lat": lat, "skipped_frames": skipped, "viewers_without_frames": silent,
        "comments_sampled_away_per_s": sampled_away / seconds, "purchases_merged_per_s": merged_away / seconds,
        "state_values_shown_per_s": state_shown / seconds, "snapshots": sum(r["snapshots"] for r in results),
        "server_cpu": cpu["server"] / seconds, "server_sys": cpu["server_sys"] / seconds, "load_sys": cpu["load_sys"] / seconds, "load_cpu": cpu["load"] / seconds, "machine_cpu": cpu["machine"] / seconds,
        "load_cpu_us_per_frame": sum(r["cpu"] for r in results) / max(1, sum(per_viewer.values())) * 1e6,
    }  # fmt: skip


def _fmt(x: float | None, unit: str = "") -> str:
    return "-" if x is None else f"{x:,.0f}{unit}"


def report(args: argparse.Namespace, batched: dict[str, Any], naive: dict[str, Any] | None) -> None:
    runs = [("batched", batched)] + ([("naive", naive)] if naive else [])
    print(f"\n{batched['viewers']} viewers, {args.rate} msgs/s scheduled, {args.seconds:.0f} s measured "
          f"(after {args.warm_up:.0f} s warm-up), {args.clients} load process(es)")  # fmt: skip
    rows = [
        ("viewers connected", lambda r: _fmt(r["viewers"])),
        ("messages in /s (accepted)", lambda r: _fmt(r["msgs_in_per_s"])),
        ("  comments / likes / state / purchases", lambda r: " / ".join(f"{r['taken'][k]:.0f}" for k in
                                                                        ("comment", "like", "state", "purchase"))),
        ("comments sent / acked /s", lambda r: f"{r['comments_sent_per_s']:.0f} / {r['comments_acked_per_s']:.0f}"),
        ("room frames /s (seen by viewers)", lambda r: f"{r['room_frames_per_s']:.1f}"),
        ("  of which with comments", lambda r: f"{r['comment_frames_per_s']:.1f}"),
        ("hub: frames /s, writes /s", lambda r: f"{r['hub'].get('frames', 0):.1f}, {_fmt(r['hub'].get('deliveries'))}"),
        ("hub: fan-out busy (share of a core)", lambda r: f"{r['hub'].get('fanout_s', 0):.2f}" if r["hub"] else "-"),
        ("deliveries /s", lambda r: _fmt(r["deliveries_per_s"])),
        *[(f"p50 / p99 {cls} ms", lambda r, c=cls: f"{_fmt(r['lat'][c][0])} / {_fmt(r['lat'][c][1])}")
          for cls in (*CLASSES, "comment_accept", "frame")],
        ("frames skipped by viewers", lambda r: _fmt(r["skipped_frames"])),
        ("viewers that got no frame", lambda r: _fmt(r["viewers_without_frames"])),
        ("snapshots (catch-up) received", lambda r: _fmt(r["snapshots"])),
        ("comments sampled away /s", lambda r: _fmt(r["comments_sampled_away_per_s"])),
        ("purchases merged into pn /s", lambda r: _fmt(r["purchases_merged_per_s"])),
        ("bye / error frames", lambda r: f"{r['byes'] or '-'} / {r['errors'] or '-'}"),
        ("server CPU (cores; of which kernel)", lambda r: f"{r['server_cpu']:.2f} ({r['server_sys']:.2f})"),
        ("load generators CPU (cores; kernel)", lambda r: f"{r['load_cpu']:.2f} ({r['load_sys']:.2f})"),
        ("load generators CPU per frame received", lambda r: f"{r['load_cpu_us_per_frame']:.1f} us"),
        ("whole machine CPU (cores)", lambda r: f"{r['machine_cpu']:.2f}"),
        ("  of which everything else", lambda r: f"{r['machine_cpu'] - r['server_cpu'] - r['load_cpu']:.2f}"),
    ]  # fmt: skip
    print(f"{'':40}" + "".join(f"{name:>24}" for name, _ in runs))
    for label, get in rows:
        print(f"{label:40}" + "".join(f"{get(r):>24}" for _, r in runs))
    if naive:

        def ratio(a: float | None, b: float | None) -> str:
            return f"{a / b:.1f}x" if a and b else "-"

        print(f"batched / naive: deliveries/s {ratio(batched['deliveries_per_s'], naive['deliveries_per_s'])}, "
              f"messages in/s {ratio(batched['msgs_in_per_s'], naive['msgs_in_per_s'])}, "
              f"deliveries per server CPU second {ratio(batched['deliveries_per_s'] / max(batched['server_cpu'], 1e-9), naive['deliveries_per_s'] / max(naive['server_cpu'], 1e-9))}; "
              f"naive / batched p99: " + ", ".join(f"{c} {ratio(naive['lat'][c][1], batched['lat'][c][1])}" for c in CLASSES))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=1000, help="messages/s published into the room")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window")
    parser.add_argument("--warm-up", type=float, default=2.0, help="publishing before the window")
    parser.add_argument("--clients", type=int, default=1, help="load-generator processes")
    parser.add_argument("--publishers", type=int, default=100, help="signed-in viewers that comment and like")
    # Comments come from --publishers users, far more per user than the default limit (3 per
    # 6 s): the benchmark raises the per-user rate limit instead of signing in 1,200 users.
    parser.add_argument(
        "--comment-rate-limit", default="1000/1s", help="TRUSTLIVE_LIVE_COMMENT_RATE for the run"
    )
    # Every join is an "entries" message: naive sends it at once as a frame to everybody already
    # in the room, so N joins cost N^2/2 sends and 5,000 viewers may never all get in.
    parser.add_argument("--connect-s", type=float, default=60.0, help="time allowed to connect the viewers")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive baseline")
    parser.add_argument("--profile", help="cProfile the batched server during the window into this file")
    parser.add_argument("--quick", action="store_true", help="smoke run: 300 viewers, 5 s")
    args = parser.parse_args()
    if args.quick:
        args.viewers, args.seconds, args.warm_up = min(args.viewers, 300), 5.0, 1.0
    args.publishers = min(args.publishers, args.viewers)

    from trustlive import migrate

    with tempfile.TemporaryDirectory(prefix="trustlive-live-bench-") as tmp:
        var_dir = Path(tmp)
        url = f"sqlite+aiosqlite:///{var_dir / 'bench.db'}"
        os.environ["TRUSTLIVE_VAR_DIR"] = str(var_dir)
        migrate.upgrade(url)
        room, tokens = asyncio.run(_seed(url, args.publishers))
        load = os.getloadavg()
        print(f"room {room}, {args.viewers} viewers ({args.publishers} signed in publishing), load average "
              f"{load[0]:.2f} before the run", flush=True)  # fmt: skip
        batched = run_once(args, url, var_dir, room, tokens, "batched")
        naive = None if args.no_naive else run_once(args, url, var_dir, room, tokens, "naive")
    report(args, batched, naive)
    print(json.dumps({
        "viewers": batched["viewers"], "msgs_in_per_s": round(batched["msgs_in_per_s"], 1),
        "deliveries_per_s": round(batched["deliveries_per_s"]),
        "p99_ms": {c: batched["lat"][c][1] for c in CLASSES},
        "drops": batched["skipped_frames"],
        "naive_deliveries_per_s": round(naive["deliveries_per_s"]) if naive else None,
        "naive_p99_ms": {c: naive["lat"][c][1] for c in CLASSES} if naive else None,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
