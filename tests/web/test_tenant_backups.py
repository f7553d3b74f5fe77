"""The tenant portal's own backups page: a tenant's admin backs the tenant up and sees the backup
verified, downloads exactly the archive whose SHA-256 the page shows, and restores the tenant
after a confirmation naming what is replaced, followed through the maintenance page to its end.
Members are refused; another tenant's backup is "not found" and recorded against that tenant; a
second request while one runs is refused with the reason; a shared tenant is offered portable only.

Jobs run on the app's embedded worker, in this process. SQLite, and the restore on PostgreSQL too."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.backups.requests import SCHEDULED_BACKUP_STEPS
from services.models import AuditEntry, Backup, Plan, Verification
from services.settings import Settings
from services.tenancy.stores import location_of
from tests.services.backups.support import execute
from tests.services.running import wait_for
from tests.support import Credentials, csrf_token, post_form, run_db, signed_in
from tests.web.portal import HTMX, assert_no_trace, is_partial, portal
from tests.web.tenant_world import (
    add_admin,
    add_member,
    add_rows,
    add_units,
    no_stores_left_behind,  # noqa: F401  (autouse fixture)
    provision,
)
from tests.web.test_cross_tenant_routes import cross_tenant_entries
from tests.web.test_provisioning_pages import latest_job, step_states, text_of
from tests.workers.gate import reached
from tests.workers.restore_gate import hold_restore_at
from tests.workers.support import tenant, wait_until_finished

SLUG, OTHER = "heron-club", "otter-rescue"
BACKUPS = f"/t/{SLUG}/backups"
#: Most tests run on SQLite alone; the restore runs on PostgreSQL too where it is configured.
ON_SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
POLLING = 'hx-trigger="every 1s"'


@dataclass(frozen=True)
class Heron:
    admin: Credentials
    member: Credentials
    #: A row of the tenant's groups table, "Dawn Watchers".
    group_id: int


@pytest.fixture
def heron(settings: Settings, superadmin: Credentials) -> Heron:
    provision(settings, SLUG)
    units = add_units(settings, SLUG, [("Riverbank", None)])
    [group] = add_rows(settings, SLUG, "groups", [{"name": "Dawn Watchers", "unit_id": units["Riverbank"]}])
    admin = add_admin(settings, SLUG, "admin@heron.example")
    member = add_member(settings, SLUG, "member@heron.example", unit_ids=[units["Riverbank"]])
    return Heron(admin, member, group)


@pytest.fixture
def admin(settings: Settings, heron: Heron) -> Iterator[TestClient[Any]]:
    """A browser signed in as heron-club's admin."""
    with portal(settings) as client:
        yield signed_in(client, heron.admin)


def ask_for_backup(client: TestClient[Any], format: str, *, slug: str = SLUG, htmx: bool = False) -> Any:
    return client.post(
        f"/t/{slug}/backups",
        data={"format": format, "_csrf_token": csrf_token(client)},
        headers=HTMX if htmx else {},
        follow_redirects=False,
    )


def ask_for_restore(client: TestClient[Any], backup_id: int, confirm: str = SLUG) -> Any:
    return client.post(
        f"{BACKUPS}/{backup_id}/restore",
        data={"confirm": confirm, "_csrf_token": csrf_token(client)},
        follow_redirects=False,
    )


def backup_row(settings: Settings, backup_id: int) -> Backup:
    return run_db(settings, lambda session: session.get_one(Backup, backup_id))


def backed_up(client: TestClient[Any], settings: Settings, format: str, *, slug: str = SLUG) -> Backup:
    """A backup asked for on the page, once its job has finished."""
    before = latest_job(settings, slug).id
    response = ask_for_backup(client, format, slug=slug)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"/t/{slug}/backups"
    job = wait_until_finished(settings, latest_job(settings, slug).id, timeout=60)
    assert job.id > before and (job.kind, job.status, job.error) == ("backup", "succeeded", None)
    return backup_row(settings, int(job.payload["backup_id"]))


def listed(page: str) -> dict[int, str]:
    """The rows of the backups table, by backup id, as text."""
    found = re.findall(r'(<tr data-backup="(\d+)".*?</tr>)', page, re.DOTALL)
    return {int(backup_id): text_of(row) for row, backup_id in found}


def audit(settings: Settings, action: str) -> list[AuditEntry]:
    async def work(session: AsyncSession) -> list[AuditEntry]:
        return list(await session.scalars(select(AuditEntry).where(AuditEntry.action == action)))

    return run_db(settings, work)


@ON_SQLITE
def test_an_admin_backs_up_the_tenant_and_sees_the_backup_verified(
    admin: TestClient[Any], settings: Settings
) -> None:
    page = admin.get(BACKUPS)
    assert page.status_code == 200, page.text
    assert "No backups of Heron Club yet." in text_of(page.text)
    assert re.findall(r'<option value="(\w+)">', page.text) == ["native", "portable"]
    assert 'id="back-up-now"' in page.text and 'id="nav-backups"' in page.text

    backup = backed_up(admin, settings, "portable")

    listing = admin.get(BACKUPS).text
    row = listed(listing)[backup.id]
    taken = backup.created_at.strftime("%Y-%m-%d %H:%M:%S")
    assert row.startswith(f"#{backup.id} admin@heron.example {taken} UTC just now portable"), (
        "on the tenant's clock (UTC until its settings say otherwise), labelled"
    )
    assert re.search(r"\d+(\.\d)? KB succeeded verified", row), row
    assert backup.sha256 is not None and f"{backup.sha256[:12]}…" in row
    assert "Download" in row and "Restore…" in row
    assert POLLING not in listing, "nothing under way: the page does not poll"
    [entry] = audit(settings, "tenant.backup")
    assert (entry.actor_email, entry.target, entry.detail["backup"]) == (
        "admin@heron.example",
        SLUG,
        backup.id,
    )


@ON_SQLITE
def test_a_download_is_exactly_the_archive_whose_sha256_the_page_shows(
    admin: TestClient[Any], settings: Settings
) -> None:
    backup = backed_up(admin, settings, "native")
    assert backup.storage_key is not None and backup.sha256 is not None
    archive = settings.data_dir / "backups" / backup.storage_key

    response = admin.get(f"{BACKUPS}/{backup.id}/download")

    assert response.status_code == 200, response.text
    assert response.content == archive.read_bytes()
    assert hashlib.sha256(response.content).hexdigest() == backup.sha256
    assert response.headers["x-checksum-sha256"] == backup.sha256
    digest = base64.b64encode(hashlib.sha256(response.content).digest()).decode()
    assert response.headers["repr-digest"] == f"sha-256=:{digest}:"
    assert response.headers["content-length"] == str(len(response.content)) == str(backup.size_bytes)
    assert response.headers["content-type"] == "application/gzip"
    taken = backup.created_at.strftime("%Y%m%d-%H%M%S")
    assert response.headers["content-disposition"] == (
        f'attachment; filename="{SLUG}-backup-{backup.id}-{taken}-native.tar.gz"'
    )
    [entry] = audit(settings, "tenant.backup_download")
    assert (entry.target, entry.detail) == (SLUG, {"backup": backup.id, "sha256": backup.sha256})

    archive.write_bytes(archive.read_bytes()[:-10])
    damaged = admin.get(f"{BACKUPS}/{backup.id}/download")
    assert damaged.status_code == 409
    assert "is truncated" in text_of(damaged.text)
    assert_no_trace(damaged.text)


@ON_SQLITE
def test_a_member_is_refused_every_backup_page_and_sees_no_link(
    settings: Settings, heron: Heron, admin: TestClient[Any]
) -> None:
    backup = backed_up(admin, settings, "portable")
    member = signed_in(admin, heron.member)
    assert 'id="nav-backups"' not in member.get(f"/t/{SLUG}/").text

    answers = [
        member.get(BACKUPS),
        ask_for_backup(member, "portable"),
        member.get(f"{BACKUPS}/{backup.id}/download"),
        member.get(f"{BACKUPS}/{backup.id}/restore"),
        ask_for_restore(member, backup.id),
    ]

    assert [answer.status_code for answer in answers] == [403] * 5
    assert all(backup.sha256 not in answer.text for answer in answers if backup.sha256)
    assert len(audit(settings, "tenant.backup")) == 1 and audit(settings, "tenant.restore") == []


@ON_SQLITE
def test_another_tenants_backup_is_not_found_and_recorded_against_that_tenant(
    settings: Settings, heron: Heron, admin: TestClient[Any]
) -> None:
    otter_id = provision(settings, OTHER)
    warden = add_admin(settings, OTHER, "warden@otter.example")
    theirs = backed_up(signed_in(admin, warden), settings, "portable", slug=OTHER)
    client = signed_in(admin, heron.admin)
    before = cross_tenant_entries(settings)

    attempts = [
        client.get(f"{BACKUPS}/{theirs.id}/download"),
        client.get(f"{BACKUPS}/{theirs.id}/restore"),
        ask_for_restore(client, theirs.id),
    ]
    nobodys = client.get(f"{BACKUPS}/{theirs.id + 100}/download")

    assert [attempt.status_code for attempt in attempts] == [404, 404, 404] == [nobodys.status_code] * 3
    for attempt in attempts:
        said = text_of(attempt.text)
        assert said == text_of(nobodys.text).replace(f"#{theirs.id + 100}", f"#{theirs.id}")
        assert f"{SLUG} has no backup #{theirs.id}" in said
        assert "Otter" not in said and OTHER not in said
        assert_no_trace(attempt.text)
    assert cross_tenant_entries(settings) - before == Counter({otter_id: 3})
    recorded = [
        entry for entry in audit(settings, "security.cross_tenant") if entry.detail.get("backup") == theirs.id
    ]
    assert {(entry.tenant_id, entry.actor_email, entry.detail["from_tenant"]) for entry in recorded} == {
        (otter_id, "admin@heron.example", SLUG)
    }
    assert theirs.id not in listed(client.get(BACKUPS).text)
    assert tenant(settings, OTHER).status == "active" and audit(settings, "tenant.restore") == []


def mark_verification_failed(settings: Settings, backup_id: int) -> None:
    """As the verify step leaves a backup whose restored copy did not match its manifest."""

    async def work(session: AsyncSession) -> None:
        await session.execute(
            update(Backup)
            .where(Backup.id == backup_id)
            .values(verification=Verification.FAILED, verification_detail="groups: 1 row, manifest says 2")
        )

    run_db(settings, work)


@ON_SQLITE
def test_the_restore_confirmation_names_what_it_replaces_and_only_a_verified_backup_restores(
    admin: TestClient[Any], settings: Settings
) -> None:
    backup = backed_up(admin, settings, "native")
    confirmation = f"{BACKUPS}/{backup.id}/restore"
    assert f'href="{confirmation}"' in admin.get(BACKUPS).text

    page = admin.get(confirmation)

    assert page.status_code == 200, page.text
    said = text_of(page.text)
    taken = backup.created_at.strftime("%Y-%m-%d %H:%M:%S")
    assert "What is replaced Heron Club's data: its unit tree, the rows of every table" in said
    assert "What stays as it is now People." in said and "with the role, name and units they have now" in said
    assert "Settings. The name, timezone and accent colour stay as they are now." in said
    assert f"every change made since {taken} UTC" in said
    assert f"Taken {taken} UTC (just now)" in said
    assert backup.manifest is not None and f"Rows {backup.manifest['totals']['rows']:,} in" in said
    assert "a safety backup (native) of the current data is taken" in said
    assert "maintenance page" in said
    assert 'id="confirm-restore"' in page.text and 'name="_csrf_token"' in page.text

    unconfirmed = ask_for_restore(admin, backup.id, confirm="heron")
    assert unconfirmed.status_code == 422
    assert f"Type {SLUG} to confirm" in text_of(unconfirmed.text)
    assert 'aria-invalid="true"' in unconfirmed.text

    mark_verification_failed(settings, backup.id)
    row = listed(admin.get(BACKUPS).text)[backup.id]
    assert "failed its verification" in row and "Restore…" not in row
    page = admin.get(confirmation)
    assert f"Backup #{backup.id} failed its verification" in text_of(page.text)
    assert 'id="restore-form"' not in page.text
    refused = ask_for_restore(admin, backup.id)
    assert refused.status_code == 409
    assert "failed its verification" in text_of(refused.text)
    assert audit(settings, "tenant.restore") == []
    assert tenant(settings, SLUG).status == "active"


def rename_group(settings: Settings, group_id: int, name: str) -> None:
    store = location_of(settings, tenant(settings, SLUG))
    asyncio.run(execute(store, f"UPDATE groups SET name = '{name}' WHERE id = {group_id}"))


def test_a_restore_brings_back_a_row_changed_after_the_backup(
    settings: Settings, heron: Heron, admin: TestClient[Any], tmp_path: Path
) -> None:
    best_format = re.findall(r'<option value="(\w+)">', admin.get(BACKUPS).text)[0]
    backup = backed_up(admin, settings, best_format)
    rename_group(settings, heron.group_id, "Dusk Watchers")
    group_page = f"/t/{SLUG}/data/groups/{heron.group_id}"
    assert "Dusk Watchers" in admin.get(group_page).text
    gate = tmp_path / "gate"
    gate.touch()
    remove_gate = hold_restore_at("restore", gate)
    try:
        started = ask_for_restore(admin, backup.id)

        assert started.status_code == 202, started.text
        job = latest_job(settings, SLUG)
        said = text_of(started.text)
        assert f"Restore job #{job.id}" in said and f"Restoring from backup #{backup.id}" in said
        assert "shows a maintenance page to everyone" in said
        assert POLLING in started.text, "the page follows the restore"
        wait_for(reached(gate).exists, 60, what="the restore to reach its gate")
        during = admin.get(BACKUPS)
        assert during.status_code == 503
        assert "Heron Club is under maintenance: its store is being restored" in text_of(during.text)
        assert admin.get(BACKUPS, headers=HTMX).status_code == 503, "a poll is not swapped in"
    finally:
        gate.unlink()
        remove_gate()

    done = wait_until_finished(settings, job.id, timeout=120)
    assert (done.status, done.error) == ("succeeded", None)
    after = admin.get(BACKUPS, headers=HTMX)
    assert after.status_code == 200 and is_partial(after.text)
    assert POLLING not in after.text, "polling stops once the restore has finished"
    said = text_of(after.text)
    taken = backup.created_at.strftime("%Y-%m-%d %H:%M:%S")
    assert f"The restore from backup #{backup.id} (job #{job.id}) finished" in said
    assert f"Heron Club's data is as it was on {taken} UTC" in said
    safety = int(done.payload["safety_backup_id"])
    assert f"kept in safety backup #{safety}" in said
    assert f"safety backup before restore #{job.id}, admin@heron.example" in listed(after.text)[safety]
    restored = admin.get(group_page).text
    assert "Dawn Watchers" in restored and "Dusk Watchers" not in restored
    [entry] = audit(settings, "tenant.restore")
    assert (entry.tenant_id, entry.actor_email) == (tenant(settings, SLUG).id, "admin@heron.example")
    assert (entry.detail["backup"], entry.detail["job"]) == (backup.id, job.id)


@ON_SQLITE
def test_a_second_request_while_a_backup_runs_is_refused_with_the_reason(
    admin: TestClient[Any], settings: Settings, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    gate.touch()
    remove_gate = hold_restore_at("dump", gate, SCHEDULED_BACKUP_STEPS)
    try:
        first = ask_for_backup(admin, "native", htmx=True)

        assert first.status_code == 200 and is_partial(first.text), first.text
        job = latest_job(settings, SLUG)
        assert f"Backup #{job.payload['backup_id']} of {SLUG} is queued." in text_of(first.text)
        assert POLLING in first.text
        wait_for(reached(gate).exists, 60, what="the backup to reach its gate")
        page = admin.get(BACKUPS).text
        assert f'id="job-{job.id}"' in page and POLLING in page
        assert step_states(page)["dump"] == "running"

        again = ask_for_backup(admin, "portable", htmx=True)
        in_a_browser = ask_for_backup(admin, "portable")

        reason = f"A backup of Heron Club is under way (job #{job.id}): one backup or restore runs at a time."
        assert again.status_code == 422 and is_partial(again.text)
        assert reason in text_of(again.text)
        assert in_a_browser.status_code == 409 and reason in text_of(in_a_browser.text)
        assert latest_job(settings, SLUG).id == job.id, "nothing was queued"
    finally:
        gate.unlink()
        remove_gate()

    wait_until_finished(settings, job.id, timeout=60)
    finished = admin.get(BACKUPS, headers=HTMX).text
    assert POLLING not in finished
    assert "succeeded verified" in listed(finished)[int(job.payload["backup_id"])]
    assert len(audit(settings, "tenant.backup")) == 1


@ON_SQLITE
def test_a_shared_tenant_is_offered_portable_backups_only(
    settings: Settings, superadmin: Credentials
) -> None:
    provision(settings, "wren-club", isolation="shared")
    wren = add_admin(settings, "wren-club", "admin@wren.example")
    with portal(settings) as client:
        page = signed_in(client, wren).get("/t/wren-club/backups")
        assert re.findall(r'<option value="(\w+)">', page.text) == ["portable"]
        assert "shared with other tenants" in text_of(page.text)

        refused = ask_for_backup(client, "native", slug="wren-club")

    assert refused.status_code == 422
    assert "it is backed up in the portable format" in text_of(refused.text)
    assert audit(settings, "tenant.backup") == []


@ON_SQLITE
def test_backups_beyond_the_plans_day_are_refused_saying_when_the_next_can_be_asked_for(
    settings: Settings, heron: Heron, admin: TestClient[Any], superadmin: Credentials
) -> None:
    def plan_allows(backups: int) -> None:
        async def work(session: AsyncSession) -> None:
            await session.execute(
                update(Plan).where(Plan.key == "standard").values(max_backups_per_day=backups)
            )
            await session.commit()

        run_db(settings, work)

    plan_allows(2)
    first = backed_up(admin, settings, "portable")
    backed_up(admin, settings, "portable")

    refused = ask_for_backup(admin, "portable", htmx=True)
    assert refused.status_code == 429
    allowed_again_at = (first.created_at + timedelta(hours=24)).strftime("%H:%M")
    assert (
        "The Standard plan allows 2 backups a day by hand, and Heron Club has asked for 2 in the last "
        f"24 hours. The next one can be asked for at {allowed_again_at} UTC, in about 24 hours."
    ) in refused.text
    assert len(listed(admin.get(BACKUPS).text)) == 2, "nothing was recorded"
    usage = admin.get(f"/t/{SLUG}/settings").text
    assert re.search(
        r'<tr id="usage-backups"><td>Backups by hand, last 24 hours</td><td>2</td><td>2 a day</td>'
        r'<td><meter [^>]*value="100"[^>]*></meter> 100% <span class="badge failed">limit reached</span>',
        usage,
    )

    # The platform's staff may still ask, from the tenant's landlord page.
    with portal(settings) as staff:
        signed_in(staff, superadmin)
        answer = post_form(staff, f"/tenants/{SLUG}/backups", {"format": "portable"}, follow_redirects=False)
    assert answer.status_code == 303, answer.text

    plan_allows(5)
    wait_until_finished(settings, latest_job(settings, SLUG).id, timeout=60)
    assert ask_for_backup(admin, "portable").status_code == 303
