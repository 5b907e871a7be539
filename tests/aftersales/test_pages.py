"""The after-sales pages in both languages, driven through their forms with a cookie session and
CSRF tokens, on SQLite and PostgreSQL: the order page's panel, the new-request form (with photos
and its errors), the buyer's list and detail (ship back, escalate), the shop's queue and answers,
ops' queue and arbitration, the thread, and who may see what."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient
from sqlalchemy import func, select

from tests.aftersales.util import (
    Shop,
    carrier_reports,
    delivered_order,
    hours,
    line_rows,
    open_request,
    paid_order,
    request_row,
    ship,
    shop_world,
)
from tests.helpers import create_user, image_bytes
from tests.web.test_pages import csrf_of, marked, sign_in
from trustlive.aftersales.models import AftersalesPhoto, AftersalesRequest
from trustlive.config import Settings
from trustlive.db import transaction
from trustlive.orders.models import Order

_loop: asyncio.Runner | None = None


def run(coro):  # type: ignore[no-untyped-def]
    """The world's engine keeps its connections on one event loop (asyncpg's are bound to it), so
    every step of a test runs on the same one."""
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


def _lang(client: TestClient, lang: str) -> None:
    client.cookies.set("tl_lang", lang)


def _request_id(location: str) -> int:
    found = re.fullmatch(r"/aftersales/(\d+)\?done=opened", location)
    assert found, location
    return int(found.group(1))


def test_buyer_returns_an_item_through_the_pages(client: TestClient, world: Shop) -> None:
    shop = world
    order_id = run(delivered_order(shop, (shop.w.skus[0], 1), (shop.second_sku, 1), confirm=True))
    suit, hat = run(line_rows(shop, order_id))
    token = sign_in(client, shop.buyer.username)

    page = client.get(f"/orders/{order_id}")
    assert page.status_code == 200
    assert 'id="aftersales"' in page.text
    assert f"/aftersales/new?order={order_id}&amp;line={suit.id}&amp;kind=return_refund" in page.text
    assert "No-reason return possible until" in page.text

    form_page = client.get(
        "/aftersales/new", params={"order": order_id, "line": suit.id, "kind": "return_refund"}
    )
    assert form_page.status_code == 200
    assert 'value="no_reason"' in form_page.text and "Up to ¥59.00" in form_page.text
    assert "For no-reason returns you pay the postage." in form_page.text

    base = {"_csrf_token": token, "order_id": str(order_id), "line_id": str(suit.id), "kind": "return_refund",
            "reason": "no_reason", "description": "尺码偏小"}  # fmt: skip
    # Too much: the form comes back with the amount marked, nothing stored.
    too_much = client.post("/aftersales", data={**base, "amount": "68.00"})
    assert too_much.status_code == 422 and marked(too_much.text) == {"amount"}
    assert "尺码偏小" in too_much.text
    # Not an image.
    bad_photo = client.post("/aftersales", data={**base, "amount": "59.00"},
                            files=[("photos", ("note.png", b"not an image", "image/png"))])  # fmt: skip
    assert bad_photo.status_code == 415 and "photos" in marked(bad_photo.text)
    assert _count(shop, AftersalesRequest) == 0 and _count(shop, AftersalesPhoto) == 0
    assert run(_holds(shop, order_id)) == 0

    created = client.post("/aftersales", data={**base, "amount": "59.00"}, follow_redirects=False,
                          files=[("photos", ("a.png", image_bytes(), "image/png")),
                                 ("photos", ("b.jpg", image_bytes("JPEG"), "image/jpeg"))])  # fmt: skip
    assert created.status_code == 303, created.text
    request_id = _request_id(created.headers["location"])
    detail = client.get(created.headers["location"])
    assert detail.status_code == 200
    assert "Request sent." in detail.text and 'data-status="pending"' in detail.text
    assert (
        detail.text.count('class="thumbs as-photos"') == 1
        and len(re.findall(r'src="/media/aftersales/', detail.text)) == 2
    )
    for url in re.findall(r'src="(/media/aftersales/[^"]+)"', detail.text):
        assert client.get(url).status_code == 200
    listing = client.get("/aftersales")
    assert f'data-request="{request_id}"' in listing.text and "Awaiting the shop" in listing.text

    # A second request for the same item is refused while this one is open.
    again = client.post("/aftersales", data={**base, "amount": "10.00"})
    assert again.status_code == 409
    assert _count(shop, AftersalesRequest) == 1

    # The shop's queue, then its answer.
    token = sign_in(client, shop.merchant.username)
    queue = client.get("/console/aftersales", params={"shop": shop.w.shops[0]})
    assert queue.status_code == 200 and f'data-request="{request_id}"' in queue.text
    assert "Shop answers by" in queue.text
    answer = client.get(f"/aftersales/{request_id}")
    assert 'id="approve"' in answer.text and 'id="reject"' in answer.text and "尺码偏小" in answer.text
    empty = client.post(f"/aftersales/{request_id}/reject", data={"_csrf_token": token, "reason": ""})
    assert empty.status_code == 422 and marked(empty.text) == {"reason"}
    approved = client.post(
        f"/aftersales/{request_id}/approve", data={"_csrf_token": token}, follow_redirects=False
    )
    assert approved.status_code == 303

    # The buyer sees the return address and who pays, and ships it back.
    token = sign_in(client, shop.buyer.username)
    detail = client.get(f"/aftersales/{request_id}")
    assert 'id="return-address"' in detail.text and "退货组" in detail.text
    assert 'data-payer="buyer"' in detail.text and 'id="ship-back"' in detail.text
    wrong = client.post(f"/aftersales/{request_id}/ship-back",
                        data={"_csrf_token": token, "carrier": "SF", "tracking_no": "no!"})  # fmt: skip
    assert wrong.status_code == 422 and marked(wrong.text) == {"tracking_no"}
    sent = client.post(f"/aftersales/{request_id}/ship-back", follow_redirects=False,
                       data={"_csrf_token": token, "carrier": "YTO", "tracking_no": "YT 8800 1234"})  # fmt: skip
    assert sent.status_code == 303
    assert run(request_row(shop, request_id)).return_tracking_no == "YT88001234"

    token = sign_in(client, shop.merchant.username)
    done = client.post(f"/aftersales/{request_id}/confirm-arrival", data={"_csrf_token": token},
                       follow_redirects=False)  # fmt: skip
    assert done.status_code == 303
    detail = client.get(done.headers["location"])
    assert "Arrival confirmed; the buyer is refunded." in detail.text and 'id="refunded"' in detail.text
    assert run(request_row(shop, request_id)).refund_fen == 5900


async def _holds(shop: Shop, order_id: int) -> int:
    async with transaction(shop.w.sessionmaker) as s:
        order = await s.get(Order, order_id)
        return order.settlement_holds


def _open(shop: Shop, order_id: int, **fields: object) -> int:
    return run(open_request(shop, order_id, **fields))


def test_reject_escalate_and_arbitrate_through_the_pages(
    client: TestClient, world: Shop, settings: Settings
) -> None:
    shop = world
    create_user(settings.database_url, "care1", "care_specialist")
    order_id = run(delivered_order(shop, (shop.w.skus[0], 1)))
    (line,) = run(line_rows(shop, order_id))
    request_id = _open(shop, order_id, kind="refund_only", reason="quality", amount_fen=2000, line_id=line.id,
                       description="袖口开线")  # fmt: skip

    token = sign_in(client, shop.merchant.username)
    rejected = client.post(f"/aftersales/{request_id}/reject", data={"_csrf_token": token, "reason": "照片看不清"},
                           follow_redirects=False)  # fmt: skip
    assert rejected.status_code == 303
    message = client.post(f"/aftersales/{request_id}/messages", follow_redirects=False,
                          data={"_csrf_token": token, "body": "请拍清楚一点"},
                          files=[("photos", ("tag.png", image_bytes(), "image/png"))])  # fmt: skip
    assert message.status_code == 303

    token = sign_in(client, shop.buyer.username)
    page = client.get(f"/aftersales/{request_id}")
    assert 'data-status="rejected"' in page.text and "照片看不清" in page.text and "请拍清楚一点" in page.text
    assert f'action="/aftersales/{request_id}/escalate"' in page.text
    assert "care-link" not in page.text and "arbitrate" not in page.text
    escalated = client.post(f"/aftersales/{request_id}/escalate", data={"_csrf_token": token, "note": "请平台看看"},
                            follow_redirects=False)  # fmt: skip
    assert escalated.status_code == 303
    # The buyer cannot arbitrate, nor see ops' queue.
    assert client.post(f"/aftersales/{request_id}/arbitrate",
                       data={"_csrf_token": token, "decision": "buyer", "note": "me"}).status_code == 403  # fmt: skip
    assert client.get("/ops/aftersales").status_code == 403

    token = sign_in(client, shop.w.ops.username)
    queue = client.get("/ops/aftersales")
    assert queue.status_code == 200 and f'data-request="{request_id}"' in queue.text
    page = client.get(f"/aftersales/{request_id}")
    assert 'id="arbitrate"' in page.text and f'href="/care/new?request_id={request_id}"' in page.text
    assert "请平台看看" in page.text and "请拍清楚一点" in page.text
    missing = client.post(
        f"/aftersales/{request_id}/arbitrate", data={"_csrf_token": token, "decision": "buyer"}
    )
    assert missing.status_code == 422 and marked(missing.text) == {"note"}
    decided = client.post(f"/aftersales/{request_id}/arbitrate", follow_redirects=False,
                          data={"_csrf_token": token, "decision": "buyer", "note": "开线明显"})  # fmt: skip
    assert decided.status_code == 303
    row = run(request_row(shop, request_id))
    assert (row.status, row.resolution, row.refund_fen, row.arbitration_note) == (
        "refunded",
        "arbitrated_buyer",
        2000,
        "开线明显",
    )

    # A care specialist reads the request (to open a care case from it) but cannot write in it.
    token = sign_in(client, "care1")
    page = client.get(f"/aftersales/{request_id}")
    assert page.status_code == 200 and 'id="care-link"' in page.text and 'id="message-form"' not in page.text


def test_strangers_get_404_and_the_wrong_party_403(client: TestClient, world: Shop) -> None:
    shop = world
    order_id = run(paid_order(shop, (shop.w.skus[0], 1)))
    request_id = _open(shop, order_id, kind="refund_only", reason="not_shipped", amount_fen=6700)
    # Another buyer: no such request, no such order.
    token = sign_in(client, shop.w.buyers[1].username)
    assert client.get(f"/aftersales/{request_id}").status_code == 404
    assert client.get("/aftersales/new", params={"order": order_id}).status_code == 404
    assert client.post(f"/aftersales/{request_id}/withdraw", data={"_csrf_token": token}).status_code == 404
    form = {"_csrf_token": token, "order_id": str(order_id), "line_id": "", "kind": "refund_only",
            "reason": "not_shipped", "amount": "10.00"}  # fmt: skip
    assert client.post("/aftersales", data=form).status_code == 404
    # The other shop's merchant: not its request, not its queue.
    token = sign_in(client, shop.w.merchants[1].username)
    assert client.get(f"/aftersales/{request_id}").status_code == 404
    assert client.post(f"/aftersales/{request_id}/approve", data={"_csrf_token": token}).status_code == 404
    assert client.get("/console/aftersales", params={"shop": shop.w.shops[0]}).status_code == 403
    # The buyer cannot answer for the shop.
    token = sign_in(client, shop.buyer.username)
    assert client.post(f"/aftersales/{request_id}/approve", data={"_csrf_token": token}).status_code == 403
    row = run(request_row(shop, request_id))
    assert (row.status, row.refund_fen) == ("pending", 0)
    assert _count(shop, AftersalesRequest) == 1


def test_main_screens_in_chinese(client: TestClient, world: Shop) -> None:
    shop = world
    order_id = run(delivered_order(shop, (shop.w.skus[0], 1)))
    (line,) = run(line_rows(shop, order_id))
    request_id = _open(
        shop, order_id, kind="return_refund", reason="no_reason", amount_fen=5900, line_id=line.id
    )
    sign_in(client, shop.buyer.username)
    _lang(client, "zh_Hans")
    order = client.get(f"/orders/{order_id}").text
    assert "退款 / 售后" in order and "待商家处理" in order and "七天无理由" in order
    form = client.get("/aftersales/new", params={"order": order_id, "kind": "refund_only"}).text
    assert "目前无法申请" in form  # an open request on the order: nothing else until it ends
    detail = client.get(f"/aftersales/{request_id}").text
    assert (
        "售后申请" in detail
        and "待商家处理" in detail
        and "逾期未处理将自动同意" in detail
        and "撤销申请" in detail
    )
    assert "退货退款" in client.get("/aftersales").text
    sign_in(client, shop.merchant.username)
    _lang(client, "zh_Hans")
    queue = client.get("/console/aftersales", params={"shop": shop.w.shops[0]}).text
    assert "待处理" in queue and "商家需在" in queue
    answer = client.get(f"/aftersales/{request_id}").text
    assert "同意" in answer and "或者拒绝，并说明原因" in answer
    # Errors in Chinese too: a reason missing on the reject form.
    token = csrf_of(answer)
    empty = client.post(f"/aftersales/{request_id}/reject", data={"_csrf_token": token, "reason": ""})
    assert empty.status_code == 422 and "请说明原因" in empty.text


def test_a_claim_closed_as_outdated_tells_the_buyer_what_next(client: TestClient, world: Shop) -> None:
    """ "Not received", then the buyer confirms receipt on the order page: back on the order page
    the claim is closed (no refund), the panel offers a return again, and the request page says
    why and what to do, in both languages."""
    shop = world
    order_id = run(paid_order(shop, (shop.w.skus[0], 1)))
    run(ship(shop, order_id))
    request_id = _open(shop, order_id, kind="refund_only", reason="not_received", amount_fen=6700)
    run(carrier_reports(shop, hours(49)))
    token = sign_in(client, shop.buyer.username)
    confirmed = client.post(
        f"/orders/{order_id}/confirm", data={"_csrf_token": token}, follow_redirects=False
    )
    assert confirmed.status_code == 303, confirmed.text
    order_page = client.get(f"/orders/{order_id}").text
    assert "/aftersales/new?order=" in order_page and "return_refund" in order_page
    row = run(request_row(shop, request_id))
    assert (row.status, row.resolution, row.refund_fen) == ("closed", "outdated", 0)
    page = client.get(f"/aftersales/{request_id}")
    assert page.status_code == 200 and 'id="outdated"' in page.text
    assert "open a return or a quality claim from the order page" in page.text
    _lang(client, "zh_Hans")
    assert "可以在订单页申请退货退款或质量问题售后" in client.get(f"/aftersales/{request_id}").text


def test_ids_that_are_not_plain_numbers_on_the_new_request_form(client: TestClient, world: Shop) -> None:
    """``"²".isdigit()`` is true but ``int("²")`` raises: the form's ids were a 500, and a line id
    that was not a number was read as the whole order. Now each is a 422; nothing is stored."""
    shop = world
    order_id = run(delivered_order(shop, (shop.w.skus[0], 1), confirm=True))
    (line,) = run(line_rows(shop, order_id))
    token = sign_in(client, shop.buyer.username)
    base = {"_csrf_token": token, "order_id": str(order_id), "line_id": str(line.id), "kind": "return_refund",
            "reason": "quality", "amount": "10.00", "description": "起球"}  # fmt: skip
    for field in ("order_id", "line_id"):
        for value in ("²", "abc", str(2**62 + 1)):
            sent = client.post("/aftersales", data={**base, field: value}, follow_redirects=False)
            assert sent.status_code == 422, (field, value, sent.status_code)
    assert _count(shop, AftersalesRequest) == 0 and run(_holds(shop, order_id)) == 0
    created = client.post("/aftersales", data=base, follow_redirects=False)
    assert created.status_code == 303, created.text
