"""Complaints of false claims (虚假宣传): a buyer files one from a received order line attributed to a
creator, ops uphold or dismiss it, and an upheld one reaches the creator's facts. Every refusal
leaves nothing behind; racing twins make one complaint and racing deciders one decision. On SQLite
and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from tests.helpers import run
from tests.orders.world import World, build, principal
from tests.reviews.util import advance, events_of
from trustlive.accounts import service as accounts
from trustlive.accounts.service import Principal
from trustlive.db import transaction
from trustlive.errors import DomainError, ValidationFailed
from trustlive.events import OutboxEvent
from trustlive.orders import service as orders
from trustlive.orders.schemas import ItemIn, OrderIn
from trustlive.trust import repository as trust_repo
from trustlive.trust import service as trust
from trustlive.trust.models import Complaint
from trustlive.trust.schemas import ComplaintDecisionIn, ComplaintIn

CLAIM = ComplaintIn("主播说是A货翡翠，收到的是染色石英岩")


async def bought(
    w: World, buyer: int, key: str, *, creator: bool = True, to: str = "delivered"
) -> tuple[int, int]:
    """An order of ``buyer`` for the kids' shop's SKU, attributed to the world's creator (or to
    nobody), moved on to ``to`` (paid, shipped, delivered, completed): (order id, line id)."""
    person = w.buyers[buyer]
    data = OrderIn(
        items=[ItemIn(sku_id=w.skus[0], quantity=1)], address_id=w.addresses[person.id],  # type: ignore[arg-type]
        source="alliance_link" if creator else "shelf", creator_id=w.creator.id if creator else None,
    )  # fmt: skip
    async with transaction(w.sessionmaker) as s:
        order = (await orders.place_order(s, person, data, key)).orders[0]
        await orders.mark_paid(s, order.id, order.total_fen, f"test:{key}")
    if to != "paid":
        await advance(w, order.id, to)
    async with transaction(w.sessionmaker) as s:
        detail = await orders.load_order(s, order.id)
    return order.id, detail.lines[0].id


async def code_of(w: World, call) -> str:  # type: ignore[no-untyped-def]
    """The error code of ``call(session)`` in a transaction of its own ("ok" when it succeeds)."""
    try:
        async with transaction(w.sessionmaker) as s:
            await call(s)
    except DomainError as err:
        return err.code
    return "ok"


async def file(w: World, buyer: Principal, order_id: int, line_id: int, data: ComplaintIn = CLAIM, now=None):  # type: ignore[no-untyped-def]
    async with transaction(w.sessionmaker) as s:
        return await trust.file_complaint(s, buyer, order_id, line_id, data, now=now)


async def decide(w: World, actor: Principal, complaint_id: int, decision: str, note: str = ""):  # type: ignore[no-untyped-def]
    async with transaction(w.sessionmaker) as s:
        return await trust.decide_complaint(s, actor, complaint_id, ComplaintDecisionIn(decision, note))  # type: ignore[arg-type]


async def rows(w: World) -> list[Complaint]:
    async with transaction(w.sessionmaker) as s:
        return list(await s.scalars(select(Complaint).order_by(Complaint.id)))


async def outbox_count(w: World) -> int:
    async with transaction(w.sessionmaker) as s:
        return int(await s.scalar(select(func.count()).select_from(OutboxEvent)) or 0)


async def another_ops(w: World, username: str = "ops2") -> Principal:
    async with transaction(w.sessionmaker) as s:
        user = await accounts.create_user(s, username=username, password="correct-horse-9", roles=["ops"])
    return principal(user, "ops")


def test_filing_a_complaint(db_url: str) -> None:
    async def scenario() -> None:
        w = await build(db_url, buyers=2)
        try:
            buyer, other = w.buyers
            order_id, line_id = await bought(w, 0, "k1")
            out = await file(w, buyer, order_id, line_id, ComplaintIn("  说是A货，其实是B货  "))
            assert (out.order_id, out.line_id, out.creator_id, out.shop_id) == (
                order_id, line_id, w.creator.id, w.shops[0]
            )  # fmt: skip
            assert (out.status, out.claim, out.decided_at, out.decision_note) == (
                "pending", "说是A货，其实是B货", None, ""
            )  # fmt: skip
            (row,) = await rows(w)
            assert (row.id, row.buyer_id, row.claim, row.title) == (
                out.id,
                buyer.id,
                "说是A货，其实是B货",
                "商品1",
            )
            assert await events_of(w, "trust.complaint_filed") == [
                {"complaint_id": row.id, "order_id": order_id, "line_id": line_id, "creator_id": w.creator.id}
            ]
            async with transaction(w.sessionmaker) as s:
                assert (await trust.complaint_of_line(s, buyer, line_id)).id == row.id  # type: ignore[union-attr]
                assert await trust.complaint_of_line(s, other, line_id) is None
                assert (await trust.complaint_of_line(s, w.ops, line_id)).id == row.id  # type: ignore[union-attr]
                assert [c.id for c in (await trust.list_complaints(s, buyer, None, None, 20)).items] == [
                    row.id
                ]
                assert (await trust.list_complaints(s, other, None, None, 20)).items == []
                assert [c.id for c in (await trust.list_complaints(s, w.ops, "pending", None, 20)).items] == [
                    row.id
                ]
                assert (await trust.list_complaints(s, w.ops, "upheld", None, 20)).items == []
            # A buyer who confirmed receipt before the carrier reported delivery may complain too.
            order2, line2 = await bought(w, 0, "k2", to="completed")
            assert (await file(w, buyer, order2, line2)).status == "pending"
        finally:
            await w.engine.dispose()

    run(scenario())


def test_refusals_leave_nothing_behind(db_url: str) -> None:
    async def scenario() -> None:
        w = await build(db_url, buyers=2)
        try:
            buyer, other = w.buyers
            order_id, line_id = await bought(w, 0, "k1")
            no_creator = await bought(w, 0, "k2", creator=False)
            shipped = await bought(w, 0, "k3", to="shipped")
            paid = await bought(w, 0, "k4", to="paid")
            async with transaction(w.sessionmaker) as s:
                delivered_at = (await orders.load_order(s, order_id)).delivered_at
            assert delivered_at is not None
            before = await outbox_count(w)
            cases = [
                (other, order_id, line_id, CLAIM, None, "order_not_found"),  # someone else's order: 404
                (buyer, order_id, line_id + 999, CLAIM, None, "order_not_found"),  # no such line on it
                (buyer, 999_999, line_id, CLAIM, None, "order_not_found"),
                (buyer, order_id, no_creator[1], CLAIM, None, "order_not_found"),  # a line of another order
                (buyer, *no_creator, CLAIM, None, "no_creator"),
                (buyer, *shipped, CLAIM, None, "not_delivered"),
                (buyer, *paid, CLAIM, None, "not_delivered"),
                (buyer, order_id, line_id, CLAIM, delivered_at + dt.timedelta(days=30, seconds=1),
                 "complaint_window_closed"),
                (buyer, order_id, line_id, ComplaintIn("   \n "), None, "validation_error"),
                (buyer, order_id, line_id, ComplaintIn("假" * 501), None, "validation_error"),
                (buyer, order_id, line_id, ComplaintIn(""), None, "validation_error"),
            ]  # fmt: skip
            for actor, oid, lid, data, now, expected in cases:
                got = await code_of(
                    w, lambda s, a=(actor, oid, lid, data, now): trust.file_complaint(s, *a[:4], now=a[4])
                )
                assert got == expected, (oid, lid, data, expected)
            assert await rows(w) == []
            assert await outbox_count(w) == before
            # The last moment of the window is still inside it.
            out = await file(w, buyer, order_id, line_id, now=delivered_at + dt.timedelta(days=30))
            assert out.status == "pending"
        finally:
            await w.engine.dispose()

    run(scenario())


def test_one_complaint_per_line(db_url: str) -> None:
    async def scenario() -> None:
        w = await build(db_url, buyers=1)
        try:
            buyer = w.buyers[0]
            order_id, line_id = await bought(w, 0, "k1")
            await file(w, buyer, order_id, line_id)
            assert await code_of(w, lambda s: trust.file_complaint(s, buyer, order_id, line_id, CLAIM)) == (
                "already_complained"
            )
            assert len(await rows(w)) == 1
            assert len(await events_of(w, "trust.complaint_filed")) == 1
        finally:
            await w.engine.dispose()

    run(scenario())


def test_concurrent_filings_make_one_complaint(db_url: str) -> None:
    async def scenario() -> None:
        w = await build(db_url, buyers=1)
        try:
            buyer = w.buyers[0]
            order_id, line_id = await bought(w, 0, "k1")
            codes = await asyncio.gather(
                *(
                    code_of(w, lambda s: trust.file_complaint(s, buyer, order_id, line_id, CLAIM))
                    for _ in range(6)
                )
            )
            assert sorted(codes) == ["already_complained"] * 5 + ["ok"]
            assert len(await rows(w)) == 1
            assert len(await events_of(w, "trust.complaint_filed")) == 1
        finally:
            await w.engine.dispose()

    run(scenario())


def test_a_twin_committed_after_the_check_is_a_409_not_an_error(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race the unique constraint decides: the check saw no complaint, the twin committed
    before this insert. The insert fails in its savepoint and the buyer gets 409."""

    async def scenario() -> None:
        w = await build(db_url, buyers=1)
        try:
            buyer = w.buyers[0]
            order_id, line_id = await bought(w, 0, "k1")
            await file(w, buyer, order_id, line_id)
            real = trust_repo.complaint_of_line
            calls = []

            async def first_misses(session, lid):  # type: ignore[no-untyped-def]
                calls.append(lid)
                return None if len(calls) == 1 else await real(session, lid)

            monkeypatch.setattr(trust_repo, "complaint_of_line", first_misses)
            assert await code_of(w, lambda s: trust.file_complaint(s, buyer, order_id, line_id, CLAIM)) == (
                "already_complained"
            )
            assert len(calls) == 2  # the check, then the lookup after the refused insert
            assert len(await rows(w)) == 1
        finally:
            await w.engine.dispose()

    run(scenario())


def test_ops_uphold_and_dismiss(db_url: str) -> None:
    async def scenario() -> None:
        w = await build(db_url, buyers=2)
        try:
            buyer, other = w.buyers
            first = await bought(w, 0, "k1")
            second = await bought(w, 1, "k2")
            a = await file(w, buyer, *first)
            b = await file(w, other, *second)
            merchant = w.merchants[0]
            for actor in (buyer, merchant, w.creator):
                assert await code_of(
                    w, lambda s, x=actor: trust.decide_complaint(s, x, a.id, ComplaintDecisionIn("upheld"))
                ) == "ops_only"  # fmt: skip
            assert await code_of(
                w, lambda s: trust.decide_complaint(s, w.ops, 999_999, ComplaintDecisionIn("upheld"))
            ) == "complaint_not_found"  # fmt: skip
            with pytest.raises(ValidationFailed):  # a decision built in Python is checked too
                async with transaction(w.sessionmaker) as s:
                    await trust.decide_complaint(s, w.ops, a.id, ComplaintDecisionIn("maybe"))  # type: ignore[arg-type]
            assert all(r.status == "pending" for r in await rows(w))

            upheld = await decide(w, w.ops, a.id, "upheld", "  直播回放核实：宣称A货  ")
            assert (upheld.status, upheld.decision_note) == ("upheld", "直播回放核实：宣称A货")
            assert upheld.decided_at is not None
            dismissed = await decide(w, w.ops, b.id, "dismissed")
            assert dismissed.status == "dismissed"
            stored = {r.id: r for r in await rows(w)}
            assert (stored[a.id].status, stored[a.id].decided_by_id) == ("upheld", w.ops.id)
            assert stored[b.id].status == "dismissed"
            assert await events_of(w, "trust.complaint_decided") == [
                {"complaint_id": a.id, "order_id": first[0], "line_id": first[1], "creator_id": w.creator.id,
                 "decision": "upheld"},
                {"complaint_id": b.id, "order_id": second[0], "line_id": second[1], "creator_id": w.creator.id,
                 "decision": "dismissed"},
            ]  # fmt: skip
            # Only the upheld one counts against the creator (what the facts read).
            async with transaction(w.sessionmaker) as s:
                counted = await trust.upheld_complaints(s, [first[0], second[0]])
                assert await trust.upheld_complaints(s, []) == {}
                page = await trust.list_complaints(s, w.ops, "upheld", None, 20)
                assert [c.id for c in page.items] == [a.id]
            assert counted == {first[1]: stored[a.id].decided_at}
            # Decided once: again is a 409, whoever asks and whatever they decide.
            for decision in ("upheld", "dismissed"):
                assert await code_of(
                    w, lambda s, d=decision: trust.decide_complaint(s, w.ops, a.id, ComplaintDecisionIn(d))  # type: ignore[arg-type]
                ) == "already_decided"  # fmt: skip
            assert (await rows(w))[0].status == "upheld"
        finally:
            await w.engine.dispose()

    run(scenario())


def test_racing_decisions_one_wins(db_url: str) -> None:
    async def scenario() -> None:
        w = await build(db_url, buyers=1)
        try:
            ops2 = await another_ops(w)
            complaint = await file(w, w.buyers[0], *await bought(w, 0, "k1"))
            attempts = [(w.ops, "upheld"), (ops2, "dismissed")] * 3

            async def attempt(actor: Principal, decision: str) -> tuple[str, str]:
                code = await code_of(
                    w,
                    lambda s: trust.decide_complaint(s, actor, complaint.id, ComplaintDecisionIn(decision)),  # type: ignore[arg-type]
                )
                return code, decision

            results = await asyncio.gather(*(attempt(a, d) for a, d in attempts))
            winners = [d for code, d in results if code == "ok"]
            assert len(winners) == 1
            assert sorted(code for code, _ in results) == ["already_decided"] * 5 + ["ok"]
            (row,) = await rows(w)
            assert row.status == winners[0]
            assert len(await events_of(w, "trust.complaint_decided")) == 1
        finally:
            await w.engine.dispose()

    run(scenario())


def test_a_lost_conditional_update_is_a_409(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The decider read the complaint as pending; another decision committed before its UPDATE:
    the conditional UPDATE changes nothing and the loser gets 409, the winner's decision stands."""

    async def scenario() -> None:
        w = await build(db_url, buyers=1)
        try:
            complaint = await file(w, w.buyers[0], *await bought(w, 0, "k1"))
            real = trust_repo.get_complaint
            stale = SimpleNamespace(id=complaint.id, status="pending")  # what the loser read
            await decide(w, w.ops, complaint.id, "dismissed")  # the winner commits meanwhile
            reads = []

            async def stale_first(session, cid):  # type: ignore[no-untyped-def]
                reads.append(cid)
                return stale if len(reads) == 1 else await real(session, cid)

            monkeypatch.setattr(trust_repo, "get_complaint", stale_first)
            assert await code_of(
                w, lambda s: trust.decide_complaint(s, w.ops, complaint.id, ComplaintDecisionIn("upheld"))
            ) == "already_decided"  # fmt: skip
            (row,) = await rows(w)
            assert row.status == "dismissed"
            assert [e["decision"] for e in await events_of(w, "trust.complaint_decided")] == ["dismissed"]
        finally:
            await w.engine.dispose()

    run(scenario())


def test_listing_checks_its_inputs(db_url: str) -> None:
    async def scenario() -> None:
        w = await build(db_url, buyers=1)
        try:
            buyer = w.buyers[0]
            ids = []
            for i in range(3):
                ids.append((await file(w, buyer, *await bought(w, 0, f"k{i}"))).id)
            async with transaction(w.sessionmaker) as s:
                page = await trust.list_complaints(s, w.ops, None, None, 2)
                assert [c.id for c in page.items] == ids[::-1][:2] and page.next_cursor
                rest = await trust.list_complaints(s, w.ops, None, page.items[-1].id, 2)
                assert [c.id for c in rest.items] == [ids[0]] and rest.next_cursor is None
            for status, limit in (("bogus", 20), ("PENDING", 20), (None, 0), (None, 101)):
                assert await code_of(
                    w, lambda s, x=(status, limit): trust.list_complaints(s, w.ops, x[0], None, x[1])
                ) == "validation_error"  # fmt: skip
        finally:
            await w.engine.dispose()

    run(scenario())
