"""Appraisal and consignment use cases (docs/consignment.md).

A consignor sends an item (photos, description, category, asking price) to an appraiser: a creator
who owns a shop. During one of the creator's live sessions the creator records an appraisal,
shown to the room's viewers (P0 ``appraisal`` through the live service). The consignor accepts
(the item becomes a product with one SKU of stock 1 in the creator's shop, featured in the
creator's live session and bought from the room like any product) or declines (closed). At the
order's settlement the consignor gets the line's shop share minus the creator's consignment fee
(``TRUSTLIVE_CONSIGNMENT_FEE_BP``, none for an order placed during a waiver), moved from the
shop's payable to ``consignor:<id>:payable`` in the settlement's own ledger transaction.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from trustlive import events
from trustlive.accounts import service as accounts
from trustlive.accounts.service import Principal
from trustlive.catalog import service as catalog
from trustlive.catalog.schemas import ProductIn, SkuIn
from trustlive.catalog.service import Upload
from trustlive.config import Settings
from trustlive.consignment import repository as repo
from trustlive.consignment.models import (
    MAX_PHOTOS,
    Appraisal,
    ConsignedItem,
    ConsignedPhoto,
    FeeWaiver,
    ItemStatus,
)
from trustlive.consignment.schemas import (
    AppraisalIn,
    AppraisalOut,
    AppraiserOut,
    FeatureIn,
    ItemIn,
    ItemOut,
    PhotoOut,
    TermsOut,
    UserRefOut,
    WaiverIn,
    WaiverOut,
)
from trustlive.db import utcnow
from trustlive.errors import Conflict, Forbidden, InvalidTransition, NotFound, ValidationFailed, validated
from trustlive.ledger import service as ledger
from trustlive.live import service as live
from trustlive.live.protocol import strip_controls
from trustlive.money import apply_rate_bp
from trustlive.orders import service as orders

St = ItemStatus
SHANGHAI = ZoneInfo("Asia/Shanghai")
MAX_WAIVER_DAYS = 366
OPEN = (St.submitted, St.appraised, St.listed)


# --- who is who -------------------------------------------------------------------------------


async def appraiser(session: AsyncSession, user_id: int, *, field: str = "appraiser_id") -> AppraiserOut:
    """A creator who owns an active shop: the only accounts that take consignments (422
    ``not_an_appraiser`` for anyone else, so the form can say so)."""
    users = await accounts.users_by_ids(session, [user_id])
    user = users.get(user_id)
    roles = await accounts.roles_of(session, user_id) if user is not None else set()
    if user is not None and "creator" in roles:
        who = Principal(user.id, user.username, user.display_name, frozenset(roles))
        for shop in await catalog.shops_of(session, who):
            if shop.owner_id == user.id and shop.status == "active":
                return AppraiserOut(user.id, user.display_name, shop.id, shop.name)
    raise ValidationFailed(
        f"{field}: not a creator with a shop (only they take consignments)",
        field=field,
        code="not_an_appraiser",
    )


async def appraiser_by_username(session: AsyncSession, username: str) -> AppraiserOut:
    try:
        user = await accounts.get_user_by_username(session, username)
    except (NotFound, ValidationFailed):
        raise ValidationFailed(
            "appraiser: no such creator", field="appraiser", code="not_an_appraiser"
        ) from None
    return await appraiser(session, user.id, field="appraiser")


async def categories(session: AsyncSession) -> list[tuple[int, str]]:
    """The active categories for the submit form: (id, "中文 / English")."""
    return [(c.id, f"{c.name_zh} / {c.name_en}") for c in await catalog.list_categories(session)]


async def live_session_id(session: AsyncSession, creator_id: int) -> int | None:
    return await live.live_session_id(session, creator_id)


def local_input(value: str) -> str:
    """A form's ``datetime-local`` value ("2026-12-01T20:00"), which is Asia/Shanghai time."""
    if len(value) in (16, 19) and "T" in value and "+" not in value and not value.endswith("Z"):
        return value + (":00" if len(value) == 16 else "") + "+08:00"
    return value


async def _principal(session: AsyncSession, user_id: int) -> Principal:
    user = (await accounts.users_by_ids(session, [user_id]))[user_id]
    return Principal(
        user.id, user.username, user.display_name, frozenset(await accounts.roles_of(session, user.id))
    )


async def _visible(session: AsyncSession, viewer: Principal, item_id: int) -> ConsignedItem:
    """The item, for its consignor, its appraiser and ops; 404 ``item_not_found`` for anyone else."""
    item = await repo.get_item(session, item_id, fresh=True)
    if item is None or not (viewer.id in (item.consignor_id, item.appraiser_id) or viewer.is_ops):
        raise NotFound(f"consigned item {item_id} not found", code="item_not_found")
    return item


async def _as_consignor(session: AsyncSession, actor: Principal, item_id: int) -> ConsignedItem:
    item = await _visible(session, actor, item_id)
    if item.consignor_id != actor.id:
        raise Forbidden("only the consignor decides on their item", code="not_consignor")
    return item


async def _as_appraiser(session: AsyncSession, actor: Principal, item_id: int) -> ConsignedItem:
    item = await _visible(session, actor, item_id)
    if item.appraiser_id != actor.id:
        raise Forbidden("only the item's appraiser may do this", code="not_appraiser")
    return item


# --- reading ----------------------------------------------------------------------------------


async def _outs(session: AsyncSession, items: list[ConsignedItem], *, history: bool = False) -> list[ItemOut]:
    users = await accounts.users_by_ids(
        session, sorted({u for i in items for u in (i.consignor_id, i.appraiser_id)})
    )
    photos = await repo.photos_of(session, [i.id for i in items])
    skus = await catalog.skus_for_sale(session, [i.sku_id for i in items if i.sku_id is not None])
    outs = []
    for i in items:
        sku = skus.get(i.sku_id) if i.sku_id is not None else None
        appraisals = await repo.appraisals_of(session, i.id) if history else []
        outs.append(
            ItemOut(
                id=i.id, title=i.title, description=i.description, category_id=i.category_id,
                asking_fen=i.asking_fen, status=i.status,
                sold=i.status == St.settled or (i.status == St.listed and sku is not None and sku.stock == 0),
                consignor=UserRefOut(i.consignor_id, users[i.consignor_id].display_name),
                appraiser=UserRefOut(i.appraiser_id, users[i.appraiser_id].display_name),
                shop_id=i.shop_id,
                photos=[PhotoOut(f"/media/{p.path}", p.width, p.height) for p in photos.get(i.id, [])],
                valuation_fen=i.valuation_fen, grade=i.grade, notes=i.notes, session_id=i.session_id,
                appraised_at=i.appraised_at, fee_bp=i.fee_bp, product_id=i.product_id, order_id=i.order_id,
                fee_fen=i.fee_fen, proceeds_fen=i.proceeds_fen, settled_at=i.settled_at, created_at=i.created_at,
                appraisals=[
                    AppraisalOut(a.id, a.session_id, a.valuation_fen, a.grade, a.notes, a.created_at)
                    for a in appraisals
                ],
            )
        )  # fmt: skip
    return outs


async def get_item(session: AsyncSession, viewer: Principal, item_id: int) -> ItemOut:
    """One item with its appraisal history: its consignor, its appraiser, ops."""
    return (await _outs(session, [await _visible(session, viewer, item_id)], history=True))[0]


def _statuses(status: str | None) -> tuple[str, ...]:
    if not status:
        return ()
    wanted = tuple(s.strip() for s in status.split(",") if s.strip())
    bad = [s for s in wanted if s not in St.__members__]
    if bad:
        raise ValidationFailed(f"status: unknown status {bad[0][:20]!r}", field="status")
    return wanted


async def my_items(
    session: AsyncSession, consignor: Principal, *, status: str | None = None, before_id: int | None = None,
    limit: int = 20,
) -> list[ItemOut]:  # fmt: skip
    """The consignor's items, newest first (``limit + 1`` read: the caller trims the page)."""
    rows = await repo.list_items(session, consignor_id=consignor.id, statuses=_statuses(status),
                                 before_id=before_id, limit=limit + 1)  # fmt: skip
    return await _outs(session, rows)


async def queue(
    session: AsyncSession, creator: Principal, *, status: str | None = None, before_id: int | None = None,
    limit: int = 20,
) -> list[ItemOut]:  # fmt: skip
    """The items sent to the creator, newest first."""
    rows = await repo.list_items(session, appraiser_id=creator.id, statuses=_statuses(status),
                                 before_id=before_id, limit=limit + 1)  # fmt: skip
    return await _outs(session, rows)


# --- the consignor ----------------------------------------------------------------------------


async def submit(
    session: AsyncSession, consignor: Principal, data: ItemIn, photos: list[Upload], settings: Settings
) -> ItemOut:
    """A consignor sends an item to an appraiser creator: 422 ``not_an_appraiser`` /
    ``own_item`` / a closed category / bad fields / more than 9 photos; 413/415 bad photos."""
    data = validated(data)
    title = strip_controls(data.title)
    if not title:
        raise ValidationFailed("title: must not be blank", field="title")
    if data.appraiser_id == consignor.id:
        raise ValidationFailed(
            "appraiser_id: you cannot consign to yourself", field="appraiser_id", code="own_item"
        )
    who = await appraiser(session, data.appraiser_id)
    category = await catalog.get_category(session, data.category_id)
    if not category.is_active:
        raise ValidationFailed("category_id: this category is closed", field="category_id")
    if len(photos) > MAX_PHOTOS:
        raise ValidationFailed(f"photos: at most {MAX_PHOTOS}", field="photos", code="too_many_photos")
    now = utcnow()
    item = ConsignedItem(
        consignor_id=consignor.id, appraiser_id=who.id, shop_id=who.shop_id, category_id=category.id, title=title,
        description=data.description.strip(), asking_fen=data.asking_fen, status=St.submitted, notes="",
        created_at=now, updated_at=now,
    )  # fmt: skip
    session.add(item)
    await session.flush()
    for position, upload in enumerate(photos):
        stored = catalog.store_image(session, upload, settings.media_dir, f"consignment/{item.id}",
                                     settings.max_upload_bytes, field=f"photos[{position}]")  # fmt: skip
        session.add(
            ConsignedPhoto(item_id=item.id, path=stored.path, content_type=stored.content_type,
                           byte_size=stored.byte_size, width=stored.width, height=stored.height, position=position)
        )  # fmt: skip
    await session.flush()
    events.record(session, "consignment.submitted", {"item_id": item.id, "appraiser_id": who.id})
    return (await _outs(session, [item]))[0]


async def accept(session: AsyncSession, consignor: Principal, item_id: int, settings: Settings) -> ItemOut:
    """The consignor accepts the valuation: the item is listed in the creator's shop (one SKU at the
    valuation, stock 1, the item's category and photos), featured in the creator's live session if
    one is live. 409 ``not_appraised``."""
    item = await _as_consignor(session, consignor, item_id)
    now = utcnow()
    if item.status != St.appraised or not await repo.transition(
        session, item.id, (St.appraised,), St.listed, decided_at=now, fee_bp=settings.consignment_fee_bp,
        updated_at=now,
    ):  # fmt: skip
        raise InvalidTransition(
            f"the item is {item.status}, not waiting for your answer", code="not_appraised"
        )
    assert item.valuation_fen is not None
    creator = await _principal(session, item.appraiser_id)
    product = await catalog.create_product(
        session, creator, item.shop_id,
        ProductIn(title=item.title, category_id=item.category_id, description=item.description, commission_bp=0,
                  skus=[SkuIn(price_fen=item.valuation_fen, stock=1)]),
    )  # fmt: skip
    for photo in (await repo.photos_of(session, [item.id])).get(item.id, []):
        data = (Path(settings.media_dir) / photo.path).read_bytes()
        await catalog.add_image(session, creator, product.id, Upload(photo.path, photo.content_type, data),
                                settings.media_dir, settings.max_upload_bytes)  # fmt: skip
    await catalog.publish(session, creator, product.id)
    detail = await catalog.product_detail(session, creator, product.id)
    await repo.transition(
        session, item.id, (St.listed,), St.listed, product_id=product.id, sku_id=detail.skus[0].id
    )
    room = await live.live_session_id(session, creator.id)
    if room is not None:
        await live.feature_product(session, creator, room, product.id)
    events.record(session, "consignment.accepted", {"item_id": item.id, "product_id": product.id})
    return await get_item(session, consignor, item.id)


async def decline(session: AsyncSession, consignor: Principal, item_id: int) -> ItemOut:
    """The consignor declines the valuation: the item is closed. 409 ``not_appraised``."""
    item = await _as_consignor(session, consignor, item_id)
    now = utcnow()
    if not await repo.transition(
        session, item.id, (St.appraised,), St.declined, decided_at=now, updated_at=now
    ):
        raise InvalidTransition(
            f"the item is {item.status}, not waiting for your answer", code="not_appraised"
        )
    events.record(session, "consignment.declined", {"item_id": item.id})
    return await get_item(session, consignor, item.id)


async def withdraw(session: AsyncSession, consignor: Principal, item_id: int) -> ItemOut:
    """The consignor takes an item back before it sells. A listed item's one unit is taken off its
    SKU in one conditional UPDATE (so a buyer racing this either got it first — 409
    ``already_sold`` — or finds it gone) and the product is unlisted. 409 ``closed`` otherwise."""
    item = await _as_consignor(session, consignor, item_id)
    now = utcnow()
    if not await repo.transition(session, item.id, OPEN, St.withdrawn, decided_at=now, updated_at=now):
        raise InvalidTransition(f"the item is {item.status}: it can no longer be withdrawn", code="closed")
    if item.status == St.listed and item.product_id is not None and item.sku_id is not None:
        if not await catalog.reserve_stock(session, item.sku_id, 1):
            raise Conflict("the item has been bought: it can no longer be withdrawn", code="already_sold")
        creator = await _principal(session, item.appraiser_id)
        await catalog.unpublish(session, creator, item.product_id)
    events.record(session, "consignment.withdrawn", {"item_id": item.id})
    return await get_item(session, consignor, item.id)


# --- the appraiser ----------------------------------------------------------------------------


async def _terms_state(
    session: AsyncSession, creator_id: int, fee_bp: int, now: dt.datetime
) -> dict[str, Any]:
    waiver = await repo.waiver_covering(session, creator_id, now)
    return {
        "fee_bp": 0 if waiver else fee_bp,
        "waived_until": waiver.ends_at.isoformat() if waiver else None,
        "waived_until_ms": int(waiver.ends_at.timestamp() * 1000) if waiver else None,
        # Shown as it is in the room (the UI's time zone, like every page).
        "waived_until_text": waiver.ends_at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
        if waiver
        else None,
    }


async def appraise(
    session: AsyncSession, creator: Principal, item_id: int, data: AppraisalIn, settings: Settings
) -> ItemOut:
    """The creator values the item during one of their live sessions (403 ``not_your_session``,
    409 ``not_live``); the room's viewers see the card (P0 ``appraisal``) after commit. A valued
    item may be valued again until the consignor answers. 409 ``not_appraisable`` otherwise."""
    data = validated(data)
    item = await _as_appraiser(session, creator, item_id)
    grade, notes = strip_controls(data.grade), strip_controls(data.notes)
    if not grade:
        raise ValidationFailed("grade: must not be blank", field="grade")
    if item.status not in (St.submitted, St.appraised):
        raise InvalidTransition(
            f"the item is {item.status}: it cannot be appraised now", code="not_appraisable"
        )
    now = utcnow()
    photos = (await repo.photos_of(session, [item.id])).get(item.id, [])
    card = {
        "item_id": item.id, "title": item.title, "valuation_fen": data.valuation_fen, "grade": grade,
        "notes": notes, "photo": f"/media/{photos[0].path}" if photos else None,
        **await _terms_state(session, creator.id, settings.consignment_fee_bp, now),
    }  # fmt: skip
    await live.show_appraisal(session, creator, data.session_id, card)
    if not await repo.transition(
        session, item.id, (St.submitted, St.appraised), St.appraised, valuation_fen=data.valuation_fen, grade=grade,
        notes=notes, session_id=data.session_id, appraised_at=now, updated_at=now,
    ):  # fmt: skip
        raise InvalidTransition(
            "the item changed meanwhile: it cannot be appraised now", code="not_appraisable"
        )
    session.add(Appraisal(item_id=item.id, session_id=data.session_id, appraiser_id=creator.id,
                          valuation_fen=data.valuation_fen, grade=grade, notes=notes, created_at=now))  # fmt: skip
    await session.flush()
    events.record(session, "consignment.appraised", {"item_id": item.id, "session_id": data.session_id})
    return await get_item(session, creator, item.id)


async def feature(session: AsyncSession, creator: Principal, item_id: int, data: FeatureIn) -> ItemOut:
    """Feature a listed item's product in one of the creator's scheduled or live sessions."""
    data = validated(data)
    item = await _as_appraiser(session, creator, item_id)
    if item.status != St.listed or item.product_id is None:
        raise InvalidTransition(f"the item is {item.status}, not listed", code="not_listed")
    await live.feature_product(session, creator, data.session_id, item.product_id)
    return await get_item(session, creator, item.id)


# --- fee and waivers --------------------------------------------------------------------------


async def terms(session: AsyncSession, creator_id: int, settings: Settings) -> TermsOut:
    """A creator's consignment terms: the fee, what it is now, the current and coming waivers."""
    now = utcnow()
    state = await _terms_state(session, creator_id, settings.consignment_fee_bp, now)
    waivers = await repo.waivers_of(session, creator_id, now)
    return TermsOut(
        creator_id=creator_id, fee_bp=settings.consignment_fee_bp, fee_bp_now=state["fee_bp"],
        waived_until=dt.datetime.fromisoformat(state["waived_until"]) if state["waived_until"] else None,
        waivers=[WaiverOut(w.id, w.starts_at, w.ends_at, w.starts_at <= now < w.ends_at) for w in waivers],
    )  # fmt: skip


def _aware(value: dt.datetime, field: str) -> dt.datetime:
    if value.tzinfo is None:
        raise ValidationFailed(f"{field}: give a time zone (e.g. +08:00)", field=field)
    return value.astimezone(dt.UTC)


async def add_waiver(
    session: AsyncSession, creator: Principal, data: WaiverIn, settings: Settings
) -> TermsOut:
    """No fee on the creator's consignment sales whose order is placed in [starts_at, ends_at):
    ends after it starts, not in the past, at most 366 days long (422 naming the field). Shown
    in the creator's live room at once if one is live (P0 ``consignment``)."""
    data = validated(data)
    if not creator.has("creator"):
        raise Forbidden("only creators take consignments", code="role_required")
    starts, ends = _aware(data.starts_at, "starts_at"), _aware(data.ends_at, "ends_at")
    now = utcnow()
    if ends <= starts:
        raise ValidationFailed("ends_at: must be after starts_at", field="ends_at")
    if ends <= now:
        raise ValidationFailed("ends_at: the period is over already", field="ends_at", code="in_the_past")
    if ends - starts > dt.timedelta(days=MAX_WAIVER_DAYS):
        raise ValidationFailed(f"ends_at: a waiver lasts at most {MAX_WAIVER_DAYS} days", field="ends_at")
    session.add(FeeWaiver(creator_id=creator.id, starts_at=starts, ends_at=ends, created_at=now))
    await session.flush()
    await live.show_consignment_terms(
        session, creator.id, await _terms_state(session, creator.id, settings.consignment_fee_bp, now)
    )
    return await terms(session, creator.id, settings)


async def on_session_started(session: AsyncSession, event: events.Event, settings: Settings) -> None:
    """``live.session_started``: a creator running a fee waiver shows it in the new room."""
    creator_id = event.payload.get("creator_id")
    if creator_id is None:
        return
    state = await _terms_state(session, int(creator_id), settings.consignment_fee_bp, utcnow())
    if state["waived_until"] is not None:
        await live.show_consignment_terms(session, int(creator_id), state)


# --- settlement -------------------------------------------------------------------------------


async def settlement_share(session: AsyncSession, order: Any, split: orders.Split) -> list[tuple[str, int]]:
    """For ``orders.add_settlement_share``: each consigned line's shop share, minus the creator's fee
    (the item's ``fee_bp`` of the line's base; none when the order was placed during a waiver),
    moves from the shop's payable to the consignor's. The item is marked settled."""
    by_product = {i.product_id: i for i in await repo.listed_items_of_products(
        session, [line.product_id for line in split.lines])}  # fmt: skip
    postings: list[tuple[str, int]] = []
    now = utcnow()
    for line in split.lines:
        item = by_product.get(line.product_id)
        if item is None or item.shop_id != order.shop_id:
            continue
        waived = await repo.waiver_covering(session, item.appraiser_id, order.created_at) is not None
        fee = 0 if waived else min(apply_rate_bp(line.base_fen, item.fee_bp or 0), max(line.shop_fen, 0))
        proceeds = max(line.shop_fen - fee, 0)
        if proceeds:
            postings += ledger.transfer(ledger.shop_payable(order.shop_id), ledger.consignor_payable(item.consignor_id),
                                        proceeds)  # fmt: skip
        await repo.transition(session, item.id, (St.listed,), St.settled, order_id=order.id, fee_fen=fee,
                              proceeds_fen=proceeds, settled_at=now, updated_at=now)  # fmt: skip
        events.record(session, "consignment.settled",
                      {"item_id": item.id, "order_id": order.id, "fee_fen": fee, "proceeds_fen": proceeds})  # fmt: skip
    return postings


orders.add_settlement_share("consignment", settlement_share)
