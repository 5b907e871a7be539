"""A world for the feed tests, built through the other domains' services (fast, no HTTP): ops,
creators who post videos (external playback URLs: no files) and go live, merchants with shops and
published products, buyers who follow them. Events reach the feed the way they do in the app:
through the outbox and the feed's subscriber (``drain``)."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select, text

from tests.helpers import image_bytes, make_settings
from trustlive.accounts import service as accounts
from trustlive.accounts.service import Principal
from trustlive.catalog import service as catalog
from trustlive.catalog.schemas import CategoryIn, ProductIn, ShopIn, SkuIn
from trustlive.config import Settings
from trustlive.content import service as content
from trustlive.content.schemas import VideoIn
from trustlive.db import create_engine, create_sessionmaker, transaction, utcnow
from trustlive.events import EventBus, OutboxRelay
from trustlive.feed import service as feed
from trustlive.feed.models import FeedEvent, FeedExposure, FeedGrant, FeedItem, FeedServe
from trustlive.live import service as live
from trustlive.live.schemas import SessionIn
from trustlive.social import service as social

_seq = itertools.count(1)


def principal(user: Any, *roles: str) -> Principal:
    return Principal(user.id, user.username, user.display_name, frozenset({"buyer", *roles}))


@dataclass
class World:
    engine: Any
    sessionmaker: Any
    settings: Settings
    ops: Principal
    creators: list[Principal]
    merchants: list[Principal]
    shops: list[int]
    buyers: list[Principal]
    category_id: int
    relay: OutboxRelay
    skus: dict[int, int] = field(default_factory=dict)  # product id -> its SKU

    async def close(self) -> None:
        await self.engine.dispose()

    async def drain(self) -> int:
        """Deliver the pending outbox events to the feed's subscriber."""
        return await self.relay.drain()

    async def video(self, creator: int, title: str = "", *, at: dt.datetime | None = None) -> int:
        """A published video of ``creators[creator]`` (``at``: its creation time)."""
        async with transaction(self.sessionmaker) as s:
            out = await content.create_video(
                s, self.creators[creator], VideoIn(title=title or f"作品 {next(_seq)}",  # type: ignore[arg-type]
                                                   video_url="https://media.example.com/v.mp4"),
                catalog.Upload("c.png", "image/png", image_bytes("PNG")), None,
                media_dir=self.settings.media_dir, max_upload_bytes=self.settings.max_upload_bytes,
                max_video_bytes=self.settings.max_video_bytes,
            )  # fmt: skip
            if at is not None:
                await s.execute(
                    text("UPDATE videos SET created_at = :at WHERE id = :id"),
                    {"at": _naive(s, at), "id": out.id},
                )
        return out.id

    async def product(
        self, shop: int, title: str = "", *, at: dt.datetime | None = None, price: int = 5900
    ) -> int:
        """A published product of ``shops[shop]`` (``at``: its publishing time)."""
        async with transaction(self.sessionmaker) as s:
            merchant = self.merchants[shop]
            made = await catalog.create_product(
                s, merchant, self.shops[shop],
                ProductIn(title=title or f"商品 {next(_seq)}", category_id=self.category_id,
                          skus=[SkuIn(price_fen=price, stock=50)]),  # type: ignore[arg-type]
            )  # fmt: skip
            await catalog.publish(s, merchant, made.id)
            detail = await catalog.product_detail(s, merchant, made.id)
            self.skus[made.id] = detail.skus[0].id
            if at is not None:
                await s.execute(
                    text("UPDATE products SET published_at = :at WHERE id = :id"),
                    {"at": _naive(s, at), "id": made.id},
                )
        return made.id

    async def go_live(self, creator: int, title: str = "直播") -> int:
        async with transaction(self.sessionmaker) as s:
            planned = await live.create_session(
                s, self.creators[creator],
                SessionIn(title=title, scheduled_at=utcnow() + dt.timedelta(minutes=5)),  # type: ignore[arg-type]
                None, self.settings,
            )  # fmt: skip
            await live.start_session(s, self.creators[creator], planned.id, self.settings)
        return planned.id

    async def follow(self, buyer: int, target_type: str, target_id: int) -> None:
        async with transaction(self.sessionmaker) as s:
            await social.follow(s, self.buyers[buyer], target_type, target_id)

    async def rows(self, model: Any, *where: Any) -> list[Any]:
        async with transaction(self.sessionmaker) as s:
            return list(await s.scalars(select(model).where(*where)))

    async def events(self) -> list[FeedEvent]:
        return await self.rows(FeedEvent)

    async def serves(self) -> list[FeedServe]:
        return await self.rows(FeedServe)

    async def grant(self, grant_id: int) -> FeedGrant:
        return (await self.rows(FeedGrant, FeedGrant.id == grant_id))[0]

    async def items(self) -> list[FeedItem]:
        return await self.rows(FeedItem)

    async def exposure(self) -> list[FeedExposure]:
        return await self.rows(FeedExposure)


def _naive(s: Any, at: dt.datetime) -> Any:
    """A time for a raw UPDATE: SQLite stores naive UTC text, PostgreSQL an aware timestamp."""
    return at.astimezone(dt.UTC).replace(tzinfo=None) if s.bind.dialect.name == "sqlite" else at


async def build(
    url: str, tmp_path: Path, *, creators: int = 3, merchants: int = 2, buyers: int = 2, prefix: str = ""
) -> World:
    """The world (``prefix``: on usernames, the category and shop names, to sit beside others)."""
    engine = create_engine(url)
    sessionmaker = create_sessionmaker(engine)
    settings = make_settings(url, tmp_path)
    settings.media_dir.mkdir(parents=True, exist_ok=True)
    hashed = await accounts.hash_password("correct-horse-9")
    async with transaction(sessionmaker) as s:
        feed.reset_caches(s)

        async def user(name: str, *roles: str) -> Principal:
            made = await accounts.create_user(s, username=prefix + name, password_hash=hashed, roles=list(roles),
                                              display_name=name.title())  # fmt: skip
            return principal(made, *roles)

        ops = await user("ops1", "ops")
        creator_list = [await user(f"creator{i}", "creator") for i in range(creators)]
        merchant_list = [await user(f"merchant{i}", "merchant") for i in range(merchants)]
        buyer_list = [await user(f"buyer{i}") for i in range(buyers)]
    async with transaction(sessionmaker) as s:
        category = await catalog.create_category(
            s,
            ops,
            CategoryIn(slug=f"{prefix}kids", name_zh="童装", name_en="Kids", service_fee_bp=500),  # type: ignore[arg-type]
        )
        shops = [
            (await catalog.open_shop(s, m, ShopIn(name=f"{prefix}店铺{i}"))).id  # type: ignore[arg-type]
            for i, m in enumerate(merchant_list)
        ]
    bus = EventBus()
    for topic in feed.TOPICS:
        bus.subscribe(topic, feed.on_event)
    relay = OutboxRelay(sessionmaker, bus)
    return World(
        engine,
        sessionmaker,
        settings,
        ops,
        creator_list,
        merchant_list,
        shops,
        buyer_list,
        category.id,
        relay,
    )
