"""Restoring from the API and the landlord portal: a landlord token restores a tenant (202, a job to
follow) and a deleted event is back, with the safety backup listed; while the restore is held
part-way the tenant's portal shows a maintenance page and its API answers 503; a backup is copied
into a new tenant; the portal asks for confirmation on a page naming what is replaced; a damaged
archive is refused (409) and nothing changes; only landlord staff and landlord tokens restore."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import select

from services.backups.copies import COPY_STEPS
from services.models import AuditEntry, TenantRole
from services.settings import Settings
from services.tenancy.stores import location_of
from tests.services.backups.support import add, execute
from tests.services.provisioning.installation import store_is_gone
from tests.services.running import wait_for
from tests.support import Credentials, csrf_token, run_db, sign_in
from tests.web.portal import add_token, add_user, assert_no_trace
from tests.web.test_api import assert_json_error, bearer
from tests.web.test_api_provisioning import follow
from tests.web.test_backups_page import backup_rows
from tests.web.test_provisioning_pages import text_of
from tests.workers.gate import reached
from tests.workers.restore_gate import hold_restore_at
from tests.workers.support import drop_tenant_databases, tenant

SLUG = "harbour-club"
TENANT = {"slug": SLUG, "name": "Harbour Club", "template": "community_group", "modules": ["events"]}


@pytest.fixture(autouse=True)
def no_stores_left_behind(settings: Settings) -> Iterator[None]:
    yield
    drop_tenant_databases(settings.database_url)


@pytest.fixture
def landlord_token(settings: Settings, superadmin: Credentials) -> str:
    return add_token(settings, superadmin.email)


@pytest.fixture
def harbour(client: TestClient[Any], landlord_token: str, settings: Settings) -> str:
    """harbour-club with three regattas, provisioned by the app's worker."""
    created = client.post("/api/v1/tenants", json=TENANT, headers=bearer(landlord_token))
    assert created.status_code == 202, created.text
    assert follow(client, landlord_token, created.headers["location"])["status"] == "succeeded"
    found = tenant(settings, SLUG)
    for number in (1, 2, 3):
        asyncio.run(
            add(
                location_of(settings, found),
                found,
                "events",
                title=f"Regatta {number}",
                starts_at=datetime(2026, number, 1, 18, tzinfo=UTC),
                status="published",
                is_public=True,
            )
        )
    return SLUG


def backed_up(client: TestClient[Any], token: str, format: str = "portable") -> dict[str, Any]:
    """A finished, verified backup of harbour-club."""
    response = client.post(f"/api/v1/tenants/{SLUG}/backups", json={"format": format}, headers=bearer(token))
    assert response.status_code == 202, response.text
    assert follow(client, token, response.headers["location"])["status"] == "succeeded"
    [backup] = [b for b in listed_backups(client, token) if b["id"] == response.json()["backup"]["id"]]
    assert backup["verification"] == "verified", backup
    return backup


def listed_backups(client: TestClient[Any], token: str, slug: str = SLUG) -> list[dict[str, Any]]:
    response = client.get(f"/api/v1/tenants/{slug}/backups", headers=bearer(token))
    assert response.status_code == 200, response.text
    backups: list[dict[str, Any]] = response.json()
    return backups


def delete_regatta(settings: Settings, title: str) -> None:
    asyncio.run(
        execute(location_of(settings, tenant(settings, SLUG)), f"DELETE FROM events WHERE title = '{title}'")
    )


def regattas(client: TestClient[Any], tenant_token: str) -> list[str]:
    response = client.get("/api/v1/tenant/data/events", headers=bearer(tenant_token))
    assert response.status_code == 200, response.text
    return sorted(row["title"] for row in response.json()["items"])


def audit(settings: Settings, action: str) -> list[AuditEntry]:
    async def work(session: Any) -> list[AuditEntry]:
        return list(await session.scalars(select(AuditEntry).where(AuditEntry.action == action)))

    return run_db(settings, work)


@pytest.fixture
def tenant_admin(settings: Settings, harbour: str) -> tuple[Credentials, str]:
    pat = add_user(settings, "pat@harbour.example", TenantRole.TENANT_ADMIN, tenant_slug=harbour)
    return pat, add_token(settings, pat.email, tenant_slug=harbour)


def test_a_landlord_token_restores_a_tenant_and_a_deleted_event_is_back(
    client: TestClient[Any],
    landlord_token: str,
    harbour: str,
    tenant_admin: tuple[Credentials, str],
    settings: Settings,
) -> None:
    _, tenant_token = tenant_admin
    backup = backed_up(client, landlord_token)
    delete_regatta(settings, "Regatta 2")
    assert regattas(client, tenant_token) == ["Regatta 1", "Regatta 3"]
    old_store = location_of(settings, tenant(settings, SLUG))

    response = client.post(
        f"/api/v1/tenants/{SLUG}/backups/{backup['id']}/restore", headers=bearer(landlord_token)
    )

    assert response.status_code == 202, response.text
    body = response.json()
    assert response.headers["location"] == f"/api/v1/jobs/{body['job']['id']}"
    assert body["job"]["kind"] == "restore" and body["tenant"]["slug"] == SLUG
    assert [step["name"] for step in body["job"]["steps"]][:3] == ["lock", "check archive", "maintenance on"]
    assert "safety backup" in body["message"] and body["waits_for"] is None
    job = follow(client, landlord_token, response.headers["location"])
    assert (job["status"], job["error"]) == ("succeeded", None)

    assert regattas(client, tenant_token) == ["Regatta 1", "Regatta 2", "Regatta 3"]
    assert tenant(settings, SLUG).status == "active"
    assert asyncio.run(store_is_gone(old_store))
    newest, restored_from = listed_backups(client, landlord_token)[:2]
    assert restored_from["id"] == backup["id"]
    assert (newest["job_id"], newest["status"], newest["verification"]) == (
        job["id"],
        "succeeded",
        "verified",
    )
    assert newest["manifest"]["tables"]["events"]["rows"] == 2, "the safety backup holds what was replaced"
    [entry] = audit(settings, "tenant.restore")
    assert (entry.target, entry.detail["backup"], entry.detail["job"]) == (SLUG, backup["id"], job["id"])


def test_while_a_restore_is_under_way_the_portal_shows_maintenance_and_the_api_answers_503(
    client: TestClient[Any],
    landlord_token: str,
    harbour: str,
    tenant_admin: tuple[Credentials, str],
    settings: Settings,
    tmp_path: Path,
) -> None:
    pat, tenant_token = tenant_admin
    backup = backed_up(client, landlord_token)
    delete_regatta(settings, "Regatta 3")
    gate = tmp_path / "gate"
    gate.touch()
    remove_gate = hold_restore_at("restore", gate)
    try:
        response = client.post(
            f"/api/v1/tenants/{SLUG}/backups/{backup['id']}/restore", json={}, headers=bearer(landlord_token)
        )
        assert response.status_code == 202, response.text
        wait_for(reached(gate).exists, 60, what="the restore to reach its gate")

        api = assert_json_error(client.get("/api/v1/tenant/units", headers=bearer(tenant_token)), 503)
        assert "under maintenance: its store is being restored" in api["detail"]
        assert client.get("/api/v1/tenant/units", headers=bearer(tenant_token)).headers["retry-after"] == "30"
        sign_in(client, pat)
        page = client.get(f"/t/{SLUG}/")
        assert page.status_code == 503
        assert "Harbour Club is under maintenance: its store is being restored" in text_of(page.text)
        assert_no_trace(page.text)
        assert tenant(settings, SLUG).status == "maintenance"
        again = client.post(
            f"/api/v1/tenants/{SLUG}/backups", json={"format": "portable"}, headers=bearer(landlord_token)
        )
        assert_json_error(again, 409)
    finally:
        gate.unlink()
        remove_gate()

    job = follow(client, landlord_token, response.headers["location"])
    assert (job["status"], job["error"]) == ("succeeded", None)
    assert client.get(f"/t/{SLUG}/").status_code == 200
    assert regattas(client, tenant_token) == ["Regatta 1", "Regatta 2", "Regatta 3"]


def test_a_backup_is_copied_into_a_new_tenant_through_the_api(
    client: TestClient[Any], landlord_token: str, harbour: str, settings: Settings
) -> None:
    backup = backed_up(client, landlord_token)
    into = {"slug": "harbour-copy", "name": "Harbour copy"}

    response = client.post(
        f"/api/v1/tenants/{SLUG}/backups/{backup['id']}/restore",
        json={"into": into},
        headers=bearer(landlord_token),
    )

    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["job"]["kind"], body["tenant"]["slug"], body["tenant"]["status"]) == (
        "restore_copy",
        "harbour-copy",
        "provisioning",
    )
    job = follow(client, landlord_token, response.headers["location"])
    assert (job["status"], job["error"]) == ("succeeded", None)
    copied = tenant(settings, "harbour-copy")
    assert (copied.status, copied.template, copied.modules) == ("active", "community_group", ["events"])
    add_user(settings, "cy@copy.example", TenantRole.TENANT_ADMIN, tenant_slug="harbour-copy")
    copy_token = add_token(settings, "cy@copy.example", tenant_slug="harbour-copy")
    assert regattas(client, copy_token) == ["Regatta 1", "Regatta 2", "Regatta 3"]
    [entry] = audit(settings, "tenant.restore_copy")
    assert (entry.target, entry.detail["from"], entry.detail["backup"]) == (
        "harbour-copy",
        SLUG,
        backup["id"],
    )

    taken = client.post(
        f"/api/v1/tenants/{SLUG}/backups/{backup['id']}/restore",
        json={"into": {"slug": "harbour-copy", "name": ""}},
        headers=bearer(landlord_token),
    )
    refused = assert_json_error(taken, 422)
    assert {error["field"] for error in refused["errors"]} == {"slug", "name"}


def test_a_damaged_archive_is_refused_with_409_and_other_callers_are_refused(
    client: TestClient[Any],
    landlord_token: str,
    harbour: str,
    tenant_admin: tuple[Credentials, str],
    settings: Settings,
) -> None:
    _, tenant_token = tenant_admin
    backup = backed_up(client, landlord_token)
    path = settings.data_dir / "backups" / backup["manifest"]["tenant"]["slug"]
    [archive] = path.glob(f"{backup['id']:06d}-*")
    archive.write_bytes(archive.read_bytes()[:100])
    restore = f"/api/v1/tenants/{SLUG}/backups/{backup['id']}/restore"

    refused = assert_json_error(client.post(restore, headers=bearer(landlord_token)), 409)
    assert "is truncated" in refused["detail"] and "nothing was changed" in refused["detail"]
    assert tenant(settings, SLUG).status == "active"
    assert audit(settings, "tenant.restore") == []

    assert_json_error(client.post(restore), 401)
    assert_json_error(client.post(restore, headers=bearer(tenant_token)), 403)
    assert_json_error(
        client.post(f"/api/v1/tenants/{SLUG}/backups/999/restore", headers=bearer(landlord_token)), 404
    )


# The landlord portal -------------------------------------------------------------------------------


def test_the_portal_restores_after_a_confirmation_that_names_what_is_replaced(
    superadmin_client: TestClient[Any], landlord_token: str, harbour: str, settings: Settings
) -> None:
    client = superadmin_client
    backup = backed_up(client, landlord_token, "native")
    found = tenant(settings, SLUG)
    [row] = backup_rows(client.get(f"/tenants/{SLUG}").text)
    assert "Restore…" in row

    page = client.get(f"/tenants/{SLUG}/backups/{backup['id']}/restore")

    assert page.status_code == 200, page.text
    said = text_of(page.text)
    assert f"Tenant Harbour Club ( {SLUG} ), active" in said
    assert f"Current store {found.store_name}" in said
    assert re.search(r"Taken \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", said)
    assert f"Rows {backup['manifest']['totals']['rows']:,} in" in said
    assert "safety backup (native)" in said and "maintenance page" in said
    assert 'name="_csrf_token"' in page.text

    path = f"/tenants/{SLUG}/backups/{backup['id']}/restore"
    unconfirmed = client.post(path, data={"confirm": "nope", "_csrf_token": csrf_token(client)})
    assert unconfirmed.status_code == 422
    assert f"Type {SLUG} to confirm" in text_of(unconfirmed.text)
    assert client.post(path, data={"confirm": SLUG}, follow_redirects=False).status_code == 403, "CSRF"
    assert audit(settings, "tenant.restore") == []

    delete_regatta(settings, "Regatta 1")
    confirmed = client.post(
        path, data={"confirm": SLUG, "_csrf_token": csrf_token(client)}, follow_redirects=False
    )

    assert confirmed.status_code == 303
    assert confirmed.headers["location"] == f"/tenants/{SLUG}"
    [entry] = audit(settings, "tenant.restore")
    wait_for(
        lambda: (
            tenant(settings, SLUG).store_name != found.store_name
            and tenant(settings, SLUG).status == "active"
        ),
        60,
        what="the restore",
    )
    rows = backup_rows(client.get(f"/tenants/{SLUG}").text)
    assert len(rows) == 2 and f"safety backup before restore #{entry.detail['job']}" in rows[0]


def test_the_portal_copies_a_backup_into_a_new_tenant(
    superadmin_client: TestClient[Any], landlord_token: str, harbour: str, settings: Settings, tmp_path: Path
) -> None:
    client = superadmin_client
    backup = backed_up(client, landlord_token)
    path = f"/tenants/{SLUG}/backups/{backup['id']}/copy"

    bad = client.post(path, data={"slug": "Bad Slug", "name": "", "_csrf_token": csrf_token(client)})
    assert bad.status_code == 422
    assert 'id="slug-error"' in bad.text and 'id="name-error"' in bad.text

    gate = tmp_path / "gate"
    gate.touch()
    remove_gate = hold_restore_at("restore", gate, COPY_STEPS)
    try:
        created = client.post(
            path,
            data={
                "slug": "harbour-copy",
                "name": "Harbour copy",
                "isolation": "database",
                "_csrf_token": csrf_token(client),
            },
            follow_redirects=False,
        )
        assert created.status_code == 303
        assert created.headers["location"] == "/tenants/harbour-copy"
        wait_for(reached(gate).exists, 60, what="the copy to reach its gate")
        page = client.get("/tenants/harbour-copy").text
        assert "Restore copy job" in text_of(page) and "provisioning" in text_of(page)
        assert "Retry provisioning" not in page, "a copy under way is not offered a retry"
    finally:
        gate.unlink()
        remove_gate()

    wait_for(lambda: tenant(settings, "harbour-copy").status == "active", 60, what="the copy")
    page = client.get("/tenants/harbour-copy").text
    assert "Restore copy job" in text_of(page)
