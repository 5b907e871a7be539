"""Ninety days of past trade for the demo, so that its shops and creators show real trust scores
(docs/scores.md) instead of "new": a score needs 30 delivered order lines in 90 days (a product
10), and the stories (``sim/stories.py``) make only a handful.

- 老杜 (laodu-jade) sold 40 pieces of jade in 26 orders, nearly all from his live room, every
  one through the QC warehouse (先鉴后发): shipped on time, inspected, forwarded, mostly five-star
  reviews. The lab caught one jadeite bangle (B 货) and the buyer got everything back. Deliveries
  are slowish (the detour through the lab): a trusted shop around 4.7.
- 许老师's kids' clothing shop (xiaohaitun-kids) sold 57 pieces in 25 orders, most through her
  live room. Five parcels left after their ship-by time, a sun jacket and a pyjama set came back
  as quality refunds, a few buyers left one and two stars, and ops upheld one complaint that a
  bodysuit was not the cotton 许老师 had said it was. Its score sits in the threes, and the
  drill-down says why.
- Both owners sell as creators in their own rooms, so 老杜 and 许老师 get creator reputations too.

How it is played: every order goes through the domain services, as the people in it would act
(checkout, payment through the sandbox provider, shipping, the inspector's receipt, result and
forwarding, delivery, confirmation, review and reply, after-sales request and approval, complaint
and ops' decision), at the present time. Services that take a ``now`` (reviews, replies,
inspections, after-sales requests, complaints) are given the moment in the past directly. Then
the simulator moves the rest of that order's timestamps back to the day it "happened" with
direct UPDATEs (``_move``): time travel of the simulator's own synthetic data, done in the
transaction that walked the order, so an order is either not walked yet or walked and moved.
The moved times keep every invariant (created < paid < ship-by; paid < shipped < (QC received <
inspected < forwarded <) delivered < confirmed < reviews, requests, complaints < the seed;
deadlines keep their distance from what they count from). Money is left alone: payments,
refunds and ledger postings keep the moments they were really made (the ledger is a hash chain
of what happened during the seed), so ``trustlive ledger verify`` holds. An order's settlement
date moves with its confirmation: the scheduler's settlement sweeper splits the escrow of those
whose date has passed on its first pass, through the settlement service, as for any order.
Parcels of the past are not subscribed to the tracking sandbox (it would report their stages
over the coming days): they are recorded as delivered when they were, with the carrier's reports
of their journeys.

Idempotent: each order is found by its idempotency key (``history:<shop>:<n>``) and moves on
from wherever it stands; an order walked (and moved) before is left as it is. The buyers are the
generated buyer0011-buyer0030: a world seeded with fewer buyers (the tests' small worlds) gets no
history. At the end the trust facts are rebuilt and every score recomputed, so the demo shows
scores at once.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import case, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trustlive.accounts import service as accounts
from trustlive.accounts.service import Principal
from trustlive.aftersales import service as aftersales
from trustlive.aftersales.models import AftersalesRequest
from trustlive.aftersales.schemas import RequestIn
from trustlive.catalog import service as catalog
from trustlive.catalog.schemas import SkuPatch
from trustlive.config import Settings
from trustlive.db import transaction, utcnow
from trustlive.errors import BadRequest, NotFound
from trustlive.fulfillment import service as fulfillment
from trustlive.fulfillment.models import QcCase, Shipment, TrackingEvent
from trustlive.fulfillment.schemas import InspectionIn, ParcelIn, ReceiveIn, TrackingUpdate
from trustlive.orders import service as orders
from trustlive.orders.models import Checkout, Order, OrderEvent
from trustlive.orders.schemas import AddressIn, ItemIn, OrderIn, OrderOut, ShipIn
from trustlive.payments import service as payments
from trustlive.payments import tasks as payment_tasks
from trustlive.reviews import service as reviews
from trustlive.reviews.schemas import ReplyIn, ReviewIn
from trustlive.sim.names import buyer_username
from trustlive.trust import service as trust
from trustlive.trust.schemas import ComplaintDecisionIn, ComplaintIn

Progress = Callable[[str, int, int], None]
HOUR = dt.timedelta(hours=1)
FIRST_BUYER = 11  # buyer0011 ... buyer0030 did the buying (buyer0001/0002 are in the stories)
BUYERS = 20
JADE_ORDERS = 26
KIDS_ORDERS = 25
STAGE = "trade history"
WALK_BATCH = 12  # orders walked per transaction
SCARCE = 10  # SKUs with at most this many in stock are restocked after each sale

# --- the plan -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Review:
    product: int
    logistics: int
    service: int
    text: str
    after_h: float  # after receipt was confirmed
    reply: str = ""


@dataclass(frozen=True)
class Refund:
    """A quality complaint about one line that the shop settled with a partial refund (the buyer
    keeps the item)."""

    line: int  # index into the order's lines
    percent: int
    text: str
    after_h: float  # after receipt was confirmed
    handled_h: float  # the shop's answer


@dataclass(frozen=True)
class Claim:
    """A buyer's complaint that the creator described one line's item falsely, upheld by ops."""

    line: int
    claim: str
    note: str
    after_h: float  # after delivery
    decided_h: float


@dataclass(frozen=True)
class Past:
    """One order of the past, its times in hours from payment (``paid`` days before the seed)."""

    key: str  # the order's idempotency key
    shop: str
    lines: tuple[str, ...]  # product titles, one piece of each
    buyer: int  # generated buyer's index
    creator: str | None
    paid: float  # days before the seed
    ship_h: float  # payment -> parcel handed to the carrier (ship-by is 48 h)
    transit_h: float  # the parcel to the buyer (from the QC warehouse's forwarding) -> delivered
    confirm_h: float  # delivered -> receipt confirmed
    reviews: tuple[Review | None, ...] = ()  # by line
    qc: tuple[float, float, float] | None = None  # to the lab; received -> result; -> forwarded
    failed: str = ""  # the lab's finding when the item failed inspection
    refund: Refund | None = None
    claim: Claim | None = None


JADE = "laodu-jade"
KIDS = "xiaohaitun-kids"
OWNERS = {JADE: "laodu", KIDS: "teacher_xu"}
JADE_PRODUCTS = {
    "新疆和田玉手镯 籽料 青白玉/白玉/羊脂白玉": 5,
    "缅甸翡翠冰种平安扣吊坠": 4,
    "翡翠蛋面戒指 18K金镶嵌": 2,
    "缅甸翡翠手镯 糯冰种 正圈": 2,
}
KIDS_PRODUCTS = {
    "A类纯棉儿童家居服套装": 5,
    "儿童UPF50+防晒外套": 4,
    "A类纯棉婴儿连体衣 爬服": 3,
    "儿童摇粒绒背心": 2,
    "宝宝学步鞋 软底防滑": 1,
}
JADE_PRAISE = (
    "证书和实物对得上，水头比直播间看着还好，老杜靠谱。",
    "先鉴后发很放心，证书编号能查到，包装也仔细。",
    "圈口刚好，颜色温润，给我妈买的，她天天戴着。",
    "第二次在老杜这里买了，讲得实在，不忽悠。",
    "平安扣小巧透亮，红绳编得结实，送闺女的。",
    "做工精细，和证书上写的一样，满意。",
    "",
)
KIDS_PRAISE = (
    "料子软，宝宝穿着不闹，洗了两次没变形。",
    "许老师推荐的尺码很准，110 正合适。",
    "家里三个娃一次买齐了，划算。",
    "轻薄透气，孩子自己抢着穿。",
    "",
)
B_GRADE = "荧光反应明显，红外光谱见充胶，判定为 B 货，与 A 货描述不符。"  # the lab's finding
SF_CARRIER = "SF"
KIDS_CARRIER = "ZTO"


def _spread(rng: random.Random, n: int, first: float, last: float) -> list[float]:
    """``n`` days before the seed, from ``last`` (oldest) to ``first``, evenly with some jitter."""
    step = (last - first) / n
    return [round(last - step * (i + rng.random() * 0.8), 2) for i in range(n)]


def _basket(rng: random.Random, weights: dict[str, int], sizes: tuple[int, ...]) -> tuple[str, ...]:
    """A few different products, the popular ones more often."""
    titles = list(weights)
    chosen: list[str] = []
    for _ in range(rng.choice(sizes)):
        left = [t for t in titles if t not in chosen]
        chosen.append(rng.choices(left, [weights[t] for t in left])[0])
    return tuple(chosen)


def jade_plan() -> list[Past]:
    """老杜's shop: 26 orders (40 pieces), almost all from his live room, all through the lab."""
    rng = random.Random("trustlive-history/laodu-jade")
    days = _spread(rng, JADE_ORDERS, 7, 88)
    failed_at = JADE_ORDERS // 2 - 3  # about seven weeks ago
    out = []
    for i, paid in enumerate(days):
        lines = ("缅甸翡翠手镯 糯冰种 正圈",) if i == failed_at else _basket(rng, JADE_PRODUCTS, (1, 2, 2))
        reviews = []
        for _ in lines:
            stars = 5 if rng.random() < 0.85 else 4
            text = rng.choice(JADE_PRAISE) if stars == 5 else "东西不错，要先去质检仓，到货比想象中慢几天。"
            keep = i != failed_at and rng.random() < 0.7
            reviews.append(Review(stars, rng.choice((4, 5, 5)), 5 if rng.random() < 0.85 else 4, text,
                                  round(rng.uniform(2, 40), 2)) if keep else None)  # fmt: skip
        if i == JADE_ORDERS - 10:
            reviews[0] = Review(3, 5, 4, "颜色比直播间看着偏灰一点，证书没问题，就是和想的不太一样。", 30,
                                "谢谢反馈！玉石在补光灯下会显得更亮，以后直播我们会加一段自然光下的展示。")  # fmt: skip
        out.append(
            Past(
                key=f"history:{JADE}:{i}",
                shop=JADE,
                lines=lines,
                buyer=FIRST_BUYER + (i * 7) % BUYERS,
                creator="laodu" if i % 16 != 5 else None,
                paid=paid,
                ship_h=round(rng.uniform(4, 30), 2),
                transit_h=round(rng.uniform(18, 36), 2),
                confirm_h=round(rng.uniform(2, 48), 2),
                reviews=tuple(reviews),
                qc=(round(rng.uniform(16, 30), 2), round(rng.uniform(2, 16), 2), round(rng.uniform(1, 5), 2)),
                failed=B_GRADE if i == failed_at else "",
            )
        )
    return out


def kids_plan() -> list[Past]:
    """许老师's shop: 25 orders (57 pieces), most from her live room, with its troubles."""
    rng = random.Random("trustlive-history/xiaohaitun-kids")
    days = _spread(rng, KIDS_ORDERS, 6, 87)
    out = []
    for i, paid in enumerate(days):
        lines = _basket(rng, KIDS_PRODUCTS, (1, 2, 2, 2, 3, 3))
        reviews = [_kids_review(rng) if rng.random() < 0.7 else None for _ in lines]
        out.append(
            Past(
                key=f"history:{KIDS}:{i}",
                shop=KIDS,
                lines=lines,
                buyer=FIRST_BUYER + (i * 11 + 3) % BUYERS,
                creator="teacher_xu" if i % 10 != 4 else None,
                paid=paid,
                ship_h=round(rng.uniform(8, 40), 2),
                transit_h=round(rng.uniform(30, 60), 2),
                confirm_h=round(rng.uniform(4, 72), 2),
                reviews=tuple(reviews),
            )
        )
    return _kids_troubles(out)


def _kids_review(rng: random.Random) -> Review:
    stars = 5 if rng.random() < 0.8 else 4
    return Review(
        stars,
        rng.choice((4, 5)),
        rng.choice((4, 5, 5, 5)),
        rng.choice(KIDS_PRAISE),
        round(rng.uniform(3, 60), 2),
    )


def _kids_troubles(plan: list[Past]) -> list[Past]:
    """The kids' shop's bad weeks, put on the orders paid nearest to so many days ago."""

    def nearest(days: float, title: str | None = None) -> tuple[int, int]:
        """The order (and its line of ``title``) paid nearest to ``days`` ago."""
        i = min((i for i, p in enumerate(plan) if title is None or title in p.lines),
                key=lambda i: abs(plan[i].paid - days))  # fmt: skip
        return i, plan[i].lines.index(title) if title else 0

    def review(at: tuple[int, int], r: Review) -> None:
        i, line = at
        reviews = list(plan[i].reviews)
        reviews[line] = r
        plan[i] = replace(plan[i], reviews=tuple(reviews))

    sun, home, body = "儿童UPF50+防晒外套", "A类纯棉儿童家居服套装", "A类纯棉婴儿连体衣 爬服"
    for days, hours in ((17, 61), (33, 74), (41, 57), (53, 66), (69, 80)):  # shipped late
        i = nearest(days)[0]
        plan[i] = replace(plan[i], ship_h=hours)
    review(nearest(33), Review(4, 2, 3, "衣服没问题，就是下单四天才发货，孩子等着穿。", 20))
    at = nearest(15, sun)
    review(at, Review(1, 3, 2, "拉链第二天就坏了，拉不上，客服隔了一天才回。", 30,
                      "非常抱歉！已给您办理部分退款，这批拉链我们已经找工厂返工。"))  # fmt: skip
    plan[at[0]] = replace(
        plan[at[0]], refund=Refund(at[1], 50, "拉链头脱落，拉不上。衣服留着自己修，申请退一半。", 30, 20)
    )
    review(nearest(70, sun), Review(2, 4, 3, "颜色和直播间差很多，洗一次就掉色。", 24,
                                    "抱歉，这个颜色批次有色差，已经下架重新打样。"))  # fmt: skip
    at = nearest(44, home)
    plan[at[0]] = replace(
        plan[at[0]], refund=Refund(at[1], 30, "洗了一次就严重起球，和“机洗不起球”的描述不符。", 50, 41)
    )
    review(nearest(74, home), Review(2, 4, 3, "洗一次缩了一个码，130 买的现在像 120。", 36))
    at = nearest(22, body)
    plan[at[0]] = replace(plan[at[0]], creator="teacher_xu", claim=Claim(
        at[1], "直播里许老师说是 A 类纯棉，收到的吊牌写的是棉 65%、聚酯纤维 35%。",
        "吊牌成分与直播讲解不符，投诉成立；已提醒达人核实面料后再讲。", 30, 52))  # fmt: skip
    return plan


def _fit(past: Past) -> Past:
    """The order with its last moments drawn in, so that everything about it (confirmation,
    reviews and their replies) happened at least an hour before the seed."""
    delivered_h = past.ship_h + sum(past.qc or ()) + past.transit_h
    room = past.paid * 24 - 1 - delivered_h
    assert room > 12, f"{past.key}: paid too recently for its timeline"
    confirm_h = min(past.confirm_h, room / 3)
    reviews = tuple(
        replace(r, after_h=min(r.after_h, (room - confirm_h - 6) / 2)) if r is not None else None
        for r in past.reviews
    )
    return replace(past, confirm_h=confirm_h, reviews=reviews)


def plan() -> list[Past]:
    """Every order of the past, oldest first within each shop."""
    return [_fit(past) for past in (*jade_plan(), *kids_plan())]


# --- the timeline of one order --------------------------------------------------------------------


@dataclass(frozen=True)
class Times:
    created: dt.datetime
    paid: dt.datetime
    shipped: dt.datetime
    qc_received: dt.datetime | None
    inspected: dt.datetime | None
    forwarded: dt.datetime | None
    delivered: dt.datetime | None  # None: failed inspection
    confirmed: dt.datetime | None
    returned: dt.datetime | None  # a failed item sent back to the shop


def times(past: Past, base: dt.datetime) -> Times:
    paid = base - dt.timedelta(days=past.paid)
    shipped = paid + past.ship_h * HOUR
    received = inspected = forwarded = returned = None
    leaves = shipped
    if past.qc is not None:
        to_lab, inspect, forward = past.qc
        received = shipped + to_lab * HOUR
        inspected = received + inspect * HOUR
        forwarded = inspected + forward * HOUR
        leaves = forwarded
        if past.failed:
            returned, forwarded = forwarded, None
    delivered = None if past.failed else leaves + past.transit_h * HOUR
    confirmed = delivered + past.confirm_h * HOUR if delivered else None
    return Times(paid - dt.timedelta(minutes=3), paid, shipped, received, inspected, forwarded, delivered,
                 confirmed, returned)  # fmt: skip


class _Untracked:
    """The tracking service for parcels of the past: nothing to subscribe to (the sandbox would
    report their stages over the coming days); the simulator records them delivered."""

    name = "history"

    def subscribe(
        self, session: AsyncSession, carrier: str, tracking_no: str, shipped_at: dt.datetime
    ) -> None:
        return None

    def verify_webhook(self, headers: Any, body: bytes, now: dt.datetime | None = None) -> TrackingUpdate:
        raise BadRequest("the past is not tracked", code="bad_payload")


UNTRACKED = _Untracked()

# --- playing it -----------------------------------------------------------------------------------

REGIONS = (
    ("浙江省杭州市西湖区", "文一西路"), ("广东省深圳市南山区", "科技园南路"), ("四川省成都市武侯区", "人民南路"),
    ("湖北省武汉市洪山区", "珞喻路"), ("山东省青岛市市南区", "香港中路"), ("河南省郑州市金水区", "花园路"),
    ("江苏省苏州市姑苏区", "人民路"), ("福建省厦门市思明区", "湖滨南路"), ("辽宁省沈阳市和平区", "南京北街"),
    ("陕西省西安市雁塔区", "小寨西路"), ("云南省昆明市五华区", "青年路"), ("北京市朝阳区", "望京街"),
)  # fmt: skip


@dataclass
class _World:
    """Who acts in the history, and what the seed has looked up already (within one run)."""

    ops: Principal
    inspector: Principal
    owners: dict[str, Principal]  # shop slug -> owner
    creators: dict[str, int]  # username -> id
    buyers: dict[int, tuple[Principal, int]]  # index -> buyer and address id
    shelves: dict[str, tuple[int, list[Any]]]  # product title -> its id and SKUs


async def _world(session: AsyncSession) -> _World:
    owners = {slug: await accounts.acting_as(session, name) for slug, name in OWNERS.items()}
    return _World(await accounts.acting_as(session, "ops"), await accounts.acting_as(session, "inspector"),
                  owners, {p.username: p.id for p in owners.values()}, {}, {})  # fmt: skip


async def _buyer(session: AsyncSession, world: _World, index: int) -> tuple[Principal, int]:
    """The generated buyer and their first address (added once, from a fixed list)."""
    if index not in world.buyers:
        buyer = await accounts.acting_as(session, buyer_username(index))
        addresses = await orders.list_addresses(session, buyer)
        if not addresses:
            region, street = REGIONS[index % len(REGIONS)]
            addresses = [await orders.add_address(session, buyer, AddressIn(
                buyer.display_name[:8] or "买家", f"139{index:08d}", region, f"{street} {index % 97 + 1} 号"))]  # fmt: skip
        world.buyers[index] = (buyer, addresses[0].id)
    return world.buyers[index]


async def _shelves(session: AsyncSession, world: _World, past: Past) -> None:
    """The products of ``past.lines`` and their SKUs, looked up once per run."""
    if any(title not in world.shelves for title in past.lines):
        owner = world.owners[past.shop]
        shop = await catalog.get_shop_by_slug(session, past.shop)
        for card in await catalog.shop_products(session, owner, shop.id, after_id=None, limit=100):
            world.shelves[card.title] = (
                card.id,
                (await catalog.product_detail(session, owner, card.id)).skus,
            )


async def _place(session: AsyncSession, world: _World, past: Past) -> None:
    """The buyer's order of one piece of each of ``past.lines``. The shop restocks the scarce
    pieces it sold (jade comes one to three of a kind), so the shelves stay as the demo describes
    them; a few clothes fewer in stock of hundreds go unnoticed."""
    buyer, address_id = await _buyer(session, world, past.buyer)
    if await orders.placed_with_key(session, buyer, past.key):
        return
    owner = world.owners[past.shop]
    await _shelves(session, world, past)
    bought = []
    for title in past.lines:
        product_id, skus = world.shelves[title]
        on_sale = [s for s in skus if s.is_active and s.stock > 0]
        bought.append((product_id, on_sale[int(past.paid * 100) % len(on_sale)]))
    creator = world.creators.get(past.creator) if past.creator else None
    await orders.place_order(session, buyer, OrderIn(
        items=[ItemIn(sku_id=sku.id, quantity=1) for _, sku in bought], address_id=address_id,
        source="live_room" if creator else "shelf", creator_id=creator,
    ), past.key)  # fmt: skip
    for product_id, sku in bought:
        if sku.stock <= SCARCE:  # one of a few pieces (jade): back on the shelf
            await catalog.update_sku(session, owner, product_id, sku.id, SkuPatch(stock=sku.stock))


async def _pay_all(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, world: _World, plan_: list[Past]
) -> None:
    """Every unpaid order of the plan paid through the sandbox provider, one payment per buyer
    (as if each had paid a cart), the provider's webhooks delivered."""
    provider = payments.default_provider(settings)
    by_buyer: dict[int, list[Past]] = {}
    for past in plan_:
        by_buyer.setdefault(past.buyer, []).append(past)
    async with transaction(sessionmaker) as session:
        for index, pasts in sorted(by_buyer.items()):
            buyer, _ = await _buyer(session, world, index)
            unpaid = [o.id for past in pasts for o in await orders.placed_with_key(session, buyer, past.key)
                      if o.status == "pending_payment"]  # fmt: skip
            if unpaid:
                intent = await payments.create_payment(
                    session, buyer, unpaid, f"{pasts[0].key}:pay", provider
                )
                assert intent.provider_ref is not None
                await payments.sandbox_answer(session, settings, intent.provider_ref, pay=True)
    while (await payment_tasks.deliver_webhooks(sessionmaker, settings)).attempted:
        pass


async def _inspect(session: AsyncSession, settings: Settings, world: _World, past: Past, t: Times,
                   order: OrderOut) -> None:  # fmt: skip
    """The QC warehouse receives the parcel, the lab inspects it, and the item goes on to the
    buyer (or, failed, back to the shop: the result refunds the buyer in full)."""
    assert t.qc_received is not None and t.inspected is not None and order.tracking_no is not None
    policy = fulfillment.QcPolicy.from_settings(settings)
    inspector = world.inspector
    [case] = await fulfillment.receive_parcel(
        session, inspector, ReceiveIn(order.tracking_no), policy, t.qc_received
    )
    weight = random.Random(past.key).randint(800, 7000) * 10
    material = (
        "翡翠（B 货）"
        if past.failed
        else " / ".join("和田玉" if "和田" in title else "翡翠（A 货）" for title in past.lines)
    )
    await fulfillment.record_inspection(session, inspector, case.id, InspectionIn(
        "fail" if past.failed else "pass", material, weight, f"GZJC-H{order.id:08d}",
        past.failed or "天然，未见优化处理。"), policy, now=t.inspected)  # fmt: skip
    parcel = ParcelIn(SF_CARRIER, f"SFQ{order.id:09d}")
    if past.failed:
        await fulfillment.return_to_seller(session, inspector, case.id, parcel, UNTRACKED, t.returned)
    else:
        await fulfillment.forward(session, inspector, case.id, parcel, UNTRACKED, t.forwarded)


async def _walk(session: AsyncSession, settings: Settings, world: _World, past: Past, t: Times) -> int | None:
    """Take a paid order of the plan to its end and move it into the past; its id. None when it
    was walked before (it is past "paid", in one transaction with its move) or is not paid."""
    buyer, _ = await _buyer(session, world, past.buyer)
    placed = await orders.placed_with_key(session, buyer, past.key)
    if not placed or placed[0].status != "paid":
        return None
    order_id = placed[0].id
    owner = world.owners[past.shop]
    carrier = SF_CARRIER if past.qc else KIDS_CARRIER
    order = await fulfillment.ship(
        session, owner, order_id, ShipIn(carrier, f"{carrier}H{order_id:09d}"), UNTRACKED
    )
    if past.qc is not None:
        await _inspect(session, settings, world, past, t, order)
    if not past.failed:
        policy = orders.OrderPolicy.from_settings(settings)
        await fulfillment.deliver(session, world.ops if past.qc else owner, order_id, policy)
        order = await orders.confirm_receipt(session, buyer, order_id)
    await _shelves(session, world, past)
    by_product = {line.product_id: line for line in order.lines}
    lines = [by_product[world.shelves[title][0]] for title in past.lines]
    for line, r in zip(lines, past.reviews, strict=True):
        if r is not None and t.confirmed is not None:
            at = t.confirmed + r.after_h * HOUR
            posted = await reviews.post_review(session, buyer, order_id, line.id,
                                               ReviewIn(r.product, r.logistics, r.service, r.text), [], settings, at)  # fmt: skip
            if r.reply:
                await reviews.reply(session, owner, posted.id, ReplyIn(r.reply), at + 5 * HOUR)
    request_at = resolved_at = None
    if past.refund is not None and t.confirmed is not None:
        request_at = t.confirmed + past.refund.after_h * HOUR
        resolved_at = request_at + past.refund.handled_h * HOUR
        line = lines[past.refund.line]
        request = await aftersales.open_request(session, buyer, RequestIn(
            order_id=order_id, kind="refund_only", reason="quality", line_id=line.id,
            amount_fen=line.line_total_fen * past.refund.percent // 100, description=past.refund.text,
        ), now=request_at)  # fmt: skip
        await aftersales.approve(session, owner, request.id)
    if past.claim is not None and t.delivered is not None:
        filed = t.delivered + past.claim.after_h * HOUR
        line = lines[past.claim.line]
        complaint = await trust.file_complaint(
            session, buyer, order_id, line.id, ComplaintIn(past.claim.claim), filed
        )
        await trust.decide_complaint(session, world.ops, complaint.id,
                                     ComplaintDecisionIn("upheld", past.claim.note), filed + past.claim.decided_h * HOUR)  # fmt: skip
    await _move(session, order_id, t, request_at, resolved_at)
    return order_id


async def _move(
    session: AsyncSession,
    order_id: int,
    t: Times,
    request_at: dt.datetime | None,
    resolved_at: dt.datetime | None,
) -> None:
    """Time travel of the simulator's own synthetic order: its rows move to the moments of ``t``.
    Deadlines keep their distance from what they count from (ship-by from payment, auto-confirm
    from delivery, settlement from confirmation). Money rows (payments, refunds, the ledger) keep
    the moments they were made."""
    await session.flush()  # the services' rows (the sessions do not autoflush) before they move
    order = (await session.execute(select(Order).where(Order.id == order_id))).scalar_one()
    assert order.paid_at is not None and order.ship_by is not None
    ship_by = t.paid + (order.ship_by - order.paid_at)
    last = max(x for x in (t.confirmed, t.returned, t.inspected, resolved_at) if x is not None)
    values: dict[str, Any] = {
        "created_at": t.created, "pay_deadline": t.created + (order.pay_deadline - order.created_at),
        "paid_at": t.paid, "ship_by": ship_by, "shipped_at": t.shipped,
        "shipped_late_minutes": orders.late_minutes(ship_by, t.shipped), "updated_at": last,
    }  # fmt: skip
    if t.delivered is not None and order.delivered_at is not None and order.auto_confirm_at is not None:
        values.update(
            delivered_at=t.delivered,
            auto_confirm_at=t.delivered + (order.auto_confirm_at - order.delivered_at),
        )
    if t.confirmed is not None and order.completed_at is not None and order.settle_at is not None:
        values.update(
            completed_at=t.confirmed, settle_at=t.confirmed + (order.settle_at - order.completed_at)
        )
    await session.execute(update(Order).where(Order.id == order_id).values(**values))
    await session.execute(
        update(Checkout).where(Checkout.id == order.checkout_id).values(created_at=t.created)
    )
    refund_at = resolved_at or t.inspected
    # The order's timeline: each transition at its moment; a partial refund (no change of status)
    # when the request was resolved.
    at_status = {"pending_payment": t.created, "paid": t.paid, "shipped": t.shipped, "delivered": t.delivered,
                 "completed": t.confirmed, "refunded": refund_at}  # fmt: skip
    when = [(OrderEvent.from_status == OrderEvent.to_status, refund_at)] if refund_at else []
    when += [(OrderEvent.to_status == status, at) for status, at in at_status.items() if at is not None]
    await session.execute(
        update(OrderEvent).where(OrderEvent.order_id == order_id).values(at=case(*when, else_=OrderEvent.at))
    )
    # The parcels: every leg arrived when it did (the warehouse's came back to the shop in 2 days),
    # with the carrier's reports of its journey as the tracking service would have sent them.
    legs = {"to_buyer": (t.shipped, t.delivered), "to_qc": (t.shipped, t.qc_received),
            "qc_to_buyer": (t.forwarded, t.delivered),
            "qc_to_seller": (t.returned, t.returned + 48 * HOUR if t.returned else None)}  # fmt: skip
    reports = []
    parcels = select(Shipment.id, Shipment.leg, Shipment.carrier, Shipment.tracking_no)
    for shipment_id, leg, carrier, number in (
        await session.execute(parcels.where(Shipment.order_id == order_id))
    ).all():
        sent, arrived = legs.get(leg, (None, None))
        if sent is None or arrived is None:
            continue
        await session.execute(update(Shipment).where(Shipment.id == shipment_id).values(
            created_at=sent, stage="delivered", stage_at=arrived, delivered_at=arrived))  # fmt: skip
        for stage, at, location in (("picked_up", sent + 2 * HOUR, "揽收网点"),
                                    ("in_transit", sent + (arrived - sent) / 2, "转运中心"),
                                    ("delivered", arrived, "已签收")):  # fmt: skip
            reports.append({"provider": UNTRACKED.name, "event_id": f"{UNTRACKED.name}-{shipment_id}-{stage}",
                            "carrier": carrier, "tracking_no": number, "stage": stage, "at": at,
                            "location": location, "received_at": at, "outcome": "applied"})  # fmt: skip
    if reports:
        await session.execute(insert(TrackingEvent), reports)
    if t.qc_received is not None:
        await session.execute(update(QcCase).where(QcCase.order_id == order_id).values(
            created_at=t.shipped, updated_at=t.forwarded or t.returned))  # fmt: skip
    if request_at is not None and resolved_at is not None:
        await session.execute(update(AftersalesRequest).where(AftersalesRequest.order_id == order_id).values(
            created_at=request_at, responded_at=resolved_at, resolved_at=resolved_at, updated_at=resolved_at))  # fmt: skip


async def play_history(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, progress: Progress | None = None
) -> int:
    """Play the past trade (what is missing of it), rebuild the trust facts and recompute every
    score. Returns how many orders of the past were walked now (0: played before, or the world has
    too few generated buyers for it)."""
    report: Progress = progress or (lambda stage, done, total: None)
    plan_ = plan()
    async with transaction(sessionmaker) as session:
        try:
            await accounts.get_user_by_username(session, buyer_username(FIRST_BUYER + BUYERS - 1))
        except NotFound:
            return 0
        world = await _world(session)
    steps = len(plan_) + 3
    report(STAGE, 0, steps)
    async with transaction(sessionmaker) as session:
        for past in plan_:
            await _place(session, world, past)
    report(STAGE, 1, steps)
    await _pay_all(sessionmaker, settings, world, plan_)
    report(STAGE, 2, steps)
    base = utcnow()
    walked: list[int] = []
    for start in range(0, len(plan_), WALK_BATCH):
        async with transaction(sessionmaker) as session:
            for past in plan_[start : start + WALK_BATCH]:
                order_id = await _walk(session, settings, world, past, times(past, base))
                walked += [order_id] if order_id is not None else []
        report(STAGE, 2 + min(start + WALK_BATCH, len(plan_)), steps)
    await trust.rebuild_facts(sessionmaker)
    await trust.recompute_all(sessionmaker)
    report(STAGE, steps, steps)
    return len(walked)
