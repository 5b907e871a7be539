"""HTML routes of short videos: the video page (play, like, buy the linked products), a
creator's videos (a page, and the grid their creator page loads), and the creator's console
(list, post, edit, hide, delete). Ops take a video down from its page. Thin: parse the form into
the API's structs, call content.service, render.

A buy link on a video page is the product page with ``source=short_video&creator=<creator id>``:
the product page carries both into its buy form, so the order line records where the sale came
from. Forms re-render with the error and what the user typed when the user can fix it (409, 413,
415, 422); refusals and missing things get the error page.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.accounts.service import Principal
from trustlive.config import Settings
from trustlive.content import service
from trustlive.content.api import VIDEO_REQUEST_CEILING, product_ids_of, read_video_form
from trustlive.content.models import MAX_DESCRIPTION, MAX_PRODUCTS, MAX_REASON, MAX_TITLE, MAX_URL
from trustlive.content.schemas import TakeDownIn, VideoIn, VideoOut, VideoPatch
from trustlive.errors import DomainError, Forbidden, ValidationFailed
from trustlive.web.forms import bad_fields, fixable, invalid, parse, readable, text
from trustlive.web.i18n import N_, gettext
from trustlive.web.pagination import before_id, trim_page
from trustlive.web.policy import allow, public, signed_in
from trustlive.web.validation import MAX_ID

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
Cursor = Annotated[str | None, Parameter(max_length=200)]
Short = Annotated[str, Parameter(max_length=100)]

PAGE_SIZE = 20
GRID_SIZE = 12  # videos on a creator's page before "More"
PRODUCT_CHOICES = 20

# What the pages say for the service's refusals (the JSON API keeps the service's English).
ERROR_TEXT = {
    "video_not_found": N_("We could not find that video."),
    "creator_not_found": N_("We could not find that creator."),
    "not_your_video": N_("This is not your video."),
    "video_source": N_("Upload a video file (MP4 or WebM) or give its web address: one of the two."),
    "bad_video_url": N_("The video address must start with http:// or https:// (at most 500 characters)."),
    "bad_video_type": N_("The video must be an MP4 or WebM file."),
    "video_too_large": N_("The video file is too large."),
    "cover_required": N_("Choose a cover picture (JPEG, PNG or WebP)."),
    "product_not_available": N_("A product you chose is not available."),
    "too_many_products": N_("Link at most 20 products."),
    "alliance_not_eligible": N_(
        "Your reputation score is below what other shops' products need: link your own shop's products."
    ),
    "nothing_to_change": N_("Change something first."),
    "taken_down": N_("The platform took this video down."),
    "video_not_published": N_("Only a published video can be liked."),
    "invalid_transition": N_("That cannot be done to the video now."),
}

SAVED_TEXT = {
    "posted": N_("Your video is published."),
    "saved": N_("Changes saved."),
    "hidden": N_("The video is hidden."),
    "unhidden": N_("The video is published again."),
    "deleted": N_("The video is deleted."),
    "taken_down": N_("The video is taken down."),
    "restored": N_("The video is published again."),
}

STATUS_TEXT = {
    "published": N_("Published"),
    "hidden": N_("Hidden"),
    "taken_down": N_("Taken down"),
}


def _readable(err: DomainError) -> DomainError:
    return readable(err, ERROR_TEXT)


def _fixable(err: DomainError) -> DomainError:
    return fixable(_readable(err))


def _is_htmx(request: Request[Any, Any, Any]) -> bool:
    return request.headers.get("hx-request") == "true"


def buy_url(video: VideoOut, product_id: int) -> str:
    """The product page, attributed to the video's creator with source ``short_video``."""
    return f"/p/{product_id}?source=short_video&creator={video.creator_id}"


# --- the video page ---------------------------------------------------------------------------


async def _video_page(db: AsyncSession, viewer: Principal | None, video_id: int, **extra: Any) -> Template:
    try:
        video = await service.get_video(db, viewer, video_id)
    except DomainError as err:
        raise _readable(err) from None
    status = extra.pop("status_code", 200)
    context = {
        "v": video,
        "buy_urls": {p.id: buy_url(video, p.id) for p in video.products},
        "mine": viewer is not None and viewer.id == video.creator_id,
        "is_ops": viewer is not None and viewer.is_ops,
        "status_text": STATUS_TEXT,
        "max_reason": MAX_REASON,
        "error": None,
        "bad": set(),
        "typed": "",
        "saved": None,
        "saved_text": SAVED_TEXT,
        **extra,
    }
    return Template("content/video.html", context=context, status_code=status)


@get("/videos/{video_id:int}", **public())
async def video_page(
    video_id: int, db: AsyncSession, viewer: Principal | None, saved: Short = ""
) -> Template:
    """A short video: the player (the cover when it cannot play), its creator, likes, and the
    linked products with their buy links."""
    return await _video_page(db, viewer, video_id, saved=saved if saved in SAVED_TEXT else None)


@post("/videos/{video_id:int}/like", **signed_in())
async def like(
    video_id: int, data: Form, db: AsyncSession, me: Principal, request: Request[Any, Any, Any]
) -> Template | Redirect:
    """Like (``action`` like) or unlike (``action`` unlike). htmx swaps the button in place;
    without JavaScript the page reloads at the button."""
    action = text(data, "action")
    try:
        if action not in ("like", "unlike"):
            raise invalid("action", gettext("like or unlike"))
        out = await (service.like if action == "like" else service.unlike)(db, me, video_id)
    except DomainError as err:
        await db.rollback()
        raise _readable(err) from None
    if _is_htmx(request):
        return Template(
            "content/_like.html",
            context={"video_id": video_id, "liked": out.liked, "like_count": out.like_count},
        )
    return Redirect(f"/videos/{video_id}#like", status_code=303)


@post("/videos/{video_id:int}/take-down", **allow("ops"))
async def take_down(video_id: int, data: Form, db: AsyncSession, me: Principal) -> Template | Redirect:
    """Ops take the video down with a reason its creator reads."""
    reason = text(data, "reason")
    try:
        try:
            body = parse(TakeDownIn, {"reason": reason})
        except ValidationFailed:
            message = gettext("Say why, in at most %(n)s characters.") % {"n": MAX_REASON}
            raise invalid("reason", message) from None
        await service.take_down(db, me, video_id, body)
    except DomainError as err:
        await db.rollback()
        _fixable(err)
        return await _video_page(
            db, me, video_id, error=err, bad=bad_fields(err), typed=reason, status_code=err.status_code
        )
    return Redirect(f"/videos/{video_id}?saved=taken_down", status_code=303)


@post("/videos/{video_id:int}/restore", **allow("ops"))
async def restore(video_id: int, db: AsyncSession, me: Principal) -> Template | Redirect:
    try:
        await service.restore(db, me, video_id)
    except DomainError as err:
        await db.rollback()
        _fixable(err)
        return await _video_page(db, me, video_id, error=err, status_code=err.status_code)
    return Redirect(f"/videos/{video_id}?saved=restored", status_code=303)


# --- a creator's videos -----------------------------------------------------------------------


@get("/creators/{creator_id:int}/videos", **public())
async def creator_videos(
    creator_id: int, db: AsyncSession, viewer: Principal | None, request: Request[Any, Any, Any],
    cursor: Cursor = None,
) -> Template:  # fmt: skip
    """The creator's published videos, newest first: the page, or (for htmx: the creator page
    loads it) the grid alone."""
    size = GRID_SIZE if _is_htmx(request) else PAGE_SIZE
    try:
        name, items = await service.creator_page(
            db, viewer, creator_id, before_id=before_id(cursor), limit=size + 1
        )
    except DomainError as err:
        raise _readable(err) from None
    videos, next_cursor = trim_page(items, size)
    context = {
        "videos": videos,
        "next_cursor": next_cursor,
        "creator_id": creator_id,
        "creator_name": name,
        "is_me": viewer is not None and viewer.id == creator_id,
        "fragment": _is_htmx(request),
    }
    template = "content/_grid.html" if _is_htmx(request) else "content/creator_videos.html"
    return Template(template, context=context)


# --- the creator's console --------------------------------------------------------------------


@get("/console/videos", **allow("creator"))
async def console_videos(
    db: AsyncSession, me: Principal, cursor: Cursor = None, saved: Short = ""
) -> Template:
    """The creator's videos (published, hidden, taken down) with what can be done to each."""
    return await _console_list(db, me, cursor, saved=saved if saved in SAVED_TEXT else None)


async def _console_list(db: AsyncSession, me: Principal, cursor: str | None = None, **extra: Any) -> Template:
    try:
        items = await service.my_videos(db, me, before_id=before_id(cursor), limit=PAGE_SIZE + 1)
    except DomainError as err:
        raise _readable(err) from None
    videos, next_cursor = trim_page(items, PAGE_SIZE)
    status = extra.pop("status_code", 200)
    context = {
        "videos": videos,
        "next_cursor": next_cursor,
        "status_text": STATUS_TEXT,
        "saved": None,
        "saved_text": SAVED_TEXT,
        "error": None,
        "error_video": None,
        **extra,
    }
    return Template("content/console.html", context=context, status_code=status)


async def _form_page(
    db: AsyncSession, me: Principal, video: VideoOut | None, q: str = "", settings: Settings | None = None,
    **extra: Any,
) -> Template:  # fmt: skip
    form = extra.get("form") or (
        {"title": video.title, "description": video.description, "product_ids": video.product_ids}
        if video
        else {}
    )
    chosen = list(form.get("product_ids") or [])
    choices = await service.product_choices(db, me, query=q, chosen=chosen, limit=PRODUCT_CHOICES)
    status = extra.pop("status_code", 200)
    context = {
        "video": video,
        "choices": choices,
        "chosen": set(chosen),
        "q": q,
        "error": None,
        "bad": set(),
        "saved": None,
        "saved_text": SAVED_TEXT,
        "max_title": MAX_TITLE,
        "max_description": MAX_DESCRIPTION,
        "max_url": MAX_URL,
        "max_products": MAX_PRODUCTS,
        "max_video_mb": settings.max_video_bytes // (1024 * 1024) if settings else 0,
        "status_text": STATUS_TEXT,
        **extra,
        "form": form,
    }
    return Template("content/form.html", context=context, status_code=status)


def _checked_ids(data: Any) -> list[int]:
    """The ticked products of the form (``product_ids``, repeated)."""
    try:
        ids = product_ids_of(data)
    except ValidationFailed:
        raise invalid("product_ids", gettext("choose products from the list")) from None
    if any(not 1 <= i <= MAX_ID for i in ids):
        raise invalid("product_ids", gettext("choose products from the list"))
    return list(dict.fromkeys(ids))


def _bad(err: DomainError) -> set[str]:
    return {"product_ids" if f.startswith("product_ids") else f for f in bad_fields(err)}


@get("/console/videos/new", **allow("creator"))
async def new_video_page(db: AsyncSession, me: Principal, settings: Settings, q: Short = "") -> Template:
    """The form to post a video: title, description, cover, the file or its address, products."""
    return await _form_page(db, me, None, q.strip(), settings)


@post("/console/videos", request_max_body_size=VIDEO_REQUEST_CEILING, **allow("creator"))
async def post_video(
    request: Request[Any, Any, Any], db: AsyncSession, me: Principal, settings: Settings
) -> Template | Redirect:
    """Post the video; back to the form with the error when something is wrong."""
    typed: dict[str, Any] = {"title": "", "description": "", "video_url": "", "product_ids": []}
    q = ""
    try:
        form, cover, video = await read_video_form(request, settings)
        try:
            typed.update({k: text(form, k) for k in ("title", "description", "video_url")})
            q = text(form, "q")
            typed["product_ids"] = _checked_ids(form)
            fields = {k: typed[k] for k in ("title", "description", "product_ids")}
            if typed["video_url"]:
                fields["video_url"] = typed["video_url"]
            created = await service.create_video(
                db, me, parse(VideoIn, fields), cover, video, media_dir=settings.media_dir,
                max_upload_bytes=settings.max_upload_bytes, max_video_bytes=settings.max_video_bytes,
            )  # fmt: skip
        finally:
            await form.close()
    except DomainError as err:
        await db.rollback()
        _fixable(err)
        return await _form_page(
            db, me, None, q, settings, form=typed, error=err, bad=_bad(err), status_code=err.status_code
        )
    return Redirect(f"/videos/{created.id}?saved=posted", status_code=303)


async def _my_video(db: AsyncSession, me: Principal, video_id: int) -> VideoOut:
    try:
        video = await service.get_video(db, me, video_id)
    except DomainError as err:
        raise _readable(err) from None
    if video.creator_id != me.id:
        raise _readable(Forbidden("this is not your video", code="not_your_video"))
    return video


@get("/console/videos/{video_id:int}", **allow("creator"))
async def edit_video_page(
    video_id: int, db: AsyncSession, me: Principal, q: Short = "", saved: Short = ""
) -> Template:
    """Edit a video's title, description and products; hide, publish again or delete it."""
    video = await _my_video(db, me, video_id)
    return await _form_page(db, me, video, q.strip(), saved=saved if saved in SAVED_TEXT else None)


@post("/console/videos/{video_id:int}", **allow("creator"))
async def edit_video(video_id: int, data: Form, db: AsyncSession, me: Principal) -> Template | Redirect:
    """Save the edit form: title, description and the ticked products (none ticked: none linked)."""
    typed: dict[str, Any] = {"title": text(data, "title"), "description": text(data, "description")}
    typed["product_ids"] = []
    try:
        typed["product_ids"] = _checked_ids(data)
        patch = parse(VideoPatch, typed)
        await service.edit_video(db, me, video_id, patch)
    except DomainError as err:
        await db.rollback()
        _fixable(err)
        video = await _my_video(db, me, video_id)
        return await _form_page(
            db, me, video, text(data, "q"), form=typed, error=err, bad=_bad(err), status_code=err.status_code
        )
    return Redirect(f"/console/videos/{video_id}?saved=saved", status_code=303)


async def _lifecycle(
    db: AsyncSession, me: Principal, video_id: int, action: str, settings: Settings
) -> Template | Redirect:
    try:
        if action == "hide":
            await service.hide_video(db, me, video_id)
        elif action == "unhide":
            await service.unhide_video(db, me, video_id)
        else:
            await service.delete_video(db, me, video_id, settings.media_dir)
    except DomainError as err:
        await db.rollback()
        _fixable(err)
        return await _console_list(db, me, error=err, error_video=video_id, status_code=err.status_code)
    saved = {"hide": "hidden", "unhide": "unhidden", "delete": "deleted"}[action]
    return Redirect(f"/console/videos?saved={saved}", status_code=303)


@post("/console/videos/{video_id:int}/hide", **allow("creator"))
async def hide(video_id: int, db: AsyncSession, me: Principal, settings: Settings) -> Template | Redirect:
    return await _lifecycle(db, me, video_id, "hide", settings)


@post("/console/videos/{video_id:int}/unhide", **allow("creator"))
async def unhide(video_id: int, db: AsyncSession, me: Principal, settings: Settings) -> Template | Redirect:
    return await _lifecycle(db, me, video_id, "unhide", settings)


@post("/console/videos/{video_id:int}/delete", **allow("creator"))
async def delete(video_id: int, db: AsyncSession, me: Principal, settings: Settings) -> Template | Redirect:
    return await _lifecycle(db, me, video_id, "delete", settings)


routes = [
    video_page, like, take_down, restore, creator_videos, console_videos, new_video_page, post_video,
    edit_video_page, edit_video, hide, unhide, delete,
]  # fmt: skip
