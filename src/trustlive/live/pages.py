"""HTML routes of live rooms: the viewer page, the live-now list, the replay, and the creator
console (schedule, start, end; during the session: pin, flash sale, moderation). Thin: parse the
form into the API's structs, call live.service, render.

The viewer page is rendered whole by the server (session, pinned card, sale, latest comments), so it
is useful before its socket connects and without JavaScript; ``static/live.js`` keeps it live over
the room's WebSocket (docs/live-protocol.md). Forms re-render with the error in place when the user
can fix it (409, 413, 415, 422); refusals and missing things get the error page.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import time
from typing import Annotated, Any

import msgspec
from litestar import get, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.accounts import service as accounts
from trustlive.accounts.service import Principal
from trustlive.catalog import service as catalog
from trustlive.config import Settings
from trustlive.errors import DomainError, Forbidden, NotFound, ValidationFailed
from trustlive.live import service
from trustlive.live.hub import Hub
from trustlive.live.schemas import BlocklistIn, CostreamIn, FlashSaleIn, LiveOrderIn, SaleOut, SessionIn
from trustlive.orders import service as orders
from trustlive.web.forms import bad_fields, fixable, integer, invalid, parse, readable, text, to_upload
from trustlive.web.i18n import N_, gettext
from trustlive.web.pagination import before_id, trim_page
from trustlive.web.policy import allow, public, signed_in
from trustlive.web.templating import UI_TZ
from trustlive.web.validation import MAX_ID

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
Multipart = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)]
Cursor = Annotated[str | None, Parameter(max_length=200)]
Short = Annotated[str, Parameter(max_length=100)]

PAGE_SIZE = 20
LIST_SIZE = 30
FIRST_COMMENTS = 30
CONSOLE_COMMENTS = 50
PRODUCT_CHOICES = 40

# What the pages say for the service's refusals (the JSON API keeps the service's English).
ERROR_TEXT = {
    "sold_out": N_("Sold out: the flash sale has no stock left."),
    "limit_exceeded": N_("That is more than the flash sale allows per buyer."),
    "sale_ended": N_("The flash sale has ended."),
    "not_live": N_("This session is not live."),
    "banned": N_("You are banned from this room."),
    "not_featured": N_("That product is not featured in this live."),
    "already_live": N_("You are live already: end that session first."),
    "not_scheduled": N_("Only a scheduled session can do that."),
    "not_ended": N_("The replay is ready when the live has ended."),
    "nothing_pinned": N_("Pin a product first."),
    "sale_running": N_("A flash sale is running: stop it first."),
    "no_sale": N_("No flash sale is running."),
    "sku_not_pinned": N_("Choose a variant of the pinned product."),
    "allocation_exceeds_stock": N_("The allocation cannot be more than the variant's stock."),
    "product_not_available": N_("That product is not available."),
    "product_pinned": N_("Unpin the product before removing it."),
    "flash_sale_restricted": N_(
        "This shop ships too many orders late: new flash sales are blocked until it catches up."
    ),
    "alliance_not_eligible": N_(
        "Your reputation score is below what other shops' products need: feature your own shop's products."
    ),
    "cannot_moderate_creator": N_("The creator cannot be muted or banned."),
    "not_moderator": N_("Only the creator and the room's moderators can do this."),
    "not_your_session": N_("This is not your live session."),
    "session_not_found": N_("We could not find that live session."),
    "user_not_found": N_("We could not find that user."),
    "comment_not_found": N_("We could not find that comment."),
    "moderator_not_found": N_("That user is not one of your moderators."),
    "mute_not_found": N_("That user is not muted."),
    "ban_not_found": N_("That user is not banned."),
    "not_creator": N_("Only the creator can mute or ban a moderator."),
    "partner_not_live": N_("That creator's session is not live."),
    "already_linked": N_("One of the two sessions is already co-streaming."),
    "cannot_costream_self": N_("Invite another creator's live session."),
    "costream_not_found": N_("We could not find that co-stream."),
    "not_invitee": N_("Only the invited creator can answer."),
    "not_invited": N_("That invitation is no longer open."),
    "not_open": N_("That co-stream is over already."),
}

SAVED_TEXT = {
    "scheduled": N_("Session scheduled."),
    "started": N_("You are live."),
    "ended": N_("The live has ended. The replay is ready."),
    "cancelled": N_("Session cancelled."),
    "pinned": N_("Product pinned."),
    "unpinned": N_("Product unpinned."),
    "sale": N_("Flash sale started."),
    "sale_stopped": N_("Flash sale stopped."),
    "muted": N_("User muted."),
    "unmuted": N_("User unmuted."),
    "banned": N_("User banned."),
    "unbanned": N_("User unbanned."),
    "deleted": N_("Comment deleted."),
    "moderators": N_("Moderators saved."),
    "blocklist": N_("Blocked words saved."),
    "costream_invited": N_("Invitation sent."),
    "costream": N_("Co-stream updated."),
}


def _readable(err: DomainError) -> DomainError:
    return readable(err, ERROR_TEXT)


def _fixable(err: DomainError) -> DomainError:
    return fixable(_readable(err))


def _labels() -> dict[str, str]:
    """The strings live.js shows, in the reader's language ({name} etc. are filled in by it)."""
    return {
        "connecting": gettext("Connecting…"),
        "reconnecting": gettext("Reconnecting…"),
        "not_sent": gettext("Not sent: the connection was lost. Try again."),
        "error": gettext("Something went wrong. Try again."),
        "stock_left": gettext("Stock left"),
        "sale_left": gettext("Flash-sale stock left"),
        "limit": gettext("Limit %(n)s per buyer") % {"n": "{n}"},
        "sold_out": gettext("Sold out"),
        "grab": gettext("Grab it"),
        "buy": gettext("Buy now"),
        "bought": gettext("Ordered! Pay within 15 minutes to keep it."),
        "pay_now": gettext("Pay now"),
        "just_bought": gettext("%(name)s just bought %(title)s ×%(q)s")
        % {"name": "{name}", "title": "{title}", "q": "{q}"},
        "more_bought": gettext("%(n)s more just bought") % {"n": "{n}"},
        "badge_creator": gettext("Creator"),
        "badge_moderator": gettext("Moderator"),
        "delete": gettext("Delete"),
        "mute": gettext("Mute 10 min"),
        "ban": gettext("Ban"),
        "error_sign_in_required": gettext("Sign in to comment."),
        "error_rate_limited": gettext("You are commenting too fast: wait a moment."),
        "error_muted": gettext("You are muted in this room for now."),
        "error_banned": gettext("You are banned from this room."),
        "error_blocked_word": gettext("Your comment has a word this room does not allow."),
        "error_too_long": gettext("That comment is too long."),
        "error_empty": gettext("Write something first."),
        "error_bad_frame": gettext("That could not be sent."),
        "error_too_many_bad_frames": gettext("The connection was closed. Reload the page."),
        "error_shutdown": gettext("The server is restarting. Reconnecting…"),
        "costream_with": gettext("Co-streaming with %(name)s") % {"name": "{name}"},
        "costream_invite": gettext("%(name)s invites you to co-stream (share %(pct)s%%)")
        % {"name": "{name}", "pct": "{pct}"},
        "card_orders": gettext("%(n)s orders · spent %(spent)s") % {"n": "{n}", "spent": "{spent}"},
        "card_last_visit": gettext("Last visit: %(time)s") % {"time": "{time}"},
        "card_first_visit": gettext("First visit"),
        "card_bought": gettext("Bought: %(options)s") % {"options": "{options}"},
        "card_notes": gettext("Private notes"),
        "card_save": gettext("Save notes"),
        "card_saved": gettext("Saved"),
        "costream_accept": gettext("Accept"),
        "costream_decline": gettext("Decline"),
        **{f"error_{code}": gettext(message) for code, message in ERROR_TEXT.items()},
    }


def _sale_state(sale: SaleOut | None) -> dict[str, Any] | None:
    """A running sale as the room's P0 ``sale`` carries it (live.js reads one shape)."""
    if sale is None or sale.status != "running":
        return None
    return {
        "id": sale.id, "sku_id": sale.sku_id, "product_id": sale.product_id, "allocation": sale.allocation,
        "left": sale.left, "limit": sale.limit, "ends_at": sale.ends_at.isoformat(),
        "ends_ms": int(sale.ends_at.timestamp() * 1000),
    }  # fmt: skip


def _new_key() -> str:
    return secrets.token_urlsafe(24)


# --- the viewer page --------------------------------------------------------------------------


async def _room_page(
    db: AsyncSession, viewer: Principal | None, session_id: int, hub: Hub, settings: Settings, **extra: Any
) -> Template:
    view = await service.viewer_view(db, viewer, session_id, hub.snapshot_state(session_id))
    s = view.session
    comments = []
    if s.status in ("live", "ended"):
        comments = await service.list_comments(db, viewer, s.id, before_id=None, limit=FIRST_COMMENTS)
        comments = [c for c in reversed(comments) if not c.deleted]
    addresses = await orders.list_addresses(db, viewer) if viewer is not None and s.status == "live" else []
    status = extra.pop("status_code", 200)
    viewers = view.state.get("viewers")
    context = {
        "view": view,
        "s": s,
        "pin_json": msgspec.to_builtins(view.pin) if view.pin else None,
        "sale_json": _sale_state(view.sale),
        "comments": comments,
        "addresses": addresses,
        "viewers": viewers if isinstance(viewers, int) else hub.viewer_count(s.id),
        "server_now": int(time.time() * 1000),
        "labels": _labels(),
        "max_chars": settings.live_comment_max_chars,
        "idempotency_key": _new_key(),
        "here_path": f"/live/{s.id}",
        "form": {},
        "error": None,
        "bad": set(),
        **extra,
    }
    return Template("live/room.html", context=context, status_code=status)


@get("/live/{session_id:int}", **public())
async def room_page(
    session_id: int, db: AsyncSession, viewer: Principal | None, live_hub: Hub, settings: Settings
) -> Template:
    """A live room: the video, comments, the pinned card with its flash sale, buying, likes."""
    try:
        return await _room_page(db, viewer, session_id, live_hub, settings)
    except DomainError as err:
        raise _readable(err) from None


@post("/live/{session_id:int}/buy", **signed_in())
async def buy(
    session_id: int, data: Form, db: AsyncSession, me: Principal, live_hub: Hub, settings: Settings,
    order_policy: orders.OrderPolicy,
) -> Template | Redirect:  # fmt: skip
    """Buy from the pinned card without JavaScript (live.js uses the JSON route, same service)."""
    form = {name: text(data, name) for name in ("sku_id", "quantity", "address_id", "idempotency_key")}
    try:
        if not form["address_id"]:
            raise invalid("address_id", gettext("choose an address to send it to, or add one"))
        body = LiveOrderIn(
            sku_id=integer(form, "sku_id", minimum=1, maximum=MAX_ID),
            quantity=integer(form, "quantity", minimum=1, maximum=999),
            address_id=integer(form, "address_id", minimum=1, maximum=MAX_ID),
        )
        placed = await service.buy(db, me, session_id, body, form["idempotency_key"] or None, order_policy)
    except DomainError as err:
        await db.rollback()
        _fixable(err)
        return await _room_page(
            db, me, session_id, live_hub, settings, form=form, error=err, bad=bad_fields(err),
            status_code=err.status_code,
        )  # fmt: skip
    return Redirect(f"/orders/{placed.order_ids[0]}?placed=1", status_code=303)


# --- live now, upcoming, replays --------------------------------------------------------------


@get("/live", **public())
async def live_list(db: AsyncSession, viewer: Principal | None) -> Template:
    """Sessions that are live now, then upcoming ones, then the latest replays."""
    lists = {}
    for status in ("live", "scheduled", "ended"):
        lists[status] = await service.list_public_sessions(
            db, viewer, status=status, before_id=None, limit=LIST_SIZE
        )
    lists["scheduled"].sort(key=lambda s: s.scheduled_at)
    return Template("live/list.html", context={"live": lists["live"], "upcoming": lists["scheduled"],
                                               "replays": lists["ended"][:12]})  # fmt: skip


@get("/live/{session_id:int}/replay", **public())
async def replay_page(
    session_id: int, db: AsyncSession, viewer: Principal | None, cursor: Cursor = None
) -> Template | Redirect:
    """An ended session: its figures, flash sales, comments (paged) and, for the creator, sales."""
    try:
        record = await service.replay(db, viewer, session_id)
        items = await service.list_comments(
            db, viewer, session_id, before_id=before_id(cursor), limit=PAGE_SIZE + 1
        )
    except DomainError as err:
        if err.code == "not_ended":
            return Redirect(f"/live/{session_id}", status_code=303)
        raise _readable(err) from None
    comments, next_cursor = trim_page(items, PAGE_SIZE)
    cards = {c.id: c for c in await catalog.product_cards(db, [x.product_id for x in record.flash_sales] +
                                                          [x.product_id for x in record.sales or []])}  # fmt: skip
    context = {
        "r": record,
        "s": record.session,
        "comments": comments,
        "next_cursor": next_cursor,
        "cards": cards,
    }
    return Template("live/replay.html", context=context)


# --- the creator console: my sessions and scheduling ------------------------------------------


def _scheduled_at(raw: str) -> dt.datetime:
    """A ``datetime-local`` input (Asia/Shanghai wall time) as an aware datetime."""
    try:
        value = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise invalid("scheduled_at", gettext("choose a date and time")) from None
    return value.replace(tzinfo=UI_TZ) if value.tzinfo is None else value


def _product_ids(data: dict[str, Any]) -> list[int]:
    raw = data.get("product_ids", [])
    values = raw if isinstance(raw, list) else [raw]
    ids: list[int] = []
    for value in values:
        value = str(value).strip()
        if not re.fullmatch(r"\d{1,15}", value) or not 1 <= int(value) <= MAX_ID:
            raise invalid("product_ids", gettext("choose products from the list"))
        if int(value) not in ids:
            ids.append(int(value))
    return ids


async def _console_list(
    db: AsyncSession, me: Principal, q: str = "", cursor: str | None = None, **extra: Any
) -> Template:
    items = await service.list_my_sessions(db, me, before_id=before_id(cursor), limit=PAGE_SIZE + 1)
    sessions, next_cursor = trim_page(items, PAGE_SIZE)
    form = extra.get("form") or {}
    chosen = form.get("product_ids") or []
    products = (
        await catalog.search(db, q, limit=PRODUCT_CHOICES)
        if q
        else await catalog.latest_products(db, PRODUCT_CHOICES)
    )
    picked = [c for c in await catalog.product_cards(db, chosen) if c.status == "published"] if chosen else []
    seen = {p.id for p in picked}
    status = extra.pop("status_code", 200)
    context = {
        "sessions": sessions,
        "next_cursor": next_cursor,
        "products": picked + [p for p in products if p.id not in seen and p.status == "published"],
        "chosen": set(chosen),
        "q": q,
        "form": {},
        "error": None,
        "error_session": None,
        "bad": set(),
        "saved": None,
        "saved_text": SAVED_TEXT,
        **extra,
    }
    return Template("live/console_list.html", context=context, status_code=status)


@get("/console/live", **allow("creator"))
async def console_live(
    db: AsyncSession, me: Principal, q: Short = "", cursor: Cursor = None, saved: Short = ""
) -> Template:
    """The creator's sessions (scheduled, live, ended) and the form to schedule one."""
    try:
        return await _console_list(db, me, q.strip(), cursor, saved=saved if saved in SAVED_TEXT else None)
    except DomainError as err:
        raise _readable(err) from None


@post("/console/live", **allow("creator"))
async def schedule(
    data: Multipart, db: AsyncSession, me: Principal, settings: Settings
) -> Template | Redirect:
    """Schedule a session: title, cover, time, featured products."""
    form: dict[str, Any] = {name: text(data, name) for name in ("title", "scheduled_at", "q")}
    try:
        form["product_ids"] = []
        form["product_ids"] = _product_ids(data)
        when = _scheduled_at(form["scheduled_at"])
        body = parse(
            SessionIn, {"title": form["title"], "scheduled_at": when, "product_ids": form["product_ids"]}
        )
        cover = data.get("cover")
        upload = (
            await to_upload(cover, settings.max_upload_bytes)
            if isinstance(cover, UploadFile) and cover.filename
            else None
        )
        created = await service.create_session(db, me, body, upload, settings)
    except DomainError as err:
        await db.rollback()
        _fixable(err)
        bad = {"product_ids" if f.startswith("product_ids") else f for f in bad_fields(err)}
        return await _console_list(
            db, me, form["q"], form=form, error=err, bad=bad, status_code=err.status_code
        )
    return Redirect(f"/console/live/{created.id}?saved=scheduled", status_code=303)


async def _lifecycle(
    db: AsyncSession, me: Principal, session_id: int, action: str, settings: Settings
) -> Template | Redirect:
    try:
        if action == "start":
            await service.start_session(db, me, session_id, settings)
        elif action == "end":
            await service.end_session(db, me, session_id)
        else:
            await service.cancel_session(db, me, session_id)
    except DomainError as err:
        await db.rollback()
        _fixable(err)
        return await _console_list(db, me, error=err, error_session=session_id, status_code=err.status_code)
    saved = {"start": "started", "end": "ended", "cancel": "cancelled"}[action]
    target = f"/console/live/{session_id}" if action == "start" else "/console/live"
    return Redirect(f"{target}?saved={saved}", status_code=303)


@post("/console/live/{session_id:int}/start", **allow("creator"))
async def start(session_id: int, db: AsyncSession, me: Principal, settings: Settings) -> Template | Redirect:
    """Go live: the stream key and ingest URL appear on the session's console."""
    return await _lifecycle(db, me, session_id, "start", settings)


@post("/console/live/{session_id:int}/end", **allow("creator"))
async def end(session_id: int, db: AsyncSession, me: Principal, settings: Settings) -> Template | Redirect:
    """End the live: every viewer sees "the live has ended", the replay stays."""
    return await _lifecycle(db, me, session_id, "end", settings)


@post("/console/live/{session_id:int}/cancel", **allow("creator"))
async def cancel(session_id: int, db: AsyncSession, me: Principal, settings: Settings) -> Template | Redirect:
    return await _lifecycle(db, me, session_id, "cancel", settings)


# --- the console of one session ---------------------------------------------------------------


async def _session_console(
    db: AsyncSession, me: Principal, session_id: int, hub: Hub, **extra: Any
) -> Template:
    view = await service.console_view(db, me, session_id, hub.snapshot_state(session_id))
    s = view.session
    mine = s.creator_id == me.id
    comments = await service.list_comments(db, me, s.id, before_id=None, limit=CONSOLE_COMMENTS)
    status = extra.pop("status_code", 200)
    context = {
        "view": view,
        "s": s,
        "mine": mine,
        "me_id": me.id,
        "pin_json": msgspec.to_builtins(view.pin) if view.pin else None,
        "sale_json": _sale_state(view.sale),
        "comments": list(reversed(comments)),
        "mutes": await service.list_mutes(db, me, s.id),
        "bans": await service.list_bans(db, me, s.id),
        "viewers": hub.viewer_count(s.id),
        "server_now": int(time.time() * 1000),
        "labels": _labels(),
        "form": {},
        "error": None,
        "error_at": None,
        "bad": set(),
        "saved": None,
        "saved_text": SAVED_TEXT,
        **extra,
    }
    return Template("live/console.html", context=context, status_code=status)


@get("/console/live/{session_id:int}", **signed_in())
async def session_console(
    session_id: int, db: AsyncSession, me: Principal, live_hub: Hub, saved: Short = ""
) -> Template:
    """During the session (creator and moderators): stream key (creator only), pin, flash sale,
    the live comment stream and moderation."""
    try:
        return await _session_console(
            db, me, session_id, live_hub, saved=saved if saved in SAVED_TEXT else None
        )
    except DomainError as err:
        raise _readable(err) from None


async def _console_action(
    db: AsyncSession, me: Principal, session_id: int, hub: Hub, where: str, saved: str, form: dict[str, Any],
    action: Any,
) -> Template | Redirect:  # fmt: skip
    """Run one console form's service call; its error comes back in place (``where``: the section)."""
    try:
        await action()
    except DomainError as err:
        await db.rollback()
        _fixable(err)
        return await _session_console(
            db, me, session_id, hub, form=form, error=err, error_at=where, bad=bad_fields(err),
            status_code=err.status_code,
        )  # fmt: skip
    return Redirect(f"/console/live/{session_id}?saved={saved}#{where}", status_code=303)


@post("/console/live/{session_id:int}/costream", **allow("creator"))
async def invite_costream(
    session_id: int, data: Form, db: AsyncSession, me: Principal, live_hub: Hub
) -> Template | Redirect:
    """Invite another creator's live session (its id) to co-stream, with a share in percent."""
    form = {
        "partner_session_id": text(data, "partner_session_id"),
        "share_pct": text(data, "share_pct") or "0",
    }

    async def action() -> None:
        partner = integer(form, "partner_session_id", minimum=1, maximum=MAX_ID)
        share_bp = integer(form, "share_pct", minimum=0, maximum=50) * 100
        await service.invite_costream(db, me, session_id, CostreamIn(partner, share_bp))

    return await _console_action(db, me, session_id, live_hub, "costream", "costream_invited", form, action)


@post("/console/live/{session_id:int}/costream/{costream_id:int}/{verb:str}", **allow("creator"))
async def answer_costream(
    session_id: int, costream_id: int, verb: str, db: AsyncSession, me: Principal, live_hub: Hub
) -> Template | Redirect:
    """Accept, decline or end a co-stream from the console."""
    calls = {
        "accept": service.accept_costream,
        "decline": service.decline_costream,
        "end": service.end_costream,
    }
    if verb not in calls:
        raise _readable(NotFound("no such action", code="costream_not_found"))

    async def action() -> None:
        await calls[verb](db, me, costream_id)

    return await _console_action(db, me, session_id, live_hub, "costream", "costream", {}, action)


@post("/console/live/{session_id:int}/pin", **signed_in())
async def pin(
    session_id: int, data: Form, db: AsyncSession, me: Principal, live_hub: Hub
) -> Template | Redirect:
    form = {"product_id": text(data, "product_id")}

    async def action() -> None:
        await service.pin(db, me, session_id, integer(form, "product_id", minimum=1, maximum=MAX_ID))

    return await _console_action(db, me, session_id, live_hub, "pin", "pinned", form, action)


@post("/console/live/{session_id:int}/unpin", **signed_in())
async def unpin(session_id: int, db: AsyncSession, me: Principal, live_hub: Hub) -> Template | Redirect:
    async def action() -> None:
        await service.unpin(db, me, session_id)

    return await _console_action(db, me, session_id, live_hub, "pin", "unpinned", {}, action)


@post("/console/live/{session_id:int}/sale", **signed_in())
async def start_sale(
    session_id: int, data: Form, db: AsyncSession, me: Principal, live_hub: Hub
) -> Template | Redirect:
    """A flash sale on a variant of the pinned product: allocation, per-buyer limit, countdown."""
    form = {name: text(data, name) for name in ("sku_id", "allocation", "per_buyer_limit", "seconds")}

    async def action() -> None:
        body = FlashSaleIn(
            sku_id=integer(form, "sku_id", minimum=1, maximum=MAX_ID),
            allocation=integer(form, "allocation", minimum=1, maximum=1_000_000),
            per_buyer_limit=integer(form, "per_buyer_limit", minimum=1, maximum=999),
            seconds=integer(form, "seconds", minimum=5, maximum=24 * 3600),
        )
        await service.start_flash_sale(db, me, session_id, body)

    return await _console_action(db, me, session_id, live_hub, "sale", "sale", form, action)


@post("/console/live/{session_id:int}/sale/stop", **signed_in())
async def stop_sale(session_id: int, db: AsyncSession, me: Principal, live_hub: Hub) -> Template | Redirect:
    async def action() -> None:
        await service.stop_flash_sale(db, me, session_id)

    return await _console_action(db, me, session_id, live_hub, "sale", "sale_stopped", {}, action)


@post("/console/live/{session_id:int}/comments/{comment_id:int}/delete", **signed_in())
async def delete_comment(
    session_id: int, comment_id: int, db: AsyncSession, me: Principal, live_hub: Hub
) -> Template | Redirect:
    async def action() -> None:
        await service.delete_comment(db, me, session_id, comment_id)

    return await _console_action(db, me, session_id, live_hub, "comments", "deleted", {}, action)


@post("/console/live/{session_id:int}/mutes", **signed_in())
async def mute(
    session_id: int, data: Form, db: AsyncSession, me: Principal, live_hub: Hub
) -> Template | Redirect:
    form = {name: text(data, name) for name in ("user_id", "minutes")}

    async def action() -> None:
        user_id = integer(form, "user_id", minimum=1, maximum=MAX_ID)
        minutes = integer(form, "minutes", minimum=1, maximum=30 * 24 * 60) if form["minutes"] else 10
        await service.mute(db, me, session_id, user_id, minutes)

    return await _console_action(db, me, session_id, live_hub, "moderation", "muted", form, action)


@post("/console/live/{session_id:int}/mutes/{user_id:int}/delete", **signed_in())
async def unmute(
    session_id: int, user_id: int, db: AsyncSession, me: Principal, live_hub: Hub
) -> Template | Redirect:
    async def action() -> None:
        await service.unmute(db, me, session_id, user_id)

    return await _console_action(db, me, session_id, live_hub, "moderation", "unmuted", {}, action)


@post("/console/live/{session_id:int}/bans", **signed_in())
async def ban(
    session_id: int, data: Form, db: AsyncSession, me: Principal, live_hub: Hub
) -> Template | Redirect:
    form = {name: text(data, name) for name in ("user_id", "reason")}

    async def action() -> None:
        user_id = integer(form, "user_id", minimum=1, maximum=MAX_ID)
        if len(form["reason"]) > 200:
            raise invalid("reason", gettext("at most 200 characters"))
        await service.ban(db, me, session_id, user_id, form["reason"])

    return await _console_action(db, me, session_id, live_hub, "moderation", "banned", form, action)


@post("/console/live/{session_id:int}/bans/{user_id:int}/delete", **signed_in())
async def unban(
    session_id: int, user_id: int, db: AsyncSession, me: Principal, live_hub: Hub
) -> Template | Redirect:
    async def action() -> None:
        await service.unban(db, me, session_id, user_id)

    return await _console_action(db, me, session_id, live_hub, "moderation", "unbanned", {}, action)


async def _own_console(db: AsyncSession, me: Principal, session_id: int) -> None:
    """Moderators and the blocklist belong to the creator: only the session's creator edits them here."""
    s = await service.get_session(db, me, session_id)
    if s.creator_id != me.id:
        raise _readable(Forbidden("this is not your live session", code="not_your_session"))


@post("/console/live/{session_id:int}/moderators", **signed_in())
async def add_moderator(
    session_id: int, data: Form, db: AsyncSession, me: Principal, live_hub: Hub
) -> Template | Redirect:
    """Appoint a moderator of the creator's room, by username."""
    form = {"username": text(data, "username")}
    await _own_console(db, me, session_id)

    async def action() -> None:
        if not form["username"] or len(form["username"]) > 64:
            raise invalid("username", gettext("enter the username of the account to appoint"))
        try:
            user = await accounts.get_user_by_username(db, form["username"])
        except NotFound:
            raise invalid("username", gettext("no account has this username")) from None
        await service.add_moderator(db, me, user.id)

    return await _console_action(db, me, session_id, live_hub, "moderators", "moderators", form, action)


@post("/console/live/{session_id:int}/moderators/{user_id:int}/delete", **signed_in())
async def remove_moderator(
    session_id: int, user_id: int, db: AsyncSession, me: Principal, live_hub: Hub
) -> Template | Redirect:
    await _own_console(db, me, session_id)

    async def action() -> None:
        await service.remove_moderator(db, me, user_id)

    return await _console_action(db, me, session_id, live_hub, "moderators", "moderators", {}, action)


_WORDS_RE = re.compile(r"[,，、;；\n\r]+")


@post("/console/live/{session_id:int}/blocklist", **signed_in())
async def blocklist(
    session_id: int, data: Form, db: AsyncSession, me: Principal, live_hub: Hub
) -> Template | Redirect:
    """The room's blocked words: one per line (or separated by commas)."""
    form = {"words": text(data, "words")}
    await _own_console(db, me, session_id)

    async def action() -> None:
        words = [w.strip() for w in _WORDS_RE.split(form["words"]) if w.strip()]
        try:
            body = parse(BlocklistIn, {"words": words})
        except ValidationFailed:
            raise invalid("words", gettext("at most 200 words of at most 40 characters each")) from None
        await service.set_blocklist(db, me, body)

    return await _console_action(db, me, session_id, live_hub, "blocklist", "blocklist", form, action)


routes = [
    live_list,
    room_page,
    buy,
    replay_page,
    console_live,
    schedule,
    start,
    end,
    cancel,
    session_console,
    pin,
    unpin,
    start_sale,
    stop_sale,
    delete_comment,
    mute,
    unmute,
    ban,
    unban,
    add_moderator,
    remove_moderator,
    blocklist,
    invite_costream,
    answer_costream,
]
