"""Reviews through the services, on SQLite and PostgreSQL: who may post, when, how often; bad
input changes nothing; the edit window; the shop's reply; the product's summary figures."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from pathlib import Path

import pytest
from sqlalchemy import event, update
from sqlalchemy.exc import IntegrityError

from tests.helpers import make_settings
from tests.orders.world import set_shipping
from tests.payments.util import buyer_pays, deliver, ledger_ok, start
from tests.reviews.util import (
    advance,
    build,
    completed,
    events_of,
    photo_rows,
    placed,
    png,
    rating,
    review_rows,
    stored_files,
)
from trustlive.catalog import service as catalog
from trustlive.catalog.service import Upload
from trustlive.db import transaction
from trustlive.errors import DomainError
from trustlive.orders import service as orders
from trustlive.orders.schemas import ItemIn, OrderIn
from trustlive.payments import service as payments
from trustlive.reviews import service
from trustlive.reviews.models import Review
from trustlive.reviews.schemas import ReplyIn, ReviewIn, ReviewPatch


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def post(w, settings, buyer: int, order_id: int, line_id: int, data: ReviewIn, photos=(), now=None):  # type: ignore[no-untyped-def]
    async with transaction(w.sessionmaker) as s:
        return await service.post_review(
            s, w.buyers[buyer], order_id, line_id, data, list(photos), settings, now
        )


async def refused(coro, status: int, code: str | None = None) -> DomainError:  # type: ignore[no-untyped-def]
    with pytest.raises(DomainError) as info:
        await coro
    assert info.value.status_code == status, info.value
    if code is not None:
        assert info.value.code == code, info.value
    return info.value


def test_buyer_reviews_a_completed_line(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = make_settings(db_url, tmp_path)
        w = await build(db_url, buyers=1)
        try:
            order_id, line_id = await completed(w, 0, "o1")
            out = await post(
                w, settings, 0, order_id, line_id, rating(5, 4, 3, "  很合身，面料软  "), [png(), png()]
            )
            assert (out.rating_product, out.rating_logistics, out.rating_service) == (5, 4, 3)
            assert out.text == "很合身，面料软" and out.buyer == "b**"  # display name "buyer0000", masked
            assert out.order_id == order_id and len(out.photos) == 2
            (row,) = await review_rows(w)
            assert (row.order_id, row.order_line_id, row.product_id, row.shop_id, row.buyer_id) == (
                order_id, line_id, row.product_id, w.shops[0], w.buyers[0].id)  # fmt: skip
            assert row.title == "商品1" and row.photo_count == 2 and row.edited_at is None
            assert row.edit_until - row.created_at == dt.timedelta(hours=settings.review_edit_hours)
            photos = await photo_rows(w)
            assert [p.position for p in photos] == [0, 1] and all(p.review_id == row.id for p in photos)
            assert len(stored_files(settings.media_dir)) == 2
            (event,) = await events_of(w, "reviews.posted")
            assert event["review_id"] == row.id and event["order_line_id"] == line_id
            assert (event["rating_product"], event["rating_logistics"], event["rating_service"]) == (5, 4, 3)
            assert event["shop_id"] == w.shops[0] and event["photos"] == 2
            assert event["created_at"] == row.created_at.isoformat()
        finally:
            await w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


def test_only_the_buyer_after_completion_and_once(db_url: str, tmp_path: Path) -> None:
    """Not your order or line: 404. Not received yet: 409. A second review of a line: 409, and
    the database itself refuses a second row."""

    async def scenario() -> None:
        settings = make_settings(db_url, tmp_path)
        w = await build(db_url, buyers=2)
        try:
            order_id = await placed(w, 0, "o1")
            async with transaction(w.sessionmaker) as s:
                line_id = (await orders.load_order(s, order_id)).lines[0].id
            for status in ("paid", "shipped", "delivered"):
                if status != "paid":
                    await advance(w, order_id, status)
                await refused(post(w, settings, 0, order_id, line_id, rating()), 409, "not_completed")
            await advance(w, order_id, "completed")
            # Someone else: the other buyer, the shop, ops — all "not found", nothing stored.
            await refused(post(w, settings, 1, order_id, line_id, rating()), 404, "order_not_found")
            for outsider in (w.merchants[0], w.ops):
                async with transaction(w.sessionmaker) as s:
                    await refused(
                        service.post_review(s, outsider, order_id, line_id, rating(), [], settings), 404
                    )
            await refused(post(w, settings, 0, order_id, line_id + 999, rating()), 404, "line_not_found")
            await refused(post(w, settings, 0, order_id + 999, line_id, rating()), 404, "order_not_found")
            assert await review_rows(w) == []
            await post(w, settings, 0, order_id, line_id, rating(4))
            await refused(
                post(w, settings, 0, order_id, line_id, rating(1), [png()]), 409, "already_reviewed"
            )
            rows = await review_rows(w)
            assert [r.rating_product for r in rows] == [4] and stored_files(settings.media_dir) == []
            assert len(await events_of(w, "reviews.posted")) == 1
            with pytest.raises(IntegrityError):
                async with transaction(w.sessionmaker) as s:
                    twin = rows[0]
                    s.add(Review(order_id=order_id, order_line_id=line_id, product_id=twin.product_id,
                                 shop_id=twin.shop_id, buyer_id=twin.buyer_id, title="x", rating_product=1,
                                 rating_logistics=1, rating_service=1, edit_until=twin.edit_until))  # fmt: skip
                    await s.flush()
        finally:
            await w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


def test_two_concurrent_posts_make_one_review(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = make_settings(db_url, tmp_path)
        w = await build(db_url, buyers=1)
        try:
            order_id, line_id = await completed(w, 0, "o1")
            results = await asyncio.gather(
                *(post(w, settings, 0, order_id, line_id, rating(i + 1), [png()]) for i in range(2)),
                return_exceptions=True,
            )
            ok = [r for r in results if not isinstance(r, BaseException)]
            failed = [r for r in results if isinstance(r, BaseException)]
            assert len(ok) == 1 and len(failed) == 1, results
            assert isinstance(failed[0], DomainError) and failed[0].status_code == 409
            assert failed[0].code == "already_reviewed"
            (row,) = await review_rows(w)
            assert row.rating_product == ok[0].rating_product
            assert len(await photo_rows(w)) == 1 and len(stored_files(settings.media_dir)) == 1
            assert len(await events_of(w, "reviews.posted")) == 1
        finally:
            await w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


def test_a_post_racing_an_uncommitted_twin_gets_409(db_url: str, tmp_path: Path) -> None:
    """The race the pre-check cannot see: the first review is written but not committed when the
    second post checks. The unique index makes the second wait and then refuse (on SQLite the
    second waits for the write lock instead and sees the first)."""

    async def scenario() -> None:
        settings = make_settings(db_url, tmp_path)
        w = await build(db_url, buyers=1)
        try:
            order_id, line_id = await completed(w, 0, "o1")
            async with transaction(w.sessionmaker) as first:
                await service.post_review(first, w.buyers[0], order_id, line_id, rating(5), [], settings)
                second = asyncio.create_task(post(w, settings, 0, order_id, line_id, rating(1), [png()]))
                await asyncio.sleep(0.5)
                assert not second.done()  # waiting on the first one's row (or write lock)
            error = await refused(second, 409, "already_reviewed")
            assert "already reviewed" in error.message
            assert [r.rating_product for r in await review_rows(w)] == [5]
            assert await photo_rows(w) == [] and stored_files(settings.media_dir) == []
        finally:
            await w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


def test_bad_input_stores_nothing(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = make_settings(db_url, tmp_path)
        w = await build(db_url, buyers=1)
        try:
            order_id, line_id = await completed(w, 0, "o1")
            for p, lg, sv in ((0, 5, 5), (6, 5, 5), (5, 0, 5), (5, 5, 6), (-1, 5, 5)):
                await refused(post(w, settings, 0, order_id, line_id, rating(p, lg, sv)), 422)
            await refused(post(w, settings, 0, order_id, line_id, rating(text="好" * 501)), 422)
            error = await refused(
                post(w, settings, 0, order_id, line_id, rating(), [png()] * 10), 422, "too_many_photos"
            )
            assert error.fields[0].field == "photos"
            # A text file calling itself a PNG, after two good photos: 415, and the good ones go too.
            fake = Upload("x.png", "image/png", b"not an image at all")
            error = await refused(
                post(w, settings, 0, order_id, line_id, rating(), [png(), png(), fake]), 415
            )
            assert error.fields[0].field == "photos[2]"
            gif = Upload("x.gif", "image/gif", b"GIF89a" + b"\x00" * 40)
            await refused(post(w, settings, 0, order_id, line_id, rating(), [gif]), 415)
            big = Upload("big.png", "image/png", b"\x89PNG" + b"\x00" * 64)
            await refused(
                post(
                    w,
                    make_settings(db_url, tmp_path, max_upload_bytes=32),
                    0,
                    order_id,
                    line_id,
                    rating(),
                    [big],
                ),
                413,
            )
            assert await review_rows(w) == [] and await photo_rows(w) == []
            assert stored_files(settings.media_dir) == []
            assert await events_of(w, "reviews.posted") == []
            # The same line is still open for a good review.
            await post(w, settings, 0, order_id, line_id, rating(text="好" * 500), [png()] * 9)
            assert [r.photo_count for r in await review_rows(w)] == [9]
        finally:
            await w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


def test_edit_inside_the_window_keeps_created_at(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = make_settings(db_url, tmp_path)
        w = await build(db_url, buyers=2)
        try:
            order_id, line_id = await completed(w, 0, "o1")
            posted_at = dt.datetime(2026, 11, 29, 8, 0, tzinfo=dt.UTC)
            await post(w, settings, 0, order_id, line_id, rating(2, 3, 3, "一般"), [png()], now=posted_at)

            async def edit(buyer: int, patch: ReviewPatch, at: dt.datetime, photos=()):  # type: ignore[no-untyped-def]
                async with transaction(w.sessionmaker) as s:
                    return await service.edit_review(
                        s, w.buyers[buyer], order_id, line_id, patch, list(photos), settings, at
                    )

            at = posted_at + dt.timedelta(hours=23, minutes=59)
            out = await edit(0, ReviewPatch(rating_product=4, text="洗过之后还不错"), at, [png(), png()])  # type: ignore[arg-type]
            assert (out.rating_product, out.rating_logistics, out.text, len(out.photos)) == (
                4,
                3,
                "洗过之后还不错",
                2,
            )
            (row,) = await review_rows(w)
            assert row.created_at == posted_at and row.edited_at == at and row.photo_count == 2
            assert len(await photo_rows(w)) == 2
            (event,) = await events_of(w, "reviews.edited")
            assert event["rating_product"] == 4 and event["created_at"] == posted_at.isoformat()
            # Nothing to change, someone else's review, no review yet: refused.
            await refused(edit(0, ReviewPatch(), at), 422, "nothing_to_change")
            await refused(edit(1, ReviewPatch(rating_product=1), at), 404)  # type: ignore[arg-type]
            await refused(edit(0, ReviewPatch(rating_product=9), at), 422)  # type: ignore[arg-type]
            # Photos can be removed.
            out = await edit(0, ReviewPatch(clear_photos=True), at)
            assert out.photos == [] and (await review_rows(w))[0].photo_count == 0
            # After the window: 409 and nothing changes.
            late = posted_at + dt.timedelta(hours=24, seconds=1)
            await refused(edit(0, ReviewPatch(rating_product=1), late), 409, "edit_window_closed")  # type: ignore[arg-type]
            (row,) = await review_rows(w)
            assert (row.rating_product, row.created_at, row.edited_at) == (4, posted_at, at)
            assert len(await events_of(w, "reviews.edited")) == 2
        finally:
            await w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


def test_edit_window_follows_the_setting_and_real_time(db_url: str, tmp_path: Path) -> None:
    """Without ``now`` the clock decides: a review whose window has passed (its row aged by the
    test) cannot be edited, and the order page no longer offers the edit."""

    async def scenario() -> None:
        settings = make_settings(db_url, tmp_path, review_edit_hours=2)
        w = await build(db_url, buyers=1)
        try:
            order_id, line_id = await completed(w, 0, "o1")
            await post(w, settings, 0, order_id, line_id, rating(3))
            (row,) = await review_rows(w)
            assert row.edit_until - row.created_at == dt.timedelta(hours=2)
            async with transaction(w.sessionmaker) as s:
                panel = await service.order_panel(s, w.buyers[0], await orders.load_order(s, order_id))
            assert panel is not None and panel.lines[0].editable
            async with transaction(w.sessionmaker) as s:
                aged = row.created_at - dt.timedelta(hours=3)
                await s.execute(
                    update(Review).values(created_at=aged, edit_until=aged + dt.timedelta(hours=2))
                )
            async with transaction(w.sessionmaker) as s:
                await refused(service.edit_review(s, w.buyers[0], order_id, line_id, ReviewPatch(rating_product=5),  # type: ignore[arg-type]
                                                  [], settings), 409, "edit_window_closed")  # fmt: skip
                panel = await service.order_panel(s, w.buyers[0], await orders.load_order(s, order_id))
                await refused(
                    service.review_form(s, w.buyers[0], order_id, line_id), 409, "edit_window_closed"
                )
            assert panel is not None and not panel.lines[0].editable and panel.lines[0].review is not None
            assert (await review_rows(w))[0].rating_product == 3
        finally:
            await w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


def test_refunded_orders_and_returned_lines_cannot_be_reviewed(db_url: str, tmp_path: Path) -> None:
    """Paid through the sandbox, so the refunds go through escrow in the ledger: an order refunded
    in full is 409 ``order_refunded``; a line refunded in full (shipping kept) is 409 ``line_refunded``."""

    async def scenario() -> None:
        settings = make_settings(db_url, tmp_path)
        w = await build(db_url, buyers=2)
        await set_shipping(w, 0, 800, None)
        try:
            ids = []
            for buyer in (0, 1):
                person = w.buyers[buyer]
                data = OrderIn(
                    items=[ItemIn(sku_id=w.skus[0], quantity=1)], address_id=w.addresses[person.id]
                )  # type: ignore[arg-type]
                async with transaction(w.sessionmaker) as s:
                    order = (await orders.place_order(s, person, data, f"o{buyer}")).orders[0]
                intent = await start(w, settings, buyer, [order.id], f"pay{buyer}")
                await buyer_pays(w, settings, intent)
                ids.append(order.id)
            await deliver(w, settings)
            for order_id in ids:
                await advance(w, order_id, "completed")
            async with transaction(w.sessionmaker) as s:
                first, second = [await orders.load_order(s, i) for i in ids]
            async with transaction(w.sessionmaker) as s:
                await payments.refund_order(s, first.id, first.paid_fen, "test full refund", "t:full",
                                            lines={first.lines[0].id: first.lines[0].line_total_fen}, shipping_fen=800)  # fmt: skip
                await payments.refund_order(s, second.id, second.lines[0].line_total_fen, "returned", "t:line",
                                            lines={second.lines[0].id: second.lines[0].line_total_fen})  # fmt: skip
            async with transaction(w.sessionmaker) as s:
                assert (await orders.load_order(s, first.id)).status == "refunded"
                assert (await orders.load_order(s, second.id)).status == "completed"
            await refused(post(w, settings, 0, first.id, first.lines[0].id, rating(1)), 409, "order_refunded")
            await refused(
                post(w, settings, 1, second.id, second.lines[0].id, rating(1)), 409, "line_refunded"
            )
            assert await review_rows(w) == []
            async with transaction(w.sessionmaker) as s:
                panel = await service.order_panel(s, w.buyers[1], await orders.load_order(s, second.id))
            assert panel is not None and panel.lines[0].blocked == "line_refunded"
            await ledger_ok(w)
        finally:
            await w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


def test_shop_replies_once_and_edits(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = make_settings(db_url, tmp_path)
        w = await build(db_url, buyers=1)
        try:
            order_id, line_id = await completed(w, 0, "o1")
            review = await post(w, settings, 0, order_id, line_id, rating(2, 5, 5, "偏小"))

            async def reply(actor, text: str, at: dt.datetime | None = None):  # type: ignore[no-untyped-def]
                async with transaction(w.sessionmaker) as s:
                    return await service.reply(s, actor, review.id, ReplyIn(text=text), at)

            first_at = dt.datetime(2026, 11, 29, 9, 0, tzinfo=dt.UTC)
            out = await reply(w.merchants[0], "  亲，建议拍大一码  ", first_at)
            assert (
                out.reply is not None and out.reply.text == "亲，建议拍大一码" and out.reply.edited_at is None
            )
            second_at = first_at + dt.timedelta(days=3)
            out = await reply(w.merchants[0], "已为您补发一件大一码", second_at)
            assert (
                out.reply is not None
                and out.reply.replied_at == first_at
                and out.reply.edited_at == second_at
            )
            (row,) = await review_rows(w)
            assert row.reply_text == "已为您补发一件大一码" and row.reply_by_id == w.merchants[0].id
            replies = await events_of(w, "reviews.replied")
            assert [e["first_reply"] for e in replies] == [True, False]
            assert replies[0]["review_id"] == review.id and replies[0]["rating_product"] == 2
            # The other shop's merchant, ops and an unknown review are refused; nothing changes.
            await refused(reply(w.merchants[1], "抢答"), 403, "not_your_shop")
            await refused(reply(w.ops, "平台代答"), 403, "not_your_shop")
            await refused(reply(w.merchants[0], "   "), 422)
            await refused(reply(w.merchants[0], "长" * 501), 422)
            async with transaction(w.sessionmaker) as s:
                await refused(
                    service.reply(s, w.merchants[0], review.id + 99, ReplyIn(text="x")),
                    404,
                    "review_not_found",
                )
            assert (await review_rows(w))[0].reply_text == "已为您补发一件大一码"
            assert len(await events_of(w, "reviews.replied")) == 2
        finally:
            await w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


def test_two_replies_racing_make_one_first_reply_and_one_edit(db_url: str, tmp_path: Path) -> None:
    """The second reply reads the review before the first commits, then waits for its row (on
    SQLite for the write lock): the one UPDATE decides on the committed row, so it is an edit, and
    what it returns is the row as written, not the copy it read first. The reply reads the
    review once and writes it once."""

    async def scenario() -> None:
        settings = make_settings(db_url, tmp_path)
        w = await build(db_url, buyers=1)
        try:
            order_id, line_id = await completed(w, 0, "o1")
            review = await post(w, settings, 0, order_id, line_id, rating(2))
            first_at = dt.datetime(2026, 11, 29, 9, 0, tzinfo=dt.UTC)
            second_at = first_at + dt.timedelta(minutes=1)

            async def second_reply():  # type: ignore[no-untyped-def]
                async with transaction(w.sessionmaker) as s:
                    return await service.reply(s, w.merchants[0], review.id, ReplyIn(text="二"), second_at)

            statements: list[str] = []

            def seen(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
                statements.append(" ".join(statement.split()))

            async with transaction(w.sessionmaker) as first:
                event.listen(w.engine.sync_engine, "before_cursor_execute", seen)  # type: ignore[attr-defined]
                await service.reply(first, w.merchants[0], review.id, ReplyIn(text="一"), first_at)
                event.remove(w.engine.sync_engine, "before_cursor_execute", seen)  # type: ignore[attr-defined]
                racing = asyncio.create_task(second_reply())
                await asyncio.sleep(0.5)
                assert not racing.done()  # waiting on the first one's row (or the write lock)
            out = await racing
            assert out.reply is not None and (out.reply.text, out.reply.replied_at, out.reply.edited_at) == (
                "二", first_at, second_at,
            )  # fmt: skip
            (row,) = await review_rows(w)
            assert (row.reply_text, row.replied_at, row.reply_edited_at) == ("二", first_at, second_at)
            assert [e["first_reply"] for e in await events_of(w, "reviews.replied")] == [True, False]
            reads = [q for q in statements if re.match(r"SELECT .* FROM reviews\b", q)]
            writes = [q for q in statements if re.match(r"UPDATE reviews\b", q)]
            assert (len(reads), len(writes)) == (1, 1), statements
        finally:
            await w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


def test_staff_may_reply(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = make_settings(db_url, tmp_path)
        w = await build(db_url, buyers=2)
        try:
            order_id, line_id = await completed(w, 0, "o1")
            review = await post(w, settings, 0, order_id, line_id, rating(5))
            staff = w.buyers[1]
            async with transaction(w.sessionmaker) as s:
                await refused(service.reply(s, staff, review.id, ReplyIn(text="谢谢")), 403)
            async with transaction(w.sessionmaker) as s:
                await catalog.add_staff(s, w.merchants[0], w.shops[0], staff.username)
            async with transaction(w.sessionmaker) as s:
                out = await service.reply(s, staff, review.id, ReplyIn(text="谢谢支持"))
            assert out.reply is not None and (await review_rows(w))[0].reply_by_id == staff.id
            async with transaction(w.sessionmaker) as s:
                shop_list = await service.list_shop_reviews(s, staff, w.shops[0], before_id=None, limit=10)
                await refused(
                    service.list_shop_reviews(s, w.merchants[1], w.shops[0], before_id=None, limit=10), 403
                )
                await refused(
                    service.list_shop_reviews(s, staff, w.shops[0], filter="nope", before_id=None, limit=10),
                    422,
                )
            assert [r.id for r in shop_list] == [review.id] and shop_list[0].order_id == order_id
        finally:
            await w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


def test_product_summary_figures(db_url: str, tmp_path: Path) -> None:
    """Three known reviews: averages to two decimals (half up), count, distribution, filters."""

    async def scenario() -> None:
        settings = make_settings(db_url, tmp_path)
        w = await build(db_url, buyers=3)
        try:
            given = [rating(5, 5, 4, "很好"), rating(4, 3, 4), rating(2, 3, 5, "起球")]
            ids = []
            for buyer, data in enumerate(given):
                order_id, line_id = await completed(w, buyer, f"o{buyer}")
                photos = [png()] if buyer != 1 else []
                ids.append((await post(w, settings, buyer, order_id, line_id, data, photos)).id)
            product_id = (await review_rows(w))[0].product_id
            async with transaction(w.sessionmaker) as s:
                figures = await service.ratings(s, product_id)
                page = await service.product_reviews(s, product_id)
                empty = await service.ratings(s, product_id + 1)
                photos_only = await service.list_product_reviews(
                    s, None, product_id, filter="photos", before_id=None, limit=10
                )
                low = await service.list_product_reviews(
                    s, None, product_id, filter="low", before_id=None, limit=10
                )
                first_two = await service.list_product_reviews(s, None, product_id, before_id=None, limit=2)
                rest = await service.list_product_reviews(
                    s, None, product_id, before_id=first_two[-1].id, limit=2
                )
                await refused(
                    service.list_product_reviews(s, None, product_id, filter="best", before_id=None, limit=2),
                    422,
                )
                await refused(service.product_ratings(s, None, product_id + 999), 404)
            assert figures.count == 3
            # 11/3 = 3.666.. -> 3.67; 11/3 -> 3.67; 13/3 = 4.333.. -> 4.33
            assert (figures.avg_product, figures.avg_logistics, figures.avg_service) == (3.67, 3.67, 4.33)
            assert figures.distribution == {"1": 0, "2": 1, "3": 0, "4": 1, "5": 1}
            assert (figures.with_photos, figures.low) == (2, 1)
            assert (empty.count, empty.avg_product, empty.distribution["5"]) == (0, None, 0)
            assert [r.id for r in page.latest] == ids[::-1]  # newest first
            assert page.latest[0].order_id is None and page.latest[0].buyer == "b**"  # public: no order ids
            assert [r.id for r in photos_only] == [ids[2], ids[0]]
            assert [r.id for r in low] == [ids[2]]
            assert [r.id for r in first_two] == [ids[2], ids[1]] and [r.id for r in rest] == [ids[0]]
        finally:
            await w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


def test_mask() -> None:
    assert service.mask("王芳") == "王**"
    assert service.mask("Li Wei") == "L**"
    assert service.mask("  ") == "***"


def test_order_panel_for_buyer_shop_and_unfinished_orders(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = make_settings(db_url, tmp_path)
        w = await build(db_url, buyers=1)
        try:
            paid_id = await placed(w, 0, "o-paid")
            order_id, line_id = await completed(w, 0, "o1")
            async with transaction(w.sessionmaker) as s:
                assert await service.order_panel(s, w.buyers[0], await orders.load_order(s, paid_id)) is None
                panel = await service.order_panel(s, w.buyers[0], await orders.load_order(s, order_id))
            assert panel is not None and panel.is_buyer and not panel.can_reply
            assert panel.lines[0].review is None and panel.lines[0].blocked is None
            await post(w, settings, 0, order_id, line_id, rating(4))
            async with transaction(w.sessionmaker) as s:
                shop_view = await service.order_panel(s, w.merchants[0], await orders.load_order(s, order_id))
            assert shop_view is not None and shop_view.can_reply and not shop_view.is_buyer
            assert shop_view.lines[0].review is not None and not shop_view.lines[0].editable
        finally:
            await w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())
