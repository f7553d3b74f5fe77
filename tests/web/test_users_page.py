"""A superadmin adds landlord admins; each sees a generated password exactly once."""

from __future__ import annotations

import re
from typing import Any

import pytest
from litestar.testing import TestClient

from services.models import PlatformRole
from services.settings import Settings
from tests.support import Credentials, csrf_token, sign_in
from tests.web.portal import HTMX, count_users, find_user, is_partial


def create_staff(client: TestClient[Any], email: str, *, htmx: bool = False) -> Any:
    headers = {**HTMX, "X-CSRFToken": csrf_token(client)} if htmx else {}
    data = {"email": email} if htmx else {"email": email, "_csrf_token": csrf_token(client)}
    return client.post("/users", data=data, headers=headers)


def shown_password(html: str) -> str:
    passwords: list[str] = re.findall(r'<code class="secret">([^<]+)</code>', html)
    [password] = passwords
    return password


def test_a_new_landlord_admin_signs_in_with_the_password_shown_once(
    superadmin_client: TestClient[Any], settings: Settings
) -> None:
    response = create_staff(superadmin_client, "robin@landlord.example")

    assert response.status_code == 201
    assert "<h1>Landlord staff</h1>" in response.text
    assert "<strong>robin@landlord.example</strong> can now sign in with this password" in response.text
    password = shown_password(response.text)
    created = find_user(settings, "robin@landlord.example")
    assert created is not None and created.platform_role == PlatformRole.LANDLORD_ADMIN
    assert password not in created.password_hash

    listing = superadmin_client.get("/users")
    assert "robin@landlord.example" in listing.text
    assert password not in listing.text
    assert 'class="secret"' not in listing.text

    superadmin_client.cookies.clear()
    assert sign_in(superadmin_client, Credentials("robin@landlord.example", password)).status_code in (
        302,
        303,
    )
    dashboard = superadmin_client.get("/")
    assert "<h1>Dashboard</h1>" in dashboard.text
    assert "robin@landlord.example" in dashboard.text


def test_over_htmx_the_users_panel_is_swapped_with_the_password_and_an_empty_form(
    superadmin_client: TestClient[Any], settings: Settings
) -> None:
    response = create_staff(superadmin_client, "robin@landlord.example", htmx=True)

    assert response.status_code == 201
    assert is_partial(response.text)
    assert response.text.lstrip().startswith('<div id="users-panel">')
    assert "<td>robin@landlord.example</td>" in response.text
    assert shown_password(response.text)
    assert 'name="email" value=""' in response.text
    assert find_user(settings, "robin@landlord.example") is not None


@pytest.mark.parametrize(
    ("email", "htmx"),
    [("admin@localhost", False), ("  ADMIN@Localhost ", True)],
    ids=["same-form", "other-case-htmx"],
)
def test_an_email_already_in_use_is_refused_and_creates_nothing(
    superadmin_client: TestClient[Any], settings: Settings, email: str, htmx: bool
) -> None:
    before = count_users(settings)

    response = create_staff(superadmin_client, email, htmx=htmx)

    assert response.status_code == 422
    assert is_partial(response.text) is htmx
    assert "A user with the email admin@localhost already exists." in response.text
    assert 'class="secret"' not in response.text
    assert count_users(settings) == before


def test_an_invalid_email_is_refused_and_creates_nothing(
    superadmin_client: TestClient[Any], settings: Settings
) -> None:
    before = count_users(settings)

    for email in ["not-an-email", "two@@example.org", "spaces in@example.org"]:
        response = create_staff(superadmin_client, email, htmx=True)

        assert response.status_code == 422, email
        assert "Enter a valid email address, like name@example.org." in response.text
        assert f'name="email" value="{email}"' in response.text, "what was typed stays in the form"

    assert count_users(settings) == before
