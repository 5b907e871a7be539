"""Demo stories: a few orders walked through the after-sale flows, so that every console of the
demo has something in it on the first visit.

- 雷小石 (consignor_lei) bought a Hetian jade bangle from Lao Du; Lao Du has shipped it to the QC
  warehouse, where it waits for the inspector (先鉴后发).
- 小芸妈妈 (mama_yun) bought a bodysuit in Teacher Xu's live room, received it, rated it five stars;
  the shop replied.
- buyer0001 received a silk shirt and asked to return it without a reason: it waits for the shop.
- buyer0002 received a mattress, asked for a return because it sags; the shop rejected, the buyer
  escalated to the platform, and ops opened a care case for the buyer with the care specialist.

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

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trustlive.accounts import service as accounts
from trustlive.accounts.service import Principal
from trustlive.aftersales import service as aftersales
from trustlive.aftersales.schemas import EscalateIn, RejectIn, RequestIn
from trustlive.care import service as care
from trustlive.care.schemas import CaseIn, EntryIn
from trustlive.catalog import service as catalog
from trustlive.config import Settings
from trustlive.db import transaction, utcnow
from trustlive.fulfillment import service as fulfillment
from trustlive.fulfillment.tracking import get_tracker
from trustlive.orders import service as orders
from trustlive.orders.schemas import AddressIn, ItemIn, OrderIn, OrderOut, ShipIn
from trustlive.payments import service as payments
from trustlive.payments import tasks as payment_tasks
from trustlive.reviews import service as reviews
from trustlive.reviews.schemas import ReplyIn, ReviewIn

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
    addresses = await orders.list_addresses(session, buyer)
    if not addresses:
        recipient, phone, region, detail = story.address
        addresses = [await orders.add_address(session, buyer, AddressIn(recipient, phone, region, detail))]
    creator = await accounts.acting_as(session, story.creator) if story.creator else None
    placed = await orders.place_order(session, buyer, OrderIn(
        items=[ItemIn(sku_id=await _sku(session, story, owner), quantity=1)], address_id=addresses[0].id,
        source="live_room" if creator else "shelf", creator_id=creator.id if creator else None,
    ), f"demo:{story.key}")  # fmt: skip
    return await orders.load_order(session, placed.orders[0].id)


async def _walk(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, story: Story) -> OrderOut:
    """Take the story's order from wherever it stands to ``story.until``."""
    async with transaction(sessionmaker) as session:
        order = await _order(session, story)
    if order.status == "pending_payment":
        async with transaction(sessionmaker) as session:
            buyer = await accounts.acting_as(session, story.buyer)
            intent = await payments.create_payment(session, buyer, [order.id], f"demo:{story.key}",
                                                   payments.default_provider(settings))  # fmt: skip
            assert intent.provider_ref is not None
            await payments.sandbox_answer(session, settings, intent.provider_ref, pay=True)
        await payment_tasks.deliver_webhooks(sessionmaker, settings)  # the sandbox tells us it paid
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
    return len(STORIES)
