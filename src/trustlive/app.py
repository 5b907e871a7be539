"""The Litestar application: wiring only. Rules live in the domain services."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from litestar import Litestar, Request, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, YamlRenderPlugin
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template import TemplateConfig
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trustlive import __version__
from trustlive import models as _models  # noqa: F401  (every table mapped before first use)
from trustlive.accounts import api as accounts_api
from trustlive.accounts import pages as accounts_pages
from trustlive.accounts import service as accounts
from trustlive.aftersales import api as aftersales_api
from trustlive.aftersales import pages as aftersales_pages
from trustlive.aftersales import tasks as aftersales_tasks
from trustlive.care import api as care_api
from trustlive.care import pages as care_pages
from trustlive.care import tasks as care_tasks
from trustlive.catalog import api as catalog_api
from trustlive.catalog import pages as catalog_pages
from trustlive.config import Settings, load_settings
from trustlive.consignment import api as consignment_api
from trustlive.consignment import pages as consignment_pages
from trustlive.consignment import service as consignment
from trustlive.content import api as content_api
from trustlive.content import pages as content_pages
from trustlive.db import create_engine, create_read_sessionmaker, create_sessionmaker
from trustlive.errors import Unauthorized
from trustlive.events import EventBus, OutboxRelay
from trustlive.feed import api as feed_api
from trustlive.feed import pages as feed_pages
from trustlive.feed import service as feed
from trustlive.feed import tasks as feed_tasks
from trustlive.fulfillment import api as fulfillment_api
from trustlive.fulfillment import pages as fulfillment_pages
from trustlive.fulfillment import tasks as fulfillment_tasks
from trustlive.fulfillment.tracking import Tracker, get_tracker
from trustlive.ledger import api as ledger_api
from trustlive.ledger import pages as ledger_pages
from trustlive.ledger import tasks as ledger_tasks
from trustlive.live import api as live_api
from trustlive.live import pages as live_pages
from trustlive.live import service as live
from trustlive.live import tasks as live_tasks
from trustlive.live.handler import MODERATION, CommentWriter, ModerationNotices, RoomHandler
from trustlive.live.hub import Hub
from trustlive.orders import api as orders_api
from trustlive.orders import pages as orders_pages
from trustlive.orders import service as orders
from trustlive.orders import tasks as order_tasks
from trustlive.payments import api as payments_api
from trustlive.payments import pages as payments_pages
from trustlive.payments import tasks as payment_tasks
from trustlive.reviews import api as reviews_api
from trustlive.reviews import pages as reviews_pages
from trustlive.scheduler import Scheduler
from trustlive.social import api as social_api
from trustlive.social import pages as social_pages
from trustlive.trust import api as trust_api
from trustlive.trust import pages as trust_pages
from trustlive.trust import scoring as trust_scoring
from trustlive.trust import service as trust
from trustlive.trust import tasks as trust_tasks
from trustlive.web import framework
from trustlive.web import pages as web_pages
from trustlive.web.errors import handle_exception
from trustlive.web.policy import current_principal, public
from trustlive.web.security import AuthMiddleware, CSRFGate, LocaleMiddleware, csrf_config
from trustlive.web.templating import build_environment
from trustlive.web.validation import check_request

log = logging.getLogger("trustlive")

STATIC_DIR = Path(__file__).parent / "web" / "static"
MAX_REQUEST_BYTES = 12 * 1024 * 1024


async def provide_db(state: State) -> AsyncGenerator[AsyncSession, None]:
    """The request's unit of work: committed when the handler succeeds, rolled back otherwise."""
    async with state.sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()
            if session.info.pop("outbox_dirty", False):
                state.relay.wake()


def provide_me(request: Request[Any, Any, Any]) -> accounts.Principal:
    principal = current_principal(request)
    if principal is None:
        raise Unauthorized("sign in first")
    return principal


def provide_viewer(request: Request[Any, Any, Any]) -> accounts.Principal | None:
    return current_principal(request)


def provide_settings(state: State) -> Settings:
    return state.settings


def provide_uow(state: State) -> async_sessionmaker[AsyncSession]:
    return state.sessionmaker


def provide_throttle(state: State) -> accounts.Throttle:
    return state.throttle


def provide_order_policy(state: State) -> orders.OrderPolicy:
    return state.order_policy


def provide_checkout_batcher(state: State) -> orders.CheckoutBatcher:
    return state.checkout_batcher


def provide_tracker(state: State) -> Tracker:
    return state.tracker


def provide_live_hub(state: State) -> Hub:
    return state.live_hub


def build_scheduler(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> Scheduler:
    """Every domain's deadline sweepers, in lifecycle order: the app runs them every
    ``task_interval_seconds``; ``trustlive tasks run`` runs them once (for cron)."""
    scheduler = Scheduler(settings.task_interval_seconds)
    policy = orders.OrderPolicy.from_settings(settings)
    scheduler.add("orders", lambda: order_tasks.run_due(sessionmaker, policy=policy))
    scheduler.add("payouts", lambda: ledger_tasks.process_payouts(sessionmaker))
    scheduler.add("payments", lambda: payment_tasks.run_once(sessionmaker, settings))
    scheduler.add("fulfillment", lambda: fulfillment_tasks.run_once(sessionmaker, settings))
    scheduler.add("aftersales", lambda: aftersales_tasks.run_once(sessionmaker, settings))
    scheduler.add("care", lambda: care_tasks.run_once(sessionmaker, settings))
    scheduler.add("live", lambda: live_tasks.run_once(sessionmaker, settings))
    scheduler.add("trust", lambda: trust_tasks.run_once(sessionmaker, settings))
    scheduler.add("feed", feed_tasks.job(sessionmaker, settings))
    return scheduler


@contextlib.contextmanager
def _server_gc() -> Iterator[None]:
    """The cyclic garbage collector, set for a server while the app runs. Objects made at
    start-up (routes, templates, table metadata) live as long as the app: frozen, full collections
    no longer walk them. Young collections run every 10,000 new container objects instead of 700,
    not several times per request. Measured on bench/flash_sale.py: a worker's CPU per order fell
    by a quarter (docs/orders.md, "Batched checkout"). Undone at shutdown, so a process that runs
    many apps (the tests) does not keep them all."""
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


def create_app(
    settings: Settings | None = None, *, bus: EventBus | None = None, relay_in_background: bool = True
) -> Litestar:
    settings = settings or load_settings()
    trust.configure(trust_scoring.load_file(settings.scores_config))
    framework.install()
    settings.media_dir.mkdir(parents=True, exist_ok=True)
    bus = bus or EventBus()

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url)
        sessionmaker = create_sessionmaker(engine)
        app.state.read_sessionmaker = create_read_sessionmaker(engine)
        app.state.principals = accounts.PrincipalLoader(app.state.read_sessionmaker)
        redis = None
        if settings.redis_url:
            from redis.asyncio import Redis

            redis = Redis.from_url(settings.redis_url, decode_responses=True)
            await redis.ping()
        app.state.update(
            engine=engine,
            sessionmaker=sessionmaker,
            redis=redis,
            bus=bus,
            relay=OutboxRelay(sessionmaker, bus, redis),
            throttle=(
                accounts.RedisThrottle(redis, settings.login_window_seconds)
                if redis is not None
                else accounts.DatabaseThrottle(sessionmaker, settings.login_window_seconds)
            ),
        )
        task = asyncio.create_task(app.state.relay.run_forever()) if relay_in_background else None
        app.state.checkout_batcher = orders.CheckoutBatcher(sessionmaker, app.state.order_policy)
        scheduler = build_scheduler(sessionmaker, settings)
        app.state.scheduler = scheduler
        app.state.live_hub = Hub.from_settings(settings, redis)
        await app.state.live_hub.start()
        # The live domain: comments buffered and written about once a second, the hub's handler,
        # and the events that reach the rooms after commit (docs/live.md).
        MODERATION.clear()
        comment_writer = CommentWriter(sessionmaker)
        writing = asyncio.create_task(comment_writer.run_forever())
        app.state.live_handler = RoomHandler(sessionmaker, settings, comment_writer, hub=app.state.live_hub)
        notices = ModerationNotices(app.state.live_hub, redis)
        listening = asyncio.create_task(notices.run_forever()) if redis is not None else None
        for topic, handler in live.hub_subscribers(app.state.live_hub, notices.publish).items():
            bus.subscribe(topic, handler)
        # Scores: the events that can move one queue their order for a refresh (docs/scores.md).
        for topic in trust.SCORED_TOPICS:
            bus.subscribe(topic, trust.on_event)
        for topic in feed.TOPICS:  # the feed's item index, interactions (docs/feed.md)
            bus.subscribe(topic, feed.on_event)
        bus.subscribe("orders.cancelled", live.on_order_cancelled)
        bus.subscribe("orders.refunded", live.on_order_refunded)
        bus.subscribe(  # a creator's fee waiver shown in each new room (docs/consignment.md)
            "live.session_started", functools.partial(consignment.on_session_started, settings=settings)
        )
        sweeping = (
            asyncio.create_task(scheduler.run_forever()) if settings.task_interval_seconds > 0 else None
        )
        try:
            with _server_gc():
                yield
        finally:
            await app.state.live_hub.stop()
            await comment_writer.stop()
            await writing
            if listening is not None:
                notices.stop()
                await listening
            await app.state.checkout_batcher.stop()
            if sweeping is not None:
                scheduler.stop()
                await sweeping
            if task is not None:
                app.state.relay.stop()
                try:
                    await asyncio.wait_for(task, timeout=10)
                except TimeoutError:
                    log.warning("outbox relay did not stop within 10 s; cancelling it")
            if redis is not None:
                await redis.aclose()
            await engine.dispose()

    templates = TemplateConfig(instance=JinjaTemplateEngine.from_environment(build_environment()))
    secure_csrf = settings.cookie_secure == "true"

    return Litestar(
        route_handlers=[
            Router(
                path="/api/v1",
                route_handlers=[
                    *accounts_api.routes,
                    *catalog_api.routes,
                    *orders_api.routes,
                    *ledger_api.routes,
                    *payments_api.routes,
                    *fulfillment_api.routes,
                    *aftersales_api.routes,
                    *reviews_api.routes,
                    *care_api.routes,
                    *live_api.routes,
                    *consignment_api.routes,
                    *trust_api.routes,
                    *social_api.routes,
                    *content_api.routes,
                    *feed_api.routes,
                ],
            ),
            *web_pages.routes,
            *accounts_pages.routes,
            *catalog_pages.routes,
            *orders_pages.routes,
            *ledger_pages.routes,
            *payments_pages.routes,
            *fulfillment_pages.routes,
            *aftersales_pages.routes,
            *reviews_pages.routes,
            *care_pages.routes,
            *live_pages.routes,
            *consignment_pages.routes,
            *trust_pages.routes,
            *social_pages.routes,
            *content_pages.routes,
            *feed_pages.routes,
            create_static_files_router(path="/static", directories=[STATIC_DIR], opt=public()["opt"]),
            create_static_files_router(path="/media", directories=[settings.media_dir], opt=public()["opt"]),
        ],
        dependencies={
            "db": Provide(provide_db),
            "me": Provide(provide_me, sync_to_thread=False),
            "viewer": Provide(provide_viewer, sync_to_thread=False),
            "settings": Provide(provide_settings, sync_to_thread=False),
            "uow": Provide(provide_uow, sync_to_thread=False),
            "throttle": Provide(provide_throttle, sync_to_thread=False),
            "order_policy": Provide(provide_order_policy, sync_to_thread=False),
            "checkout_batcher": Provide(provide_checkout_batcher, sync_to_thread=False),
            "tracker": Provide(provide_tracker, sync_to_thread=False),
            "live_hub": Provide(provide_live_hub, sync_to_thread=False),
        },
        middleware=[
            DefineMiddleware(LocaleMiddleware, default=settings.default_locale),
            AuthMiddleware,
            DefineMiddleware(CSRFGate, config=csrf_config(settings.secret_key, secure_csrf)),
        ],
        before_request=check_request,
        exception_handlers={Exception: handle_exception},
        template_config=templates,
        openapi_config=OpenAPIConfig(
            title="trustlive API",
            version=__version__,
            description="JSON API of trustlive. Conventions (auth, errors, pagination): docs/api.md.",
            render_plugins=[JsonRenderPlugin(path=["/", "/openapi.json"]), YamlRenderPlugin()],
            openapi_router=Router(path="/schema", route_handlers=[], opt=public()["opt"]),
        ),
        state=State(
            {
                "settings": settings,
                "order_policy": orders.OrderPolicy.from_settings(settings),
                "tracker": get_tracker(settings, settings.tracking_service),
            }
        ),  # fmt: skip
        lifespan=[lifespan],
        request_max_body_size=MAX_REQUEST_BYTES,
        debug=settings.debug,
    )
