"""The hub without Redis: what each viewer receives, for every message class, under load, when a
viewer is slow, when it resumes, when it misbehaves, and in the naive (baseline) mode."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.live.fakes import FakeSocket, FastSocket, Handler, until
from trustlive.live import hub as hub_module
from trustlive.live import protocol as P
from trustlive.live.hub import Hub, HubConfig, sample_comments

FAST = HubConfig(tick_ms=20, state_tick_ms=10, hello_wait_s=0.01, comment_cap=5, purchase_cap=3)


def run(body: Callable[[Hub, Handler], Awaitable[None]], config: HubConfig = FAST) -> None:
    async def main() -> None:
        hub = Hub(config)
        await hub.start()
        try:
            await body(hub, Handler())
        finally:
            await hub.stop()

    asyncio.run(main())


async def join(hub: Hub, handler: Handler, principal: Any = "alice", socket: Any = None, room: int = 1,
               hello: Any = None) -> tuple[Any, asyncio.Task[None]]:  # fmt: skip
    socket = socket or FakeSocket()
    if hello is not None:
        socket.say(hello)
    task = asyncio.create_task(hub.serve(socket, room, principal, handler))
    await until(lambda: socket.of("snapshot") or socket.of("frame") or socket.of("bye"))
    return socket, task


def merged(frames: list[dict[str, Any]]) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for frame in frames:
        state.update(frame.get("s", {}))
    return state


def test_every_message_class_reaches_every_viewer_in_one_frame() -> None:
    async def body(hub: Hub, handler: Handler) -> None:
        hub.set_state(1, "pin", {"product": 7})
        a, _ = await join(hub, handler, "alice")
        b, _ = await join(hub, handler, None, socket=FastSocket())
        assert a.of("snapshot")[0]["s"] == {"pin": {"product": 7}}
        assert b.of("snapshot")[0]["s"] == {"pin": {"product": 7}}
        hub.set_state(1, "stock", {"7": 3})
        hub.purchase(1, {"id": 1, "u": "bo", "title": "tea", "q": 1, "ts": 1})
        hub.comment(1, {"id": 9, "uid": 2, "u": "cy", "x": "hello", "ts": 1})
        hub.count(1, "likes", 4)
        await until(lambda: any("c" in f for f in a.of("frame")) and any("c" in f for f in b.of("frame")))
        for socket in (a, b):
            frames = socket.of("frame")
            assert merged(frames)["stock"] == {"7": 3}
            assert [p["title"] for f in frames for p in f.get("p", [])] == ["tea"]
            assert [c["x"] for f in frames for c in f.get("c", [])] == ["hello"]
            assert frames[-1]["k"] == {"likes": 4} or any(f.get("k") == {"likes": 4} for f in frames)
            assert all(f["e"] == socket.of("snapshot")[0]["e"] for f in frames)
        assert hub.snapshot_state(1)["stock"] == {"7": 3}
        assert a.of("frame") == b.of("frame")  # the same bytes for everybody

    run(body)


def test_state_merges_latest_wins_purchases_cap_and_comments_are_sampled() -> None:
    async def body(hub: Hub, handler: Handler) -> None:
        a, _ = await join(hub, handler)
        room = hub.rooms[1]
        room.task.cancel()  # drive the ticks by hand: everything below lands in ONE frame
        for i in range(50):
            hub.set_state(1, "stock", {"7": 50 - i})
            hub.purchase(1, {"id": i, "u": f"u{i}", "title": "tea", "q": 1, "ts": i})
        for i in range(200):
            hub.comment(1, {"id": i, "uid": i, "u": "x", "x": f"c{i}", "ts": i})
        hub.comment(
            1, {"id": 999, "uid": 1, "u": "host", "x": "from the creator", "ts": 0, "badge": "creator"}
        )
        hub.comment(1, {"id": 1000, "uid": 1, "u": "mod", "x": "pinned", "ts": 0, "pri": True})
        frame = room.build_frame(asyncio.get_running_loop().time() + 1)
        assert frame is not None
        import json

        f = json.loads(frame.payload)
        assert f["s"] == {"stock": {"7": 1}}
        assert [p["id"] for p in f["p"]] == [47, 48, 49] and f["pn"] == 47
        assert f["cn"] == 202 and len(f["c"]) == 5
        texts = [c["x"] for c in f["c"]]
        assert "from the creator" in texts and "pinned" in texts
        assert all("pri" not in c for c in f["c"])
        assert f["o"] == 100  # 50 state + 50 purchase history entries
        assert room.build_frame(asyncio.get_running_loop().time() + 2) is None  # nothing left

    run(body)


def test_sampling_keeps_an_even_spread_in_arrival_order() -> None:
    items = [{"id": i} for i in range(100)]
    picked = [c["id"] for c in sample_comments(items, 10)]
    assert picked == list(range(0, 100, 10))


def test_a_frame_is_encoded_once_per_tick_not_per_viewer(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = hub_module.P.encode

    def counting(frame: Any) -> bytes:
        calls.append(frame.get("t") if isinstance(frame, dict) else None)
        return real(frame)

    async def body(hub: Hub, handler: Handler) -> None:
        sockets = [(await join(hub, handler, f"v{i}"))[0] for i in range(50)]
        monkeypatch.setattr(hub_module.P, "encode", counting)
        hub.set_state(1, "pin", 1)
        await until(lambda: all(s.of("frame") for s in sockets))
        assert calls.count("frame") == 1

    run(body)


def test_a_slow_viewer_skips_then_gets_a_snapshot_while_a_fast_one_keeps_up() -> None:
    async def body(hub: Hub, handler: Handler) -> None:
        fast, _ = await join(hub, handler, "fast")
        slow, _ = await join(hub, handler, "slow")
        slow.hold()
        loop = asyncio.get_running_loop()
        lateness = []
        for i in range(60):  # far more frames than the slow viewer's queue (32)
            sent = loop.time()
            hub.set_state(1, "n", i)
            await until(lambda i=i: merged(fast.of("frame")).get("n") == i)
            lateness.append(loop.time() - sent)
        assert max(lateness) < 0.2  # the fast viewer is never held up by the slow one
        viewer = next(v for v in hub.rooms[1].viewers if v.principal == "slow")
        assert viewer.stale and viewer.skipped > 0
        before = len(slow.frames)
        slow.release()
        hub.set_state(1, "n", 60)
        await until(lambda: slow.of("snapshot")[-1:] and slow.of("snapshot")[-1]["s"].get("n") in (59, 60)
                    and len(slow.of("snapshot")) == 2)  # fmt: skip
        assert len(slow.frames) - before < 40  # skipped frames were never sent
        hub.set_state(1, "n", 61)
        await until(lambda: merged(slow.of("frame")).get("n") == 61)  # back to live frames

    run(body)


def test_a_viewer_lagging_past_the_limit_gets_bye_too_slow_and_the_room_goes_on() -> None:
    config = HubConfig(tick_ms=20, state_tick_ms=10, hello_wait_s=0.01, slow_limit_s=0.2)

    async def body(hub: Hub, handler: Handler) -> None:
        fast, _ = await join(hub, handler, "fast", socket=FastSocket())
        slow, slow_task = await join(hub, handler, "slow", socket=FastSocket())
        slow.proto.transport.buffered = 10_000_000  # the peer stopped reading
        for i in range(40):
            hub.set_state(1, "n", i)
            await asyncio.sleep(0.012)
        await until(lambda: slow.of("bye"))
        assert slow.of("bye")[0]["code"] == P.TOO_SLOW
        assert slow.wire_frames[-1]["t"] == "<close>"
        await asyncio.wait_for(slow_task, 1)
        assert "slow" in handler.left and hub.viewer_count(1) == 1
        hub.set_state(1, "n", 99)
        await until(lambda: merged(fast.of("frame")).get("n") == 99)

    run(body, config)


def test_a_quiet_room_still_resnapshots_a_drained_viewer() -> None:
    async def body(hub: Hub, handler: Handler) -> None:
        slow, _ = await join(hub, handler, "slow", socket=FastSocket())
        slow.proto.transport.buffered = 10_000_000
        hub.set_state(1, "n", 1)
        await until(lambda: next(iter(hub.rooms[1].viewers)).stale)
        slow.proto.transport.buffered = 0
        await hub.housekeep_once(asyncio.get_running_loop().time())
        assert slow.of("snapshot")[-1]["s"]["n"] == 1 and len(slow.of("snapshot")) == 2

    run(body)


def test_resume_from_history_then_resume_that_falls_back_to_a_snapshot() -> None:
    config = HubConfig(tick_ms=20, state_tick_ms=10, hello_wait_s=0.5, history=10)

    async def body(hub: Hub, handler: Handler) -> None:
        a, task = await join(hub, handler, "a")
        hub.set_state(1, "n", 1)
        await until(lambda: a.of("frame"))
        last = a.of("frame")[-1]
        a.leave()
        await task
        hub.set_state(1, "n", 2)
        hub.purchase(1, {"id": 5, "u": "bo", "title": "tea", "q": 1, "ts": 1})
        await asyncio.sleep(0.05)
        b, _ = await join(hub, handler, "a", hello={"t": "hello", "resume": {"e": last["e"], "o": last["o"]}})
        assert not b.of("snapshot")
        assert merged(b.of("frame")) == {"n": 2} and b.of("frame")[0]["p"][0]["id"] == 5
        assert b.of("frame")[-1]["o"] == last["o"] + 2
        c, _ = await join(hub, handler, "a", hello={"t": "hello", "resume": {"e": last["e"] + 1, "o": 1}})
        assert c.of("snapshot")  # another epoch: snapshot
        for i in range(20):  # history holds 10 entries: offset 1 has gone
            hub.set_state(1, "n", 10 + i)
        d, _ = await join(hub, handler, "a", hello={"t": "hello", "resume": {"e": last["e"], "o": last["o"]}})
        assert d.of("snapshot")[0]["s"]["n"] == 29

    run(body, config)


def test_comments_likes_pings_and_refusals() -> None:
    async def body(hub: Hub, handler: Handler) -> None:
        a, _ = await join(hub, handler, "alice")
        anon, _ = await join(hub, handler, None)
        muted, _ = await join(hub, handler, "muted")
        a.say({"t": "comment", "x": "hi\x00 there", "ref": "r1"})
        a.say({"t": "like", "n": 3})
        a.say({"t": "ping"})
        anon.say({"t": "comment", "x": "hello", "ref": "r2"})
        muted.say({"t": "comment", "x": "hello", "ref": "r3"})
        a.say({"t": "comment", "x": "buy spam", "ref": "r4"})
        await until(lambda: a.of("ack") and a.of("pong") and len(a.of("error")) == 1 and anon.of("error")
                    and muted.of("error"))  # fmt: skip
        assert a.of("ack") == [{"t": "ack", "ref": "r1"}]
        assert a.of("error")[0]["code"] == P.BLOCKED_WORD and a.of("error")[0]["ref"] == "r4"
        assert anon.of("error")[0]["code"] == P.SIGN_IN_REQUIRED and anon.of("error")[0]["ref"] == "r2"
        assert muted.of("error")[0]["code"] == P.MUTED
        await until(lambda: [c["x"] for f in anon.of("frame") for c in f.get("c", [])] == ["hi there"]
                    and any(f.get("k", {}).get("likes") == 3 for f in anon.of("frame")))  # fmt: skip
        assert handler.likes == 3

    run(body)


def test_a_closing_refusal_and_a_ban_at_the_door_say_bye() -> None:
    async def body(hub: Hub, handler: Handler) -> None:
        banned, task = await join(hub, handler, "banned")
        await asyncio.wait_for(task, 1)
        assert banned.of("bye")[0]["code"] == P.BANNED and banned.close_code == 1000
        bad, task = await join(hub, handler, "badguy")
        bad.say({"t": "comment", "x": "hi"})
        await asyncio.wait_for(task, 1)
        assert bad.of("bye")[0]["code"] == P.BANNED and hub.viewer_count(1) == 0

    run(body)


def test_bad_frames_get_errors_then_bye_and_the_room_is_unaffected() -> None:
    async def body(hub: Hub, handler: Handler) -> None:
        good, _ = await join(hub, handler, "good")
        bad, task = await join(hub, handler, "bad")
        for raw in ["{", '{"t":"dance"}', '{"t":"like","n":"x"}', "x" * 3000]:
            bad.say(raw)
        await until(lambda: len(bad.of("error")) == 4)
        assert {e["code"] for e in bad.of("error")} == {P.BAD_FRAME}
        assert not bad.of("bye")
        hub.set_state(1, "n", 1)
        await until(lambda: merged(bad.of("frame")).get("n") == 1)  # still served
        bad.say("[]")
        await asyncio.wait_for(task, 1)
        assert bad.of("bye")[0]["code"] == P.TOO_MANY_BAD_FRAMES
        hub.set_state(1, "n", 2)
        await until(lambda: merged(good.of("frame")).get("n") == 2)
        assert not good.of("error")

    run(body)


def test_close_room_says_bye_to_everyone() -> None:
    async def body(hub: Hub, handler: Handler) -> None:
        a, ta = await join(hub, handler, "a")
        b, tb = await join(hub, handler, "b", socket=FastSocket())
        await hub.close_room(1, message="thanks for watching")
        await asyncio.wait_for(asyncio.gather(ta, tb), 3)
        for s in (a, b):
            assert s.of("bye") == [{"t": "bye", "code": "ended", "message": "thanks for watching"}]
        assert 1 not in hub.rooms

    run(body)


def test_the_viewers_count_is_published_as_state() -> None:
    async def body(hub: Hub, handler: Handler) -> None:
        a, _ = await join(hub, handler, "a")
        await join(hub, handler, "b")
        await hub.housekeep_once(asyncio.get_running_loop().time())
        await until(lambda: merged(a.of("frame")).get("viewers") == 2)
        assert hub.snapshot_state(1)["viewers"] == 2

    run(body)


def test_naive_mode_sends_every_message_at_once_as_its_own_frame() -> None:
    config = HubConfig(fanout="naive", hello_wait_s=0.01)

    async def body(hub: Hub, handler: Handler) -> None:
        a, _ = await join(hub, handler, "a", socket=FastSocket())  # naive ignores the fast path
        for i in range(30):
            hub.set_state(1, "n", i)
            hub.comment(1, {"id": i, "x": f"c{i}"})
        await until(lambda: len(a.of("frame")) == 60)
        assert not a.wire_frames
        assert [f["s"]["n"] for f in a.of("frame") if "s" in f] == list(range(30))
        assert len([f for f in a.of("frame") if "c" in f]) == 30

    run(body, config)


def test_hub_settings_have_defaults_and_bad_values_stop_start_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from trustlive.config import load_settings

    monkeypatch.setenv("TRUSTLIVE_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("TRUSTLIVE_SECRET_KEY", "k" * 48)
    for name in ("TICK_MS", "STATE_TICK_MS", "COMMENT_CAP", "PURCHASE_CAP", "QUEUE_FRAMES", "SLOW_LIMIT_S",
                 "HISTORY", "FANOUT"):  # fmt: skip
        monkeypatch.delenv(f"TRUSTLIVE_LIVE_{name}", raising=False)
    config = HubConfig.from_settings(load_settings())
    assert config == HubConfig(
        tick_ms=100, state_tick_ms=50, comment_cap=20, purchase_cap=10, queue_frames=32, slow_limit_s=10,
        history=2000, fanout="batched",
    )  # fmt: skip
    monkeypatch.setenv("TRUSTLIVE_LIVE_FANOUT", "Naive")
    monkeypatch.setenv("TRUSTLIVE_LIVE_TICK_MS", "250")
    assert (load_settings().live_fanout, load_settings().live_tick_ms) == ("naive", 250)
    for name, value in (("FANOUT", "fast"), ("TICK_MS", "5"), ("QUEUE_FRAMES", "x"), ("HISTORY", "0")):
        monkeypatch.setenv(f"TRUSTLIVE_LIVE_{name}", value)
        with pytest.raises(SystemExit, match=f"TRUSTLIVE_LIVE_{name}"):
            load_settings()
        monkeypatch.delenv(f"TRUSTLIVE_LIVE_{name}")


def test_a_message_that_cannot_be_encoded_is_dropped_and_the_room_goes_on() -> None:
    async def body(hub: Hub, handler: Handler) -> None:
        a, _ = await join(hub, handler)
        hub.set_state(1, "bad", object())
        hub.comment(1, {"id": 1, "x": object()})
        hub.set_state(1, "n", 1)
        await until(lambda: merged(a.of("frame")).get("n") == 1)
        assert "bad" not in hub.snapshot_state(1)
        b, _ = await join(hub, handler, "b")
        assert b.of("snapshot")[0]["s"] == {"n": 1}

    run(body)
