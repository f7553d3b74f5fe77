"""A restore keeps people in: a tenant restored to a backup taken before someone was invited, a role
changed and a member moved to another unit still lets every active member sign in, each seeing
exactly the units the people page shows them in; people and settings stay as they were just before
the restore, and the restore's step says so. A tenant with a store of its own and a shared-store
tenant, on SQLite and (with TENANTRY_TEST_POSTGRES_URL) on PostgreSQL."""

from __future__ import annotations

import re
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.backups import request_backup, request_restore
from services.backups.restorable import PEOPLE
from services.models import Backup, BackupFormat, Job, JobStatus, Tenant, User
from services.models.tenant import Setting
from services.people.people import change_role, set_units
from services.people.units import add_unit
from services.settings import Settings
from services.tenancy.access import TENANT_ADMIN
from tests.support import Credentials, signed_in
from tests.web.portal import add_token, portal
from tests.web.tenant_world import (
    add_admin,
    add_member,
    add_rows,
    add_units,
    in_tenant,
    provision,
    run_tenant_job,
)

SLUG = "garden-club"


async def _account(landlord: AsyncSession, email: str) -> int:
    account = await landlord.scalar(select(User.id).where(User.email == email))
    assert account is not None
    return account


def change_after_the_backup(settings: Settings, units: dict[str, int]) -> dict[str, Credentials]:
    """An invitation, a role change, a unit move, a unit the backup lacks and a setting."""

    async def add_quay(_landlord: AsyncSession, data: AsyncSession, _tenant: Tenant) -> int:
        return (await add_unit(data, parent_id=units["South"], name="Quay")).id

    quay = in_tenant(settings, SLUG, add_quay)
    rose = add_member(settings, SLUG, "rose@garden.example", unit_ids=[units["South"], quay])

    async def work(landlord: AsyncSession, data: AsyncSession, tenant: Tenant) -> None:
        promoted = await _account(landlord, "mo@garden.example")
        await change_role(landlord, data, tenant, promoted, TENANT_ADMIN)
        moved = await _account(landlord, "una@garden.example")
        await set_units(landlord, data, tenant, moved, [units["South"]])
        timezone = await data.scalar(select(Setting).where(Setting.key == "timezone"))
        assert timezone is not None
        timezone.value = "Europe/Paris"

    in_tenant(settings, SLUG, work)
    return {"rose": rose}


def units_shown(client: TestClient[Any], token: str) -> dict[str, tuple[str, set[str]]]:
    """Every active person's role and unit names, as the people API shows them to an admin."""
    people = client.get("/api/v1/tenant/people", headers={"Authorization": f"Bearer {token}"})
    assert people.status_code == 200, people.text
    return {
        person["email"]: (person["role"], {unit["name"] for unit in person["units"]})
        for person in people.json()
        if person["active"]
    }


#: Which group rows a member of each unit sees: their unit's and everything below it.
GROUPS_SEEN = {
    "North": {"North walkers", "Harbour rowers"},
    "Harbour": {"Harbour rowers"},
    "South": {"South singers"},
}


@pytest.mark.parametrize("isolation", ["database", "shared"])
def test_a_restore_across_an_invitation_a_role_change_and_a_move_keeps_every_member_in_their_units(
    settings: Settings, superadmin: Credentials, isolation: str
) -> None:
    provision(settings, SLUG, isolation=isolation)
    units = add_units(settings, SLUG, [("North", None), ("Harbour", "North"), ("South", None)])
    add_rows(
        settings,
        SLUG,
        "groups",
        [
            {"name": "North walkers", "unit_id": units["North"]},
            {"name": "Harbour rowers", "unit_id": units["Harbour"]},
            {"name": "South singers", "unit_id": units["South"]},
        ],
    )
    people = {
        "ada": add_admin(settings, SLUG, "ada@garden.example"),
        "mo": add_member(settings, SLUG, "mo@garden.example", unit_ids=[units["North"]]),
        "una": add_member(settings, SLUG, "una@garden.example", unit_ids=[units["Harbour"]]),
    }

    async def back_up(session: AsyncSession, tenant: Tenant) -> Job:
        return (await request_backup(session, settings, tenant, BackupFormat.PORTABLE)).job

    backed_up = run_tenant_job(settings, SLUG, back_up)
    assert backed_up.status == JobStatus.SUCCEEDED, backed_up.error
    people |= change_after_the_backup(settings, units)

    async def restore(session: AsyncSession, tenant: Tenant) -> Job:
        backup = await session.scalar(select(Backup).where(Backup.job_id == backed_up.id))
        assert backup is not None
        return (await request_restore(session, settings, tenant, backup)).job

    restored = run_tenant_job(settings, SLUG, restore)

    assert restored.status == JobStatus.SUCCEEDED, restored.error
    with portal(settings) as client:
        shown = units_shown(client, add_token(settings, "ada@garden.example", SLUG))
        assert shown == {
            "ada@garden.example": ("tenant_admin", set()),
            "mo@garden.example": ("tenant_admin", {"North"}),
            "una@garden.example": ("tenant_member", {"South"}),
            "rose@garden.example": ("tenant_member", {"South"}),
        }, "as they were just before the restore, but for Quay, which the backup does not have"
        for name, person in people.items():
            home = signed_in(client, person).get(f"/t/{SLUG}/data/groups")
            assert home.status_code == 200, (name, home.text)
            seen = set(re.findall(r"(North walkers|Harbour rowers|South singers)", home.text))
            role, unit_names = shown[person.email]
            expected = set().union(*GROUPS_SEEN.values()) if role == TENANT_ADMIN else set()
            for unit in unit_names:
                expected |= GROUPS_SEEN[unit]
            assert seen == expected, name
        settings_page = signed_in(client, people["ada"]).get(f"/t/{SLUG}/settings")
        assert "Europe/Paris" in settings_page.text
    said = " ".join(step.detail or "" for step in restored.steps if step.name in (PEOPLE, "swap"))
    assert "4 people who can sign in and 0 deactivated kept as they are now" in said, said
    assert "1 person the backup does not have put back" in said
    assert "1 person lost units the backup does not have" in said
    assert "settings kept as they are now (timezone differed in the backup)" in said
