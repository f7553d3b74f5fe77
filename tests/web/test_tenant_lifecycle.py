"""A tenant suspended and resumed, and deleted: closed at once, backed up and verified first, its
store dropped only after the grace period, during which the deletion can be undone; from the
landlord's tenant page and through the API, each step on the audit trail."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.db import Database
from services.lifecycle.deletion import request_due_drops
from services.models import AuditEntry, Backup, Job, JobStatus, Membership, TenantStatus
from services.settings import Settings
from services.tenancy.stores import location_of, store_exists
from tests.support import Credentials, post_form, run_db, signed_in
from tests.web.portal import add_token, add_user, assert_no_trace, portal
from tests.web.tenant_world import (
    add_member,
    add_rows,
    add_units,
    no_stores_left_behind,  # noqa: F401  (autouse fixture)
    provision,
    run_as_worker,
)
from tests.web.test_provisioning_pages import latest_job, text_of
from tests.workers.support import tenant, wait_until_finished

SLUG = "otter-club"
PAGE = f"/tenants/{SLUG}"


@pytest.fixture
def member(settings: Settings) -> Credentials:
    provision(settings, SLUG)
    units = add_units(settings, SLUG, [("Riverbank", None)])
    add_rows(settings, SLUG, "groups", [{"name": "Dawn Watchers", "unit_id": units["Riverbank"]}])
    return add_member(settings, SLUG, "member@otter.example", unit_ids=[units["Riverbank"]])


def trail(settings: Settings, prefix: str) -> list[tuple[str, dict[str, Any] | None]]:
    async def work(session: AsyncSession) -> list[tuple[str, dict[str, Any] | None]]:
        entries = await session.scalars(
            select(AuditEntry).where(AuditEntry.action.startswith(prefix)).order_by(AuditEntry.seq)
        )
        return [(entry.action, entry.detail) for entry in entries]

    return run_db(settings, work)


def store_is_there(settings: Settings) -> bool:
    return asyncio.run(store_exists(location_of(settings, tenant(settings, SLUG))))


def drop_when_due(settings: Settings, now: datetime) -> list[Job]:
    """What the workers' sweep does at `now`: a drop job for each tenant whose grace is over, run."""

    async def go() -> list[Job]:
        landlord = Database(settings.database_url)
        try:
            return [
                await run_as_worker(landlord, settings, job)
                for job in await request_due_drops(landlord, now=now)
            ]
        finally:
            await landlord.dispose()

    return asyncio.run(go())


def test_a_suspended_tenant_tells_its_people_why_and_is_resumed(
    settings: Settings, superadmin: Credentials, member: Credentials
) -> None:
    token = {"Authorization": f"Bearer {add_token(settings, member.email, SLUG)}"}
    with portal(settings) as staff, portal(settings) as person:
        signed_in(staff, superadmin)
        signed_in(person, member)
        assert person.get(f"/t/{SLUG}/").status_code == 200

        no_reason = post_form(staff, f"{PAGE}/suspend", {"reason": "  "})
        assert no_reason.status_code == 422 and "Say why Otter Club is suspended" in text_of(no_reason.text)
        assert tenant(settings, SLUG).status == TenantStatus.ACTIVE

        suspended = post_form(
            staff, f"{PAGE}/suspend", {"reason": "Unpaid invoice 2026-11"}, follow_redirects=False
        )
        assert suspended.status_code == 303
        page = staff.get(PAGE).text
        assert (
            'id="suspended-because"' in page
            and "Unpaid invoice 2026-11" in page
            and 'id="resume-form"' in page
        )

        closed = person.get(f"/t/{SLUG}/")
        assert closed.status_code == 403
        assert "suspended by the platform: Unpaid invoice 2026-11." in text_of(closed.text)
        assert_no_trace(closed.text)
        api = person.get("/api/v1/tenant/data/groups", headers=token)
        assert api.status_code == 403 and "Unpaid invoice 2026-11" in api.json()["detail"]
        assert post_form(staff, f"/tenants/{SLUG}/backups", {"format": "portable"}).status_code in (409, 422)

        assert post_form(staff, f"{PAGE}/resume", {}, follow_redirects=False).status_code == 303
        assert person.get(f"/t/{SLUG}/").status_code == 200
        assert person.get("/api/v1/tenant/data/groups", headers=token).status_code == 200
    assert trail(settings, "tenant.suspend") == [("tenant.suspend", {"reason": "Unpaid invoice 2026-11"})]
    assert [action for action, _ in trail(settings, "tenant.resume")] == ["tenant.resume"]


def test_a_deleted_tenant_is_closed_at_once_backed_up_and_can_be_undone_until_its_store_is_dropped(
    settings: Settings, superadmin: Credentials, member: Credentials
) -> None:
    token = add_token(settings, member.email, SLUG)
    with portal(settings) as staff, portal(settings) as person:
        signed_in(staff, superadmin)
        signed_in(person, member)
        page = staff.get(PAGE).text
        assert 'id="delete-form"' in page and f"Type <code>{SLUG}</code> to confirm" in page

        mistyped = post_form(staff, f"{PAGE}/delete", {"confirm": "otter"})
        assert mistyped.status_code == 422 and f"Type {SLUG} to confirm" in text_of(mistyped.text)
        assert 'value="otter"' in mistyped.text, "what was typed is kept"
        assert tenant(settings, SLUG).status == TenantStatus.ACTIVE

        asked = post_form(staff, f"{PAGE}/delete", {"confirm": SLUG}, follow_redirects=False)
        assert asked.status_code == 303
        assert tenant(settings, SLUG).status == TenantStatus.ARCHIVED, "closed at once"
        assert person.get(f"/t/{SLUG}/").status_code == 403
        job = wait_until_finished(settings, latest_job(settings, SLUG).id, timeout=60)
        assert (job.kind, job.status) == ("delete_tenant", JobStatus.SUCCEEDED), job.error
        backup = run_db(
            settings, lambda session: session.get_one(Backup, int(job.payload["safety_backup_id"]))
        )
        assert (backup.status, backup.verification) == (JobStatus.SUCCEEDED, "verified")
        closed = tenant(settings, SLUG)
        assert closed.delete_after is not None
        assert timedelta(days=6.9) < closed.delete_after - job.finished_at < timedelta(days=7.1)  # type: ignore[operator]
        page = staff.get(PAGE).text
        assert f"backup #{backup.id} holds its data" in page and 'id="undelete-form"' in page

        # Nothing is dropped before its time; undone, everything is as it was.
        assert drop_when_due(settings, closed.delete_after - timedelta(minutes=1)) == []
        assert post_form(staff, f"{PAGE}/undelete", {}, follow_redirects=False).status_code == 303
        assert (
            tenant(settings, SLUG).status == TenantStatus.ACTIVE
            and tenant(settings, SLUG).delete_after is None
        )
        assert "Dawn Watchers" in person.get(f"/t/{SLUG}/data/groups").text

        # Deleted again, and the grace period over: the store goes, and the people with it.
        assert (
            post_form(staff, f"{PAGE}/delete", {"confirm": SLUG}, follow_redirects=False).status_code == 303
        )
        second = wait_until_finished(settings, latest_job(settings, SLUG).id, timeout=60)
        assert second.status == JobStatus.SUCCEEDED, second.error
        store = location_of(settings, tenant(settings, SLUG))
        due = tenant(settings, SLUG).delete_after
        assert due is not None
        dropped = drop_when_due(settings, due + timedelta(seconds=1))
        assert [(done.kind, done.status) for done in dropped] == [("drop_store", JobStatus.SUCCEEDED)], (
            dropped
        )
        assert not asyncio.run(store_exists(store))
        assert tenant(settings, SLUG).status == TenantStatus.DELETED
        assert person.get(f"/t/{SLUG}/").status_code == 404
        assert (
            person.get("/api/v1/tenant/data/groups", headers={"Authorization": f"Bearer {token}"}).status_code
            == 401
        )
        assert run_db(settings, lambda s: s.scalar(select(func.count()).select_from(Membership))) == 0
        page = staff.get(PAGE).text
        kept = int(second.payload["safety_backup_id"])
        assert 'id="deleted"' in page and f"backup #{kept} holds its data" in page
        assert f'data-backup="{kept}"' in page, "its backups stay listed, to restore into a new tenant"
        assert post_form(staff, f"{PAGE}/undelete", {}).status_code == 422
    actions = [action for action, _ in trail(settings, "tenant.")]
    assert [a for a in actions if a in {"tenant.delete", "tenant.undelete", "tenant.drop"}] == [
        "tenant.delete",
        "tenant.undelete",
        "tenant.delete",
        "tenant.drop",
    ]


def test_a_deletion_whose_backup_fails_deletes_nothing(
    settings: Settings, superadmin: Credentials, member: Credentials
) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / "backups").write_text("not a directory: no backup can be written")
    with portal(settings) as staff:
        signed_in(staff, superadmin)
        assert (
            post_form(staff, f"{PAGE}/delete", {"confirm": SLUG}, follow_redirects=False).status_code == 303
        )
        job = wait_until_finished(settings, latest_job(settings, SLUG).id, timeout=60)
    assert job.status == JobStatus.FAILED
    reopened = tenant(settings, SLUG)
    assert (reopened.status, reopened.delete_after) == (TenantStatus.ACTIVE, None), "open again, as it was"
    assert store_is_there(settings)
    assert drop_when_due(settings, datetime.now().astimezone() + timedelta(days=30)) == []


def test_the_api_suspends_resumes_deletes_and_undeletes(
    client: TestClient[Any], settings: Settings, member: Credentials
) -> None:
    add_user(settings, "ops@landlord.example", "landlord_admin")
    landlord = {"Authorization": f"Bearer {add_token(settings, 'ops@landlord.example')}"}
    api = f"/api/v1/tenants/{SLUG}"

    suspended = client.post(f"{api}/suspend", json={"reason": "Moving offices"}, headers=landlord)
    assert suspended.status_code == 201 or suspended.status_code == 200, suspended.text
    assert (suspended.json()["status"], suspended.json()["status_reason"]) == ("suspended", "Moving offices")
    assert client.post(f"{api}/suspend", json={"reason": "again"}, headers=landlord).status_code == 409
    assert client.post(f"{api}/resume", headers=landlord).json()["status"] == "active"

    unconfirmed = client.delete(api, headers=landlord)
    assert unconfirmed.status_code == 422 and "Type otter-club to confirm" in unconfirmed.json()["detail"]
    deleting = client.delete(api, params={"confirm": SLUG}, headers=landlord)
    assert deleting.status_code == 202, deleting.text
    assert deleting.json()["tenant"]["status"] == "archived"
    job = wait_until_finished(settings, deleting.json()["job"]["id"], timeout=60)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert client.get(api, headers=landlord).json()["delete_after"] is not None
    undone = client.post(f"{api}/undelete", headers=landlord)
    assert undone.json()["status"] == "active" and undone.json()["delete_after"] is None
    tenant_token = {"Authorization": f"Bearer {add_token(settings, member.email, SLUG)}"}
    assert client.post(f"{api}/suspend", json={"reason": "x"}, headers=tenant_token).status_code == 403
