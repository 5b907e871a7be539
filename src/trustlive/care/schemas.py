"""JSON shapes of the care API. Staff shapes (``CaseOut``) and the buyer's (``BuyerCaseOut``) are
separate structs, so nothing internal can reach a buyer by accident."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

Id = Annotated[int, msgspec.Meta(ge=1, le=2**62)]  # ids are 63-bit in both databases
Priority = Literal["urgent", "high", "normal"]
Outcome = Literal["resolved", "unreachable", "referred", "other"]
# What staff write on the timeline; "reply" (the buyer's) and the case's own events are not written.
EntryKind = Literal["note", "call", "message", "visit"]
ContactKind = Literal["call", "message", "visit"]
# A moment with its offset ("2026-12-01T10:00:00+08:00"): a naive time is refused, not guessed.
Moment = Annotated[dt.datetime, msgspec.Meta(tz=True)]
Summary = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
Body = Annotated[str, msgspec.Meta(min_length=1, max_length=4000)]
Plan = Annotated[str, msgspec.Meta(max_length=500)]  # blank: "contact the buyer"


class CaseIn(msgspec.Struct, forbid_unknown_fields=True):
    """Open a case from an after-sales request (the buyer and order come from it) or for a buyer,
    named by id or username: exactly one of ``request_id``, ``buyer_id``, ``username``."""

    risk_summary: Summary
    request_id: Id | None = None
    buyer_id: Id | None = None
    username: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    priority: Priority = "normal"
    specialist_id: Id | None = None  # ops only; a specialist who opens a case gets it
    first_follow_up_at: Moment | None = None
    first_follow_up_plan: Plan = ""


class AssignIn(msgspec.Struct, forbid_unknown_fields=True):
    specialist_id: Id


class FollowUpIn(msgspec.Struct, forbid_unknown_fields=True):
    due_at: Moment
    plan: Plan = ""


class FollowUpDoneIn(msgspec.Struct, forbid_unknown_fields=True):
    result: Body
    kind: ContactKind = "call"


class EntryIn(msgspec.Struct, forbid_unknown_fields=True):
    body: Body
    kind: EntryKind = "note"
    to_buyer: bool = False


class CloseIn(msgspec.Struct, forbid_unknown_fields=True):
    outcome: Outcome
    note: Annotated[str, msgspec.Meta(max_length=2000)] = ""  # required for "other"


class ReopenIn(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(max_length=2000)] = ""


class ReplyIn(msgspec.Struct, forbid_unknown_fields=True):
    body: Body


class PersonOut(msgspec.Struct):
    id: int
    username: str
    display_name: str


class FollowUpOut(msgspec.Struct):
    id: int
    due_at: dt.datetime
    plan: str
    created_by: PersonOut | None
    created_at: dt.datetime
    done_at: dt.datetime | None
    done_by: PersonOut | None
    result: str
    overdue: bool
    alerted_at: dt.datetime | None


class EntryOut(msgspec.Struct):
    id: int
    kind: str
    body: str
    to_buyer: bool
    author: PersonOut | None
    created_at: dt.datetime
    follow_up_id: int | None = None
    assignee: PersonOut | None = None  # kind "assigned"
    outcome: str | None = None  # kind "closed"


class RequestOut(msgspec.Struct):
    """The after-sales request a case was opened from, as staff see it on the case."""

    id: int
    order_id: int
    shop_id: int
    kind: str
    reason: str
    status: str
    amount_fen: int
    created_at: dt.datetime


class CaseOut(msgspec.Struct):
    id: int
    status: str
    priority: str
    risk_summary: str
    buyer: PersonOut
    request_id: int | None
    order_id: int | None
    specialist: PersonOut | None
    opened_by: PersonOut | None
    created_at: dt.datetime
    updated_at: dt.datetime
    next_due_at: dt.datetime | None
    overdue: bool
    outcome: str | None
    outcome_note: str
    closed_at: dt.datetime | None
    closed_by: PersonOut | None = None
    follow_ups: list[FollowUpOut] = []  # on one case, not in lists
    entries: list[EntryOut] = []  # on one case, not in lists
    request: RequestOut | None = None  # on one case, not in lists


class CasePage(msgspec.Struct):
    items: list[CaseOut]
    next_cursor: str | None


class BoardOut(msgspec.Struct):
    """The work list of ``/care``: overdue first, then due today, my cases, the unassigned queue."""

    overdue: list[CaseOut]
    due_today: list[CaseOut]
    mine: list[CaseOut]
    unassigned: list[CaseOut]


class BuyerEntryOut(msgspec.Struct):
    id: int
    kind: str  # "reply" for the buyer's own, else what staff wrote (note, call, message, visit)
    body: str
    from_buyer: bool
    author_name: str | None  # the specialist's display name; None for the care team or the buyer
    created_at: dt.datetime


class BuyerCaseOut(msgspec.Struct):
    """A care case as its buyer sees it: who looks after them, whether it is open, and what was
    addressed to them. Nothing else (no risk summary, internal notes, schedule or staff data)."""

    id: int
    is_open: bool
    specialist_name: str | None
    order_id: int | None
    opened_at: dt.datetime
    entries: list[BuyerEntryOut] = []
