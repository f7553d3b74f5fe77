"""`tenantry create-user` with a tenant role makes the whole person: the membership that lets them
in, and their profile in the tenant's store, as an invitation from the portal does."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.models import Tenant
from services.models.tenant import Role, TenantUser
from services.people.people import list_people
from services.settings import Settings
from tests.services.running import run_tenantry, tenantry_env
from tests.support import Credentials
from tests.web.tenant_world import in_tenant, provision

SLUG = "garden-club"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_tenant_admin_made_on_the_command_line_has_a_profile_in_the_tenants_store(
    settings: Settings, superadmin: Credentials
) -> None:
    provision(settings, SLUG)
    made = run_tenantry(
        ["create-user", "--email", "Lead@Garden.example", "--role", "tenant_admin", "--tenant", SLUG],
        tenantry_env(settings),
    )
    assert made.returncode == 0, made.stderr

    async def work(landlord: AsyncSession, data: AsyncSession, tenant: Tenant) -> Any:
        profile = (
            await data.execute(
                select(TenantUser.email, TenantUser.display_name, Role.key, TenantUser.is_active).join(
                    Role, Role.id == TenantUser.role_id
                )
            )
        ).one()
        people = await list_people(landlord, data, tenant)
        return tuple(profile), [(person.email, person.role, person.active) for person in people]

    profile, people = in_tenant(settings, SLUG, work)
    assert profile == ("lead@garden.example", "lead@garden.example", "tenant_admin", True)
    assert people == [("lead@garden.example", "tenant_admin", True)]
