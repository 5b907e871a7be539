"""The world simulator (docs/simulator.md): buyers, creators and merchants with the shapes of real
data, for demos, tests and the feed's benchmarks.

``generate_world(sessionmaker, spec)`` makes, in the configured database: creators (accounts with
the creator role) and their short videos, merchants and their shops with published products,
buyers, a follow graph, a few live rooms on air, and the interactions (impressions, views, likes,
purchases) the discovery feed's collaborative filtering learns from. Everything is decided first,
by ``plan_world``, from the seed alone (numpy and ``random`` generators seeded per stage), so the
same spec always makes the same world; the plan is then played into the database at one of two
speeds:

- ``services`` (small worlds, up to a few thousand accounts: the demo, the tests): through the
  domain services, as the people in the world would act. Creators post their videos
  (``content.create_video``), merchants open shops and publish products (``catalog``), buyers
  follow (``social.follow_many``), creators go live (``live``); then each buyer browses the real
  feeds for a few sessions (``feed.follow_feed``, ``feed.discovery_feed``), reports what they saw
  and watched (``feed.record_events``), likes videos (``content.like``) and buys (``feed.click``,
  ``orders.place_order``, paid through the sandbox provider). The feed's collaborative filtering is
  rebuilt between sessions, so the later ones are served by what the earlier ones taught it.
- ``bulk`` (big worlds: the latency benchmark's million items and hundred thousand creators):
  set-based, straight into the same tables (COPY on PostgreSQL, executemany on SQLite), in one
  transaction, consistent by construction: follower counts equal the follows, like counts the
  likes, the feed's index and providers hold every published video and product, hourly exposure
  counters sum the impressions. Interactions are sampled from the same behavioural model the
  services mode plays (private domain first, then discovery by topic and popularity). What bulk
  mode does not make: orders, payments and ledger postings (a purchase exists only as the feed's
  interaction row), served-page logs (``feed_serves``, ``feed_events``: pruned after 30 days in a
  real database anyway) and outbox events (the feed's index is written directly).

Both modes then apply the feed's event subscriber to the pending outbox events it listens to
(without marking them delivered: the app's relay still delivers them to every subscriber, and the
feed's handler is idempotent) and, unless ``precompute`` is off, run the feed's periodic task
(index backfill, exposure window, item neighbours).

The shapes (docs/simulator.md, with figures):

- videos per creator: sampled from the KuaiRand-Pure video table (Gao et al., "KuaiRand: An
  Unbiased Sequential Recommendation Dataset with Randomly Exposed Videos", CIKM 2022; CC BY-SA
  4.0): 7,583 videos by 6,510 authors, 87% of them with exactly one video. Each creator's topic
  follows the sizes of the authors' first tags (the 15 largest tags, the rest pooled); a video is
  on its creator's topic with KuaiRand's 79% (the share of multi-video authors whose videos share
  one tag), else on a random topic.
- products per shop: a log-normal (sigma 1.0) shared out so the total is exact (an assumption:
  KuaiRand has no shops).
- followers: preferential attachment within a topic. A buyer's next follow, on one of their
  topics, is with ``discovery_share`` a discovery (the creator of a random video of the topic, so
  creators with more videos are found more often; a shop through a random product) and otherwise
  a copy of a random earlier follow on that topic: a creator gains followers in proportion to the
  followers they have (a Yule process: a power-law tail).
- interactions: ``private_share`` of a buyer's touches go to the videos and products of those
  they follow (private domain), the rest to discovery on their topics, half by popularity
  (through a random follow), half uniformly over the topic's items (the long tail the inclusive
  feed spreads exposure to).
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import math
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import MetaData, Table, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trustlive import events
from trustlive.accounts import service as accounts
from trustlive.accounts.models import User
from trustlive.accounts.service import Principal
from trustlive.catalog import service as catalog
from trustlive.catalog.models import Category, Product
from trustlive.catalog.repository import segmented_text
from trustlive.catalog.schemas import CategoryIn, ProductIn, ShopIn, SkuIn
from trustlive.config import Settings
from trustlive.content import service as content
from trustlive.content.models import Video, VideoLike
from trustlive.content.schemas import VideoIn
from trustlive.db import transaction, utcnow
from trustlive.errors import Conflict, ValidationFailed
from trustlive.feed import service as feed
from trustlive.feed import tasks as feed_tasks
from trustlive.feed.models import FeedInteraction
from trustlive.feed.schemas import EventIn, EventsIn
from trustlive.live import service as live
from trustlive.live.schemas import SessionIn
from trustlive.orders import service as orders
from trustlive.orders.models import Order
from trustlive.orders.schemas import AddressIn, ItemIn, OrderIn
from trustlive.payments import service as payments
from trustlive.payments import tasks as payment_tasks
from trustlive.sim import images
from trustlive.sim.names import buyer_display_name
from trustlive.social import service as social
from trustlive.social.models import Follow, FollowerCount

Progress = Callable[[str, int, int], None]

PASSWORD = "trustlive-sim"  # every account of a generated world signs in with it
DAY = 86_400.0
HOUR = 3600.0
MODES = ("auto", "services", "bulk")
AUTO_BULK_ABOVE = 5_000  # accounts: bigger worlds are loaded set-based under mode "auto"
MAX_ACCOUNTS = 10_000_000
SERVICE_BATCH = 200  # accounts, products or videos per transaction in services mode
COPY_CHUNK = 100_000  # rows per COPY / executemany in bulk mode

# --- KuaiRand-Pure (CC BY-SA 4.0; see the module docstring and docs/simulator.md) ---------------
# Authors by how many videos they have in video_features_basic_pure.csv: 5,661 authors with one
# video, 718 with two, ..., one with 26 (7,583 videos, 6,510 authors).
KUAIRAND_VIDEOS_PER_AUTHOR: dict[int, int] = {1: 5661, 2: 718, 3: 90, 4: 24, 5: 7, 6: 5, 7: 3, 8: 1, 26: 1}
# Authors by the first tag of their first video: the 15 largest tags, then every other tag pooled.
KUAIRAND_TOPIC_AUTHORS = (1178, 637, 579, 553, 371, 281, 263, 250, 230, 222, 191, 163, 154, 143, 117, 1178)
KUAIRAND_ON_TOPIC = 0.79  # of authors with 2+ videos, the share whose videos all share one tag
KUAIRAND_CSV = Path("/work/shared/data/kuairand-pure/video_features_basic_pure.csv")

# Browsing in services mode: the chance a buyer watches a card (view), by what it is to them;
# likes of watched videos, purchases of watched products. Bulk mode samples the same, by feed.
VIEW = {"followed": 0.6, "topic": 0.35, "other": 0.12}
LIKE = {"follow": 0.2, "discovery": 0.08}
BUY = {"follow": 0.08, "discovery": 0.03}
EXTRA_IMPRESSIONS = 0.35  # bulk: a touched item is shown 1 + Geometric more times
POPULAR_SHARE = 0.5  # of discovery touches: through a random follow on the topic (popularity)


@dataclass(frozen=True)
class Topic:
    slug: str
    zh: str
    en: str
    nouns: tuple[str, ...]
    motif: str  # sim/images.py picture for covers and product images
    tint: str


# One product category per topic, in the order of KUAIRAND_TOPIC_AUTHORS (KuaiRand's tag ids are
# anonymous: only their sizes are taken; which name goes with which size is ours).
TOPICS: tuple[Topic, ...] = (
    Topic("apparel", "服饰", "Apparel", ("针织开衫", "连衣裙", "卫衣", "牛仔裤"), "shirt", "#c0504d"),
    Topic("food", "食品", "Food", ("手工辣酱", "牛肉干", "坚果礼盒", "手擀面"), "cup", "#d08c2f"),
    Topic("beauty", "美妆", "Beauty", ("补水面霜", "口红", "精华液", "面膜"), "vase", "#d46a8c"),
    Topic("kids", "母婴", "Mother & baby", ("婴儿连体衣", "儿童睡衣", "学步鞋", "围兜"), "dress", "#6aa5d4"),
    Topic("home", "家居", "Home", ("四件套", "乳胶枕", "收纳柜", "地毯"), "pillow", "#8a9a5b"),
    Topic("jade", "珠宝玉石", "Jade & jewellery", ("和田玉手镯", "翡翠吊坠", "银戒指", "平安扣"), "bangle", "#3f8f6b"),
    Topic("digital", "数码", "Digital", ("蓝牙耳机", "充电宝", "手机壳", "数据线"), "pebble", "#4d5d8c"),
    Topic("sports", "运动", "Sports", ("跑步鞋", "瑜伽垫", "运动水壶", "速干T恤"), "shoe", "#2f9fd0"),
    Topic("books", "图书", "Books", ("绘本", "小说", "字帖", "教辅"), "cabinet", "#8c6d4d"),
    Topic("pets", "宠物", "Pets", ("猫粮", "狗绳", "猫抓板", "宠物窝"), "pillow", "#b07f4a"),
    Topic("tea", "茶酒", "Tea & wine", ("普洱茶", "白茶", "黄酒", "茶具"), "cup", "#6b7f3f"),
    Topic("bags", "鞋包", "Shoes & bags", ("帆布鞋", "托特包", "皮靴", "双肩包"), "shoe", "#7d4d8c"),
    Topic("appliances", "家电", "Appliances", ("电饭煲", "空气炸锅", "吹风机", "电热水壶"), "cabinet", "#5d6d7d"),
    Topic("fresh", "生鲜水果", "Fresh food", ("脐橙", "车厘子", "大闸蟹", "土鸡蛋"), "pebble", "#e07b39"),
    Topic("crafts", "手工艺", "Crafts", ("紫砂壶", "刺绣团扇", "竹编篮", "木雕摆件"), "vase", "#9c5b3b"),
    Topic("furniture", "家具", "Furniture", ("布艺沙发", "床垫", "书柜", "餐桌"), "sofa", "#7a6a58"),
)  # fmt: skip
VIDEO_ANGLES = ("开箱", "测评", "日常", "教程", "上新", "探店", "实拍", "好物分享")
PRODUCT_HEADS = ("精选", "新款", "经典", "手工", "家用", "原产地", "爆款", "限量")


# --- what to make ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorldSpec:
    """What world to make. Sizes are accounts (and totals of items); the rest are the model's
    parameters, each with the default docs/simulator.md describes."""

    buyers: int = 200
    creators: int = 50
    merchants: int = 10
    seed: int = 1
    # Where videos per creator come from: "kuairand" (the table above), "one" (every creator one
    # video), or the path of a CSV with an ``author_id`` column (one row per video).
    items_per_creator_from: str = "kuairand"
    items: int | None = None  # videos + products in all; None: merchants x products_per_shop products
    products_per_shop: float = 6.0  # mean, when ``items`` is None
    follows_per_buyer: float = 6.0  # mean (Poisson-log-normal: some follow nobody, a few very many)
    shop_follow_share: float = 0.25  # of follows, to shops
    discovery_share: float = 0.35  # of follows, discoveries (the rest: preferential attachment)
    touches_per_buyer: float = 20.0  # bulk: items each buyer interacted with (mean)
    private_share: float = 0.5  # of touches, to followed creators' and shops' items
    live_now: int | None = None  # rooms on air; None: creators // 50, from 1 to 20
    days: int = 60  # items were published over the last ``days`` days
    interaction_days: int = 14  # bulk: interactions happened over the last ``interaction_days`` days
    sessions: int = 2  # services: browsing sessions per buyer
    discovery_pages: int = 2  # services: discovery pages per session
    mode: str = "auto"  # "services", "bulk", or "auto" (bulk above AUTO_BULK_ABOVE accounts)
    precompute: bool = True  # run the feed's task at the end (index, window, neighbours)

    def resolved_mode(self) -> str:
        if self.mode != "auto":
            return self.mode
        return "bulk" if self.buyers + self.creators + self.merchants > AUTO_BULK_ABOVE else "services"

    def check(self) -> None:
        """422 ``bad_world`` for sizes or parameters out of range."""
        problems = []
        for name in ("buyers", "creators", "merchants"):
            value = getattr(self, name)
            if not 0 <= value <= MAX_ACCOUNTS:
                problems.append(f"{name}: from 0 to {MAX_ACCOUNTS:,}")
        if self.creators < 1 or self.merchants < 1:
            problems.append("creators and merchants: at least 1 each")
        if not 0 <= self.seed < 2**31:
            problems.append("seed: from 0 to 2**31 - 1")
        for name in ("shop_follow_share", "discovery_share", "private_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name}: from 0 to 1")
        for name in ("products_per_shop", "follows_per_buyer", "touches_per_buyer"):
            if not 0.0 <= getattr(self, name) <= 10_000:
                problems.append(f"{name}: from 0 to 10,000")
        if self.products_per_shop < 1 and self.items is None:
            problems.append("products_per_shop: at least 1 (every shop sells something)")
        if not 1 <= self.days <= 365 or not 1 <= self.interaction_days <= 80:
            problems.append("days: 1-365; interaction_days: 1-80 (the feed learns from 90 days)")
        if not 0 <= self.sessions <= 20 or not 1 <= self.discovery_pages <= 5:
            problems.append("sessions: 0-20; discovery_pages: 1-5")
        if self.live_now is not None and not 0 <= self.live_now <= self.creators:
            problems.append("live_now: from 0 to the number of creators")
        if self.mode not in MODES:
            problems.append(f"mode: one of {', '.join(MODES)}")
        if problems:
            raise ValidationFailed("; ".join(problems), code="bad_world")


# --- the plan (pure, from the seed) -----------------------------------------------------------------


def videos_per_creator_table(source: str) -> tuple[np.ndarray, np.ndarray]:
    """(videos, weight) pairs to sample each creator's number of videos from: KuaiRand's
    authors, every creator one video, or the authors of a CSV with an ``author_id`` column."""
    if source == "kuairand":
        table = KUAIRAND_VIDEOS_PER_AUTHOR
    elif source == "one":
        table = {1: 1}
    else:
        path = Path(source)
        if not path.is_file():
            raise ValidationFailed(
                f"items_per_creator_from: 'kuairand', 'one' or a CSV file ({source} is none of them)",
                field="items_per_creator_from", code="bad_world",
            )  # fmt: skip
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            if "author_id" not in (reader.fieldnames or []):
                raise ValidationFailed(
                    f"items_per_creator_from: {source} has no author_id column",
                    field="items_per_creator_from", code="bad_world",
                )  # fmt: skip
            per_author = Counter(row["author_id"] for row in reader)
        table = dict(Counter(per_author.values()))
        if not table:
            raise ValidationFailed(f"items_per_creator_from: {source} has no rows", code="bad_world")
    values = np.array(sorted(table), dtype=np.int64)
    return values, np.array([table[v] for v in sorted(table)], dtype=np.float64)


@dataclass
class Plan:
    """Everything the world holds, as arrays indexed from 0 (creator c, shop s, buyer b, video v,
    product p, item i). Times are seconds before ``now``. Videos, products and items are in the
    order they were published (oldest first), so ids given in that order grow with time."""

    spec: WorldSpec
    now: dt.datetime
    topic_p: np.ndarray
    creator_topic: np.ndarray
    creator_videos: np.ndarray
    video_creator: np.ndarray
    video_topic: np.ndarray
    video_ago: np.ndarray
    shop_topic: np.ndarray
    shop_ago: np.ndarray  # when the shop opened (its first product)
    product_shop: np.ndarray
    product_topic: np.ndarray
    product_ago: np.ndarray
    product_price: np.ndarray  # fen
    buyer_topics: np.ndarray  # (buyers, 2): primary, secondary or -1
    follow_buyer: np.ndarray
    follow_shop: np.ndarray  # bool: a shop (else a creator)
    follow_target: np.ndarray  # creator or shop index
    follow_ago: np.ndarray
    live_creators: np.ndarray
    # The feed's item index: kind 0 video / 1 product, the video or product index, its provider.
    item_kind: np.ndarray
    item_ref: np.ndarray
    item_provider: np.ndarray
    item_ago: np.ndarray
    item_topic: np.ndarray

    @property
    def creators(self) -> int:
        return len(self.creator_topic)

    @property
    def shops(self) -> int:
        return len(self.shop_topic)

    @property
    def buyers(self) -> int:
        return len(self.buyer_topics)

    def followers(self, shops: bool = False) -> np.ndarray:
        """Followers of every creator (or shop), by index."""
        mask = self.follow_shop == shops
        return np.bincount(self.follow_target[mask], minlength=self.shops if shops else self.creators)

    def at(self, ago: float) -> dt.datetime:
        return self.now - dt.timedelta(seconds=float(ago))


def _rngs(seed: int, *names: str) -> dict[str, np.random.Generator]:
    """One generator per stage, each from the seed and its own name: changing how one stage draws
    never shifts another's numbers."""
    return {n: np.random.default_rng([seed, *map(ord, n)]) for n in names}


def _share_out(total: int, n: int, rng: np.random.Generator, sigma: float = 1.0) -> np.ndarray:
    """``total`` units over ``n`` holders, each at least one, the rest in proportion to
    log-normal weights (a long tail), summing exactly to ``total``."""
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    weights = rng.lognormal(0.0, sigma, n)
    return 1 + rng.multinomial(total - n, weights / weights.sum())


def _poisson_lognormal(mean: float, n: int, rng: np.random.Generator, cap: int) -> np.ndarray:
    if mean <= 0 or n == 0:
        return np.zeros(n, dtype=np.int64)
    return np.minimum(rng.poisson(rng.lognormal(math.log(mean) - 0.5, 1.0, n)), cap)


def plan_world(spec: WorldSpec, now: dt.datetime | None = None) -> Plan:
    """Decide the whole world from ``spec`` (the seed above all): the same spec gives the same
    plan, whatever the machine. Follows are drawn one by one (preferential attachment); the rest
    is vectorised."""
    spec.check()
    now = now or utcnow()
    r = _rngs(spec.seed, "creators", "videos", "shops", "products", "buyers", "follows", "live")
    k = len(TOPICS)
    topic_p = np.array(KUAIRAND_TOPIC_AUTHORS, dtype=np.float64)
    topic_p /= topic_p.sum()
    span = spec.days * DAY

    values, weights = videos_per_creator_table(spec.items_per_creator_from)
    rc = r["creators"]
    creator_videos = rc.choice(values, size=spec.creators, p=weights / weights.sum())
    creator_topic = rc.choice(k, size=spec.creators, p=topic_p)
    creator_first = rc.uniform(0.0, span, spec.creators)
    rv = r["videos"]
    video_creator = np.repeat(np.arange(spec.creators), creator_videos)
    n_videos = len(video_creator)
    starts = np.repeat(np.cumsum(creator_videos) - creator_videos, creator_videos)
    first = (np.arange(n_videos) - starts) == 0
    video_ago = np.where(
        first, creator_first[video_creator], rv.random(n_videos) * creator_first[video_creator]
    )
    video_topic = np.where(
        rv.random(n_videos) < KUAIRAND_ON_TOPIC,
        creator_topic[video_creator],
        rv.choice(k, n_videos, p=topic_p),
    )
    order = np.argsort(-video_ago, kind="stable")
    video_creator, video_topic, video_ago = video_creator[order], video_topic[order], video_ago[order]

    rs = r["shops"]
    shop_topic = rs.choice(k, size=spec.merchants, p=topic_p)
    shop_ago = rs.uniform(0.0, span, spec.merchants)
    n_products = (
        spec.items - n_videos if spec.items is not None else round(spec.merchants * spec.products_per_shop)
    )
    if n_products < spec.merchants:
        raise ValidationFailed(
            f"items: {spec.items} leaves {n_products} products after {n_videos} videos; every one of "
            f"the {spec.merchants} shops needs one", field="items", code="bad_world",
        )  # fmt: skip
    rp = r["products"]
    per_shop = _share_out(n_products, spec.merchants, rp)
    product_shop = np.repeat(np.arange(spec.merchants), per_shop)
    starts = np.repeat(np.cumsum(per_shop) - per_shop, per_shop)
    first = (np.arange(n_products) - starts) == 0
    product_ago = np.where(first, shop_ago[product_shop], rp.random(n_products) * shop_ago[product_shop])
    price = np.clip(rp.lognormal(math.log(5900), 0.8, n_products), 990, 500_000)
    product_price = (np.round(price / 100) * 100).astype(np.int64)
    order = np.argsort(-product_ago, kind="stable")
    product_shop, product_ago, product_price = product_shop[order], product_ago[order], product_price[order]
    product_topic = shop_topic[product_shop]

    rb = r["buyers"]
    buyer_topics = np.stack(
        [
            rb.choice(k, size=spec.buyers, p=topic_p),
            np.where(rb.random(spec.buyers) < 0.5, rb.choice(k, size=spec.buyers, p=topic_p), -1),
        ],
        axis=1,
    ) if spec.buyers else np.zeros((0, 2), dtype=np.int64)  # fmt: skip

    # The item index: videos and products together, oldest first.
    item_kind = np.concatenate([np.zeros(n_videos, dtype=np.int64), np.ones(n_products, dtype=np.int64)])
    item_ref = np.concatenate([np.arange(n_videos), np.arange(n_products)])
    item_provider = np.concatenate([video_creator, product_shop])
    item_ago = np.concatenate([video_ago, product_ago])
    item_topic = np.concatenate([video_topic, product_topic])
    order = np.lexsort((item_ref, item_kind, -item_ago))
    item_kind, item_ref, item_provider = item_kind[order], item_ref[order], item_provider[order]
    item_ago, item_topic = item_ago[order], item_topic[order]

    follows = _plan_follows(spec, r["follows"], topic_p, buyer_topics, video_creator, video_topic,
                            product_shop, product_topic)  # fmt: skip
    follow_buyer, follow_shop, follow_target = follows
    first_item = np.full(spec.creators, span)
    np.minimum.at(first_item, video_creator, video_ago)
    target_first = np.empty(len(follow_target))
    target_first[follow_shop] = shop_ago[follow_target[follow_shop]]
    target_first[~follow_shop] = first_item[follow_target[~follow_shop]]
    follow_ago = r["follows"].random(len(follow_buyer)) * target_first

    n_live = spec.live_now if spec.live_now is not None else max(1, min(20, spec.creators // 50))
    followers = np.bincount(follow_target[~follow_shop], minlength=spec.creators).astype(np.float64)
    live_creators = np.sort(r["live"].choice(spec.creators, size=n_live, replace=False,
                                             p=(followers + 1) / (followers + 1).sum()))  # fmt: skip
    return Plan(
        spec, now, topic_p, creator_topic, creator_videos, video_creator, video_topic, video_ago,
        shop_topic, shop_ago, product_shop, product_topic, product_ago, product_price, buyer_topics,
        follow_buyer, follow_shop, follow_target, follow_ago, live_creators,
        item_kind, item_ref, item_provider, item_ago, item_topic,
    )  # fmt: skip


def _topic_of(rnd: Callable[[], float], topics: np.ndarray, topic_cdf: list[float]) -> int:
    """One of a buyer's topics: the primary 60%, the secondary 20% (when they have one), else any
    topic by its size."""
    x = rnd()
    if x < 0.6:
        return int(topics[0])
    if x < 0.8 and topics[1] >= 0:
        return int(topics[1])
    y = rnd()
    for t, c in enumerate(topic_cdf):
        if y < c:
            return t
    return len(topic_cdf) - 1


def _plan_follows(
    spec: WorldSpec,
    rng: np.random.Generator,
    topic_p: np.ndarray,
    buyer_topics: np.ndarray,
    video_creator: np.ndarray,
    video_topic: np.ndarray,
    product_shop: np.ndarray,
    product_topic: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The follow graph by preferential attachment within topics (see the module docstring). Follows
    happen in a random order over all buyers, as they would over time; a buyer never follows the
    same target twice (a draw that repeats one is tried again, at most 3 times, then dropped)."""
    counts = _poisson_lognormal(spec.follows_per_buyer, spec.buyers, rng, cap=500)
    sequence = np.repeat(np.arange(spec.buyers), counts)
    rng.shuffle(sequence)
    rnd = random.Random(f"follows/{spec.seed}").random
    k = len(TOPICS)
    topic_cdf = np.cumsum(topic_p).tolist()
    # Discovery: a random video (product) of the topic leads to its creator (shop).
    found_by = [
        [video_creator[video_topic == t].tolist() for t in range(k)],
        [product_shop[product_topic == t].tolist() for t in range(k)],
    ]
    anyone = [video_creator.tolist(), product_shop.tolist()]
    earlier: list[list[list[int]]] = [[[] for _ in range(k)], [[] for _ in range(k)]]
    seen: set[tuple[int, int, int]] = set()
    out_b: list[int] = []
    out_s: list[int] = []
    out_t: list[int] = []
    for b in sequence.tolist():
        kind = 1 if rnd() < spec.shop_follow_share else 0
        topic = _topic_of(rnd, buyer_topics[b], topic_cdf)
        for _attempt in range(3):
            pool = earlier[kind][topic]
            if not pool or rnd() < spec.discovery_share:
                options = found_by[kind][topic] or anyone[kind]
                target = options[int(rnd() * len(options))]
            else:
                target = pool[int(rnd() * len(pool))]
            if (b, kind, target) not in seen:
                seen.add((b, kind, target))
                earlier[kind][topic].append(target)
                out_b.append(b)
                out_s.append(kind)
                out_t.append(target)
                break
    return (np.array(out_b, dtype=np.int64), np.array(out_s, dtype=bool), np.array(out_t, dtype=np.int64))


@dataclass
class Touches:
    """Bulk mode's interactions: one row per (buyer, item, kind) with its count and latest time
    (seconds ago), the likes, and the hourly exposure counters."""

    user: np.ndarray
    item: np.ndarray
    kind: np.ndarray  # index into TOUCH_KINDS
    count: np.ndarray
    ago: np.ndarray
    like_buyer: np.ndarray
    like_video: np.ndarray
    like_ago: np.ndarray
    exposure: list[tuple[int, str, int, int, int, int]]  # hour, feed, provider kind, provider, impr., clicks
    touches: int


TOUCH_KINDS = ("impression", "view", "click", "like", "purchase")


def plan_touches(plan: Plan) -> Touches:
    """The buyers' interactions for bulk mode, from the same model as the follows: ``private_share``
    of touches on followed providers' items (the follow feed), the rest discovery on the buyer's
    topics (half through a random follow on the topic: popular providers; half uniform over the
    topic's items). A touch is 1 + Geometric impressions; watched with VIEW (followed / topic);
    a watched video liked with LIKE, a watched product bought (a click, then a purchase) with BUY."""
    spec = plan.spec
    rng = _rngs(spec.seed, "touches")["touches"]
    rnd = random.Random(f"touches/{spec.seed}").random
    k = len(TOPICS)
    topic_cdf = np.cumsum(plan.topic_p).tolist()
    n_items = len(plan.item_kind)
    is_product = plan.item_kind == 1
    # Items of each provider and of each topic; follows of each buyer; follow targets per topic.
    provider_key = np.where(is_product, plan.item_provider * 2 + 1, plan.item_provider * 2)
    order = np.argsort(provider_key, kind="stable")
    keys, starts = np.unique(provider_key[order], return_index=True)
    ends = np.append(starts[1:], n_items)
    items_of = {int(key): order[a:b].tolist() for key, a, b in zip(keys, starts, ends, strict=True)}
    by_topic = [np.nonzero(plan.item_topic == t)[0].tolist() for t in range(k)]
    follow_key = plan.follow_target * 2 + plan.follow_shop
    followed: list[list[int]] = [[] for _ in range(plan.buyers)]
    for b, key in zip(plan.follow_buyer.tolist(), follow_key.tolist(), strict=True):
        followed[b].append(key)
    target_topic = np.empty(len(plan.follow_target), dtype=np.int64)
    shop = plan.follow_shop
    target_topic[shop] = plan.shop_topic[plan.follow_target[shop]]
    target_topic[~shop] = plan.creator_topic[plan.follow_target[~shop]]
    popular = [follow_key[target_topic == t].tolist() for t in range(k)]
    counts = _poisson_lognormal(spec.touches_per_buyer, plan.buyers, rng, cap=2000)
    out_b: list[int] = []
    out_i: list[int] = []
    out_f: list[bool] = []  # private (the follow feed)
    for b in range(plan.buyers):
        mine = followed[b]
        topics = plan.buyer_topics[b]
        for _ in range(int(counts[b])):
            if mine and rnd() < spec.private_share:
                items = items_of.get(mine[int(rnd() * len(mine))])
                if items:
                    out_b.append(b)
                    out_i.append(items[int(rnd() * len(items))])
                    out_f.append(True)
                    continue
            topic = _topic_of(rnd, topics, topic_cdf)
            pool = popular[topic]
            if pool and rnd() < POPULAR_SHARE:
                items = items_of.get(pool[int(rnd() * len(pool))]) or by_topic[topic]
            else:
                items = by_topic[topic]
            if items:
                out_b.append(b)
                out_i.append(items[int(rnd() * len(items))])
                out_f.append(False)
    user = np.array(out_b, dtype=np.int64)
    item = np.array(out_i, dtype=np.int64)
    private = np.array(out_f, dtype=bool)
    n = len(user)
    ago = rng.random(n) * np.minimum(plan.item_ago[item], spec.interaction_days * DAY)
    impressions = 1 + rng.geometric(1 - EXTRA_IMPRESSIONS, n) - 1
    same_topic = (plan.item_topic[item] == plan.buyer_topics[user, 0]) | (
        plan.item_topic[item] == plan.buyer_topics[user, 1]
    )
    view_p = np.where(private, VIEW["followed"], np.where(same_topic, VIEW["topic"], VIEW["other"]))
    viewed = rng.random(n) < view_p
    video = plan.item_kind[item] == 0
    liked = viewed & video & (rng.random(n) < np.where(private, LIKE["follow"], LIKE["discovery"]))
    bought = viewed & ~video & (rng.random(n) < np.where(private, BUY["follow"], BUY["discovery"]))
    parts = [
        (np.ones(n, dtype=bool), 0, impressions),
        (viewed, 1, np.ones(n, dtype=np.int64)),
        (bought, 2, np.ones(n, dtype=np.int64)),
        (liked, 3, np.ones(n, dtype=np.int64)),
        (bought, 4, np.ones(n, dtype=np.int64)),
    ]
    u = np.concatenate([user[m] for m, _, _ in parts])
    i = np.concatenate([item[m] for m, _, _ in parts])
    kd = np.concatenate([np.full(int(m.sum()), code) for m, code, _ in parts])
    c = np.concatenate([cnt[m] for m, _, cnt in parts])
    a = np.concatenate([ago[m] for m, _, _ in parts])
    key = (u * n_items + i) * len(TOUCH_KINDS) + kd
    uniq, inverse = np.unique(key, return_inverse=True)
    count = np.bincount(inverse, weights=c).astype(np.int64)
    latest = np.full(len(uniq), np.inf)
    np.minimum.at(latest, inverse, a)
    # Likes: one per (buyer, video), at the first time they liked it.
    lk = np.unique(user[liked] * n_items + item[liked])
    like_ago = np.full(len(lk), np.inf)
    np.minimum.at(like_ago, np.searchsorted(lk, user[liked] * n_items + item[liked]), ago[liked])
    # Exposure: impressions and clicks per hour, feed and provider.
    hour0 = int(plan.now.timestamp() // HOUR)
    hours = np.floor((plan.now.timestamp() - ago) / HOUR).astype(np.int64) - hour0
    pk = np.where(is_product[item], plan.item_provider[item] * 2 + 1, plan.item_provider[item] * 2)
    ekey = ((hours - hours.min() if n else hours) * 2 + private) * (int(pk.max()) + 1 if n else 1) + pk
    e_uniq, e_inv = np.unique(ekey, return_inverse=True)
    e_imp = np.bincount(e_inv, weights=impressions).astype(np.int64)
    e_clk = np.bincount(e_inv, weights=bought.astype(np.int64)).astype(np.int64)
    width = int(pk.max()) + 1 if n else 1
    base = int(hours.min()) if n else 0
    exposure = []
    for ek, imp, clk in zip(e_uniq.tolist(), e_imp.tolist(), e_clk.tolist(), strict=True):
        rest, p = divmod(ek, width)
        h, f = divmod(rest, 2)
        exposure.append((hour0 + base + h, "follow" if f else "discovery", p % 2, p // 2, imp, clk))
    return Touches(
        user=uniq // len(TOUCH_KINDS) // n_items, item=uniq // len(TOUCH_KINDS) % n_items,
        kind=uniq % len(TOUCH_KINDS), count=count, ago=latest,
        like_buyer=lk // n_items, like_video=plan.item_ref[lk % n_items], like_ago=like_ago,
        exposure=exposure, touches=n,
    )  # fmt: skip


# --- names ------------------------------------------------------------------------------------


def _prefix(seed: int) -> str:
    return f"w{seed}"


def creator_username(seed: int, c: int) -> str:
    return f"{_prefix(seed)}-c{c + 1}"


def merchant_username(seed: int, s: int) -> str:
    return f"{_prefix(seed)}-m{s + 1}"


def buyer_username(seed: int, b: int) -> str:
    return f"{_prefix(seed)}-b{b + 1}"


def ops_username(seed: int) -> str:
    return f"{_prefix(seed)}-ops"


def creator_name(plan: Plan, c: int) -> str:
    return f"{TOPICS[int(plan.creator_topic[c])].zh}达人{c + 1}"


def shop_name(plan: Plan, s: int) -> str:
    return f"{TOPICS[int(plan.shop_topic[s])].zh}小店{s + 1}·{_prefix(plan.spec.seed)}"


def shop_slug(seed: int, s: int) -> str:
    return f"{_prefix(seed)}-shop-{s + 1}"


def video_title(plan: Plan, v: int) -> str:
    t = TOPICS[int(plan.video_topic[v])]
    return f"{t.zh}{VIDEO_ANGLES[v % len(VIDEO_ANGLES)]}：{t.nouns[v % len(t.nouns)]} 第{v + 1}期"


def product_title(plan: Plan, p: int) -> str:
    t = TOPICS[int(plan.product_topic[p])]
    return f"{PRODUCT_HEADS[p % len(PRODUCT_HEADS)]}{t.nouns[(p // 8) % len(t.nouns)]} {p + 1}号"


def category_slug(t: int) -> str:
    return f"sim-{TOPICS[t].slug}"


# --- results ------------------------------------------------------------------------------------


def gini(values: Sequence[float] | np.ndarray) -> float:
    """Gini coefficient of non-negative values (0: all equal; near 1: one holds everything)."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = len(x)
    if n == 0 or x.sum() <= 0:
        return 0.0
    return float((2 * np.arange(1, n + 1) - n - 1) @ x / (n * x.sum()))


def top_share(values: Sequence[float] | np.ndarray, fraction: float = 0.01) -> float:
    """The share of the total held by the top ``fraction`` of holders (at least one holder)."""
    x = np.sort(np.asarray(values, dtype=np.float64))[::-1]
    if not len(x) or x.sum() <= 0:
        return 0.0
    return float(x[: max(1, math.ceil(len(x) * fraction))].sum() / x.sum())


@dataclass
class WorldSummary:
    seed: int
    mode: str
    counts: dict[str, int]
    one_item_share: float  # creators with exactly one video
    videos_per_creator: float
    follower_gini: float  # over the world's creators, zeros included
    top1_share: float  # of follows to creators, held by the top 1% of creators
    max_followers: int
    seconds: float
    phases: dict[str, float] = field(default_factory=dict)

    def lines(self) -> list[str]:
        c = self.counts
        return [
            f"world w{self.seed} ({self.mode}) in {self.seconds:.1f} s: "
            + ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in c.items()),
            f"videos per creator: mean {self.videos_per_creator:.3f}, creators with one video "
            f"{self.one_item_share:.1%} (KuaiRand-Pure: 87.0%)",
            f"followers per creator: Gini {self.follower_gini:.3f}, top 1% of creators hold "
            f"{self.top1_share:.1%} of creator follows, the most followed has {self.max_followers:,}",
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed, "mode": self.mode, **self.counts, "one_item_share": round(self.one_item_share, 4),
            "videos_per_creator": round(self.videos_per_creator, 4), "follower_gini": round(self.follower_gini, 4),
            "top1_share": round(self.top1_share, 4), "max_followers": self.max_followers,
            "seconds": round(self.seconds, 1),
        }  # fmt: skip


@dataclass
class _Ids:
    """Database ids of the world's people and things, by plan index."""

    ops: Principal | None = None
    categories: list[int] = field(default_factory=list)
    creators: list[int] = field(default_factory=list)
    merchants: list[int] = field(default_factory=list)
    buyers: list[int] = field(default_factory=list)
    shops: list[int] = field(default_factory=list)
    videos: list[int] = field(default_factory=list)
    products: list[int] = field(default_factory=list)
    skus: list[int] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    outbox_after: int = 0  # the outbox's newest event before the world was made


# --- the entry point --------------------------------------------------------------------------


async def generate_world(
    sessionmaker: async_sessionmaker[AsyncSession],
    spec: WorldSpec,
    progress: Progress | None = None,
    *,
    settings: Settings | None = None,
    now: dt.datetime | None = None,
) -> WorldSummary:
    """Make the world of ``spec`` in the database (see the module docstring) and summarise it.
    409 ``world_exists`` when this database already holds the world of this seed (its accounts
    are named after it: ``w<seed>-c1``...); 422 ``bad_world`` for a bad spec."""
    from trustlive.config import load_settings

    started = time.perf_counter()
    settings = settings or load_settings()
    report: Progress = progress or (lambda stage, done, total: None)
    mode = spec.resolved_mode()
    phases: dict[str, float] = {}
    t0 = time.perf_counter()
    plan = plan_world(spec, now)
    phases["plan"] = time.perf_counter() - t0
    async with transaction(sessionmaker) as s:
        taken = await s.scalar(select(func.count()).where(User.username.in_(
            [creator_username(spec.seed, 0), ops_username(spec.seed), buyer_username(spec.seed, 0)])))  # fmt: skip
        if taken:
            raise Conflict(
                f"this database already holds world w{spec.seed}: choose another seed", code="world_exists"
            )
        feed.reset_caches(s)
    ids = _Ids()
    ids.outbox_after = await outbox_cursor(sessionmaker)
    password_hash = await accounts.hash_password(PASSWORD)
    t0 = time.perf_counter()
    await _ops_and_categories(sessionmaker, plan, ids, password_hash)
    if mode == "services":
        await _play_services(sessionmaker, settings, plan, ids, password_hash, report, phases)
    else:
        await _load_bulk(sessionmaker, settings, plan, ids, password_hash, report, phases)
        await _go_live(sessionmaker, settings, plan, ids)
    await apply_feed_events(sessionmaker, ids.outbox_after, skip=INDEXED_TOPICS)
    phases["world"] = time.perf_counter() - t0
    if spec.precompute:
        t0 = time.perf_counter()
        report("feed: index, window, neighbours", 0, 1)
        await precompute(sessionmaker, settings)
        report("feed: index, window, neighbours", 1, 1)
        phases["feed precompute"] = time.perf_counter() - t0
    async with transaction(sessionmaker) as s:
        feed.reset_caches(s)  # whatever this engine's feed caches held before the world came
    summary = await summarise(sessionmaker, plan, ids, mode)
    summary.seconds = time.perf_counter() - started
    summary.phases = phases
    return summary


async def precompute(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> dict[str, Any]:
    """The feed's periodic task once, with the neighbours rebuilt now whatever their age."""
    done: dict[str, Any] = {}
    done["neighbours"] = await feed_tasks.build_neighbours(
        sessionmaker, feed.config_for(settings), force=True
    )
    done.update(
        {k: v for k, v in (await feed_tasks.run_once(sessionmaker, settings)).items() if k != "neighbours"}
    )
    return done


# Published videos and products are indexed by ``feed.index_items`` in one go (the simulator's
# loader path); their events would index the same rows one query at a time.
INDEXED_TOPICS = ("content.video_published", "catalog.product_published")


async def outbox_cursor(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    """The newest outbox event's id: ``apply_feed_events`` after it sees only the world's own."""
    async with transaction(sessionmaker) as s:
        return int(await s.scalar(select(func.coalesce(func.max(events.OutboxEvent.id), 0))) or 0)


async def apply_feed_events(
    sessionmaker: async_sessionmaker[AsyncSession],
    after: int = 0,
    *,
    skip: Sequence[str] = (),
    batch: int = 500,
) -> int:
    """Apply the feed's subscriber to the pending outbox events it listens to (those after id
    ``after``, but for the topics in ``skip``), now, so the world's index and interactions are
    there before any app runs. The events stay pending: the app's relay delivers them to every
    subscriber later, and the feed's handler is idempotent (it reads the items' state; a like or a
    purchase is one row per user and item)."""
    table = events.OutboxEvent
    topics = [t for t in feed.TOPICS if t not in skip]
    applied = 0
    while True:
        async with transaction(sessionmaker) as s:
            rows = (
                await s.execute(
                    select(table.id, table.topic, table.payload, table.created_at)
                    .where(table.published_at.is_(None), table.topic.in_(topics), table.id > after)
                    .order_by(table.id)
                    .limit(batch)
                )
            ).all()
            for row in rows:
                await feed.on_event(s, events.Event(row.id, row.topic, dict(row.payload), row.created_at))
        if not rows:
            return applied
        applied += len(rows)
        after = rows[-1].id


async def _ops_and_categories(
    sessionmaker: async_sessionmaker[AsyncSession], plan: Plan, ids: _Ids, password_hash: str
) -> None:
    """The world's ops account and one category per topic (shared by every world: made once)."""
    async with transaction(sessionmaker) as s:
        user = await accounts.create_user(
            s, username=ops_username(plan.spec.seed), password_hash=password_hash,
            display_name=f"运营 {_prefix(plan.spec.seed)}", roles=["ops"],
        )  # fmt: skip
        ids.ops = Principal(user.id, user.username, user.display_name, frozenset({"buyer", "ops"}))
        existing = {
            c.slug: c.id
            for c in await s.scalars(select(Category).where(Category.slug.in_([category_slug(t) for t in range(len(TOPICS))])))
        }  # fmt: skip
        for t, topic in enumerate(TOPICS):
            slug = category_slug(t)
            if slug not in existing:
                made = await catalog.create_category(s, ids.ops, CategoryIn(
                    slug=slug, name_zh=topic.zh, name_en=topic.en, position=100 + t))  # type: ignore[arg-type]  # fmt: skip
                existing[slug] = made.id
            ids.categories.append(existing[slug])
    ids.counts["accounts"] += 1


async def _go_live(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, plan: Plan, ids: _Ids
) -> None:
    """The chosen creators go on air now, through the live service (scheduled, then started)."""
    for c in plan.live_creators.tolist():
        creator = Principal(ids.creators[c], creator_username(plan.spec.seed, c), creator_name(plan, c),
                            frozenset({"buyer", "creator"}))  # fmt: skip
        async with transaction(sessionmaker) as s:
            planned = await live.create_session(s, creator, SessionIn(
                title=f"{creator.display_name}的直播间", scheduled_at=utcnow() + dt.timedelta(minutes=5),
            ), None, settings)  # type: ignore[arg-type]  # fmt: skip
            await live.start_session(s, creator, planned.id, settings)
        ids.counts["live_now"] += 1


# --- services mode ------------------------------------------------------------------------------


@functools.cache
def _covers() -> list[bytes]:
    return [images.product_image(f"sim/{t.slug}", t.motif, images.hex_rgb(t.tint)) for t in TOPICS]


def _naive(s: AsyncSession, at: dt.datetime) -> Any:
    """A time for a raw UPDATE of the simulator's own rows (SQLite stores naive UTC)."""
    return at.astimezone(dt.UTC).replace(tzinfo=None) if s.bind.dialect.name == "sqlite" else at


async def _play_services(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    plan: Plan,
    ids: _Ids,
    password_hash: str,
    report: Progress,
    phases: dict[str, float],
) -> None:
    spec = plan.spec
    seed = spec.seed
    media_dir = settings.media_dir
    media_dir.mkdir(parents=True, exist_ok=True)
    covers = _covers()
    t0 = time.perf_counter()
    people = [("creator", c) for c in range(plan.creators)] + [("merchant", s) for s in range(plan.shops)]
    people += [("buyer", b) for b in range(plan.buyers)]
    for start in range(0, len(people), SERVICE_BATCH):
        async with transaction(sessionmaker) as s:
            for role, n in people[start : start + SERVICE_BATCH]:
                if role == "creator":
                    name, display, roles = creator_username(seed, n), creator_name(plan, n), ["creator"]
                elif role == "merchant":
                    name, display, roles = merchant_username(seed, n), f"商家{n + 1}", ["merchant"]
                else:
                    name, display, roles = buyer_username(seed, n), buyer_display_name(n + 1), []
                user = await accounts.create_user(
                    s, username=name, password_hash=password_hash, display_name=display, roles=roles
                )
                getattr(ids, f"{role}s").append(user.id)
        report("accounts", min(start + SERVICE_BATCH, len(people)), len(people))
    ids.counts["accounts"] += len(people)
    phases["accounts"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    merchant = [
        Principal(
            ids.merchants[m], merchant_username(seed, m), f"商家{m + 1}", frozenset({"buyer", "merchant"})
        )
        for m in range(plan.shops)
    ]
    async with transaction(sessionmaker) as s:
        for m in range(plan.shops):
            shop = await catalog.open_shop(s, merchant[m], ShopIn(
                name=shop_name(plan, m), slug=shop_slug(seed, m),
                description=f"{TOPICS[int(plan.shop_topic[m])].zh}好物，模拟世界 {_prefix(seed)}"))  # type: ignore[arg-type]  # fmt: skip
            ids.shops.append(shop.id)
    n_products = len(plan.product_shop)
    for start in range(0, n_products, SERVICE_BATCH):
        async with transaction(sessionmaker) as s:
            for p in range(start, min(start + SERVICE_BATCH, n_products)):
                m = int(plan.product_shop[p])
                t = int(plan.product_topic[p])
                made = await catalog.create_product(s, merchant[m], ids.shops[m], ProductIn(
                    title=product_title(plan, p), category_id=ids.categories[t],
                    skus=[SkuIn(price_fen=int(plan.product_price[p]), stock=1000)],
                ))  # type: ignore[arg-type]  # fmt: skip
                await catalog.add_image(s, merchant[m], made.id, catalog.Upload(f"p{p}.jpg", "image/jpeg", covers[t]),
                                        media_dir, settings.max_upload_bytes)  # fmt: skip
                await catalog.publish(s, merchant[m], made.id)
                ids.products.append(made.id)
                ids.skus.append((await catalog.product_detail(s, merchant[m], made.id)).skus[0].id)
                await s.execute(update(Product).where(Product.id == made.id).values(
                    published_at=plan.at(plan.product_ago[p]), created_at=plan.at(plan.product_ago[p])))  # fmt: skip
        report("shops and products", min(start + SERVICE_BATCH, n_products), n_products)
    ids.counts["shops"] = plan.shops
    ids.counts["products"] = n_products
    phases["shops and products"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    n_videos = len(plan.video_creator)
    for start in range(0, n_videos, SERVICE_BATCH):
        async with transaction(sessionmaker) as s:
            for v in range(start, min(start + SERVICE_BATCH, n_videos)):
                c = int(plan.video_creator[v])
                creator = Principal(ids.creators[c], creator_username(seed, c), creator_name(plan, c),
                                    frozenset({"buyer", "creator"}))  # fmt: skip
                made = await content.create_video(
                    s, creator,
                    VideoIn(title=video_title(plan, v), description=f"{creator.display_name}的作品",
                            video_url=f"https://media.trustlive.invalid/sim/{_prefix(seed)}/{v + 1}.mp4"),  # type: ignore[arg-type]
                    catalog.Upload(f"v{v}.jpg", "image/jpeg", covers[int(plan.video_topic[v])]), None,
                    media_dir=media_dir, max_upload_bytes=settings.max_upload_bytes, max_video_bytes=0,
                )  # fmt: skip
                ids.videos.append(made.id)
                at = _naive(s, plan.at(plan.video_ago[v]))
                # The simulator's own synthetic data moves back to when it "happened", before the
                # feed indexes it (the index reads the video's time when the event is applied).
                await s.execute(text("UPDATE videos SET created_at = :at, updated_at = :at WHERE id = :id"),
                                {"at": at, "id": made.id})  # fmt: skip
        report("videos", min(start + SERVICE_BATCH, n_videos), n_videos)
    ids.counts["videos"] = n_videos
    phases["videos"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    wanted = [
        (ids.buyers[b], "shop" if shop else "creator", ids.shops[t] if shop else ids.creators[t])
        for b, shop, t in zip(plan.follow_buyer.tolist(), plan.follow_shop.tolist(), plan.follow_target.tolist(),
                              strict=True)
    ]  # fmt: skip
    async with transaction(sessionmaker) as s:
        ids.counts["follows"] = await social.follow_many(s, wanted)
    report("follows", 1, 1)
    phases["follows"] = time.perf_counter() - t0
    await _go_live(sessionmaker, settings, plan, ids)
    t0 = time.perf_counter()
    async with transaction(sessionmaker) as s:
        published = [("video", ids.videos[v], "creator", ids.creators[int(plan.video_creator[v])],
                      plan.at(plan.video_ago[v])) for v in range(n_videos)]  # fmt: skip
        published += [("product", ids.products[p], "shop", ids.shops[int(plan.product_shop[p])],
                       plan.at(plan.product_ago[p])) for p in range(n_products)]  # fmt: skip
        await feed.index_items(s, published)
    await apply_feed_events(sessionmaker, ids.outbox_after, skip=INDEXED_TOPICS)
    phases["feed index"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    for round_no in range(spec.sessions):
        await _browse(sessionmaker, settings, plan, ids, round_no, report)
        await apply_feed_events(sessionmaker, ids.outbox_after, skip=INDEXED_TOPICS)
        await feed_tasks.build_neighbours(sessionmaker, feed.config_for(settings), force=True)
    phases["browsing"] = time.perf_counter() - t0


async def _browse(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    plan: Plan,
    ids: _Ids,
    round_no: int,
    report: Progress,
) -> None:
    """One browsing session of every buyer, in buyer order: the follow feed's first page (when
    they follow anyone), ``discovery_pages`` pages of the discovery feed; every card seen is an
    impression, some are watched (VIEW), watched videos liked (LIKE), watched products bought
    (BUY: a click through the feed, an order with the feed as its source, paid by sandbox)."""
    spec = plan.spec
    seed = spec.seed
    config = feed.config_for(settings)
    rnd = random.Random(f"browse/{seed}/{round_no}").random
    topic_of = {("video", ids.videos[v]): int(plan.video_topic[v]) for v in range(len(ids.videos))}
    topic_of |= {("product", ids.products[p]): int(plan.product_topic[p]) for p in range(len(ids.products))}
    sku_of = dict(zip(ids.products, ids.skus, strict=True))
    follows: dict[int, set[tuple[str, int]]] = defaultdict(set)
    for b, shop, t in zip(plan.follow_buyer.tolist(), plan.follow_shop.tolist(), plan.follow_target.tolist(),
                          strict=True):  # fmt: skip
        follows[b].add(("shop", ids.shops[t]) if shop else ("creator", ids.creators[t]))
    to_pay: list[tuple[Principal, list[int], str]] = []
    for b in range(plan.buyers):
        viewer = Principal(
            ids.buyers[b], buyer_username(seed, b), buyer_display_name(b + 1), frozenset({"buyer"})
        )
        caller = feed.caller_key(viewer, None)
        mine = set(plan.buyer_topics[b].tolist())
        async with transaction(sessionmaker) as s:
            pages = []
            if follows[b]:
                pages.append(await feed.follow_feed(s, viewer, now=plan.now))
            cursor = None
            for _ in range(spec.discovery_pages):
                page = await feed.discovery_feed(s, viewer, config, cursor=cursor, now=plan.now)
                pages.append(page)
                cursor = page.next_cursor
                if cursor is None:
                    break
            reports: list[EventIn] = []
            likes: list[int] = []
            buys: list[tuple[str, str, int, int]] = []
            for page in pages:
                for card in page.items:
                    reports.append(EventIn(page.serve_id, card.position, "impression"))  # type: ignore[arg-type]
                    if (card.provider_type, card.provider_id) in follows[b]:
                        chance = VIEW["followed"]
                    elif topic_of.get((card.kind, card.id), -2) in mine:
                        chance = VIEW["topic"]
                    else:
                        chance = VIEW["other"]
                    if rnd() >= chance:
                        continue
                    reports.append(EventIn(page.serve_id, card.position, "view"))  # type: ignore[arg-type]
                    if card.kind == "video" and rnd() < LIKE[page.feed]:
                        likes.append(card.id)
                    elif card.kind == "product" and rnd() < BUY[page.feed] and card.id in sku_of:
                        buys.append((page.feed, page.serve_id, card.position, card.id))
            for start in range(0, len(reports), 100):
                await feed.record_events(s, viewer, EventsIn(reports[start : start + 100]), caller=caller,
                                         now=plan.now)  # fmt: skip
            for video_id in likes:
                await content.like(s, viewer, video_id)
            ids.counts["likes"] += len(likes)
            placed: list[int] = []
            if buys:
                addresses = await orders.list_addresses(s, viewer)
                if not addresses:
                    addresses = [await orders.add_address(s, viewer, AddressIn(
                        recipient=viewer.display_name[:8] or "买家", phone=f"139{b + 1:08d}",
                        region="四川省成都市", detail=f"天府大道 {b % 97 + 1} 号"))]  # type: ignore[arg-type]  # fmt: skip
                for n, (feed_name, serve_id, position, product_id) in enumerate(buys):
                    await feed.click(s, viewer, serve_id, position, caller=caller, now=plan.now)
                    out = await orders.place_order(s, viewer, OrderIn(
                        items=[ItemIn(sku_id=sku_of[product_id], quantity=1)], address_id=addresses[0].id,
                        source=feed.SOURCES[feed_name]), f"sim:{seed}:{b}:{round_no}:{n}")  # type: ignore[arg-type]  # fmt: skip
                    placed += [o.id for o in out.orders]
            if placed:
                to_pay.append((viewer, placed, f"sim:{seed}:{b}:{round_no}:pay"))
            ids.counts["orders"] += len(placed)
            ids.counts["feed_pages"] += len(pages)
        report(f"browsing, session {round_no + 1}", b + 1, plan.buyers)
    provider = payments.default_provider(settings)
    for viewer, placed, key in to_pay:
        async with transaction(sessionmaker) as s:
            intent = await payments.create_payment(s, viewer, placed, key, provider)
            assert intent.provider_ref is not None
            await payments.sandbox_answer(s, settings, intent.provider_ref, pay=True)
    while (await payment_tasks.deliver_webhooks(sessionmaker, settings)).attempted:
        pass


# --- bulk mode ------------------------------------------------------------------------------------


class _Writer:
    """Rows into tables, fast: COPY on PostgreSQL (asyncpg's binary copy), executemany on SQLite.
    Values must be what the column stores (aware datetimes; JSON as text on PostgreSQL)."""

    def __init__(self, session: AsyncSession, report: Progress) -> None:
        self.session = session
        self.report = report
        self.pg = session.bind.dialect.name == "postgresql"
        self.rows = 0

    async def write(
        self, table: Table, columns: Sequence[str], records: Iterable[tuple[Any, ...]], total: int, label: str
    ) -> None:
        conn = await self.session.connection()
        raw = (await conn.get_raw_connection()).driver_connection if self.pg else None
        done = 0
        chunk: list[tuple[Any, ...]] = []

        async def flush() -> None:
            nonlocal done
            if not chunk:
                return
            if raw is not None:
                await raw.copy_records_to_table(table.name, records=chunk, columns=list(columns))
            else:
                await conn.execute(table.insert(), [dict(zip(columns, r, strict=True)) for r in chunk])
            done += len(chunk)
            self.rows += len(chunk)
            chunk.clear()
            self.report(label, done, total)

        self.report(label, 0, total)
        for record in records:
            chunk.append(record)
            if len(chunk) >= COPY_CHUNK:
                await flush()
        await flush()


async def _next_id(session: AsyncSession, table: Table) -> int:
    return int(await session.scalar(select(func.coalesce(func.max(table.c.id), 0))) or 0) + 1


BULK_TABLES = ("users", "user_roles", "shops", "shop_staff", "products", "skus", "product_images", "videos",
               "video_likes", "follows", "follower_counts", "feed_items", "feed_providers", "feed_interactions",
               "feed_exposure", "product_search")  # fmt: skip
SEQUENCED = ("users", "user_roles", "shops", "shop_staff", "products", "skus", "product_images", "videos", "follows",
             "feed_items")  # fmt: skip


async def _load_bulk(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    plan: Plan,
    ids: _Ids,
    password_hash: str,
    report: Progress,
    phases: dict[str, float],
) -> None:
    """The plan straight into the tables in one transaction (see the module docstring). Ids are
    given here, after the highest in each table; on PostgreSQL the sequences are moved past them
    and the tables analysed."""
    spec = plan.spec
    seed = spec.seed
    t0 = time.perf_counter()
    touches = plan_touches(plan)
    phases["plan interactions"] = time.perf_counter() - t0
    folder = Path("sim") / _prefix(seed)
    (settings.media_dir / folder).mkdir(parents=True, exist_ok=True)
    pictures = []
    for t, picture in enumerate(_covers()):
        path = folder / f"{TOPICS[t].slug}.jpg"
        (settings.media_dir / path).write_bytes(picture)
        pictures.append((path.as_posix(), len(picture)))
    now = plan.now
    n_videos, n_products, n_items = len(plan.video_creator), len(plan.product_shop), len(plan.item_kind)
    t0 = time.perf_counter()
    async with transaction(sessionmaker) as s:
        w = _Writer(s, report)
        if w.pg:
            await s.execute(text("SET LOCAL synchronous_commit = off"))
            try:  # a load consistent by construction: no foreign-key triggers, where allowed (superuser)
                async with s.begin_nested():
                    await s.execute(text("SET LOCAL session_replication_role = replica"))
            except Exception:  # noqa: S110 - not a superuser: the checks run, the load is slower
                pass
        t = {name: User.metadata.tables[name] for name in BULK_TABLES if name != "product_search"}
        first = {name: await _next_id(s, t[name]) for name in SEQUENCED}
        u0 = first["users"]
        ids.creators = list(range(u0, u0 + plan.creators))
        ids.merchants = list(range(u0 + plan.creators, u0 + plan.creators + plan.shops))
        ids.buyers = list(
            range(u0 + plan.creators + plan.shops, u0 + plan.creators + plan.shops + plan.buyers)
        )
        ids.shops = list(range(first["shops"], first["shops"] + plan.shops))
        ids.videos = list(range(first["videos"], first["videos"] + n_videos))
        ids.products = list(range(first["products"], first["products"] + n_products))
        creator_born = np.full(plan.creators, spec.days * DAY)
        np.minimum.at(creator_born, plan.video_creator, plan.video_ago)
        born = [plan.at(x + DAY) for x in creator_born.tolist()] + [
            plan.at(x + DAY) for x in plan.shop_ago.tolist()
        ]
        born += [plan.at(spec.days * DAY + DAY)] * plan.buyers

        def users() -> Iterable[tuple[Any, ...]]:
            for c in range(plan.creators):
                yield (
                    u0 + c,
                    creator_username(seed, c),
                    creator_name(plan, c),
                    password_hash,
                    True,
                    born[c],
                    born[c],
                )
            for m in range(plan.shops):
                at = born[plan.creators + m]
                yield (
                    u0 + plan.creators + m,
                    merchant_username(seed, m),
                    f"商家{m + 1}",
                    password_hash,
                    True,
                    at,
                    at,
                )
            at = born[-1] if plan.buyers else now
            for b in range(plan.buyers):
                yield (
                    ids.buyers[b],
                    buyer_username(seed, b),
                    buyer_display_name(b + 1),
                    password_hash,
                    True,
                    at,
                    at,
                )

        n_users = plan.creators + plan.shops + plan.buyers
        await w.write(t["users"], ("id", "username", "display_name", "password_hash", "is_active", "created_at",
                                   "updated_at"), users(), n_users, "accounts")  # fmt: skip

        def roles() -> Iterable[tuple[Any, ...]]:
            n = first["user_roles"]
            for k in range(n_users):
                yield (n, u0 + k, "buyer", born[k])
                n += 1
            for k in range(plan.creators + plan.shops):
                yield (n, u0 + k, "creator" if k < plan.creators else "merchant", born[k])
                n += 1

        await w.write(t["user_roles"], ("id", "user_id", "role", "granted_at"), roles(),
                      n_users + plan.creators + plan.shops, "roles")  # fmt: skip
        shop_open = [plan.at(x) for x in plan.shop_ago.tolist()]
        await w.write(t["shops"], ("id", "owner_id", "slug", "name", "description", "status", "created_at", "updated_at"),
                      ((ids.shops[m], ids.merchants[m], shop_slug(seed, m), shop_name(plan, m),
                        f"{TOPICS[int(plan.shop_topic[m])].zh}好物，模拟世界 {_prefix(seed)}", "active", shop_open[m],
                        shop_open[m]) for m in range(plan.shops)), plan.shops, "shops")  # fmt: skip
        await w.write(t["shop_staff"], ("id", "shop_id", "user_id", "role", "added_at"),
                      ((first["shop_staff"] + m, ids.shops[m], ids.merchants[m], "owner", shop_open[m])
                       for m in range(plan.shops)), plan.shops, "shop staff")  # fmt: skip
        p_at = [plan.at(x) for x in plan.product_ago.tolist()]
        p_shop = plan.product_shop.tolist()
        p_topic = plan.product_topic.tolist()
        await w.write(t["products"], ("id", "shop_id", "category_id", "title", "description", "status", "published_at",
                                      "commission_bp", "created_at", "updated_at"),
                      ((ids.products[p], ids.shops[p_shop[p]], ids.categories[p_topic[p]], product_title(plan, p), "",
                        "published", p_at[p], 0, p_at[p], p_at[p]) for p in range(n_products)),
                      n_products, "products")  # fmt: skip
        empty = "[]" if w.pg else []
        prices = plan.product_price.tolist()
        await w.write(t["skus"], ("id", "product_id", "shop_id", "code", "option_values", "combo_key", "price_fen",
                                  "stock", "is_active", "created_at", "updated_at"),
                      ((first["skus"] + p, ids.products[p], ids.shops[p_shop[p]], f"SIM-{p + 1}", empty, "", prices[p],
                        1000, True, p_at[p], p_at[p]) for p in range(n_products)), n_products, "SKUs")  # fmt: skip
        await w.write(t["product_images"], ("id", "product_id", "path", "content_type", "byte_size", "width", "height",
                                            "position", "uploaded_at"),
                      ((first["product_images"] + p, ids.products[p], pictures[p_topic[p]][0], "image/jpeg",
                        pictures[p_topic[p]][1], images.PRODUCT_SIDE, images.PRODUCT_SIDE, 0, p_at[p])
                       for p in range(n_products)), n_products, "product images")  # fmt: skip
        await _search_rows(s, w, plan, ids)
        likes = Counter(touches.like_video.tolist())
        v_at = [plan.at(x) for x in plan.video_ago.tolist()]
        v_creator = plan.video_creator.tolist()
        v_topic = plan.video_topic.tolist()
        await w.write(t["videos"], ("id", "creator_id", "title", "description", "cover_path", "external_url", "status",
                                    "like_count", "created_at", "updated_at"),
                      ((ids.videos[v], ids.creators[v_creator[v]], video_title(plan, v), creator_name(plan, v_creator[v])
                        + "的作品", pictures[v_topic[v]][0], f"https://media.trustlive.invalid/sim/{_prefix(seed)}/{v + 1}.mp4",
                        "published", likes.get(v, 0), v_at[v], v_at[v]) for v in range(n_videos)),
                      n_videos, "videos")  # fmt: skip
        await w.write(t["video_likes"], ("video_id", "user_id", "created_at"),
                      ((ids.videos[v], ids.buyers[b], plan.at(a)) for v, b, a in
                       zip(touches.like_video.tolist(), touches.like_buyer.tolist(), touches.like_ago.tolist(),
                           strict=True)), len(touches.like_video), "likes")  # fmt: skip
        f_shop = plan.follow_shop.tolist()
        f_target = plan.follow_target.tolist()
        await w.write(t["follows"], ("id", "user_id", "target_type", "target_id", "created_at"),
                      ((first["follows"] + n, ids.buyers[b], "shop" if sh else "creator",
                        ids.shops[tg] if sh else ids.creators[tg], plan.at(a))
                       for n, (b, sh, tg, a) in enumerate(zip(plan.follow_buyer.tolist(), f_shop, f_target,
                                                              plan.follow_ago.tolist(), strict=True))),
                      len(f_shop), "follows")  # fmt: skip
        c_followers, s_followers = plan.followers(False), plan.followers(True)
        counted = [("creator", ids.creators[c], int(n)) for c, n in enumerate(c_followers.tolist()) if n]
        counted += [("shop", ids.shops[m], int(n)) for m, n in enumerate(s_followers.tolist()) if n]
        await w.write(t["follower_counts"], ("target_type", "target_id", "followers"), counted, len(counted),
                      "follower counts")  # fmt: skip
        i0 = first["feed_items"]
        i_kind, i_ref, i_prov = plan.item_kind.tolist(), plan.item_ref.tolist(), plan.item_provider.tolist()
        i_at = [plan.at(x) for x in plan.item_ago.tolist()]

        def item_row(i: int) -> tuple[Any, ...]:
            if i_kind[i] == 0:
                return (
                    i0 + i,
                    "video",
                    ids.videos[i_ref[i]],
                    "creator",
                    ids.creators[i_prov[i]],
                    i_at[i],
                    True,
                )
            return (i0 + i, "product", ids.products[i_ref[i]], "shop", ids.shops[i_prov[i]], i_at[i], True)

        await w.write(t["feed_items"], ("id", "kind", "ref_id", "provider_type", "provider_id", "published_at", "active"),
                      (item_row(i) for i in range(n_items)), n_items, "feed items")  # fmt: skip
        providers = [("creator", ids.creators[c], plan.at(creator_born[c]), int(n))
                     for c, n in enumerate(plan.creator_videos.tolist()) if n]  # fmt: skip
        per_shop = np.bincount(plan.product_shop, minlength=plan.shops).tolist()
        providers += [("shop", ids.shops[m], shop_open[m], int(n)) for m, n in enumerate(per_shop) if n]
        await w.write(t["feed_providers"], ("provider_type", "provider_id", "first_item_at", "active_items",
                                            "window_impressions", "exposure_at"),
                      ((pt, pid, at, n, 0, now) for pt, pid, at, n in providers), len(providers),
                      "feed providers")  # fmt: skip
        kinds = TOUCH_KINDS
        await w.write(t["feed_interactions"], ("user_id", "item_id", "kind", "count", "last_at"),
                      ((ids.buyers[b], i0 + i, kinds[k], c, plan.at(a)) for b, i, k, c, a in
                       zip(touches.user.tolist(), touches.item.tolist(), touches.kind.tolist(), touches.count.tolist(),
                           touches.ago.tolist(), strict=True)), len(touches.user), "interactions")  # fmt: skip
        await w.write(t["feed_exposure"], ("hour", "feed", "provider_type", "provider_id", "impressions", "clicks"),
                      ((h, f, "shop" if pt else "creator", ids.shops[p] if pt else ids.creators[p], imp, clk)
                       for h, f, pt, p, imp, clk in touches.exposure), len(touches.exposure),
                      "exposure counters")  # fmt: skip
        if w.pg:
            for name in SEQUENCED:
                await s.execute(text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                                     f"(SELECT max(id) FROM {name}))"))  # fmt: skip
        by_kind = Counter(touches.kind.tolist())
        ids.counts.update({
            "accounts": ids.counts["accounts"] + n_users, "shops": plan.shops, "products": n_products,
            "videos": n_videos, "follows": len(f_shop), "likes": len(touches.like_video),
            **{f"{kinds[k]}_rows": int(by_kind.get(k, 0)) for k in range(len(kinds))},
        })  # fmt: skip
    phases["load"] = time.perf_counter() - t0
    if w.pg:  # the planner's statistics, as autovacuum would take them after a load this size
        t0 = time.perf_counter()
        async with transaction(sessionmaker) as s:
            for name in BULK_TABLES:
                await s.execute(text(f"ANALYZE {name}"))
        phases["analyze"] = time.perf_counter() - t0


async def _search_rows(s: AsyncSession, w: _Writer, plan: Plan, ids: _Ids) -> None:
    """The shelf's search index for the products, as ``catalog`` indexes a published product:
    the segmented title, and the description with the category's and the shop's names."""
    n = len(plan.product_shop)
    shop_names = [shop_name(plan, m) for m in range(plan.shops)]
    topic_words = [f"{t.zh} {t.en}" for t in TOPICS]
    p_shop, p_topic = plan.product_shop.tolist(), plan.product_topic.tolist()

    def rows() -> Iterable[tuple[Any, ...]]:
        for p in range(n):
            yield (ids.products[p], segmented_text(product_title(plan, p)),
                   segmented_text(f" {topic_words[p_topic[p]]} {shop_names[p_shop[p]]}"))  # fmt: skip

    if w.pg:
        await s.execute(
            text("CREATE TEMP TABLE sim_search (id bigint, title text, body text) ON COMMIT DROP")
        )
        await w.write(Table("sim_search", MetaData()), ("id", "title", "body"), rows(), n, "search index")
        await s.execute(text(
            "INSERT INTO product_search (product_id, doc) SELECT id, setweight(to_tsvector('simple', title), 'A') "
            "|| setweight(to_tsvector('simple', body), 'B') FROM sim_search"))  # fmt: skip
    else:
        conn = await s.connection()
        batch: list[dict[str, Any]] = []
        for product_id, title, body in rows():
            batch.append({"id": product_id, "title": title, "body": body})
            if len(batch) >= COPY_CHUNK:
                await conn.execute(
                    text("INSERT INTO product_search(rowid, title, body) VALUES (:id, :title, :body)"), batch
                )
                batch = []
        if batch:
            await conn.execute(
                text("INSERT INTO product_search(rowid, title, body) VALUES (:id, :title, :body)"), batch
            )


# --- the summary ----------------------------------------------------------------------------------


async def summarise(
    sessionmaker: async_sessionmaker[AsyncSession], plan: Plan, ids: _Ids, mode: str
) -> WorldSummary:
    """The figures of the world as the database holds it: videos per creator and the creators'
    followers (from the kept counts), and the interactions of its buyers by kind."""
    async with transaction(sessionmaker) as s:
        lo, hi = min(ids.creators), max(ids.creators)
        per_creator = dict((await s.execute(
            select(Video.creator_id, func.count()).where(Video.creator_id.between(lo, hi)).group_by(Video.creator_id)
        )).all())  # fmt: skip
        followers = dict((await s.execute(
            select(FollowerCount.target_id, FollowerCount.followers).where(
                FollowerCount.target_type == "creator", FollowerCount.target_id.between(lo, hi))
        )).all())  # fmt: skip
        counts = {k: v for k, v in ids.counts.items() if k not in ("follows", "likes", "orders")}
        if ids.buyers:
            blo, bhi = min(ids.buyers), max(ids.buyers)
            counts["follows"] = (
                await s.scalar(select(func.count()).where(Follow.user_id.between(blo, bhi))) or 0
            )
            counts["likes"] = (
                await s.scalar(select(func.count()).where(VideoLike.user_id.between(blo, bhi))) or 0
            )
            counts["paid_orders"] = await s.scalar(select(func.count()).where(
                Order.buyer_id.between(blo, bhi), Order.paid_at.is_not(None))) or 0  # fmt: skip
            for kind, n in (await s.execute(
                select(FeedInteraction.kind, func.count()).where(FeedInteraction.user_id.between(blo, bhi))
                .group_by(FeedInteraction.kind)
            )).all():  # fmt: skip
                counts[f"{kind}_rows"] = int(n)
    videos = np.array([per_creator.get(c, 0) for c in ids.creators], dtype=np.int64)
    fol = np.array([followers.get(c, 0) for c in ids.creators], dtype=np.int64)
    ordered = {"accounts": counts.pop("accounts", 0), "creators": plan.creators, "merchants": plan.shops,
               "buyers": plan.buyers}  # fmt: skip
    ordered.update({k: int(v) for k, v in counts.items()})
    return WorldSummary(
        seed=plan.spec.seed, mode=mode, counts=ordered,
        one_item_share=float((videos == 1).mean()) if len(videos) else 0.0,
        videos_per_creator=float(videos.mean()) if len(videos) else 0.0,
        follower_gini=gini(fol), top1_share=top_share(fol), max_followers=int(fol.max()) if len(fol) else 0,
        seconds=0.0,
    )  # fmt: skip
