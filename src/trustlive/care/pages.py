"""HTML routes of the care domain: the staff work list (``/care``), opening a case, the case page
with its schedule and timeline, and the buyer's ``/me/care``. Thin: parse the form into the API's
structs, call care.service, render.

Forms re-render with the error and what the user typed when the user can fix it (422, 409, an
unknown request or username); refusals and cases the caller may not see get the error page (a 404,
never a hint that the case exists).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.accounts.service import Principal
from trustlive.care import service
from trustlive.care.schemas import (
    AssignIn,
    CaseIn,
    CloseIn,
    EntryIn,
    FollowUpDoneIn,
    FollowUpIn,
    ReopenIn,
    ReplyIn,
)
from trustlive.errors import DomainError
from trustlive.orders import service as orders
from trustlive.web.forms import bad_fields, checked, fixable, integer, invalid, parse, text
from trustlive.web.i18n import N_, gettext
from trustlive.web.pagination import before_id, trim_page
from trustlive.web.policy import allow, signed_in
from trustlive.web.templating import UI_TZ
from trustlive.web.validation import MAX_ID

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
Cursor = Annotated[str | None, Parameter(max_length=200)]
Short = Annotated[str, Parameter(max_length=64)]

STAFF = ("ops", "care_specialist")
PAGE_SIZE = 30

PRIORITY_LABELS = {"urgent": N_("Urgent"), "high": N_("High"), "normal": N_("Normal")}
OUTCOME_LABELS = {
    "resolved": N_("Resolved"),
    "unreachable": N_("Buyer unreachable"),
    "referred": N_("Referred"),
    "other": N_("Other"),
}
STATUS_LABELS = {"open": N_("Open"), "closed": N_("Closed")}
# Timeline entries: what staff write, the buyer's replies, and what happened to the case.
ENTRY_LABELS = {
    "note": N_("Note"),
    "call": N_("Call"),
    "message": N_("Message"),
    "visit": N_("Visit"),
    "reply": N_("Buyer's reply"),
    "opened": N_("Case opened"),
    "assigned": N_("Assigned"),
    "closed": N_("Case closed"),
    "reopened": N_("Case reopened"),
}
# API field paths -> the forms' field names where they differ.
_FIELDS = {r"username|buyer_id": "username", r"first_follow_up_plan": "first_follow_up_plan"}
_WHEN_RE = re.compile(r"(\d{4}-\d{2}-\d{2})[T ](\d{1,2}:\d{2})(:\d{2})?")


def _labels(context: dict[str, Any]) -> dict[str, Any]:
    return {
        "priorities": PRIORITY_LABELS, "outcomes": OUTCOME_LABELS, "statuses": STATUS_LABELS,
        "entry_labels": ENTRY_LABELS, "order_statuses": orders.STATUS_LABELS, **context,
    }  # fmt: skip


def _when(form: dict[str, str], name: str, *, required: bool) -> dt.datetime | None:
    """A date and time typed on a form (``datetime-local``: "2026-12-01T10:00"), read as the
    team's local time (Asia/Shanghai), as aware UTC. Blank is None when not required."""
    raw = form[name]
    if not raw and not required:
        return None
    found = _WHEN_RE.fullmatch(raw)
    try:
        if not found:
            raise ValueError
        local = dt.datetime.fromisoformat(f"{found.group(1)}T{found.group(2).zfill(5)}{found.group(3) or ''}")
        # Year 1 or 9999 would overflow on the way to UTC; no contact is planned that far off.
        if not 1970 <= local.year <= 9000:
            raise ValueError
        return local.replace(tzinfo=UI_TZ).astimezone(dt.UTC)
    except (ValueError, OverflowError):
        raise invalid(name, gettext("enter a date and time, e.g. 2026-12-01 10:00")) from None


def _id(form: dict[str, str], name: str) -> int | None:
    return integer(form, name, minimum=1, maximum=MAX_ID) if form[name] else None


# --- the work list ----------------------------------------------------------------------------


@get("/care", **allow(*STAFF))
async def board(
    db: AsyncSession, me: Principal, status: Short = "open", priority: Short = "", specialist: Short = "",
    buyer: Short = "", cursor: Cursor = None,
) -> Template:  # fmt: skip
    """Overdue first, then due today, my cases, the unassigned queue; below, every case the
    viewer may see (all of them for ops) with filters."""
    filters = {"status": status, "priority": priority, "specialist": specialist, "buyer": buyer}
    found = await service.work_list(
        db, me, **{k: v or None for k, v in filters.items()}, before_id=before_id(cursor), limit=PAGE_SIZE + 1
    )  # type: ignore[arg-type]
    items, next_cursor = trim_page(found.cases, PAGE_SIZE)
    query = urlencode({k: v for k, v in filters.items() if v})
    context = {
        "board": found.board,
        "cases": items,
        "next_cursor": next_cursor,
        "filters": filters,
        "filter_query": query + "&" if query else "",
        "specialists": found.specialists,
        "is_ops": me.is_ops,
    }
    return Template("care/board.html", context=_labels(context))


# --- opening a case ---------------------------------------------------------------------------

_NEW_FIELDS = (
    "request_id", "username", "buyer_id", "risk_summary", "priority", "specialist_id",
    "first_follow_up_at", "first_follow_up_plan",
)  # fmt: skip


async def _new_page(db: AsyncSession, me: Principal, form: dict[str, str], **extra: Any) -> Template:
    status = extra.pop("status_code", 200)
    subject = None
    error = extra.get("error")
    if (
        error is None
        or not error.fields
        or error.fields[0].field not in ("request_id", "username", "buyer_id")
    ):
        # Show who the case is about, unless the error is precisely that we could not tell.
        try:
            subject = await service.new_case(
                db, me, request_id=_id(form, "request_id"), buyer_id=_id(form, "buyer_id"),
                username=form["username"] or None,
            )  # fmt: skip
        except DomainError as err:
            fixable(err)
            if error is None:
                extra.update(error=err, bad=bad_fields(err, _FIELDS))
                status = err.status_code
    if subject is None:  # we could not tell whom the case is about: the form alone
        subject = service.NewCase(None, None, None, await service.care_specialists(db, me))
    context = {"form": form, "subject": subject, "error": None, "bad": set(), "is_ops": me.is_ops, **extra}
    return Template("care/new.html", context=_labels(context), status_code=status)


@get("/care/new", **allow(*STAFF))
async def new_page(
    db: AsyncSession, me: Principal, request_id: Short = "", buyer_id: Short = "", username: Short = ""
) -> Template:
    """The form to open a case; ``?request_id=`` (from an after-sales request) or ``?buyer_id=``
    / ``?username=`` fill in whom it is about."""
    form = {name: "" for name in _NEW_FIELDS}
    form.update(request_id=request_id.strip(), buyer_id=buyer_id.strip(), username=username.strip(),
                priority="normal")  # fmt: skip
    return await _new_page(db, me, form)


@post("/care/new", **allow(*STAFF))
async def open_case(data: Form, db: AsyncSession, me: Principal) -> Template | Redirect:
    form = {name: text(data, name) for name in _NEW_FIELDS}
    try:
        body: dict[str, Any] = {
            "risk_summary": form["risk_summary"],
            "priority": form["priority"] or "normal",
            "request_id": _id(form, "request_id"),
            "buyer_id": _id(form, "buyer_id"),
            "username": form["username"] or None,
            "specialist_id": _id(form, "specialist_id"),
            "first_follow_up_at": _when(form, "first_follow_up_at", required=False),
            "first_follow_up_plan": form["first_follow_up_plan"],
        }
        if not form["risk_summary"]:
            raise invalid("risk_summary", gettext("say why this buyer needs care"))
        case = await service.open_case(db, me, parse(CaseIn, body))
    except DomainError as err:
        await db.rollback()
        return await _new_page(db, me, form, error=fixable(err), bad=bad_fields(err, _FIELDS),
                               status_code=err.status_code)  # fmt: skip
    return Redirect(f"/care/{case.id}?done=opened", status_code=303)


# --- one case ---------------------------------------------------------------------------------


async def _case_page(db: AsyncSession, me: Principal, case_id: int, **extra: Any) -> Template:
    status = extra.pop("status_code", 200)
    view = await service.case_view(db, me, case_id)
    context = {
        "view": view, "case": view.case, "order": view.order, "me": me, "form": {}, "error": None,
        "error_form": None, "bad": set(), "done": "", **extra,
    }  # fmt: skip
    return Template("care/case.html", context=_labels(context), status_code=status)


async def _refused(db: AsyncSession, me: Principal, case_id: int, err: DomainError, form_name: str,
                   form: dict[str, Any]) -> Template:  # fmt: skip
    await db.rollback()
    fixable(err)
    return await _case_page(db, me, case_id, error=err, error_form=form_name, form=form, bad=bad_fields(err),
                            status_code=err.status_code)  # fmt: skip


def _done(case_id: int, what: str) -> Redirect:
    return Redirect(f"/care/{case_id}?done={what}", status_code=303)


@get("/care/{case_id:int}", **signed_in())
async def case_page(case_id: int, db: AsyncSession, me: Principal, done: Short = "") -> Template:
    """Summary, schedule, timeline and the actions the viewer may take; 404 for anyone who may
    not see the case."""
    return await _case_page(db, me, case_id, done=done)


@post("/care/{case_id:int}/assign", **signed_in())
async def assign(case_id: int, data: Form, db: AsyncSession, me: Principal) -> Template | Redirect:
    form = {"specialist_id": text(data, "specialist_id")}
    try:
        if not form["specialist_id"]:
            raise invalid("specialist_id", gettext("choose a care specialist"))
        await service.assign(db, me, case_id, parse(AssignIn, {"specialist_id": _id(form, "specialist_id")}))
    except DomainError as err:
        return await _refused(db, me, case_id, err, "assign", form)
    return _done(case_id, "assigned")


@post("/care/{case_id:int}/follow-ups", **signed_in())
async def add_follow_up(case_id: int, data: Form, db: AsyncSession, me: Principal) -> Template | Redirect:
    form = {"due_at": text(data, "due_at"), "plan": text(data, "plan")}
    try:
        body = {"due_at": _when(form, "due_at", required=True), "plan": form["plan"]}
        await service.add_follow_up(db, me, case_id, parse(FollowUpIn, body))
    except DomainError as err:
        return await _refused(db, me, case_id, err, "follow_up", form)
    return _done(case_id, "planned")


@post("/care/{case_id:int}/follow-ups/{follow_up_id:int}/done", **signed_in())
async def complete_follow_up(
    case_id: int, follow_up_id: int, data: Form, db: AsyncSession, me: Principal
) -> Template | Redirect:
    form = {
        "result": text(data, "result"),
        "kind": text(data, "kind") or "call",
        "follow_up_id": follow_up_id,
    }
    try:
        if not form["result"]:
            raise invalid("result", gettext("say what happened"))
        body = {"result": form["result"], "kind": form["kind"]}
        await service.complete_follow_up(db, me, case_id, follow_up_id, parse(FollowUpDoneIn, body))
    except DomainError as err:
        return await _refused(db, me, case_id, err, "done", form)
    return _done(case_id, "contacted")


@post("/care/{case_id:int}/entries", **signed_in())
async def add_entry(case_id: int, data: Form, db: AsyncSession, me: Principal) -> Template | Redirect:
    form: dict[str, Any] = {"body": text(data, "body"), "kind": text(data, "kind") or "note"}
    form["to_buyer"] = checked(data, "to_buyer")
    try:
        if not form["body"]:
            raise invalid("body", gettext("write the note first"))
        await service.add_entry(db, me, case_id, parse(EntryIn, form))
    except DomainError as err:
        return await _refused(db, me, case_id, err, "entry", form)
    return _done(case_id, "sent" if form["to_buyer"] else "noted")


@post("/care/{case_id:int}/close", **signed_in())
async def close(case_id: int, data: Form, db: AsyncSession, me: Principal) -> Template | Redirect:
    form = {"outcome": text(data, "outcome"), "note": text(data, "note")}
    try:
        if not form["outcome"]:
            raise invalid("outcome", gettext("choose how the case ends"))
        if form["outcome"] == "other" and not form["note"]:
            raise invalid("note", gettext("say what the outcome was"))
        await service.close_case(db, me, case_id, parse(CloseIn, form))
    except DomainError as err:
        return await _refused(db, me, case_id, err, "close", form)
    return _done(case_id, "closed")


@post("/care/{case_id:int}/reopen", **signed_in())
async def reopen(case_id: int, data: Form, db: AsyncSession, me: Principal) -> Template | Redirect:
    form = {"reason": text(data, "reason")}
    try:
        await service.reopen_case(db, me, case_id, parse(ReopenIn, form))
    except DomainError as err:
        return await _refused(db, me, case_id, err, "reopen", form)
    return _done(case_id, "reopened")


# --- the buyer --------------------------------------------------------------------------------


@get("/me/care", **signed_in())
async def my_cases(db: AsyncSession, me: Principal) -> Template:
    """The buyer's care cases: who looks after them, open or closed, the newest message."""
    return Template("care/my_list.html", context={"cases": await service.my_cases(db, me)})


async def _my_case_page(db: AsyncSession, me: Principal, case_id: int, **extra: Any) -> Template:
    status = extra.pop("status_code", 200)
    context = {"case": await service.my_case(db, me, case_id), "form": {}, "error": None, "bad": set(),
               "done": "", **extra}  # fmt: skip
    return Template("care/my_case.html", context=context, status_code=status)


@get("/me/care/{case_id:int}", **signed_in())
async def my_case(case_id: int, db: AsyncSession, me: Principal, done: Short = "") -> Template:
    """What the care team addressed to the buyer, their replies, and a reply form while open."""
    return await _my_case_page(db, me, case_id, done=done)


@post("/me/care/{case_id:int}/reply", **signed_in())
async def reply(case_id: int, data: Form, db: AsyncSession, me: Principal) -> Template | Redirect:
    form = {"body": text(data, "body")}
    try:
        if not form["body"]:
            raise invalid("body", gettext("write your message first"))
        await service.reply(db, me, case_id, parse(ReplyIn, form))
    except DomainError as err:
        await db.rollback()
        fixable(err)
        return await _my_case_page(db, me, case_id, error=err, form=form, bad=bad_fields(err),
                                   status_code=err.status_code)  # fmt: skip
    return Redirect(f"/me/care/{case_id}?done=sent", status_code=303)


routes = [
    board, new_page, open_case, case_page, assign, add_follow_up, complete_follow_up, add_entry, close, reopen,
    my_cases, my_case, reply,
]  # fmt: skip
