"""/api/v1/tenants/{slug}/backups: a landlord token backs a tenant up (202 and a job to follow) and
lists its backups, verified, with size, SHA-256 and manifest; a second request while one is under
way is told what it waits for, a third is refused; other tokens and bad input are refused."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.backups import request_backup
from services.backups.requests import BACKUP_STEP_NAMES
from services.db import Database
from services.models import AuditEntry, BackupFormat, Tenant, TenantRole
from services.settings import Settings
from services.tenant_locks import release_tenant_lock, try_tenant_lock
from tests.support import Credentials, run_db
from tests.web.portal import add_token, add_user
from tests.web.test_api import assert_json_error, bearer
from tests.web.test_api_provisioning import follow
from tests.workers.support import drop_tenant_databases

SHA256 = re.compile(r"^[0-9a-f]{64}$")
TENANT = {
    "slug": "harbour-club",
    "name": "Harbour Club",
    "template": "community_group",
    "modules": ["events"],
}


@pytest.fixture(autouse=True)
def no_stores_left_behind(settings: Settings) -> Iterator[None]:
    yield
    drop_tenant_databases(settings.database_url)


@pytest.fixture
def landlord_token(settings: Settings, superadmin: Credentials) -> str:
    return add_token(settings, superadmin.email)


@pytest.fixture
def harbour(client: TestClient[Any], landlord_token: str) -> str:
    """harbour-club, provisioned by the app's worker."""
    created = client.post("/api/v1/tenants", json=TENANT, headers=bearer(landlord_token))
    assert created.status_code == 202, created.text
    job = follow(client, landlord_token, created.headers["location"])
    assert job["status"] == "succeeded", job
    return "harbour-club"


def back_up(client: TestClient[Any], token: str, slug: str, body: Any) -> Any:
    return client.post(f"/api/v1/tenants/{slug}/backups", json=body, headers=bearer(token))


def test_a_landlord_token_backs_a_tenant_up_and_finds_it_verified_in_the_list(
    client: TestClient[Any], landlord_token: str, harbour: str, settings: Settings
) -> None:
    response = back_up(client, landlord_token, harbour, {"format": "native"})

    assert response.status_code == 202, response.text
    body = response.json()
    assert response.headers["location"] == f"/api/v1/jobs/{body['job']['id']}"
    assert body["backup"]["format"] == "native" and body["backup"]["status"] == "queued"
    assert body["backup"]["verification"] == "not_verified"
    assert [step["name"] for step in body["job"]["steps"]] == BACKUP_STEP_NAMES
    assert body["waits_for"] is None and "is queued" in body["message"]

    job = follow(client, landlord_token, response.headers["location"])
    assert (job["status"], job["error"]) == ("succeeded", None)

    listed = client.get(f"/api/v1/tenants/{harbour}/backups", headers=bearer(landlord_token))
    assert listed.status_code == 200, listed.text
    [backup] = listed.json()
    assert backup["id"] == body["backup"]["id"]
    assert (backup["status"], backup["verification"]) == ("succeeded", "verified")
    assert SHA256.match(backup["sha256"]) and backup["size_bytes"] > 0
    assert backup["manifest"]["tenant"]["slug"] == harbour
    assert backup["manifest"]["tables"]["roles"]["rows"] == 2, "the seeded roles are counted"

    entries = run_db(
        settings,
        lambda session: _all(session.scalars(select(AuditEntry).where(AuditEntry.action == "tenant.backup"))),
    )
    assert [(entry.target, entry.detail["backup"]) for entry in entries] == [(harbour, backup["id"])]


async def _all(rows: Any) -> list[Any]:
    return list(await rows)


def test_a_second_backup_is_told_what_it_waits_for_and_a_third_is_refused(
    client: TestClient[Any], landlord_token: str, harbour: str, settings: Settings
) -> None:
    async def running_backup(session: AsyncSession) -> int:
        """A backup at work on the store (recorded, holding the tenant's lock, never sent)."""
        tenant = (await session.scalars(select(Tenant).where(Tenant.slug == harbour))).one()
        requested = await request_backup(session, settings, tenant, BackupFormat.NATIVE)
        return requested.job.id

    holder = run_db(settings, running_backup)
    tenant_id = run_db(settings, lambda s: s.scalar(select(Tenant.id).where(Tenant.slug == harbour)))
    assert tenant_id is not None
    assert on_landlord(settings, lambda db: try_tenant_lock(db, tenant_id, holder, "backup")) is None

    second = back_up(client, landlord_token, harbour, {"format": "portable"})
    assert second.status_code == 202, second.text
    assert second.json()["waits_for"] == holder
    assert f"waits for backup job #{holder} to finish" in second.json()["message"]

    third = back_up(client, landlord_token, harbour, {"format": "portable"})
    body = assert_json_error(third, 409)
    assert f"#{holder}" in body["detail"] and f"#{second.json()['job']['id']}" in body["detail"]

    on_landlord(settings, lambda db: release_tenant_lock(db, tenant_id, holder))
    job = follow(client, landlord_token, second.headers["location"])
    assert (job["status"], job["error"]) == ("succeeded", None)


def on_landlord(settings: Settings, work: Any) -> Any:
    """Run `work(database)` against the landlord database (locks take their own sessions)."""

    async def go() -> Any:
        database = Database(settings.database_url)
        try:
            return await work(database)
        finally:
            await database.dispose()

    return asyncio.run(go())


def test_backups_need_a_landlord_token_and_a_format_the_tenant_can_have(
    client: TestClient[Any], landlord_token: str, harbour: str, settings: Settings
) -> None:
    add_user(settings, "pat@harbour.example", TenantRole.TENANT_ADMIN, tenant_slug=harbour)
    tenant_token = add_token(settings, "pat@harbour.example", tenant_slug=harbour)

    assert_json_error(client.post(f"/api/v1/tenants/{harbour}/backups", json={}), 401)
    refused = assert_json_error(back_up(client, tenant_token, harbour, {"format": "native"}), 403)
    assert "landlord token" in refused["detail"]
    assert_json_error(client.get(f"/api/v1/tenants/{harbour}/backups", headers=bearer(tenant_token)), 403)
    assert_json_error(back_up(client, landlord_token, "no-such-club", {"format": "native"}), 404)

    wrong = assert_json_error(back_up(client, landlord_token, harbour, {"format": "zip"}), 422)
    assert wrong["field"] == "format" and "native or portable" in wrong["detail"]
    listed = client.get(f"/api/v1/tenants/{harbour}/backups", headers=bearer(landlord_token))
    assert listed.json() == [], "nothing was recorded"
