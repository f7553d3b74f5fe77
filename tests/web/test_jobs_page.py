"""The landlord's jobs page: every tenant's jobs, newest first, filtered by kind, status and tenant,
a page at a time; for the platform's staff only."""

from __future__ import annotations

import re
from typing import Any

from litestar.testing import TestClient
from sqlalchemy.ext.asyncio import AsyncSession

from services.models import Job, JobStatus, TenantRole
from services.settings import Settings
from tests.support import run_db, signed_in
from tests.web.portal import HTMX, add_tenant, add_user, is_partial


def add_jobs(settings: Settings, jobs: list[dict[str, Any]]) -> None:
    async def work(session: AsyncSession) -> None:
        session.add_all(Job(**job) for job in jobs)

    run_db(settings, work)


def listed(page: str) -> list[int]:
    return [int(found) for found in re.findall(r'<tr data-job="(\d+)"', page)]


def test_the_jobs_page_lists_every_tenants_jobs_and_filters_them(
    superadmin_client: TestClient[Any], settings: Settings
) -> None:
    reed, owls = add_tenant(settings, "reed-choir"), add_tenant(settings, "save-the-owls")
    add_jobs(
        settings,
        [
            {"kind": "provision", "tenant_id": reed.id, "status": JobStatus.SUCCEEDED},
            {"kind": "backup", "tenant_id": reed.id, "status": JobStatus.FAILED, "error": "disk full"},
            {"kind": "provision", "tenant_id": owls.id, "status": JobStatus.RUNNING},
            {"kind": "drift_check", "status": JobStatus.QUEUED},
        ],
    )
    page = superadmin_client.get("/jobs")
    assert page.status_code == 200 and 'href="/jobs" aria-current="page"' in page.text
    assert listed(page.text) == [4, 3, 2, 1], "newest first"
    assert (
        "disk full" in page.text and "the platform" in page.text and 'href="/tenants/reed-choir"' in page.text
    )

    failed = superadmin_client.get("/jobs", params={"status": "failed"}, headers=HTMX)
    assert is_partial(failed.text) and listed(failed.text) == [2]
    assert listed(superadmin_client.get("/jobs", params={"kind": "provision"}).text) == [3, 1]
    assert listed(superadmin_client.get("/jobs", params={"tenant": "owls"}).text) == [3]
    none = superadmin_client.get("/jobs", params={"kind": "restore"})
    assert listed(none.text) == [] and "No job matches these filters." in none.text


def test_a_long_history_is_paged_and_the_pager_keeps_the_filters(
    superadmin_client: TestClient[Any], settings: Settings
) -> None:
    reed = add_tenant(settings, "reed-choir")
    add_jobs(settings, [{"kind": "backup", "tenant_id": reed.id, "status": JobStatus.SUCCEEDED}] * 60)
    first = superadmin_client.get("/jobs", params={"kind": "backup"})
    assert len(listed(first.text)) == 50 and "60 jobs · page 1 of 2" in first.text
    assert 'href="/jobs?kind=backup&amp;page=2"' in first.text
    assert len(listed(superadmin_client.get("/jobs", params={"kind": "backup", "page": 2}).text)) == 10


def test_tenant_people_may_not_see_the_jobs_page(client: TestClient[Any], settings: Settings) -> None:
    add_tenant(settings, "reed-choir")
    signed_in(client, add_user(settings, "bo@reed.example", TenantRole.TENANT_ADMIN, "reed-choir"))
    assert client.get("/jobs").status_code == 403
