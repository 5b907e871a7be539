"""The care pages, driven through their forms with a cookie session and CSRF tokens, in English and
Chinese, on SQLite and PostgreSQL: the work list, opening a case, the case page's forms, closing
and reopening, who gets a 404, and the buyer's /me/care showing only what is addressed to them."""

from __future__ import annotations

import asyncio
import datetime as dt
import re

import pytest
from litestar.testing import TestClient

from tests.care.world import CareWorld, build_care, count, entries, follow_ups, in_db
from tests.web.test_pages import csrf_of, marked, sign_in
from trustlive.care import service as care
from trustlive.care.models import CareCase
from trustlive.care.schemas import CaseIn, EntryIn
from trustlive.config import Settings
from trustlive.db import transaction, utcnow
from trustlive.web.templating import UI_TZ


@pytest.fixture
def cw(client: TestClient, settings: Settings) -> CareWorld:
    async def build() -> CareWorld:
        w = await build_care(settings.database_url)
        await w.world.engine.dispose()  # type: ignore[attr-defined]
        return w

    return asyncio.run(build())


def local_input(days: int, hour: int = 10) -> str:
    """What a datetime-local input sends for a whole hour some days from now (team time)."""
    moment = (utcnow() + dt.timedelta(days=days)).astimezone(UI_TZ).replace(hour=hour, minute=0)
    return moment.strftime("%Y-%m-%dT%H:%M")


def in_chinese(client: TestClient) -> None:
    client.cookies.set("tl_lang", "zh_Hans")


def seeded_case(w: CareWorld, url: str, *, to_buyer: bool = True) -> int:
    """carer1's case about buyer0000 with an internal note and, by default, a message to the buyer."""

    async def seed(x: CareWorld) -> int:
        async with transaction(x.sessionmaker) as s:
            case = await care.open_case(s, x.specialists[0], CaseIn(
                risk_summary="RISK-SECRET: surgery on Monday", username="buyer0000",
                first_follow_up_at=utcnow() + dt.timedelta(days=1), first_follow_up_plan="PLAN-SECRET",
            ))  # fmt: skip
            await care.add_entry(s, x.specialists[0], case.id, EntryIn(body="INTERNAL-SECRET", kind="call"))
            if to_buyer:
                await care.add_entry(s, x.specialists[0], case.id,
                                     EntryIn(body="Hello, I am Carer 1 from the care team.", kind="message", to_buyer=True))  # fmt: skip
            return case.id

    return in_db(w, url, seed)


def test_a_specialist_opens_and_works_a_case(client: TestClient, settings: Settings, cw: CareWorld) -> None:
    url = settings.database_url
    token = sign_in(client, "carer1")
    board = client.get("/care")
    assert board.status_code == 200 and "No contact is overdue." in board.text
    assert client.get("/care/new?username=buyer0000").status_code == 200

    form = {"_csrf_token": token, "username": "buyer0000", "risk_summary": "Facing surgery; parcel lost",
            "priority": "high", "first_follow_up_at": "next tuesday", "first_follow_up_plan": "Call her"}  # fmt: skip
    bad_time = client.post("/care/new", data=form, follow_redirects=False)
    assert bad_time.status_code == 422 and marked(bad_time.text) == {"first_follow_up_at"}
    assert "Facing surgery; parcel lost" in bad_time.text and 'value="next tuesday"' in bad_time.text
    unknown = client.post("/care/new", data={**form, "username": "nobody_here", "first_follow_up_at": ""},
                          follow_redirects=False)  # fmt: skip
    assert unknown.status_code == 404 and marked(unknown.text) == {"username"}
    blank = client.post(
        "/care/new", data={**form, "risk_summary": " ", "first_follow_up_at": ""}, follow_redirects=False
    )
    assert blank.status_code == 422 and marked(blank.text) == {"risk_summary"}
    assert in_db(cw, url, lambda x: count(x, CareCase)) == 0

    due = local_input(2)
    opened = client.post("/care/new", data={**form, "first_follow_up_at": due}, follow_redirects=False)
    assert opened.status_code == 303, opened.text
    location = opened.headers["location"]
    case_id = int(re.fullmatch(r"/care/(\d+)\?done=opened", location).group(1))
    page = client.get(location)
    assert (
        page.status_code == 200 and "Case opened." in page.text and "Facing surgery; parcel lost" in page.text
    )
    assert due.replace("T", " ") in page.text  # the next contact, shown in the team's time
    expected = dt.datetime.fromisoformat(due).replace(tzinfo=UI_TZ).astimezone(dt.UTC)
    assert [f.due_at for f in in_db(cw, url, lambda x: follow_ups(x, case_id))] == [expected]
    assert f'data-case="{case_id}"' in client.get("/care").text

    # The timeline: an empty note comes back marked; an internal note and a message to the buyer go on.
    empty = client.post(
        f"/care/{case_id}/entries", data={"_csrf_token": token, "body": "  "}, follow_redirects=False
    )
    assert empty.status_code == 422 and marked(empty.text) == {"body"}
    for body, to_buyer, flash in (
        ("Internal: she sounded upset", "", "noted"),
        ("We will call you tomorrow.", "1", "sent"),
    ):
        added = client.post(f"/care/{case_id}/entries", data={"_csrf_token": token, "body": body, "kind": "note",
                                                              "to_buyer": to_buyer}, follow_redirects=False)  # fmt: skip
        assert added.status_code == 303 and added.headers["location"].endswith(f"done={flash}")
    kinds = [(e.body, e.to_buyer) for e in in_db(cw, url, lambda x: entries(x, case_id))][-2:]
    assert kinds == [("Internal: she sounded upset", False), ("We will call you tomorrow.", True)]

    # The schedule: a bad time is marked; a good one is planned; recording a contact closes it.
    bad = client.post(f"/care/{case_id}/follow-ups", data={"_csrf_token": token, "due_at": "2026-13-45T99:00"},
                      follow_redirects=False)  # fmt: skip
    assert bad.status_code == 422 and marked(bad.text) == {"due_at"}
    planned = client.post(f"/care/{case_id}/follow-ups", data={"_csrf_token": token, "due_at": local_input(1),
                                                              "plan": "Check in"}, follow_redirects=False)  # fmt: skip
    assert planned.status_code == 303
    schedule = in_db(cw, url, lambda x: follow_ups(x, case_id))
    soonest = min(schedule, key=lambda f: f.due_at)
    no_result = client.post(f"/care/{case_id}/follow-ups/{soonest.id}/done", data={"_csrf_token": token, "result": ""},
                            follow_redirects=False)  # fmt: skip
    assert no_result.status_code == 422 and marked(no_result.text) == {"result"}
    recorded = client.post(f"/care/{case_id}/follow-ups/{soonest.id}/done",
                           data={"_csrf_token": token, "result": "Spoke with her", "kind": "call"}, follow_redirects=False)  # fmt: skip
    assert recorded.status_code == 303
    after = client.get(f"/care/{case_id}?done=contacted")
    assert "Follow-up recorded." in after.text and "Spoke with her" in after.text

    # The same pages in Chinese.
    in_chinese(client)
    zh = client.get(f"/care/{case_id}")
    assert (
        zh.status_code == 200
        and "跟进计划" in zh.text
        and "个案记录" in zh.text
        and "Follow-up schedule" not in zh.text
    )
    assert "逾期" in client.get("/care").text and "开立关怀个案" in client.get("/care/new").text


def test_the_buyer_sees_only_what_is_addressed_to_them(
    client: TestClient, settings: Settings, cw: CareWorld
) -> None:
    url = settings.database_url
    quiet = seeded_case(cw, url, to_buyer=False)
    token = sign_in(client, "buyer0000")
    assert "No messages from our care team." in client.get("/me/care").text
    assert client.get(f"/me/care/{quiet}").status_code == 404  # nothing addressed to them yet
    in_db(cw, url, lambda x: close_quietly(x, quiet))
    case_id = seeded_case(cw, url)
    listing = client.get("/me/care")
    detail = client.get(f"/me/care/{case_id}")
    assert detail.status_code == 200 and "Hello, I am Carer 1 from the care team." in detail.text
    assert "Carer 1" in detail.text
    for page in (listing.text, detail.text):
        for secret in ("RISK-SECRET", "PLAN-SECRET", "INTERNAL-SECRET", "carer1"):
            assert secret not in page
    empty = client.post(
        f"/me/care/{case_id}/reply", data={"_csrf_token": token, "body": " "}, follow_redirects=False
    )
    assert empty.status_code == 422 and marked(empty.text) == {"body"}
    sent = client.post(f"/me/care/{case_id}/reply", data={"_csrf_token": token, "body": "Thank you, Monday is fine."},
                       follow_redirects=False)  # fmt: skip
    assert sent.status_code == 303
    assert "Thank you, Monday is fine." in client.get(sent.headers["location"]).text
    assert [e.kind for e in in_db(cw, url, lambda x: entries(x, case_id))][-1] == "reply"
    # The staff side stays closed to them, and the lists are staff only.
    assert client.get(f"/care/{case_id}").status_code == 404
    assert client.get("/care").status_code == 403
    in_chinese(client)
    zh = client.get(f"/me/care/{case_id}")
    assert zh.status_code == 200 and "你的关怀专员" in client.get("/me/care").text and "发送" in zh.text
    assert "RISK-SECRET" not in zh.text and "INTERNAL-SECRET" not in zh.text
    # Another buyer: not found.
    sign_in(client, "buyer0001")
    assert client.get(f"/me/care/{case_id}").status_code == 404
    refused = client.post(f"/me/care/{case_id}/reply", data={"_csrf_token": csrf_of(client.get("/me/care").text),
                                                             "body": "me too"}, follow_redirects=False)  # fmt: skip
    assert refused.status_code == 404


async def close_quietly(w: CareWorld, case_id: int) -> None:
    from trustlive.care.schemas import CloseIn

    async with transaction(w.sessionmaker) as s:
        await care.close_case(s, w.specialists[0], case_id, CloseIn(outcome="resolved"))


def test_outsiders_get_404_and_closed_cases_are_read_only(
    client: TestClient, settings: Settings, cw: CareWorld
) -> None:
    url = settings.database_url
    case_id = seeded_case(cw, url)
    sign_in(client, "merchant1")
    assert client.get("/care").status_code == 403 and client.get("/care/new").status_code == 403
    assert client.get(f"/care/{case_id}").status_code == 404
    sign_in(client, "carer2")
    assert client.get(f"/care/{case_id}").status_code == 404
    assert f'data-case="{case_id}"' not in client.get("/care").text

    # Ops reassign through the page: a non-specialist is refused on the form.
    token = sign_in(client, "ops1")
    page = client.get(f"/care/{case_id}")
    assert page.status_code == 200 and "RISK-SECRET" in page.text and "Carer 2" in page.text
    merchant_id = cw.world.merchants[0].id
    wrong = client.post(f"/care/{case_id}/assign", data={"_csrf_token": token, "specialist_id": str(merchant_id)},
                        follow_redirects=False)  # fmt: skip
    assert wrong.status_code == 422 and "This account is not a care specialist." in wrong.text
    moved = client.post(f"/care/{case_id}/assign", data={"_csrf_token": token, "specialist_id": str(cw.specialists[1].id)},
                        follow_redirects=False)  # fmt: skip
    assert moved.status_code == 303

    # carer2 has it now and closes it; "other" needs a note.
    token = sign_in(client, "carer2")
    no_note = client.post(
        f"/care/{case_id}/close", data={"_csrf_token": token, "outcome": "other"}, follow_redirects=False
    )
    assert no_note.status_code == 422 and marked(no_note.text) == {"note"}
    closed = client.post(f"/care/{case_id}/close", data={"_csrf_token": token, "outcome": "unreachable"},
                         follow_redirects=False)  # fmt: skip
    assert closed.status_code == 303
    page = client.get(f"/care/{case_id}?done=closed")
    assert "A closed case is read-only." in page.text and "Buyer unreachable" in page.text
    assert (
        f'action="/care/{case_id}/entries"' not in page.text
        and f'action="/care/{case_id}/close"' not in page.text
    )
    n = len(in_db(cw, url, lambda x: entries(x, case_id)))
    late = client.post(
        f"/care/{case_id}/entries", data={"_csrf_token": token, "body": "late"}, follow_redirects=False
    )
    assert late.status_code == 409 and "This care case is closed" in late.text
    assert len(in_db(cw, url, lambda x: entries(x, case_id))) == n
    refused = client.post(f"/care/{case_id}/reopen", data={"_csrf_token": token}, follow_redirects=False)
    assert refused.status_code == 403
    in_chinese(client)
    assert "联系不上买家" in client.get(f"/care/{case_id}").text

    token = sign_in(client, "ops1")
    reopened = client.post(f"/care/{case_id}/reopen", data={"_csrf_token": token, "reason": "She wrote again"},
                           follow_redirects=False)  # fmt: skip
    assert reopened.status_code == 303
    assert "Case reopened." in client.get(reopened.headers["location"]).text


def test_dates_centuries_off_on_the_forms(client: TestClient, settings: Settings, cw: CareWorld) -> None:
    """A datetime-local input sending year 1 or year 9999 re-renders the form with that field marked
    (before: OverflowError on the way to UTC, a 500); nothing is written."""
    url = settings.database_url
    token = sign_in(client, "carer1")
    base = {"_csrf_token": token, "username": "buyer0000", "risk_summary": "x", "priority": "high",
            "first_follow_up_plan": "call"}  # fmt: skip
    for moment in ("0001-01-01T00:00", "9999-12-31T23:59"):
        sent = client.post("/care/new", data={**base, "first_follow_up_at": moment}, follow_redirects=False)
        assert sent.status_code == 422 and marked(sent.text) == {"first_follow_up_at"}, sent.status_code
        assert 'value="x"' in sent.text or ">x<" in sent.text  # what was typed stays
    assert in_db(cw, url, lambda x: count(x, CareCase)) == 0
    case_id = seeded_case(cw, url)
    n = len(in_db(cw, url, lambda x: follow_ups(x, case_id)))
    sent = client.post(f"/care/{case_id}/follow-ups", data={"_csrf_token": token, "due_at": "0001-01-01T00:00"},
                       follow_redirects=False)  # fmt: skip
    assert sent.status_code == 422 and marked(sent.text) == {"due_at"}
    assert len(in_db(cw, url, lambda x: follow_ups(x, case_id))) == n


def test_a_specialist_filter_that_is_not_a_number_on_the_work_list(
    client: TestClient, settings: Settings, cw: CareWorld
) -> None:
    """``/care?specialist=²`` was a 500 (``"²".isdigit()`` but no ``int``): now a 422 page."""
    sign_in(client, "ops1")
    for value in ("²", "abc"):
        got = client.get("/care", params={"specialist": value})
        assert got.status_code == 422, (value, got.status_code)
    assert client.get("/care", params={"specialist": "none"}).status_code == 200
