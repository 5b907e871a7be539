"""Every query of the live domain."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.db import insert_rows
from trustlive.live.models import (
    FlashSale,
    FlashSaleClaim,
    LiveBan,
    LiveBlockedWord,
    LiveComment,
    LiveCostream,
    LiveCustomerNote,
    LiveFeatured,
    LiveIdBlock,
    LiveModerator,
    LiveMute,
    LiveOrder,
    LiveSession,
    LiveVisit,
    SaleStatus,
    SessionStatus,
)


def _insert(session: AsyncSession):  # type: ignore[no-untyped-def]
    return pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert


# --- sessions ---------------------------------------------------------------------------------


async def get_session(session: AsyncSession, session_id: int, *, fresh: bool = False) -> LiveSession | None:
    if fresh:
        stmt = (
            select(LiveSession).where(LiveSession.id == session_id).execution_options(populate_existing=True)
        )
        return await session.scalar(stmt)
    return await session.get(LiveSession, session_id)


async def sessions_by_ids(session: AsyncSession, ids: list[int]) -> dict[int, LiveSession]:
    if not ids:
        return {}
    rows = await session.scalars(
        select(LiveSession)
        .where(LiveSession.id.in_(sorted(set(ids))))
        .execution_options(populate_existing=True)
    )
    return {r.id: r for r in rows}


async def list_sessions(
    session: AsyncSession,
    *,
    creator_id: int | None = None,
    statuses: tuple[str, ...] = (),
    before_id: int | None = None,
    limit: int,
) -> list[LiveSession]:
    stmt = select(LiveSession).order_by(LiveSession.id.desc()).limit(limit)
    if creator_id is not None:
        stmt = stmt.where(LiveSession.creator_id == creator_id)
    if statuses:
        stmt = stmt.where(LiveSession.status.in_(statuses))
    if before_id is not None:
        stmt = stmt.where(LiveSession.id < before_id)
    return list(await session.scalars(stmt))


async def live_session_of(session: AsyncSession, creator_id: int) -> LiveSession | None:
    stmt = select(LiveSession).where(
        LiveSession.creator_id == creator_id, LiveSession.status == SessionStatus.live
    )
    return await session.scalar(stmt)


async def live_sessions_of(session: AsyncSession, creator_ids: list[int]) -> list[LiveSession]:
    """The sessions on air of these creators, latest start first (one per creator at most: the
    partial unique index on live sessions serves the lookup)."""
    if not creator_ids:
        return []
    stmt = (
        select(LiveSession)
        .where(LiveSession.status == SessionStatus.live, LiveSession.creator_id.in_(sorted(set(creator_ids))))
        .order_by(LiveSession.started_at.desc(), LiveSession.id.desc())
    )
    return list(await session.scalars(stmt))


async def transition(session: AsyncSession, session_id: int, frm: str, to: str, **values: Any) -> bool:
    """Move a session from ``frm`` to ``to`` in one conditional UPDATE: racing actors cannot both
    win. True when this call made the move."""
    stmt = (
        update(LiveSession)
        .where(LiveSession.id == session_id, LiveSession.status == frm)
        .values(status=to, **values)
        .execution_options(synchronize_session=False)
    )
    return (await session.execute(stmt)).rowcount == 1


async def heartbeat(session: AsyncSession, session_id: int, now: dt.datetime) -> bool:
    stmt = (
        update(LiveSession)
        .where(LiveSession.id == session_id, LiveSession.status == SessionStatus.live)
        .values(heartbeat_at=now)
        .execution_options(synchronize_session=False)
    )
    return (await session.execute(stmt)).rowcount == 1


async def silent_sessions(session: AsyncSession, cutoff: dt.datetime, limit: int = 100) -> list[int]:
    stmt = (
        select(LiveSession.id)
        .where(LiveSession.status == SessionStatus.live, LiveSession.heartbeat_at < cutoff)
        .order_by(LiveSession.id)
        .limit(limit)
    )
    return list(await session.scalars(stmt))


async def add_counters(
    session: AsyncSession, session_id: int, *, entries: int = 0, likes: int = 0, comments: int = 0,
    viewers: int = 0,
) -> None:  # fmt: skip
    """Add to the replay's counters; peak viewers only rises."""
    greatest = func.max if session.bind.dialect.name == "sqlite" else func.greatest
    await session.execute(
        update(LiveSession)
        .where(LiveSession.id == session_id)
        .values(
            entries=LiveSession.entries + entries,
            likes=LiveSession.likes + likes,
            comments=LiveSession.comments + comments,
            peak_viewers=greatest(LiveSession.peak_viewers, viewers),
        )
        .execution_options(synchronize_session=False)
    )


async def add_sales(session: AsyncSession, session_id: int, orders: int, units: int, fen: int) -> None:
    await session.execute(
        update(LiveSession)
        .where(LiveSession.id == session_id)
        .values(
            orders=LiveSession.orders + orders,
            units=LiveSession.units + units,
            sales_fen=LiveSession.sales_fen + fen,
        )
        .execution_options(synchronize_session=False)
    )


# --- featured products ------------------------------------------------------------------------


async def featured_of(session: AsyncSession, session_ids: list[int]) -> dict[int, list[int]]:
    if not session_ids:
        return {}
    stmt = (
        select(LiveFeatured.session_id, LiveFeatured.product_id)
        .where(LiveFeatured.session_id.in_(sorted(set(session_ids))))
        .order_by(LiveFeatured.session_id, LiveFeatured.position, LiveFeatured.id)
    )
    found: dict[int, list[int]] = {s: [] for s in session_ids}
    for sid, pid in await session.execute(stmt):
        found[sid].append(pid)
    return found


async def set_featured(session: AsyncSession, session_id: int, product_ids: list[int]) -> None:
    await session.execute(delete(LiveFeatured).where(LiveFeatured.session_id == session_id))
    if product_ids:
        await session.execute(
            LiveFeatured.__table__.insert(),
            [{"session_id": session_id, "product_id": p, "position": i} for i, p in enumerate(product_ids)],
        )


# --- flash sales ------------------------------------------------------------------------------


async def running_sale(session: AsyncSession, session_id: int) -> FlashSale | None:
    stmt = (
        select(FlashSale)
        .where(FlashSale.session_id == session_id, FlashSale.status == SaleStatus.running)
        .execution_options(populate_existing=True)
    )
    return await session.scalar(stmt)


async def get_sale(session: AsyncSession, sale_id: int) -> FlashSale | None:
    stmt = select(FlashSale).where(FlashSale.id == sale_id).execution_options(populate_existing=True)
    return await session.scalar(stmt)


async def sales_of(session: AsyncSession, session_id: int) -> list[FlashSale]:
    stmt = select(FlashSale).where(FlashSale.session_id == session_id).order_by(FlashSale.id)
    return list(await session.scalars(stmt))


async def claim_sale(session: AsyncSession, sale_id: int, quantity: int, now: dt.datetime) -> int | None:
    """Take ``quantity`` of the sale's allocation in one conditional UPDATE (running, before its
    countdown ends, within the allocation). The units sold after it, or None when refused."""
    stmt = (
        update(FlashSale)
        .where(
            FlashSale.id == sale_id,
            FlashSale.status == SaleStatus.running,
            FlashSale.ends_at > now,
            FlashSale.sold + quantity <= FlashSale.allocation,
        )
        .values(sold=FlashSale.sold + quantity)
        .returning(FlashSale.sold)
        .execution_options(synchronize_session=False)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def claim_buyer(session: AsyncSession, sale_id: int, buyer_id: int, quantity: int, limit: int) -> bool:
    """Add ``quantity`` to what the buyer bought in this sale, only within ``limit``: one upsert."""
    if quantity > limit:
        return False
    stmt = _insert(session)(FlashSaleClaim).values(sale_id=sale_id, buyer_id=buyer_id, quantity=quantity)
    stmt = stmt.on_conflict_do_update(
        index_elements=[FlashSaleClaim.sale_id, FlashSaleClaim.buyer_id],
        set_={"quantity": FlashSaleClaim.quantity + quantity},
        where=FlashSaleClaim.quantity + quantity <= limit,
    ).returning(FlashSaleClaim.quantity)
    return (await session.execute(stmt)).first() is not None


async def release_claim(session: AsyncSession, sale_id: int, buyer_id: int, quantity: int) -> None:
    """Give units back to a sale (its order was cancelled), while the sale still runs."""
    greatest = func.max if session.bind.dialect.name == "sqlite" else func.greatest
    await session.execute(
        update(FlashSale)
        .where(FlashSale.id == sale_id, FlashSale.status == SaleStatus.running)
        .values(sold=greatest(FlashSale.sold - quantity, 0))
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(FlashSaleClaim)
        .where(FlashSaleClaim.sale_id == sale_id, FlashSaleClaim.buyer_id == buyer_id)
        .values(quantity=greatest(FlashSaleClaim.quantity - quantity, 0))
        .execution_options(synchronize_session=False)
    )


async def end_sale(session: AsyncSession, sale_id: int, status: str, now: dt.datetime) -> bool:
    stmt = (
        update(FlashSale)
        .where(FlashSale.id == sale_id, FlashSale.status == SaleStatus.running)
        .values(status=status, ended_at=now)
        .execution_options(synchronize_session=False)
    )
    return (await session.execute(stmt)).rowcount == 1


async def due_sales(session: AsyncSession, now: dt.datetime, limit: int = 100) -> list[FlashSale]:
    stmt = (
        select(FlashSale)
        .where(FlashSale.status == SaleStatus.running, FlashSale.ends_at <= now)
        .order_by(FlashSale.id)
        .limit(limit)
    )
    return list(await session.scalars(stmt))


async def claimed_by(session: AsyncSession, sale_id: int, buyer_id: int) -> int:
    stmt = select(FlashSaleClaim.quantity).where(
        FlashSaleClaim.sale_id == sale_id, FlashSaleClaim.buyer_id == buyer_id
    )
    return (await session.scalar(stmt)) or 0


# --- orders from the room ---------------------------------------------------------------------


async def live_orders_of(session: AsyncSession, session_id: int, limit: int = 500) -> list[LiveOrder]:
    stmt = (
        select(LiveOrder).where(LiveOrder.session_id == session_id).order_by(LiveOrder.id.desc()).limit(limit)
    )
    return list(await session.scalars(stmt))


async def live_order_of(session: AsyncSession, order_id: int) -> LiveOrder | None:
    return await session.scalar(select(LiveOrder).where(LiveOrder.order_id == order_id))


# --- comments ---------------------------------------------------------------------------------


async def insert_comments(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """One statement for a batch of comments (``db.insert_rows``); a row whose id is there already
    (a batch retried after a failed commit) is skipped."""
    if not rows:
        return
    if session.bind.dialect.name == "postgresql":
        await insert_rows(session, (LiveComment.__table__, rows), suffix="ON CONFLICT (id) DO NOTHING")
    else:
        conn = await session.connection()
        await conn.execute(sqlite_insert(LiveComment.__table__).on_conflict_do_nothing(), rows)


async def list_comments(
    session: AsyncSession, session_id: int, *, before_id: int | None, limit: int, include_deleted: bool
) -> list[LiveComment]:
    stmt = (
        select(LiveComment)
        .where(LiveComment.session_id == session_id)
        .order_by(LiveComment.id.desc())
        .limit(limit)
    )
    if not include_deleted:
        stmt = stmt.where(LiveComment.deleted_at.is_(None))
    if before_id is not None:
        stmt = stmt.where(LiveComment.id < before_id)
    return list(await session.scalars(stmt))


async def delete_comment(
    session: AsyncSession, session_id: int, comment_id: int, by_id: int, now: dt.datetime
) -> bool:
    stmt = (
        update(LiveComment)
        .where(
            LiveComment.id == comment_id,
            LiveComment.session_id == session_id,
            LiveComment.deleted_at.is_(None),
        )
        .values(deleted_at=now, deleted_by_id=by_id)
        .execution_options(synchronize_session=False)
    )
    return (await session.execute(stmt)).rowcount == 1


async def id_issued(session: AsyncSession, name: str, value: int) -> bool:
    """Whether ``value`` was handed out from ``name``'s blocks (a process may still hold it)."""
    stmt = select(LiveIdBlock.next_id).where(LiveIdBlock.name == name)
    end = await session.scalar(stmt)
    return end is not None and 0 < value < end


async def recent_deleted_ids(session: AsyncSession, session_id: int, limit: int) -> list[int]:
    """The session's last ``limit`` deleted comment ids, oldest first."""
    stmt = (
        select(LiveComment.id)
        .where(LiveComment.session_id == session_id, LiveComment.deleted_at.is_not(None))
        .order_by(LiveComment.deleted_at.desc(), LiveComment.id.desc())
        .limit(limit)
    )
    return list(reversed((await session.scalars(stmt)).all()))


async def comment_exists(session: AsyncSession, session_id: int, comment_id: int) -> bool:
    stmt = select(LiveComment.id).where(LiveComment.id == comment_id, LiveComment.session_id == session_id)
    return (await session.scalar(stmt)) is not None


# --- moderation -------------------------------------------------------------------------------


async def moderators_of(session: AsyncSession, creator_id: int) -> list[LiveModerator]:
    stmt = (
        select(LiveModerator).where(LiveModerator.creator_id == creator_id).order_by(LiveModerator.created_at)
    )
    return list(await session.scalars(stmt))


async def is_moderator(session: AsyncSession, creator_id: int, user_id: int) -> bool:
    stmt = select(LiveModerator.user_id).where(
        LiveModerator.creator_id == creator_id, LiveModerator.user_id == user_id
    )
    return (await session.scalar(stmt)) is not None


async def add_moderator(session: AsyncSession, creator_id: int, user_id: int, now: dt.datetime) -> None:
    stmt = _insert(session)(LiveModerator).values(creator_id=creator_id, user_id=user_id, created_at=now)
    await session.execute(stmt.on_conflict_do_nothing())


async def remove_moderator(session: AsyncSession, creator_id: int, user_id: int) -> bool:
    stmt = delete(LiveModerator).where(
        LiveModerator.creator_id == creator_id, LiveModerator.user_id == user_id
    )
    return (await session.execute(stmt)).rowcount == 1


async def mutes_of(session: AsyncSession, creator_id: int, now: dt.datetime) -> list[LiveMute]:
    stmt = (
        select(LiveMute)
        .where(LiveMute.creator_id == creator_id, LiveMute.until > now)
        .order_by(LiveMute.until)
    )
    return list(await session.scalars(stmt))


async def set_mute(
    session: AsyncSession, creator_id: int, user_id: int, until: dt.datetime, by_id: int, now: dt.datetime
) -> None:
    stmt = _insert(session)(LiveMute).values(
        creator_id=creator_id, user_id=user_id, until=until, by_id=by_id, created_at=now
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[LiveMute.creator_id, LiveMute.user_id],
        set_={"until": stmt.excluded.until, "by_id": by_id, "created_at": stmt.excluded.created_at},
    )
    await session.execute(stmt)


async def remove_mute(session: AsyncSession, creator_id: int, user_id: int) -> bool:
    stmt = delete(LiveMute).where(LiveMute.creator_id == creator_id, LiveMute.user_id == user_id)
    return (await session.execute(stmt)).rowcount == 1


async def bans_of(session: AsyncSession, creator_id: int) -> list[LiveBan]:
    stmt = select(LiveBan).where(LiveBan.creator_id == creator_id).order_by(LiveBan.created_at)
    return list(await session.scalars(stmt))


async def is_banned(session: AsyncSession, creator_id: int, user_id: int) -> bool:
    stmt = select(LiveBan.user_id).where(LiveBan.creator_id == creator_id, LiveBan.user_id == user_id)
    return (await session.scalar(stmt)) is not None


async def add_ban(
    session: AsyncSession, creator_id: int, user_id: int, by_id: int, reason: str, now: dt.datetime
) -> None:
    stmt = _insert(session)(LiveBan).values(
        creator_id=creator_id, user_id=user_id, by_id=by_id, reason=reason, created_at=now
    )
    await session.execute(stmt.on_conflict_do_nothing())


async def remove_ban(session: AsyncSession, creator_id: int, user_id: int) -> bool:
    stmt = delete(LiveBan).where(LiveBan.creator_id == creator_id, LiveBan.user_id == user_id)
    return (await session.execute(stmt)).rowcount == 1


async def words_of(session: AsyncSession, creator_id: int) -> list[str]:
    stmt = (
        select(LiveBlockedWord.word)
        .where(LiveBlockedWord.creator_id == creator_id)
        .order_by(LiveBlockedWord.word)
    )
    return list(await session.scalars(stmt))


async def set_words(session: AsyncSession, creator_id: int, words: list[str]) -> None:
    await session.execute(delete(LiveBlockedWord).where(LiveBlockedWord.creator_id == creator_id))
    if words:
        await session.execute(
            LiveBlockedWord.__table__.insert(), [{"creator_id": creator_id, "word": w} for w in words]
        )


async def moderation_of(session: AsyncSession, creator_id: int, now: dt.datetime) -> dict[str, Any]:
    """Everything the comment path checks for one creator's room, in four small queries."""
    mods = await session.scalars(select(LiveModerator.user_id).where(LiveModerator.creator_id == creator_id))
    mutes = await session.execute(
        select(LiveMute.user_id, LiveMute.until).where(
            LiveMute.creator_id == creator_id, LiveMute.until > now
        )
    )
    bans = await session.scalars(select(LiveBan.user_id).where(LiveBan.creator_id == creator_id))
    return {
        "moderators": set(mods),
        "mutes": {uid: until for uid, until in mutes},
        "bans": set(bans),
        "words": await words_of(session, creator_id),
    }


# --- comment ids ------------------------------------------------------------------------------


async def reserve_ids(session: AsyncSession, name: str, n: int) -> int:
    """The first of ``n`` ids reserved for the caller alone (one UPDATE ... RETURNING on the
    block's row; the row is made on first use, above every comment id already stored)."""
    stmt = (
        update(LiveIdBlock)
        .where(LiveIdBlock.name == name)
        .values(next_id=LiveIdBlock.next_id + n)
        .returning(LiveIdBlock.next_id)
    )
    end = await session.scalar(stmt)
    if end is None:
        start = (await session.scalar(select(func.max(LiveComment.id)))) or 0
        await session.execute(
            _insert(session)(LiveIdBlock).values(name=name, next_id=start + 1).on_conflict_do_nothing()
        )
        end = await session.scalar(stmt)
    return int(end) - n


# --- returning customers ----------------------------------------------------------------------


async def get_visit(session: AsyncSession, creator_id: int, user_id: int) -> LiveVisit | None:
    stmt = (
        select(LiveVisit)
        .where(LiveVisit.creator_id == creator_id, LiveVisit.user_id == user_id)
        .execution_options(populate_existing=True)
    )
    return await session.scalar(stmt)


async def record_visit(
    session: AsyncSession, creator_id: int, user_id: int, session_id: int, now: dt.datetime
) -> None:
    """Entering one of the creator's sessions: a new session moves the last visit to
    ``previous_at``; entering the same session again only refreshes ``visited_at``."""
    new_session = update(LiveVisit).where(
        LiveVisit.creator_id == creator_id, LiveVisit.user_id == user_id, LiveVisit.session_id != session_id
    ).values(previous_at=LiveVisit.visited_at, visited_at=now, session_id=session_id,
             visits=LiveVisit.visits + 1)  # fmt: skip
    if (await session.execute(new_session)).rowcount:
        return
    same = update(LiveVisit).where(
        LiveVisit.creator_id == creator_id, LiveVisit.user_id == user_id
    ).values(visited_at=now)  # fmt: skip
    if (await session.execute(same)).rowcount:
        return
    await session.execute(
        _insert(session)(LiveVisit)
        .values(creator_id=creator_id, user_id=user_id, session_id=session_id, visited_at=now, visits=1)
        .on_conflict_do_nothing()
    )


async def claim_card(
    session: AsyncSession, creator_id: int, user_id: int, session_id: int, now: dt.datetime,
    again_after: dt.timedelta | None,
) -> bool:  # fmt: skip
    """Whether this caller sends the buyer's card now: not yet sent in this session (or, with
    ``again_after``, last sent before then). One conditional UPDATE: two processes never both win."""
    due = [LiveVisit.card_session_id.is_(None), LiveVisit.card_session_id != session_id]
    if again_after is not None:
        due.append(LiveVisit.card_at < now - again_after)
    stmt = (
        update(LiveVisit)
        .where(LiveVisit.creator_id == creator_id, LiveVisit.user_id == user_id, or_(*due))
        .values(card_session_id=session_id, card_at=now)
    )
    return bool((await session.execute(stmt)).rowcount)


async def get_note(session: AsyncSession, creator_id: int, buyer_id: int) -> LiveCustomerNote | None:
    return await session.scalar(
        select(LiveCustomerNote).where(
            LiveCustomerNote.creator_id == creator_id, LiveCustomerNote.buyer_id == buyer_id
        )
    )


async def set_note(
    session: AsyncSession, creator_id: int, buyer_id: int, note: str, now: dt.datetime
) -> None:
    stmt = _insert(session)(LiveCustomerNote).values(
        creator_id=creator_id, buyer_id=buyer_id, note=note, updated_at=now
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["creator_id", "buyer_id"], set_={"note": note, "updated_at": now}
    )
    await session.execute(stmt)


# --- co-streaming -----------------------------------------------------------------------------

_OPEN = ("invited", "active")


async def get_costream(session: AsyncSession, costream_id: int) -> LiveCostream | None:
    stmt = (
        select(LiveCostream).where(LiveCostream.id == costream_id).execution_options(populate_existing=True)
    )
    return await session.scalar(stmt)


async def open_costream_of(
    session: AsyncSession, session_id: int, *, active_only: bool = False
) -> LiveCostream | None:
    """The session's open link (invited or active; ``active_only``: active), either side."""
    statuses = ("active",) if active_only else _OPEN
    stmt = (
        select(LiveCostream)
        .where(
            or_(LiveCostream.inviter_session_id == session_id, LiveCostream.invitee_session_id == session_id),
            LiveCostream.status.in_(statuses),
        )
        .order_by(LiveCostream.id.desc())
        .limit(1)
        .execution_options(populate_existing=True)
    )
    return await session.scalar(stmt)


async def costreams_of(session: AsyncSession, user_id: int, limit: int = 50) -> list[LiveCostream]:
    stmt = (
        select(LiveCostream)
        .where(or_(LiveCostream.inviter_id == user_id, LiveCostream.invitee_id == user_id))
        .order_by(LiveCostream.id.desc())
        .limit(limit)
    )
    return list(await session.scalars(stmt))


async def move_costream(
    session: AsyncSession, costream_id: int, frm: tuple[str, ...], to: str, **values: Any
) -> bool:
    stmt = (
        update(LiveCostream)
        .where(LiveCostream.id == costream_id, LiveCostream.status.in_(frm))
        .values(status=to, **values)
    )
    return bool((await session.execute(stmt)).rowcount)


async def sessions_not_live(session: AsyncSession, session_ids: list[int]) -> list[int]:
    """Of ``session_ids``, those that are not live (ended, cancelled, or gone)."""
    if not session_ids:
        return []
    live = set(
        await session.scalars(
            select(LiveSession.id).where(
                LiveSession.id.in_(session_ids), LiveSession.status == SessionStatus.live
            )
        )
    )
    return [i for i in session_ids if i not in live]
