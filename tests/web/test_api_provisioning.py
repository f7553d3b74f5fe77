"""/api/v1 for provisioning: the layer catalogue, creating a tenant (202 and a job to follow),
following the job to the end, every mistake named by field, and who may do what."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.layers.catalogue import load_catalogue
from services.models import Job, Tenant, TenantRole
from services.provisioning.tenants import PROVISIONING_STEP_NAMES
from services.settings import Settings
from tests.services.running import wait_for
from tests.support import Credentials, run_db
from tests.web.portal import add_tenant, add_token, add_user
from tests.web.test_api import assert_json_error, bearer
from tests.workers.support import drop_tenant_databases, tenant

NEW_TENANT = {
    "slug": "save-the-owls",
    "name": "Save the Owls",
    "template": "non_profit",
    "modules": ["finance", "documents", "events", "volunteering"],
}


@pytest.fixture(autouse=True)
def no_stores_left_behind(settings: Settings) -> Iterator[None]:
    yield
    drop_tenant_databases(settings.database_url)


@pytest.fixture
def landlord_token(settings: Settings, superadmin: Credentials) -> str:
    return add_token(settings, superadmin.email)


@pytest.fixture
def harbour_token(settings: Settings, superadmin: Credentials) -> str:
    """A tenant admin's token, scoped to harbour-club."""
    add_tenant(settings, "harbour-club", "Harbour Club")
    add_user(settings, "pat@harbour.example", TenantRole.TENANT_ADMIN, tenant_slug="harbour-club")
    return add_token(settings, "pat@harbour.example", tenant_slug="harbour-club")


def create(client: TestClient[Any], token: str, body: Any) -> Any:
    return client.post("/api/v1/tenants", json=body, headers=bearer(token))


def follow(client: TestClient[Any], token: str, location: str, timeout: float = 60) -> dict[str, Any]:
    """Poll the job at `location` until it has finished; returns it."""

    def finished() -> dict[str, Any] | None:
        response = client.get(location, headers=bearer(token))
        assert response.status_code == 200, response.text
        job = response.json()
        return job if job["status"] in ("succeeded", "failed") else None

    return wait_for(finished, timeout, what=f"{location} to finish", interval=0.1)


def counts(settings: Settings) -> tuple[int, int]:
    """How many tenants and jobs there are."""

    async def work(session: AsyncSession) -> tuple[int, int]:
        tenants = await session.scalar(select(func.count()).select_from(Tenant))
        jobs = await session.scalar(select(func.count()).select_from(Job))
        return tenants or 0, jobs or 0

    return run_db(settings, work)


def errors_by_field(body: dict[str, Any]) -> dict[str, str]:
    assert isinstance(body.get("errors"), list), body
    return {error["field"]: error["message"] for error in body["errors"]}


# --- The catalogue ----------------------------------------------------------------------------


def test_the_catalogue_lists_templates_and_modules(
    client: TestClient[Any], settings: Settings, landlord_token: str
) -> None:
    catalogue = load_catalogue(settings.layers_dir)

    templates = client.get("/api/v1/templates", headers=bearer(landlord_token))
    modules = client.get("/api/v1/modules", headers=bearer(landlord_token))

    assert templates.status_code == 200
    assert {item["name"]: item for item in templates.json()} == {
        name: {
            "name": name,
            "title": layer.title,
            "version": layer.version,
            "description": layer.description,
            "default_modules": list(layer.default_modules),
        }
        for name, layer in catalogue.templates.items()
    }
    non_profit = next(item for item in templates.json() if item["name"] == "non_profit")
    assert set(non_profit["default_modules"]) == {"finance", "documents", "events", "volunteering"}

    assert modules.status_code == 200
    by_name = {item["name"]: item for item in modules.json()}
    assert set(by_name) == set(catalogue.modules)
    assert by_name["events"]["version"] == "1.1.0"
    assert by_name["election_campaign"]["requires"] == ["events"]
    assert by_name["volunteering"]["requires"] == ["events"]
    assert by_name["finance"]["conflicts"] == ["simple_ledger"]
    assert by_name["simple_ledger"]["conflicts"] == ["finance"]
    assert by_name["documents"] == {
        "name": "documents",
        "title": "Documents",
        "version": "1.0.0",
        "description": catalogue.modules["documents"].description,
        "requires": [],
        "conflicts": [],
    }


def test_a_tenant_token_reads_the_catalogue_too(client: TestClient[Any], harbour_token: str) -> None:
    assert client.get("/api/v1/templates", headers=bearer(harbour_token)).status_code == 200
    assert client.get("/api/v1/modules", headers=bearer(harbour_token)).status_code == 200


# --- Creating a tenant and following its job --------------------------------------------------


def test_a_landlord_token_creates_a_tenant_and_follows_its_job_to_active(
    client: TestClient[Any], settings: Settings, landlord_token: str
) -> None:
    response = create(client, landlord_token, NEW_TENANT)

    assert response.status_code == 202, response.text
    body = response.json()
    job = body["job"]
    assert response.headers["location"] == f"/api/v1/jobs/{job['id']}"
    assert body["tenant"]["slug"] == "save-the-owls"
    assert body["tenant"]["name"] == "Save the Owls"
    assert body["tenant"]["status"] == "provisioning"
    assert body["tenant"]["template"] == "non_profit"
    assert (job["kind"], job["tenant"]) == ("provision", "save-the-owls")
    assert [step["name"] for step in job["steps"]] == PROVISIONING_STEP_NAMES
    assert len(job["steps"]) == 11
    assert all(step["status"] in ("pending", "running", "succeeded") for step in job["steps"])

    finished = follow(client, landlord_token, response.headers["location"])

    assert (finished["status"], finished["error"]) == ("succeeded", None)
    assert finished["finished_at"] is not None
    assert [(step["name"], step["status"], step["error"]) for step in finished["steps"]] == [
        (name, "succeeded", None) for name in PROVISIONING_STEP_NAMES
    ]
    assert all(step["started_at"] and step["finished_at"] and step["detail"] for step in finished["steps"])
    created = client.get("/api/v1/tenants/save-the-owls", headers=bearer(landlord_token))
    assert created.status_code == 200
    assert created.json()["status"] == "active"
    assert created.json()["error"] is None
    assert created.json()["modules"] == ["documents", "events", "finance", "volunteering"]
    assert created.json()["store_backend"] in ("sqlite", "postgresql")


def test_a_tenant_token_may_follow_its_own_tenants_job(
    client: TestClient[Any], settings: Settings, superadmin: Credentials, landlord_token: str
) -> None:
    job = create(client, landlord_token, NEW_TENANT).json()["job"]
    add_user(settings, "pat@owls.example", TenantRole.TENANT_ADMIN, tenant_slug="save-the-owls")
    owls_token = add_token(settings, "pat@owls.example", tenant_slug="save-the-owls")

    assert follow(client, owls_token, f"/api/v1/jobs/{job['id']}")["status"] == "succeeded"


# --- Mistakes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            {
                "slug": "Not A Slug!",
                "name": " ",
                "template": "political_party",
                "modules": ["finance", "simple_ledger", "events"],
                "isolation": "on-the-moon",
            },
            {
                "slug": "A slug is 3 to 63 lowercase letters",
                "name": "Give the tenant a name.",
                "modules": "Finance and Simple ledger cannot be enabled together: choose one.",
                "isolation": "Isolation 'on-the-moon' is not available here",
            },
            id="everything-wrong-at-once",
        ),
        pytest.param(
            {**NEW_TENANT, "template": "no_such_template"},
            {"template": "Unknown template 'no_such_template'"},
            id="unknown-template",
        ),
        pytest.param(
            {**NEW_TENANT, "template": "political_party", "modules": ["election_campaign"]},
            {"modules": "Election campaign needs Events: tick Events too, or untick Election campaign."},
            id="missing-requirement",
        ),
        pytest.param(
            {**NEW_TENANT, "modules": ["events", "teleportation"]},
            {"modules": "There is no module 'teleportation': leave it out"},
            id="unknown-module",
        ),
        pytest.param(
            {**NEW_TENANT, "slug": 5}, {"slug": "Expected `str`, got `int`"}, id="slug-not-a-string"
        ),
        pytest.param(
            {**NEW_TENANT, "modules": "events"},
            {"modules": "Expected `array | null`, got `str`"},
            id="modules-not-a-list",
        ),
        pytest.param(
            {**NEW_TENANT, "modules": ["events", 7]},
            {"modules[1]": "Expected `str`, got `int`"},
            id="a-module-not-a-string",
        ),
        pytest.param(
            {key: value for key, value in NEW_TENANT.items() if key != "name"},
            {"name": "missing required field `name`"},
            id="name-missing",
        ),
        pytest.param(
            {key: value for key, value in NEW_TENANT.items() if key != "template"},
            {"template": "missing required field `template`"},
            id="template-missing",
        ),
    ],
)
def test_bad_input_is_422_naming_each_field_and_creates_nothing(
    client: TestClient[Any], settings: Settings, landlord_token: str, body: Any, expected: dict[str, str]
) -> None:
    before = counts(settings)

    response = create(client, landlord_token, body)

    problem = assert_json_error(response, 422)
    errors = errors_by_field(problem)
    assert set(errors) == set(expected), errors
    for field, message in expected.items():
        assert message in errors[field], (field, errors[field])
    assert counts(settings) == before
    assert "location" not in response.headers


def test_a_taken_slug_is_422_on_the_slug(
    client: TestClient[Any], settings: Settings, landlord_token: str
) -> None:
    add_tenant(settings, "save-the-owls", "Owls Already")
    before = counts(settings)

    problem = assert_json_error(create(client, landlord_token, NEW_TENANT), 422)

    assert errors_by_field(problem) == {"slug": "The slug 'save-the-owls' is taken."}
    assert counts(settings) == before
    assert tenant(settings, "save-the-owls").name == "Owls Already"


@pytest.mark.parametrize("content", [b"{not json", b"[]", b'"a string"'])
def test_a_body_that_is_not_a_tenant_is_refused_plainly(
    client: TestClient[Any], settings: Settings, landlord_token: str, content: bytes
) -> None:
    before = counts(settings)

    response = client.post(
        "/api/v1/tenants",
        content=content,
        headers={**bearer(landlord_token), "Content-Type": "application/json"},
    )

    assert response.status_code in (400, 422), response.text
    assert_json_error(response, response.status_code)
    assert counts(settings) == before


# --- Who may ----------------------------------------------------------------------------------


def test_a_tenant_token_may_not_create_tenants(
    client: TestClient[Any], settings: Settings, harbour_token: str
) -> None:
    before = counts(settings)

    body = assert_json_error(create(client, harbour_token, NEW_TENANT), 403)

    assert "harbour-club" in body["detail"]
    assert counts(settings) == before


def test_a_tenant_token_gets_the_same_refusal_for_another_tenants_job_whether_it_exists_or_not(
    client: TestClient[Any], settings: Settings, landlord_token: str, harbour_token: str
) -> None:
    job = create(client, landlord_token, NEW_TENANT).json()["job"]
    follow(client, landlord_token, f"/api/v1/jobs/{job['id']}")

    existing = client.get(f"/api/v1/jobs/{job['id']}", headers=bearer(harbour_token))
    missing = client.get(f"/api/v1/jobs/{job['id'] + 1000}", headers=bearer(harbour_token))

    assert_json_error(existing, 403)
    assert_json_error(missing, 403)
    assert existing.json() == missing.json()
    assert "save-the-owls" not in existing.text
    assert_json_error(client.get(f"/api/v1/jobs/{job['id'] + 1000}", headers=bearer(landlord_token)), 404)


def test_without_a_token_it_is_401(client: TestClient[Any], settings: Settings, landlord_token: str) -> None:
    job = create(client, landlord_token, NEW_TENANT).json()["job"]
    before = counts(settings)

    for method, path in [
        ("GET", "/api/v1/templates"),
        ("GET", "/api/v1/modules"),
        ("POST", "/api/v1/tenants"),
        ("GET", f"/api/v1/jobs/{job['id']}"),
        ("GET", "/api/v1/jobs/999999"),
    ]:
        for headers in ({}, {"Authorization": "Bearer tnt_not-a-real-token"}):
            response = client.request(
                method, path, json=NEW_TENANT if method == "POST" else None, headers=headers
            )
            body = assert_json_error(response, 401)
            assert "Bearer" in body["detail"], path
    assert counts(settings) == before
    follow(client, landlord_token, f"/api/v1/jobs/{job['id']}")


# --- The OpenAPI document ---------------------------------------------------------------------


def test_the_openapi_document_lists_the_provisioning_paths(client: TestClient[Any]) -> None:
    document = client.get("/api/docs/openapi.json").json()
    paths = document["paths"]

    assert {"/api/v1/templates", "/api/v1/modules", "/api/v1/jobs/{job_id}"} <= set(paths)
    assert "get" in paths["/api/v1/templates"] and "get" in paths["/api/v1/modules"]
    assert "get" in paths["/api/v1/jobs/{job_id}"]
    create_tenant = paths["/api/v1/tenants"]["post"]
    assert "202" in create_tenant["responses"]
    assert create_tenant["requestBody"]["required"] is True
    schemas = document["components"]["schemas"]
    request_schema = next(schema for name, schema in schemas.items() if name.endswith("TenantIn"))
    assert set(request_schema["required"]) == {"slug", "name", "template"}
    assert set(request_schema["properties"]) == {
        "slug",
        "name",
        "template",
        "modules",
        "isolation",
        "plan",
        "admin_email",
        "admin_name",
    }


def test_left_out_modules_are_the_templates_defaults_and_an_empty_list_is_none(
    client: TestClient[Any], landlord_token: str
) -> None:
    defaults = create(
        client, landlord_token, {"slug": "tide-trust", "name": "Tide Trust", "template": "non_profit"}
    )
    bare = create(
        client,
        landlord_token,
        {"slug": "reef-trust", "name": "Reef Trust", "template": "non_profit", "modules": []},
    )

    assert defaults.status_code == bare.status_code == 202
    catalogue = load_catalogue(client.app.state.settings.layers_dir)
    expected = catalogue.resolve_modules("non_profit", catalogue.templates["non_profit"].default_modules)
    assert defaults.json()["tenant"]["modules"] == expected
    assert bare.json()["tenant"]["modules"] == []
    for response in (defaults, bare):
        assert follow(client, landlord_token, response.headers["location"])["status"] == "succeeded"
