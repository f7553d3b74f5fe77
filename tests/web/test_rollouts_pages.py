"""Fleet rollouts in the landlord portal: a new revision shows the tenants behind on the fleet page;
a dry run lists, wave by wave, the tenants it would move and those it refuses, and changes nothing;
a started rollout brings the tenants to the head; pausing, resuming and cancelling answer on the
rollout's page and go on the audit trail, a refusal said there (409); mistakes come back beside
their fields; and the pages are landlord staff's alone."""

from __future__ import annotations

import asyncio
import html
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.models import (
    AuditEntry,
    DriftCheck,
    Job,
    Rollout,
    RolloutStatus,
    Tenant,
    TenantRole,
    TenantStatus,
)
from services.rollouts import runs
from services.rollouts.plans import RolloutSpec, plan_rollout
from services.settings import Settings
from services.tenancy.stores import location_of
from tests.services.provisioning.installation import copy_layers, execute, write_revision
from tests.services.running import wait_for
from tests.support import installation_settings, post_form, run_db, signed_in
from tests.web.portal import HTMX, add_tenant, add_user, assert_no_trace, is_partial
from tests.web.tenant_world import (
    no_stores_left_behind,  # noqa: F401  (autouse fixture)
    provision,
)
from tests.web.test_provisioning_pages import text_of

EVENTS = "modules/events"
STOPPED = {status.value for status in RolloutStatus.stopped()}


def with_own_layers(tmp_path: Path, database_url: str) -> Settings:
    """An installation whose layers are a copy the test adds a revision to."""
    return replace(installation_settings(tmp_path / "data", database_url), layers_dir=copy_layers(tmp_path))


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return with_own_layers(tmp_path, database_url)


def add_events_revision(settings: Settings) -> None:
    """events_0003 appears, as a developer writes it: one more column."""
    write_revision(
        settings.layers_dir / "modules" / "events",
        "events_0003",
        "events_0002",
        "Dress code",
        'op.add_column("events", sa.Column("dress_code", sa.String(100)))',
        'with op.batch_alter_table("events", recreate="never") as batch:\n    batch.drop_column("dress_code")',
    )


def suspend(settings: Settings, slug: str) -> None:
    statement = update(Tenant).where(Tenant.slug == slug).values(status=TenantStatus.SUSPENDED)
    run_db(settings, lambda session: session.execute(statement))


def start_without_workers(settings: Settings, spec: RolloutSpec) -> int:
    """A rollout started with no worker to take its jobs: its canary stays migrating."""

    async def work(session: AsyncSession) -> int:
        plan = await plan_rollout(session, settings, spec)
        return (await runs.start_rollout(session, plan, requested_by="ops@example.org")).id

    return run_db(settings, work)


def wait_until_stopped(settings: Settings, rollout_id: int) -> str:
    """The rollout's status once it has stopped (finished, halted, ...): read from the landlord."""

    def stopped() -> str | None:
        status = run_db(
            settings, lambda session: session.scalar(select(Rollout.status).where(Rollout.id == rollout_id))
        )
        return status if status in STOPPED else None

    return wait_for(stopped, 60, what=f"rollout {rollout_id} to stop", interval=0.1)


def audit_trail(settings: Settings) -> list[tuple[str, str | None, dict[str, Any]]]:
    """The rollout entries on the audit trail, oldest first: (action, target, detail)."""

    async def work(session: AsyncSession) -> list[tuple[str, str | None, dict[str, Any]]]:
        entries = await session.scalars(
            select(AuditEntry).where(AuditEntry.action.startswith("rollout.")).order_by(AuditEntry.seq)
        )
        return [(entry.action, entry.target, entry.detail) for entry in entries]

    return run_db(settings, work)


def count(settings: Settings, model: type[Any]) -> int:
    return run_db(settings, lambda session: session.scalar(select(func.count()).select_from(model))) or 0


# --- Reading pages -----------------------------------------------------------------------------


def form_as_rendered(client: TestClient[Any]) -> dict[str, str]:
    """The new-rollout form's numbers as the page fills them in."""
    return dict(
        re.findall(r'<input type="number" name="(\w+)" value="([^"]*)"', client.get("/rollouts/new").text)
    )


def field_errors(page: str) -> dict[str, str]:
    found = re.findall(r'<small class="field-error" id="([a-z_]+)-error">(.*?)</small>', page, re.DOTALL)
    return {name: html.unescape(message).strip() for name, message in found}


def tenants_behind(page: str) -> dict[str, list[str]]:
    """The fleet's tenants behind: slug -> each lagging layer, "layer: at → head"."""
    rows = re.findall(r'<tr data-tenant="([^"]+)">(.*?)</tr>', page, re.DOTALL)
    return {
        slug: [text_of(lag) for lag in re.findall(r"<li data-lag[^>]*>(.*?)</li>", row)] for slug, row in rows
    }


def waves(page: str) -> dict[int, list[str]]:
    """A plan's or a rollout's tenants by wave."""
    tables = re.findall(
        r'<table class="(?:plan|rollout)-wave" data-wave="(\d+)">(.*?)</table>', page, re.DOTALL
    )
    return {int(wave): re.findall(r'<tr data-tenant="([^"]+)"', table) for wave, table in tables}


def tenant_statuses(page: str) -> dict[str, str]:
    return dict(re.findall(r'<tr data-tenant="([^"]+)" data-status="(\w+)">', page))


def rollout_status(page: str) -> str:
    match = re.search(r'id="rollout-status">(\w+)</span>', page)
    assert match, "the page shows no rollout status"
    return match.group(1)


def post(client: TestClient[Any], path: str) -> Any:
    return post_form(client, path, {}, follow_redirects=False)


# --- The fleet, a dry run, a rollout -----------------------------------------------------------


def test_a_new_revision_shows_who_is_behind_and_a_rollout_planned_then_started_brings_them_to_it(
    superadmin_client: TestClient[Any], settings: Settings
) -> None:
    client = superadmin_client
    for slug in ("harbour-club", "reed-club", "quay-club"):
        provision(settings, slug, modules=["events"])
    provision(settings, "moor-club")  # no events: nothing to move
    assert "Every tenant is at its layers' heads." in client.get("/fleet").text

    add_events_revision(settings)
    suspend(settings, "quay-club")
    fleet = client.get("/fleet")

    assert fleet.status_code == 200
    lag = ["modules/events: events_0002 → events_0003"]
    assert tenants_behind(fleet.text) == {"harbour-club": lag, "quay-club": lag, "reed-club": lag}
    assert 'data-behind="3">3 behind</span>' in fleet.text
    assert 'href="/tenants/harbour-club"' in fleet.text and 'href="/rollouts/new"' in fleet.text

    fields = {**form_as_rendered(client), "layer": EVENTS}
    jobs_before = count(settings, Job)
    dry_run = post_form(client, "/rollouts/plan", fields, headers=HTMX)

    assert dry_run.status_code == 200, dry_run.text
    assert is_partial(dry_run.text)
    assert waves(dry_run.text) == {0: ["harbour-club"], 1: ["reed-club"]}  # a canary, then the rest
    assert '<li data-step="events_0003">modules/events <code>events_0003</code> up</li>' in dry_run.text
    summary = text_of(dry_run.text)
    assert "2 tenants to move in 2 waves" in summary and "1 at the target already" in summary
    assert "quay-club the tenant is suspended" in summary
    without_htmx = post_form(client, "/rollouts/plan", fields)
    assert 'id="rollout-form"' in without_htmx.text and waves(without_htmx.text) == waves(dry_run.text)
    assert (count(settings, Rollout), count(settings, Job)) == (0, jobs_before)  # a dry run changes nothing

    started = post_form(client, "/rollouts", fields, follow_redirects=False)

    assert started.status_code == 303, started.text
    rollout_id = int(started.headers["location"].removeprefix("/rollouts/"))
    assert wait_until_stopped(settings, rollout_id) == RolloutStatus.FINISHED
    page = client.get(f"/rollouts/{rollout_id}")
    assert rollout_status(page.text) == "finished"
    assert tenant_statuses(page.text) == {
        "harbour-club": "succeeded",
        "reed-club": "succeeded",
        "quay-club": "refused",
    }
    assert "Refused at the start: the tenant is suspended." in page.text
    assert client.get(f"/rollouts/{rollout_id}/progress", headers=HTMX).headers["hx-refresh"] == "true"
    assert list(tenants_behind(client.get("/fleet").text)) == ["quay-club"]  # moved when it is active again
    assert audit_trail(settings) == [
        (
            "rollout.start",
            f"rollout #{rollout_id}",
            {"target": "modules/events to its head", "selection": "every tenant", "tenants": 2},
        )
    ]


def test_pausing_resuming_and_cancelling_answer_on_the_rollout_page_and_are_on_the_audit_trail(
    superadmin_client: TestClient[Any], settings: Settings
) -> None:
    client = superadmin_client
    for slug in ("harbour-club", "reed-club"):
        provision(settings, slug, modules=["events"])
    add_events_revision(settings)
    rollout_id = start_without_workers(settings, RolloutSpec(layer=EVENTS))
    page = f"/rollouts/{rollout_id}"

    progress = client.get(f"{page}/progress", headers=HTMX)
    assert is_partial(progress.text)
    assert f'hx-get="{page}/progress" hx-trigger="every 1s"' in progress.text  # it follows the canary
    assert tenant_statuses(progress.text) == {"harbour-club": "running", "reed-club": "queued"}
    assert f'action="{page}/pause"' in client.get(page).text

    paused = post(client, f"{page}/pause")
    assert (paused.status_code, paused.headers["location"]) == (303, page)
    shown = client.get(page).text
    assert rollout_status(shown) == "paused" and f'action="{page}/resume"' in shown

    again = post(client, f"{page}/pause")
    assert again.status_code == 409
    assert f"Rollout #{rollout_id} is paused; only a running rollout pauses." in again.text
    assert rollout_status(again.text) == "paused"
    assert_no_trace(again.text)

    assert post(client, f"{page}/resume").status_code == 303
    assert rollout_status(client.get(page).text) == "running"
    still_moving = post(client, f"{page}/rollback")
    assert still_moving.status_code == 409
    assert "still has tenants migrating" in still_moving.text

    assert post(client, f"{page}/cancel").status_code == 303
    shown = client.get(page).text
    assert rollout_status(shown) == "cancelled"
    assert tenant_statuses(shown) == {"harbour-club": "running", "reed-club": "skipped"}
    assert f'<tr data-rollout="{rollout_id}">' in client.get("/rollouts").text

    assert [(action, target) for action, target, _ in audit_trail(settings)] == [
        ("rollout.pause", f"rollout #{rollout_id}"),
        ("rollout.resume", f"rollout #{rollout_id}"),
        ("rollout.cancel", f"rollout #{rollout_id}"),
    ]
    for method, path in [
        ("GET", "/rollouts/999"),
        ("POST", "/rollouts/999/pause"),
        ("GET", "/rollouts/999/progress"),
    ]:
        response = post(client, path) if method == "POST" else client.get(path)
        assert response.status_code == 404, path
        assert "There is no rollout #999." in response.text


# --- Mistakes and refusals ---------------------------------------------------------------------


def test_a_form_with_mistakes_comes_back_with_each_field_named_and_nothing_starts(
    superadmin_client: TestClient[Any], settings: Settings
) -> None:
    client = superadmin_client
    fields = {
        **form_as_rendered(client),
        "revision": "events_0003",
        "canary": "a few",
        "halt_failure_percent": "250",
        "lock_timeout_ms": str(2**40),
    }

    response = post_form(client, "/rollouts", fields)

    assert response.status_code == 400
    assert field_errors(response.text) == {
        "revision": "A revision belongs to one layer: name the layer too.",
        "canary": "Give a whole number.",
        "halt_failure_percent": "Halt at a percentage from 1 to 100, or leave it empty.",
        "lock_timeout_ms": "At most 2147483647.",
    }
    assert 'name="canary" value="a few"' in response.text  # as typed
    assert_no_trace(response.text)

    dry_run = post_form(client, "/rollouts/plan", fields, headers=HTMX)
    assert dry_run.status_code == 422  # the status the portal's HTMX swaps in
    assert set(re.findall(r'data-field="(\w+)"', dry_run.text)) == {
        "revision",
        "canary",
        "halt_failure_percent",
        "lock_timeout_ms",
    }

    nothing_to_do = post_form(client, "/rollouts", form_as_rendered(client))
    assert nothing_to_do.status_code == 409
    assert "Nothing to roll out: every selected tenant is at its target, or refused." in nothing_to_do.text
    assert count(settings, Rollout) == 0


@pytest.mark.parametrize("role", [TenantRole.TENANT_ADMIN, TenantRole.TENANT_MEMBER])
def test_tenant_people_are_refused_the_fleet_and_rollouts(
    client: TestClient[Any], settings: Settings, role: str
) -> None:
    add_tenant(settings, "harbour-club", "Harbour Club")
    signed_in(client, add_user(settings, "pat@harbour.example", role, tenant_slug="harbour-club"))

    for path in ("/fleet", "/rollouts", "/rollouts/new", "/rollouts/1"):
        assert client.get(path).status_code == 403, path
    assert post_form(client, "/rollouts", {"layer": EVENTS}).status_code == 403
    assert 'href="/fleet"' not in client.get("/").text


# --- Drift -------------------------------------------------------------------------------------


def test_a_tenant_changed_by_hand_shows_as_drifted_on_its_page_and_on_the_fleet(
    superadmin_client: TestClient[Any], settings: Settings
) -> None:
    client = superadmin_client
    for slug in ("harbour-club", "reed-club"):
        provision(settings, slug, modules=["events"])
    assert "Not checked yet." in client.get("/tenants/harbour-club").text
    harbour = run_db(
        settings, lambda session: session.scalar(select(Tenant).where(Tenant.slug == "harbour-club"))
    )
    assert harbour is not None
    asyncio.run(execute(location_of(settings, harbour), "CREATE INDEX ix_events_by_hand ON events (title)"))

    asked = post(client, "/tenants/harbour-club/drift")
    assert (asked.status_code, asked.headers["location"]) == (303, "/tenants/harbour-club")
    wait_for(lambda: count(settings, DriftCheck) == 1, 60, what="the tenant's drift check", interval=0.1)

    page = client.get("/tenants/harbour-club").text
    assert "drifted" in page and "ix_events_by_hand" in html.unescape(page)
    fleet = post(client, "/fleet/drift")  # the whole fleet, this time
    assert fleet.status_code == 303 and fleet.headers["location"].startswith("/fleet?drift_job=")
    assert "Drift check asked for" in client.get(fleet.headers["location"]).text
    wait_for(lambda: count(settings, DriftCheck) == 3, 60, what="the fleet's drift check", interval=0.1)
    shown = client.get("/fleet").text
    assert re.search(r"<title>Fleet[^<]*</title>", shown), "the page's title is its name alone"
    assert 'id="tenants-drifted"' in shown and 'data-tenant="harbour-club"' in shown
    assert 'data-tenant="reed-club"' not in shown.split('id="tenants-drifted"')[1]
    assert "as its layers make it" in client.get("/tenants/reed-club").text
