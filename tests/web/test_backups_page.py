"""The Backups panel of the landlord tenant page: empty at first, "Back up now" in the format chosen
(a browser form or HTMX), the backup followed to the end and listed with its format, size, age and
verification; a bad request is shown in the panel; only landlord staff may back up."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from services.models import TenantRole
from services.settings import Settings
from tests.support import Credentials, csrf_token, sign_in
from tests.web.portal import HTMX, add_token, add_user, is_partial
from tests.web.test_api import bearer
from tests.web.test_api_provisioning import follow
from tests.web.test_provisioning_pages import text_of, wait_until_job_finished
from tests.workers.support import drop_tenant_databases, tenant

SLUG = "harbour-club"


@pytest.fixture(autouse=True)
def no_stores_left_behind(settings: Settings) -> Iterator[None]:
    yield
    drop_tenant_databases(settings.database_url)


@pytest.fixture
def harbour(superadmin_client: TestClient[Any], settings: Settings, superadmin: Credentials) -> str:
    token = add_token(settings, superadmin.email)
    created = superadmin_client.post(
        "/api/v1/tenants",
        json={"slug": SLUG, "name": "Harbour Club", "template": "community_group", "modules": ["events"]},
        headers=bearer(token),
    )
    assert created.status_code == 202, created.text
    assert follow(superadmin_client, token, created.headers["location"])["status"] == "succeeded"
    return SLUG


def backups_panel(page: str) -> str:
    match = re.search(r'<section id="backups" class="panel">(.*?)</section>', page, re.DOTALL)
    assert match, "the page has no Backups panel"
    return match.group(1)


def backup_rows(page: str) -> list[str]:
    return [text_of(row) for row in re.findall(r"<tr data-backup=.*?</tr>", backups_panel(page), re.DOTALL)]


def request_backup(client: TestClient[Any], format: str, *, htmx: bool = False) -> Any:
    return client.post(
        f"/tenants/{SLUG}/backups",
        data={"format": format, "_csrf_token": csrf_token(client)},
        headers=HTMX if htmx else {},
        follow_redirects=False,
    )


def test_the_panel_offers_both_formats_and_lists_a_backup_once_it_is_verified(
    superadmin_client: TestClient[Any], harbour: str, settings: Settings
) -> None:
    page = superadmin_client.get(f"/tenants/{harbour}").text
    panel = backups_panel(page)
    assert "No backups yet." in panel
    assert re.findall(r'<option value="(\w+)">', panel) == ["native", "portable"]
    assert "Back up now" in panel
    before = wait_until_job_finished(settings, harbour, after=0).id

    response = request_backup(superadmin_client, "portable")

    assert response.status_code == 303
    assert response.headers["location"] == f"/tenants/{harbour}#backups"
    job = wait_until_job_finished(settings, harbour, after=before)
    assert (job.kind, job.status, job.error) == ("backup", "succeeded", None)

    page = superadmin_client.get(f"/tenants/{harbour}").text
    [row] = backup_rows(page)
    assert row.startswith("#1 admin@localhost just now portable")
    assert re.search(r"\d+(\.\d)? KB", row), row
    assert "succeeded verified restored into a scratch sqlite store" in row or "postgresql store" in row
    assert "Verify again" in row


def test_htmx_back_up_now_redirects_the_page_and_a_bad_format_shows_in_the_panel(
    superadmin_client: TestClient[Any], harbour: str, settings: Settings
) -> None:
    refused = request_backup(superadmin_client, "zip", htmx=True)
    assert refused.status_code == 422
    assert is_partial(refused.text)
    assert "Unknown backup format" in text_of(backups_panel(refused.text))

    before = wait_until_job_finished(settings, harbour, after=0).id
    accepted = request_backup(superadmin_client, "native", htmx=True)
    assert 200 <= accepted.status_code < 300, accepted.text
    assert accepted.headers["hx-redirect"] == f"/tenants/{harbour}#backups"
    job = wait_until_job_finished(settings, harbour, after=before)
    assert (job.status, job.error) == ("succeeded", None)

    again = superadmin_client.post(
        f"/tenants/{harbour}/backups/1/verify",
        data={"_csrf_token": csrf_token(superadmin_client)},
        follow_redirects=False,
    )
    assert again.status_code == 303
    verification = wait_until_job_finished(settings, harbour, after=job.id)
    assert (verification.kind, verification.status) == ("verify_backup", "succeeded")
    [row] = backup_rows(superadmin_client.get(f"/tenants/{harbour}").text)
    assert "native" in row and "verified" in row


def test_a_tenant_admin_may_not_back_up_from_the_landlord_portal(
    client: TestClient[Any], harbour: str, settings: Settings
) -> None:
    assert tenant(settings, harbour) is not None
    pat = add_user(settings, "pat@harbour.example", TenantRole.TENANT_ADMIN, tenant_slug=harbour)
    client.cookies.clear()
    sign_in(client, pat)
    assert request_backup(client, "native").status_code == 403
