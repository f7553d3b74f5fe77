"""Storage and rows quotas. A tenant that keeps all the storage its plan allows can read, export
and delete but not add or change records, and can again once under it; a module at its plan's rows
quota refuses new rows there, whoever asks; each refusal is a sentence (the API's 409, the portal's
form with what was typed kept); from 80 % the tenant's admins and the landlord are warned."""

from __future__ import annotations

import base64
import math
import os
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.models import Plan, Tenant
from services.settings import Settings
from services.tenancy.stores import location_of
from services.usage import MEGABYTE, store_size
from tests.support import Credentials, csrf_token, post_form, run_db, signed_in
from tests.web.portal import add_token, assert_no_trace, portal
from tests.web.tenant_world import add_admin, add_member, add_rows, add_units, in_tenant, provision

SLUG = "garden-club"
DATA = "/api/v1/tenant/data"


def long_text() -> str:
    """A group's description big enough that a few of them fill a megabyte, and random, so that
    PostgreSQL cannot compress it away."""
    return base64.b64encode(os.urandom(192 * 1024)).decode()  # 256 KB


def small_plan(settings: Settings, **limits: Any) -> None:
    """The tenant on a plan of its own with `limits` (max_storage_mb, row_limits)."""

    async def work(session: AsyncSession) -> None:
        plan = await session.get(Plan, "small")
        if plan is None:
            session.add(
                Plan(key="small", name="Small", modules=None, max_modules=None, max_users=None, **limits)
            )
        else:
            for name, value in limits.items():
                setattr(plan, name, value)
        await session.flush()
        await session.execute(update(Tenant).where(Tenant.slug == SLUG).values(plan_key="small"))

    run_db(settings, work)


def megabytes_kept(settings: Settings) -> float:
    async def work(_landlord: Any, data: AsyncSession, tenant: Tenant) -> float:
        used = await store_size(data, location_of(settings, tenant))
        assert used is not None
        return used / MEGABYTE

    return in_tenant(settings, SLUG, work)


def tenant_status(settings: Settings) -> str | None:
    return run_db(settings, lambda session: session.scalar(select(Tenant.status).where(Tenant.slug == SLUG)))


def test_a_tenant_at_its_storage_quota_reads_exports_and_deletes_but_writes_only_once_under_it(
    settings: Settings, superadmin: Credentials
) -> None:
    provision(settings, SLUG)
    admin = add_admin(settings, SLUG, "admin@garden.example")
    headers = {"Authorization": f"Bearer {add_token(settings, admin.email, SLUG)}"}
    quota = math.floor(megabytes_kept(settings)) + 1
    small_plan(settings, max_storage_mb=quota)
    with portal(settings) as client:
        roses = client.post(f"{DATA}/groups", json={"name": "Roses"}, headers=headers)
        assert roses.status_code == 201, "under its quota, it writes"

        big = add_rows(
            settings, SLUG, "groups", [{"name": f"Heap {n}", "description": long_text()} for n in range(8)]
        )
        assert megabytes_kept(settings) >= quota

        refused = client.post(f"{DATA}/groups", json={"name": "Tulips"}, headers=headers)
        assert refused.status_code == 409
        detail = refused.json()["detail"]
        assert f"all the storage the Small plan allows ({quota} MB)" in detail
        assert "New records and changes are refused until it is under" in detail
        changed = client.patch(
            f"{DATA}/groups/{roses.json()['id']}", json={"meeting_schedule": "Tuesdays"}, headers=headers
        )
        assert changed.status_code == 409
        listed = client.get(f"{DATA}/groups", params={"per_page": 100}, headers=headers)
        assert listed.status_code == 200 and len(listed.json()["items"]) == 9

        signed_in(client, admin)
        form = post_form(client, f"/t/{SLUG}/data/groups", {"name": "Tulips", "description": "Yellow"})
        assert form.status_code == 409
        assert_no_trace(form.text)
        assert "all the storage the Small plan allows" in form.text
        assert 'value="Tulips"' in form.text, "what was typed is kept"
        settings_page = client.get(f"/t/{SLUG}/settings").text
        assert "Storage is full: Garden Club keeps all the" in settings_page
        assert client.get(f"/t/{SLUG}/data/groups").status_code == 200
        backup = client.post(
            f"/t/{SLUG}/backups",
            data={"format": "portable", "_csrf_token": csrf_token(client)},
            follow_redirects=False,
        )
        assert backup.status_code == 303, "a backup, the tenant's export, can still be asked for"

        for group_id in big:
            assert client.delete(f"{DATA}/groups/{group_id}", headers=headers).status_code == 204
        if settings.database_url.startswith("sqlite"):
            # A deleted row's pages are free at once in a SQLite store.
            assert megabytes_kept(settings) < quota
        else:
            # PostgreSQL keeps the space for new rows: the landlord gives the tenant a larger quota.
            small_plan(settings, max_storage_mb=quota + 100)
        again = client.post(f"{DATA}/groups", json={"name": "Tulips"}, headers=headers)
        assert again.status_code == 201, again.text


@pytest.mark.parametrize("isolation", ["database", "shared"])
def test_a_module_at_its_rows_quota_refuses_new_rows_there_whoever_asks_and_warns_from_80_percent(
    settings: Settings, superadmin: Credentials, isolation: str
) -> None:
    provision(settings, SLUG, modules=["events"], isolation=isolation)
    units = add_units(settings, SLUG, [("North", None), ("South", None)])
    admin = add_admin(settings, SLUG, "admin@garden.example")
    member = add_member(settings, SLUG, "north@garden.example", unit_ids=[units["North"]])
    small_plan(settings, row_limits={"each_module": 5})
    add_rows(settings, SLUG, "venues", [{"name": f"Hall {n}", "unit_id": units["South"]} for n in range(3)])
    admin_headers = {"Authorization": f"Bearer {add_token(settings, admin.email, SLUG)}"}
    member_headers = {"Authorization": f"Bearer {add_token(settings, member.email, SLUG)}"}
    with portal(settings) as client:
        fourth = client.post(f"{DATA}/venues", json={"name": "Barn", "seats": 40}, headers=admin_headers)
        assert fourth.status_code == 201, fourth.text
        signed_in(client, admin)
        warned = client.get(f"/t/{SLUG}/settings").text
        assert "Rows in the Events module: 4 of the 5 the Small plan allows (80 %)." in warned
        client.cookies.clear()

        # The member sees only North's venues (one), yet fills the whole tenant's quota.
        fifth = client.post(
            f"{DATA}/venues", json={"name": "Mill", "unit_id": units["North"]}, headers=member_headers
        )
        assert fifth.status_code == 201, fifth.text
        refused = client.post(
            f"{DATA}/venues", json={"name": "Shed", "unit_id": units["North"]}, headers=member_headers
        )
        assert refused.status_code == 409
        assert refused.json()["detail"] == (
            "The Small plan allows 5 rows in the Events module, and Garden Club has 5. "
            "Delete rows it no longer needs, or ask for a larger plan, before adding more."
        )
        groups = client.post(f"{DATA}/groups", json={"name": "Roses"}, headers=admin_headers)
        assert groups.status_code == 201, "the template's tables are not the module's"

        landlord = signed_in(client, superadmin).get(f"/tenants/{SLUG}").text
        usage = landlord.split('id="tenant-usage"')[1].split("</section>")[0]
        assert "Rows in the Events module: all 5 the Small plan allows are used" in usage
        assert all(f'id="usage-{what}"' in usage for what in ("people", "storage", "backups", "modules"))
        assert "5 rows in each module" in landlord
        client.cookies.clear()

        assert client.delete(f"{DATA}/venues/{fifth.json()['id']}", headers=member_headers).status_code == 204
        again = client.post(
            f"{DATA}/venues", json={"name": "Shed", "unit_id": units["North"]}, headers=member_headers
        )
        assert again.status_code == 201, again.text
    assert tenant_status(settings) == "active"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_rows_added_one_after_another_stop_exactly_at_the_quota(
    settings: Settings, superadmin: Credentials
) -> None:
    """Far below its quota a module's rows are not counted on every new row; near it they are, so
    the last row admitted is the quota's last."""
    provision(settings, SLUG, modules=["events"])
    admin = add_admin(settings, SLUG, "admin@garden.example")
    headers = {"Authorization": f"Bearer {add_token(settings, admin.email, SLUG)}"}
    small_plan(settings, row_limits={"each_module": 30})
    add_rows(settings, SLUG, "venues", [{"name": f"Hall {n}"} for n in range(20)])
    with portal(settings) as client:
        answers = [
            client.post(f"{DATA}/venues", json={"name": f"Barn {n}"}, headers=headers).status_code
            for n in range(12)
        ]
    assert answers == [201] * 10 + [409] * 2
