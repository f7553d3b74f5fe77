"""A landlord admin moves a tenant to another plan from its page: refused, saying why, when the
tenant's modules do not fit the plan; recorded on the trail when it does."""

from __future__ import annotations

import html
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.models import AuditEntry, Tenant
from services.settings import Settings
from tests.support import Credentials, post_form, run_db
from tests.web.portal import add_token
from tests.web.tenant_world import provision

SLUG = "heron-club"
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def plan_of(settings: Settings) -> str:
    async def work(session: AsyncSession) -> str:
        tenant = await session.scalar(select(Tenant).where(Tenant.slug == SLUG))
        assert tenant is not None
        return tenant.plan_key

    return run_db(settings, work)


def plan_entries(settings: Settings) -> list[dict[str, Any]]:
    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        entries = await session.scalars(select(AuditEntry).where(AuditEntry.action == "tenant.plan"))
        return [entry.detail for entry in entries]

    return run_db(settings, work)


def test_a_plan_that_leaves_out_an_enabled_module_is_refused_naming_it(
    superadmin_client: TestClient[Any], settings: Settings
) -> None:
    provision(settings, SLUG, modules=["events", "finance"])
    page = superadmin_client.get(f"/tenants/{SLUG}")
    assert 'id="plan-choice"' in page.text and "Standard" in page.text

    refused = post_form(superadmin_client, f"/tenants/{SLUG}/plan", {"plan": "starter"})
    assert refused.status_code == 422
    assert (
        "The Starter plan does not include Finance. Heron Club has to disable modules first."
        in html.unescape(refused.text)
    )
    unknown = post_form(superadmin_client, f"/tenants/{SLUG}/plan", {"plan": "platinum"})
    assert unknown.status_code == 422 and "There is no plan" in html.unescape(unknown.text)
    assert plan_of(settings) == "standard" and plan_entries(settings) == []


def test_a_plan_the_tenant_fits_is_taken_and_recorded(
    superadmin_client: TestClient[Any], settings: Settings
) -> None:
    provision(settings, SLUG, modules=["events"])
    moved = post_form(superadmin_client, f"/tenants/{SLUG}/plan", {"plan": "starter"}, follow_redirects=False)
    assert moved.status_code == 303
    page = superadmin_client.get(f"/tenants/{SLUG}")
    assert "Starter" in page.text and "(up to 3 modules)" in page.text
    assert plan_of(settings) == "starter"
    assert plan_entries(settings) == [{"from": "Standard", "to": "Starter"}]


def test_a_new_tenant_is_put_on_the_plan_chosen_and_its_modules_must_fit_it(
    superadmin_client: TestClient[Any], settings: Settings
) -> None:
    form = superadmin_client.get("/tenants/new").text
    assert (
        'id="plan"' in form
        and "Starter (documents, events, membership_tiers, simple_ledger; up to 3)" in form
    )

    fields = {"slug": SLUG, "name": "Heron Club", "template": "community_group", "isolation": "database"}
    refused = post_form(
        superadmin_client, "/tenants", {**fields, "plan": "starter", "modules": ["events", "finance"]}
    )
    assert refused.status_code == 422
    assert (
        'id="modules-error"' in refused.text and "The Starter plan does not include Finance." in refused.text
    )
    assert tenant_count(settings) == 0, "nothing is created"

    made = post_form(
        superadmin_client,
        "/tenants",
        {**fields, "plan": "starter", "modules": ["events"]},
        follow_redirects=False,
    )
    assert made.status_code == 303, made.text
    assert plan_of(settings) == "starter"


def tenant_count(settings: Settings) -> int:
    async def work(session: AsyncSession) -> int:
        return len(list(await session.scalars(select(Tenant))))

    return run_db(settings, work)


def test_the_api_takes_a_plan_and_refuses_modules_that_do_not_fit_it(
    client: TestClient[Any], settings: Settings, superadmin: Credentials
) -> None:
    headers = {"Authorization": f"Bearer {add_token(settings, superadmin.email)}"}
    request = {"slug": SLUG, "name": "Heron Club", "template": "community_group", "modules": ["finance"]}
    refused = client.post("/api/v1/tenants", json={**request, "plan": "starter"}, headers=headers)
    assert refused.status_code == 422
    assert {"field": "modules", "message": "The Starter plan does not include Finance."} in refused.json()[
        "errors"
    ]
    unknown = client.post("/api/v1/tenants", json={**request, "plan": "gold"}, headers=headers)
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "plan"
    assert tenant_count(settings) == 0

    accepted = client.post("/api/v1/tenants", json={**request, "plan": "unlimited"}, headers=headers)
    assert accepted.status_code == 202, accepted.text
    assert plan_of(settings) == "unlimited"
