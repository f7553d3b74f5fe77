"""The schedule on the landlord's Backups panel: none at first; set with a time, a format and how
many to keep, after which the panel shows the next run and N; wrong input comes back beside each
field (in the panel with HTMX, on a page of its own without), and nothing is saved; cleared, the
tenant is backed up only when asked. Only landlord staff may change it; automation does the same
through /api/v1/tenants/{slug}/backups/schedule."""

from __future__ import annotations

import re
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.models import AuditEntry, BackupSchedule, TenantRole
from services.settings import Settings
from tests.support import Credentials, post_form, run_db, sign_in
from tests.web.portal import HTMX, add_token, add_user, is_partial
from tests.web.test_api import bearer
from tests.web.test_api_provisioning import follow
from tests.web.test_backups_page import (
    backups_panel,
    no_stores_left_behind,  # noqa: F401  (autouse fixture)
)
from tests.web.test_provisioning_pages import text_of

SLUG = "harbour-club"


@pytest.fixture
def harbour(superadmin_client: TestClient[Any], settings: Settings, superadmin: Credentials) -> str:
    """An active tenant in its own store, created through the API."""
    token = add_token(settings, superadmin.email)
    created = superadmin_client.post(
        "/api/v1/tenants",
        json={"slug": SLUG, "name": "Harbour Club", "template": "community_group", "modules": ["events"]},
        headers=bearer(token),
    )
    assert created.status_code == 202, created.text
    assert follow(superadmin_client, token, created.headers["location"])["status"] == "succeeded"
    return SLUG


def schedule_part(page: str) -> str:
    match = re.search(r'<div id="backup-schedule" class="schedule">(.*?)</div>', page, re.DOTALL)
    assert match, "the page has no backup schedule"
    return match.group(1)


def field_errors(page: str) -> dict[str, str]:
    found = re.findall(r'<small class="field-error" id="(\w+)-error">(.*?)</small>', page, re.DOTALL)
    return {name: text_of(message) for name, message in found}


def saved_schedules(settings: Settings) -> list[tuple[str, str, int]]:
    async def read(session: AsyncSession) -> list[tuple[str, str, int]]:
        rows = await session.scalars(select(BackupSchedule))
        return [(f"{row.daily_at:%H:%M}", row.format, row.keep) for row in rows]

    return run_db(settings, read)


def test_a_schedule_is_set_shown_with_its_next_run_and_keep_and_cleared(
    superadmin_client: TestClient[Any], harbour: str, settings: Settings
) -> None:
    part = schedule_part(backups_panel(superadmin_client.get(f"/tenants/{harbour}").text))
    assert f"No schedule: {harbour} is backed up only when someone asks." in text_of(part)
    assert 'value="02:00"' in part and 'name="keep" value="7"' in part

    saved = post_form(
        superadmin_client,
        f"/tenants/{harbour}/backups/schedule",
        {"daily_at": "03:15", "format": "portable", "keep": "5"},
        headers=HTMX,
    )

    assert saved.status_code == 200, saved.text
    assert is_partial(saved.text)
    shown = text_of(schedule_part(saved.text))
    assert f"Saved: {harbour} is backed up daily at 03:15 UTC, portable, keeping the newest 5" in shown
    assert re.search(r"Next run \d{4}-\d\d-\d\d 03:15 UTC \(in (\d+ h)?( ?\d+ min)?\)", shown), shown
    assert "keeping the newest 5 scheduled backups" in shown
    assert saved_schedules(settings) == [("03:15", "portable", 5)]

    page = superadmin_client.get(f"/tenants/{harbour}").text
    assert 'id="schedule-keep">5<' in page
    assert re.search(r'<time id="schedule-next-run" datetime="[^"]+T03:15:00\+00:00">', page)

    cleared = post_form(
        superadmin_client, f"/tenants/{harbour}/backups/schedule/clear", {}, follow_redirects=False
    )
    assert cleared.status_code == 303
    assert cleared.headers["location"] == f"/tenants/{harbour}#backup-schedule"
    assert saved_schedules(settings) == []
    assert "No schedule" in text_of(schedule_part(superadmin_client.get(f"/tenants/{harbour}").text))

    async def audited(session: AsyncSession) -> list[str]:
        statement = select(AuditEntry.action).where(AuditEntry.action.like("tenant.backup_schedule%"))
        return list(await session.scalars(statement.order_by(AuditEntry.seq)))

    assert run_db(settings, audited) == ["tenant.backup_schedule", "tenant.backup_schedule_clear"]


def test_bad_schedule_input_is_refused_with_a_message_beside_each_field(
    superadmin_client: TestClient[Any], harbour: str, settings: Settings
) -> None:
    refused = post_form(
        superadmin_client,
        f"/tenants/{harbour}/backups/schedule",
        {"daily_at": "24:00", "format": "zip", "keep": "0"},
        headers=HTMX,
    )

    assert refused.status_code == 422
    assert is_partial(refused.text)
    part = schedule_part(refused.text)
    assert "The schedule was not saved: check the fields marked below." in text_of(part)
    errors = field_errors(part)
    assert errors["daily_at"].startswith("24:00 is not a time of day: give it as HH:MM, 24-hour, in UTC")
    assert errors["format"] == "Choose native or portable: zip is not a backup format."
    assert errors["keep"] == "Keep is how many scheduled backups to keep: a whole number from 1 to 100."
    assert 'value="24:00"' in part, "the input comes back as typed"
    assert saved_schedules(settings) == []

    # Without JavaScript: a page of its own, with the same messages.
    page = post_form(
        superadmin_client,
        f"/tenants/{harbour}/backups/schedule",
        {"daily_at": "02:00", "format": "native", "keep": "many"},
        follow_redirects=False,
    )
    assert page.status_code == 422
    assert not is_partial(page.text)
    assert list(field_errors(schedule_part(page.text))) == ["keep"]
    assert saved_schedules(settings) == []

    saved = post_form(
        superadmin_client,
        f"/tenants/{harbour}/backups/schedule",
        {"daily_at": "2:05", "format": "native", "keep": "3"},
        follow_redirects=False,
    )
    assert saved.status_code == 303
    assert saved_schedules(settings) == [("02:05", "native", 3)]


def test_a_tenant_admin_may_not_change_the_schedule(
    client: TestClient[Any], harbour: str, settings: Settings
) -> None:
    pat = add_user(settings, "pat@harbour.example", TenantRole.TENANT_ADMIN, tenant_slug=harbour)
    client.cookies.clear()
    sign_in(client, pat)
    response = post_form(
        client,
        f"/tenants/{harbour}/backups/schedule",
        {"daily_at": "02:00", "format": "portable", "keep": "3"},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert saved_schedules(settings) == []


def test_automation_sets_reads_and_clears_a_schedule_through_the_api(
    superadmin_client: TestClient[Any], harbour: str, settings: Settings, superadmin: Credentials
) -> None:
    token = bearer(add_token(settings, superadmin.email))
    path = f"/api/v1/tenants/{harbour}/backups/schedule"
    assert superadmin_client.get(path, headers=token).status_code == 404

    refused = superadmin_client.put(path, json={"daily_at": "7pm", "format": "zip", "keep": 0}, headers=token)
    assert refused.status_code == 422
    assert {error["field"] for error in refused.json()["errors"]} == {"daily_at", "format", "keep"}

    saved = superadmin_client.put(path, json={"daily_at": "19:05", "keep": 2}, headers=token)
    assert saved.status_code == 200, saved.text
    body = saved.json()
    assert (body["tenant"], body["daily_at"], body["format"], body["keep"]) == (
        harbour,
        "19:05",
        "portable",
        2,
    )
    assert body["next_run_at"].endswith("T19:05:00Z") or body["next_run_at"].endswith("T19:05:00+00:00")
    assert superadmin_client.get(path, headers=token).json() == body

    assert superadmin_client.delete(path, headers=token).status_code == 204
    assert superadmin_client.get(path, headers=token).status_code == 404
    assert saved_schedules(settings) == []
