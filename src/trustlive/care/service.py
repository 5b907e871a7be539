"""Care case use cases (docs/care.md).

Ops or care specialists (高危专员) open a case about a buyer who needs a person to follow them to
the end, from an after-sales request or for the buyer directly; a specialist is assigned, keeps a
follow-up schedule and a timeline, and closes the case with an outcome.

Who sees what: ops see every case; a care specialist sees the cases assigned to them and the
unassigned queue; nobody sees the staff side of a case about themselves; everyone else gets a 404,
never a hint that the case exists. The buyer sees only the entries addressed to them, through
their own shapes (``BuyerCaseOut``), and only once something has been addressed to them.

Every use case that changes a case locks its row first (``repository.get_case(for_update=True)``),
so the next-contact time it recomputes reflects every committed follow-up.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive import events
from trustlive.accounts import service as accounts
from trustlive.accounts.service import Principal
from trustlive.aftersales import service as aftersales
from trustlive.care import repository as repo
from trustlive.care.models import PRIORITIES, CareCase, CareEntry, CareFollowUp
from trustlive.care.schemas import (
    AssignIn,
    BoardOut,
    BuyerCaseOut,
    BuyerEntryOut,
    CaseIn,
    CaseOut,
    CloseIn,
    EntryIn,
    EntryOut,
    FollowUpDoneIn,
    FollowUpIn,
    FollowUpOut,
    PersonOut,
    ReopenIn,
    ReplyIn,
    RequestOut,
)
from trustlive.db import add_once, utcnow
from trustlive.errors import N_, Conflict, Forbidden, NotFound, ValidationFailed, validated
from trustlive.orders import service as orders
from trustlive.orders.schemas import OrderOut
from trustlive.web.validation import MAX_ID

CARE_ROLE = "care_specialist"
BOARD_LIMIT = 100  # cases per section of the work list
MAX_AHEAD = dt.timedelta(days=366)  # the furthest a follow-up may be planned
PAST_GRACE = dt.timedelta(minutes=5)  # "now" typed on a form is not "in the past"
MAX_SPECIALISTS = 500
# "Due today" ends at midnight where the team works.
TEAM_TZ = ZoneInfo("Asia/Shanghai")


CASE_NOT_FOUND = N_("We could not find that care case.")
CASE_CLOSED = N_("This care case is closed; reopen it to change anything.")


def _not_found() -> NotFound:
    return NotFound(CASE_NOT_FOUND, code="care_case_not_found")


# --- who may do what --------------------------------------------------------------------------


def _is_staff(actor: Principal) -> bool:
    return actor.is_ops or actor.has(CARE_ROLE)


def _can_see(viewer: Principal, case: CareCase) -> bool:
    if case.buyer_id == viewer.id:
        return False  # staff never see the staff side of a case about themselves
    if viewer.is_ops:
        return True
    return viewer.has(CARE_ROLE) and case.specialist_id in (None, viewer.id)


async def _visible_case(
    session: AsyncSession, viewer: Principal, case_id: int, *, lock: bool = False
) -> CareCase:
    case = await repo.get_case(session, case_id, for_update=lock)
    if case is None or not _can_see(viewer, case):
        raise _not_found()
    return case


def _require_open(case: CareCase) -> None:
    if case.status != "open":
        raise Conflict(CASE_CLOSED, code="case_closed")


async def _writable_case(session: AsyncSession, actor: Principal, case_id: int) -> CareCase:
    """An open case the actor may work on: ops, or the specialist it is assigned to. A specialist
    looking at the unassigned queue takes the case first."""
    case = await _visible_case(session, actor, case_id, lock=True)
    _require_open(case)
    if not actor.is_ops and case.specialist_id != actor.id:
        raise Forbidden(N_("Take this case first: it is not assigned to you."), code="take_case_first")
    return case


def _text(value: str, field: str, *, required: bool = True) -> str:
    """Trimmed text; blank where text is required is a 422 naming the field."""
    value = value.strip()
    if required and not value:
        raise ValidationFailed(N_("Write something here."), field=field)
    return value


def _check_due(due_at: dt.datetime, now: dt.datetime, field: str) -> dt.datetime:
    # Years far off are refused before any arithmetic: converting year 1 or 9999 to UTC with an
    # offset overflows the datetime range.
    if due_at.year < now.year - 1:
        raise ValidationFailed(N_("That time has passed; plan the contact ahead."), field=field)
    if due_at.year > now.year + 2:
        raise ValidationFailed(N_("Plan at most a year ahead."), field=field)
    due_at = due_at.astimezone(dt.UTC)
    if due_at < now - PAST_GRACE:
        raise ValidationFailed(N_("That time has passed; plan the contact ahead."), field=field)
    if due_at > now + MAX_AHEAD:
        raise ValidationFailed(N_("Plan at most a year ahead."), field=field)
    return due_at


async def _require_specialist(session: AsyncSession, user_id: int, buyer_id: int, field: str) -> None:
    if CARE_ROLE not in await accounts.roles_of(session, user_id):
        raise ValidationFailed(N_("This account is not a care specialist."), field=field,
                               code="not_a_care_specialist")  # fmt: skip
    if user_id == buyer_id:
        raise ValidationFailed(N_("Nobody looks after their own care case."), field=field,
                               code="own_case")  # fmt: skip


def _entry(case: CareCase, kind: str, author_id: int | None, at: dt.datetime, **values: object) -> CareEntry:
    return CareEntry(case_id=case.id, kind=kind, author_id=author_id, created_at=at, **values)  # type: ignore[arg-type]


def _duplicate() -> Conflict:
    return Conflict(N_("This buyer already has an open care case for this."), code="case_already_open")


# --- opening ----------------------------------------------------------------------------------


async def _subject(session: AsyncSession, data: CaseIn) -> tuple[int, int | None, int | None]:
    """(buyer, request, order) the new case is about; a 404 naming the field when unknown."""
    named = [f for f in ("request_id", "buyer_id", "username") if getattr(data, f) is not None]
    if len(named) != 1:
        field = "request_id" if not named else named[1]
        raise ValidationFailed(N_("Name the buyer by one of: an after-sales request, an account number or a username."),
                               field=field)  # fmt: skip
    if data.request_id is not None:
        try:
            brief = await aftersales.request_brief(session, data.request_id)
        except NotFound:
            raise NotFound(N_("There is no after-sales request with that number."), field="request_id",
                           code="request_not_found") from None  # fmt: skip
        return brief.buyer_id, brief.id, brief.order_id
    if data.buyer_id is not None:
        try:
            user = await accounts.get_user(session, data.buyer_id)
        except NotFound:
            raise NotFound(N_("There is no account with that number."), field="buyer_id",
                           code="user_not_found") from None  # fmt: skip
        return user.id, None, None
    assert data.username is not None
    return (await accounts.get_user_by_username(session, data.username)).id, None, None


async def open_case(
    session: AsyncSession, actor: Principal, data: CaseIn, now: dt.datetime | None = None
) -> CaseOut:
    """Open a case (ops or a care specialist). A specialist who opens one looks after it; ops
    may name a specialist. At most one open case per buyer and request (409)."""
    if not _is_staff(actor):
        raise Forbidden("only ops and care specialists open care cases", code="role_required")
    data = validated(data)
    now = now or utcnow()
    summary = _text(data.risk_summary, "risk_summary")
    buyer_id, request_id, order_id = await _subject(session, data)
    if buyer_id == actor.id:
        field = "request_id" if request_id else "buyer_id" if data.buyer_id else "username"
        raise ValidationFailed(N_("A care case about yourself is opened by a colleague."), field=field,
                               code="own_case")  # fmt: skip
    specialist_id = data.specialist_id
    if not actor.is_ops:
        if specialist_id not in (None, actor.id):
            raise Forbidden(N_("Only ops assign a case to someone else."), code="ops_only")
        specialist_id = actor.id
    if specialist_id is not None:
        await _require_specialist(session, specialist_id, buyer_id, "specialist_id")
    plan = _text(data.first_follow_up_plan, "first_follow_up_plan", required=False)
    due_at = None
    if data.first_follow_up_at is not None:
        due_at = _check_due(data.first_follow_up_at, now, "first_follow_up_at")
    elif plan:
        raise ValidationFailed(N_("When is the first contact due?"), field="first_follow_up_at")
    if await repo.open_case_for(session, buyer_id, request_id) is not None:
        raise _duplicate()
    case = CareCase(
        buyer_id=buyer_id, request_id=request_id, order_id=order_id, status="open", priority=data.priority,
        risk_summary=summary, specialist_id=specialist_id, opened_by_id=actor.id, next_due_at=due_at,
        outcome_note="", created_at=now, updated_at=now,
    )  # fmt: skip
    # The partial unique indexes refuse a twin opened meanwhile: a 409, not a second open case.
    if await add_once(session, case, lambda: repo.open_case_for(session, buyer_id, request_id)) is not None:
        raise _duplicate()
    session.add(_entry(case, "opened", actor.id, now))
    if due_at is not None:
        session.add(CareFollowUp(case_id=case.id, due_at=due_at, plan=plan, created_by_id=actor.id, created_at=now,
                                 result=""))  # fmt: skip
    events.record(session, "care.opened", {
        "case_id": case.id, "buyer_id": buyer_id, "request_id": request_id, "order_id": order_id,
        "priority": case.priority, "by": actor.id,
    })  # fmt: skip
    if specialist_id is not None:
        session.add(_entry(case, "assigned", actor.id, now, assignee_id=specialist_id))
        events.record(session, "care.assigned", {"case_id": case.id, "specialist_id": specialist_id,
                                                 "previous_specialist_id": None, "by": actor.id})  # fmt: skip
    await session.flush()
    return await _case_out(session, case, now)


# --- assigning --------------------------------------------------------------------------------


async def assign(
    session: AsyncSession, actor: Principal, case_id: int, data: AssignIn, now: dt.datetime | None = None
) -> CaseOut:
    """Ops assign (or reassign) any care specialist; a specialist may take an unassigned case for
    themselves. Every change is on the timeline (``assigned``, with who was replaced)."""
    data = validated(data)
    now = now or utcnow()
    case = await _visible_case(session, actor, case_id, lock=True)
    _require_open(case)
    if not actor.is_ops and data.specialist_id != actor.id:
        raise Forbidden(N_("Only ops assign a case to someone else."), code="ops_only")
    await _require_specialist(session, data.specialist_id, case.buyer_id, "specialist_id")
    previous = case.specialist_id
    if previous == data.specialist_id:
        return await _case_out(session, case, now)  # already theirs: nothing to record
    if not await repo.set_specialist(
        session, case.id, data.specialist_id, only_if_unassigned=not actor.is_ops
    ):
        raise Conflict(N_("Someone else took this case meanwhile."), code="already_taken")
    session.add(_entry(case, "assigned", actor.id, now, assignee_id=data.specialist_id))
    events.record(session, "care.assigned", {"case_id": case.id, "specialist_id": data.specialist_id,
                                             "previous_specialist_id": previous, "by": actor.id})  # fmt: skip
    await session.flush()
    return await _reread(session, case.id, now)


async def care_specialists(session: AsyncSession, actor: Principal) -> list[PersonOut]:
    """Everyone holding the care specialist role, for ops choosing whom to assign."""
    if not actor.is_ops:
        return []
    people = await accounts.list_users(session, actor, role=CARE_ROLE, limit=MAX_SPECIALISTS)
    return [PersonOut(u.id, u.username, u.display_name) for u, _ in people]


# --- the schedule -----------------------------------------------------------------------------


async def add_follow_up(
    session: AsyncSession, actor: Principal, case_id: int, data: FollowUpIn, now: dt.datetime | None = None
) -> CaseOut:
    """Plan a contact; the case's next contact due is the earliest one not done."""
    data = validated(data)
    now = now or utcnow()
    case = await _writable_case(session, actor, case_id)
    due_at = _check_due(data.due_at, now, "due_at")
    session.add(CareFollowUp(case_id=case.id, due_at=due_at, plan=_text(data.plan, "plan", required=False),
                             created_by_id=actor.id, created_at=now, result=""))  # fmt: skip
    await session.flush()
    await repo.refresh_next_due(session, case.id)
    return await _reread(session, case.id, now)


async def complete_follow_up(
    session: AsyncSession, actor: Principal, case_id: int, follow_up_id: int, data: FollowUpDoneIn,
    now: dt.datetime | None = None,
) -> CaseOut:  # fmt: skip
    """Record what happened at a planned contact: the follow-up is done, its result goes on the
    timeline (internal) and the next contact due moves on."""
    data = validated(data)
    now = now or utcnow()
    case = await _writable_case(session, actor, case_id)
    result = _text(data.result, "result")
    follow_up = await repo.get_follow_up(session, follow_up_id)
    if follow_up is None or follow_up.case_id != case.id:
        raise NotFound(N_("That follow-up is not on this case."), code="follow_up_not_found")
    if not await repo.finish_follow_up(session, follow_up.id, actor.id, result, now):
        raise Conflict(N_("This follow-up is done already."), code="follow_up_done")
    session.add(_entry(case, data.kind, actor.id, now, body=result, follow_up_id=follow_up.id))
    await session.flush()
    await repo.refresh_next_due(session, case.id)
    return await _reread(session, case.id, now)


# --- the timeline -----------------------------------------------------------------------------


async def add_entry(
    session: AsyncSession, actor: Principal, case_id: int, data: EntryIn, now: dt.datetime | None = None
) -> CaseOut:
    """A note, call, visit or message on the timeline: internal, or addressed to the buyer (who
    then sees it, and the case, on /me/care)."""
    data = validated(data)
    now = now or utcnow()
    case = await _writable_case(session, actor, case_id)
    entry = _entry(case, data.kind, actor.id, now, body=_text(data.body, "body"), to_buyer=data.to_buyer)
    session.add(entry)
    await session.flush()
    if data.to_buyer:
        events.record(session, "care.message_to_buyer",
                      {"case_id": case.id, "buyer_id": case.buyer_id, "entry_id": entry.id})  # fmt: skip
    return await _case_out(session, case, now)


# --- closing ----------------------------------------------------------------------------------


async def close_case(
    session: AsyncSession, actor: Principal, case_id: int, data: CloseIn, now: dt.datetime | None = None
) -> CaseOut:
    """Close with an outcome (ops or the assigned specialist); "other" needs a note. A closed
    case is read-only until ops reopen it."""
    data = validated(data)
    now = now or utcnow()
    case = await _writable_case(session, actor, case_id)
    note = _text(data.note, "note", required=data.outcome == "other")
    if not await repo.move(session, case.id, "open", status="closed", outcome=data.outcome, outcome_note=note,
                           closed_at=now, closed_by_id=actor.id, updated_at=now):  # fmt: skip
        raise Conflict(CASE_CLOSED, code="case_closed")
    session.add(_entry(case, "closed", actor.id, now, body=note, outcome=data.outcome))
    events.record(session, "care.closed", {"case_id": case.id, "buyer_id": case.buyer_id, "outcome": data.outcome,
                                           "by": actor.id})  # fmt: skip
    await session.flush()
    return await _reread(session, case.id, now)


async def reopen_case(
    session: AsyncSession, actor: Principal, case_id: int, data: ReopenIn, now: dt.datetime | None = None
) -> CaseOut:
    """Ops only: a closed case opens again (its outcome goes; the timeline keeps it)."""
    data = validated(data)
    now = now or utcnow()
    case = await _visible_case(session, actor, case_id, lock=True)
    if not actor.is_ops:
        raise Forbidden(N_("Only ops can reopen a care case."), code="ops_only")
    if case.status != "closed":
        raise Conflict(N_("This care case is open already."), code="case_open")
    buyer_id, request_id = case.buyer_id, case.request_id
    if await repo.open_case_for(session, buyer_id, request_id) is not None:
        raise _duplicate()
    try:
        async with session.begin_nested():
            moved = await repo.move(session, case.id, "closed", status="open", outcome=None, outcome_note="",
                                    closed_at=None, closed_by_id=None, updated_at=now)  # fmt: skip
    except IntegrityError:
        # The partial unique index refused it: a twin opened meanwhile (as db.add_once, any other
        # refusal is raised, not dressed up as a 409).
        if await repo.open_case_for(session, buyer_id, request_id) is None:
            raise
        raise _duplicate() from None
    if not moved:
        raise Conflict(N_("This care case is open already."), code="case_open")
    session.add(_entry(case, "reopened", actor.id, now, body=_text(data.reason, "reason", required=False)))
    events.record(session, "care.reopened", {"case_id": case.id, "buyer_id": case.buyer_id, "by": actor.id})
    await session.flush()
    return await _reread(session, case.id, now)


# --- reading (staff) --------------------------------------------------------------------------


def _person(users: dict[int, object], user_id: int | None) -> PersonOut | None:
    user = users.get(user_id) if user_id is not None else None
    if user is None:
        return None
    return PersonOut(user.id, user.username, user.display_name)  # type: ignore[attr-defined]


async def _people(session: AsyncSession, ids: Iterable[int | None]) -> dict[int, object]:
    return dict(await accounts.users_by_ids(session, sorted({i for i in ids if i is not None})))


def _summary(case: CareCase, users: dict[int, object], now: dt.datetime) -> CaseOut:
    buyer = _person(users, case.buyer_id)
    assert buyer is not None
    return CaseOut(
        id=case.id, status=case.status, priority=case.priority, risk_summary=case.risk_summary, buyer=buyer,
        request_id=case.request_id, order_id=case.order_id, specialist=_person(users, case.specialist_id),
        opened_by=_person(users, case.opened_by_id), created_at=case.created_at, updated_at=case.updated_at,
        next_due_at=case.next_due_at,
        overdue=case.status == "open" and case.next_due_at is not None and case.next_due_at < now,
        outcome=case.outcome, outcome_note=case.outcome_note, closed_at=case.closed_at,
        closed_by=_person(users, case.closed_by_id),
    )  # fmt: skip


async def _summaries(session: AsyncSession, cases: list[CareCase], now: dt.datetime) -> list[CaseOut]:
    """Cases for a list: every person named on them read in one query."""
    users = await _people(session, (i for c in cases for i in (c.buyer_id, c.specialist_id, c.opened_by_id,
                                                                c.closed_by_id)))  # fmt: skip
    return [_summary(c, users, now) for c in cases]


async def _request_out(session: AsyncSession, request_id: int) -> RequestOut:
    brief = await aftersales.request_brief(session, request_id)
    return RequestOut(brief.id, brief.order_id, brief.shop_id, brief.kind, brief.reason, brief.status,
                      brief.amount_fen, brief.created_at)  # fmt: skip


async def _reread(session: AsyncSession, case_id: int, now: dt.datetime) -> CaseOut:
    """A case after a conditional UPDATE, which the session's copy does not see: read it again."""
    case = await repo.get_case(session, case_id)
    assert case is not None
    return await _case_out(session, case, now)


async def _case_out(session: AsyncSession, case: CareCase, now: dt.datetime) -> CaseOut:
    follow_ups = await repo.follow_ups_of(session, case.id)
    entries = await repo.entries_of(session, case.id)
    users = await _people(session, [
        case.buyer_id, case.specialist_id, case.opened_by_id, case.closed_by_id,
        *(i for f in follow_ups for i in (f.created_by_id, f.done_by_id)),
        *(i for e in entries for i in (e.author_id, e.assignee_id)),
    ])  # fmt: skip
    out = _summary(case, users, now)
    out.follow_ups = [
        FollowUpOut(
            id=f.id, due_at=f.due_at, plan=f.plan, created_by=_person(users, f.created_by_id), created_at=f.created_at,
            done_at=f.done_at, done_by=_person(users, f.done_by_id), result=f.result,
            overdue=case.status == "open" and f.done_at is None and f.due_at < now, alerted_at=f.alerted_at,
        )
        for f in follow_ups
    ]  # fmt: skip
    out.entries = [
        EntryOut(
            id=e.id, kind=e.kind, body=e.body, to_buyer=e.to_buyer, author=_person(users, e.author_id),
            created_at=e.created_at, follow_up_id=e.follow_up_id, assignee=_person(users, e.assignee_id),
            outcome=e.outcome,
        )
        for e in entries
    ]  # fmt: skip
    if case.request_id is not None:
        out.request = await _request_out(session, case.request_id)
    return out


async def get_case(
    session: AsyncSession, viewer: Principal, case_id: int, now: dt.datetime | None = None
) -> CaseOut:
    """One case with its schedule and timeline, for ops and the specialists who may see it."""
    return await _case_out(session, await _visible_case(session, viewer, case_id), now or utcnow())


@dataclass(frozen=True)
class CaseView:
    """What the case page shows: the case, its order (for the buyer's contact details), whom
    ops may assign, and what the viewer may do."""

    case: CaseOut
    order: OrderOut | None
    specialists: list[PersonOut]
    can_write: bool  # notes, schedule, close: ops or the assigned specialist, while open
    can_take: bool  # a specialist looking at an unassigned open case
    can_reopen: bool  # ops, once closed


async def case_view(
    session: AsyncSession, viewer: Principal, case_id: int, now: dt.datetime | None = None
) -> CaseView:
    case = await get_case(session, viewer, case_id, now)
    is_open = case.status == "open"
    mine = case.specialist is not None and case.specialist.id == viewer.id
    return CaseView(
        case=case,
        order=await orders.load_order(session, case.order_id) if case.order_id is not None else None,
        specialists=await care_specialists(session, viewer) if is_open else [],
        can_write=is_open and (viewer.is_ops or mine),
        can_take=is_open and case.specialist is None and viewer.has(CARE_ROLE),
        can_reopen=not is_open and viewer.is_ops,
    )


@dataclass(frozen=True)
class NewCase:
    """What the "open a case" form knows before it is sent: the buyer and request it is about
    (from ``?request_id=`` or ``?buyer_id=``/``?username=``), an open case they have already."""

    buyer: PersonOut | None
    request: RequestOut | None
    open_case_id: int | None
    specialists: list[PersonOut]


async def new_case(
    session: AsyncSession, actor: Principal, *, request_id: int | None = None, buyer_id: int | None = None,
    username: str | None = None,
) -> NewCase:  # fmt: skip
    if not _is_staff(actor):
        raise Forbidden("only ops and care specialists open care cases", code="role_required")
    if request_id is None and buyer_id is None and not username:
        return NewCase(None, None, None, await care_specialists(session, actor))
    probe = CaseIn(risk_summary="-", request_id=request_id, buyer_id=buyer_id, username=username or None)
    buyer, request, _ = await _subject(session, probe)
    brief = None
    if request is not None:
        brief = await _request_out(session, request)
    existing = await repo.open_case_for(session, buyer, request)
    users = await _people(session, [buyer])
    return NewCase(_person(users, buyer), brief, existing.id if existing else None,
                   await care_specialists(session, actor))  # fmt: skip


def end_of_day(now: dt.datetime) -> dt.datetime:
    """Midnight after ``now`` where the team works, in UTC."""
    local = now.astimezone(TEAM_TZ)
    midnight = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(), tzinfo=TEAM_TZ)
    return midnight.astimezone(dt.UTC)


async def board(session: AsyncSession, viewer: Principal, now: dt.datetime | None = None) -> BoardOut:
    """The work list: overdue cases first (next contact past due), then those due later today,
    the viewer's own open cases and the unassigned queue."""
    if not _is_staff(viewer):
        raise Forbidden("only ops and care specialists see care cases", code="role_required")
    now = now or utcnow()
    scope = {"viewer_id": viewer.id, "ops": viewer.is_ops, "limit": BOARD_LIMIT}
    overdue = await repo.due_cases(session, before=now, **scope)  # type: ignore[arg-type]
    today = await repo.due_cases(session, before=end_of_day(now), after=now, **scope)  # type: ignore[arg-type]
    mine = await repo.assigned_to(session, viewer.id, BOARD_LIMIT) if viewer.has(CARE_ROLE) else []
    queue = await repo.unassigned(session, viewer.id, BOARD_LIMIT)
    out = await _summaries(session, [*overdue, *today, *mine, *queue], now)
    a, b, c = len(overdue), len(overdue) + len(today), len(overdue) + len(today) + len(mine)
    return BoardOut(overdue=out[:a], due_today=out[a:b], mine=out[b:c], unassigned=out[c:])


async def list_cases(
    session: AsyncSession, viewer: Principal, *, status: str | None = None, priority: str | None = None,
    specialist: str | None = None, buyer: str | None = None, before_id: int | None = None, limit: int = 20,
    now: dt.datetime | None = None,
) -> list[CaseOut]:  # fmt: skip
    """Cases the viewer sees, newest first. Filters: ``status`` (open, closed), ``priority``,
    ``specialist`` (a user id, or ``none`` for the unassigned), ``buyer`` (a username)."""
    if not _is_staff(viewer):
        raise Forbidden("only ops and care specialists see care cases", code="role_required")
    if status not in (None, "open", "closed"):
        raise ValidationFailed("status: open or closed", field="status")
    if priority is not None and priority not in PRIORITIES:
        raise ValidationFailed("priority: urgent, high or normal", field="priority")
    assignee, unassigned_only = None, False
    if specialist == "none":
        unassigned_only = True
    elif specialist is not None:
        # ASCII digits only: "²".isdigit() is true, and int() refuses it.
        if not re.fullmatch(r"\d{1,19}", specialist, re.ASCII) or not 0 < int(specialist) <= MAX_ID:
            raise ValidationFailed("specialist: a user id, or none for the unassigned", field="specialist")
        assignee = int(specialist)
    buyer_id = (await accounts.get_user_by_username(session, buyer)).id if buyer else None
    cases = await repo.list_cases(
        session, viewer_id=viewer.id, ops=viewer.is_ops, status=status, priority=priority, assignee=assignee,
        unassigned_only=unassigned_only, buyer_id=buyer_id, before_id=before_id, limit=limit,
    )  # fmt: skip
    return await _summaries(session, cases, now or utcnow())


@dataclass(frozen=True)
class WorkList:
    """What ``/care`` shows: the board, one page of the filtered list, whom ops may filter by."""

    board: BoardOut
    cases: list[CaseOut]
    specialists: list[PersonOut]


async def work_list(
    session: AsyncSession, viewer: Principal, *, status: str | None = None, priority: str | None = None,
    specialist: str | None = None, buyer: str | None = None, before_id: int | None = None, limit: int = 20,
    now: dt.datetime | None = None,
) -> WorkList:  # fmt: skip
    now = now or utcnow()
    cases = await list_cases(
        session, viewer, status=status, priority=priority, specialist=specialist, buyer=buyer,
        before_id=before_id, limit=limit, now=now,
    )  # fmt: skip
    return WorkList(await board(session, viewer, now), cases, await care_specialists(session, viewer))


# --- the buyer's side -------------------------------------------------------------------------


def _buyer_case(case: CareCase, entries: list[CareEntry], users: dict[int, object]) -> BuyerCaseOut:
    specialist = users.get(case.specialist_id) if case.specialist_id is not None else None
    name = specialist.display_name if specialist is not None else None  # type: ignore[attr-defined]
    return BuyerCaseOut(
        id=case.id, is_open=case.status == "open", specialist_name=name, order_id=case.order_id,
        opened_at=case.created_at,
        entries=[
            BuyerEntryOut(
                id=e.id, kind=e.kind, body=e.body, from_buyer=e.author_id == case.buyer_id,
                # Only the specialist is named; anyone else on staff writes as "the care team".
                author_name=name if e.author_id is not None and e.author_id == case.specialist_id else None,
                created_at=e.created_at,
            )
            for e in entries
            if e.to_buyer
        ],
    )  # fmt: skip


async def my_cases(session: AsyncSession, buyer: Principal) -> list[BuyerCaseOut]:
    """The buyer's cases that hold something addressed to them (open first), each with the
    newest such entry."""
    cases = await repo.buyer_cases(session, buyer.id)
    latest = await repo.latest_buyer_entries(session, [c.id for c in cases])
    users = await _people(session, (c.specialist_id for c in cases))
    return [_buyer_case(c, [latest[c.id]] if c.id in latest else [], users) for c in cases]


async def _buyer_visible(
    session: AsyncSession, buyer: Principal, case_id: int, *, lock: bool = False
) -> tuple[CareCase, list[CareEntry]]:
    """The buyer's case and the entries addressed to them; 404 for anyone else's case and for a
    case nothing has been addressed to yet."""
    case = await repo.get_case(session, case_id, for_update=lock)
    if case is None or case.buyer_id != buyer.id:
        raise _not_found()
    entries = await repo.entries_of(session, case.id, to_buyer_only=True)
    if not entries:
        raise _not_found()
    return case, entries


async def my_case(session: AsyncSession, buyer: Principal, case_id: int) -> BuyerCaseOut:
    """One of the buyer's cases with every entry addressed to them; 404 for anyone else's case and
    for a case nothing has been addressed to yet."""
    case, entries = await _buyer_visible(session, buyer, case_id)
    return _buyer_case(case, entries, await _people(session, [case.specialist_id]))


async def reply(
    session: AsyncSession, buyer: Principal, case_id: int, data: ReplyIn, now: dt.datetime | None = None
) -> BuyerCaseOut:
    """The buyer answers on an open case; staff and the buyer see the reply."""
    data = validated(data)
    now = now or utcnow()
    case, entries = await _buyer_visible(session, buyer, case_id, lock=True)
    _require_open(case)
    entry = _entry(case, "reply", buyer.id, now, body=_text(data.body, "body"), to_buyer=True)
    session.add(entry)
    await session.flush()
    events.record(session, "care.buyer_replied",
                  {"case_id": case.id, "specialist_id": case.specialist_id, "entry_id": entry.id})  # fmt: skip
    return _buyer_case(case, [*entries, entry], await _people(session, [case.specialist_id]))


# --- the overdue sweeper's step ---------------------------------------------------------------


async def alert_overdue(session: AsyncSession, follow_up_id: int, now: dt.datetime) -> bool:
    """Flag one follow-up that has become overdue, once (``alerted_at``), and announce it
    (``care.follow_up_overdue``). False when it was flagged or done meanwhile."""
    follow_up = await repo.get_follow_up(session, follow_up_id)
    case = await repo.get_case(session, follow_up.case_id) if follow_up is not None else None
    if follow_up is None or case is None or case.status != "open":
        return False  # closed meanwhile: nobody is due to call
    if not await repo.mark_alerted(session, follow_up_id, now):
        return False
    events.record(session, "care.follow_up_overdue", {
        "case_id": case.id, "follow_up_id": follow_up.id, "specialist_id": case.specialist_id,
        "buyer_id": case.buyer_id, "due_at": follow_up.due_at.isoformat(),
    })  # fmt: skip
    return True
