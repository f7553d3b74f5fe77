"""The tenant portal: who gets in, in which scope, and what each scope shows."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import func, select, update

from services.models import AuditEntry, Domain, Tenant, TenantStatus
from services.settings import Settings
from tests.support import Credentials, csrf_token, run_db, signed_in
from tests.web.portal import add_token, assert_no_trace, portal
from tests.web.tenant_world import add_admin, add_member, add_rows, add_units, provision

pytestmark = pytest.mark.parametrize("isolation", ["database", "shared"])


def _root_unit(client: TestClient[Any], slug: str) -> str:
    """The id of the first unit the "Inside" select offers: the tenant's root."""
    form = client.get(f"/t/{slug}/units").text.split('name="parent_id">')[1]
    return form.split('value="')[1].split('"')[0]


def _security_events(settings: Settings) -> int:
    async def count(session: Any) -> int:
        statement = (
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "security.cross_tenant")
        )
        return await session.scalar(statement) or 0

    return run_db(settings, count)


def test_members_see_their_subtree_admins_the_whole_tenant_others_nothing(
    settings: Settings, superadmin: Credentials, isolation: str
) -> None:
    provision(settings, "garden-club", isolation=isolation)
    provision(settings, "river-club", isolation=isolation)
    units = add_units(settings, "garden-club", [("North", None), ("North-East", "North"), ("South", None)])
    add_rows(
        settings,
        "garden-club",
        "groups",
        [
            {"name": "Roses of the north", "unit_id": units["North"]},
            {"name": "Tulips of the north-east", "unit_id": units["North-East"]},
            {"name": "Cacti of the south", "unit_id": units["South"]},
        ],
    )
    river_rows = add_rows(settings, "river-club", "groups", [{"name": "Kayaks of the river"}])
    north = add_member(settings, "garden-club", "north@example.org", unit_ids=[units["North"]])
    admin = add_admin(settings, "garden-club", "admin@garden.example")
    river_admin = add_admin(settings, "river-club", "admin@river.example")

    with portal(settings) as client:
        page = signed_in(client, north).get("/t/garden-club/data/groups")
        assert page.status_code == 200, page.text
        assert "Roses of the north" in page.text and "Tulips of the north-east" in page.text
        assert "Cacti of the south" not in page.text and "Kayaks" not in page.text
        assert "South" not in signed_in(client, north).get("/t/garden-club/units").text

        page = signed_in(client, admin).get("/t/garden-club/data/groups")
        assert all(name in page.text for name in ("Roses", "Tulips", "Cacti"))
        assert "Kayaks" not in page.text

        before = _security_events(settings)
        refused = signed_in(client, river_admin).get("/t/garden-club/data/groups")
        assert refused.status_code == 404
        assert "Roses" not in refused.text
        assert_no_trace(refused.text)
        assert _security_events(settings) == before + 1

        # In its own store, river's id names one of garden's rows (or none); in the shared store it
        # names river's row, which is refused as not found and recorded.
        foreign = signed_in(client, admin).get(f"/t/garden-club/data/groups/{river_rows[0]}")
        assert "Kayaks" not in foreign.text
        if isolation == "shared":
            assert foreign.status_code == 404
            assert _security_events(settings) == before + 2


def test_an_admin_adds_and_renames_units_and_a_member_may_not(
    settings: Settings, superadmin: Credentials, isolation: str
) -> None:
    provision(settings, "garden-club", isolation=isolation)
    admin = add_admin(settings, "garden-club", "admin@garden.example")
    member = add_member(settings, "garden-club", "member@garden.example")
    with portal(settings) as client:
        signed_in(client, admin)
        root_id = _root_unit(client, "garden-club")
        added = client.post(
            "/t/garden-club/units",
            data={
                "name": "Allotments",
                "parent_id": root_id,
                "kind": "site",
                "_csrf_token": csrf_token(client),
            },
            follow_redirects=False,
        )
        assert added.status_code == 303, added.text
        assert "Allotments" in client.get("/t/garden-club/units").text
        blank = client.post(
            "/t/garden-club/units",
            data={"name": "  ", "parent_id": root_id, "_csrf_token": csrf_token(client)},
        )
        assert blank.status_code == 422 and "Give the unit a name." in blank.text

        signed_in(client, member)
        refused = client.post(
            "/t/garden-club/units",
            data={"name": "Sneaky", "parent_id": root_id, "_csrf_token": csrf_token(client)},
        )
        assert refused.status_code == 403
        assert "not assigned to any unit" in client.get("/t/garden-club/").text


def test_a_tenant_token_reads_its_own_tenant_through_the_api(
    settings: Settings, superadmin: Credentials, isolation: str
) -> None:
    provision(settings, "garden-club", isolation=isolation)
    provision(settings, "river-club", isolation=isolation)
    add_rows(settings, "garden-club", "groups", [{"name": "Roses"}])
    river = add_rows(settings, "river-club", "groups", [{"name": "Kayaks"}])
    add_admin(settings, "garden-club", "admin@garden.example")
    token = add_token(settings, "admin@garden.example", "garden-club")
    with portal(settings) as client:
        headers = {"Authorization": f"Bearer {token}"}
        listed = client.get("/api/v1/tenant/data/groups", headers=headers)
        assert listed.status_code == 200, listed.text
        assert [row["name"] for row in listed.json()["items"]] == ["Roses"]
        assert "tenant_id" not in listed.json()["items"][0]
        foreign = client.get(f"/api/v1/tenant/data/groups/{river[0]}", headers=headers)
        assert "Kayaks" not in foreign.text
        assert foreign.status_code == (404 if isolation == "shared" else 200), "its own row 1, or none"
        assert client.get("/api/v1/tenant/units", headers=headers).json()[0]["name"] == "Garden Club"


def test_a_tenant_is_reached_by_its_subdomain_and_its_own_domain(
    settings: Settings, superadmin: Credentials, isolation: str
) -> None:
    provision(settings, "garden-club", isolation=isolation)
    admin = add_admin(settings, "garden-club", "admin@garden.example")

    async def add_domain(session: Any) -> None:
        tenant = await session.scalar(select(Tenant).where(Tenant.slug == "garden-club"))
        session.add(Domain(tenant_id=tenant.id, host="gardens.example.org"))

    run_db(settings, add_domain)
    with portal(replace(settings, base_domain="tenantry.test")) as client:
        signed_in(client, admin)
        for host in ("garden-club.tenantry.test", "gardens.example.org"):
            page = client.get("/units", headers={"host": host})
            assert page.status_code == 200, (host, page.text)
            assert "Garden Club" in page.text
            assert 'action="/units"' in page.text, "links stay on the tenant's own host"
        assert client.get("/units", headers={"host": "nobody.tenantry.test"}).status_code == 404
        assert client.get("/login", headers={"host": "garden-club.tenantry.test"}).status_code == 200


def test_a_suspended_tenant_says_so_and_the_dashboard_counts_blocked_attempts(
    settings: Settings, superadmin: Credentials, isolation: str
) -> None:
    provision(settings, "garden-club", isolation=isolation)
    provision(settings, "river-club", isolation=isolation)
    member = add_member(settings, "garden-club", "member@garden.example")
    river_admin = add_admin(settings, "river-club", "admin@river.example")

    async def suspend(session: Any) -> None:
        await session.execute(
            update(Tenant).where(Tenant.slug == "garden-club").values(status=TenantStatus.SUSPENDED)
        )

    run_db(settings, suspend)
    with portal(settings) as client:
        page = signed_in(client, member).get("/t/garden-club/")
        assert page.status_code == 403 and "suspended" in page.text
        assert signed_in(client, river_admin).get("/t/garden-club/").status_code == 404
        assert signed_in(client, river_admin).get("/t/no-such-club/").status_code == 404
        dashboard = signed_in(client, superadmin).get("/")
        blocked = dashboard.text.split('id="blocked-attempts"')[1].split("</article>")[0]
        assert '<p class="figure">1</p>' in blocked and "garden-club" in blocked


def test_a_tenant_admin_sees_only_their_own_tenants_audit_entries(
    settings: Settings, superadmin: Credentials, isolation: str
) -> None:
    provision(settings, "garden-club", isolation=isolation)
    provision(settings, "river-club", isolation=isolation)
    garden = add_admin(settings, "garden-club", "admin@garden.example")
    river = add_admin(settings, "river-club", "admin@river.example")
    with portal(settings) as client:
        for credentials, slug, name in (
            (garden, "garden-club", "Greenhouse"),
            (river, "river-club", "Boathouse"),
        ):
            signed_in(client, credentials)
            client.post(
                f"/t/{slug}/units",
                data={"name": name, "parent_id": _root_unit(client, slug), "_csrf_token": csrf_token(client)},
                follow_redirects=False,
            )
        page = signed_in(client, garden).get("/t/garden-club/audit")
        assert page.status_code == 200
        assert "Greenhouse" in page.text and "unit.create" in page.text
        assert "Boathouse" not in page.text and "river" not in page.text
        member = add_member(settings, "garden-club", "member@garden.example")
        assert signed_in(client, member).get("/t/garden-club/audit").status_code == 403
