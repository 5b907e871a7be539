"""The QC warehouse over HTTP, on SQLite and PostgreSQL: ops' pages and API, the inspector's
console driven through its forms, the lab callback endpoint, the public certificate page (which
shows nothing private) and the inspection on the order pages, in English and Chinese."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from litestar.testing import TestClient
from sqlalchemy import func, select

from tests.fulfillment.qc_util import (
    Qc,
    case_row,
    inspect,
    inspection,
    lab_headers,
    paid_jade,
    qc_world,
    received,
    shipped_jade,
)
from tests.helpers import image_bytes, run, token_for
from tests.web.test_pages import csrf_of, marked, sign_in
from trustlive.config import Settings
from trustlive.db import create_engine, create_sessionmaker, transaction
from trustlive.fulfillment import service
from trustlive.fulfillment.models import QcLab, QcLabEvent, QcWarehouse
from trustlive.fulfillment.schemas import ReceiveIn
from trustlive.orders import service as orders
from trustlive.orders.schemas import ReturnAddressIn, ReturnsIn


@pytest.fixture
def qc(client: TestClient, settings: Settings, tmp_path: Path) -> Qc:
    """The service-level QC world in the client's database (same secret key as the app)."""

    async def build() -> Qc:
        q = await qc_world(settings.database_url, tmp_path / "world")
        await q.w.engine.dispose()  # type: ignore[attr-defined]
        return q

    return run(build())


def within(q: Qc, coro_fn):  # type: ignore[no-untyped-def]
    """Run ``coro_fn(q)`` against the world with a fresh engine (the app has its own)."""

    async def go():  # type: ignore[no-untyped-def]
        engine = create_engine(q.settings.database_url)
        q.w.engine, q.w.sessionmaker = engine, create_sessionmaker(engine)
        try:
            return await coro_fn(q)
        finally:
            await engine.dispose()

    return run(go())


def scalar(q: Qc, stmt):  # type: ignore[no-untyped-def]
    async def go(q: Qc):  # type: ignore[no-untyped-def]
        async with transaction(q.w.sessionmaker) as s:
            return await s.scalar(stmt)

    return within(q, go)


def zh(client: TestClient, path: str) -> str:
    client.cookies.set("tl_lang", "zh_Hans")
    try:
        return client.get(path).text
    finally:
        client.cookies.set("tl_lang", "en")


def test_ops_manage_labs_warehouses_routes_and_inspectors(client: TestClient, qc: Qc) -> None:
    ops = token_for(client, "ops1")
    assert client.get("/api/v1/qc", headers=token_for(client, "merchant1")).status_code == 403
    assert client.get("/api/v1/qc", headers=token_for(client, "inspector1")).status_code == 403
    setup = client.get("/api/v1/qc", headers=ops).json()
    assert [w["name"] for w in setup["warehouses"]] == ["杭州质检仓", "深圳质检仓"]
    labs = lambda: scalar(qc, select(func.count()).select_from(QcLab))  # noqa: E731
    bad = client.post("/api/v1/qc/labs", json={"name": "无编号", "cma_no": ""}, headers=ops)
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "accreditation_required"
    assert (
        client.post("/api/v1/qc/labs", json={"name": "x", "cma_no": "201901000001"}, headers=ops).status_code
        == 422
    )
    assert labs() == 2

    token = sign_in(client, "ops1")
    page = client.get("/ops/qc")
    assert page.status_code == 200 and "国检珠宝检测中心" in page.text and "杭州质检仓" in page.text
    assert "Routing" in page.text and 'action="/ops/qc/routes"' in page.text
    assert "质检仓" in zh(client, "/ops/qc") and "分仓规则" in zh(client, "/ops/qc")
    # The lab form: a wrong CMA number comes back marked, with what was typed.
    wrong = client.post("/ops/qc/labs", data={"_csrf_token": token, "name": "宁波检测站", "cma_no": "12ab"})
    assert wrong.status_code == 422 and "cma_no" in marked(wrong.text) and 'value="宁波检测站"' in wrong.text
    assert labs() == 2
    made = client.post(
        "/ops/qc/labs",
        data={"_csrf_token": token, "name": "宁波检测站", "cnas_no": "L5678"},
        follow_redirects=False,
    )
    assert made.status_code == 303
    lab_page = client.get(made.headers["location"])
    assert (
        "CNAS" in lab_page.text and "/api/v1/qc/labs/" in lab_page.text and "X-Lab-Signature" in lab_page.text
    )
    lab_id = int(re.search(r"/ops/qc/labs/(\d+)", made.headers["location"]).group(1))  # type: ignore[union-attr]

    # A warehouse through the form, then an inspector: a non-inspector is refused, marked.
    form = {"_csrf_token": token, "name": "宁波质检仓", "lab_id": str(lab_id), "recipient": "收货组",
            "phone": "0574-1234 5678", "region": "浙江省宁波市", "detail": "港城路 1 号"}  # fmt: skip
    missing = client.post("/ops/qc/warehouses", data={**form, "phone": "x"})
    assert missing.status_code == 422 and "phone" in marked(missing.text)
    created = client.post("/ops/qc/warehouses", data=form, follow_redirects=False)
    assert created.status_code == 303
    house = created.headers["location"].split("?")[0]
    house_id = int(house.rsplit("/", 1)[1])
    refused = client.post(f"{house}/inspectors", data={"_csrf_token": token, "username": "merchant1"})
    assert refused.status_code == 422 and "username" in marked(refused.text)
    assert "inspector role" in refused.text
    added = client.post(
        f"{house}/inspectors", data={"_csrf_token": token, "username": "inspector2"}, follow_redirects=False
    )
    assert added.status_code == 303
    assert "@inspector2" in client.get(house).text
    assert "营业中（接收新包裹）" in zh(client, house)

    # Routing the jade category there: the API shows it, and a new order goes there.
    routed = client.post("/ops/qc/routes", data={"_csrf_token": token, "category_id": str(qc.jade),
                                                  "warehouse_id": str(house_id)}, follow_redirects=False)  # fmt: skip
    assert routed.status_code == 303
    assert {"category_id": qc.jade, "warehouse_id": house_id} in client.get("/api/v1/qc", headers=ops).json()[
        "routes"
    ]
    kids = client.get("/api/v1/categories").json()
    kids_id = next(c["id"] for c in kids if c["slug"] == "kids")
    not_inspected = client.post("/ops/qc/routes", data={"_csrf_token": token, "category_id": str(kids_id),
                                                         "warehouse_id": str(house_id)})  # fmt: skip
    assert not_inspected.status_code == 422
    assert scalar(qc, select(func.count()).select_from(QcWarehouse)) == 3


def test_the_inspector_console_receives_inspects_and_forwards(client: TestClient, qc: Qc) -> None:
    order_id, case_id = within(qc, lambda q: shipped_jade(q, 0, "page", "SF55550001"))
    token = sign_in(client, "inspector1")
    console = client.get("/inspect")
    assert (
        console.status_code == 200
        and f'data-case="{case_id}"' in console.text
        and "SF55550001" in console.text
    )
    assert "包裹收货" in zh(client, "/inspect")
    unknown = client.post("/inspect/receive", data={"_csrf_token": token, "tracking_no": "NOPE1234"})
    assert unknown.status_code == 404 and "tracking_no" in marked(unknown.text)
    scanned = client.post("/inspect/receive", data={"_csrf_token": token, "tracking_no": "sf 5555 0001"},
                          follow_redirects=False)  # fmt: skip
    assert (
        scanned.status_code == 303
        and scanned.headers["location"] == f"/inspect/cases/{case_id}?done=received"
    )
    page = client.get(scanned.headers["location"])
    assert "Record the inspection" in page.text and 'enctype="multipart/form-data"' in page.text

    url = f"/inspect/cases/{case_id}/inspection"
    fields = {"_csrf_token": token, "result": "pass", "material": "和田玉", "weight": "52.3", "certificate_no": "PG-0001",
              "notes": "油润"}  # fmt: skip
    photo = {"photos": ("bangle.png", image_bytes(), "image/png")}
    too_heavy = client.post(url, data={**fields, "weight": "52.345"}, files=photo)
    assert (
        too_heavy.status_code == 422
        and "weight" in marked(too_heavy.text)
        and 'value="PG-0001"' in too_heavy.text
    )
    not_image = client.post(url, data=fields, files={"photos": ("x.png", b"not an image", "image/png")})
    assert not_image.status_code == 415
    assert (
        run_case := within(qc, lambda q: case_row(q, case_id))
    ).status == "received" and run_case.result is None
    done = client.post(url, data=fields, files=photo, follow_redirects=False)
    assert done.status_code == 303, done.text
    case = within(qc, lambda q: case_row(q, case_id))
    assert (case.result, case.weight_mg, case.certificate_no) == ("pass", 52300, "PG-0001")
    page = client.get(f"/inspect/cases/{case_id}")
    assert "Forward to the buyer" in page.text and "文三路 1 号" in page.text and "/media/qc/" in page.text

    bad = client.post(f"/inspect/cases/{case_id}/forward", data={"_csrf_token": token, "carrier": "SF",
                                                                  "tracking_no": "no!"})  # fmt: skip
    assert bad.status_code == 422 and "tracking_no" in marked(bad.text)
    sent = client.post(f"/inspect/cases/{case_id}/forward", data={"_csrf_token": token, "carrier": "SF",
                                                                   "tracking_no": "SF66660001"}, follow_redirects=False)  # fmt: skip
    assert sent.status_code == 303
    assert within(qc, lambda q: case_row(q, case_id)).status == "forwarded"

    # The other warehouse's inspector: nothing to see, nothing to do.
    token = sign_in(client, "inspector2")
    assert client.get(f"/inspect/cases/{case_id}").status_code == 404
    assert client.post(f"/inspect/cases/{case_id}/receive", data={"_csrf_token": token}).status_code == 404
    assert f'data-case="{case_id}"' not in client.get("/inspect").text
    # Not an inspector at all.
    sign_in(client, "buyer0000")
    assert client.get("/inspect").status_code == 403

    # The buyer's order page: the certificate, its lab, a link to its public page.
    sign_in(client, "buyer0000")
    mine = client.get(f"/orders/{order_id}").text
    assert 'href="/certificates/PG-0001"' in mine and "国检珠宝检测中心" in mine and "52.30 g" in mine
    assert "QC warehouse to the buyer" in mine and "SF66660001" in mine
    assert "先鉴后发" in zh(client, f"/orders/{order_id}")


def test_the_lab_callback_endpoint(client: TestClient, qc: Qc) -> None:
    _, case_id = within(qc, lambda q: received(q))
    lab = qc.labs[0]
    url = f"/api/v1/qc/labs/{lab}/results"
    data = {
        "case_id": case_id,
        "result": "pass",
        "material": "和田玉",
        "weight_mg": 30000,
        "certificate_no": "HTTP-0001",
    }
    body = json.dumps(
        {"id": "evt_http_1", "type": "inspection.completed", "created": 1, "data": data}
    ).encode()
    forged = client.post(url, content=body, headers=lab_headers(service.QcPolicy(secret_key="x"), lab, body))
    assert forged.status_code == 400 and forged.json()["error"]["code"] == "bad_signature"
    wrong_lab = client.post(f"/api/v1/qc/labs/{qc.labs[1]}/results", content=body,
                            headers=lab_headers(qc.policy, qc.labs[1], body))  # fmt: skip
    assert wrong_lab.status_code == 404
    assert client.post("/api/v1/qc/labs/999/results", content=body).status_code == 404
    assert scalar(qc, select(func.count()).select_from(QcLabEvent)) == 0
    ok = client.post(url, content=body, headers=lab_headers(qc.policy, lab, body))
    assert ok.status_code == 200 and ok.json() == {"received": True, "event_id": "evt_http_1", "outcome": "applied",
                                                   "case_id": case_id}  # fmt: skip
    again = client.post(url, content=body, headers=lab_headers(qc.policy, lab, body))
    assert again.status_code == 200 and again.json()["outcome"] == "duplicate"
    assert scalar(qc, select(func.count()).select_from(QcLabEvent)) == 1


def test_the_certificate_page_is_public_and_shows_nothing_private(client: TestClient, qc: Qc) -> None:
    order_id, case_id = within(qc, lambda q: received(q))
    within(qc, lambda q: inspect(q, case_id, inspection("pass", "PUB-2026-01")))
    client.cookies.clear()
    client.cookies.set("tl_lang", "en")
    page = client.get("/certificates/pub-2026-01")  # any case: the number is normalised
    assert page.status_code == 200
    text = page.text
    for shown in (
        "PUB-2026-01",
        "Passed",
        "国检珠宝检测中心",
        "201901123456",
        "杭州质检仓",
        "和田玉",
        "52.34 g",
        "商品2",
    ):
        assert shown in text, shown
    for private in (
        "王芳",
        "13800000000",
        "文三路",
        "浙江省杭州市西湖区",
        "¥1,292.00",
        "¥1,280.00",
        "buyer0000",
    ):
        assert private not in text, private
    assert f"/orders/{order_id}" not in text
    api = client.get("/api/v1/certificates/PUB-2026-01")
    assert api.status_code == 200
    assert set(api.json()) == {"number", "result", "lab", "warehouse_name", "material", "weight_mg", "weight_g",
                               "inspected_at", "items", "photos"}  # fmt: skip
    assert "王芳" not in api.text and "13800000000" not in api.text
    assert "质检证书" in zh(client, "/certificates/PUB-2026-01")

    unknown = client.get("/certificates/NOSUCH-1")
    assert unknown.status_code == 404 and "No certificate has the number NOSUCH-1" in unknown.text
    assert 'action="/certificates"' in unknown.text  # the search box
    client.cookies.set("tl_lang", "zh_Hans")
    unknown_zh = client.get("/certificates/NOSUCH-1")
    assert unknown_zh.status_code == 404 and "没有编号为 NOSUCH-1 的证书" in unknown_zh.text
    client.cookies.set("tl_lang", "en")
    assert client.get("/api/v1/certificates/NOSUCH-1").status_code == 404
    search = client.get("/certificates", params={"number": " pub-2026-01 "}, follow_redirects=False)
    assert search.status_code == 303 and search.headers["location"] == "/certificates/PUB-2026-01"
    assert client.get("/certificates").status_code == 200


def test_the_shop_sees_where_to_ship_and_its_failures(client: TestClient, qc: Qc) -> None:
    order_id = within(qc, lambda q: paid_jade(q, 0, "shop"))
    token = sign_in(client, "merchant2")
    page = client.get(f"/console/orders/{order_id}").text
    assert 'id="ship-to-qc"' in page and "杭州质检仓" in page and "杭州质检仓 仓库路 8 号" in page
    assert "请寄到质检仓" in zh(client, f"/console/orders/{order_id}")
    shipped = client.post(f"/console/orders/{order_id}/ship",
                          data={"_csrf_token": token, "carrier": "SF", "tracking_no": "SF77770001"},
                          follow_redirects=False)  # fmt: skip
    assert shipped.status_code == 303
    page = client.get(f"/console/orders/{order_id}").text
    assert 'data-qc="inbound"' in page and "Shop to the QC warehouse" in page

    async def fail(q: Qc) -> None:
        async with transaction(q.w.sessionmaker) as s:
            [got] = await service.receive_parcel(s, q.inspectors[0], ReceiveIn("SF77770001"), q.policy)
            await service.record_inspection(
                s, q.inspectors[0], got.id, inspection("fail", "FAIL-01"), q.policy
            )

    within(qc, fail)
    page = client.get(f"/console/orders/{order_id}").text
    assert 'id="qc-failure"' in page and "¥1,292.00" in page and 'id="qc-held"' in page
    assert 'id="qc-shop-failures"' in page
    sign_in(client, "buyer0000")
    mine = client.get(f"/orders/{order_id}").text
    assert 'id="qc-refund"' in mine and "¥1,292.00" in mine and 'data-status="refunded"' in mine

    async def set_address(q: Qc) -> None:
        address = ReturnAddressIn(
            recipient="售后", phone="13900000000", region="新疆和田市", detail="玉龙路 9 号"
        )
        async with transaction(q.w.sessionmaker) as s:
            await orders.set_returns(s, q.merchant, q.w.shops[1], ReturnsIn(return_address=address))

    within(qc, set_address)
    token = sign_in(client, "inspector1")
    case_id = int(re.search(r'data-case="(\d+)"', client.get("/inspect").text).group(1))  # type: ignore[union-attr]
    page = client.get(f"/inspect/cases/{case_id}").text
    assert "Send back to the shop" in page and "玉龙路 9 号" in page
    back = client.post(f"/inspect/cases/{case_id}/return", data={"_csrf_token": token, "carrier": "YTO",
                                                                  "tracking_no": "YT88880001"}, follow_redirects=False)  # fmt: skip
    assert back.status_code == 303
    assert within(qc, lambda q: case_row(q, case_id)).status == "returned"
    assert csrf_of(client.get("/inspect").text)


def test_the_inspector_api(client: TestClient, qc: Qc) -> None:
    order_id, case_id = within(qc, lambda q: shipped_jade(q, 0, "api", "SF88880001"))
    me, other = token_for(client, "inspector1"), token_for(client, "inspector2")
    queue = client.get("/api/v1/qc/cases", headers=me).json()
    assert [c["id"] for c in queue["inbound"]] == [case_id] and queue["arrivals"] == []
    assert client.get("/api/v1/qc/cases", headers=other).json()["inbound"] == []
    assert client.get(f"/api/v1/qc/cases/{case_id}", headers=other).status_code == 404
    assert (
        client.post("/api/v1/qc/receive", json={"tracking_no": "SF88880001"}, headers=other).status_code
        == 404
    )
    [got] = client.post("/api/v1/qc/receive", json={"tracking_no": "SF88880001"}, headers=me).json()
    assert got["status"] == "received" and got["due_at"]
    photo = client.post(
        f"/api/v1/qc/cases/{case_id}/photos",
        files={"data": ("b.png", image_bytes(), "image/png")},
        headers=me,
    )
    assert photo.status_code == 201, photo.text
    url = f"/api/v1/qc/cases/{case_id}/inspection"
    body = {"result": "pass", "material": "翡翠", "weight_mg": 20000, "certificate_no": "API-0001"}
    for bad in ({"weight_mg": 20001}, {"weight_mg": "20000"}, {"result": "good"}, {"extra": 1}):
        response = client.post(url, json={**body, **bad}, headers=me)
        assert response.status_code == 422, (bad, response.text)
    assert within(qc, lambda q: case_row(q, case_id)).result is None
    done = client.post(url, json=body, headers=me)
    assert (
        done.status_code == 200
        and done.json()["certificate_no"] == "API-0001"
        and len(done.json()["photos"]) == 1
    )
    assert client.post(url, json=body, headers=me).status_code == 409
    sent = client.post(f"/api/v1/qc/cases/{case_id}/forward", json={"carrier": "SF", "tracking_no": "SF99990001"},
                       headers=me)  # fmt: skip
    assert sent.status_code == 200 and sent.json()["status"] == "forwarded"
    buyer = token_for(client, "buyer0000")
    panel = client.get(f"/api/v1/orders/{order_id}/inspection", headers=buyer).json()
    assert panel["case"]["certificate_no"] == "API-0001" and panel["case"]["send_to"] is None
    assert (
        client.get(
            f"/api/v1/orders/{order_id}/inspection", headers=token_for(client, "buyer0001")
        ).status_code
        == 404
    )
    assert client.get(f"/api/v1/qc/cases/{case_id}", headers=token_for(client, "ops1")).status_code == 200
