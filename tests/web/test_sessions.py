"""Server-side sessions: the cookie carries an id, the landlord database the data; ids rotate."""

from __future__ import annotations

import json
from typing import Any

from litestar.testing import TestClient

from services.settings import Settings
from tests.support import Credentials, csrf_token, sign_in
from tests.web.portal import (
    SESSION_COOKIE,
    get_with_session,
    session_id,
    set_cookies,
    stored_sessions,
)


def test_the_session_cookie_holds_only_an_id_and_the_data_lives_in_the_landlord_database(
    client: TestClient[Any], settings: Settings, superadmin: Credentials
) -> None:
    sign_in(client, superadmin)

    cookie = session_id(client)
    assert cookie is not None
    assert "user_id" not in cookie and superadmin.email not in cookie
    stored = stored_sessions(settings)
    assert list(stored) == [cookie]
    assert "user_id" in json.loads(stored[cookie])


def test_the_session_cookie_is_http_only_and_same_site_lax(
    client: TestClient[Any], superadmin: Credentials
) -> None:
    response = sign_in(client, superadmin)

    [header] = set_cookies(response, SESSION_COOKIE)
    attributes = {part.strip().lower() for part in header.split(";")[1:]}
    assert "httponly" in attributes
    assert "samesite=lax" in attributes
    assert "path=/" in attributes


def test_anonymous_visitors_get_no_session_cookie(
    client: TestClient[Any], settings: Settings, superadmin: Credentials
) -> None:
    responses = [
        client.get("/login"),
        client.get("/tenants", follow_redirects=False),
        client.get("/nowhere"),
        client.get("/healthz"),
        sign_in(client, Credentials(superadmin.email, "wrong")),
    ]

    for response in responses:
        assert set_cookies(response, SESSION_COOKIE) == []
    assert session_id(client) is None
    assert stored_sessions(settings) == {}


def test_signing_in_again_rotates_the_session_id(
    client: TestClient[Any], settings: Settings, superadmin: Credentials
) -> None:
    sign_in(client, superadmin)
    first = session_id(client)
    assert first is not None

    sign_in(client, superadmin)
    second = session_id(client)

    assert second is not None and second != first
    assert get_with_session(client, "/", second).status_code == 200
    old = get_with_session(client, "/", first)
    assert old.status_code in (302, 303)
    assert old.headers["location"].startswith("/login")
    assert list(stored_sessions(settings)) == [second]


def test_signing_out_ends_the_old_session_id_for_good(
    superadmin_client: TestClient[Any], settings: Settings
) -> None:
    kept = session_id(superadmin_client)
    assert kept is not None

    superadmin_client.post("/logout", data={"_csrf_token": csrf_token(superadmin_client)})

    replayed = get_with_session(superadmin_client, "/tenants", kept)
    assert replayed.status_code in (302, 303)
    assert replayed.headers["location"] == "/login?next=/tenants"
    assert stored_sessions(settings) == {}


def test_a_session_id_planted_before_sign_in_is_never_the_signed_in_one(
    client: TestClient[Any], settings: Settings, superadmin: Credentials
) -> None:
    planted = "a" * 64
    client.cookies.set(SESSION_COOKIE, planted, domain="127.0.0.1")

    sign_in(client, superadmin)

    assert session_id(client) != planted
    assert planted not in stored_sessions(settings)
    assert get_with_session(client, "/", planted).status_code in (302, 303)
