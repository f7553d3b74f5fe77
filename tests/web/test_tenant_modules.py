"""The tenant portal's modules page and /api/v1/tenant/modules: a tenant's admin sees what is
enabled (with its version), kept and available under the plan; enables a module (offered the ones
it needs first) and disables one after a confirmation (a backup first, its data kept or dropped),
following the job live to its end. Refusals name the module in the way and change nothing.
Members are refused; the landlord sees the changes in the tenant's job history and audit trail.

Jobs run on the app's embedded worker, in this process. SQLite; the whole enable-then-drop flow
on PostgreSQL too where it is configured."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.models import AuditEntry, Backup, Job, JobStatus, Tenant, Verification
from services.modules.requests import request_enable
from services.settings import Settings
from services.tenancy.stores import location_of
from tests.services.provisioning.installation import business_tables, copy_layers
from tests.services.provisioning.test_module_changes import write_module
from tests.services.running import wait_for
from tests.support import Credentials, csrf_token, run_db, signed_in
from tests.web.portal import HTMX, add_token, assert_no_trace, is_partial, portal
from tests.web.tenant_world import (
    add_admin,
    add_member,
    no_stores_left_behind,  # noqa: F401  (autouse fixture)
    provision,
    run_tenant_job,
)
from tests.web.test_provisioning_pages import latest_job, step_states, text_of
from tests.workers.support import GATE_VARIABLE, Gate, tenant, wait_until_finished

SLUG = "heron-club"
MODULES = f"/t/{SLUG}/modules"
ON_SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
POLLING = 'hx-trigger="every 1s"'


def enable_now(settings: Settings, slug: str, *modules: str) -> None:
    """Modules enabled by their job, run here as a worker runs it."""

    async def enable(session: AsyncSession, found: Tenant) -> Job:
        return (await request_enable(session, settings, found, list(modules), with_required=True)).job

    done = run_tenant_job(settings, slug, enable)
    assert done.status == JobStatus.SUCCEEDED, done.error


def put_on_plan(settings: Settings, slug: str, plan: str) -> None:
    async def work(session: AsyncSession) -> None:
        found = await session.scalar(select(Tenant).where(Tenant.slug == slug))
        assert found is not None
        found.plan_key = plan

    run_db(settings, work)


def job_count(settings: Settings, slug: str) -> int:
    async def work(session: AsyncSession) -> int:
        statement = select(func.count()).select_from(Job).join(Tenant, Job.tenant_id == Tenant.id)
        return await session.scalar(statement.where(Tenant.slug == slug)) or 0

    return run_db(settings, work)


def audit_actions(settings: Settings, slug: str) -> list[tuple[str, dict[str, Any]]]:
    async def work(session: AsyncSession) -> list[tuple[str, dict[str, Any]]]:
        statement = select(AuditEntry).where(AuditEntry.target == slug, AuditEntry.action.like("module.%"))
        return [
            (entry.action, entry.detail)
            for entry in await session.scalars(statement.order_by(AuditEntry.seq))
        ]

    return run_db(settings, work)


def backups_of(settings: Settings, tenant_id: int) -> list[tuple[str, str]]:
    async def work(session: AsyncSession) -> list[tuple[str, str]]:
        statement = select(Backup.status, Backup.verification).where(Backup.tenant_id == tenant_id)
        return [(status, verification) for status, verification in await session.execute(statement)]

    return run_db(settings, work)


def post(client: TestClient[Any], path: str, data: dict[str, str] | None = None, **kwargs: Any) -> Any:
    return client.post(
        path, data={**(data or {}), "_csrf_token": csrf_token(client)}, follow_redirects=False, **kwargs
    )


def row(page: str, module: str) -> str:
    """The module's row on the modules page."""
    match = re.search(rf'<tr id="module-{module}"[^>]*>(.*?)</tr>', page, re.DOTALL)
    assert match, f"the page has no row for {module}"
    return match.group(0)


def status_of(page: str, module: str) -> str:
    match = re.search(r'data-status="(\w+)"', row(page, module))
    assert match
    return match.group(1)


def job_id_of(response: Any) -> int:
    assert response.status_code == 303, response.text
    match = re.fullmatch(rf"{MODULES}/jobs/(\d+)", response.headers["location"])
    assert match, response.headers["location"]
    return int(match.group(1))


@pytest.fixture
def heron(settings: Settings, superadmin: Credentials) -> Credentials:
    """An active tenant with events and social media, and its admin."""
    provision(settings, SLUG)
    enable_now(settings, SLUG, "events", "social_media")
    return add_admin(settings, SLUG, "admin@heron.example")


# Who may ------------------------------------------------------------------------------------------


@ON_SQLITE
def test_members_are_refused_the_page_the_changes_and_the_api(settings: Settings, heron: Credentials) -> None:
    member = add_member(settings, SLUG, "member@heron.example")
    token = add_token(settings, member.email, SLUG)
    with portal(settings) as client:
        signed_in(client, member)
        home = client.get(f"/t/{SLUG}/")
        assert 'id="nav-modules"' not in home.text, "members are not shown the link"
        assert client.get(MODULES).status_code == 403
        assert post(client, f"{MODULES}/documents/enable").status_code == 403
        assert client.get(f"{MODULES}/events/disable").status_code == 403
        assert post(client, f"{MODULES}/events/disable", {"keep_data": "drop"}).status_code == 403
        assert client.get(f"{MODULES}/jobs/{latest_job(settings, SLUG).id}").status_code == 403
        client.cookies.clear()
        headers = {"Authorization": f"Bearer {token}"}
        assert client.get("/api/v1/tenant/modules", headers=headers).status_code == 403
        refused = client.put("/api/v1/tenant/modules", json={"modules": []}, headers=headers)
        assert refused.status_code == 403
        assert refused.json()["detail"] == "Only the tenant's admins see and change its modules."
    assert tenant(settings, SLUG).modules == ["events", "social_media"]


@ON_SQLITE
def test_an_admin_sees_what_is_enabled_with_its_version_and_what_the_plan_allows(
    settings: Settings, heron: Credentials
) -> None:
    put_on_plan(settings, SLUG, "starter")
    with portal(settings) as client:
        signed_in(client, heron)
        assert 'id="nav-modules"' in client.get(f"/t/{SLUG}/").text
        page = client.get(MODULES)

    assert page.status_code == 200
    text = text_of(page.text)
    assert "Plan: Starter" in text
    assert re.search(r'id="plan-usage">2 of at most 3<', page.text)
    assert status_of(page.text, "events") == status_of(page.text, "social_media") == "enabled"
    events = text_of(row(page.text, "events"))
    assert "Events" in events and "1.1.0" in events and "events_0002" in events
    assert 'id="disable-events"' in row(page.text, "events")
    assert status_of(page.text, "documents") == "available"
    assert 'id="enable-documents"' in row(page.text, "documents")
    assert "The Starter plan does not include Finance." in text_of(row(page.text, "finance"))
    assert 'id="enable-finance"' not in page.text
    assert 'id="why-not-volunteering"' in row(page.text, "volunteering"), "starter has no volunteering"


# Enabling -----------------------------------------------------------------------------------------


def test_enabling_a_module_and_dropping_it_again_each_run_as_a_job_the_page_follows(
    settings: Settings, heron: Credentials
) -> None:
    with portal(settings) as client:
        signed_in(client, heron)
        job_id = job_id_of(post(client, f"{MODULES}/documents/enable"))
        job = wait_until_finished(settings, job_id, timeout=60)
        assert job.status == JobStatus.SUCCEEDED, job.error

        page = client.get(f"{MODULES}/jobs/{job_id}")
        assert page.status_code == 200
        assert "Enable Documents" in text_of(page.text)
        assert re.search(r'id="job-status">succeeded<', page.text)
        assert step_states(page.text) == {
            "lock": "succeeded",
            "enable documents": "succeeded",
            "record and snapshot": "succeeded",
        }
        assert POLLING not in page.text, "a finished job is not polled"
        partial = client.get(f"{MODULES}/jobs/{job_id}", headers=HTMX)
        assert is_partial(partial.text) and partial.text.lstrip().startswith('<section id="module-job"')
        assert status_of(client.get(MODULES).text, "documents") == "enabled"

        confirmation = client.get(f"{MODULES}/documents/disable")
        assert confirmation.status_code == 200
        text = text_of(confirmation.text)
        assert "First, a backup of Heron Club is taken" in text
        assert re.findall(r"<code>(\w+)</code>", confirmation.text) == [
            "document_versions",
            "documents",
            "folders",
        ]
        no_choice = post(client, f"{MODULES}/documents/disable")
        assert no_choice.status_code == 422
        assert "Choose whether to keep the data of Documents or drop it." in text_of(no_choice.text)

        job_id = job_id_of(post(client, f"{MODULES}/documents/disable", {"keep_data": "drop"}))
        job = wait_until_finished(settings, job_id, timeout=120)
        assert job.status == JobStatus.SUCCEEDED, job.error
        page = client.get(f"{MODULES}/jobs/{job_id}")
        assert "Drop the data of Documents" in text_of(page.text)
        states = step_states(page.text)
        assert list(states)[:6] == [
            "lock",
            "safety dump",
            "safety checksum",
            "safety manifest",
            "safety verify",
            "drop data",
        ]
        assert set(states.values()) == {"succeeded"}
        assert status_of(client.get(MODULES).text, "documents") == "available"

    found = tenant(settings, SLUG)
    assert (found.modules, found.kept_modules) == (["events", "social_media"], [])
    assert not {"folders", "documents"} & asyncio.run(business_tables(location_of(settings, found)))
    assert backups_of(settings, found.id) == [(JobStatus.SUCCEEDED, Verification.VERIFIED)]
    assert [action for action, _ in audit_actions(settings, SLUG)] == ["module.enable", "module.disable"]


@ON_SQLITE
def test_a_module_that_needs_another_is_offered_with_it_first(settings: Settings, heron: Credentials) -> None:
    provision(settings, "egret-club")
    admin = add_admin(settings, "egret-club", "admin@egret.example")
    with portal(settings) as client:
        signed_in(client, admin)
        offer = post(client, "/t/egret-club/modules/volunteering/enable")

        assert offer.status_code == 200
        text = text_of(offer.text)
        assert "Volunteering needs Events , which is not enabled." in text
        assert re.findall(r'<li data-module="(\w+)">', offer.text) == ["events", "volunteering"]
        assert 'name="with_required" value="yes"' in offer.text
        assert "Enable Events and Volunteering" in text
        assert job_count(settings, "egret-club") == 1, "only its provisioning: nothing asked yet"

        response = post(client, "/t/egret-club/modules/volunteering/enable", {"with_required": "yes"})
        assert response.status_code == 303
        job = wait_until_finished(settings, latest_job(settings, "egret-club").id, timeout=60)
        assert job.status == JobStatus.SUCCEEDED, job.error
    assert tenant(settings, "egret-club").modules == ["events", "volunteering"]


@ON_SQLITE
def test_the_job_page_shows_each_step_live_while_the_change_runs(
    settings: Settings, heron: Credentials, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layers = copy_layers(tmp_path)
    gate = Gate(tmp_path / "gate", revision="harbour_gate_0001", table="gate_readings")
    write_module(layers, "harbour_gate", [(GATED_UPGRADE, 'op.drop_table("gate_readings")')])
    monkeypatch.setenv(GATE_VARIABLE, str(gate.path))
    gate.close()
    gated = replace(settings, layers_dir=layers)
    with portal(gated) as client:
        signed_in(client, heron)
        job_id = job_id_of(post(client, f"{MODULES}/harbour_gate/enable"))
        try:
            wait_for(gate.reached.exists, 30, what="the migration to reach its gate")

            page = client.get(f"{MODULES}/jobs/{job_id}")
            assert re.search(r'id="job-status">running<', page.text)
            assert step_states(page.text) == {
                "lock": "succeeded",
                "enable harbour_gate": "running",
                "record and snapshot": "pending",
            }
            assert POLLING in page.text
            poll = client.get(f"{MODULES}/jobs/{job_id}", headers=HTMX)
            assert is_partial(poll.text) and POLLING in poll.text

            busy = client.get(MODULES)
            assert 'id="change-under-way"' in busy.text
            assert re.search(r'id="enable-documents"\s+disabled', busy.text)
            refused = post(client, f"{MODULES}/documents/enable")
            assert refused.status_code == 409
            assert f"Job #{job_id} (enable modules) of Heron Club is under way" in text_of(refused.text)
        finally:
            gate.open()
        job = wait_until_finished(gated, job_id, timeout=60)
        assert job.status == JobStatus.SUCCEEDED, job.error
        done = client.get(f"{MODULES}/jobs/{job_id}", headers=HTMX)
        assert POLLING not in done.text and re.search(r'id="job-status">succeeded<', done.text)
        assert 'id="back-to-modules"' in done.text


GATED_UPGRADE = """
import asyncio
import os
import time
from pathlib import Path

from sqlalchemy.util import await_only

op.create_table("gate_readings", sa.Column("id", sa.Integer, primary_key=True))
gate = Path(os.environ["TENANTRY_TEST_GATE"])
Path(f"{gate}.reached").touch()
deadline = time.monotonic() + 60
while gate.exists():
    if time.monotonic() > deadline:
        raise RuntimeError("the gate was never opened")
    await_only(asyncio.sleep(0.05))
"""


# Refusals -----------------------------------------------------------------------------------------


@ON_SQLITE
def test_refusals_name_the_module_in_the_way_and_change_nothing(
    settings: Settings, heron: Credentials
) -> None:
    enable_now(settings, SLUG, "volunteering", "finance")
    before = (job_count(settings, SLUG), tenant(settings, SLUG).modules)
    with portal(settings) as client:
        signed_in(client, heron)
        page = client.get(MODULES)
        assert "Disable Volunteering first." in text_of(row(page.text, "events"))
        assert 'id="disable-events"' not in page.text
        assert "Simple ledger conflicts with Finance, which is enabled: disable Finance first." in text_of(
            row(page.text, "simple_ledger")
        )

        confirmation = client.get(f"{MODULES}/events/disable")
        assert confirmation.status_code == 409
        assert "Events is required by Volunteering, which is enabled: disable Volunteering first." in text_of(
            confirmation.text
        )
        assert 'id="disable-form"' not in confirmation.text

        refused = post(client, f"{MODULES}/events/disable", {"keep_data": "keep"})
        assert refused.status_code == 409
        assert "Events is required by Volunteering" in text_of(refused.text)

        refused = post(client, f"{MODULES}/simple_ledger/enable")
        assert refused.status_code == 409
        assert re.search(r'id="modules-error"><ul><li>Simple ledger conflicts with Finance', refused.text)
        assert 'class="in-the-way"' in row(refused.text, "finance")
        assert_no_trace(refused.text)

        unknown = post(client, f"{MODULES}/no_such_module/enable")
        assert unknown.status_code == 422
        assert "There is no module 'no_such_module': leave it out" in text_of(unknown.text)
        assert client.get(f"{MODULES}/no_such_module/disable").status_code == 404
        assert client.get(f"{MODULES}/documents/disable").status_code == 404, "documents is not enabled"

    assert (job_count(settings, SLUG), tenant(settings, SLUG).modules) == before, "nothing changed"


def problems_listed(page: str, element_id: str) -> list[str]:
    """The problems listed in the element, one per item."""
    match = re.search(rf'id="{element_id}".*?</ul>', page, re.DOTALL)
    assert match, f"the page lists no problems in #{element_id}"
    return [text_of(item) for item in re.findall(r"<li>(.*?)</li>", match.group(0), re.DOTALL)]


@ON_SQLITE
def test_every_reason_a_module_cannot_be_enabled_is_listed_at_once_by_title(
    settings: Settings, heron: Credentials
) -> None:
    enable_now(settings, SLUG, "finance")
    put_on_plan(settings, SLUG, "starter")
    reasons = [
        "Simple ledger conflicts with Finance, which is enabled: disable Finance first.",
        "The Starter plan allows 3 modules and 3 are enabled: enabling Simple ledger would make 4. "
        "Disable a module first, or ask for a larger plan.",
    ]
    before = (job_count(settings, SLUG), tenant(settings, SLUG).modules)
    with portal(settings) as client:
        signed_in(client, heron)
        page = client.get(MODULES)
        assert problems_listed(row(page.text, "simple_ledger"), "why-not-simple_ledger") == reasons

        refused = post(client, f"{MODULES}/simple_ledger/enable")
        assert refused.status_code == 409
        assert_no_trace(refused.text)
        assert problems_listed(refused.text, "modules-error") == reasons
        assert 'class="in-the-way"' in row(refused.text, "finance")

        client.cookies.clear()
        headers = {"Authorization": f"Bearer {add_token(settings, heron.email, SLUG)}"}
        wanted = ["events", "social_media", "finance", "simple_ledger"]
        api = client.put("/api/v1/tenant/modules", json={"modules": wanted}, headers=headers)
        assert api.status_code == 409
        assert api.json()["detail"].splitlines() == reasons
        assert api.json()["in_the_way"] == ["finance"]

    assert (job_count(settings, SLUG), tenant(settings, SLUG).modules) == before, "nothing changed"


@ON_SQLITE
def test_a_kept_module_is_listed_apart_and_comes_back_with_one_click(
    settings: Settings, heron: Credentials
) -> None:
    with portal(settings) as client:
        signed_in(client, heron)
        confirmation = client.get(f"{MODULES}/social_media/disable")
        assert 'id="keep-data"' in confirmation.text and 'id="drop-data"' in confirmation.text
        job_id = job_id_of(post(client, f"{MODULES}/social_media/disable", {"keep_data": "keep"}))
        assert wait_until_finished(settings, job_id, timeout=120).status == JobStatus.SUCCEEDED

        page = client.get(MODULES)
        assert status_of(page.text, "social_media") == "kept"
        kept = row(page.text, "social_media")
        assert "Enable again" in kept and 'id="drop-social_media"' in kept
        data = client.get(f"/t/{SLUG}/data")
        assert "social_posts" not in data.text, "the data pages hide kept tables"
        assert "venues" in data.text

        drop_only = client.get(f"{MODULES}/social_media/disable")
        assert 'id="keep-data"' not in drop_only.text and 'id="drop-data"' in drop_only.text

        job_id = job_id_of(post(client, f"{MODULES}/social_media/enable"))
        assert wait_until_finished(settings, job_id, timeout=60).status == JobStatus.SUCCEEDED
        assert status_of(client.get(MODULES).text, "social_media") == "enabled"
        assert "social_posts" in client.get(f"/t/{SLUG}/data").text


# The API ------------------------------------------------------------------------------------------


@ON_SQLITE
def test_the_api_refuses_with_the_module_in_the_way_and_queues_the_jobs_of_a_valid_set(
    settings: Settings, heron: Credentials
) -> None:
    enable_now(settings, SLUG, "volunteering")
    headers = {"Authorization": f"Bearer {add_token(settings, heron.email, SLUG)}"}
    jobs_before = job_count(settings, SLUG)
    with portal(settings) as client:
        overview = client.get("/api/v1/tenant/modules", headers=headers)
        assert overview.status_code == 200
        body = overview.json()
        assert (body["plan"]["key"], body["enabled"], body["kept"]) == (
            "standard",
            ["events", "social_media", "volunteering"],
            [],
        )
        events = next(module for module in body["modules"] if module["name"] == "events")
        assert (events["status"], events["version"], events["revision"]) == (
            "enabled",
            "1.1.0",
            "events_0002",
        )
        assert events["required_by"] == ["volunteering"]

        missing = client.put("/api/v1/tenant/modules", json={"modules": ["social_media"]}, headers=headers)
        assert missing.status_code == 422
        assert missing.json()["detail"].startswith("Say whether to keep the data of Volunteering and Events:")

        refused = client.put(
            "/api/v1/tenant/modules",
            json={"modules": ["volunteering", "social_media"], "keep_data": True},
            headers=headers,
        )
        assert refused.status_code == 409
        assert refused.json() == {
            "status_code": 409,
            "detail": "Events is required by Volunteering, which is enabled: disable Volunteering first.",
            "field": "modules",
            "in_the_way": ["volunteering"],
        }
        clash = client.put(
            "/api/v1/tenant/modules",
            json={"modules": ["events", "volunteering", "social_media", "finance", "simple_ledger"]},
            headers=headers,
        )
        assert clash.status_code == 409 and clash.json()["in_the_way"] == ["simple_ledger"]
        needs = client.put(
            "/api/v1/tenant/modules",
            json={"modules": ["election_campaign"], "keep_data": False},
            headers=headers,
        )
        assert needs.status_code == 422
        assert job_count(settings, SLUG) == jobs_before, "nothing recorded"

        same = client.put(
            "/api/v1/tenant/modules",
            json={"modules": ["events", "social_media", "volunteering"]},
            headers=headers,
        )
        assert same.status_code == 200 and same.json()["jobs"] == []

        accepted = client.put(
            "/api/v1/tenant/modules",
            json={"modules": ["events", "social_media", "documents"], "keep_data": True},
            headers=headers,
        )
        assert accepted.status_code == 202, accepted.text
        queued = accepted.json()["jobs"]
        assert [job["kind"] for job in queued] == ["disable_module", "enable_modules"]
        assert accepted.headers["location"] == f"/api/v1/jobs/{queued[-1]['id']}"
        for job in queued:
            assert wait_until_finished(settings, job["id"], timeout=120).status == JobStatus.SUCCEEDED
        followed = client.get(f"/api/v1/jobs/{queued[-1]['id']}", headers=headers)
        assert followed.status_code == 200 and followed.json()["status"] == "succeeded"
        after = client.get("/api/v1/tenant/modules", headers=headers).json()
        assert (after["enabled"], after["kept"]) == (
            ["documents", "events", "social_media"],
            ["volunteering"],
        )

    actions = audit_actions(settings, SLUG)
    assert [action for action, _ in actions] == ["module.disable", "module.enable"]
    assert actions[0][1]["module"] == "volunteering" and actions[0][1]["keep_data"] is True


# The landlord -------------------------------------------------------------------------------------


@ON_SQLITE
def test_the_landlord_sees_the_changes_in_the_tenants_job_history_with_its_plan(
    settings: Settings, heron: Credentials, superadmin: Credentials
) -> None:
    with portal(settings) as client:
        signed_in(client, heron)
        job_id = job_id_of(post(client, f"{MODULES}/documents/enable"))
        assert wait_until_finished(settings, job_id, timeout=60).status == JobStatus.SUCCEEDED

        signed_in(client, superadmin)
        page = client.get(f"/tenants/{SLUG}")

    assert page.status_code == 200
    assert re.search(r'id="tenant-plan">Standard', page.text)
    assert "documents, events, social_media" in text_of(page.text)
    history = re.search(r'<table id="job-history">(.*?)</table>', page.text, re.DOTALL)
    assert history, "the tenant page lists its jobs"
    rows = text_of(history.group(1))
    assert f"#{job_id} enable modules enable Documents succeeded" in rows
    assert "provision" in rows
