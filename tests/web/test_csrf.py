"""Every unsafe request of the portal carries the CSRF token; the bearer-token API does not need it."""

from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from services.settings import Settings
from tests.support import Credentials, csrf_token
from tests.web.portal import HTMX, add_token, assert_no_trace, count_users, find_user

#: A form without the token, and one with a token that is not this browser's.
BAD_TOKENS = {"missing": {}, "wrong": {"_csrf_token": "0" * 128}}


def test_signing_in_without_the_csrf_token_is_refused(
    client: TestClient[Any], superadmin: Credentials
) -> None:
    client.get("/login")

    for case, token in BAD_TOKENS.items():
        response = client.post(
            "/login",
            data={"email": superadmin.email, "password": superadmin.password, **token},
            follow_redirects=False,
        )
        assert response.status_code == 403, case
        assert "text/html" in response.headers["content-type"]
        assert_no_trace(response.text)
    assert client.get("/", follow_redirects=False).status_code in (302, 303)


def test_signing_out_without_the_csrf_token_leaves_you_signed_in(superadmin_client: TestClient[Any]) -> None:
    for case, token in BAD_TOKENS.items():
        for headers in ({}, HTMX):
            response = superadmin_client.post("/logout", data=token, headers=headers, follow_redirects=False)
            assert response.status_code == 403, case
    assert superadmin_client.get("/", follow_redirects=False).status_code == 200


def test_creating_a_user_without_the_csrf_token_creates_nobody(
    superadmin_client: TestClient[Any], settings: Settings
) -> None:
    before = count_users(settings)

    for case, token in BAD_TOKENS.items():
        for headers in ({}, HTMX):
            response = superadmin_client.post(
                "/users", data={"email": "sneaky@example.org", **token}, headers=headers
            )
            assert response.status_code == 403, case

    assert find_user(settings, "sneaky@example.org") is None
    assert count_users(settings) == before


def test_a_csrf_token_from_another_browser_is_refused(
    client: TestClient[Any], superadmin: Credentials
) -> None:
    someone_elses = csrf_token(client)
    client.cookies.clear()
    client.get("/login")

    response = client.post(
        "/login",
        data={"email": superadmin.email, "password": superadmin.password, "_csrf_token": someone_elses},
        follow_redirects=False,
    )

    assert response.status_code == 403


def test_htmx_requests_send_the_token_in_a_header(client: TestClient[Any], superadmin: Credentials) -> None:
    page = client.get("/login")
    token = csrf_token(client)
    assert f'hx-headers=\'{{"x-csrftoken": "{token}"}}\'' in page.text

    response = client.post(
        "/login",
        data={"email": superadmin.email, "password": superadmin.password},
        headers={**HTMX, "X-CSRFToken": token},
    )

    assert response.headers["hx-redirect"] == "/"


def test_the_api_needs_no_csrf_token_and_sets_no_cookies(
    client: TestClient[Any], settings: Settings, superadmin: Credentials
) -> None:
    secret = add_token(settings, superadmin.email)

    read = client.get("/api/v1/tenants", headers={"Authorization": f"Bearer {secret}"})
    unsafe = client.post("/api/v1/tenants", headers={"Authorization": f"Bearer {secret}"}, json={})

    assert read.status_code == 200
    assert unsafe.status_code != 403
    assert "csrf" not in unsafe.text.lower()
    assert unsafe.headers["content-type"].startswith("application/json")
    assert read.headers.get_list("set-cookie") == unsafe.headers.get_list("set-cookie") == []


def test_the_api_ignores_the_portal_session(superadmin_client: TestClient[Any]) -> None:
    """A browser's cookies never authenticate an API call, which is why the API can skip CSRF."""
    response = superadmin_client.get("/api/v1/tenants")

    assert response.status_code == 401
