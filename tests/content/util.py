"""Shared pieces of the short-video tests: real bytes of tiny MP4 and WebM files, a world with a
creator who works for a shop, and the outcome read straight from the tables and the disk."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from tests.helpers import image_bytes
from tests.orders.world import World, build, principal
from trustlive.accounts import service as accounts
from trustlive.accounts.service import Principal
from trustlive.catalog import service as catalog
from trustlive.catalog.schemas import ProductIn, SkuIn
from trustlive.catalog.service import Upload
from trustlive.config import Settings
from trustlive.content import service
from trustlive.content.models import Video, VideoLike, VideoProduct
from trustlive.content.schemas import VideoIn
from trustlive.db import transaction
from trustlive.events import OutboxEvent

# An ISO base-media file: an ``ftyp`` box (major brand isom) and an empty ``mdat`` box.
MP4 = bytes.fromhex("000000186674797069736f6d0000020069736f6d6d703431") + bytes.fromhex("000000086d646174")
# A WebM file's EBML header (DocType "webm"), as every WebM starts.
WEBM = bytes.fromhex("1a45dfa39f4286810142f7810142f2810442f381084282847765626d4287810242858102")
# A picture that is an ISO base-media file too (HEIF): ``ftyp`` at offset 4, but brand heic.
HEIC = bytes.fromhex("000000186674797068656963000000006d69663168656963")


@dataclass
class VideoWorld:
    w: World
    settings: Settings
    creator: Principal  # creator1: staff of shop 0 (its products are "own"), none of shop 1
    other_creator: Principal
    own: list[int]  # published products of shop 0
    alliance: int  # a published product of shop 1
    draft: int  # an unpublished product of shop 0

    @property
    def sm(self):  # type: ignore[no-untyped-def]
        return self.w.sessionmaker


async def video_world(url: str, settings: Settings, buyers: int = 2) -> VideoWorld:
    w = await build(url, buyers=buyers)
    hashed = await accounts.hash_password("correct-horse-9")
    async with transaction(w.sessionmaker) as s:
        other = principal(
            await accounts.create_user(s, username="creator2", password_hash=hashed, roles=["creator"]),
            "creator",
        )
        await catalog.add_staff(s, w.merchants[0], w.shops[0], w.creator.username)
        second = await catalog.create_product(
            s, w.merchants[0], w.shops[0],
            ProductIn(title="第二件", category_id=(await catalog.list_categories(s))[0].id,
                      skus=[SkuIn(price_fen=3900, stock=5)]),
        )  # fmt: skip
        await catalog.publish(s, w.merchants[0], second.id)
        draft = await catalog.create_product(
            s, w.merchants[0], w.shops[0],
            ProductIn(title="草稿", category_id=(await catalog.list_categories(s))[0].id,
                      skus=[SkuIn(price_fen=1000, stock=5)]),
        )  # fmt: skip
        own = [c.id for c in await catalog.shop_products(s, None, w.shops[0], after_id=None, limit=10)]
        alliance = [c.id for c in await catalog.shop_products(s, None, w.shops[1], after_id=None, limit=10)]
    return VideoWorld(w, settings, w.creator, other, sorted(own), alliance[0], draft.id)


def cover(name: str = "cover.png") -> Upload:
    return Upload(name, "image/png", image_bytes("PNG", (90, 160)))


def mp4(name: str = "clip.mp4", extra: int = 0) -> service.VideoUpload:
    return service.video_from_bytes(name, MP4 + b"\0" * extra)


def fields(title: str = "春装上新", **changes: object) -> VideoIn:
    return VideoIn(**{"title": title, **changes})  # type: ignore[arg-type]


async def post(vw: VideoWorld, actor: Principal | None = None, data: VideoIn | None = None, *,
               cover_: Upload | None = None, video: service.VideoUpload | None = None,
               use_cover: bool = True, settings: Settings | None = None):  # type: ignore[no-untyped-def]  # fmt: skip
    settings = settings or vw.settings
    async with transaction(vw.sm) as s:
        return await service.create_video(
            s, actor or vw.creator, data or fields(), (cover_ or cover()) if use_cover else None, video,
            media_dir=settings.media_dir, max_upload_bytes=settings.max_upload_bytes,
            max_video_bytes=settings.max_video_bytes,
        )  # fmt: skip


async def video_rows(vw: VideoWorld) -> list[Video]:
    async with transaction(vw.sm) as s:
        return list(await s.scalars(select(Video).order_by(Video.id)))


async def link_rows(vw: VideoWorld) -> list[tuple[int, int, int]]:
    async with transaction(vw.sm) as s:
        rows = await s.execute(select(VideoProduct.video_id, VideoProduct.product_id, VideoProduct.position)
                               .order_by(VideoProduct.video_id, VideoProduct.position))  # fmt: skip
        return [tuple(r) for r in rows]  # type: ignore[misc]


async def like_rows(vw: VideoWorld, video_id: int) -> int:
    async with transaction(vw.sm) as s:
        return len(list(await s.scalars(select(VideoLike.user_id).where(VideoLike.video_id == video_id))))


async def events_of(vw: VideoWorld, topic: str) -> list[dict]:
    async with transaction(vw.sm) as s:
        rows = await s.scalars(select(OutboxEvent).where(OutboxEvent.topic == topic).order_by(OutboxEvent.id))
        return [dict(e.payload) for e in rows]


def stored_files(media_dir: Path) -> list[Path]:
    folder = media_dir / "videos"
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []
