"""Browser-session security: CSRF on everything the cookie can do, cookie flags, sign-out."""

from __future__ import annotations

import re
from pathlib import Path

from litestar.testing import TestClient

from tests.helpers import PASSWORD, create_user, make_settings
from trustlive.app import create_app


def _csrf(client: TestClient, path: str = "/login") -> str:
    page = client.get(path)
    assert page.status_code == 200
    found = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert found, "pages expose the CSRF token in a meta tag"
    return found.group(1)


def _sign_in(client: TestClient, username: str) -> str:
    token = _csrf(client)
    response = client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "_csrf_token": token, "next": "/me"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/me"
    return response.headers["set-cookie"]


def test_session_cookie_flags(client: TestClient) -> None:
    create_user(client.app.state.settings.database_url, "buyer1", "buyer")
    cookie = _sign_in(client, "buyer1").lower()
    assert "tl_session=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    assert "secure" not in cookie  # plain http in tests, TRUSTLIVE_COOKIE_SECURE=false


def test_secure_cookie_when_configured(sqlite_url: str, tmp_path: Path) -> None:
    create_user(sqlite_url, "buyer1", "buyer")
    app = create_app(make_settings(sqlite_url, tmp_path, cookie_secure="true"))
    # Secure cookies only travel over https, as in a real deployment behind TLS.
    with TestClient(app, base_url="https://testserver.local") as client:
        assert "secure" in _sign_in(client, "buyer1").lower()


def test_forms_need_the_csrf_token(client: TestClient) -> None:
    create_user(client.app.state.settings.database_url, "buyer1", "buyer")
    client.get("/login")
    response = client.post(
        "/login", data={"username": "buyer1", "password": PASSWORD}, follow_redirects=False
    )
    assert response.status_code == 403
    assert "tl_session" not in response.headers.get("set-cookie", "")
    forged = client.post(
        "/login",
        data={"username": "buyer1", "password": PASSWORD, "_csrf_token": "forged"},
        follow_redirects=False,
    )
    assert forged.status_code == 403


def test_api_calls_riding_on_the_cookie_need_the_csrf_header(client: TestClient) -> None:
    create_user(client.app.state.settings.database_url, "merchant1", "merchant")
    _sign_in(client, "merchant1")
    assert client.get("/api/v1/me").json()["username"] == "merchant1"  # reads are fine
    refused = client.post("/api/v1/shops", json={"name": "Cookie shop"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "csrf_failed"
    assert client.get("/api/v1/me/shops").json() == []
    token = _csrf(client, "/me")
    accepted = client.post("/api/v1/shops", json={"name": "Cookie shop"}, headers={"X-CSRF-Token": token})
    assert accepted.status_code == 201


def test_sign_out_ends_the_session(client: TestClient) -> None:
    create_user(client.app.state.settings.database_url, "buyer1", "buyer")
    _sign_in(client, "buyer1")
    session = client.cookies.get("tl_session")
    assert client.get("/me").status_code == 200
    token = _csrf(client, "/me")
    out = client.post("/logout", data={"_csrf_token": token}, follow_redirects=False)
    assert out.status_code == 303
    # The old cookie value is dead on the server, not just deleted in this browser.
    client.cookies.set("tl_session", session)
    response = client.get("/me", follow_redirects=False)
    assert response.status_code in (302, 303, 307) and response.headers["location"].startswith("/login")


def test_next_parameter_cannot_leave_the_site(client: TestClient) -> None:
    create_user(client.app.state.settings.database_url, "buyer1", "buyer")
    token = _csrf(client)
    response = client.post(
        "/login",
        data={"username": "buyer1", "password": PASSWORD, "_csrf_token": token, "next": "//evil.example/x"},
        follow_redirects=False,
    )
    assert response.headers["location"] == "/"
    lang = client.get("/lang/en?next=https://evil.example/", follow_redirects=False)
    assert lang.headers["location"] == "/"
