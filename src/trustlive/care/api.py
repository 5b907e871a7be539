"""JSON routes of the care domain: thin wrappers over care.service.

Lists and opening are for ops and care specialists (``allow``); routes about one case are open to
any signed-in caller and the service answers 404 to whoever may not see that case, so a merchant
or a buyer cannot even learn that it exists. The buyer's own view is under ``/me/care``.
"""

from __future__ import annotations

from typing import Annotated

from litestar import get, post
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.accounts.service import Principal
from trustlive.care import service
from trustlive.care.schemas import (
    AssignIn,
    BoardOut,
    BuyerCaseOut,
    CaseIn,
    CaseOut,
    CasePage,
    CloseIn,
    EntryIn,
    FollowUpDoneIn,
    FollowUpIn,
    PersonOut,
    ReopenIn,
    ReplyIn,
)
from trustlive.web.pagination import DEFAULT_LIMIT, MAX_LIMIT, before_id, trim_page
from trustlive.web.policy import allow, signed_in

STAFF = ("ops", "care_specialist")
Limit = Annotated[int, Parameter(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str | None, Parameter(max_length=200)]
Filter = Annotated[str | None, Parameter(max_length=64)]


@get("/care/board", tags=["care"], **allow(*STAFF))
async def board(me: Principal, db: AsyncSession) -> BoardOut:
    """The work list: overdue cases (next contact past due), due later today, mine, unassigned."""
    return await service.board(db, me)


@get("/care/cases", tags=["care"], **allow(*STAFF))
async def list_cases(
    me: Principal, db: AsyncSession, status: Filter = None, priority: Filter = None, specialist: Filter = None,
    buyer: Filter = None, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None,
) -> CasePage:  # fmt: skip
    """Cases newest first: every case for ops; a specialist's own and the unassigned ones. Filters
    `status` (open, closed), `priority`, `specialist` (a user id, or `none`), `buyer` (username)."""
    cases = await service.list_cases(
        db, me, status=status, priority=priority, specialist=specialist, buyer=buyer,
        before_id=before_id(cursor), limit=limit + 1,
    )  # fmt: skip
    items, next_cursor = trim_page(cases, limit)
    return CasePage(items, next_cursor)


@post("/care/cases", status_code=201, tags=["care"], **allow(*STAFF))
async def open_case(data: CaseIn, me: Principal, db: AsyncSession) -> CaseOut:
    """Open a case from an after-sales request (`request_id`) or for a buyer (`buyer_id` or
    `username`), with a risk summary, a priority and optionally a first follow-up. 409
    `case_already_open` when that buyer already has an open case for it."""
    return await service.open_case(db, me, data)


@get("/care/specialists", tags=["care"], **allow("ops"))
async def specialists(me: Principal, db: AsyncSession) -> list[PersonOut]:
    """Everyone ops can assign a case to."""
    return await service.care_specialists(db, me)


@get("/care/cases/{case_id:int}", tags=["care"], **signed_in())
async def case_detail(case_id: int, me: Principal, db: AsyncSession) -> CaseOut:
    """One case with its schedule and timeline; 404 for anyone who may not see it."""
    return await service.get_case(db, me, case_id)


@post("/care/cases/{case_id:int}/assign", status_code=200, tags=["care"], **signed_in())
async def assign(case_id: int, data: AssignIn, me: Principal, db: AsyncSession) -> CaseOut:
    """Ops assign any care specialist (422 `not_a_care_specialist` otherwise); a specialist may
    take an unassigned case for themselves."""
    return await service.assign(db, me, case_id, data)


@post("/care/cases/{case_id:int}/follow-ups", status_code=201, tags=["care"], **signed_in())
async def add_follow_up(case_id: int, data: FollowUpIn, me: Principal, db: AsyncSession) -> CaseOut:
    """Plan a contact (`due_at` with its offset)."""
    return await service.add_follow_up(db, me, case_id, data)


@post("/care/cases/{case_id:int}/follow-ups/{follow_up_id:int}/done", status_code=200, tags=["care"],
      **signed_in())  # fmt: skip
async def complete_follow_up(
    case_id: int, follow_up_id: int, data: FollowUpDoneIn, me: Principal, db: AsyncSession
) -> CaseOut:
    """Record what happened at a planned contact."""
    return await service.complete_follow_up(db, me, case_id, follow_up_id, data)


@post("/care/cases/{case_id:int}/entries", status_code=201, tags=["care"], **signed_in())
async def add_entry(case_id: int, data: EntryIn, me: Principal, db: AsyncSession) -> CaseOut:
    """A note, call, visit or message on the timeline; `to_buyer` makes it visible to the buyer."""
    return await service.add_entry(db, me, case_id, data)


@post("/care/cases/{case_id:int}/close", status_code=200, tags=["care"], **signed_in())
async def close(case_id: int, data: CloseIn, me: Principal, db: AsyncSession) -> CaseOut:
    """Close with an outcome (resolved, unreachable, referred, other + note); read-only after."""
    return await service.close_case(db, me, case_id, data)


@post("/care/cases/{case_id:int}/reopen", status_code=200, tags=["care"], **signed_in())
async def reopen(case_id: int, me: Principal, db: AsyncSession, data: ReopenIn | None = None) -> CaseOut:
    """Ops only."""
    return await service.reopen_case(db, me, case_id, data or ReopenIn())


# --- the buyer --------------------------------------------------------------------------------


@get("/me/care", tags=["care"], **signed_in())
async def my_cases(me: Principal, db: AsyncSession) -> list[BuyerCaseOut]:
    """The caller's care cases that hold something addressed to them, with the newest entry."""
    return await service.my_cases(db, me)


@get("/me/care/{case_id:int}", tags=["care"], **signed_in())
async def my_case(case_id: int, me: Principal, db: AsyncSession) -> BuyerCaseOut:
    """One of the caller's cases: what was addressed to them and their replies; nothing else."""
    return await service.my_case(db, me, case_id)


@post("/me/care/{case_id:int}/replies", status_code=201, tags=["care"], **signed_in())
async def reply(case_id: int, data: ReplyIn, me: Principal, db: AsyncSession) -> BuyerCaseOut:
    """The buyer answers their specialist (409 `case_closed` once the case is closed)."""
    return await service.reply(db, me, case_id, data)


routes = [
    board, list_cases, open_case, specialists, case_detail, assign, add_follow_up, complete_follow_up,
    add_entry, close, reopen, my_cases, my_case, reply,
]  # fmt: skip
