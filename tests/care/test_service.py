"""Care cases through the service, on SQLite and PostgreSQL: opening (from a request, for a buyer),
one open case per buyer and request, assignment rules, the follow-up schedule and its next-due
time, the overdue list and its sweeper, who sees what, closing and reopening, bad input."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any, get_args

import msgspec

from tests.care.world import (
    T0,
    CareWorld,
    build_care,
    case_row,
    count,
    entries,
    follow_ups,
    open_request,
    outbox,
)
from trustlive.accounts.service import Principal
from trustlive.care import service as care
from trustlive.care import tasks
from trustlive.care.models import PRIORITIES, CareCase, CareEntry, CareFollowUp
from trustlive.care.pages import PRIORITY_LABELS
from trustlive.care.schemas import (
    AssignIn,
    CaseIn,
    CloseIn,
    EntryIn,
    FollowUpDoneIn,
    FollowUpIn,
    Priority,
    ReopenIn,
    ReplyIn,
)
from trustlive.db import transaction
from trustlive.errors import DomainError

H = dt.timedelta(hours=1)


def play(db_url: str, body: Callable[[CareWorld], Awaitable[None]]) -> None:
    async def go() -> None:
        w = await build_care(db_url)
        try:
            await body(w)
        finally:
            await w.world.engine.dispose()  # type: ignore[attr-defined]

    asyncio.run(go())


async def act(w: CareWorld, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
    """One unit of work, committed (or rolled back on an error, as a request would be)."""
    async with transaction(w.sessionmaker) as s:
        return await fn(s, *args, **kwargs)


async def refusal(w: CareWorld, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> str:
    try:
        await act(w, fn, *args, **kwargs)
    except DomainError as err:
        return f"{err.status_code} {err.code}"
    return "ok"


async def open_for(w: CareWorld, actor: Principal, buyer: int = 0, **extra: Any) -> int:
    data = CaseIn(risk_summary="Facing surgery next week; refund still open.", username=w.buyers[buyer].username,
                  **extra)  # fmt: skip
    return (await act(w, care.open_case, actor, data, now=T0)).id


# --- opening ----------------------------------------------------------------------------------


def test_open_from_a_request_takes_the_buyer_and_order_from_it(db_url: str) -> None:
    async def body(w: CareWorld) -> None:
        request_id, order_id = await open_request(w, buyer=1)
        data = CaseIn(risk_summary="  Buyer says she is about to have surgery.  ", request_id=request_id,
                      priority="urgent", first_follow_up_at=T0 + 2 * H, first_follow_up_plan="Call her")  # fmt: skip
        case = await act(w, care.open_case, w.ops, data, now=T0)
        row = await case_row(w, case.id)
        assert (row.buyer_id, row.request_id, row.order_id) == (w.buyers[1].id, request_id, order_id)
        assert (row.status, row.priority, row.risk_summary) == (
            "open",
            "urgent",
            "Buyer says she is about to have surgery.",
        )
        assert row.specialist_id is None and row.opened_by_id == w.ops.id
        assert row.next_due_at == T0 + 2 * H
        assert [(f.due_at, f.plan) for f in await follow_ups(w, case.id)] == [(T0 + 2 * H, "Call her")]
        assert [(e.kind, e.to_buyer) for e in await entries(w, case.id)] == [("opened", False)]
        assert case.request is not None and case.request.order_id == order_id
        assert await outbox(w, "care.opened") == [{
            "case_id": case.id, "buyer_id": w.buyers[1].id, "request_id": request_id, "order_id": order_id,
            "priority": "urgent", "by": w.ops.id,
        }]  # fmt: skip
        assert await outbox(w, "care.assigned") == []

    play(db_url, body)


def test_open_for_a_buyer_by_id_or_username(db_url: str) -> None:
    async def body(w: CareWorld) -> None:
        spec = w.specialists[0]
        # A specialist who opens a case looks after it.
        by_name = await act(
            w, care.open_case, spec, CaseIn(risk_summary="Distressed", username=w.buyers[0].username.upper())
        )
        assert by_name.buyer.id == w.buyers[0].id and by_name.specialist is not None
        assert (await case_row(w, by_name.id)).specialist_id == spec.id
        assert [e.kind for e in await entries(w, by_name.id)] == ["opened", "assigned"]
        assert (await outbox(w, "care.assigned"))[0]["specialist_id"] == spec.id
        # Ops open one for another buyer by account number and may name the specialist.
        data = CaseIn(
            risk_summary="Lost a parcel of medicine",
            buyer_id=w.buyers[1].id,
            specialist_id=w.specialists[1].id,
        )
        by_id = await act(w, care.open_case, w.ops, data)
        row = await case_row(w, by_id.id)
        assert (row.buyer_id, row.request_id, row.order_id, row.specialist_id) == (
            w.buyers[1].id, None, None, w.specialists[1].id)  # fmt: skip
        # A specialist cannot hand a new case to a colleague.
        other = CaseIn(risk_summary="x", buyer_id=w.buyers[2].id, specialist_id=w.specialists[1].id)
        assert await refusal(w, care.open_case, spec, other) == "403 ops_only"
        # Nobody else opens cases.
        assert await refusal(w, care.open_case, w.world.merchants[0], other) == "403 role_required"
        assert await count(w, CareCase) == 2

    play(db_url, body)


def test_one_open_case_per_buyer_and_request(db_url: str) -> None:
    async def body(w: CareWorld) -> None:
        request_id, _ = await open_request(w, buyer=0)
        first = (await act(w, care.open_case, w.ops, CaseIn(risk_summary="a", request_id=request_id))).id
        again = CaseIn(risk_summary="b", request_id=request_id)
        assert await refusal(w, care.open_case, w.specialists[0], again) == "409 case_already_open"
        direct = await open_for(w, w.ops, 0)  # the same buyer without a request: another case
        assert await refusal(w, care.open_case, w.ops, CaseIn(risk_summary="c", buyer_id=w.buyers[0].id)) == (
            "409 case_already_open"
        )
        assert await count(w, CareCase) == 2
        # Once closed, a new case may be opened; the old one cannot reopen while the new is open.
        await act(w, care.close_case, w.ops, first, CloseIn(outcome="resolved"))
        second = (await act(w, care.open_case, w.ops, again)).id
        assert await refusal(w, care.reopen_case, w.ops, first, ReopenIn()) == "409 case_already_open"
        assert (await case_row(w, first)).status == "closed"
        assert {second, direct, first} == {c.id for c in await act(w, care.list_cases, w.ops, limit=10)}

    play(db_url, body)


# --- assigning --------------------------------------------------------------------------------


def test_assignment_rules(db_url: str) -> None:
    async def body(w: CareWorld) -> None:
        spec1, spec2 = w.specialists
        case_id = await open_for(w, w.ops)
        before = len(await entries(w, case_id))
        # Only care specialists can be assigned: a merchant, an unknown account, the buyer -> 422.
        for someone in (w.world.merchants[0].id, 10**9):
            assert (
                await refusal(w, care.assign, w.ops, case_id, AssignIn(someone))
                == "422 not_a_care_specialist"
            )
        assert (await case_row(w, case_id)).specialist_id is None
        assert len(await entries(w, case_id)) == before and await outbox(w, "care.assigned") == []
        # A specialist takes an unassigned case for themselves, not for a colleague.
        assert await refusal(w, care.assign, spec2, case_id, AssignIn(spec1.id)) == "403 ops_only"
        taken = await act(w, care.assign, spec1, case_id, AssignIn(spec1.id))
        assert taken.specialist is not None and taken.specialist.id == spec1.id
        # Now it is spec1's: spec2 no longer sees it, so cannot take it either.
        assert await refusal(w, care.assign, spec2, case_id, AssignIn(spec2.id)) == "404 care_case_not_found"
        # Ops reassign; the timeline and the events record who had it before.
        await act(w, care.assign, w.ops, case_id, AssignIn(spec2.id))
        await act(w, care.assign, w.ops, case_id, AssignIn(spec2.id))  # the same again: nothing to record
        assert (await case_row(w, case_id)).specialist_id == spec2.id
        assigned = [(e.author_id, e.assignee_id) for e in await entries(w, case_id) if e.kind == "assigned"]
        assert assigned == [(spec1.id, spec1.id), (w.ops.id, spec2.id)]
        assert [(p["specialist_id"], p["previous_specialist_id"], p["by"]) for p in await outbox(w, "care.assigned")] == [
            (spec1.id, None, spec1.id), (spec2.id, spec1.id, w.ops.id),
        ]  # fmt: skip
        assert await refusal(w, care.get_case, spec1, case_id) == "404 care_case_not_found"

    play(db_url, body)


def test_two_specialists_taking_one_case_at_once(db_url: str) -> None:
    async def body(w: CareWorld) -> None:
        case_id = await open_for(w, w.ops)
        results = await asyncio.gather(
            *(refusal(w, care.assign, s, case_id, AssignIn(s.id)) for s in w.specialists)
        )
        assert sorted(results) == ["404 care_case_not_found", "ok"] or sorted(results) == [
            "409 already_taken",
            "ok",
        ]
        row = await case_row(w, case_id)
        assert row.specialist_id in {s.id for s in w.specialists}
        assert len([e for e in await entries(w, case_id) if e.kind == "assigned"]) == 1

    play(db_url, body)


# --- the schedule -----------------------------------------------------------------------------


def test_schedule_and_next_contact_due(db_url: str) -> None:
    async def body(w: CareWorld) -> None:
        spec = w.specialists[0]
        case_id = await open_for(w, spec)
        other_case = await open_for(w, spec, buyer=1)
        assert (await case_row(w, case_id)).next_due_at is None
        for hours, plan in ((72, "third"), (24, "first"), (48, "second")):
            await act(
                w, care.add_follow_up, spec, case_id, FollowUpIn(due_at=T0 + hours * H, plan=plan), now=T0
            )
        assert (await case_row(w, case_id)).next_due_at == T0 + 24 * H
        third, first, second = (f.id for f in sorted(await follow_ups(w, case_id), key=lambda f: f.id))
        # Done: the result is kept and goes on the timeline (internal); the next one is due next.
        done = FollowUpDoneIn(result="Called; surgery went well.", kind="call")
        out = await act(w, care.complete_follow_up, spec, case_id, first, done, now=T0 + 25 * H)
        assert out.next_due_at == T0 + 48 * H and (await case_row(w, case_id)).next_due_at == T0 + 48 * H
        row = next(f for f in await follow_ups(w, case_id) if f.id == first)
        assert (row.done_at, row.done_by_id, row.result) == (
            T0 + 25 * H,
            spec.id,
            "Called; surgery went well.",
        )
        last = (await entries(w, case_id))[-1]
        assert (last.kind, last.body, last.to_buyer, last.follow_up_id) == ("call", done.result, False, first)
        # Done twice, or through another case: refused, nothing changes.
        assert await refusal(w, care.complete_follow_up, spec, case_id, first, done) == "409 follow_up_done"
        assert (
            await refusal(w, care.complete_follow_up, spec, other_case, second, done)
            == "404 follow_up_not_found"
        )
        assert (await case_row(w, other_case)).next_due_at is None
        for follow_up in (second, third):
            await act(w, care.complete_follow_up, spec, case_id, follow_up, done, now=T0 + 80 * H)
        assert (await case_row(w, case_id)).next_due_at is None
        # Due times in the past or beyond a year are refused.
        for when in (T0 - H, T0 + dt.timedelta(days=400)):
            assert await refusal(w, care.add_follow_up, spec, case_id, FollowUpIn(due_at=when), now=T0) == (
                "422 validation_error"
            )
        assert len(await follow_ups(w, case_id)) == 3

    play(db_url, body)


def test_overdue_list_and_the_sweeper_flags_each_follow_up_once(db_url: str) -> None:
    async def body(w: CareWorld) -> None:
        spec1, spec2 = w.specialists
        late = await open_for(w, spec1, 0, first_follow_up_at=T0 + H)  # due 11:00 in Shanghai
        today = await open_for(w, spec1, 1, first_follow_up_at=T0 + 8 * H)  # 18:00, today
        tomorrow = await open_for(w, spec2, 2, first_follow_up_at=T0 + 30 * H)
        queue = (await act(w, care.open_case, w.ops, CaseIn(risk_summary="q", buyer_id=w.world.creator.id,
                                                           first_follow_up_at=T0 + H), now=T0)).id  # fmt: skip
        now = T0 + 2 * H
        mine = await act(w, care.board, spec1, now=now)
        assert [c.id for c in mine.overdue] == [late, queue]  # hers and the unassigned queue's
        assert [c.id for c in mine.due_today] == [today]
        assert {c.id for c in mine.mine} == {late, today} and [c.id for c in mine.unassigned] == [queue]
        assert all(c.overdue for c in mine.overdue) and not mine.due_today[0].overdue
        theirs = await act(w, care.board, spec2, now=now)
        assert [c.id for c in theirs.overdue] == [queue] and theirs.due_today == []
        everything = await act(w, care.board, w.ops, now=now)
        assert [c.id for c in everything.overdue] == [late, queue] and [
            c.id for c in everything.due_today
        ] == [today]
        assert tomorrow not in {c.id for c in [*everything.overdue, *everything.due_today]}

        assert await tasks.run_once(w.sessionmaker, None, now=now) == {"follow_ups_overdue": 2}  # type: ignore[arg-type]
        assert await tasks.run_once(w.sessionmaker, None, now=now + H) == {"follow_ups_overdue": 0}  # type: ignore[arg-type]
        alerts = await outbox(w, "care.follow_up_overdue")
        assert sorted(a["case_id"] for a in alerts) == sorted([late, queue])
        assert next(a for a in alerts if a["case_id"] == late)["specialist_id"] == spec1.id
        assert [f.alerted_at for f in await follow_ups(w, late)] == [now]
        # A follow-up done in time, or of a closed case, is never flagged.
        await act(w, care.complete_follow_up, spec1, today, (await follow_ups(w, today))[0].id,
                  FollowUpDoneIn(result="Spoke to him"), now=now)  # fmt: skip
        await act(w, care.close_case, spec2, tomorrow, CloseIn(outcome="resolved"), now=now)
        assert await tasks.run_once(w.sessionmaker, None, now=T0 + 48 * H) == {"follow_ups_overdue": 0}  # type: ignore[arg-type]
        assert len(await outbox(w, "care.follow_up_overdue")) == 2
        assert (await act(w, care.board, spec1, now=T0 + 48 * H)).due_today == []

    play(db_url, body)


# --- who sees what ----------------------------------------------------------------------------


def test_only_ops_and_the_right_specialist_see_a_case(db_url: str) -> None:
    async def body(w: CareWorld) -> None:
        spec1, spec2 = w.specialists
        case_id = await open_for(w, spec1, 0)
        queued = await open_for(w, w.ops, 1)
        note = EntryIn(body="x")
        for outsider in (spec2, w.world.merchants[0], w.buyers[2], w.buyers[0]):  # the buyer too: staff side
            assert await refusal(w, care.get_case, outsider, case_id) == "404 care_case_not_found"
            assert await refusal(w, care.add_entry, outsider, case_id, note) == "404 care_case_not_found"
            assert await refusal(w, care.close_case, outsider, case_id, CloseIn(outcome="resolved")) == (
                "404 care_case_not_found"
            )
        assert await refusal(w, care.get_case, w.buyers[2], 10**9) == "404 care_case_not_found"
        assert (await act(w, care.get_case, w.ops, case_id)).risk_summary
        # A specialist sees the unassigned queue but works on a case only once it is theirs.
        assert (await act(w, care.get_case, spec2, queued)).specialist is None
        assert await refusal(w, care.add_entry, spec2, queued, note) == "403 take_case_first"
        assert {c.id for c in await act(w, care.list_cases, spec2)} == {queued}
        assert {c.id for c in await act(w, care.list_cases, spec1)} == {case_id, queued}
        assert {c.id for c in await act(w, care.list_cases, w.ops)} == {case_id, queued}
        assert await refusal(w, care.list_cases, w.buyers[2]) == "403 role_required"
        assert len(await entries(w, case_id)) == 2 and len(await entries(w, queued)) == 1

    play(db_url, body)


def test_the_buyer_sees_only_what_is_addressed_to_them(db_url: str) -> None:
    async def body(w: CareWorld) -> None:
        spec = w.specialists[0]
        buyer, stranger = w.buyers[0], w.buyers[1]
        data = CaseIn(risk_summary="RISK-SECRET surgery", username=buyer.username, first_follow_up_at=T0 + H,
                      first_follow_up_plan="PLAN-SECRET")  # fmt: skip
        case_id = (await act(w, care.open_case, spec, data, now=T0)).id
        await act(w, care.add_entry, spec, case_id, EntryIn(body="INTERNAL-SECRET", kind="call"))
        # Nothing addressed to them yet: the case does not show for the buyer at all.
        assert await act(w, care.my_cases, buyer) == []
        assert await refusal(w, care.my_case, buyer, case_id) == "404 care_case_not_found"
        assert await refusal(w, care.reply, buyer, case_id, ReplyIn(body="hi")) == "404 care_case_not_found"
        await act(w, care.add_entry, spec, case_id, EntryIn(body="I am Carer 1; I will call you on Monday.",
                                                           kind="message", to_buyer=True))  # fmt: skip
        mine = await act(w, care.my_case, buyer, case_id)
        assert mine.is_open and mine.specialist_name == "Carer 1"
        assert [(e.body, e.from_buyer, e.author_name) for e in mine.entries] == [
            ("I am Carer 1; I will call you on Monday.", False, "Carer 1")
        ]
        seen = msgspec.json.encode([mine, await act(w, care.my_cases, buyer)]).decode()
        for secret in ("RISK-SECRET", "PLAN-SECRET", "INTERNAL-SECRET", "carer1", "ops1", "assigned", "note"):
            assert secret not in seen
        assert await outbox(w, "care.message_to_buyer") == [
            {"case_id": case_id, "buyer_id": buyer.id, "entry_id": (await entries(w, case_id))[-1].id}
        ]
        # The buyer replies: staff and the buyer see it.
        replied = await act(w, care.reply, buyer, case_id, ReplyIn(body="  Thank you.  "))
        assert [(e.body, e.from_buyer) for e in replied.entries][-1] == ("Thank you.", True)
        staff = await act(w, care.get_case, spec, case_id)
        assert (staff.entries[-1].kind, staff.entries[-1].body, staff.entries[-1].to_buyer) == (
            "reply",
            "Thank you.",
            True,
        )
        assert staff.entries[-1].author is not None and staff.entries[-1].author.id == buyer.id
        # Someone else's case: 404, and no reply lands on it.
        assert await refusal(w, care.my_case, stranger, case_id) == "404 care_case_not_found"
        assert (
            await refusal(w, care.reply, stranger, case_id, ReplyIn(body="me too"))
            == "404 care_case_not_found"
        )
        assert await act(w, care.my_cases, stranger) == []
        assert [c.id for c in await act(w, care.my_cases, buyer)] == [case_id]
        assert len(await entries(w, case_id)) == 5

    play(db_url, body)


# --- closing ----------------------------------------------------------------------------------


def test_close_with_an_outcome_read_only_then_reopen_by_ops(db_url: str) -> None:
    async def body(w: CareWorld) -> None:
        spec = w.specialists[0]
        case_id = await open_for(w, spec, first_follow_up_at=T0 + H)
        await act(w, care.add_entry, spec, case_id, EntryIn(body="We will call you.", to_buyer=True))
        follow_up = (await follow_ups(w, case_id))[0].id
        assert (
            await refusal(w, care.close_case, spec, case_id, CloseIn(outcome="other"))
            == "422 validation_error"
        )
        assert await refusal(w, care.close_case, spec, case_id, CloseIn(outcome="other", note="   ")) == (
            "422 validation_error"
        )
        assert (await case_row(w, case_id)).status == "open"
        closed = await act(w, care.close_case, spec, case_id, CloseIn(outcome="referred", note="To a counsellor"),
                           now=T0 + 2 * H)  # fmt: skip
        assert (closed.status, closed.outcome, closed.outcome_note, closed.closed_at) == (
            "closed", "referred", "To a counsellor", T0 + 2 * H)  # fmt: skip
        assert not closed.overdue  # closed cases are nobody's overdue contact
        assert await outbox(w, "care.closed") == [
            {"case_id": case_id, "buyer_id": w.buyers[0].id, "outcome": "referred", "by": spec.id}
        ]
        n = len(await entries(w, case_id))
        # Read-only: every change is a 409 and nothing is written.
        for attempt in (
            refusal(w, care.add_entry, spec, case_id, EntryIn(body="late note")),
            refusal(w, care.add_follow_up, spec, case_id, FollowUpIn(due_at=T0 + 5 * H), now=T0),
            refusal(w, care.complete_follow_up, spec, case_id, follow_up, FollowUpDoneIn(result="x")),
            refusal(w, care.assign, w.ops, case_id, AssignIn(w.specialists[1].id)),
            refusal(w, care.close_case, w.ops, case_id, CloseIn(outcome="resolved")),
            refusal(w, care.reply, w.buyers[0], case_id, ReplyIn(body="hello?")),
        ):
            assert await attempt == "409 case_closed"
        assert len(await entries(w, case_id)) == n and len(await follow_ups(w, case_id)) == 1
        assert (await case_row(w, case_id)).specialist_id == spec.id
        mine = await act(w, care.my_case, w.buyers[0], case_id)
        assert not mine.is_open
        # Only ops reopen.
        assert await refusal(w, care.reopen_case, spec, case_id, ReopenIn()) == "403 ops_only"
        reopened = await act(w, care.reopen_case, w.ops, case_id, ReopenIn(reason="She wrote again"))
        assert (reopened.status, reopened.outcome, reopened.closed_at) == ("open", None, None)
        assert [e.kind for e in await entries(w, case_id)][-2:] == ["closed", "reopened"]
        assert await refusal(w, care.reopen_case, w.ops, case_id, ReopenIn()) == "409 case_open"
        assert (await outbox(w, "care.reopened"))[0]["case_id"] == case_id
        await act(w, care.add_entry, spec, case_id, EntryIn(body="Back on it"))

    play(db_url, body)


# --- bad input --------------------------------------------------------------------------------


def test_bad_input_changes_nothing(db_url: str) -> None:
    async def body(w: CareWorld) -> None:
        spec = w.specialists[0]
        someone = w.buyers[0].username
        bad_opens = [
            ("404 request_not_found", CaseIn(risk_summary="x", request_id=10**9)),
            ("404 user_not_found", CaseIn(risk_summary="x", buyer_id=10**9)),
            ("404 user_not_found", CaseIn(risk_summary="x", username="nobody_here")),
            ("422 validation_error", CaseIn(risk_summary="   ", username=someone)),
            ("422 validation_error", CaseIn(risk_summary="x")),  # whom about?
            ("422 validation_error", CaseIn(risk_summary="x", username=someone, buyer_id=w.buyers[0].id)),
            ("422 own_case", CaseIn(risk_summary="x", username=w.ops.username)),
            ("422 validation_error", CaseIn(risk_summary="x", username=someone, first_follow_up_plan="call")),
            (
                "422 validation_error",
                CaseIn(risk_summary="x", username=someone, first_follow_up_at=T0 - 2 * H),
            ),
            (
                "422 not_a_care_specialist",
                CaseIn(risk_summary="x", username=someone, specialist_id=w.world.creator.id),
            ),
        ]
        for expected, data in bad_opens:
            assert await refusal(w, care.open_case, w.ops, data, now=T0) == expected, data
        assert (await count(w, CareCase), await count(w, CareEntry), await count(w, CareFollowUp)) == (
            0,
            0,
            0,
        )
        assert await outbox(w, "care.opened") == []

        case_id = await open_for(w, spec)
        n = len(await entries(w, case_id))
        for blank in ("", "   \n "):
            assert (
                await refusal(w, care.add_entry, spec, case_id, EntryIn(body=blank)) == "422 validation_error"
            )
        assert await refusal(
            w, care.complete_follow_up, spec, case_id, 10**9, FollowUpDoneIn(result="x")
        ) == ("404 follow_up_not_found")
        # Naive times are not guessed at: the struct refuses them.
        assert await refusal(w, care.add_follow_up, spec, case_id,
                             FollowUpIn(due_at=dt.datetime(2026, 12, 2, 10, 0))) == "422 validation_error"  # fmt: skip
        assert await refusal(w, care.list_cases, w.ops, status="pending") == "422 validation_error"
        assert await refusal(w, care.list_cases, w.ops, specialist="x") == "422 validation_error"
        assert len(await entries(w, case_id)) == n and await follow_ups(w, case_id) == []

    play(db_url, body)


def test_dates_centuries_off_are_a_422_naming_the_field(db_url: str) -> None:
    """Year 1 east of Greenwich and year 9999 west of it cannot be converted to UTC at all: they
    are refused like any date in the past or too far ahead, naming the field, and nothing is
    written (before: OverflowError, a 500)."""

    async def body(w: CareWorld) -> None:
        someone = w.buyers[0].username
        year_one = dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=8)))
        year_last = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.timezone(dt.timedelta(hours=-8)))

        async def field_of(fn: Callable[..., Awaitable[Any]], *args: Any) -> str:
            try:
                await act(w, fn, *args, now=T0)
            except DomainError as err:
                return f"{err.status_code} {err.fields[0].field if err.fields else '-'}"
            return "ok"

        for moment in (year_one, year_last):
            data = CaseIn(risk_summary="x", username=someone, first_follow_up_at=moment)
            assert await field_of(care.open_case, w.ops, data) == "422 first_follow_up_at"
        assert await count(w, CareCase) == 0
        case_id = await open_for(w, w.specialists[0])
        for moment in (year_one, year_last):
            assert await field_of(
                care.add_follow_up, w.specialists[0], case_id, FollowUpIn(due_at=moment)
            ) == ("422 due_at")
        assert await follow_ups(w, case_id) == []

    play(db_url, body)


def test_one_list_of_priorities() -> None:
    """The table's constraint, the lists' order and the filter read ``models.PRIORITIES``; the
    API's ``Priority`` and the pages' labels spell the same values, most urgent first."""
    assert get_args(Priority) == PRIORITIES == tuple(PRIORITY_LABELS)
