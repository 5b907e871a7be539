"""The Chinese catalog is complete and current, and the UI language follows the visitor's choice."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from litestar.testing import TestClient

from tests.helpers import make_settings
from trustlive.app import create_app
from trustlive.web.i18n import LOCALE_DIR

ROOT = Path(__file__).resolve().parents[2]
PO = LOCALE_DIR / "zh_Hans" / "LC_MESSAGES" / "messages.po"
PLACEHOLDER = re.compile(r"%\([a-z_]+\)s|%%")


def _catalog():  # type: ignore[no-untyped-def]
    with PO.open("rb") as fh:
        return read_po(fh, locale="zh_Hans_CN")


def _source_msgids() -> set[str]:
    """Every UI string in code and templates, extracted the way `make i18n` does."""
    method_map = [("trustlive/**.py", "python"), ("trustlive/web/templates/**.html", "jinja2")]
    options = {"trustlive/web/templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    found = set()
    for _, _, message, _, _ in extract_from_dir(str(ROOT / "src"), method_map, options):
        found.add(message if isinstance(message, str) else message[0])
    return found


def test_every_message_has_a_chinese_translation() -> None:
    empty = [m.id for m in _catalog() if m.id and not m.string]
    assert not empty, f"untranslated in {PO.name}: {empty}"


def test_the_catalog_covers_every_string_in_the_source() -> None:
    known = {m.id for m in _catalog() if m.id}
    missing = sorted(_source_msgids() - known)
    assert not missing, f"run `make i18n` and translate: {missing}"


def test_translations_keep_their_placeholders() -> None:
    for m in _catalog():
        if m.id and m.string:
            assert sorted(PLACEHOLDER.findall(m.id)) == sorted(PLACEHOLDER.findall(m.string)), m.id


@pytest.fixture
def web(sqlite_url: str, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(sqlite_url, tmp_path)), raise_server_exceptions=False) as client:
        yield client


def test_language_cookie_picks_english_or_chinese(web: TestClient) -> None:
    web.cookies.set("tl_lang", "en")
    english = web.get("/search")
    assert '<html lang="en">' in english.text
    assert "Search products" in english.text and "What are you looking for?" in english.text
    assert "搜索商品" not in english.text

    web.cookies.set("tl_lang", "zh_Hans")
    chinese = web.get("/search")
    assert '<html lang="zh-Hans">' in chinese.text
    assert "搜索商品" in chinese.text and "想找点什么？" in chinese.text
    assert "Search products" not in chinese.text


def test_language_switch_sets_the_cookie_and_goes_back(web: TestClient) -> None:
    switched = web.get("/lang/en", params={"next": "/search?q=连体衣"}, follow_redirects=False)
    assert switched.status_code in (302, 303)
    assert unquote(switched.headers["location"]) == "/search?q=连体衣"
    assert "tl_lang=en" in switched.headers["set-cookie"]
    assert "Results for" in web.get("/search", params={"q": "连体衣"}).text
    back = web.get("/lang/zh_Hans", params={"next": "//evil.example"}, follow_redirects=False)
    assert back.headers["location"] == "/"
    assert "“连体衣”的搜索结果" in web.get("/search", params={"q": "连体衣"}).text


def test_accept_language_is_the_fallback(web: TestClient) -> None:
    assert "Sign in" in web.get("/login", headers={"Accept-Language": "en-GB,en;q=0.9"}).text
    assert "登录" in web.get("/login", headers={"Accept-Language": "zh-CN,zh;q=0.9"}).text
    # Errors are translated too.
    assert "没有找到相关内容" in web.get("/nope", headers={"Accept-Language": "zh-CN"}).text


def test_error_pages_raised_outside_the_handlers_follow_the_language(web: TestClient) -> None:
    """A CSRF refusal (raised in middleware) and an unknown path are rendered in the chosen language."""
    web.get("/login")
    web.cookies.set("tl_lang", "en")
    assert "form expired" in web.post("/login", data={"username": "x", "password": "y"}).text
    assert "We could not find that" in web.get("/no/such/page").text
    web.cookies.set("tl_lang", "zh_Hans")
    assert "表单已过期" in web.post("/login", data={"username": "x", "password": "y"}).text
    assert "没有找到相关内容" in web.get("/no/such/page", headers={"Accept-Language": "en"}).text


@pytest.mark.parametrize(
    ("lang", "expected"), [("zh_Hans", "用户名或密码错误"), ("en", "Wrong username or password.")]
)
def test_service_errors_are_explained_in_the_page_language(
    sqlite_url: str, tmp_path: Path, lang: str, expected: str
) -> None:
    with TestClient(create_app(make_settings(sqlite_url, tmp_path))) as client:
        client.cookies.set("tl_lang", lang)
        page = client.get("/login")
        token = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        response = client.post(
            "/login", data={"username": "nobody", "password": "wrong-pass", "_csrf_token": token}
        )
        assert response.status_code == 401
        assert expected in response.text
        # The API keeps its stable English message for programs.
        api = client.post("/api/v1/auth/token", json={"username": "nobody", "password": "wrong-pass"})
        assert api.json()["error"]["message"] == "wrong username or password"
