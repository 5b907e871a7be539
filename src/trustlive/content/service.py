"""Short-video use cases (docs/content.md): a creator posts a video (an uploaded MP4/WebM file or
an external playback URL, a cover, linked products), edits, hides or deletes it; ops take one
down; signed-in users like it; pages, the creator's page and the feeds read it.

Uploads are checked by their bytes, never by their name: a video file must start like an MP4
(``ftyp`` at offset 4) or a WebM (the EBML magic ``1A 45 DF A3``), and is copied to the media
folder in chunks, counting as it goes, so a file over the limit is refused without ever being
held in memory. Everything a request writes is removed again when it fails: the files it wrote
are deleted at once on a refusal, and on rollback if the transaction fails later.

Which products a video may link follows the live domain's rule for a session's featured
products exactly (``live.service.sellable_products``): published in an active shop; a product of
another shop (an alliance product) only while the creator is alliance-eligible by reputation.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from trustlive import events
from trustlive.accounts import service as accounts
from trustlive.accounts.service import Principal
from trustlive.catalog import service as catalog
from trustlive.catalog.service import ProductCard, Upload
from trustlive.content import repository as repo
from trustlive.content.models import (
    MAX_DESCRIPTION,
    MAX_PRODUCTS,
    MAX_TITLE,
    MAX_URL,
    Video,
    VideoStatus,
)
from trustlive.content.schemas import LikeOut, TakeDownIn, VideoCard, VideoIn, VideoOut, VideoPatch
from trustlive.db import delete_on_rollback, utcnow
from trustlive.errors import (
    Conflict,
    FieldError,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
    validated,
)
from trustlive.live import service as live
from trustlive.trust import service as trust

S = VideoStatus
CHUNK = 1024 * 1024  # bytes copied at a time
SNIFF = 64  # bytes of a file's start that decide its type
MAX_LIST = 500  # the most videos one call of the feed's functions returns
# ISO base-media brands that are pictures or sound, not video: they carry ``ftyp`` too.
NOT_VIDEO_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis",
                              b"M4A ", b"M4B ", b"M4P "})  # fmt: skip
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_NEWLINE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")


# --- uploads ----------------------------------------------------------------------------------


class Readable(Protocol):
    async def read(self, size: int = -1) -> bytes: ...


@dataclass(frozen=True)
class VideoUpload:
    """An uploaded video as the service takes it: read in chunks, never whole. ``size``, when the
    caller knows it (a spooled upload), refuses an oversize file before a byte is copied."""

    filename: str
    file: Readable
    size: int | None = None


class BytesFile:
    """Bytes with an async ``read``: a video upload made in memory (tests, the simulator)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    async def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size < 0 else self._at + size
        chunk = self._data[self._at : end]
        self._at += len(chunk)
        return chunk


def video_from_bytes(filename: str, data: bytes) -> VideoUpload:
    return VideoUpload(filename, BytesFile(data), len(data))


@dataclass(frozen=True)
class StoredVideo:
    path: str  # relative to the media folder
    content_type: str
    byte_size: int


def sniff_video(head: bytes) -> tuple[str, str] | None:
    """(content type, extension) of a file by its first bytes: MP4 has the box type ``ftyp`` at
    offset 4 (and a major brand that is not a picture or sound format); WebM starts with the
    EBML magic and is not declared Matroska. None for anything else."""
    if len(head) >= 12 and head[4:8] == b"ftyp" and head[8:12] not in NOT_VIDEO_BRANDS:
        return "video/mp4", "mp4"
    if head[:4] == b"\x1a\x45\xdf\xa3" and b"matroska" not in head[:SNIFF]:
        return "video/webm", "webm"
    return None


def _too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"video: larger than {max_bytes // (1024 * 1024)} MB", field="video", code="video_too_large"
    )


async def store_video(
    session: AsyncSession, upload: VideoUpload, media_dir: Path, folder: str, max_bytes: int
) -> StoredVideo:
    """Check ``upload`` is an MP4 or WebM of at most ``max_bytes`` and copy it, chunk by chunk,
    to ``media_dir/folder`` under a random name. A refusal leaves no file behind; the file
    written is deleted again if the transaction rolls back."""
    if upload.size is not None and upload.size > max_bytes:
        raise _too_large(max_bytes)
    head = await upload.file.read(CHUNK)
    kind = sniff_video(head[:SNIFF])
    if kind is None:
        what = "the file is empty" if not head else "not an MP4 or WebM video"
        raise UnsupportedMediaType(f"video: {what}", field="video", code="bad_video_type")
    content_type, ext = kind
    relative = f"{folder}/{secrets.token_hex(16)}.{ext}"
    target = media_dir / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    try:
        with target.open("xb") as out:
            chunk = head
            while chunk:
                size += len(chunk)
                if size > max_bytes:
                    raise _too_large(max_bytes)
                await asyncio.to_thread(out.write, chunk)
                chunk = await upload.file.read(CHUNK)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    delete_on_rollback(session, target)
    return StoredVideo(relative, content_type, size)


def check_url(raw: str) -> str:
    """An external playback URL: http or https, a host, no credentials, no spaces, at most 500
    characters. 422 ``bad_video_url`` otherwise."""
    url = raw.strip()
    try:
        parts = urlsplit(url)
        ok = (
            parts.scheme in ("http", "https")
            and bool(parts.hostname)
            and parts.username is None
            and len(url) <= MAX_URL
            and not re.search(r"[\s\x00-\x1f\x7f]", url)
        )
        _ = parts.port  # a port that is not a number raises here
    except ValueError:
        ok = False
    if not ok:
        raise ValidationFailed(
            f"video_url: an http:// or https:// address of at most {MAX_URL} characters",
            field="video_url", code="bad_video_url",
        )  # fmt: skip
    return url


# --- files removed once a deletion commits ----------------------------------------------------

_DELETE_KEY = "trustlive_content_files_to_delete"


def _delete_after_commit(session: AsyncSession, paths: list[Path]) -> None:
    session.info.setdefault(_DELETE_KEY, []).extend(paths)


@sa_event.listens_for(Session, "after_commit")
def _delete_files(session: Session) -> None:
    for path in session.info.pop(_DELETE_KEY, []):
        path.unlink(missing_ok=True)


@sa_event.listens_for(Session, "after_rollback")
def _keep_files(session: Session) -> None:
    session.info.pop(_DELETE_KEY, None)  # the deletion did not happen: the files stay


# --- what a video may link ----------------------------------------------------------------------


def _fits(product_ids: Sequence[int]) -> list[int]:
    """The ids deduplicated in order, at most 20 of them (422 ``too_many_products``)."""
    ids = list(dict.fromkeys(product_ids))
    if len(ids) > MAX_PRODUCTS:
        raise ValidationFailed(
            f"product_ids: at most {MAX_PRODUCTS} products", field="product_ids", code="too_many_products"
        )
    return ids


async def check_products(session: AsyncSession, creator_id: int, product_ids: Sequence[int]) -> list[int]:
    """The products a video links: at most 20 (422 ``too_many_products``), each one the creator
    may sell, by the live domain's rule (``live.service.sellable_products``)."""
    return await live.sellable_products(session, creator_id, _fits(product_ids))


# --- reading ----------------------------------------------------------------------------------


def _visible(v: Video, viewer: Principal | None) -> bool:
    """Published videos are public; hidden and taken-down ones are seen by their creator and
    ops; deleted ones by nobody."""
    if v.status == S.published:
        return True
    if v.status == S.deleted or viewer is None:
        return False
    return viewer.id == v.creator_id or viewer.is_ops


async def _load(session: AsyncSession, viewer: Principal | None, video_id: int) -> Video:
    v = await repo.get_video(session, video_id)
    if v is None or not _visible(v, viewer):
        raise NotFound(f"video {video_id} not found", code="video_not_found")
    return v


async def _own(session: AsyncSession, actor: Principal, video_id: int) -> Video:
    """The actor's own video: 404 when they cannot see it, 403 ``not_your_video`` when they can
    but it is someone else's (ops included: they take videos down, they do not edit them)."""
    v = await _load(session, actor, video_id)
    if v.creator_id != actor.id:
        raise Forbidden("this is not your video", code="not_your_video")
    return v


def _media(path: str) -> str:
    return f"/media/{path}"


async def _outs(session: AsyncSession, rows: Sequence[Video], viewer: Principal | None) -> list[VideoOut]:
    ids = [v.id for v in rows]
    linked = await repo.products_of(session, ids)
    everything = [p for v in rows for p in linked.get(v.id, [])]
    cards = {c.id: c for c in await catalog.product_cards(session, everything)} if everything else {}
    names = await accounts.users_by_ids(session, sorted({v.creator_id for v in rows}))
    liked = await repo.liked_by(session, viewer.id, ids) if viewer is not None else set()
    out = []
    for v in rows:
        product_ids = linked.get(v.id, [])
        insider = viewer is not None and (viewer.id == v.creator_id or viewer.is_ops)
        creator = names.get(v.creator_id)
        out.append(VideoOut(
            id=v.id, creator_id=v.creator_id, creator_name=creator.display_name if creator else "",
            title=v.title, description=v.description, cover_url=_media(v.cover_path),
            playback_url=_media(v.video_path) if v.video_path else v.external_url or "",
            source="file" if v.video_path else "external", video_type=v.video_type, status=v.status,
            like_count=v.like_count, product_ids=product_ids,
            products=[cards[p] for p in product_ids if p in cards and cards[p].status == "published"],
            created_at=v.created_at, updated_at=v.updated_at,
            liked=(v.id in liked) if viewer is not None else None,
            taken_down_reason=v.taken_down_reason if insider else None,
        ))  # fmt: skip
    return out


async def _one(session: AsyncSession, v: Video, viewer: Principal | None) -> VideoOut:
    return (await _outs(session, [v], viewer))[0]


async def get_video(session: AsyncSession, viewer: Principal | None, video_id: int) -> VideoOut:
    """A video as ``viewer`` may see it (404 ``video_not_found`` otherwise)."""
    return await _one(session, await _load(session, viewer, video_id), viewer)


async def _require_creator(session: AsyncSession, creator_id: int) -> str:
    """The creator's display name; 404 ``creator_not_found`` unless the account is a creator's."""
    if "creator" not in await accounts.roles_of(session, creator_id):
        raise NotFound(f"creator {creator_id} not found", code="creator_not_found")
    user = (await accounts.users_by_ids(session, [creator_id])).get(creator_id)
    return user.display_name if user else ""


async def creator_videos(
    session: AsyncSession, viewer: Principal | None, creator_id: int, *, before_id: int | None, limit: int
) -> list[VideoOut]:
    """A creator's published videos, newest first (their public page). 404 for no such creator."""
    return (await creator_page(session, viewer, creator_id, before_id=before_id, limit=limit))[1]


async def creator_page(
    session: AsyncSession, viewer: Principal | None, creator_id: int, *, before_id: int | None, limit: int
) -> tuple[str, list[VideoOut]]:
    """The creator's name and published videos, newest first. 404 ``creator_not_found``."""
    name = await _require_creator(session, creator_id)
    rows = await repo.list_of_creator(
        session, creator_id, statuses=[S.published], before_id=before_id, limit=limit
    )
    return name, await _outs(session, rows, viewer)


async def my_videos(
    session: AsyncSession, actor: Principal, *, before_id: int | None, limit: int
) -> list[VideoOut]:
    """The creator's own videos in every status but deleted, newest first (their console)."""
    rows = await repo.list_of_creator(
        session, actor.id, statuses=[S.published, S.hidden, S.taken_down], before_id=before_id, limit=limit
    )
    return await _outs(session, rows, actor)


# --- for the feeds ----------------------------------------------------------------------------


def _card(v: Any) -> VideoCard:  # a Video or a repo.card_rows row
    return VideoCard(
        id=v.id, creator_id=v.creator_id, title=v.title, cover_url=_media(v.cover_path),
        created_at=v.created_at, like_count=v.like_count, status=v.status,
    )  # fmt: skip


def _limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST:
        raise ValidationFailed(f"limit: from 1 to {MAX_LIST}", field="limit")
    return limit


async def video_cards(session: AsyncSession, ids: Sequence[int]) -> dict[int, VideoCard]:
    """Cards of the given videos, whatever their status (``status`` says; the caller filters):
    id -> card, leaving out ids that do not exist."""
    return {v.id: _card(v) for v in await repo.card_rows(session, list(ids))}


async def recent_videos_of(
    session: AsyncSession, creator_ids: Sequence[int], *, limit: int, before: tuple | None = None
) -> list[VideoCard]:
    """Published videos of these creators (the follow feed), newest first by (created_at, id);
    ``before`` = (created_at, id) of the last card seen continues below it."""
    keyset: tuple[dt.datetime, int] | None = None
    if before is not None:
        at, video_id = before if isinstance(before, tuple) and len(before) == 2 else (None, None)
        if not isinstance(at, dt.datetime) or at.tzinfo is None or isinstance(video_id, bool) \
                or not isinstance(video_id, int):  # fmt: skip
            raise ValidationFailed("before: (aware created_at, id)", field="before", code="bad_cursor")
        keyset = (at, video_id)
    rows = await repo.recent_of(session, list(creator_ids), limit=_limit(limit), before=keyset)
    return [_card(v) for v in rows]


async def recent_videos(session: AsyncSession, *, since: dt.datetime, limit: int) -> list[VideoCard]:
    """The fresh pool of the discovery feed: published videos created at or after ``since``,
    newest first."""
    if not isinstance(since, dt.datetime) or since.tzinfo is None:
        raise ValidationFailed("since: an aware datetime", field="since")
    return [_card(v) for v in await repo.recent_since(session, since, limit=_limit(limit))]


# --- posting and editing ----------------------------------------------------------------------


def _title(raw: str) -> str:
    title = _CONTROL.sub("", raw).strip()
    if not title:
        raise ValidationFailed("title: required", field="title")
    if len(title) > MAX_TITLE:
        raise ValidationFailed(f"title: at most {MAX_TITLE} characters", field="title")
    return title


def _description(raw: str) -> str:
    text = _CONTROL_BUT_NEWLINE.sub("", raw.replace("\r\n", "\n")).strip()
    if len(text) > MAX_DESCRIPTION:
        raise ValidationFailed(f"description: at most {MAX_DESCRIPTION} characters", field="description")
    return text


def _payload(v: Video, **extra: object) -> dict[str, object]:
    return {"video_id": v.id, "creator_id": v.creator_id, "status": v.status, **extra}


async def create_video(
    session: AsyncSession,
    actor: Principal,
    data: VideoIn,
    cover: Upload | None,
    video: VideoUpload | None,
    *,
    media_dir: Path,
    max_upload_bytes: int,
    max_video_bytes: int,
) -> VideoOut:
    """A creator posts a video: published at once. 403 without the creator role; 422 for the
    fields, a missing cover, both or neither of a file and ``video_url`` (``video_source``), a
    bad URL (``bad_video_url``) or a product that cannot be linked; 409
    ``alliance_not_eligible``; 413 ``video_too_large``; 415 ``bad_video_type`` or a cover that is
    not an image. Every field is checked before anything is written; a refusal stores nothing."""
    if not actor.has("creator"):
        raise Forbidden("this needs the creator role", code="role_required")
    _fits(data.product_ids)
    data = validated(data)
    title, description = _title(data.title), _description(data.description)
    url = check_url(data.video_url) if data.video_url is not None and data.video_url.strip() else None
    if (video is None) == (url is None):
        which = "not both" if video is not None else "one of the two"
        message = f"upload a video file (MP4 or WebM) or give its video_url, {which}"
        raise ValidationFailed(f"video: {message}", fields=[FieldError("video", message),
                               FieldError("video_url", message)], code="video_source")  # fmt: skip
    if cover is None:
        raise ValidationFailed("cover: required (JPEG, PNG or WebP)", field="cover", code="cover_required")
    product_ids = await check_products(session, actor.id, data.product_ids)
    folder = f"videos/{actor.id}"
    written: list[Path] = []
    try:
        image = catalog.store_image(session, cover, media_dir, folder, max_upload_bytes, field="cover")
        written.append(media_dir / image.path)
        stored = await store_video(session, video, media_dir, folder, max_video_bytes) if video else None
        if stored is not None:
            written.append(media_dir / stored.path)
        now = utcnow()
        v = Video(
            creator_id=actor.id, title=title, description=description, cover_path=image.path,
            video_path=stored.path if stored else None, video_type=stored.content_type if stored else None,
            video_bytes=stored.byte_size if stored else None, external_url=url, status=S.published,
            like_count=0, created_at=now, updated_at=now,
        )  # fmt: skip
        session.add(v)
        await session.flush()
        await repo.set_products(session, v.id, product_ids)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    events.record(session, "content.video_published", _payload(
        v, first=True, product_ids=product_ids, created_at=v.created_at.isoformat()
    ))  # fmt: skip
    return await _one(session, v, actor)


async def edit_video(session: AsyncSession, actor: Principal, video_id: int, patch: VideoPatch) -> VideoOut:
    """The creator changes the title, the description or the linked products (the whole list,
    checked again by the linking rule). 422 ``nothing_to_change`` for an empty edit."""
    _fits(patch.product_ids or [])
    patch = validated(patch)
    if patch.title is None and patch.description is None and patch.product_ids is None:
        raise ValidationFailed("body: nothing to change", field="body", code="nothing_to_change")
    v = await _own(session, actor, video_id)
    if patch.title is not None:
        v.title = _title(patch.title)
    if patch.description is not None:
        v.description = _description(patch.description)
    if patch.product_ids is not None:
        await repo.set_products(session, v.id, await check_products(session, actor.id, patch.product_ids))
    v.updated_at = utcnow()
    await session.flush()
    return await _one(session, v, actor)


async def _move(
    session: AsyncSession, v: Video, from_statuses: Sequence[str], to: str, **values: object
) -> Video:
    moved = await repo.transition(session, v.id, from_statuses, status=to, updated_at=utcnow(), **values)
    if moved is None:
        current = await repo.get_video(session, v.id)
        status = current.status if current else "deleted"
        raise Conflict(f"the video is {status.replace('_', ' ')}: it cannot be {to.replace('_', ' ')} now",
                       code="invalid_transition")  # fmt: skip
    return moved


async def hide_video(session: AsyncSession, actor: Principal, video_id: int) -> VideoOut:
    """The creator takes a published video off (pages, lists and feeds stop showing it)."""
    v = await _own(session, actor, video_id)
    v = await _move(session, v, [S.published], S.hidden)
    events.record(session, "content.video_hidden", _payload(v, by=actor.id))
    return await _one(session, v, actor)


async def unhide_video(session: AsyncSession, actor: Principal, video_id: int) -> VideoOut:
    """The creator publishes a hidden video again; a video ops took down stays down (409
    ``taken_down``)."""
    v = await _own(session, actor, video_id)
    if v.status == S.taken_down:
        raise Conflict("the platform took this video down; only the platform can restore it",
                       code="taken_down")  # fmt: skip
    v = await _move(session, v, [S.hidden], S.published)
    events.record(session, "content.video_published", _payload(
        v, first=False, product_ids=(await repo.products_of(session, [v.id])).get(v.id, []),
        created_at=v.created_at.isoformat(),
    ))  # fmt: skip
    return await _one(session, v, actor)


async def delete_video(session: AsyncSession, actor: Principal, video_id: int, media_dir: Path) -> None:
    """The creator deletes a video: gone for everyone. Its uploaded file and cover are removed
    once the deletion commits (the row stays, status ``deleted``, for the records). A video ops
    took down stays as it is, with its files, for the platform's records (409 ``taken_down``)."""
    v = await _own(session, actor, video_id)
    if v.status == S.taken_down:
        raise Conflict("the platform took this video down; it is kept for the platform's records",
                       code="taken_down")  # fmt: skip
    was_visible = v.status == S.published
    v = await _move(session, v, [S.published, S.hidden], S.deleted)
    _delete_after_commit(session, [media_dir / p for p in (v.video_path, v.cover_path) if p is not None])
    if was_visible:
        events.record(session, "content.video_hidden", _payload(v, by=actor.id))


def _require_ops(actor: Principal) -> None:
    if not actor.is_ops:
        raise Forbidden("only the platform's ops can do this", code="ops_only")


async def take_down(session: AsyncSession, actor: Principal, video_id: int, data: TakeDownIn) -> VideoOut:
    """Ops take a published or hidden video down, with the reason the creator will read."""
    _require_ops(actor)
    data = validated(data)
    reason = _CONTROL.sub("", data.reason).strip()
    if not reason:
        raise ValidationFailed("reason: say why", field="reason")
    v = await _load(session, actor, video_id)
    was_visible = v.status == S.published
    v = await _move(session, v, [S.published, S.hidden], S.taken_down, taken_down_at=utcnow(),
                    taken_down_by_id=actor.id, taken_down_reason=reason)  # fmt: skip
    if was_visible:
        events.record(session, "content.video_hidden", _payload(v, by=actor.id, reason=reason))
    return await _one(session, v, actor)


async def restore(session: AsyncSession, actor: Principal, video_id: int) -> VideoOut:
    """Ops undo a take-down: the video is published again."""
    _require_ops(actor)
    v = await _load(session, actor, video_id)
    v = await _move(session, v, [S.taken_down], S.published, taken_down_at=None, taken_down_by_id=None,
                    taken_down_reason=None)  # fmt: skip
    events.record(session, "content.video_published", _payload(
        v, first=False, product_ids=(await repo.products_of(session, [v.id])).get(v.id, []),
        created_at=v.created_at.isoformat(),
    ))  # fmt: skip
    return await _one(session, v, actor)


# --- likes ------------------------------------------------------------------------------------


async def like(session: AsyncSession, actor: Principal, video_id: int) -> LikeOut:
    """Like a published video; liking it again changes nothing. The counter moves with the row,
    in the database, so concurrent likes are counted exactly."""
    v = await _load(session, actor, video_id)
    if v.status != S.published:
        raise Conflict("only a published video can be liked", code="video_not_published")
    if await repo.add_like(session, v.id, actor.id, utcnow()):
        count = await repo.bump_likes(session, v.id, +1)
        events.record(session, "content.video_liked", {
            "video_id": v.id, "creator_id": v.creator_id, "user_id": actor.id, "like_count": count,
        })  # fmt: skip
    else:
        count = await repo.like_count(session, v.id)
    return LikeOut(v.id, True, count)


async def unlike(session: AsyncSession, actor: Principal, video_id: int) -> LikeOut:
    """Take a like back; without one, nothing changes."""
    v = await _load(session, actor, video_id)
    if await repo.remove_like(session, v.id, actor.id):
        count = await repo.bump_likes(session, v.id, -1)
        events.record(session, "content.video_unliked", {
            "video_id": v.id, "creator_id": v.creator_id, "user_id": actor.id, "like_count": count,
        })  # fmt: skip
    else:
        count = await repo.like_count(session, v.id)
    return LikeOut(v.id, False, count)


# --- the console's product picker -------------------------------------------------------------


@dataclass(frozen=True)
class ProductChoices:
    own: list[ProductCard]  # published products of the creator's own shops
    others: list[ProductCard]  # other shops' published products (alliance), found or latest
    alliance_eligible: bool


async def product_choices(
    session: AsyncSession, actor: Principal, *, query: str = "", chosen: Sequence[int] = (), limit: int = 40
) -> ProductChoices:
    """What the video form offers to link: the products already chosen first, the creator's own
    shops' products, then other shops' (the search's results, or the latest)."""
    own: dict[int, ProductCard] = {}
    for shop in await catalog.shops_of_user(session, actor.id):
        if shop.status != "active":
            continue
        for card in await catalog.shop_products(session, actor, shop.id, after_id=None, limit=limit):
            own.setdefault(card.id, card)
    found = await catalog.search(session, query, limit=limit) if query else (
        await catalog.latest_products(session, limit))  # fmt: skip
    picked = [c for c in await catalog.product_cards(session, list(chosen)) if c.status == "published"]
    others: dict[int, ProductCard] = {}
    for card in [*picked, *found]:
        if card.id not in own and card.status == "published":
            others.setdefault(card.id, card)
    first = [own.pop(c.id) for c in picked if c.id in own]
    return ProductChoices(
        [*first, *own.values()], list(others.values()), await trust.alliance_eligible(session, actor.id)
    )
