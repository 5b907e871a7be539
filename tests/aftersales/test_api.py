"""The after-sales JSON API over HTTP with bearer tokens, on SQLite and PostgreSQL: the whole
return flow, evidence photos, the thread, and every bad request answered with a clear 4xx that
changes nothing."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient
from sqlalchemy import func, select, update

from tests.aftersales.util import (
    Shop,
    carrier_reports,
    delivered_order,
    hours,
    line_rows,
    order_row,
    paid_order,
    shop_world,
)
from tests.helpers import image_bytes, token_for
from tests.web.test_pages import sign_in
from trustlive.aftersales.models import AftersalesMessage, AftersalesPhoto, AftersalesRequest
from trustlive.config import Settings
from trustlive.db import transaction
from trustlive.web.pagination import encode_cursor

_loop: asyncio.Runner | None = None


def run(coro):  # type: ignore[no-untyped-def]
    assert _loop is not None
    return _loop.run(coro)


@pytest.fixture
def world(client: TestClient, settings: Settings, tmp_path: Path) -> Iterator[Shop]:
    global _loop
    with asyncio.Runner() as runner:
        _loop = runner
        shop = run(shop_world(settings.database_url, tmp_path / "world"))
        try:
            yield shop
        finally:
            run(shop.w.engine.dispose())
            _loop = None


def _count(shop: Shop, table: type) -> int:
    async def go() -> int:
        async with transaction(shop.w.sessionmaker) as s:
            return await s.scalar(select(func.count()).select_from(table)) or 0

    return run(go())


def _error(response, status: int, code: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code, response.text


def test_return_flow_over_the_api(client: TestClient, world: Shop) -> None:
    shop = world
    order_id = run(delivered_order(shop, (shop.w.skus[0], 1), confirm=True))
    (line,) = run(line_rows(shop, order_id))
    buyer, merchant = token_for(client, shop.buyer.username), token_for(client, shop.merchant.username)

    options = client.get(f"/api/v1/aftersales/options/{order_id}", headers=buyer).json()
    kinds = {(o["line_id"], o["kind"]): o for o in options["options"]}
    assert kinds[(line.id, "return_refund")]["reasons"][0] == "no_reason"
    assert kinds[(line.id, "return_refund")]["goods_fen"] == 5900
    assert kinds[(line.id, "return_refund")]["shipping_fen"] == 800

    body = {"order_id": order_id, "line_id": line.id, "kind": "return_refund", "reason": "quality",
            "amount_fen": 6700, "description": "起球"}  # fmt: skip
    opened = client.post("/api/v1/aftersales", json=body, headers=buyer)
    assert opened.status_code == 201, opened.text
    request_id = opened.json()["id"]
    assert opened.json()["seller_cause"] is True and opened.json()["status"] == "pending"
    photo = client.post(f"/api/v1/aftersales/{request_id}/photos", headers=buyer,
                        files={"data": ("p.webp", image_bytes("WEBP"), "image/webp")})  # fmt: skip
    assert photo.status_code == 201, photo.text
    assert client.get(photo.json()["url"]).status_code == 200

    queue = client.get(f"/api/v1/aftersales/shop/{shop.w.shops[0]}", headers=merchant).json()
    assert [r["id"] for r in queue["items"]] == [request_id]
    approved = client.post(f"/api/v1/aftersales/{request_id}/approve", headers=merchant)
    assert approved.json()["status"] == "awaiting_return" and approved.json()["postage_payer"] == "shop"
    detail = client.get(f"/api/v1/aftersales/{request_id}", headers=buyer).json()
    assert detail["return_address"]["recipient"] == "退货组" and "ship_back" in detail["actions"]
    assert len(detail["request"]["photos"]) == 1

    # The outbound parcel's number is not a return parcel.
    _error(client.post(f"/api/v1/aftersales/{request_id}/ship-back", headers=buyer,
                       json={"carrier": "SF", "tracking_no": "SFO01"}), 409, "tracking_in_use")  # fmt: skip
    sent = client.post(f"/api/v1/aftersales/{request_id}/ship-back", headers=buyer,
                       json={"carrier": "SF", "tracking_no": "SF20260001"})  # fmt: skip
    assert sent.status_code == 200 and sent.json()["status"] == "return_shipped"
    run(carrier_reports(shop, hours(49)))
    # The shop's view notes the carrier's arrival and shows the refund deadline.
    seen = client.get(f"/api/v1/aftersales/{request_id}", headers=merchant).json()["request"]
    assert seen["return_arrived_at"] is not None and seen["due_at"] is not None
    done = client.post(f"/api/v1/aftersales/{request_id}/confirm-arrival", headers=merchant)
    assert done.status_code == 200
    assert (done.json()["status"], done.json()["refund_fen"]) == ("refunded", 6700)
    order = run(order_row(shop, order_id))
    assert (order.refunded_fen, order.shipping_refunded_fen) == (6700, 800)
    mine = client.get("/api/v1/aftersales", headers=buyer).json()
    assert [r["id"] for r in mine["items"]] == [request_id] and mine["next_cursor"] is None


def test_thread_over_the_api(client: TestClient, world: Shop) -> None:
    shop = world
    order_id = run(paid_order(shop, (shop.w.skus[0], 1)))
    buyer, merchant = token_for(client, shop.buyer.username), token_for(client, shop.merchant.username)
    ops, other = token_for(client, shop.w.ops.username), token_for(client, shop.w.buyers[1].username)
    body = {"order_id": order_id, "kind": "refund_only", "reason": "not_shipped", "amount_fen": 6700}
    request_id = client.post("/api/v1/aftersales", json=body, headers=buyer).json()["id"]
    for headers, text in ((buyer, "还没发货"), (merchant, "今天发"), (ops, "请双方协商")):
        posted = client.post(
            f"/api/v1/aftersales/{request_id}/messages", json={"body": text}, headers=headers
        )
        assert posted.status_code == 201, posted.text
    message_id = posted.json()["id"]
    photo = client.post(f"/api/v1/aftersales/{request_id}/messages/{message_id}/photos", headers=ops,
                        files={"data": ("p.png", image_bytes(), "image/png")})  # fmt: skip
    assert photo.status_code == 201
    # Only its author adds photos to a message.
    _error(client.post(f"/api/v1/aftersales/{request_id}/messages/{message_id}/photos", headers=buyer,
                       files={"data": ("p.png", image_bytes(), "image/png")}), 404, "message_not_found")  # fmt: skip
    thread = client.get(f"/api/v1/aftersales/{request_id}/messages", headers=merchant).json()
    assert [(m["side"], m["body"], len(m["photos"])) for m in thread] == [
        ("buyer", "还没发货", 0), ("shop", "今天发", 0), ("ops", "请双方协商", 1),
    ]  # fmt: skip
    # Strangers see nothing and write nothing.
    _error(client.get(f"/api/v1/aftersales/{request_id}/messages", headers=other), 404, "request_not_found")
    _error(client.post(f"/api/v1/aftersales/{request_id}/messages", json={"body": "x"}, headers=other), 404,
           "request_not_found")  # fmt: skip
    _error(client.post(f"/api/v1/aftersales/{request_id}/messages", json={"body": ""}, headers=buyer), 422,
           "validation_error")  # fmt: skip
    assert _count(shop, AftersalesMessage) == 3 and _count(shop, AftersalesPhoto) == 1


def test_bad_requests_are_refused_and_change_nothing(client: TestClient, world: Shop) -> None:
    shop = world
    w = shop.w
    paid = run(paid_order(shop, (w.skus[0], 1), key="p"))
    delivered = run(delivered_order(shop, (w.skus[0], 1), (shop.second_sku, 1), key="d"))
    suit, hat = run(line_rows(shop, delivered))
    buyer, other = token_for(client, shop.buyer.username), token_for(client, w.buyers[1].username)
    merchant, ops = token_for(client, shop.merchant.username), token_for(client, w.ops.username)

    def ask(headers, **fields):  # type: ignore[no-untyped-def]
        body = {"order_id": delivered, "line_id": suit.id, "kind": "return_refund", "reason": "no_reason",
                "amount_fen": 5900, **fields}  # fmt: skip
        return client.post(
            "/api/v1/aftersales", json={k: v for k, v in body.items() if v is not None}, headers=headers
        )

    _error(ask(other), 404, "order_not_found")  # not your order
    _error(ask(buyer, order_id=10**9), 404, "order_not_found")
    _error(ask(buyer, line_id=10**9), 404, "line_not_found")
    _error(ask(buyer, amount_fen=5901), 422, "amount_exceeds_refundable")  # no reason: no shipping back
    _error(ask(buyer, reason="quality", amount_fen=6701), 422, "amount_exceeds_refundable")
    _error(ask(buyer, amount_fen=0), 422, "validation_error")
    _error(ask(buyer, amount_fen="59"), 422, "validation_error")
    _error(ask(buyer, kind="exchange"), 422, "validation_error")
    _error(ask(buyer, reason="not_shipped"), 422, "reason_not_possible")
    _error(ask(buyer, line_id=None), 409, "wrong_kind")  # a return names its item
    _error(
        ask(buyer, order_id=paid, line_id=None, kind="return_refund"), 409, "wrong_kind"
    )  # not arrived yet
    _error(ask(buyer, order_id=paid, line_id=None, kind="refund_only", reason="not_shipped", amount_fen=6701), 422,
           "amount_exceeds_refundable")  # fmt: skip
    assert _count(shop, AftersalesRequest) == 0
    assert run(order_row(shop, delivered)).settlement_holds == 0

    opened = ask(buyer)
    assert opened.status_code == 201
    request_id = opened.json()["id"]
    _error(ask(buyer, reason="quality"), 409, "request_open")  # the same line again
    _error(
        ask(buyer, line_id=None, kind="refund_only", reason="not_received", amount_fen=100),
        409,
        "request_open",
    )
    assert _count(shop, AftersalesRequest) == 1 and run(order_row(shop, delivered)).settlement_holds == 1

    # Photos: not an image, a type that is not accepted, too many.
    _error(client.post(f"/api/v1/aftersales/{request_id}/photos", headers=buyer,
                       files={"data": ("x.png", b"plain text", "image/png")}), 415, "unsupported_media_type")  # fmt: skip
    _error(client.post(f"/api/v1/aftersales/{request_id}/photos", headers=buyer,
                       files={"data": ("x.gif", image_bytes("GIF"), "image/gif")}), 415, "unsupported_media_type")  # fmt: skip
    _error(client.post(f"/api/v1/aftersales/{request_id}/photos", headers=merchant,
                       files={"data": ("x.png", image_bytes(), "image/png")}), 403, "not_buyer")  # fmt: skip
    for _ in range(9):
        assert client.post(f"/api/v1/aftersales/{request_id}/photos", headers=buyer,
                           files={"data": ("x.png", image_bytes(), "image/png")}).status_code == 201  # fmt: skip
    _error(client.post(f"/api/v1/aftersales/{request_id}/photos", headers=buyer,
                       files={"data": ("x.png", image_bytes(), "image/png")}), 422, "too_many_photos")  # fmt: skip
    assert _count(shop, AftersalesPhoto) == 9

    # Wrong party, wrong role, wrong state.
    _error(client.post(f"/api/v1/aftersales/{request_id}/approve", headers=buyer), 403, "not_shop")
    _error(client.post(f"/api/v1/aftersales/{request_id}/approve", headers=other), 404, "request_not_found")
    _error(client.post(f"/api/v1/aftersales/{request_id}/withdraw", headers=merchant), 403, "not_buyer")
    _error(client.post(f"/api/v1/aftersales/{request_id}/arbitrate", headers=merchant,
                       json={"decision": "buyer", "note": "ok"}), 403, "role_required")  # fmt: skip
    _error(client.post(f"/api/v1/aftersales/{request_id}/arbitrate", headers=ops,
                       json={"decision": "buyer", "note": "ok"}), 409, "invalid_transition")  # fmt: skip
    _error(client.post(f"/api/v1/aftersales/{request_id}/escalate", headers=buyer), 409, "invalid_transition")
    _error(client.post(f"/api/v1/aftersales/{request_id}/confirm-arrival", headers=merchant), 409,
           "invalid_transition")  # fmt: skip
    _error(client.post(f"/api/v1/aftersales/{request_id}/ship-back", headers=buyer,
                       json={"carrier": "SF", "tracking_no": "SF123456"}), 409, "invalid_transition")  # fmt: skip
    _error(client.post(f"/api/v1/aftersales/{request_id}/reject", headers=merchant, json={"reason": ""}), 422,
           "validation_error")  # fmt: skip
    _error(client.get(f"/api/v1/aftersales/shop/{w.shops[1]}", headers=merchant), 403, "not_your_shop")
    _error(client.get(f"/api/v1/aftersales/shop/{w.shops[0]}?tab=nope", headers=merchant), 422, "bad_tab")
    _error(client.get("/api/v1/aftersales/escalated", headers=buyer), 403, "role_required")
    assert client.get(f"/api/v1/aftersales/{request_id}").status_code == 401
    detail = client.get(f"/api/v1/aftersales/{request_id}", headers=buyer).json()["request"]
    assert (detail["status"], detail["refund_fen"]) == ("pending", 0)

    # Approve once; twice is a conflict and refunds nothing more.
    assert client.post(f"/api/v1/aftersales/{request_id}/approve", headers=merchant).status_code == 200
    _error(
        client.post(f"/api/v1/aftersales/{request_id}/approve", headers=merchant), 409, "invalid_transition"
    )
    _error(client.post(f"/api/v1/aftersales/{request_id}/reject", headers=merchant, json={"reason": "late"}), 409,
           "invalid_transition")  # fmt: skip
    assert run(order_row(shop, delivered)).refunded_fen == 0


def test_the_shop_queue_pages_by_deadline(client: TestClient, world: Shop) -> None:
    """Deadline-ordered tabs continue after the last (deadline, id) seen: every request once, in
    order, ties broken by id, those without a deadline last (before: the cursor was ignored and
    the first page came back forever)."""
    shop = world
    w = shop.w
    ids = []
    for i in range(5):
        order_id = run(paid_order(shop, (w.skus[0], 1), key=f"q{i}"))
        opened = client.post("/api/v1/aftersales", json={"order_id": order_id, "kind": "refund_only",
                                                         "reason": "not_shipped", "amount_fen": 100},
                             headers=token_for(client, shop.buyer.username))  # fmt: skip
        assert opened.status_code == 201, opened.text
        ids.append(opened.json()["id"])
    base = hours(10)
    deadlines = [base + dt.timedelta(hours=2), base, base, None, None]

    async def set_deadlines() -> None:
        async with transaction(w.sessionmaker) as s:
            for request_id, due in zip(ids, deadlines, strict=True):
                await s.execute(
                    update(AftersalesRequest).where(AftersalesRequest.id == request_id).values(due_at=due)
                )

    run(set_deadlines())
    merchant = token_for(client, shop.merchant.username)
    url = f"/api/v1/aftersales/shop/{w.shops[0]}?tab=answer&limit=2"
    pages, cursor = [], None
    for _ in range(5):
        got = client.get(url + (f"&cursor={cursor}" if cursor else ""), headers=merchant)
        assert got.status_code == 200, got.text
        pages.append([r["id"] for r in got.json()["items"]])
        cursor = got.json()["next_cursor"]
        if cursor is None:
            break
    assert pages == [[ids[1], ids[2]], [ids[0], ids[3]], [ids[4]]]
    # A cursor of the newest-first lists does not fit a deadline tab, and the reverse.
    closed_cursor = "eyJiZWZvcmUiOjV9"  # {"before":5}
    _error(client.get(url + f"&cursor={closed_cursor}", headers=merchant), 400, "bad_cursor")
    first = client.get(url, headers=merchant).json()["next_cursor"]
    closed = f"/api/v1/aftersales/shop/{w.shops[0]}?tab=closed&limit=2&cursor={first}"
    _error(client.get(closed, headers=merchant), 400, "bad_cursor")


def test_a_queue_cursor_out_of_range_is_a_bad_cursor(client: TestClient, world: Shop) -> None:
    """A (deadline, id) cursor whose deadline lies past year 9999 overflowed the date arithmetic,
    and an id past 2^62 the database's BIGINT: only the generic 422 ``bad_value`` backstop caught
    them (with a warning logged). Both are a 400 ``bad_cursor``, on the API and on the page."""
    shop = world
    merchant = token_for(client, shop.merchant.username)
    url = f"/api/v1/aftersales/shop/{shop.w.shops[0]}?tab=answer"
    for data in ({"due": 10**30, "after": 1}, {"due": 2**62, "after": 1}, {"due": 0, "after": 2**63}):
        _error(client.get(url + f"&cursor={encode_cursor(data)}", headers=merchant), 400, "bad_cursor")
    page = f"/console/aftersales?shop={shop.w.shops[0]}&tab=answer"
    sign_in(client, shop.merchant.username)
    assert client.get(page + f"&cursor={encode_cursor({'due': 10**30, 'after': 1})}").status_code == 400
    assert client.get(page).status_code == 200
