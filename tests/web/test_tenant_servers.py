"""The dashboard's tenant servers: each PostgreSQL server tenants are placed on, with its tenants
and the storage their latest usage samples measured, and how new tenants are placed."""

from __future__ import annotations

import dataclasses
import re
from datetime import date

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from services.models import UsageSample
from services.settings import Settings
from services.tenancy.tenants import register_tenant
from tests.support import Credentials, fresh_postgres_database, requires_postgres, run_db, signed_in
from tests.web.portal import portal
from tests.web.test_provisioning_pages import text_of

pytestmark = requires_postgres


def servers_card(page: str) -> str:
    match = re.search(r'<article class="card" id="servers">(.*?)</article>', page, re.DOTALL)
    assert match, "the dashboard has no tenant servers card"
    return text_of(match.group(1))


@pytest.mark.parametrize("placement", ["fewest-tenants", "least-storage"])
def test_the_dashboard_lists_each_tenant_server_with_its_tenants_and_storage(
    settings: Settings, superadmin: Credentials, second_server: str, placement: str
) -> None:
    with fresh_postgres_database() as pg_a, fresh_postgres_database(on=second_server) as pg_b:
        two = dataclasses.replace(
            settings, tenant_servers=(("pg-a", pg_a), ("pg-b", pg_b)), placement=placement
        )

        async def place(session: AsyncSession) -> None:
            for slug, server, stored in (
                ("alpha", "pg-a", 3 * 2**20),
                ("beta", "pg-a", None),
                ("gamma", "pg-b", None),
            ):
                tenant = await register_tenant(
                    session, slug=slug, name=slug.title(), template="community_group", isolation="database"
                )
                tenant.store_server = server
                if stored is not None:
                    session.add(
                        UsageSample(
                            tenant_id=tenant.id, day=date(2026, 12, 1), storage_bytes=stored, rows=1, people=1
                        )
                    )
            await session.commit()

        run_db(two, place)
        with portal(two) as client:
            card = servers_card(signed_in(client, superadmin).get("/").text)

        second_port = pg_b.split(":")[-1].split("/")[0]
        assert re.search(r"pg-a 127\.0\.0\.1:5432 2 3\.0 MB", card), card
        assert re.search(rf"pg-b 127\.0\.0\.1:{second_port} 1 not measured yet", card), card
        placed = "least storage" if placement == "least-storage" else "fewest tenants"
        assert f"New tenants go to the one with the {placed}." in card
