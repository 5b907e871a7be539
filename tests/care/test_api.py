"""The care JSON API over HTTP, on SQLite and PostgreSQL: the same rules as the service (who may
see a case, what the buyer's JSON holds, read-only closed cases), with 4xx for bad input."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator

import pytest
from litestar.testing import TestClient

from tests.care.world import CareWorld, build_care, count, entries, in_db, open_request
from tests.helpers import token_for
from trustlive.care.models import CareCase, CareEntry, CareFollowUp
from trustlive.config import Settings
from trustlive.db import utcnow

CST = dt.timezone(dt.timedelta(hours=8))


def days_ahead(days: int, hour: int = 10) -> dt.datetime:
    """A whole hour some days from now, in China Standard Time."""
    return (
        (utcnow() + dt.timedelta(days=days))
        .astimezone(CST)
        .replace(hour=hour, minute=0, second=0, microsecond=0)
    )


def zulu(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def cw(client: TestClient, settings: Settings) -> Iterator[tuple[CareWorld, dict[str, dict[str, str]]]]:
    """The care world in the client's database, and bearer headers for its people."""

    async def build() -> CareWorld:
        w = await build_care(settings.database_url)
        await w.world.engine.dispose()  # type: ignore[attr-defined]
        return w

    w = asyncio.run(build())
    names = ["ops1", "merchant1", "carer1", "carer2", "buyer0000", "buyer0001"]
    yield w, {name: token_for(client, name) for name in names}


def test_a_case_through_the_api(
    client: TestClient, settings: Settings, cw: tuple[CareWorld, dict[str, dict[str, str]]]
) -> None:
    w, h = cw
    url = settings.database_url
    first, second = days_ahead(3), days_ahead(2, hour=9)
    opened = client.post(
        "/api/v1/care/cases",
        json={"username": "buyer0000", "risk_summary": "RISK-SECRET: surgery on Monday", "priority": "high",
              "first_follow_up_at": first.isoformat(), "first_follow_up_plan": "PLAN-SECRET"},
        headers=h["carer1"],
    )  # fmt: skip
    assert opened.status_code == 201, opened.text
    case = opened.json()
    case_id = case["id"]
    assert case["specialist"]["username"] == "carer1" and case["next_due_at"] == zulu(first)
    assert [e["kind"] for e in case["entries"]] == ["opened", "assigned"]

    # Staff routes: 403 for the wrong role on lists; 404 on the case itself for anyone who may not see it.
    assert client.post("/api/v1/care/cases", json={"username": "buyer0001", "risk_summary": "x"},
                       headers=h["merchant1"]).status_code == 403  # fmt: skip
    assert client.get("/api/v1/care/board", headers=h["buyer0000"]).status_code == 403
    for outsider in ("merchant1", "carer2", "buyer0001", "buyer0000"):
        response = client.get(f"/api/v1/care/cases/{case_id}", headers=h[outsider])
        assert response.status_code == 404 and response.json()["error"]["code"] == "care_case_not_found"
        refused = client.post(
            f"/api/v1/care/cases/{case_id}/entries", json={"body": "x"}, headers=h[outsider]
        )
        assert refused.status_code == 404
    assert client.get(f"/api/v1/care/cases/{case_id}").status_code == 401
    assert client.get(f"/api/v1/care/cases/{case_id}", headers=h["ops1"]).status_code == 200

    # The schedule: a time with its offset; a naive one or a past one is a 422 and changes nothing.
    for bad in (first.replace(tzinfo=None).isoformat(), "2000-01-01T10:00:00+08:00", "tomorrow"):
        response = client.post(
            f"/api/v1/care/cases/{case_id}/follow-ups", json={"due_at": bad}, headers=h["carer1"]
        )
        assert response.status_code == 422, (bad, response.text)
        assert response.json()["error"]["fields"][0]["field"] == "due_at"
    planned = client.post(f"/api/v1/care/cases/{case_id}/follow-ups", json={"due_at": second.isoformat()},
                          headers=h["carer1"])  # fmt: skip
    assert planned.status_code == 201 and planned.json()["next_due_at"] == zulu(second)
    follow_up = next(f for f in planned.json()["follow_ups"] if f["due_at"] == zulu(second))
    done = client.post(f"/api/v1/care/cases/{case_id}/follow-ups/{follow_up['id']}/done",
                       json={"result": "Called her", "kind": "call"}, headers=h["carer1"])  # fmt: skip
    assert done.status_code == 200 and done.json()["next_due_at"] == zulu(first)

    # The timeline: an empty note is a 422; internal and to-the-buyer entries.
    assert (
        client.post(
            f"/api/v1/care/cases/{case_id}/entries", json={"body": "  "}, headers=h["carer1"]
        ).status_code
        == 422
    )
    assert client.post(f"/api/v1/care/cases/{case_id}/entries", json={"body": "INTERNAL-SECRET"},
                       headers=h["carer1"]).status_code == 201  # fmt: skip
    assert client.get(f"/api/v1/me/care/{case_id}", headers=h["buyer0000"]).status_code == 404
    assert client.post(f"/api/v1/care/cases/{case_id}/entries", headers=h["carer1"],
                       json={"body": "Hello, I am your care contact.", "kind": "message", "to_buyer": True}).status_code == 201  # fmt: skip

    # The buyer's JSON holds what was addressed to them and nothing else.
    mine = client.get(f"/api/v1/me/care/{case_id}", headers=h["buyer0000"])
    assert mine.status_code == 200
    assert mine.json()["specialist_name"] == "Carer 1" and mine.json()["is_open"] is True
    assert [e["body"] for e in mine.json()["entries"]] == ["Hello, I am your care contact."]
    listed = client.get("/api/v1/me/care", headers=h["buyer0000"])
    for text in (mine.text, listed.text):
        for secret in (
            "RISK-SECRET",
            "PLAN-SECRET",
            "INTERNAL-SECRET",
            "Called her",
            "carer1",
            "risk_summary",
            "follow_ups",
        ):
            assert secret not in text
    assert client.get(f"/api/v1/me/care/{case_id}", headers=h["buyer0001"]).status_code == 404
    assert client.get("/api/v1/me/care", headers=h["buyer0001"]).json() == []
    replied = client.post(
        f"/api/v1/me/care/{case_id}/replies", json={"body": "Thank you"}, headers=h["buyer0000"]
    )
    assert replied.status_code == 201 and replied.json()["entries"][-1]["from_buyer"] is True
    assert (
        client.post(
            f"/api/v1/me/care/{case_id}/replies", json={"body": "x"}, headers=h["buyer0001"]
        ).status_code
        == 404
    )

    # Close, read-only, reopen by ops only.
    assert (
        client.post(
            f"/api/v1/care/cases/{case_id}/close", json={"outcome": "other"}, headers=h["carer1"]
        ).status_code
        == 422
    )
    assert (
        client.post(
            f"/api/v1/care/cases/{case_id}/close", json={"outcome": "gone"}, headers=h["carer1"]
        ).status_code
        == 422
    )
    closed = client.post(
        f"/api/v1/care/cases/{case_id}/close", json={"outcome": "resolved"}, headers=h["carer1"]
    )
    assert closed.status_code == 200 and closed.json()["outcome"] == "resolved"
    n = len(in_db(w, url, lambda x: entries(x, case_id)))
    late = client.post(f"/api/v1/care/cases/{case_id}/entries", json={"body": "late"}, headers=h["carer1"])
    assert late.status_code == 409 and late.json()["error"]["code"] == "case_closed"
    assert (
        client.post(
            f"/api/v1/me/care/{case_id}/replies", json={"body": "hi"}, headers=h["buyer0000"]
        ).status_code
        == 409
    )
    assert len(in_db(w, url, lambda x: entries(x, case_id))) == n
    assert client.post(f"/api/v1/care/cases/{case_id}/reopen", headers=h["carer1"]).status_code == 403
    reopened = client.post(
        f"/api/v1/care/cases/{case_id}/reopen", json={"reason": "wrote again"}, headers=h["ops1"]
    )
    assert reopened.status_code == 200 and reopened.json()["status"] == "open"


def test_open_from_a_request_and_lists(
    client: TestClient, settings: Settings, cw: tuple[CareWorld, dict[str, dict[str, str]]]
) -> None:
    w, h = cw
    url = settings.database_url
    request_id, order_id = in_db(w, url, lambda x: open_request(x, buyer=1))
    unknown = client.post(
        "/api/v1/care/cases", json={"request_id": 10**9, "risk_summary": "x"}, headers=h["ops1"]
    )
    assert unknown.status_code == 404 and unknown.json()["error"]["fields"][0]["field"] == "request_id"
    both = client.post("/api/v1/care/cases", json={"request_id": request_id, "username": "buyer0001", "risk_summary": "x"},
                       headers=h["ops1"])  # fmt: skip
    assert both.status_code == 422
    extra = client.post("/api/v1/care/cases", json={"request_id": request_id, "risk_summary": "x", "secret": 1},
                        headers=h["ops1"])  # fmt: skip
    assert extra.status_code == 422
    opened = client.post("/api/v1/care/cases", json={"request_id": request_id, "risk_summary": "Unresolved, distressed",
                                                     "priority": "urgent"}, headers=h["ops1"])  # fmt: skip
    assert opened.status_code == 201, opened.text
    body = opened.json()
    assert (body["buyer"]["username"], body["order_id"], body["request"]["id"]) == (
        "buyer0001",
        order_id,
        request_id,
    )
    twin = client.post(
        "/api/v1/care/cases", json={"request_id": request_id, "risk_summary": "again"}, headers=h["carer2"]
    )
    assert twin.status_code == 409 and twin.json()["error"]["code"] == "case_already_open"
    assert in_db(w, url, lambda x: count(x, CareCase)) == 1

    # Assign: a non-specialist is a 422; ops pick from the specialists list.
    people = client.get("/api/v1/care/specialists", headers=h["ops1"]).json()
    assert [p["username"] for p in people] == ["carer1", "carer2"]
    assert client.get("/api/v1/care/specialists", headers=h["carer1"]).status_code == 403
    case_id = body["id"]
    refused = client.post(f"/api/v1/care/cases/{case_id}/assign", json={"specialist_id": body["buyer"]["id"]},
                          headers=h["ops1"])  # fmt: skip
    assert refused.status_code == 422
    assert client.post(f"/api/v1/care/cases/{case_id}/assign", json={"specialist_id": people[1]["id"]},
                       headers=h["carer2"]).json()["specialist"]["username"] == "carer2"  # fmt: skip

    # More cases for the lists: ops see them all, newest first, page by page.
    for name in ("buyer0000", "buyer0002", "creator1"):
        assert (
            client.post(
                "/api/v1/care/cases", json={"username": name, "risk_summary": "x"}, headers=h["ops1"]
            ).status_code
            == 201
        )
    page = client.get("/api/v1/care/cases?limit=3", headers=h["ops1"]).json()
    assert len(page["items"]) == 3 and page["next_cursor"]
    rest = client.get(f"/api/v1/care/cases?limit=3&cursor={page['next_cursor']}", headers=h["ops1"]).json()
    assert [c["id"] for c in rest["items"]] == [case_id] and rest["next_cursor"] is None
    assert client.get("/api/v1/care/cases?cursor=nonsense", headers=h["ops1"]).status_code == 400
    urgent = client.get("/api/v1/care/cases?priority=urgent", headers=h["ops1"]).json()["items"]
    assert [c["id"] for c in urgent] == [case_id]
    assert [
        c["id"] for c in client.get("/api/v1/care/cases?buyer=buyer0001", headers=h["ops1"]).json()["items"]
    ] == [case_id]
    assert client.get("/api/v1/care/cases?buyer=nobody_here", headers=h["ops1"]).status_code == 404
    assert len(client.get("/api/v1/care/cases?specialist=none", headers=h["ops1"]).json()["items"]) == 3
    # carer1 sees the unassigned three, not carer2's case.
    assert case_id not in [
        c["id"] for c in client.get("/api/v1/care/cases", headers=h["carer1"]).json()["items"]
    ]
    board = client.get("/api/v1/care/board", headers=h["carer2"]).json()
    assert [c["id"] for c in board["mine"]] == [case_id] and len(board["unassigned"]) == 3
    assert (
        in_db(w, url, lambda x: count(x, CareEntry)),
        in_db(w, url, lambda x: count(x, CareFollowUp)),
    ) == (5, 0)


def test_huge_ids_and_dates_centuries_off_are_422_naming_the_field(
    client: TestClient, settings: Settings, cw: tuple[CareWorld, dict[str, dict[str, str]]]
) -> None:
    """Ids past 2^62 (they would overflow the database's BIGINT) and follow-up dates that cannot
    be converted to UTC are the caller's mistake: a 422 naming the field, nothing written."""
    w, h = cw
    url = settings.database_url

    def refused_field(response) -> str:  # type: ignore[no-untyped-def]
        assert response.status_code == 422, response.text
        return response.json()["error"]["fields"][0]["field"]

    big = 2**63 + 5
    base = {"risk_summary": "x"}
    for field in ("request_id", "buyer_id"):
        sent = client.post("/api/v1/care/cases", json={**base, field: big}, headers=h["ops1"])
        assert refused_field(sent) == field
    sent = client.post("/api/v1/care/cases", json={**base, "username": "buyer0000", "specialist_id": big},
                       headers=h["ops1"])  # fmt: skip
    assert refused_field(sent) == "specialist_id"
    for moment in ("0001-01-01T00:00:00+08:00", "9999-12-31T23:59:59-08:00"):
        sent = client.post("/api/v1/care/cases", json={**base, "username": "buyer0000", "first_follow_up_at": moment},
                           headers=h["ops1"])  # fmt: skip
        assert refused_field(sent) == "first_follow_up_at"
    assert in_db(w, url, lambda x: count(x, CareCase)) == 0

    case_id = client.post(
        "/api/v1/care/cases", json={**base, "username": "buyer0000"}, headers=h["carer1"]
    ).json()["id"]
    sent = client.post(f"/api/v1/care/cases/{case_id}/assign", json={"specialist_id": big}, headers=h["ops1"])
    assert refused_field(sent) == "specialist_id"
    sent = client.post(f"/api/v1/care/cases/{case_id}/follow-ups", json={"due_at": "0001-01-01T00:00:00+08:00"},
                       headers=h["carer1"])  # fmt: skip
    assert refused_field(sent) == "due_at"
    assert in_db(w, url, lambda x: count(x, CareFollowUp)) == 0


def test_a_specialist_filter_that_is_not_an_ascii_number_is_a_422(
    client: TestClient, cw: tuple[CareWorld, dict[str, dict[str, str]]]
) -> None:
    """``"²".isdigit()`` is true but ``int("²")`` raises: the filter was a 500. Now every value
    that is not a plain number (or ``none``) is a 422 naming ``specialist``."""
    _, h = cw
    for value in ("²", "١٢", "+5", " 5", "0", str(2**62 + 1), "9" * 30):
        got = client.get("/api/v1/care/cases", params={"specialist": value}, headers=h["ops1"])
        assert got.status_code == 422, (value, got.text)
        assert got.json()["error"]["fields"][0]["field"] == "specialist"
    assert client.get("/api/v1/care/cases?specialist=none", headers=h["ops1"]).status_code == 200
