"""JSON routes of the live domain, and the room's WebSocket: thin wrappers over live.service
(docs/live.md). A session travels as JSON, or as a form with the cover image as the file ``cover``.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

from litestar import Request, WebSocket, delete, get, patch, post, put, websocket
from litestar.datastructures import State, UploadFile
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trustlive.accounts.service import Principal
from trustlive.catalog.service import Upload
from trustlive.config import Settings
from trustlive.errors import NotFound, UnsupportedMediaType, ValidationFailed
from trustlive.live import service
from trustlive.live.handler import MODERATION
from trustlive.live.models import SessionStatus
from trustlive.live.schemas import (
    BanIn,
    BlocklistIn,
    BlocklistOut,
    CommentPage,
    ConsoleView,
    CostreamIn,
    CostreamList,
    CostreamOut,
    CustomerCardOut,
    FeaturedIn,
    FeaturedOut,
    FlashSaleIn,
    LiveOrderIn,
    LivePlacedOut,
    MuteIn,
    NoteIn,
    NoteOut,
    PinIn,
    PinOut,
    ReplayOut,
    SaleOut,
    SessionIn,
    SessionOut,
    SessionPage,
    SessionPatch,
    UserIn,
    UserRefList,
    UserRefOut,
    ViewerView,
)
from trustlive.web.forms import parse, text, to_upload
from trustlive.web.pagination import DEFAULT_LIMIT, MAX_LIMIT, before_id, encode_cursor
from trustlive.web.policy import allow, current_principal, public, signed_in
from trustlive.web.validation import decode_strict

log = logging.getLogger(__name__)

Limit = Annotated[int, Parameter(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str | None, Parameter(max_length=200)]
Status = Annotated[str, Parameter(max_length=20)]
T = TypeVar("T", SessionIn, SessionPatch)
TAGS = ["live"]


def _hub(state: State) -> Any:
    return getattr(state, "live_hub", None)


def _page(items: list[Any], limit: int) -> tuple[list[Any], str | None]:
    if len(items) > limit:
        items = items[:limit]
        return items, encode_cursor({"before": items[-1].id})
    return items, None


async def _session_body(
    request: Request[Any, Any, Any], struct: type[T], settings: Settings
) -> tuple[T, Upload | None]:
    """The session's fields, strictly typed, and the cover: from JSON, or from a multipart form
    (``product_ids`` as repeated fields or one comma-separated field)."""
    kind = request.content_type[0]
    if kind == "application/json":
        return decode_strict(await request.body(), struct), None
    if kind not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        raise UnsupportedMediaType("send JSON, or a form (multipart/form-data with the cover)")
    form = await request.form()
    fields: dict[str, Any] = {
        k: text(form, k) for k in ("title", "scheduled_at") if isinstance(form.get(k), str)
    }
    if "product_ids" in form:
        raw = [v for v in form.getall("product_ids") if isinstance(v, str)]
        try:
            fields["product_ids"] = [int(p) for v in raw for p in v.split(",") if p.strip()]
        except ValueError:
            raise ValidationFailed("product_ids: whole numbers", field="product_ids") from None
    data = parse(struct, fields)
    cover = form.get("cover")
    upload = (
        await to_upload(cover, settings.max_upload_bytes)
        if isinstance(cover, UploadFile) and cover.filename
        else None
    )
    return data, upload


# --- sessions ---------------------------------------------------------------------------------


@post("/live/sessions", status_code=201, tags=TAGS, **allow("creator"))
async def create_session(
    request: Request[Any, Any, Any], me: Principal, db: AsyncSession, settings: Settings
) -> SessionOut:
    """Schedule a live session: `title`, `scheduled_at` (with a time zone), `product_ids` to
    feature (published products), and a `cover` image in a form. 422 for bad fields or an
    unavailable product (`product_not_available`); 409 `alliance_not_eligible` for another shop's
    product while your reputation score is below the alliance threshold; 413/415 for a bad cover."""
    data, cover = await _session_body(request, SessionIn, settings)
    return await service.create_session(db, me, data, cover, settings)


@get("/live/sessions", tags=TAGS, **public())
async def public_sessions(
    db: AsyncSession, viewer: Principal | None, status: Status = "live", limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> SessionPage:  # fmt: skip
    """Sessions live now (`status=live`, the default), upcoming (`scheduled`) or replays (`ended`)."""
    items = await service.list_public_sessions(
        db, viewer, status=status, before_id=before_id(cursor), limit=limit + 1
    )
    return SessionPage(*_page(items, limit))


@get("/live/sessions/mine", tags=TAGS, **allow("creator"))
async def my_sessions(
    db: AsyncSession, me: Principal, status: Status = "", limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> SessionPage:
    """The creator's sessions, newest first; `status` filters."""
    items = await service.list_my_sessions(
        db, me, status=status, before_id=before_id(cursor), limit=limit + 1
    )
    return SessionPage(*_page(items, limit))


@get("/live/sessions/{session_id:int}", tags=TAGS, **public())
async def get_session(session_id: int, db: AsyncSession, viewer: Principal | None) -> SessionOut:
    """A session; its creator also gets `stream` (ingest URL and the secret stream key) while live."""
    return await service.get_session(db, viewer, session_id)


@patch("/live/sessions/{session_id:int}", tags=TAGS, **allow("creator"))
async def update_session(
    session_id: int, request: Request[Any, Any, Any], me: Principal, db: AsyncSession, settings: Settings
) -> SessionOut:
    """Edit a scheduled session (409 `not_scheduled` after it starts); 403 for someone else's."""
    data, cover = await _session_body(request, SessionPatch, settings)
    return await service.update_session(db, me, session_id, data, cover, settings)


@post("/live/sessions/{session_id:int}/start", status_code=200, tags=TAGS, **allow("creator"))
async def start_session(session_id: int, me: Principal, db: AsyncSession, settings: Settings) -> SessionOut:
    """Go live: the answer carries the ingest URL and stream key. 409 `already_live` while another
    of your sessions is live, `not_scheduled` for one that has started, ended or been cancelled."""
    return await service.start_session(db, me, session_id, settings)


@post("/live/sessions/{session_id:int}/end", status_code=200, tags=TAGS, **allow("creator"))
async def end_session(session_id: int, me: Principal, db: AsyncSession) -> SessionOut:
    """End the live session: viewers get bye `ended`; the replay stays. 409 `not_live`."""
    return await service.end_session(db, me, session_id)


@post("/live/sessions/{session_id:int}/cancel", status_code=200, tags=TAGS, **allow("creator"))
async def cancel_session(session_id: int, me: Principal, db: AsyncSession) -> SessionOut:
    """Cancel a scheduled session (409 `not_scheduled` once it has started)."""
    return await service.cancel_session(db, me, session_id)


@post("/live/sessions/{session_id:int}/heartbeat", status_code=200, tags=TAGS, **allow("creator"))
async def heartbeat(session_id: int, me: Principal, db: AsyncSession) -> SessionOut:
    """The broadcast is alive (the console sends this; without it the sweeper ends the session
    after `TRUSTLIVE_LIVE_HEARTBEAT_SECONDS`)."""
    return await service.heartbeat(db, me, session_id)


@get("/live/sessions/{session_id:int}/products", tags=TAGS, **public())
async def featured(session_id: int, db: AsyncSession, viewer: Principal | None) -> FeaturedOut:
    """The featured products' cards, in the creator's order."""
    return FeaturedOut(await service.featured_cards(db, viewer, session_id))


@put("/live/sessions/{session_id:int}/products", tags=TAGS, **allow("creator"))
async def set_featured(session_id: int, data: FeaturedIn, me: Principal, db: AsyncSession) -> SessionOut:
    """Replace the featured products (scheduled or live; 409 `product_pinned` to drop the pinned one)."""
    return await service.set_featured(db, me, session_id, data)


# --- pin and flash sale -----------------------------------------------------------------------


@put("/live/sessions/{session_id:int}/pin", tags=TAGS, **signed_in())
async def pin(session_id: int, data: PinIn, me: Principal, db: AsyncSession) -> PinOut:
    """Pin a featured product (creator or moderator; 403 `not_moderator` for anyone else; 409
    `not_live`; 422 `not_featured`)."""
    return await service.pin(db, me, session_id, data.product_id)


@delete("/live/sessions/{session_id:int}/pin", status_code=204, tags=TAGS, **signed_in())
async def unpin(session_id: int, me: Principal, db: AsyncSession) -> None:
    """Unpin (a running flash sale stops)."""
    await service.unpin(db, me, session_id)


@get("/live/sessions/{session_id:int}/flash-sale", tags=TAGS, **public())
async def current_sale(session_id: int, db: AsyncSession, viewer: Principal | None) -> SaleOut:
    """The running flash sale (404 `no_sale` when none runs)."""
    sale = await service.current_sale(db, viewer, session_id)
    if sale is None:
        raise NotFound("no flash sale is running", code="no_sale")
    return sale


@post("/live/sessions/{session_id:int}/flash-sale", status_code=201, tags=TAGS, **signed_in())
async def start_flash_sale(session_id: int, data: FlashSaleIn, me: Principal, db: AsyncSession) -> SaleOut:
    """Start a flash sale on a SKU of the pinned product: `sku_id`, `allocation` (at most its
    stock), `per_buyer_limit`, `seconds` of countdown. 409 `sale_running`, `nothing_pinned`,
    `flash_sale_restricted` (the product's shop ships too many orders late: docs/scores.md);
    422 `sku_not_pinned`, `allocation_exceeds_stock`."""
    return await service.start_flash_sale(db, me, session_id, data)


@delete("/live/sessions/{session_id:int}/flash-sale", status_code=200, tags=TAGS, **signed_in())
async def stop_flash_sale(session_id: int, me: Principal, db: AsyncSession) -> SaleOut:
    """Stop the running flash sale early (409 `no_sale`)."""
    return await service.stop_flash_sale(db, me, session_id)


# --- buying -----------------------------------------------------------------------------------


@post("/live/sessions/{session_id:int}/orders", status_code=201, tags=TAGS, **signed_in())
async def buy(
    session_id: int, data: LiveOrderIn, me: Principal, db: AsyncSession, request: Request[Any, Any, Any],
    state: State,
) -> LivePlacedOut:  # fmt: skip
    """Buy from the room: `sku_id` (of a featured product), `quantity`, `address_id`; header
    `Idempotency-Key` (required; a repeat answers the first orders). During a flash sale on the
    SKU: 409 `sold_out`, `limit_exceeded`, `sale_ended`. 403 `banned`; 409 `not_live`,
    `out_of_stock`; 422 `not_featured`."""
    return await service.buy(
        db, me, session_id, data, request.headers.get("idempotency-key"), state.order_policy
    )


# --- comments and moderation ------------------------------------------------------------------


@get("/live/sessions/{session_id:int}/comments", tags=TAGS, **public())
async def comments(
    session_id: int,
    db: AsyncSession,
    viewer: Principal | None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> CommentPage:
    """The session's comments, newest first (written about a second after they are sent)."""
    items = await service.list_comments(db, viewer, session_id, before_id=before_id(cursor), limit=limit + 1)
    return CommentPage(*_page(items, limit))


@delete(
    "/live/sessions/{session_id:int}/comments/{comment_id:int}", status_code=204, tags=TAGS, **signed_in()
)
async def delete_comment(session_id: int, comment_id: int, me: Principal, db: AsyncSession) -> None:
    """Delete a comment (creator or moderator): hidden in the replay, dropped from viewers' screens."""
    await service.delete_comment(db, me, session_id, comment_id)


@get("/live/sessions/{session_id:int}/mutes", tags=TAGS, **signed_in())
async def mutes(session_id: int, me: Principal, db: AsyncSession) -> UserRefList:
    return UserRefList(await service.list_mutes(db, me, session_id))


@post("/live/sessions/{session_id:int}/mutes", status_code=201, tags=TAGS, **signed_in())
async def mute(session_id: int, data: MuteIn, me: Principal, db: AsyncSession) -> UserRefOut:
    """Mute a user in the creator's room for `minutes` (creator or moderator)."""
    return await service.mute(db, me, session_id, data.user_id, data.minutes)


@delete("/live/sessions/{session_id:int}/mutes/{user_id:int}", status_code=204, tags=TAGS, **signed_in())
async def unmute(session_id: int, user_id: int, me: Principal, db: AsyncSession) -> None:
    await service.unmute(db, me, session_id, user_id)


@get("/live/sessions/{session_id:int}/bans", tags=TAGS, **signed_in())
async def bans(session_id: int, me: Principal, db: AsyncSession) -> UserRefList:
    return UserRefList(await service.list_bans(db, me, session_id))


@post("/live/sessions/{session_id:int}/bans", status_code=201, tags=TAGS, **signed_in())
async def ban(session_id: int, data: BanIn, me: Principal, db: AsyncSession) -> UserRefOut:
    """Ban a user from the creator's room: disconnected, cannot rejoin, comment or buy."""
    return await service.ban(db, me, session_id, data.user_id, data.reason)


@delete("/live/sessions/{session_id:int}/bans/{user_id:int}", status_code=204, tags=TAGS, **signed_in())
async def unban(session_id: int, user_id: int, me: Principal, db: AsyncSession) -> None:
    await service.unban(db, me, session_id, user_id)


@get("/live/moderators", tags=TAGS, **allow("creator"))
async def moderators(me: Principal, db: AsyncSession) -> UserRefList:
    """The moderators you appointed for your room."""
    return UserRefList(await service.list_moderators(db, me))


@post("/live/moderators", status_code=201, tags=TAGS, **allow("creator"))
async def add_moderator(data: UserIn, me: Principal, db: AsyncSession) -> UserRefList:
    return UserRefList(await service.add_moderator(db, me, data.user_id))


@delete("/live/moderators/{user_id:int}", status_code=200, tags=TAGS, **allow("creator"))
async def remove_moderator(user_id: int, me: Principal, db: AsyncSession) -> UserRefList:
    return UserRefList(await service.remove_moderator(db, me, user_id))


@get("/live/blocklist", tags=TAGS, **allow("creator"))
async def blocklist(me: Principal, db: AsyncSession) -> BlocklistOut:
    return await service.get_blocklist(db, me)


@put("/live/blocklist", tags=TAGS, **allow("creator"))
async def set_blocklist(data: BlocklistIn, me: Principal, db: AsyncSession) -> BlocklistOut:
    """Replace your blocked words (case-insensitive; a comment containing one is refused with
    `blocked_word`)."""
    return await service.set_blocklist(db, me, data)


# --- returning customers (熟客) -------------------------------------------------------------------


@get("/live/customers/{buyer_id:int}", tags=TAGS, **allow("creator"))
async def customer_card(buyer_id: int, me: Principal, db: AsyncSession) -> CustomerCardOut:
    """Your card of a buyer: their paid orders from you (attributed to you or from your shops),
    options bought, total spent, last visit to your sessions, your private notes."""
    return await service.customer_card(db, me, buyer_id)


@get("/live/customers/{buyer_id:int}/notes", tags=TAGS, **allow("creator"))
async def customer_notes(buyer_id: int, me: Principal, db: AsyncSession) -> NoteOut:
    """Your private notes about a buyer (nobody else ever reads them)."""
    return await service.get_note(db, me, buyer_id)


@put("/live/customers/{buyer_id:int}/notes", tags=TAGS, **allow("creator"))
async def set_customer_notes(buyer_id: int, data: NoteIn, me: Principal, db: AsyncSession) -> NoteOut:
    """Replace your private notes about a buyer (`note`, at most 1000 characters)."""
    return await service.set_note(db, me, buyer_id, data)


# --- co-streaming (连麦) --------------------------------------------------------------------------


@post("/live/sessions/{session_id:int}/costream", status_code=201, tags=TAGS, **signed_in())
async def invite_costream(session_id: int, data: CostreamIn, me: Principal, db: AsyncSession) -> CostreamOut:
    """From your live session, invite another creator's live session: `partner_session_id`,
    `share_bp` (0-5000: that share of the attributed creator's commission on orders placed in
    either room while linked goes to the other creator). 403 `not_your_session`; 404
    `session_not_found`; 409 `not_live`, `partner_not_live`, `already_linked`; 422
    `cannot_costream_self`."""
    return await service.invite_costream(db, me, session_id, data)


@get("/live/costreams", tags=TAGS, **signed_in())
async def my_costreams(me: Principal, db: AsyncSession) -> CostreamList:
    """Your co-streams: invitations sent and received, current and past, newest first."""
    return CostreamList(await service.my_costreams(db, me))


@get("/live/costreams/{costream_id:int}", tags=TAGS, **signed_in())
async def get_costream(costream_id: int, me: Principal, db: AsyncSession) -> CostreamOut:
    """One co-stream (its two creators only; 404 `costream_not_found` for anyone else)."""
    return await service.get_costream(db, me, costream_id)


@post("/live/costreams/{costream_id:int}/accept", status_code=200, tags=TAGS, **signed_in())
async def accept_costream(costream_id: int, me: Principal, db: AsyncSession) -> CostreamOut:
    """The invited creator accepts (403 `not_invitee`; 409 `not_invited`, `not_live`)."""
    return await service.accept_costream(db, me, costream_id)


@post("/live/costreams/{costream_id:int}/decline", status_code=200, tags=TAGS, **signed_in())
async def decline_costream(costream_id: int, me: Principal, db: AsyncSession) -> CostreamOut:
    """The invited creator declines (403 `not_invitee`; 409 `not_invited`)."""
    return await service.decline_costream(db, me, costream_id)


@post("/live/costreams/{costream_id:int}/end", status_code=200, tags=TAGS, **signed_in())
async def end_costream(costream_id: int, me: Principal, db: AsyncSession) -> CostreamOut:
    """Either creator ends the link, or the inviter withdraws the invitation (409 `not_open`).
    It also ends when either session ends."""
    return await service.end_costream(db, me, costream_id)


# --- replay and first renders -----------------------------------------------------------------


@get("/live/sessions/{session_id:int}/replay", tags=TAGS, **public())
async def replay(session_id: int, db: AsyncSession, viewer: Principal | None) -> ReplayOut:
    """An ended session's record: figures, flash sales, and (creator and ops) the sales. 409 `not_ended`."""
    return await service.replay(db, viewer, session_id)


@get("/live/sessions/{session_id:int}/view", tags=TAGS, **public())
async def viewer_view(
    session_id: int, db: AsyncSession, viewer: Principal | None, state: State
) -> ViewerView:
    """What a viewer's page shows first: session, featured products, pinned card, sale, room state."""
    hub = _hub(state)
    room_state = await hub.fetch_state(session_id) if hub is not None else {}
    return await service.viewer_view(db, viewer, session_id, room_state)


@get("/live/sessions/{session_id:int}/console", tags=TAGS, **signed_in())
async def console_view(session_id: int, db: AsyncSession, me: Principal, state: State) -> ConsoleView:
    """What the creator console shows first (creator and moderators)."""
    hub = _hub(state)
    room_state = await hub.fetch_state(session_id) if hub is not None else {}
    return await service.console_view(db, me, session_id, room_state)


# --- the room's WebSocket ---------------------------------------------------------------------


def _cross_site(socket: WebSocket[Any, Any, Any]) -> bool:
    """An Origin header naming another host than the one the socket was opened on."""
    origin = socket.headers.get("origin")
    if not origin:
        return False
    host = socket.headers.get("host", "")
    try:
        return urlsplit(origin).netloc.lower() != host.lower()
    except ValueError:
        return True


async def _room_open(
    sessionmaker: async_sessionmaker[AsyncSession], session_id: int
) -> tuple[int, str] | None:
    """(creator id, status) of the session, from the process's cache while it is live."""
    return await MODERATION.room(sessionmaker, session_id)


_GONE = frozenset({"WebSocketDisconnect", "ClientDisconnected", "ConnectionClosed"})


@websocket("/live/sessions/{session_id:int}/ws", **public())
async def room_socket(session_id: int, socket: WebSocket[Any, Any, Any]) -> None:
    """A viewer's connection to the room (docs/live-protocol.md). Anonymous viewers may watch;
    signed-in ones (cookie or bearer) may comment. A cookie-authenticated socket from another
    site is refused (close 4403); a session that is not live closes with 4404; a banned viewer
    gets bye `banned`."""
    state = socket.app.state
    principal = current_principal(socket)
    if principal is not None and principal.session_kind == "web" and _cross_site(socket):
        await socket.close(code=4403, reason="cross-site origin")
        return
    found = await _room_open(state.sessionmaker, session_id)
    if found is None or found[1] != SessionStatus.live:
        await socket.close(code=4404, reason="this session is not live")
        return
    hub, handler = _hub(state), getattr(state, "live_handler", None)
    if hub is None or handler is None:
        await socket.close(code=1013, reason="live rooms are not running")
        return
    try:
        await hub.serve(socket, session_id, principal, handler)
    except Exception as err:  # a broken connection must not become an error page
        if isinstance(err, ConnectionError) or type(err).__name__ in _GONE:  # the client left
            log.debug("live socket of room %s: the client left: %r", session_id, err)
            return
        log.exception("live socket of room %s failed", session_id)
        with contextlib.suppress(Exception):
            await socket.close(code=1011)


routes = [
    create_session, public_sessions, my_sessions, get_session, update_session, start_session, end_session,
    cancel_session, heartbeat, featured, set_featured, pin, unpin, current_sale, start_flash_sale,
    stop_flash_sale, buy, comments, delete_comment, mutes, mute, unmute, bans, ban, unban, moderators,
    add_moderator, remove_moderator, blocklist, set_blocklist, replay, viewer_view, console_view, room_socket,
    customer_card, customer_notes, set_customer_notes, invite_costream, my_costreams, get_costream,
    accept_costream, decline_costream, end_costream,
]  # fmt: skip
