"""Live-room use cases (docs/live.md): sessions and their lifecycle, featured products, pin and
flash sale, buying from the room, moderation, the replay, and what the pages' first render needs.

Side effects on the room (the pinned card, the sale's stock left, "X just bought", closing the
room) go out after commit: each use case records an event, and :func:`hub_subscribers` turns the
events into hub calls (wired in ``app.py``). The comment path itself never comes through here:
the hub calls :class:`trustlive.live.handler.RoomHandler`, which checks moderation from a
per-process cache and buffers the comments for the replay.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec
from sqlalchemy import event as sa_event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from trustlive import events
from trustlive.accounts import service as accounts
from trustlive.accounts.service import Principal
from trustlive.catalog import service as catalog
from trustlive.catalog.service import ProductCard, Upload
from trustlive.config import Settings
from trustlive.db import utcnow
from trustlive.errors import (
    Conflict,
    FieldError,
    Forbidden,
    InvalidTransition,
    NotFound,
    ValidationFailed,
    validated,
)
from trustlive.ledger import service as ledger
from trustlive.live import handler as live_handler
from trustlive.live import repository as repo
from trustlive.live.handler import MODERATION, mask_name
from trustlive.live.models import (
    MAX_WORD,
    CostreamStatus,
    FlashSale,
    LiveCostream,
    LiveOrder,
    LiveSession,
    SaleStatus,
    SessionStatus,
)
from trustlive.live.protocol import strip_controls
from trustlive.live.schemas import (
    BlocklistIn,
    BlocklistOut,
    CommentOut,
    ConsoleView,
    CostreamIn,
    CostreamOut,
    CostreamSideOut,
    CustomerCardOut,
    FeaturedIn,
    FlashSaleIn,
    LiveOrderIn,
    LivePlacedOut,
    NoteIn,
    NoteOut,
    PastOrderOut,
    PinOut,
    ReplayOut,
    SaleLineOut,
    SaleOut,
    SessionIn,
    SessionOut,
    SessionPatch,
    SkuCardOut,
    StatsOut,
    StreamOut,
    UserRefOut,
    ViewerView,
)
from trustlive.money import apply_rate_bp
from trustlive.orders import service as orders
from trustlive.orders.schemas import ItemIn, OrderIn
from trustlive.trust import service as trust

S = SessionStatus
C = CostreamStatus
_CHANGED_KEY = "trustlive_live_moderation_changed"
# A comment deleted through one process while another still buffers it: wait up to ~2 s (the
# writers flush every second) for it to be stored.
DELETE_WAIT_S = 0.2
DELETE_WAIT_STEPS = 10
DELETED_SHOWN = 50  # deleted comment ids kept in the room's state for screens to drop


# --- reading sessions -------------------------------------------------------------------------


def _stats(s: LiveSession) -> StatsOut:
    return StatsOut(s.peak_viewers, s.entries, s.likes, s.comments, s.orders, s.units, s.sales_fen)


def _out(
    s: LiveSession,
    creator_name: str,
    product_ids: list[int],
    viewer: Principal | None,
    can_manage: bool = False,
) -> SessionOut:
    mine = viewer is not None and viewer.id == s.creator_id
    stream = (
        StreamOut(s.ingest_url or "", s.stream_key) if mine and s.status == S.live and s.stream_key else None
    )
    return SessionOut(
        id=s.id, creator_id=s.creator_id, creator_name=creator_name, title=s.title,
        cover_url=f"/media/{s.cover_path}" if s.cover_path else None, status=s.status,
        scheduled_at=s.scheduled_at, started_at=s.started_at, ended_at=s.ended_at, end_reason=s.end_reason,
        playback_url=s.playback_url if s.status == S.live else None, pinned_product_id=s.pinned_product_id,
        product_ids=product_ids, stats=_stats(s), stream=stream, can_manage=mine or can_manage,
    )  # fmt: skip


async def _outs(session: AsyncSession, rows: list[LiveSession], viewer: Principal | None) -> list[SessionOut]:
    names = await accounts.users_by_ids(session, [r.creator_id for r in rows])
    featured = await repo.featured_of(session, [r.id for r in rows])
    return [
        _out(
            r,
            names[r.creator_id].display_name if r.creator_id in names else "",
            featured.get(r.id, []),
            viewer,
        )
        for r in rows
    ]


async def _one_out(session: AsyncSession, s: LiveSession, viewer: Principal | None) -> SessionOut:
    out = (await _outs(session, [s], viewer))[0]
    if (
        viewer is not None
        and viewer.id != s.creator_id
        and await repo.is_moderator(session, s.creator_id, viewer.id)
    ):
        out.can_manage = True
    return out


def _visible(s: LiveSession, viewer: Principal | None) -> bool:
    """Scheduled, live and ended sessions are public; a cancelled one only to its creator and ops."""
    if s.status != S.cancelled:
        return True
    return viewer is not None and (viewer.id == s.creator_id or viewer.is_ops)


async def _load(
    session: AsyncSession, session_id: int, viewer: Principal | None, *, fresh: bool = False
) -> LiveSession:
    s = await repo.get_session(session, session_id, fresh=fresh)
    if s is None or not _visible(s, viewer):
        raise NotFound(f"live session {session_id} not found", code="session_not_found")
    return s


async def _own(session: AsyncSession, actor: Principal, session_id: int) -> LiveSession:
    """The actor's own session: 404 if it cannot be seen, 403 if it is someone else's."""
    s = await _load(session, session_id, actor, fresh=True)
    if s.creator_id != actor.id:
        raise Forbidden("this is not your live session", code="not_your_session")
    return s


async def can_moderate(session: AsyncSession, actor: Principal | None, s: LiveSession) -> bool:
    if actor is None:
        return False
    return actor.id == s.creator_id or await repo.is_moderator(session, s.creator_id, actor.id)


async def _moderated(session: AsyncSession, actor: Principal, session_id: int) -> LiveSession:
    """A session the actor may moderate (its creator or one of the creator's moderators): 403
    for anyone else."""
    s = await _load(session, session_id, actor, fresh=True)
    if not await can_moderate(session, actor, s):
        raise Forbidden("only the creator and the room's moderators may do this", code="not_moderator")
    return s


async def get_session(session: AsyncSession, viewer: Principal | None, session_id: int) -> SessionOut:
    return await _one_out(session, await _load(session, session_id, viewer), viewer)


async def list_my_sessions(
    session: AsyncSession, actor: Principal, *, status: str = "", before_id: int | None, limit: int
) -> list[SessionOut]:
    statuses = _statuses(status)
    rows = await repo.list_sessions(
        session, creator_id=actor.id, statuses=statuses, before_id=before_id, limit=limit
    )
    return await _outs(session, rows, actor)


async def list_public_sessions(
    session: AsyncSession,
    viewer: Principal | None,
    *,
    status: str = "live",
    before_id: int | None,
    limit: int,
) -> list[SessionOut]:
    """Live now (default), scheduled (upcoming) or ended (replays), newest first."""
    if status not in ("live", "scheduled", "ended"):
        raise ValidationFailed("status: one of live, scheduled, ended", field="status")
    rows = await repo.list_sessions(session, statuses=(status,), before_id=before_id, limit=limit)
    return await _outs(session, rows, viewer)


def _statuses(status: str) -> tuple[str, ...]:
    if not status:
        return ()
    if status not in set(S):
        raise ValidationFailed("status: one of scheduled, live, ended, cancelled", field="status")
    return (status,)


# --- scheduling -------------------------------------------------------------------------------


def _aware(value: dt.datetime, field: str) -> dt.datetime:
    if value.tzinfo is None:
        raise ValidationFailed(f"{field}: give a time zone (e.g. 2026-12-01T20:00:00+08:00)", field=field)
    return value.astimezone(dt.UTC)


def _check_when(value: dt.datetime, now: dt.datetime) -> dt.datetime:
    value = _aware(value, "scheduled_at")
    if value < now - dt.timedelta(hours=1):
        raise ValidationFailed("scheduled_at: in the past", field="scheduled_at")
    if value > now + dt.timedelta(days=365):
        raise ValidationFailed("scheduled_at: at most a year ahead", field="scheduled_at")
    return value


async def sellable_products(session: AsyncSession, creator_id: int, product_ids: Sequence[int]) -> list[int]:
    """The products a creator may sell (featured in a live session, linked from a short video),
    deduplicated in order: each must exist and be published in an
    active shop. Another shop's product (an alliance product) needs the creator to be eligible
    for the alliance by their reputation score (docs/scores.md, "Effects"): 409
    ``alliance_not_eligible`` otherwise. Their own shops' products are always theirs to sell."""
    ids = list(dict.fromkeys(product_ids))
    cards = {c.id: c for c in await catalog.product_cards(session, ids)}
    bad: list[FieldError] = []
    for i, pid in enumerate(product_ids):
        if pid not in cards or cards[pid].status != "published":
            bad.append(FieldError(f"product_ids[{i}]", f"product {pid} is not available"))
            continue
        try:
            await catalog.require_visible_product(session, None, pid)
        except NotFound:
            bad.append(FieldError(f"product_ids[{i}]", f"product {pid} is not available"))
    if bad:
        raise ValidationFailed(bad[0].message, fields=bad, code="product_not_available")
    own = {shop.id for shop in await catalog.shops_of_user(session, creator_id)} if ids else set()
    alliance = [i for i, pid in enumerate(product_ids) if cards[pid].shop_id not in own]
    if alliance and not await trust.alliance_eligible(session, creator_id):
        raise Conflict(
            "your reputation score is below what alliance products need: sell your own shop's "
            "products until it recovers",
            code="alliance_not_eligible",
            fields=[FieldError(f"product_ids[{i}]", f"product {product_ids[i]} is another shop's")
                    for i in alliance],
        )  # fmt: skip
    return ids


def _store_cover(session: AsyncSession, cover: Upload, settings: Settings, creator_id: int) -> str:
    stored = catalog.store_image(
        session, cover, settings.media_dir, f"live/{creator_id}", settings.max_upload_bytes, field="cover"
    )
    return stored.path


async def create_session(
    session: AsyncSession, actor: Principal, data: SessionIn, cover: Upload | None, settings: Settings
) -> SessionOut:
    data = validated(data)
    if not actor.has("creator"):
        raise Forbidden("this needs the creator role", code="role_required")
    now = utcnow()
    title = strip_controls(data.title)
    if not title:
        raise ValidationFailed("title: required", field="title")
    when = _check_when(data.scheduled_at, now)
    product_ids = await sellable_products(session, actor.id, data.product_ids)
    s = LiveSession(creator_id=actor.id, title=title, scheduled_at=when, status=S.scheduled)
    if cover is not None:
        s.cover_path = _store_cover(session, cover, settings, actor.id)
    session.add(s)
    await session.flush()
    await repo.set_featured(session, s.id, product_ids)
    events.record(session, "live.session_scheduled", {"session_id": s.id, "creator_id": actor.id})
    return await _one_out(session, s, actor)


async def update_session(
    session: AsyncSession, actor: Principal, session_id: int, patch: SessionPatch, cover: Upload | None,
    settings: Settings,
) -> SessionOut:  # fmt: skip
    """Edit a scheduled session: title, time, featured products, cover (409 once it has started)."""
    patch = validated(patch)
    s = await _own(session, actor, session_id)
    if s.status != S.scheduled:
        raise InvalidTransition("only a scheduled session can be edited", code="not_scheduled")
    if patch.title is not None:
        title = strip_controls(patch.title)
        if not title:
            raise ValidationFailed("title: required", field="title")
        s.title = title
    if patch.scheduled_at is not None:
        s.scheduled_at = _check_when(patch.scheduled_at, utcnow())
    if patch.product_ids is not None:
        await repo.set_featured(
            session, s.id, await sellable_products(session, s.creator_id, patch.product_ids)
        )
    if cover is not None:
        s.cover_path = _store_cover(session, cover, settings, actor.id)
    await session.flush()
    return await _one_out(session, s, actor)


async def set_featured(
    session: AsyncSession, actor: Principal, session_id: int, data: FeaturedIn
) -> SessionOut:
    """Replace the featured products of a scheduled or live session (the pinned one must stay)."""
    data = validated(data)
    s = await _own(session, actor, session_id)
    if s.status not in (S.scheduled, S.live):
        raise InvalidTransition("the session is over", code="session_over")
    ids = await sellable_products(session, s.creator_id, data.product_ids)
    if s.pinned_product_id is not None and s.pinned_product_id not in ids:
        raise Conflict("unpin the product before removing it", code="product_pinned", field="product_ids")
    await repo.set_featured(session, s.id, ids)
    return await _one_out(session, s, actor)


async def featured_cards(
    session: AsyncSession, viewer: Principal | None, session_id: int
) -> list[ProductCard]:
    s = await _load(session, session_id, viewer)
    ids = (await repo.featured_of(session, [s.id]))[s.id]
    return [c for c in await catalog.product_cards(session, ids) if c.status == "published"]


# --- lifecycle --------------------------------------------------------------------------------


def _media_url(template: str, s: LiveSession, key: str) -> str:
    return (
        template.replace("{key}", key).replace("{session}", str(s.id)).replace("{creator}", str(s.creator_id))
    )


async def start_session(
    session: AsyncSession, actor: Principal, session_id: int, settings: Settings
) -> SessionOut:
    """scheduled → live: a fresh stream key and the media server's URLs. One live session per
    creator (409 ``already_live``; the database's partial unique index decides a race)."""
    s = await _own(session, actor, session_id)
    if s.status != S.scheduled:
        raise InvalidTransition(f"a {s.status} session cannot start", code="not_scheduled")
    other = await repo.live_session_of(session, actor.id)
    if other is not None:
        raise Conflict(f"session {other.id} is live: end it first", code="already_live")
    now = utcnow()
    key = secrets.token_urlsafe(24)
    try:
        async with session.begin_nested():
            moved = await repo.transition(
                session, s.id, S.scheduled, S.live, started_at=now, heartbeat_at=now, stream_key=key,
                ingest_url=_media_url(settings.live_media_ingest_base, s, key),
                playback_url=_media_url(settings.live_media_playback_base, s, key),
            )  # fmt: skip
    except IntegrityError:
        raise Conflict("another of your sessions went live first", code="already_live") from None
    if not moved:
        raise InvalidTransition("the session is no longer scheduled", code="not_scheduled")
    events.record(session, "live.session_started", {"session_id": s.id, "creator_id": s.creator_id})
    return await _one_out(session, await _load(session, s.id, actor, fresh=True), actor)


async def _end(session: AsyncSession, s: LiveSession, reason: str, now: dt.datetime) -> bool:
    moved = await repo.transition(
        session,
        s.id,
        S.live,
        S.ended,
        ended_at=now,
        end_reason=reason,
        stream_key=None,
        pinned_product_id=None,
    )
    if not moved:
        return False
    sale = await repo.running_sale(session, s.id)
    if sale is not None:
        await repo.end_sale(session, sale.id, SaleStatus.ended, now)
    link = await repo.open_costream_of(session, s.id)
    if link is not None and await repo.move_costream(
        session, link.id, (C.invited, C.active), C.ended, ended_at=now
    ):
        _costream_changed(session, link, C.ended)
    events.record(
        session, "live.session_ended", {"session_id": s.id, "creator_id": s.creator_id, "reason": reason}
    )
    return True


async def end_session(session: AsyncSession, actor: Principal, session_id: int) -> SessionOut:
    """live → ended: the room is closed (every viewer gets bye ``ended``), the replay stays."""
    s = await _own(session, actor, session_id)
    if s.status != S.live or not await _end(session, s, "creator", utcnow()):
        raise InvalidTransition(f"a {s.status} session cannot end", code="not_live")
    return await _one_out(session, await _load(session, s.id, actor, fresh=True), actor)


async def end_silent(session: AsyncSession, session_id: int, now: dt.datetime) -> bool:
    """The sweeper: end a live session nobody has kept alive (idempotent)."""
    s = await repo.get_session(session, session_id, fresh=True)
    return s is not None and s.status == S.live and await _end(session, s, "no_heartbeat", now)


async def cancel_session(session: AsyncSession, actor: Principal, session_id: int) -> SessionOut:
    s = await _own(session, actor, session_id)
    if not await repo.transition(session, s.id, S.scheduled, S.cancelled, end_reason="creator"):
        raise InvalidTransition(f"a {s.status} session cannot be cancelled", code="not_scheduled")
    events.record(session, "live.session_cancelled", {"session_id": s.id, "creator_id": s.creator_id})
    return await _one_out(session, await _load(session, s.id, actor, fresh=True), actor)


async def heartbeat(session: AsyncSession, actor: Principal, session_id: int) -> SessionOut:
    """The creator's console (or the media server's hook) says the broadcast is alive."""
    s = await _own(session, actor, session_id)
    if not await repo.heartbeat(session, s.id, utcnow()):
        raise InvalidTransition("the session is not live", code="not_live")
    return await _one_out(session, s, actor)


# --- pin and flash sale -----------------------------------------------------------------------


async def pin_card(session: AsyncSession, product_id: int, sale: FlashSale | None = None) -> PinOut | None:
    """The pinned product's card (P0 ``pin``): active SKUs with price and stock; a SKU on flash
    sale shows what is left of its allocation when that is less than its stock."""
    try:
        product = await catalog.product_detail(session, None, product_id)
    except NotFound:
        return None
    skus = [k for k in product.skus if k.is_active]
    prices = [k.price_fen for k in skus] or [0]

    def stock(k: Any) -> int:
        if sale is not None and sale.sku_id == k.id and sale.status == SaleStatus.running:
            return min(k.stock, sale.allocation - sale.sold)
        return k.stock

    return PinOut(
        product_id=product.id, title=product.title,
        image_url=product.images[0].url if product.images else None,
        min_price_fen=min(prices), max_price_fen=max(prices),
        skus=[SkuCardOut(k.id, list(k.option_values), k.price_fen, stock(k)) for k in skus],
    )  # fmt: skip


def sale_out(sale: FlashSale) -> SaleOut:
    return SaleOut(
        sale.id, sale.product_id, sale.sku_id, sale.allocation, sale.sold, sale.allocation - sale.sold,
        sale.per_buyer_limit, sale.ends_at, sale.status,
    )  # fmt: skip


def _live(s: LiveSession) -> None:
    if s.status != S.live:
        raise InvalidTransition("the session is not live", code="not_live")


async def pin(session: AsyncSession, actor: Principal, session_id: int, product_id: int) -> PinOut:
    """Pin a featured product (上链接). A running flash sale on another product stops."""
    s = await _moderated(session, actor, session_id)
    _live(s)
    featured = (await repo.featured_of(session, [s.id]))[s.id]
    if product_id not in featured:
        raise ValidationFailed(
            "product_id: not featured in this session", field="product_id", code="not_featured"
        )
    card = await pin_card(session, product_id)
    if card is None:
        raise ValidationFailed("product_id: not available", field="product_id", code="product_not_available")
    now = utcnow()
    sale = await repo.running_sale(session, s.id)
    if (
        sale is not None
        and sale.product_id != product_id
        and await repo.end_sale(session, sale.id, SaleStatus.stopped, now)
    ):
        events.record(session, "live.flash_sale_ended", {"session_id": s.id, "sale_id": sale.id})
    s.pinned_product_id = product_id
    await session.flush()
    events.record(session, "live.pinned", {"session_id": s.id, "product_id": product_id, "by": actor.id})
    return card


async def unpin(session: AsyncSession, actor: Principal, session_id: int) -> None:
    s = await _moderated(session, actor, session_id)
    _live(s)
    if s.pinned_product_id is None:
        return
    sale = await repo.running_sale(session, s.id)
    if sale is not None and await repo.end_sale(session, sale.id, SaleStatus.stopped, utcnow()):
        events.record(session, "live.flash_sale_ended", {"session_id": s.id, "sale_id": sale.id})
    s.pinned_product_id = None
    await session.flush()
    events.record(session, "live.unpinned", {"session_id": s.id, "by": actor.id})


async def start_flash_sale(
    session: AsyncSession, actor: Principal, session_id: int, data: FlashSaleIn
) -> SaleOut:
    """A flash sale (秒杀) on a SKU of the pinned product: an allocation (at most the SKU's stock),
    a per-buyer limit and a countdown. One running sale per session."""
    data = validated(data)
    s = await _moderated(session, actor, session_id)
    _live(s)
    if s.pinned_product_id is None:
        raise Conflict("pin the product first", code="nothing_pinned")
    skus = await catalog.skus_for_sale(session, [data.sku_id])
    sku = skus.get(data.sku_id)
    if sku is None or sku.product_id != s.pinned_product_id or not sku.on_sale:
        raise ValidationFailed(
            "sku_id: not a SKU of the pinned product on sale", field="sku_id", code="sku_not_pinned"
        )
    if data.allocation > sku.stock:
        raise ValidationFailed(
            f"allocation: at most the SKU's stock ({sku.stock})",
            field="allocation",
            code="allocation_exceeds_stock",
        )
    if await trust.flash_sales_blocked(session, sku.shop_id):
        raise Conflict(
            "the shop that sells this product ships too many orders late: new flash sales are "
            "blocked until its late-shipping rate over 7 days falls below the threshold "
            "(docs/scores.md)",
            code="flash_sale_restricted",
        )
    if await repo.running_sale(session, s.id) is not None:
        raise Conflict("a flash sale is running: stop it first", code="sale_running")
    now = utcnow()
    sale = FlashSale(
        session_id=s.id, product_id=sku.product_id, sku_id=sku.sku_id, allocation=data.allocation, sold=0,
        per_buyer_limit=data.per_buyer_limit, status=SaleStatus.running, started_at=now,
        ends_at=now + dt.timedelta(seconds=data.seconds), started_by_id=actor.id,
    )  # fmt: skip
    try:
        async with session.begin_nested():
            session.add(sale)
            await session.flush()
    except IntegrityError:
        raise Conflict("a flash sale is running: stop it first", code="sale_running") from None
    events.record(session, "live.flash_sale_started", {"session_id": s.id, "sale_id": sale.id})
    return sale_out(sale)


async def stop_flash_sale(session: AsyncSession, actor: Principal, session_id: int) -> SaleOut:
    s = await _moderated(session, actor, session_id)
    sale = await repo.running_sale(session, s.id)
    if sale is None or not await repo.end_sale(session, sale.id, SaleStatus.stopped, utcnow()):
        raise InvalidTransition("no flash sale is running", code="no_sale")
    events.record(session, "live.flash_sale_ended", {"session_id": s.id, "sale_id": sale.id})
    return sale_out(await repo.get_sale(session, sale.id))  # type: ignore[arg-type]


async def end_due_sale(session: AsyncSession, sale_id: int, now: dt.datetime) -> bool:
    """The sweeper: a sale past its countdown ends (idempotent)."""
    sale = await repo.get_sale(session, sale_id)
    if sale is None or sale.ends_at > now or not await repo.end_sale(session, sale.id, SaleStatus.ended, now):
        return False
    events.record(session, "live.flash_sale_ended", {"session_id": sale.session_id, "sale_id": sale.id})
    return True


async def current_sale(session: AsyncSession, viewer: Principal | None, session_id: int) -> SaleOut | None:
    s = await _load(session, session_id, viewer)
    sale = await repo.running_sale(session, s.id)
    return sale_out(sale) if sale is not None else None


# --- buying from the room ---------------------------------------------------------------------


class _Replayed(Exception):
    def __init__(self, placed: orders.Placed) -> None:
        self.placed = placed


def _placed_out(
    session_id: int, placed_orders: list[Any], replayed: bool, sale: FlashSale | None
) -> LivePlacedOut:
    return LivePlacedOut(
        session_id=session_id, checkout_id=placed_orders[0].checkout_id, order_ids=[o.id for o in placed_orders],
        total_fen=sum(o.total_fen for o in placed_orders), replayed=replayed,
        sale=sale_out(sale) if sale is not None else None,
    )  # fmt: skip


async def _replay_answer(session: AsyncSession, session_id: int, placed_orders: list[Any]) -> LivePlacedOut:
    line = await repo.live_order_of(session, placed_orders[0].id)
    if line is None or line.session_id != session_id:
        raise ValidationFailed(
            "Idempotency-Key: already used for a different order",
            field="Idempotency-Key",
            code="idempotency_mismatch",
        )
    return _placed_out(session_id, placed_orders, True, None)


async def buy(
    session: AsyncSession, buyer: Principal, session_id: int, data: LiveOrderIn, idempotency_key: str | None,
    policy: orders.OrderPolicy = orders.DEFAULT_POLICY,
) -> LivePlacedOut:  # fmt: skip
    """Buy a featured product's SKU from the room: an order with source ``live_room`` attributed to
    the creator. While a flash sale runs on the SKU, its allocation and the buyer's per-sale count
    are claimed first (409 ``sold_out``, ``limit_exceeded``, ``sale_ended``), in the same
    transaction as the order: any refusal rolls everything back. A replayed key answers the first
    orders and claims nothing twice."""
    data = validated(data)
    key = orders.check_idempotency_key(idempotency_key)
    earlier = await orders.placed_with_key(session, buyer, key)
    if earlier:
        return await _replay_answer(session, session_id, earlier)
    s = await _load(session, session_id, buyer)
    _live(s)
    if await repo.is_banned(session, s.creator_id, buyer.id):
        raise Forbidden("you are banned from this room", code="banned")
    sku = (await catalog.skus_for_sale(session, [data.sku_id])).get(data.sku_id)
    featured = (await repo.featured_of(session, [s.id]))[s.id]
    link = await repo.open_costream_of(session, s.id, active_only=True)
    seller = s  # the session whose flash sale applies: this one, or the partner's
    if sku is not None and sku.product_id not in featured and link is not None:
        partner = await repo.get_session(session, _partner_of(link, s.id), fresh=True)
        if partner is not None and partner.status == S.live and partner.pinned_product_id == sku.product_id:
            seller = partner  # the partner's pinned product, bought from this room
    if sku is None or (sku.product_id not in featured and seller is s):
        raise ValidationFailed(
            "sku_id: not a SKU of a product featured here", field="sku_id", code="not_featured"
        )
    now = utcnow()
    sale = await repo.running_sale(session, seller.id)
    if sale is not None and (sale.sku_id != sku.sku_id or sale.ends_at <= now):
        sale = None  # not this SKU, or its countdown is over (the sweeper will mark it)
    order_in = OrderIn(
        items=[ItemIn(sku_id=sku.sku_id, quantity=data.quantity)], address_id=data.address_id,
        source="live_room", creator_id=s.creator_id,
    )  # fmt: skip
    try:
        async with session.begin_nested():
            if sale is not None:
                await _claim(session, sale, buyer, data.quantity, now)
            placed = await orders.place_order(session, buyer, order_in, key, policy)
            if placed.replayed:  # a twin request with this key committed first: undo our claims
                raise _Replayed(placed)
    except _Replayed as twin:
        return await _replay_answer(session, session_id, list(twin.placed.orders))
    placed_orders = list(placed.orders)
    amount = sku.price_fen * data.quantity
    for order in placed_orders:
        session.add(
            LiveOrder(
                session_id=s.id, order_id=order.id, buyer_id=buyer.id, product_id=sku.product_id,
                sku_id=sku.sku_id, sale_id=sale.id if sale else None, quantity=data.quantity,
                amount_fen=amount, created_at=now, costream_id=link.id if link else None,
            )
        )  # fmt: skip
    await repo.add_sales(session, s.id, len(placed_orders), data.quantity, amount)
    await session.flush()
    if sale is not None:
        sale = await repo.get_sale(session, sale.id)
    events.record(
        session, "live.purchase",
        {
            "session_id": s.id, "order_id": placed_orders[0].id, "buyer": mask_name(buyer.display_name),
            "title": sku.title, "product_id": sku.product_id, "sku_id": sku.sku_id, "quantity": data.quantity,
            "sale_id": sale.id if sale else None, "ts": int(now.timestamp() * 1000),
            "costream_id": link.id if link else None,
        },
    )  # fmt: skip
    out = _placed_out(s.id, placed_orders, placed.replayed, sale)
    out.costream_id = link.id if link else None
    return out


async def _claim(
    session: AsyncSession, sale: FlashSale, buyer: Principal, quantity: int, now: dt.datetime
) -> None:
    """The buyer's per-sale count (one upsert), then the allocation (one conditional UPDATE on the
    hot row, taken last so it is held the shortest)."""
    if not await repo.claim_buyer(session, sale.id, buyer.id, quantity, sale.per_buyer_limit):
        raise Conflict(
            f"quantity: at most {sale.per_buyer_limit} per buyer in this flash sale", field="quantity",
            code="limit_exceeded",
        )  # fmt: skip
    if await repo.claim_sale(session, sale.id, quantity, now) is None:
        fresh = await repo.get_sale(session, sale.id)
        if fresh is None or fresh.status != SaleStatus.running or fresh.ends_at <= now:
            raise Conflict("the flash sale has ended", code="sale_ended")
        raise Conflict("the flash sale is sold out", field="quantity", code="sold_out")


async def order_cancelled(session: AsyncSession, order_id: int) -> None:
    """An order from the room was cancelled (unpaid at its deadline, or by the buyer) or refunded
    in full before it shipped: give its units back to the flash sale while it still runs. Idempotent per order: the live order's
    quantity is zeroed when released."""
    line = await repo.live_order_of(session, order_id)
    if line is None or line.sale_id is None or line.quantity == 0:
        return
    await repo.release_claim(session, line.sale_id, line.buyer_id, line.quantity)
    line.quantity = 0
    await session.flush()
    # The room's sale card shows the units again (after commit, like every P0 change).
    events.record(session, "live.sale_released", {"session_id": line.session_id, "sale_id": line.sale_id})


# --- moderation -------------------------------------------------------------------------------


def _changed(
    session: AsyncSession, creator_id: int, *, room_id: int | None = None, banned: int | None = None
) -> None:
    """Note a moderation change: the process's cache drops the creator's entry after commit, and
    an event tells the hub (other processes; a banned viewer is disconnected)."""
    session.info.setdefault(_CHANGED_KEY, set()).add(creator_id)
    payload: dict[str, Any] = {"creator_id": creator_id}
    if room_id is not None:
        payload["session_id"] = room_id
    if banned is not None:
        payload["banned_user_id"] = banned
    events.record(session, "live.moderation_changed", payload)


@sa_event.listens_for(Session, "after_commit")
def _drop_cached_moderation(sync_session: Session) -> None:
    for creator_id in sync_session.info.pop(_CHANGED_KEY, ()):
        MODERATION.invalidate(creator_id)


@sa_event.listens_for(Session, "after_rollback")
def _keep_cached_moderation(sync_session: Session) -> None:
    sync_session.info.pop(_CHANGED_KEY, None)


async def _user_ref(session: AsyncSession, user_id: int) -> UserRefOut:
    try:
        user = await accounts.get_user(session, user_id)
    except NotFound:
        raise ValidationFailed(
            f"user_id: no user {user_id}", field="user_id", code="user_not_found"
        ) from None
    return UserRefOut(user.id, user.display_name)


async def _refs(session: AsyncSession, rows: list[Any], **extra: Callable[[Any], Any]) -> list[UserRefOut]:
    users = await accounts.users_by_ids(session, [r.user_id for r in rows])
    return [
        UserRefOut(
            r.user_id, users[r.user_id].display_name if r.user_id in users else "",
            **{k: f(r) for k, f in extra.items()},
        )
        for r in rows
    ]  # fmt: skip


async def list_moderators(session: AsyncSession, actor: Principal) -> list[UserRefOut]:
    return await _refs(session, await repo.moderators_of(session, actor.id))


async def add_moderator(session: AsyncSession, actor: Principal, user_id: int) -> list[UserRefOut]:
    if user_id == actor.id:
        raise ValidationFailed("user_id: you are the room's creator already", field="user_id")
    await _user_ref(session, user_id)
    await repo.add_moderator(session, actor.id, user_id, utcnow())
    _changed(session, actor.id)
    return await list_moderators(session, actor)


async def remove_moderator(session: AsyncSession, actor: Principal, user_id: int) -> list[UserRefOut]:
    if not await repo.remove_moderator(session, actor.id, user_id):
        raise NotFound(f"user {user_id} is not your moderator", code="moderator_not_found")
    _changed(session, actor.id)
    return await list_moderators(session, actor)


async def _target(session: AsyncSession, actor: Principal, s: LiveSession, user_id: int) -> UserRefOut:
    ref = await _user_ref(session, user_id)
    if user_id == s.creator_id:
        raise ValidationFailed("user_id: the creator cannot be muted or banned", field="user_id",
                               code="cannot_moderate_creator")  # fmt: skip
    if user_id == actor.id:
        raise ValidationFailed("user_id: not yourself", field="user_id")
    if actor.id != s.creator_id and await repo.is_moderator(session, s.creator_id, user_id):
        raise Forbidden("only the creator may mute or ban a moderator", code="not_creator")
    return ref


async def mute(
    session: AsyncSession, actor: Principal, session_id: int, user_id: int, minutes: int
) -> UserRefOut:
    """Mute a user in the creator's room for ``minutes`` (a later mute replaces the earlier one)."""
    s = await _moderated(session, actor, session_id)
    ref = await _target(session, actor, s, user_id)
    now = utcnow()
    until = now + dt.timedelta(minutes=minutes)
    await repo.set_mute(session, s.creator_id, user_id, until, actor.id, now)
    _changed(session, s.creator_id, room_id=s.id)
    return UserRefOut(ref.user_id, ref.display_name, until=until)


async def unmute(session: AsyncSession, actor: Principal, session_id: int, user_id: int) -> None:
    s = await _moderated(session, actor, session_id)
    if not await repo.remove_mute(session, s.creator_id, user_id):
        raise NotFound(f"user {user_id} is not muted", code="mute_not_found")
    _changed(session, s.creator_id, room_id=s.id)


async def ban(
    session: AsyncSession, actor: Principal, session_id: int, user_id: int, reason: str
) -> UserRefOut:
    """Ban a user from the creator's room: disconnected now, cannot rejoin, comment or buy."""
    s = await _moderated(session, actor, session_id)
    ref = await _target(session, actor, s, user_id)
    reason = strip_controls(reason)
    await repo.add_ban(session, s.creator_id, user_id, actor.id, reason, utcnow())
    _changed(session, s.creator_id, room_id=s.id, banned=user_id)
    return UserRefOut(ref.user_id, ref.display_name, reason=reason)


async def unban(session: AsyncSession, actor: Principal, session_id: int, user_id: int) -> None:
    s = await _moderated(session, actor, session_id)
    if not await repo.remove_ban(session, s.creator_id, user_id):
        raise NotFound(f"user {user_id} is not banned", code="ban_not_found")
    _changed(session, s.creator_id, room_id=s.id)


async def _room_creator(session: AsyncSession, actor: Principal, session_id: int | None) -> int:
    if session_id is None:
        return actor.id
    return (await _moderated(session, actor, session_id)).creator_id


async def list_mutes(
    session: AsyncSession, actor: Principal, session_id: int | None = None
) -> list[UserRefOut]:
    """Mutes in force in the actor's room (or, for a moderator, in the session's creator's room)."""
    creator_id = await _room_creator(session, actor, session_id)
    return await _refs(session, await repo.mutes_of(session, creator_id, utcnow()), until=lambda r: r.until)


async def list_bans(
    session: AsyncSession, actor: Principal, session_id: int | None = None
) -> list[UserRefOut]:
    creator_id = await _room_creator(session, actor, session_id)
    return await _refs(session, await repo.bans_of(session, creator_id), reason=lambda r: r.reason)


async def get_blocklist(session: AsyncSession, actor: Principal) -> BlocklistOut:
    return BlocklistOut(await repo.words_of(session, actor.id))


async def set_blocklist(session: AsyncSession, actor: Principal, data: BlocklistIn) -> BlocklistOut:
    """Replace the creator's blocked words: matched case-insensitively anywhere in a comment."""
    data = validated(data)
    words: list[str] = []
    for i, raw in enumerate(data.words):
        word = strip_controls(raw).casefold()
        if not word or len(word) > MAX_WORD:
            raise ValidationFailed(f"words[{i}]: 1-{MAX_WORD} visible characters", field=f"words[{i}]")
        if word not in words:
            words.append(word)
    await repo.set_words(session, actor.id, words)
    _changed(session, actor.id)
    return BlocklistOut(sorted(words))


# --- comments (the replay) --------------------------------------------------------------------


def _comment_out(row: Any, moderator: bool) -> CommentOut:
    return CommentOut(row.id, row.user_id, row.display_name, row.text, row.created_at,
                      deleted=row.deleted_at is not None)  # fmt: skip


async def list_comments(
    session: AsyncSession, viewer: Principal | None, session_id: int, *, before_id: int | None, limit: int
) -> list[CommentOut]:
    """A session's comments, newest first; deleted ones only to the creator and moderators."""
    s = await _load(session, session_id, viewer)
    moderator = await can_moderate(session, viewer, s)
    rows = await repo.list_comments(
        session, s.id, before_id=before_id, limit=limit, include_deleted=moderator
    )
    return [_comment_out(r, moderator) for r in rows]


async def delete_comment(session: AsyncSession, actor: Principal, session_id: int, comment_id: int) -> None:
    """Hide a comment from the replay (and tell viewers' screens to drop it)."""
    s = await _moderated(session, actor, session_id)
    now = utcnow()
    # A comment not written yet (the writer flushes about once a second) is marked in the buffer.
    found = await repo.delete_comment(
        session, s.id, comment_id, actor.id, now
    ) or live_handler.delete_pending(s.id, comment_id, actor.id, now)
    if not found and await repo.id_issued(session, "comment", comment_id):
        # Handed out but not stored: a writer holds it, in its buffer until its next write (another
        # process's, on PostgreSQL) or in the middle of writing it. Nothing is written here yet:
        # end this transaction so that writer is not kept waiting behind it (SQLite lets one
        # transaction write at a time, from its first statement), then wait for the write.
        await session.commit()
        await live_handler.writes_done()
        for _ in range(DELETE_WAIT_STEPS):
            if found := await repo.delete_comment(session, s.id, comment_id, actor.id, now):
                break
            await session.commit()
            await asyncio.sleep(DELETE_WAIT_S)
    if not found:
        if await repo.comment_exists(session, s.id, comment_id):
            return  # deleted already
        raise NotFound(f"comment {comment_id} not found", code="comment_not_found")
    events.record(session, "live.comment_deleted", {"session_id": s.id, "comment_id": comment_id})


# --- the replay -------------------------------------------------------------------------------


async def replay(session: AsyncSession, viewer: Principal | None, session_id: int) -> ReplayOut:
    """An ended session's record: figures, flash sales, and (to the creator and ops) the sales."""
    s = await _load(session, session_id, viewer)
    if s.status != S.ended:
        raise InvalidTransition("the session has not ended", code="not_ended")
    out = await _one_out(session, s, viewer)
    sales = None
    if viewer is not None and (viewer.id == s.creator_id or viewer.is_ops):
        lines = await repo.live_orders_of(session, s.id)
        names = await accounts.users_by_ids(session, [x.buyer_id for x in lines])
        sales = [
            SaleLineOut(
                x.order_id, mask_name(names[x.buyer_id].display_name if x.buyer_id in names else ""),
                x.product_id, x.sku_id, x.quantity, x.amount_fen, x.sale_id, x.created_at,
            )
            for x in lines
        ]  # fmt: skip
    duration = int((s.ended_at - s.started_at).total_seconds()) if s.started_at and s.ended_at else None
    flash = [sale_out(x) for x in await repo.sales_of(session, s.id)]
    return ReplayOut(out, _stats(s), duration, sales, flash)


# --- appraisal and consignment (called by the consignment domain) -----------------------------


async def show_appraisal(
    session: AsyncSession, creator: Principal, session_id: int, card: dict[str, Any]
) -> None:
    """Show an appraisal card to the room's viewers (P0 ``appraisal``, after commit): only in the
    creator's own session (403 ``not_your_session``) while it is live (409 ``not_live``)."""
    s = await _own(session, creator, session_id)
    _live(s)
    events.record(session, "live.appraisal", {"session_id": s.id, "card": card})


async def show_consignment_terms(session: AsyncSession, creator_id: int, terms: dict[str, Any]) -> int | None:
    """Show the creator's consignment terms (fee, waiver) in their live room, if one is live (P0
    ``consignment``, after commit). The room's id, or None."""
    s = await repo.live_session_of(session, creator_id)
    if s is None:
        return None
    events.record(session, "live.consignment_terms", {"session_id": s.id, "terms": terms})
    return s.id


async def live_session_id(session: AsyncSession, creator_id: int) -> int | None:
    """The creator's live session now, if any."""
    s = await repo.live_session_of(session, creator_id)
    return s.id if s is not None else None


async def live_now_of(session: AsyncSession, creator_ids: list[int]) -> list[SessionOut]:
    """The live rooms on air now of these creators (the follow feed puts them on top), latest
    start first, as the public sees them."""
    return await _outs(session, await repo.live_sessions_of(session, creator_ids), None)


async def feature_product(
    session: AsyncSession, creator: Principal, session_id: int, product_id: int
) -> None:
    """Add one product to the featured products of the creator's own scheduled or live session
    (a consigned item once listed): 403 ``not_your_session``, 409 ``session_over``."""
    s = await _own(session, creator, session_id)
    if s.status not in (S.scheduled, S.live):
        raise InvalidTransition("the session is over", code="session_over")
    ids = (await repo.featured_of(session, [s.id]))[s.id]
    if product_id not in ids:  # only the new one is checked: an earlier one may be gone since
        await repo.set_featured(
            session, s.id, [*ids, *await sellable_products(session, s.creator_id, [product_id])]
        )


# --- first renders for the pages --------------------------------------------------------------


async def viewer_view(
    session: AsyncSession, viewer: Principal | None, session_id: int, state: dict[str, Any] | None = None
) -> ViewerView:
    """What the viewer page shows before its socket connects: the session, its featured products,
    the pinned card, the running sale and the hub's current P0 state (``hub.snapshot_state``)."""
    s = await _load(session, session_id, viewer)
    out = await _one_out(session, s, viewer)
    sale = await repo.running_sale(session, s.id) if s.status == S.live else None
    pinned = await pin_card(session, s.pinned_product_id, sale) if s.pinned_product_id else None
    banned = viewer is not None and await repo.is_banned(session, s.creator_id, viewer.id)
    return ViewerView(
        session=out, featured=await featured_cards(session, viewer, s.id), pin=pinned,
        sale=sale_out(sale) if sale else None, state=dict(state or {}), banned=banned,
        signed_in=viewer is not None,
    )  # fmt: skip


async def console_view(
    session: AsyncSession, actor: Principal, session_id: int, state: dict[str, Any] | None = None
) -> ConsoleView:
    """What the creator console shows first (the creator, or a moderator without the stream key)."""
    s = await _moderated(session, actor, session_id)
    sale = await repo.running_sale(session, s.id) if s.status == S.live else None
    pinned = await pin_card(session, s.pinned_product_id, sale) if s.pinned_product_id else None
    return ConsoleView(
        session=await _one_out(session, s, actor), featured=await featured_cards(session, actor, s.id), pin=pinned,
        sale=sale_out(sale) if sale else None, state=dict(state or {}),
        moderators=await _refs(session, await repo.moderators_of(session, s.creator_id)),
        blocked_words=await repo.words_of(session, s.creator_id),
        costream=await open_costream(session, s.id),
    )  # fmt: skip


# --- after commit: events → the hub -----------------------------------------------------------

Handler = Callable[[AsyncSession, events.Event], Awaitable[None]]


def _plain(value: Any) -> Any:
    return msgspec.to_builtins(value) if value is not None else None


def sale_state(sale: FlashSale | None) -> dict[str, Any] | None:
    """P0 ``sale``: allocation, left, limit, ends_at (ISO and ms), or None when none runs."""
    if sale is None or sale.status != SaleStatus.running:
        return None
    return {
        "id": sale.id, "sku_id": sale.sku_id, "product_id": sale.product_id, "allocation": sale.allocation,
        "left": sale.allocation - sale.sold, "limit": sale.per_buyer_limit,
        "ends_at": sale.ends_at.isoformat(), "ends_ms": int(sale.ends_at.timestamp() * 1000),
    }  # fmt: skip


async def room_state(session: AsyncSession, session_id: int) -> dict[str, Any]:
    """The domain's P0 keys of a room as the database has them now (``pin``, ``sale``)."""
    s = await repo.get_session(session, session_id, fresh=True)
    if s is None or s.status != S.live:
        return {"pin": None, "sale": None, "costream": None}
    sale = await repo.running_sale(session, s.id)
    card = await pin_card(session, s.pinned_product_id, sale) if s.pinned_product_id else None
    return {"pin": _plain(card), "sale": sale_state(sale), "costream": await costream_state(session, s.id)}


def hub_subscribers(
    hub: Any, notify: Callable[[dict[str, Any]], Awaitable[None]] | None = None
) -> dict[str, Handler]:
    """Topic → handler, for ``EventBus.subscribe``: what each committed live event does to the
    room. Handlers read the current state (latest wins), so a late or repeated delivery is harmless."""

    async def set_rooms(session: AsyncSession, rooms: list[int]) -> None:
        """The rooms' P0 keys, and those of each one's co-stream partner (it shows this room's
        pinned product and sale)."""
        todo = list(dict.fromkeys(rooms))
        for room in list(todo):
            link = await repo.open_costream_of(session, room, active_only=True)
            if link is not None and _partner_of(link, room) not in todo:
                todo.append(_partner_of(link, room))
        for room in todo:
            for key, value in (await room_state(session, room)).items():
                hub.set_state(room, key, value)

    async def refresh(session: AsyncSession, event: events.Event) -> None:
        await set_rooms(session, [int(event.payload["session_id"])])

    async def costream(session: AsyncSession, event: events.Event) -> None:
        p = event.payload
        await set_rooms(session, [int(x) for x in p["session_ids"]])
        if p.get("status") == C.invited:  # the invitee's console hears of it at once
            link = await repo.get_costream(session, int(p["costream_id"]))
            if link is not None and link.status == C.invited:
                out = await costream_out(session, link)
                hub.send_private(link.invitee_session_id, [link.invitee_id],
                                 {"t": "costream_invite", "costream": _plain(out)})  # fmt: skip

    async def purchased(session: AsyncSession, event: events.Event) -> None:
        p = event.payload
        room = int(p["session_id"])
        hub.purchase(room, {"id": p["order_id"], "u": p["buyer"], "title": p["title"], "q": p["quantity"],
                            "ts": p["ts"]})  # fmt: skip
        await refresh(session, event)

    async def ended(session: AsyncSession, event: events.Event) -> None:
        room = int(event.payload["session_id"])
        MODERATION.forget_room(room)
        if notify is not None:  # every process stops taking the room for live
            await notify({"ended_session_id": room})
        await hub.close_room(room, code="ended", message="the live session has ended")

    async def started(session: AsyncSession, event: events.Event) -> None:
        MODERATION.forget_room(int(event.payload["session_id"]))

    async def moderation(session: AsyncSession, event: events.Event) -> None:
        """Drop the creator's cached moderation and disconnect a banned user: in every process
        through ``notify`` (``handler.ModerationNotices.publish``), else in this one."""
        MODERATION.invalidate(int(event.payload["creator_id"]))
        if notify is not None:
            await notify(dict(event.payload))

    async def deleted(session: AsyncSession, event: events.Event) -> None:
        """The room's last deleted comment ids, whichever process deleted them: the stored ones,
        the ones already announced (a deletion still in some writer's buffer), and this one."""
        room = int(event.payload["session_id"])
        announced = (await hub.fetch_state(room)).get("deleted") or []
        ids = set(await repo.recent_deleted_ids(session, room, DELETED_SHOWN))
        ids.update(i for i in announced if isinstance(i, int))
        ids.add(int(event.payload["comment_id"]))
        hub.set_state(room, "deleted", sorted(ids)[-DELETED_SHOWN:])

    async def appraisal(session: AsyncSession, event: events.Event) -> None:
        hub.set_state(int(event.payload["session_id"]), "appraisal", event.payload["card"])

    async def consignment_terms(session: AsyncSession, event: events.Event) -> None:
        hub.set_state(int(event.payload["session_id"]), "consignment", event.payload["terms"])

    return {
        "live.appraisal": appraisal,
        "live.consignment_terms": consignment_terms,
        "live.session_started": started,
        "live.session_ended": ended,
        "live.pinned": refresh,
        "live.unpinned": refresh,
        "live.flash_sale_started": refresh,
        "live.flash_sale_ended": refresh,
        "live.sale_released": refresh,
        "live.purchase": purchased,
        "live.moderation_changed": moderation,
        "live.comment_deleted": deleted,
        "live.costream_changed": costream,
    }


async def on_order_cancelled(session: AsyncSession, event: events.Event) -> None:
    """``orders.cancelled`` subscriber: units of a cancelled room order go back to its sale."""
    for order_id in event.payload.get("order_ids") or [event.payload.get("order_id")]:
        if order_id is not None:
            await order_cancelled(session, int(order_id))


async def on_order_refunded(session: AsyncSession, event: events.Event) -> None:
    """``orders.refunded`` subscriber: a room order refunded in full before it shipped had its
    stock returned to the SKU; its units go back to the sale too, as for a cancelled order."""
    order_id = int(event.payload["order_id"])
    line = await repo.live_order_of(session, order_id)
    if line is None or line.sale_id is None or line.quantity == 0:
        return  # most refunds: not a flash-sale order from a room (the order is not read)
    order = (await orders.orders_by_ids(session, [order_id])).get(order_id)
    if order is not None and order.status == "refunded" and order.shipped_at is None:
        await order_cancelled(session, order_id)


# --- returning customers (熟客) -------------------------------------------------------------------

CARD_AGAIN = dt.timedelta(minutes=3)  # a commenting customer's card comes again after this


def _require_creator(actor: Principal) -> None:
    if not actor.has("creator"):
        raise Forbidden("this needs the creator role", code="role_required")


async def _card(
    session: AsyncSession, creator_id: int, buyer_id: int, session_id: int | None
) -> CustomerCardOut:
    """The buyer's card for the creator: orders facts from the orders domain, the visits, the
    creator's notes. ``session_id``: the session the buyer is in now (its entry is not "last")."""
    history = await orders.customer_history(session, buyer_id, creator_id)
    names = await accounts.users_by_ids(session, [buyer_id])
    visit = await repo.get_visit(session, creator_id, buyer_id)
    last = None
    if visit is not None:
        last = visit.previous_at if visit.session_id == session_id else visit.visited_at
    note = await repo.get_note(session, creator_id, buyer_id)
    return CustomerCardOut(
        user_id=buyer_id, name=names[buyer_id].display_name if buyer_id in names else "",
        orders=history.orders, spent_fen=history.spent_fen,
        recent=[PastOrderOut(p.order_id, p.at, p.title, list(p.options), p.quantity, p.spent_fen)
                for p in history.recent],
        options=list(history.options), last_visit=last, visits=visit.visits if visit else 0,
        note=note.note if note else "",
    )  # fmt: skip


async def room_customer(
    session: AsyncSession, creator_id: int, session_id: int, user_id: int, now: dt.datetime, *, comment: bool
) -> dict[str, Any] | None:
    """A viewer entered (``comment=False``: the visit is recorded) or commented in the creator's
    room: the ``card`` frame for the creator's console when they have bought from the creator
    before and their card is due (once per session; again on a comment after CARD_AGAIN), else
    None. The claim is one conditional UPDATE, so every process together sends it once."""
    if user_id == creator_id:
        return None
    if not comment:
        await repo.record_visit(session, creator_id, user_id, session_id, now)
    card = await _card(session, creator_id, user_id, session_id)
    if card.orders == 0:
        return None
    if not await repo.claim_card(
        session, creator_id, user_id, session_id, now, CARD_AGAIN if comment else None
    ):
        return None
    return {"t": "card", "session_id": session_id, **msgspec.to_builtins(card)}


async def customer_card(session: AsyncSession, actor: Principal, buyer_id: int) -> CustomerCardOut:
    """The actor's (a creator's) card of one buyer: what they bought from the actor, visits, notes."""
    _require_creator(actor)
    await _user_ref(session, buyer_id)
    return await _card(session, actor.id, buyer_id, None)


async def get_note(session: AsyncSession, actor: Principal, buyer_id: int) -> NoteOut:
    _require_creator(actor)
    await _user_ref(session, buyer_id)
    note = await repo.get_note(session, actor.id, buyer_id)
    return NoteOut(buyer_id, note.note if note else "", note.updated_at if note else None)


async def set_note(session: AsyncSession, actor: Principal, buyer_id: int, data: NoteIn) -> NoteOut:
    """Replace the actor's private notes about a buyer (empty clears them)."""
    data = validated(data)
    _require_creator(actor)
    if buyer_id == actor.id:
        raise ValidationFailed("buyer_id: not yourself", field="buyer_id")
    await _user_ref(session, buyer_id)
    now = utcnow()
    text = "\n".join(strip_controls(part) for part in data.note.replace("\r\n", "\n").split("\n")).strip()
    await repo.set_note(session, actor.id, buyer_id, text, now)
    return NoteOut(buyer_id, text, now)


# --- co-streaming (连麦) --------------------------------------------------------------------------


def _partner_of(link: LiveCostream, session_id: int) -> int:
    return link.invitee_session_id if link.inviter_session_id == session_id else link.inviter_session_id


async def costream_out(session: AsyncSession, link: LiveCostream) -> CostreamOut:
    rows = await repo.sessions_by_ids(session, [link.inviter_session_id, link.invitee_session_id])
    names = await accounts.users_by_ids(session, [link.inviter_id, link.invitee_id])

    def side(session_id: int, creator_id: int) -> CostreamSideOut:
        row = rows.get(session_id)
        name = names[creator_id].display_name if creator_id in names else ""
        return CostreamSideOut(session_id, creator_id, name, row.title if row else "")

    return CostreamOut(
        id=link.id, status=link.status, share_bp=link.share_bp,
        inviter=side(link.inviter_session_id, link.inviter_id), invitee=side(link.invitee_session_id, link.invitee_id),
        created_at=link.created_at, accepted_at=link.accepted_at, ended_at=link.ended_at,
    )  # fmt: skip


async def costream_state(session: AsyncSession, session_id: int) -> dict[str, Any] | None:
    """P0 ``costream`` of a room: both creators (this room's first), the agreed share, and the
    partner's pinned product and flash sale (viewers may buy it from this room); None unlinked."""
    link = await repo.open_costream_of(session, session_id, active_only=True)
    if link is None:
        return None
    out = await costream_out(session, link)
    mine, theirs = (
        (out.inviter, out.invitee) if link.inviter_session_id == session_id else (out.invitee, out.inviter)
    )
    partner = await repo.get_session(session, theirs.session_id, fresh=True)
    pin = sale = None
    if partner is not None and partner.status == S.live and partner.pinned_product_id:
        running = await repo.running_sale(session, partner.id)
        pin, sale = _plain(await pin_card(session, partner.pinned_product_id, running)), sale_state(running)
    return {
        "id": link.id, "share_bp": link.share_bp,
        "creators": [
            {"id": x.creator_id, "name": x.creator_name, "session_id": x.session_id, "title": x.title}
            for x in (mine, theirs)
        ],
        "partner": {"session_id": theirs.session_id, "creator_id": theirs.creator_id, "name": theirs.creator_name,
                    "pin": pin, "sale": sale},
    }  # fmt: skip


def _costream_changed(session: AsyncSession, link: LiveCostream, status: str) -> None:
    events.record(session, "live.costream_changed", {
        "costream_id": link.id, "status": status,
        "session_ids": [link.inviter_session_id, link.invitee_session_id],
    })  # fmt: skip


async def _link(session: AsyncSession, actor: Principal, costream_id: int) -> LiveCostream:
    """A link the actor is a party to: 404 for a link that does not exist or is not theirs."""
    link = await repo.get_costream(session, costream_id)
    if link is None or actor.id not in (link.inviter_id, link.invitee_id):
        raise NotFound(f"co-stream {costream_id} not found", code="costream_not_found")
    return link


async def invite_costream(
    session: AsyncSession, actor: Principal, session_id: int, data: CostreamIn
) -> CostreamOut:
    """From the actor's live session, invite another creator's live session to co-stream, with
    an optional revenue share (basis points, 0-5000). 403 not your session; 404 no such partner
    session; 409 ``not_live``, ``partner_not_live``, ``already_linked``; 422 ``cannot_costream_self``."""
    data = validated(data)
    s = await _own(session, actor, session_id)
    _live(s)
    partner = await _load(session, data.partner_session_id, actor, fresh=True)
    if partner.creator_id == actor.id:
        raise ValidationFailed("partner_session_id: another creator's session", field="partner_session_id",
                               code="cannot_costream_self")  # fmt: skip
    if partner.status != S.live:
        raise Conflict(
            "the partner's session is not live", code="partner_not_live", field="partner_session_id"
        )
    for sid in (s.id, partner.id):
        if await repo.open_costream_of(session, sid) is not None:
            raise Conflict(f"session {sid} is already in a co-stream", code="already_linked")
    link = LiveCostream(
        inviter_session_id=s.id, invitee_session_id=partner.id, inviter_id=actor.id, invitee_id=partner.creator_id,
        share_bp=data.share_bp, status=C.invited, created_at=utcnow(),
    )  # fmt: skip
    try:
        async with session.begin_nested():
            session.add(link)
            await session.flush()
    except IntegrityError:
        raise Conflict("one of the sessions is already in a co-stream", code="already_linked") from None
    _costream_changed(session, link, C.invited)
    return await costream_out(session, link)


async def accept_costream(session: AsyncSession, actor: Principal, costream_id: int) -> CostreamOut:
    """The invitee accepts: both sessions must still be live (409 ``not_live``)."""
    link = await _link(session, actor, costream_id)
    if actor.id != link.invitee_id:
        raise Forbidden("only the invited creator may accept", code="not_invitee")
    if link.status != C.invited:
        raise InvalidTransition(f"a {link.status} co-stream cannot be accepted", code="not_invited")
    rows = await repo.sessions_by_ids(session, [link.inviter_session_id, link.invitee_session_id])
    if any(r.status != S.live for r in rows.values()) or len(rows) != 2:
        raise InvalidTransition("both sessions must be live", code="not_live")
    if not await repo.move_costream(session, link.id, (C.invited,), C.active, accepted_at=utcnow()):
        raise InvalidTransition("the invitation is no longer open", code="not_invited")
    link = await repo.get_costream(session, link.id)  # type: ignore[assignment]
    _costream_changed(session, link, C.active)
    return await costream_out(session, link)


async def decline_costream(session: AsyncSession, actor: Principal, costream_id: int) -> CostreamOut:
    link = await _link(session, actor, costream_id)
    if actor.id != link.invitee_id:
        raise Forbidden("only the invited creator may decline", code="not_invitee")
    if not await repo.move_costream(session, link.id, (C.invited,), C.declined, ended_at=utcnow(),
                                    ended_by_id=actor.id):  # fmt: skip
        raise InvalidTransition(f"a {link.status} co-stream cannot be declined", code="not_invited")
    link = await repo.get_costream(session, link.id)  # type: ignore[assignment]
    _costream_changed(session, link, C.declined)
    return await costream_out(session, link)


async def end_costream(session: AsyncSession, actor: Principal, costream_id: int) -> CostreamOut:
    """Either creator ends the link (the inviter may also withdraw an invitation)."""
    link = await _link(session, actor, costream_id)
    if not await repo.move_costream(session, link.id, (C.invited, C.active), C.ended, ended_at=utcnow(),
                                    ended_by_id=actor.id):  # fmt: skip
        raise InvalidTransition(f"a {link.status} co-stream cannot end", code="not_open")
    link = await repo.get_costream(session, link.id)  # type: ignore[assignment]
    _costream_changed(session, link, C.ended)
    return await costream_out(session, link)


async def get_costream(session: AsyncSession, actor: Principal, costream_id: int) -> CostreamOut:
    return await costream_out(session, await _link(session, actor, costream_id))


async def my_costreams(session: AsyncSession, actor: Principal) -> list[CostreamOut]:
    """The actor's co-streams, invitations in and out, newest first."""
    return [await costream_out(session, link) for link in await repo.costreams_of(session, actor.id)]


async def open_costream(session: AsyncSession, session_id: int) -> CostreamOut | None:
    link = await repo.open_costream_of(session, session_id)
    return await costream_out(session, link) if link is not None else None


async def costream_share(session: AsyncSession, order: Any, split: orders.Split) -> list[tuple[str, int]]:
    """Settlement share (``orders.add_settlement_share``): of an order placed in a linked room
    during the link, ``share_bp`` of the attributed creator's commission goes to the partner."""
    line = await repo.live_order_of(session, order.id)
    if line is None or line.costream_id is None:
        return []
    link = await repo.get_costream(session, line.costream_id)
    room = await repo.get_session(session, line.session_id)
    if link is None or room is None or link.share_bp <= 0:
        return []
    attributed = room.creator_id
    partner = link.invitee_id if attributed == link.inviter_id else link.inviter_id
    amount = sum(
        apply_rate_bp(x.creator_fen, link.share_bp) for x in split.lines if x.creator_id == attributed
    )
    if amount <= 0:
        return []
    return [(ledger.creator_payable(attributed), -amount), (ledger.creator_payable(partner), amount)]


orders.add_settlement_share("live_costream", costream_share)
