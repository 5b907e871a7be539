"""JSON routes of the trust domain: thin wrappers over trust.service (docs/scores.md).

Scores are public: the figure, its dimensions and its history. Their explanation (indicators,
curves, the order lines behind each figure) is for the shop's people, the creator themself and
ops. Complaints of false claims are filed by buyers and decided by ops.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import get, post
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trustlive.accounts.service import Principal
from trustlive.trust import service as trust
from trustlive.trust.schemas import (
    BreakdownOut,
    ComplaintDecisionIn,
    ComplaintIn,
    ComplaintOut,
    ComplaintPage,
    HistoryPoint,
    IndicatorLinesOut,
    ScoreOut,
)
from trustlive.web.pagination import DEFAULT_LIMIT, MAX_LIMIT, before_id
from trustlive.web.policy import allow, public, signed_in

TAGS = ["trust"]
Limit = Annotated[int, Parameter(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str | None, Parameter(max_length=200)]
Days = Annotated[int, Parameter(ge=1, le=365)]
Status = Annotated[str, Parameter(max_length=20)]


@get("/scores/{entity_type:str}/{entity_id:int}", tags=TAGS, **public())
async def score(entity_type: str, entity_id: int, db: AsyncSession) -> ScoreOut:
    """The score of a `shop`, `product` or `creator`: `status` `scored` with `score` ("4.62") and
    its dimensions, or `new` while it has fewer delivered orders in 90 days than `min_orders`.
    An entity without any data is `new`, never a 404. 422 for another `entity_type`."""
    return await trust.score_of(db, entity_type, entity_id)


@get("/scores/{entity_type:str}/{entity_id:int}/breakdown", tags=TAGS, **signed_in())
async def breakdown(entity_type: str, entity_id: int, me: Principal, db: AsyncSession) -> BreakdownOut:
    """The score explained: dimensions → indicators (value, points, window, curve, a hint of what
    to fix), the flash-sale restriction and settlement delay (shops). For the shop's owner and
    staff (shops, products), the creator themself, and ops: 403 or 404 for anyone else; 422 for
    another `entity_type`."""
    return await trust.breakdown(db, me, entity_type, entity_id)


@get("/scores/{entity_type:str}/{entity_id:int}/indicators/{key:str}/lines", tags=TAGS, **signed_in())
async def indicator_lines(
    entity_type: str, entity_id: int, key: str, me: Principal, db: AsyncSession, limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> IndicatorLinesOut:  # fmt: skip
    """The order lines behind one indicator, newest first, each saying whether it counts against
    the score (`counts_against`). Who may see them: as for the breakdown (403/404). 422 for an
    unknown `entity_type` or indicator `key`; 400 `bad_cursor` for a cursor this server did not
    issue; `limit` 1-100."""
    return await trust.indicator_lines(db, me, entity_type, entity_id, key, before_id(cursor), limit)


@get("/scores/{entity_type:str}/{entity_id:int}/history", tags=TAGS, **public())
async def history(entity_type: str, entity_id: int, db: AsyncSession, days: Days = 90) -> list[HistoryPoint]:
    """The score on each of the last `days` days (1-365, default 90), oldest first, a day's value
    carried forward until it changed (`score` null while the entity was new). 422 for another
    `entity_type`."""
    return await trust.history(db, entity_type, entity_id, days)


@post("/orders/{order_id:int}/lines/{line_id:int}/complaint", status_code=201, tags=TAGS, **signed_in())
async def file_complaint(
    order_id: int, line_id: int, data: ComplaintIn, me: Principal, db: AsyncSession
) -> ComplaintOut:
    """The buyer complains that an item was not as its creator described it (`claim`: 1-500
    characters). 404 `order_not_found` unless the line is on your order; 409 `no_creator`,
    `not_delivered`, `complaint_window_closed` (30 days after delivery), `already_complained`;
    422 for the claim."""
    return await trust.file_complaint(db, me, order_id, line_id, data)


@get("/complaints", tags=TAGS, **signed_in())
async def complaints(
    me: Principal, db: AsyncSession, status: Status = "", limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> ComplaintPage:
    """Complaints, newest first: all of them for ops (`status`: `pending`, `upheld`, `dismissed`),
    your own for anyone else. 422 for another status; 400 `bad_cursor`."""
    return await trust.list_complaints(db, me, status or None, before_id(cursor), limit)


@post("/complaints/{complaint_id:int}/decision", status_code=200, tags=TAGS, **allow("ops"))
async def decide_complaint(
    complaint_id: int, data: ComplaintDecisionIn, me: Principal, db: AsyncSession
) -> ComplaintOut:
    """Ops decide a complaint once: `decision` `upheld` (it counts against the creator's
    reputation score) or `dismissed`, with a `note` (at most 500 characters). 404
    `complaint_not_found`; 409 `already_decided`; 422 for another decision."""
    return await trust.decide_complaint(db, me, complaint_id, data)


@post("/scores/recompute", status_code=200, tags=TAGS, **allow("ops"))
async def recompute(uow: async_sessionmaker[AsyncSession]) -> dict[str, Any]:
    """Recompute every score from the facts now (what the nightly run does; also
    `trustlive scores recompute`). Answers with what was done, e.g. the number of entities."""
    return await trust.recompute_all(uow)


routes = [score, breakdown, indicator_lines, history, file_complaint, complaints, decide_complaint, recompute]
