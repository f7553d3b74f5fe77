"""Signing in and out, as a plain form and over HTMX; wrong credentials; throttling."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from litestar.testing import TestClient

from services.models import PlatformRole
from services.settings import Settings
from tests.support import Credentials, csrf_token, sign_in
from tests.web.portal import HTMX, add_user, find_user, is_partial, portal, set_active

WRONG = "That email and password do not match an account."


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Fewer allowed failures than the default, so lockouts are quick to reach (each try costs an
    Argon2 verification)."""
    return dataclasses.replace(settings, login_attempts=3)


def attempt(client: TestClient[Any], email: str, password: str, *, htmx: bool = False) -> Any:
    return sign_in(client, Credentials(email, password), htmx=htmx)


def test_signing_in_with_the_form_lands_on_the_dashboard(
    client: TestClient[Any], superadmin: Credentials
) -> None:
    response = sign_in(client, superadmin)

    assert response.status_code in (302, 303)
    assert response.headers["location"] == "/"
    dashboard = client.get("/")
    assert dashboard.status_code == 200
    assert "<h1>Dashboard</h1>" in dashboard.text
    assert superadmin.email in dashboard.text


def test_signing_in_over_htmx_redirects_the_whole_page(
    client: TestClient[Any], superadmin: Credentials
) -> None:
    response = sign_in(client, superadmin, htmx=True)

    assert response.status_code < 300
    assert response.headers["hx-redirect"] == "/"
    assert client.get("/").status_code == 200


def test_signing_in_returns_to_the_page_first_asked_for(
    client: TestClient[Any], superadmin: Credentials
) -> None:
    bounced = client.get("/tenants?q=acme&page=2", follow_redirects=False)
    login_page = client.get(bounced.headers["location"])
    assert 'name="next" value="/tenants?q=acme&amp;page=2"' in login_page.text

    response = client.post(
        "/login",
        data={
            "email": superadmin.email,
            "password": superadmin.password,
            "next": "/tenants?q=acme&page=2",
            "_csrf_token": csrf_token(client),
        },
        follow_redirects=False,
    )

    assert response.headers["location"] == "/tenants?q=acme&page=2"


def test_signing_in_never_sends_you_to_another_site(client: TestClient[Any], superadmin: Credentials) -> None:
    for target in ["//evil.example/", "https://evil.example/", "javascript:alert(1)"]:
        response = client.post(
            "/login",
            data={
                "email": superadmin.email,
                "password": superadmin.password,
                "next": target,
                "_csrf_token": csrf_token(client),
            },
            follow_redirects=False,
        )

        assert response.headers["location"] == "/", target


def test_email_is_not_case_sensitive(client: TestClient[Any], superadmin: Credentials) -> None:
    response = attempt(client, f"  {superadmin.email.upper()} ", superadmin.password)

    assert response.status_code in (302, 303)


@pytest.mark.parametrize("htmx", [False, True], ids=["form", "htmx"])
def test_wrong_password_and_unknown_email_get_the_same_message(
    client: TestClient[Any], superadmin: Credentials, htmx: bool
) -> None:
    wrong_password = attempt(client, superadmin.email, "not-the-password", htmx=htmx)
    unknown_email = attempt(client, "nobody@example.org", superadmin.password, htmx=htmx)

    assert wrong_password.status_code == unknown_email.status_code == 422
    for response in (wrong_password, unknown_email):
        assert WRONG in response.text
        assert "Too many" not in response.text
        assert is_partial(response.text) is htmx
        assert 'id="login-form"' in response.text
    assert client.get("/", follow_redirects=False).status_code in (302, 303)


def test_a_failed_sign_in_keeps_the_email_but_not_the_password(
    client: TestClient[Any], superadmin: Credentials
) -> None:
    response = attempt(client, superadmin.email, "hunter2-wrong")

    assert f'value="{superadmin.email}"' in response.text
    assert "hunter2-wrong" not in response.text


def test_a_deactivated_user_cannot_sign_in_and_is_told_nothing_more(
    client: TestClient[Any], settings: Settings
) -> None:
    person = add_user(settings, "gone@example.org", PlatformRole.LANDLORD_ADMIN)
    set_active(settings, person.email, active=False)

    response = sign_in(client, person)

    assert response.status_code == 422
    assert WRONG in response.text


def test_deactivating_a_user_ends_their_session_at_once(client: TestClient[Any], settings: Settings) -> None:
    person = add_user(settings, "leaving@example.org", PlatformRole.LANDLORD_ADMIN)
    sign_in(client, person)
    assert client.get("/").status_code == 200

    set_active(settings, person.email, active=False)

    response = client.get("/tenants", follow_redirects=False)
    assert response.headers["location"].startswith("/login")


def test_repeated_failures_lock_out_even_the_right_password(
    client: TestClient[Any], settings: Settings, superadmin: Credentials
) -> None:
    for _ in range(settings.login_attempts):
        assert attempt(client, superadmin.email, "wrong").status_code == 422

    for htmx in (False, True):
        response = sign_in(client, superadmin, htmx=htmx)

        assert response.status_code == 429
        minutes = settings.login_lockout_seconds // 60
        assert f"Too many failed sign-ins. Try again in {minutes} minute(s)." in response.text
        assert is_partial(response.text) is htmx
    assert client.get("/", follow_redirects=False).status_code in (302, 303)


def test_a_locked_out_unknown_email_looks_like_a_locked_out_real_one(
    client: TestClient[Any], settings: Settings, superadmin: Credentials
) -> None:
    for _ in range(settings.login_attempts):
        attempt(client, superadmin.email, "wrong")
        attempt(client, "nobody@example.org", "wrong")

    real = attempt(client, superadmin.email, "wrong")
    unknown = attempt(client, "nobody@example.org", "wrong")

    assert real.status_code == unknown.status_code == 429
    assert real.text.replace(superadmin.email, "") == unknown.text.replace("nobody@example.org", "")


def test_one_locked_out_email_does_not_lock_out_others(
    client: TestClient[Any], settings: Settings, superadmin: Credentials
) -> None:
    colleague = add_user(settings, "colleague@example.org", PlatformRole.LANDLORD_ADMIN)
    for _ in range(settings.login_attempts):
        attempt(client, superadmin.email, "wrong")

    assert sign_in(client, colleague).status_code in (302, 303)


def test_a_successful_sign_in_clears_earlier_failures(
    client: TestClient[Any], settings: Settings, superadmin: Credentials
) -> None:
    for _ in range(settings.login_attempts - 1):
        attempt(client, superadmin.email, "wrong")
    assert sign_in(client, superadmin).status_code in (302, 303)
    client.post("/logout", data={"_csrf_token": csrf_token(client)})

    for _ in range(settings.login_attempts - 1):
        attempt(client, superadmin.email, "wrong")

    assert sign_in(client, superadmin).status_code in (302, 303)


def test_parallel_wrong_passwords_reach_the_password_check_only_as_often_as_allowed(
    client: TestClient[Any], settings: Settings, superadmin: Credentials
) -> None:
    """Each attempt is counted before its password is checked, in one step: however many arrive
    at once, no more than `login_attempts` are checked; the others are refused as throttled."""
    form = {"email": superadmin.email, "password": "wrong", "_csrf_token": csrf_token(client)}

    with ThreadPoolExecutor(max_workers=24) as pool:
        responses = list(pool.map(lambda _: client.post("/login", data=form), range(24)))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [422] * settings.login_attempts + [429] * (24 - settings.login_attempts)
    assert sign_in(client, superadmin).status_code == 429


def test_an_email_longer_than_any_account_is_an_ordinary_wrong_sign_in(
    client: TestClient[Any], superadmin: Credentials
) -> None:
    response = attempt(client, "x" * 400 + "@example.org", "wrong")

    assert response.status_code == 422
    assert WRONG in response.text


def test_a_lockout_shorter_than_a_minute_still_says_one_minute(
    settings: Settings, superadmin: Credentials
) -> None:
    with portal(dataclasses.replace(settings, login_attempts=1, login_lockout_seconds=30)) as client:
        attempt(client, superadmin.email, "wrong")
        response = sign_in(client, superadmin)

    assert response.status_code == 429
    assert "Try again in 1 minute(s)." in response.text


def test_passwords_are_stored_as_argon2_hashes(settings: Settings, superadmin: Credentials) -> None:
    user = find_user(settings, superadmin.email)

    assert user is not None
    assert user.password_hash.startswith("$argon2")
    assert superadmin.password not in user.password_hash


@pytest.mark.parametrize("htmx", [False, True], ids=["form", "htmx"])
def test_signing_out_ends_the_session(superadmin_client: TestClient[Any], htmx: bool) -> None:
    response = superadmin_client.post(
        "/logout",
        data={"_csrf_token": csrf_token(superadmin_client)},
        headers=HTMX if htmx else {},
        follow_redirects=False,
    )

    if htmx:
        assert response.headers["hx-redirect"] == "/login"
    else:
        assert response.status_code in (302, 303)
        assert response.headers["location"] == "/login"
    after = superadmin_client.get("/", follow_redirects=False)
    assert after.headers["location"].startswith("/login")
    assert "Sign in" in superadmin_client.get("/login").text
