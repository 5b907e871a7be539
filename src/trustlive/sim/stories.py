"""Demo stories: a few orders walked through the after-sale flows, so that every console of the
demo has something in it on the first visit.

- 雷小石 (consignor_lei) bought a Hetian jade bangle from Lao Du; Lao Du has shipped it to the QC
  warehouse, where it waits for the inspector (先鉴后发).
- 小芸妈妈 (mama_yun) bought a bodysuit in Teacher Xu's live room, received it, rated it five stars;
  the shop replied.
- buyer0001 received a silk shirt and asked to return it without a reason: it waits for the shop.
- buyer0002 received a mattress, asked for a return because it sags; the shop rejected, the buyer
  escalated to the platform, and ops opened a care case for the buyer with the care specialist.

The live room (docs/live.md, docs/consignment.md):

- 雷小石 (consignor_lei) consigned a Hetian jade plaque (平安牌) to Lao Du (laodu); Lao Du went live for
  an appraisal night, valued it on air (valuation, grade, notes: the appraisal needs a live session
  of the appraiser), and it now waits for 雷小石's accept or decline on ``/consignments``.
- In that session, now ENDED, Lao Du featured his jade pieces; 雷小石, buyer0001, buyer0002 and
  小芸妈妈 joined, liked and commented (through the room's handler and comment writer, as the hub
  would); Lao Du pinned the jadeite pendant and ran a flash sale on it; buyer0001 bought one in the
  flash sale and buyer0002 another size, both from the room (``live.service.buy``: source
  ``live_room``) and paid, so they wait for Lao Du to ship them to the QC warehouse.
  ``/live/{id}/replay`` shows the figures, the comments and (to laodu or ops) the sales. It all
  happens within the seed run, so the replay's duration is a few seconds.
- Teacher Xu (teacher_xu) has a session SCHEDULED about an hour after the seed with her kids'
  clothes featured: ``/live`` lists it, and she starts it from ``/console/live/{id}``. Seeding
  again later moves it an hour ahead when its time has gone by while it is still scheduled (a
  session is never left live: the heartbeat sweeper would end it after 300 s).

Everything goes through the services, as the people in the story would act, with payments through
the sandbox provider (its webhooks delivered in process). Each story moves on from wherever it
stands, so seeding again changes nothing: the order is found by its idempotency key and every step
looks at the current state first.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trustlive.accounts import service as accounts
from trustlive.accounts.service import Principal
from trustlive.aftersales import service as aftersales
from trustlive.aftersales.schemas import EscalateIn, RejectIn, RequestIn
from trustlive.care import service as care
from trustlive.care.schemas import CaseIn, EntryIn
from trustlive.catalog import service as catalog
from trustlive.config import Settings
from trustlive.consignment import service as consignment
from trustlive.consignment.schemas import AppraisalIn
from trustlive.consignment.schemas import ItemIn as ConsignIn
from trustlive.consignment.schemas import ItemOut as ConsignedOut
from trustlive.db import transaction, utcnow
from trustlive.fulfillment import service as fulfillment
from trustlive.fulfillment.tracking import get_tracker
from trustlive.live import service as live
from trustlive.live.handler import CommentWriter, ModerationCache, RoomHandler
from trustlive.live.schemas import FlashSaleIn, LiveOrderIn, SessionIn, SessionOut, SessionPatch
from trustlive.orders import service as orders
from trustlive.orders.schemas import AddressIn, ItemIn, OrderIn, OrderOut, ShipIn
from trustlive.payments import service as payments
from trustlive.payments import tasks as payment_tasks
from trustlive.reviews import service as reviews
from trustlive.reviews.schemas import ReplyIn, ReviewIn
from trustlive.sim import images

Step = Callable[[AsyncSession], Awaitable[Any]]


@dataclass(frozen=True)
class Story:
    key: str  # the order's idempotency key: "demo:<key>"
    buyer: str
    shop: str  # slug
    product: str  # title
    until: str  # "shipped" (to the buyer or the QC warehouse) or "completed"
    creator: str | None = None  # bought through this creator's live room
    address: tuple[str, str, str, str] = ("王芳", "13800000001", "浙江省杭州市西湖区", "文三路 90 号")


STORIES = (
    Story("jade-at-the-lab", "consignor_lei", "laodu-jade", "新疆和田玉手镯 籽料 青白玉/白玉/羊脂白玉", "shipped",
          address=("雷小石", "13800000002", "广东省广州市荔湾区", "华林玉器街 12 号")),
    Story("kids-reviewed", "mama_yun", "xiaohaitun-kids", "", "completed", creator="teacher_xu",
          address=("小芸妈妈", "13800000003", "湖南省邵阳市隆回县", "桃花坪街道 6 号")),
    Story("silk-return", "buyer0001", "sujin-silk", "19姆米桑蚕丝真丝衬衫 女", "completed"),
    Story("mattress-dispute", "buyer0002", "mianlifang-home", "", "completed",
          address=("赵敏", "13800000004", "江苏省南京市鼓楼区", "中山北路 200 号")),
)  # fmt: skip


async def _owner(session: AsyncSession, slug: str) -> Principal:
    shop = await catalog.get_shop_by_slug(session, slug)
    return await accounts.acting_as(session, (await accounts.get_user(session, shop.owner_id)).username)


async def _sku(session: AsyncSession, story: Story, owner: Principal) -> int:
    """The story's product (by title; "" for the shop's first published one that needs no
    inspection and allows no-reason returns) and its first SKU on sale."""
    shop = await catalog.get_shop_by_slug(session, story.shop)
    cards = await catalog.shop_products(session, owner, shop.id, after_id=None, limit=100)
    for card in cards:
        if story.product and card.title != story.product:
            continue
        product = await catalog.product_detail(session, owner, card.id)
        category = await catalog.get_category(session, product.category_id)
        if not story.product and (category.requires_inspection or category.return_window_days == 0):
            continue
        for sku in product.skus:
            if sku.is_active and sku.stock > 0:
                return sku.id
    raise LookupError(f"demo story {story.key}: no SKU on sale in {story.shop}")


async def _order(session: AsyncSession, story: Story) -> OrderOut:
    buyer = await accounts.acting_as(session, story.buyer)
    placed_before = await orders.placed_with_key(session, buyer, f"demo:{story.key}")
    if placed_before:  # the SKU chosen then may be sold out now: never choose again
        return await orders.load_order(session, placed_before[0].id)
    owner = await _owner(session, story.shop)
    address_id = await _address(session, buyer, story.address)
    creator = await accounts.acting_as(session, story.creator) if story.creator else None
    placed = await orders.place_order(session, buyer, OrderIn(
        items=[ItemIn(sku_id=await _sku(session, story, owner), quantity=1)], address_id=address_id,
        source="live_room" if creator else "shelf", creator_id=creator.id if creator else None,
    ), f"demo:{story.key}")  # fmt: skip
    return await orders.load_order(session, placed.orders[0].id)


async def _pay(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, username: str, key: str
) -> None:
    """Pay the buyer's unpaid orders placed under ``key`` through the sandbox provider."""
    async with transaction(sessionmaker) as session:
        buyer = await accounts.acting_as(session, username)
        unpaid = [
            o.id for o in await orders.placed_with_key(session, buyer, key) if o.status == "pending_payment"
        ]
        if not unpaid:
            return
        intent = await payments.create_payment(
            session, buyer, unpaid, key, payments.default_provider(settings)
        )
        assert intent.provider_ref is not None
        await payments.sandbox_answer(session, settings, intent.provider_ref, pay=True)
    await payment_tasks.deliver_webhooks(sessionmaker, settings)  # the sandbox tells us it paid


async def _address(session: AsyncSession, buyer: Principal, address: tuple[str, str, str, str]) -> int:
    """The buyer's first address, added from ``address`` when they have none."""
    addresses = await orders.list_addresses(session, buyer)
    if not addresses:
        recipient, phone, region, detail = address
        addresses = [await orders.add_address(session, buyer, AddressIn(recipient, phone, region, detail))]
    return addresses[0].id


async def _walk(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, story: Story) -> OrderOut:
    """Take the story's order from wherever it stands to ``story.until``."""
    async with transaction(sessionmaker) as session:
        order = await _order(session, story)
    if order.status == "pending_payment":
        await _pay(sessionmaker, settings, story.buyer, f"demo:{story.key}")
    tracker = get_tracker(settings, settings.tracking_service)
    async with transaction(sessionmaker) as session:
        order = await orders.load_order(session, order.id)
        owner = await _owner(session, story.shop)
        if order.status == "paid":
            number = "SFDEMO" + str(order.id).zfill(8)
            await fulfillment.ship(session, owner, order.id, ShipIn("SF", number), tracker)
    if story.until == "shipped":
        return order
    async with transaction(sessionmaker) as session:
        order = await orders.load_order(session, order.id)
        if order.status == "shipped":
            await fulfillment.deliver(session, owner, order.id, orders.OrderPolicy.from_settings(settings))
        order = await orders.load_order(session, order.id)
        if order.status == "delivered":
            await orders.confirm_receipt(session, await accounts.acting_as(session, story.buyer), order.id)
        return await orders.load_order(session, order.id)


async def _review_and_reply(session: AsyncSession, settings: Settings, story: Story, order: OrderOut) -> None:
    buyer = await accounts.acting_as(session, story.buyer)
    panel = await reviews.order_panel(session, buyer, order)
    line = panel.lines[0] if panel else None
    if line is None:
        return
    review = line.review
    if review is None and line.blocked is None:
        review = await reviews.post_review(session, buyer, order.id, line.line.id, ReviewIn(
            5, 5, 5, "料子软，洗了不起球，儿子穿 80 码正合适。许老师直播讲得很清楚，回购第三次了。",
        ), [], settings)  # fmt: skip
    if review is not None and review.reply is None:
        await reviews.reply(session, await _owner(session, story.shop), review.id,
                            ReplyIn("谢谢小芸妈妈！秋冬款下周三育儿课堂上新，记得来看。"))  # fmt: skip


async def _request(session: AsyncSession, story: Story, order: OrderOut, reason: str, text: str) -> Any:
    """The story's after-sales request on the order's first line: opened once."""
    buyer = await accounts.acting_as(session, story.buyer)
    panel = await aftersales.order_panel(session, buyer, order)
    if panel is not None and panel.requests:
        return panel.requests[0]
    line = order.lines[0]
    return await aftersales.open_request(session, buyer, RequestIn(
        order_id=order.id, kind="return_refund", reason=reason, amount_fen=line.line_total_fen,
        line_id=line.id, description=text,
    ))  # fmt: skip


async def _dispute_and_care(
    sessionmaker: async_sessionmaker[AsyncSession], story: Story, order: OrderOut
) -> None:
    async with transaction(sessionmaker) as session:
        request = await _request(session, story, order, "quality",
                                 "床垫用了两周中间塌陷，躺下去腰疼。家里老人下个月要做腰椎手术，这张床垫是为他买的。")  # fmt: skip
        if request.status == "pending":
            request = await aftersales.reject(session, await _owner(session, story.shop), request.id, RejectIn(
                "塌陷在正常回弹范围内，建议翻面使用两周再看。"))  # fmt: skip
        if request.status == "rejected":
            await aftersales.escalate(session, await accounts.acting_as(session, story.buyer), request.id,
                                      EscalateIn("老人手术在即，需要尽快换一张合适的床垫。"))  # fmt: skip
    async with transaction(sessionmaker) as session:
        ops = await accounts.acting_as(session, "ops")
        specialist = await accounts.get_user_by_username(session, "care")
        if await care.list_cases(session, ops, buyer=story.buyer):
            return
        case = await care.open_case(session, ops, CaseIn(
            risk_summary="买家家中老人即将手术，床垫质量投诉被商家驳回，情绪焦虑。需要专人跟进直到解决。",
            request_id=request.id, priority="high", specialist_id=specialist.id,
            first_follow_up_at=utcnow() + dt.timedelta(days=1), first_follow_up_plan="电话回访：了解老人手术日期，确认换货或退款意向",
        ))  # fmt: skip
        await care.add_entry(session, await accounts.acting_as(session, "care"), case.id, EntryIn(
            "您好，我是平台高危专员小安。您的床垫问题我们已经在跟进，明天会给您打电话，有任何情况随时在这里留言。",
            kind="message", to_buyer=True,
        ))  # fmt: skip


# --- the live room -----------------------------------------------------------------------------

APPRAISER = "laodu"
JADE_SHOP = "laodu-jade"
CONSIGNOR = "consignor_lei"
APPRAISAL_NIGHT = "老杜鉴宝夜：和田玉、翡翠现场估价，平安扣秒杀"
APPRAISAL_FEATURED = (
    "缅甸翡翠冰种平安扣吊坠", "新疆和田玉手镯 籽料 青白玉/白玉/羊脂白玉", "缅甸翡翠手镯 糯冰种 正圈",
    "翡翠蛋面戒指 18K金镶嵌",
)  # fmt: skip
FLASH_PRODUCT = "缅甸翡翠冰种平安扣吊坠"
CONSIGNED = ConsignIn(
    appraiser_id=1,  # replaced by Lao Du's id
    title="和田玉籽料平安牌 原皮 爷爷留下的",
    category_id=1,  # replaced by the hetian-jade category's id
    description="爷爷留下的老牌子，籽料带原皮，约 45×30×8mm。想请杜哥看看，合适的话寄卖。\n"
    "A Hetian jade pebble plaque with its skin, left by my grandfather.",
    asking_fen=3_000_00,
)
APPRAISAL = AppraisalIn(
    session_id=1,  # replaced by the session's id
    valuation_fen=2_680_00,
    grade="籽料 白玉 一级",
    notes="原皮籽料，毛孔自然，非染色；油润度好，有一处小绺不影响佩戴。建议寄卖价 2680 元。",
)
# (username, text): who joined the room and what they said, in order.
ROOM_COMMENTS = (
    (APPRAISER, "老铁们晚上好！先给雷哥看一块籽料平安牌，看完上平安扣秒杀。"),
    (CONSIGNOR, "杜哥，牌子是我爷爷留下的，麻烦给看看值多少。"),
    ("buyer0002", "这皮色是真的吗？不会是染的吧"),
    (APPRAISER, "皮是原皮，你们看这毛孔，染不出来。证书实验室出，先鉴后发，放心。"),
    ("buyer0001", "平安扣几点开抢？想给我妈买一个"),
    ("mama_yun", "许老师直播间过来的，支持老杜！"),
    (APPRAISER, "平安扣秒杀开始了，每人限一个，手慢无！"),
)


@dataclass(frozen=True)
class RoomBuy:
    key: str  # the order's idempotency key: "demo:<key>"
    buyer: str
    flash: bool  # the SKU on flash sale, else another size of the pinned pendant
    address: tuple[str, str, str, str]


ROOM_BUYS = (
    RoomBuy("live-pendant-flash", "buyer0001", True, ("李娜", "13800000005", "山东省济南市历下区", "泉城路 8 号")),
    RoomBuy("live-pendant", "buyer0002", False, ("赵敏", "13800000004", "江苏省南京市鼓楼区", "中山北路 200 号")),
)  # fmt: skip

UPCOMING_CREATOR = "teacher_xu"
UPCOMING = "许老师育儿课堂：秋冬童装上新，顺便聊聊孩子挑食怎么办"
UPCOMING_SHOP = "xiaohaitun-kids"
UPCOMING_IN = dt.timedelta(hours=1)


async def _find_session(session: AsyncSession, creator: Principal, title: str) -> SessionOut | None:
    """The creator's session with this title (the demo's sessions are found by title)."""
    for room in await live.list_my_sessions(session, creator, before_id=None, limit=100):
        if room.title == title:
            return room
    return None


async def _products(session: AsyncSession, slug: str, titles: tuple[str, ...] = ()) -> list[Any]:
    """The shop's published products with these titles (in that order), or all of them."""
    owner = await _owner(session, slug)
    shop = await catalog.get_shop_by_slug(session, slug)
    cards = await catalog.shop_products(session, owner, shop.id, after_id=None, limit=100)
    by_title = {card.title: card for card in cards}
    chosen = [by_title[t] for t in titles if t in by_title] if titles else cards
    return [await catalog.product_detail(session, owner, card.id) for card in chosen]


async def _consigned(session: AsyncSession, settings: Settings) -> ConsignedOut:
    """雷小石's plaque sent to Lao Du: submitted once, found by its title after."""
    consignor = await accounts.acting_as(session, CONSIGNOR)
    for item in await consignment.my_items(session, consignor, limit=100):
        if item.title == CONSIGNED.title:
            return item
    appraiser = await accounts.acting_as(session, APPRAISER)
    category = next(c for c in await catalog.list_categories(session) if c.slug == "hetian-jade")
    photo = images.product_image("consignment/pingan-pai", "pebble", images.hex_rgb("#2e7d5b"))
    return await consignment.submit(
        session,
        consignor,
        msgspec.structs.replace(CONSIGNED, appraiser_id=appraiser.id, category_id=category.id),
        [catalog.Upload("pingan-pai.jpg", "image/jpeg", photo)],
        settings,
    )


async def _room_talk(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, room_id: int
) -> None:
    """The viewers join, like and comment through the room's handler, as the hub would call it; the
    comment writer stores the comments and the room's figures for the replay. A comment already
    stored (a seed interrupted while the room was live) is not said again."""
    async with transaction(sessionmaker) as session:
        appraiser = await accounts.acting_as(session, APPRAISER)
        said = {(c.user_id, c.text) for c in await live.list_comments(
            session, appraiser, room_id, before_id=None, limit=200)}  # fmt: skip
        people = {u: await accounts.acting_as(session, u) for u in dict.fromkeys(u for u, _ in ROOM_COMMENTS)}
    writer = CommentWriter(sessionmaker)
    handler = RoomHandler(sessionmaker, settings, writer, moderation=ModerationCache())
    try:
        for person in people.values():
            await handler.on_join(room_id, person)
            await handler.on_like(room_id, person, 10)
        for username, text in ROOM_COMMENTS:
            if (people[username].id, text) not in said:
                await handler.on_comment(room_id, people[username], text)
        for person in people.values():
            await handler.on_leave(room_id, person)
    finally:
        await writer.stop()  # writes what it holds


async def _flash_sale(session: AsyncSession, settings: Settings, room_id: int) -> None:
    """Lao Du pins the pendant and puts its first size in stock on a flash sale (once)."""
    appraiser = await accounts.acting_as(session, APPRAISER)
    pendant = (await _products(session, JADE_SHOP, (FLASH_PRODUCT,)))[0]
    room = await live.get_session(session, appraiser, room_id)
    if room.pinned_product_id != pendant.id:
        await live.pin(session, appraiser, room_id, pendant.id)
    if await live.current_sale(session, appraiser, room_id) is None:
        sku = next(x for x in pendant.skus if x.is_active and x.stock > 0)
        await live.start_flash_sale(session, appraiser, room_id, FlashSaleIn(
            sku_id=sku.id, allocation=min(3, sku.stock), per_buyer_limit=1, seconds=15 * 60))  # fmt: skip


async def _buy_in_room(session: AsyncSession, settings: Settings, room_id: int, buy: RoomBuy) -> None:
    buyer = await accounts.acting_as(session, buy.buyer)
    key = f"demo:{buy.key}"
    if await orders.placed_with_key(session, buyer, key):
        return
    appraiser = await accounts.acting_as(session, APPRAISER)
    sale = await live.current_sale(session, appraiser, room_id)
    pendant = (await _products(session, JADE_SHOP, (FLASH_PRODUCT,)))[0]
    on_sale = sale.sku_id if sale is not None else None
    in_stock = [x.id for x in pendant.skus if x.is_active and x.stock > 0]
    others = [x for x in in_stock if x != on_sale]
    sku_id = on_sale if buy.flash and on_sale is not None else (others or in_stock)[0]
    await live.buy(session, buyer, room_id, LiveOrderIn(sku_id=sku_id, quantity=1,
                   address_id=await _address(session, buyer, buy.address)), key,
                   orders.OrderPolicy.from_settings(settings))  # fmt: skip


async def _appraisal_night(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> int:
    """雷小石 consigns his plaque; Lao Du's appraisal night goes from scheduled to live, the room
    talks, the pendant sells in a flash sale and off the shelf, Lao Du values the plaque on air, and
    the session ends. Each step looks at where things stand, so a second seed finds the session
    ended and does nothing. Returns the session's id."""
    async with transaction(sessionmaker) as session:
        item = await _consigned(session, settings)
        appraiser = await accounts.acting_as(session, APPRAISER)
        room = await _find_session(session, appraiser, APPRAISAL_NIGHT)
        if room is None:
            featured = [p.id for p in await _products(session, JADE_SHOP, APPRAISAL_FEATURED)]
            room = await live.create_session(session, appraiser, SessionIn(
                APPRAISAL_NIGHT, utcnow() - dt.timedelta(minutes=5), featured), None, settings)  # fmt: skip
        if room.status == "scheduled":
            room = await live.start_session(session, appraiser, room.id, settings)
    if room.status == "live":
        await _room_talk(sessionmaker, settings, room.id)
        async with transaction(sessionmaker) as session:
            await _flash_sale(session, settings, room.id)
        for buy in ROOM_BUYS:
            async with transaction(sessionmaker) as session:
                await _buy_in_room(session, settings, room.id, buy)
        async with transaction(sessionmaker) as session:
            appraiser = await accounts.acting_as(session, APPRAISER)
            item = await consignment.get_item(session, appraiser, item.id)
            if item.status == "submitted":
                await consignment.appraise(session, appraiser, item.id,
                                           msgspec.structs.replace(APPRAISAL, session_id=room.id), settings)  # fmt: skip
            await live.end_session(session, appraiser, room.id)  # ends the flash sale too
    for buy in ROOM_BUYS:
        await _pay(sessionmaker, settings, buy.buyer, f"demo:{buy.key}")
    return room.id


async def _upcoming(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> int:
    """Teacher Xu's next session, scheduled about an hour ahead with her clothes featured; moved an
    hour ahead again when its time has passed while it is still scheduled. Returns its id."""
    async with transaction(sessionmaker) as session:
        creator = await accounts.acting_as(session, UPCOMING_CREATOR)
        room = await _find_session(session, creator, UPCOMING)
        when = utcnow() + UPCOMING_IN
        if room is None:
            featured = [p.id for p in await _products(session, UPCOMING_SHOP)][:4]
            room = await live.create_session(
                session, creator, SessionIn(UPCOMING, when, featured), None, settings
            )
        elif room.status == "scheduled" and room.scheduled_at < utcnow():
            room = await live.update_session(session, creator, room.id, SessionPatch(scheduled_at=when), None,
                                             settings)  # fmt: skip
        return room.id


LIVE_STORIES = 3  # the appraisal night's replay, its consignment, Teacher Xu's next session
COUNT = len(STORIES) + LIVE_STORIES


async def play_stories(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> int:
    """Walk every story as far as it goes; returns how many stories there are."""
    walked = {story.key: await _walk(sessionmaker, settings, story) for story in STORIES}
    by_key = {story.key: story for story in STORIES}
    async with transaction(sessionmaker) as session:
        await _review_and_reply(session, settings, by_key["kids-reviewed"], walked["kids-reviewed"])
    async with transaction(sessionmaker) as session:
        await _request(session, by_key["silk-return"], walked["silk-return"], "no_reason",
                       "颜色比图片深一些，不太适合我。")  # fmt: skip
    await _dispute_and_care(sessionmaker, by_key["mattress-dispute"], walked["mattress-dispute"])
    await _appraisal_night(sessionmaker, settings)
    await _upcoming(sessionmaker, settings)
    return COUNT
