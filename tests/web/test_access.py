"""Who may see what: anonymous visitors, tenant people, landlord admins, superadmins; error pages."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import TestClient
from sqlalchemy import update

from services.models import PlatformRole, Tenant, TenantRole, TenantStatus
from services.rate_limits.policy import Rates
from services.settings import Settings
from tests.support import Credentials, csrf_token, run_db, sign_in
from tests.web.portal import HTMX, add_tenant, add_user, assert_no_trace, portal

UNREACHABLE_DATABASE = "postgresql+asyncpg://postgres@127.0.0.1:1/nothing"
#: What anyone may open without signing in.
PUBLIC = re.compile(r"^(/login|/healthz|/static/.*|/api/docs.*)$")
SAMPLE_PATH_VALUES = {"file_path": "css/tenantry.css", "path": "swagger", "address": "no-such-page"}
SAMPLE_BY_TYPE = {int: "1", str: "acme"}


def signed_in_as(client: TestClient[Any], person: Credentials) -> TestClient[Any]:
    response = sign_in(client, person)
    assert response.status_code in (302, 303), response.text
    return client


def assert_friendly_page(response: Any, status: int, title: str) -> None:
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert f"<h1>{title}</h1>" in response.text
    assert 'href="/"' in response.text
    assert_no_trace(response.text)


def test_anonymous_visitors_are_sent_to_sign_in_and_back(client: TestClient[Any]) -> None:
    for path in ["/", "/tenants", "/users", "/tenants?q=acme&page=2"]:
        response = client.get(path, follow_redirects=False)

        assert response.status_code in (302, 303), path
        login = response.headers["location"]
        assert login.startswith("/login?next="), path
        page = client.get(login)
        assert page.status_code == 200
        assert f'name="next" value="{path.replace("&", "&amp;")}"' in page.text


def test_anonymous_htmx_requests_redirect_the_whole_page_to_sign_in(client: TestClient[Any]) -> None:
    response = client.get("/tenants?q=acme", headers=HTMX, follow_redirects=False)

    assert response.headers["hx-redirect"].startswith("/login?next=")
    assert "<table" not in response.text


@pytest.mark.parametrize("role", [TenantRole.TENANT_ADMIN, TenantRole.TENANT_MEMBER])
def test_tenant_people_see_their_tenants_and_not_the_landlord_portal(
    client: TestClient[Any], settings: Settings, role: str
) -> None:
    add_tenant(settings, "harbour-club", "Harbour Club")
    add_tenant(settings, "other-club", "Other Club")
    person = add_user(settings, "pat@harbour.example", role, tenant_slug="harbour-club")
    signed_in_as(client, person)

    home = client.get("/")
    assert home.status_code == 200
    assert "<h1>Your tenants</h1>" in home.text
    assert "Harbour Club" in home.text
    assert role.replace("_", " ") in home.text
    assert "Other Club" not in home.text
    assert 'href="/tenants"' not in home.text
    for path in ("/tenants", "/users"):
        assert_friendly_page(client.get(path), 403, "Not allowed")


def test_a_member_of_one_tenant_in_service_lands_in_it(client: TestClient[Any], settings: Settings) -> None:
    add_tenant(settings, "harbour-club", "Harbour Club")
    person = add_user(settings, "pat@harbour.example", TenantRole.TENANT_MEMBER, tenant_slug="harbour-club")
    signed_in_as(client, person)
    assert client.get("/").status_code == 200, "a tenant not in service yet: the list, with its status"

    run_db(settings, lambda session: session.execute(update(Tenant).values(status=TenantStatus.ACTIVE)))
    home = client.get("/", follow_redirects=False)
    assert (home.status_code, home.headers["location"]) == (303, "/t/harbour-club/")


def test_a_landlord_admin_sees_tenants_and_users_but_creates_no_staff(
    client: TestClient[Any], settings: Settings
) -> None:
    admin = add_user(settings, "lee@landlord.example", PlatformRole.LANDLORD_ADMIN)
    signed_in_as(client, admin)

    home = client.get("/")
    assert "<h1>Dashboard</h1>" in home.text
    assert 'href="/tenants"' in home.text
    assert 'href="/users"' in home.text, "where they reset a password"
    assert client.get("/tenants").status_code == 200
    users = client.get("/users")
    assert users.status_code == 200 and "Create landlord admin" not in users.text
    create = client.post("/users", data={"email": "new@example.org", "_csrf_token": csrf_token(client)})
    assert_friendly_page(create, 403, "Not allowed")
    assert "Only a superadmin may do this." in create.text


def test_a_superadmin_reaches_every_landlord_page(superadmin_client: TestClient[Any]) -> None:
    for path, heading in [("/", "Dashboard"), ("/tenants", "Tenants"), ("/users", "Landlord staff")]:
        page = superadmin_client.get(path)
        assert page.status_code == 200, path
        assert f"<h1>{heading}</h1>" in page.text


def test_an_unknown_address_gets_a_friendly_not_found_page(
    client: TestClient[Any], superadmin: Credentials
) -> None:
    assert_friendly_page(client.get("/no/such/page"), 404, "Not found")

    signed_in_as(client, superadmin)

    assert_friendly_page(client.get("/no/such/page"), 404, "Not found")


def test_an_unknown_api_address_gets_json(client: TestClient[Any]) -> None:
    response = client.get("/api/v1/no-such-thing")

    assert response.status_code == 404
    assert response.json()["status_code"] == 404


def test_an_unexpected_error_shows_a_friendly_page_without_a_trace(
    settings: Settings, superadmin: Credentials
) -> None:
    """A landlord database that cannot be reached is the honest way to make a request fail."""
    with portal(dataclasses.replace(settings, database_url=UNREACHABLE_DATABASE)) as client:
        assert client.get("/login").status_code == 200
        page = sign_in(client, superadmin)
        api = client.get("/api/v1/tenants", headers={"Authorization": "Bearer tnt_whatever"})

    assert_friendly_page(page, 500, "Something went wrong")
    assert "server log" in page.text
    assert api.status_code == 500
    assert api.json() == {"status_code": 500, "detail": api.json()["detail"]}
    assert_no_trace(api.text)


def sample_paths(app: Litestar) -> list[tuple[str, str]]:
    """(method, path) for every route the app registered, path parameters filled in."""
    requests: list[tuple[str, str]] = []
    for route in app.routes:
        assert isinstance(route, HTTPRoute), route
        path = route.path
        for name, parameter in route.path_parameters.items():
            value = SAMPLE_PATH_VALUES.get(name) or SAMPLE_BY_TYPE.get(parameter.type, "1")
            path = path.replace("{" + parameter.full + "}", value)
        requests += [(method, path) for method in sorted(route.methods - {"OPTIONS", "HEAD"})]
    return requests


def test_no_portal_page_is_open_to_anonymous_visitors(app: Litestar, settings: Settings) -> None:
    requests = sample_paths(app)
    assert ("GET", "/users") in requests and ("POST", "/users") in requests
    # One address asks for every page at once, beyond what a visitor may in a minute: the rate
    # limits (tested on their own) are not what this test is about.
    unlimited = dataclasses.replace(settings, anonymous_rates=Rates())

    with portal(unlimited) as client:
        _assert_every_page_refused_to_anonymous(client, requests)


def _assert_every_page_refused_to_anonymous(client: TestClient[Any], requests: list[tuple[str, str]]) -> None:
    for method, path in requests:
        # A valid CSRF token, so the guards (not the CSRF check) are what refuses.
        data = {"_csrf_token": csrf_token(client)} if method != "GET" else None
        response = client.request(method, path, data=data, follow_redirects=False)
        if PUBLIC.match(path):
            continue
        if path == "/no-such-page":  # the catch-all: nothing there, for anyone
            assert response.status_code == 404, f"{method} {path}"
            continue
        assert not 200 <= response.status_code < 300, f"{method} {path} answered {response.status_code}"
        if path.startswith("/api/"):
            assert response.status_code == 401, f"{method} {path}"
        else:
            assert response.status_code in (302, 303), f"{method} {path}"
            assert response.headers["location"].startswith("/login"), f"{method} {path}"


def test_a_missing_page_still_knows_who_is_signed_in(superadmin_client: TestClient[Any]) -> None:
    page = superadmin_client.get("/no/such/page")

    assert page.status_code == 404
    assert "There is nothing at /no/such/page." in page.text
    assert "admin@localhost" in page.text and "Sign out" in page.text
