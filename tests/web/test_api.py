"""The JSON API under /api/v1: bearer tokens scoped to the landlord or one tenant; OpenAPI docs."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy.ext.asyncio import AsyncSession

from services.accounts.tokens import LAST_USE_PRECISION, list_tokens, revoke_token
from services.models import PlatformRole, TenantRole
from services.settings import Settings
from tests.support import Credentials, run_db
from tests.web.portal import add_tenant, add_token, add_user, set_active

CDN_HINTS = re.compile(r"unpkg|jsdelivr|cdnjs|\bcdn\.|//cdn|googleapis", re.IGNORECASE)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def assert_json_error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["status_code"] == status
    assert body["detail"]
    return body


@pytest.fixture
def tenants(settings: Settings) -> list[str]:
    add_tenant(settings, "harbour-club", "Harbour Club")
    add_tenant(settings, "green-party", "Green Party")
    return ["harbour-club", "green-party"]


@pytest.fixture
def landlord_token(settings: Settings, superadmin: Credentials, tenants: list[str]) -> str:
    return add_token(settings, superadmin.email)


@pytest.fixture
def harbour_token(settings: Settings, tenants: list[str]) -> str:
    """A token of a tenant admin of harbour-club, scoped to that tenant."""
    add_user(settings, "pat@harbour.example", TenantRole.TENANT_ADMIN, tenant_slug="harbour-club")
    return add_token(settings, "pat@harbour.example", tenant_slug="harbour-club")


def test_a_request_without_a_valid_token_gets_401_json(client: TestClient[Any], tenants: list[str]) -> None:
    for authorization in [
        None,
        "Bearer",
        "Bearer tnt_not-a-real-token",
        "Bearer not-even-the-prefix",
        "Basic YWRtaW46cHc=",
    ]:
        headers = {"Authorization": authorization} if authorization else {}
        for path in ("/api/v1/tenants", "/api/v1/tenants/harbour-club"):
            body = assert_json_error(client.get(path, headers=headers), 401)
            assert "Bearer" in body["detail"]


def test_a_revoked_token_stops_working(
    client: TestClient[Any], settings: Settings, superadmin: Credentials, landlord_token: str
) -> None:
    assert client.get("/api/v1/tenants", headers=bearer(landlord_token)).status_code == 200

    async def revoke_all(session: AsyncSession) -> None:
        for token in await list_tokens(session, superadmin.email):
            await revoke_token(session, token.id)

    run_db(settings, revoke_all)

    assert_json_error(client.get("/api/v1/tenants", headers=bearer(landlord_token)), 401)


def test_a_tokens_last_use_is_kept_to_the_minute_without_a_write_on_every_request(
    client: TestClient[Any], settings: Settings, superadmin: Credentials, landlord_token: str
) -> None:
    async def last_used(session: AsyncSession) -> datetime | None:
        (token,) = await list_tokens(session, superadmin.email)
        return token.last_used_at

    assert run_db(settings, last_used) is None, "a new token has not been used"
    assert client.get("/api/v1/tenants", headers=bearer(landlord_token)).status_code == 200
    first_use = run_db(settings, last_used)
    assert first_use is not None

    assert client.get("/api/v1/tenants", headers=bearer(landlord_token)).status_code == 200
    assert run_db(settings, last_used) == first_use, "a use within the minute is not written again"

    async def a_minute_ago(session: AsyncSession) -> None:
        (token,) = await list_tokens(session, superadmin.email)
        token.last_used_at = first_use - LAST_USE_PRECISION

    run_db(settings, a_minute_ago)
    assert client.get("/api/v1/tenants", headers=bearer(landlord_token)).status_code == 200
    later_use = run_db(settings, last_used)
    assert later_use is not None and later_use >= first_use, "a use a minute later is written"


def test_a_deactivated_users_token_stops_working(
    client: TestClient[Any], settings: Settings, tenants: list[str]
) -> None:
    add_user(settings, "lee@landlord.example", PlatformRole.LANDLORD_ADMIN)
    secret = add_token(settings, "lee@landlord.example")

    set_active(settings, "lee@landlord.example", active=False)

    assert_json_error(client.get("/api/v1/tenants", headers=bearer(secret)), 401)


def test_a_landlord_token_lists_tenants_a_page_at_a_time(
    client: TestClient[Any], landlord_token: str
) -> None:
    response = client.get("/api/v1/tenants", headers=bearer(landlord_token))

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"items", "total", "page", "per_page"}
    assert (body["total"], body["page"], body["per_page"]) == (2, 1, 20)
    assert sorted(item["slug"] for item in body["items"]) == ["green-party", "harbour-club"]
    harbour = next(item for item in body["items"] if item["slug"] == "harbour-club")
    assert harbour["name"] == "Harbour Club"
    assert harbour["status"] == "provisioning"

    second = client.get("/api/v1/tenants", params={"per_page": 1, "page": 2}, headers=bearer(landlord_token))
    assert second.json()["page"] == 2 and len(second.json()["items"]) == 1
    found = client.get("/api/v1/tenants", params={"q": "GREEN"}, headers=bearer(landlord_token))
    assert [item["slug"] for item in found.json()["items"]] == ["green-party"]
    for page in (3, 10**30):
        past_the_end = client.get("/api/v1/tenants", params={"page": page}, headers=bearer(landlord_token))
        assert past_the_end.status_code == 200, page
        assert past_the_end.json()["items"] == [], "a client paging until it sees no items stops"


def test_a_landlord_admins_token_is_a_landlord_token_too(
    client: TestClient[Any], settings: Settings, tenants: list[str]
) -> None:
    add_user(settings, "lee@landlord.example", PlatformRole.LANDLORD_ADMIN)
    secret = add_token(settings, "lee@landlord.example")

    assert client.get("/api/v1/tenants", headers=bearer(secret)).json()["total"] == 2


def test_a_landlord_token_reads_any_tenant_and_unknown_ones_are_404(
    client: TestClient[Any], landlord_token: str
) -> None:
    one = client.get("/api/v1/tenants/green-party", headers=bearer(landlord_token))

    assert one.status_code == 200
    assert one.json()["slug"] == "green-party"
    assert one.json()["name"] == "Green Party"
    missing = assert_json_error(client.get("/api/v1/tenants/no-such", headers=bearer(landlord_token)), 404)
    assert "no-such" in missing["detail"]


def test_bad_query_parameters_get_400_json(client: TestClient[Any], landlord_token: str) -> None:
    for params in ({"per_page": 1000}, {"page": 0}, {"page": "two"}):
        assert_json_error(client.get("/api/v1/tenants", params=params, headers=bearer(landlord_token)), 400)


def test_a_tenant_token_reads_its_own_tenant(client: TestClient[Any], harbour_token: str) -> None:
    response = client.get("/api/v1/tenants/harbour-club", headers=bearer(harbour_token))

    assert response.status_code == 200
    assert response.json()["slug"] == "harbour-club"


def test_a_tenant_token_may_not_list_tenants(client: TestClient[Any], harbour_token: str) -> None:
    body = assert_json_error(client.get("/api/v1/tenants", headers=bearer(harbour_token)), 403)

    assert "harbour-club" in body["detail"]
    assert "green-party" not in str(body)


def test_a_tenant_token_gets_the_same_refusal_for_another_tenant_whether_it_exists_or_not(
    client: TestClient[Any], harbour_token: str
) -> None:
    existing = client.get("/api/v1/tenants/green-party", headers=bearer(harbour_token))
    missing = client.get("/api/v1/tenants/no-such-tenant", headers=bearer(harbour_token))

    assert_json_error(existing, 403)
    assert_json_error(missing, 403)
    assert existing.json() == missing.json()


def test_a_landlord_admins_token_scoped_to_a_tenant_reads_only_that_tenant(
    client: TestClient[Any], settings: Settings, superadmin: Credentials, tenants: list[str]
) -> None:
    secret = add_token(settings, superadmin.email, tenant_slug="harbour-club")

    assert client.get("/api/v1/tenants/harbour-club", headers=bearer(secret)).status_code == 200
    assert_json_error(client.get("/api/v1/tenants/green-party", headers=bearer(secret)), 403)
    assert_json_error(client.get("/api/v1/tenants", headers=bearer(secret)), 403)


@pytest.mark.parametrize("path", ["/api/docs", "/api/docs/swagger"])
def test_the_api_docs_load_swagger_from_this_server(client: TestClient[Any], path: str) -> None:
    page = client.get(path)

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assets = re.findall(r'(?:src|href)=["\']([^"\']+)["\']', page.text)
    assert any(asset.endswith("swagger-ui-bundle.js") for asset in assets)
    for asset in assets:
        assert asset.startswith("/static/vendor/"), asset
        assert client.get(asset).status_code == 200, asset
    assert not CDN_HINTS.search(page.text)


def test_the_openapi_document_describes_the_api_and_nothing_of_the_portal(client: TestClient[Any]) -> None:
    response = client.get("/api/docs/openapi.json")

    assert response.status_code == 200
    document = response.json()
    paths = set(document["paths"])
    assert {"/api/v1/tenants", "/api/v1/tenants/{slug}"} <= paths
    assert paths.isdisjoint({"/", "/login", "/logout", "/tenants", "/users"})
    assert all(path.startswith("/api/") or path == "/healthz" for path in paths)
    assert document["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
