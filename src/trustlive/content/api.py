"""JSON routes of the content domain: thin wrappers over content.service.

A video is posted as ``multipart/form-data``: the fields ``title``, ``description``,
``product_ids`` (repeated, or one comma-separated field) and ``video_url``, and the files
``cover`` (JPEG, PNG or WebP) and ``video`` (MP4 or WebM). The upload routes accept bodies up to
``VIDEO_REQUEST_CEILING`` at the framework (the app's default is 12 MB); the configured
``TRUSTLIVE_MAX_VIDEO_BYTES`` is enforced here, first on the announced length, then while the file
is copied.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, delete, get, patch, post, put
from litestar.datastructures import FormMultiDict, UploadFile
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.accounts.service import Principal
from trustlive.catalog.service import Upload
from trustlive.config import Settings
from trustlive.content import service
from trustlive.content.schemas import LikeOut, TakeDownIn, VideoIn, VideoOut, VideoPage, VideoPatch
from trustlive.errors import PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from trustlive.web.forms import parse, text, to_upload
from trustlive.web.pagination import DEFAULT_LIMIT, MAX_LIMIT, before_id, trim_page
from trustlive.web.policy import allow, public, signed_in

Limit = Annotated[int, Parameter(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str | None, Parameter(max_length=200)]
TAGS = ["content"]

FORM_SLACK = 1024 * 1024  # the text fields and multipart framing around the two files
# What the framework lets through to the upload routes: the largest video the setting allows
# (2 GiB), a cover and the form around them. The configured limits are checked below it.
VIDEO_REQUEST_CEILING = 2 * 1024**3 + 64 * 1024 * 1024
VIDEO_FIELDS = ("title", "description", "video_url")


def _file(value: Any) -> UploadFile | None:
    return value if isinstance(value, UploadFile) and value.filename else None


def _video_upload(file: UploadFile) -> service.VideoUpload:
    """The spooled upload read in chunks by the service; its size is known without reading it."""
    file.file.seek(0, 2)
    size = file.file.tell()
    file.file.seek(0)
    return service.VideoUpload(file.filename or "video", file, size)


def product_ids_of(form: Any) -> list[int]:
    """``product_ids`` of a form (a parsed multipart form or a dict of fields) as repeated fields
    or one comma-separated field."""
    if isinstance(form, FormMultiDict):
        values = form.getall("product_ids") if "product_ids" in form else []
    else:
        value = form.get("product_ids", [])
        values = value if isinstance(value, list) else [value]
    raw = [v for v in values if isinstance(v, str)]
    try:
        return [int(p) for v in raw for p in v.split(",") if p.strip()]
    except ValueError:
        raise ValidationFailed("product_ids: whole numbers", field="product_ids") from None


async def read_video_form(
    request: Request[Any, Any, Any], settings: Settings
) -> tuple[FormMultiDict, Upload | None, service.VideoUpload | None]:
    """The posted form, its cover (read, at most the image limit) and its video (spooled by the
    framework, copied by the service). A body announced larger than a video, a cover and the
    form can be is refused before anything is read: 413 ``video_too_large``."""
    if request.content_type[0] != "multipart/form-data":
        raise UnsupportedMediaType("send multipart/form-data with the cover and the video (or video_url)")
    announced = request.content_length
    if (
        announced is not None
        and announced > settings.max_video_bytes + settings.max_upload_bytes + FORM_SLACK
    ):
        raise PayloadTooLarge(
            f"video: larger than {settings.max_video_bytes // (1024 * 1024)} MB", field="video",
            code="video_too_large",
        )  # fmt: skip
    form = await request.form()
    cover = _file(form.get("cover"))
    video = _file(form.get("video"))
    return (
        form,
        await to_upload(cover, settings.max_upload_bytes) if cover else None,
        _video_upload(video) if video else None,
    )


@post("/videos", status_code=201, tags=TAGS, request_max_body_size=VIDEO_REQUEST_CEILING, **allow("creator"))
async def create_video(
    request: Request[Any, Any, Any], me: Principal, db: AsyncSession, settings: Settings
) -> VideoOut:
    """Post a video (multipart): `title` (1-80 characters), `description` (at most 1000),
    `product_ids` (0-20 products you may sell), a `cover` image, and EITHER a `video` file (MP4 or
    WebM, at most `TRUSTLIVE_MAX_VIDEO_BYTES`) OR a `video_url` (http/https, at most 500
    characters). 422 `video_source` (both or neither), `bad_video_url`, `cover_required`,
    `product_not_available`, `too_many_products`; 409 `alliance_not_eligible`; 413
    `video_too_large`; 415 `bad_video_type` or a cover that is not an image."""
    form, cover, video = await read_video_form(request, settings)
    try:
        fields: dict[str, Any] = {k: text(form, k) for k in VIDEO_FIELDS if isinstance(form.get(k), str)}
        fields["product_ids"] = product_ids_of(form)
        if not fields.get("video_url"):
            fields.pop("video_url", None)
        data = parse(VideoIn, fields)
        return await service.create_video(
            db, me, data, cover, video, media_dir=settings.media_dir,
            max_upload_bytes=settings.max_upload_bytes, max_video_bytes=settings.max_video_bytes,
        )  # fmt: skip
    finally:
        await form.close()


@get("/videos/{video_id:int}", tags=TAGS, **public())
async def get_video(video_id: int, db: AsyncSession, viewer: Principal | None) -> VideoOut:
    """A published video (hidden and taken-down ones: their creator and ops), with its linked
    products that are on sale and, for a signed-in viewer, whether they like it."""
    return await service.get_video(db, viewer, video_id)


@patch("/videos/{video_id:int}", tags=TAGS, **allow("creator"))
async def edit_video(video_id: int, data: VideoPatch, me: Principal, db: AsyncSession) -> VideoOut:
    """Edit your video: `title`, `description`, `product_ids` (the whole list); what is not sent
    stays. 403 `not_your_video`; 422 `nothing_to_change`."""
    return await service.edit_video(db, me, video_id, data)


@delete("/videos/{video_id:int}", status_code=204, tags=TAGS, **allow("creator"))
async def delete_video(video_id: int, me: Principal, db: AsyncSession, settings: Settings) -> None:
    """Delete your video: gone for everyone; its files are removed. 409 `taken_down` for a video
    ops took down."""
    await service.delete_video(db, me, video_id, settings.media_dir)


@post("/videos/{video_id:int}/hide", status_code=200, tags=TAGS, **allow("creator"))
async def hide_video(video_id: int, me: Principal, db: AsyncSession) -> VideoOut:
    """Take your published video off the pages and feeds (409 `invalid_transition` otherwise)."""
    return await service.hide_video(db, me, video_id)


@post("/videos/{video_id:int}/unhide", status_code=200, tags=TAGS, **allow("creator"))
async def unhide_video(video_id: int, me: Principal, db: AsyncSession) -> VideoOut:
    """Publish your hidden video again (409 `taken_down` when ops took it down)."""
    return await service.unhide_video(db, me, video_id)


@post("/videos/{video_id:int}/take-down", status_code=200, tags=TAGS, **allow("ops"))
async def take_down(video_id: int, data: TakeDownIn, me: Principal, db: AsyncSession) -> VideoOut:
    """Ops take a video down, with a `reason` (1-200 characters) its creator reads."""
    return await service.take_down(db, me, video_id, data)


@post("/videos/{video_id:int}/restore", status_code=200, tags=TAGS, **allow("ops"))
async def restore(video_id: int, me: Principal, db: AsyncSession) -> VideoOut:
    """Ops publish a video they took down again."""
    return await service.restore(db, me, video_id)


@put("/videos/{video_id:int}/like", tags=TAGS, **signed_in())
async def like(video_id: int, me: Principal, db: AsyncSession) -> LikeOut:
    """Like a published video (again: no change). 409 `video_not_published`."""
    return await service.like(db, me, video_id)


@delete("/videos/{video_id:int}/like", status_code=200, tags=TAGS, **signed_in())
async def unlike(video_id: int, me: Principal, db: AsyncSession) -> LikeOut:
    """Take your like back (none: no change)."""
    return await service.unlike(db, me, video_id)


@get("/creators/{creator_id:int}/videos", tags=TAGS, **public())
async def creator_videos(
    creator_id: int, db: AsyncSession, viewer: Principal | None, limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> VideoPage:  # fmt: skip
    """A creator's published videos, newest first. 404 `creator_not_found`."""
    items = await service.creator_videos(db, viewer, creator_id, before_id=before_id(cursor), limit=limit + 1)
    return VideoPage(*trim_page(items, limit))


@get("/me/videos", tags=TAGS, **allow("creator"))
async def my_videos(
    me: Principal, db: AsyncSession, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> VideoPage:
    """Your videos in every status but deleted (published, hidden, taken down), newest first."""
    items = await service.my_videos(db, me, before_id=before_id(cursor), limit=limit + 1)
    return VideoPage(*trim_page(items, limit))


routes = [
    create_video, get_video, edit_video, delete_video, hide_video, unhide_video, take_down, restore,
    like, unlike, creator_videos, my_videos,
]  # fmt: skip
