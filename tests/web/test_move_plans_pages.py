"""Fleet move plans in the landlord portal: the form's dry run lists each tenant that would move with
its rows and batch, and each refused with why, and records nothing; started from that dry run, the
plan moves its tenants (the embedded worker runs their moves) and its page shows each one moved
with its figures; pausing, resuming and cancelling answer on the plan's page and are on the audit
trail; mistakes come back beside their fields; and the pages are landlord staff's alone."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.models import (
    AuditEntry,
    IsolationMode,
    Job,
    MovePlan,
    MovePlanStatus,
    PlatformRole,
    Tenant,
    TenantMove,
    TenantRole,
    TenantStatus,
)
from services.moves.plans import MovePlanSpec, plan_moves, start_plan
from services.moves.requests import MoveTarget
from services.selection import Selection
from services.settings import Settings
from tests.services.running import wait_for
from tests.support import post_form, run_db, signed_in
from tests.web.portal import HTMX, add_tenant, add_user, assert_no_trace, is_partial
from tests.web.tenant_world import (
    add_rows,
    no_stores_left_behind,  # noqa: F401  (autouse fixture)
    provision,
)
from tests.web.test_provisioning_pages import text_of
from tests.workers.support import tenant

#: A move copies each tenant through a verified portable backup: more than a page load.
MOVE_SECONDS = 120
STOPPED = {status.value for status in MovePlanStatus.stopped()}
#: The form as a landlord admin fills it in: the tenants in databases of their own, to the shared store.
TO_SHARED = {
    "isolation": "database",
    "to_isolation": "shared",
    "batch_size": "1",
    "concurrency": "2",
    "halt_after_failures": "1",
}


#: The form offers the kinds of store the installation has, and names them in its errors: these
#: tests read them as the embedded installation (SQLite) has them. The API's tests run a plan on
#: PostgreSQL (tests/web/test_api_move_plans.py), the services' on both.
ON_SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def suspend(settings: Settings, slug: str) -> None:
    statement = update(Tenant).where(Tenant.slug == slug).values(status=TenantStatus.SUSPENDED)
    run_db(settings, lambda session: session.execute(statement))


def count(settings: Settings, model: type[Any]) -> int:
    return run_db(settings, lambda session: session.scalar(select(func.count()).select_from(model))) or 0


def audit_trail(settings: Settings) -> list[tuple[str, str | None, dict[str, Any]]]:
    """The move plan entries on the audit trail, oldest first: (action, target, detail)."""

    async def work(session: AsyncSession) -> list[tuple[str, str | None, dict[str, Any]]]:
        entries = await session.scalars(
            select(AuditEntry).where(AuditEntry.action.startswith("moveplan.")).order_by(AuditEntry.seq)
        )
        return [(entry.action, entry.target, entry.detail) for entry in entries]

    return run_db(settings, work)


def moves_by_slug(settings: Settings) -> dict[str, TenantMove]:
    async def work(session: AsyncSession) -> dict[str, TenantMove]:
        found = await session.execute(
            select(Tenant.slug, TenantMove).join(Tenant, Tenant.id == TenantMove.tenant_id)
        )
        return {slug: move for slug, move in found}

    return run_db(settings, work)


def wait_until_stopped(settings: Settings, plan_id: int) -> str:
    """The plan's status once it has stopped (finished, halted, ...), read from the landlord."""

    def stopped() -> str | None:
        status = run_db(
            settings, lambda session: session.scalar(select(MovePlan.status).where(MovePlan.id == plan_id))
        )
        return status if status in STOPPED else None

    return wait_for(stopped, MOVE_SECONDS, what=f"move plan {plan_id} to stop", interval=0.2)


def start_without_workers(settings: Settings, spec: MovePlanSpec) -> int:
    """A plan started with no worker to take its jobs: its first moves stay moving."""

    async def work(session: AsyncSession) -> int:
        preview = await plan_moves(session, settings, spec)
        return (await start_plan(session, settings, preview, requested_by="ops@example.org")).id

    return run_db(settings, work)


# --- Reading pages -----------------------------------------------------------------------------


def batches(page: str) -> dict[int, dict[str, int]]:
    """A dry run's tenants by batch, each with its rows."""
    tables = re.findall(r'<table class="plan-batch" data-batch="(\d+)">(.*?)</table>', page, re.DOTALL)
    return {
        int(batch): {
            slug: int(rows)
            for slug, rows in re.findall(r'<tr data-tenant="([^"]+)" data-rows="(\d+)"', table)
        }
        for batch, table in tables
    }


def refused(page: str) -> dict[str, str]:
    section = page.split('id="preview-refused"')[1].split("</table>")[0]
    rows = re.findall(r'<tr data-tenant="([^"]+)">(.*?)</tr>', section, re.DOTALL)
    return {slug: text_of(row).removeprefix(slug).strip() for slug, row in rows}


def start_fields(page: str) -> dict[str, list[str]]:
    """What the dry run's "Start moving" button posts (its CSRF token aside)."""
    form = page.split('id="start-move-plan"')[1].split("</form>")[0]
    posted: dict[str, list[str]] = {}
    for name, value in re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', form):
        if name != "_csrf_token":
            posted.setdefault(name, []).append(html.unescape(value))
    return posted


def field_errors(page: str) -> dict[str, str]:
    found = re.findall(r'<small class="field-error" id="([a-z_]+)-error">(.*?)</small>', page, re.DOTALL)
    return {name: html.unescape(message).strip() for name, message in found}


def tenant_rows(page: str) -> dict[str, dict[str, str]]:
    """The plan page's tenants: slug -> status, and the cells of its row by column."""
    columns = ("tenant", "batch", "status", "rows", "copy", "held", "what")
    rows = re.findall(r'<tr data-tenant="([^"]+)" data-status="(\w+)">(.*?)</tr>', page, re.DOTALL)
    return {
        slug: {"status": status}
        | dict(
            zip(
                columns,
                (text_of(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.DOTALL)),
                strict=True,
            )
        )
        for slug, status, row in rows
    }


def plan_status(page: str) -> str:
    match = re.search(r'id="move-plan-status">(\w+)</span>', page)
    assert match, "the page shows no plan status"
    return match.group(1)


def fact(page: str, name: str) -> str:
    match = re.search(rf'id="move-plan-{name}">(.*?)</dd>', page, re.DOTALL)
    assert match, f"no {name} on the page"
    return text_of(match.group(1))


def post(client: TestClient[Any], path: str) -> Any:
    return post_form(client, path, {}, follow_redirects=False)


# --- A plan, from its dry run to its tenants moved ---------------------------------------------


@ON_SQLITE
def test_a_dry_run_lists_each_tenant_and_each_refusal_and_the_plan_started_from_it_moves_them(
    superadmin_client: TestClient[Any], settings: Settings
) -> None:
    client = superadmin_client
    for slug in ("alder-club", "birch-club", "cedar-club"):
        provision(settings, slug)
    add_rows(settings, "alder-club", "groups", [{"name": f"Group {number}"} for number in range(3)])
    suspend(settings, "cedar-club")
    listed = client.get("/move-plans")
    assert (
        'id="no-move-plans"' in listed.text and "moves many tenants to another kind of store" in listed.text
    )
    assert 'href="/move-plans/new"' in listed.text and 'href="/move-plans" aria-current="page"' in listed.text
    form = client.get("/move-plans/new")
    assert form.status_code == 200 and '<option value="shared"' in form.text
    assert '<option value="schema"' not in form.text, "only the kinds of store this installation has"
    jobs_before = count(settings, Job)

    dry_run = post_form(client, "/move-plans/dry-run", TO_SHARED)

    assert dry_run.status_code == 200, dry_run.text
    assert 'id="move-plan-form"' in dry_run.text, "the form, with its dry run below it"
    planned = batches(dry_run.text)
    assert list(planned) == [0, 1] and [list(tenants) for tenants in planned.values()] == [
        ["alder-club"],
        ["birch-club"],
    ]
    assert planned[0]["alder-club"] == planned[1]["birch-club"] + 3, "alder-club's three groups more"
    said = text_of(dry_run.text)
    assert "2 tenants to move in 2 batches of up to 1, 2 at a time" in said
    assert f"{planned[0]['alder-club'] + planned[1]['birch-club']:,} rows in all" in said
    assert "throughput guessed: no move has been measured here yet" in said
    assert "the shared SQLite store" in said and "groups" in said
    assert refused(dry_run.text) == {"cedar-club": "cedar-club is suspended; only an active tenant moves."}
    assert "Start moving 2 tenants" in said and "maintenance page" in said and "503" in said
    in_place = post_form(client, "/move-plans/dry-run", TO_SHARED, headers=HTMX)
    assert in_place.status_code == 200 and is_partial(in_place.text)
    assert batches(in_place.text) == planned
    assert (count(settings, MovePlan), count(settings, Job), count(settings, TenantMove)) == (
        0,
        jobs_before,
        0,
    )

    started = post_form(client, "/move-plans", start_fields(dry_run.text), follow_redirects=False)

    assert started.status_code == 303, started.text
    plan_id = int(started.headers["location"].removeprefix("/move-plans/"))
    assert wait_until_stopped(settings, plan_id) == MovePlanStatus.FINISHED
    page = client.get(f"/move-plans/{plan_id}").text
    assert plan_status(page) == "finished" and "hx-get" not in page.split('id="move-plan-progress"')[1]
    assert fact(page, "target") == "shared" and fact(page, "selection") == "isolation database"
    rows = tenant_rows(page)
    assert {slug: row["status"] for slug, row in rows.items()} == {
        "alder-club": "moved",
        "birch-club": "moved",
        "cedar-club": "refused",
    }
    moves = moves_by_slug(settings)
    for slug in ("alder-club", "birch-club"):
        move = moves[slug]
        assert move.rows and move.copy_ms is not None and move.freeze_ms is not None
        assert rows[slug]["rows"] == f"{move.rows:,}"
        assert rows[slug]["copy"] == f"{move.copy_ms / 1000:.1f} s"
        assert rows[slug]["held"] == f"{move.freeze_ms / 1000:.1f} s"
        assert tenant(settings, slug).isolation == IsolationMode.SHARED
    assert (
        rows["cedar-club"]["what"]
        == "Refused at the start: cedar-club is suspended; only an active tenant moves."
    )
    assert fact(page, "rows") == f"{sum(moves[slug].rows or 0 for slug in ('alder-club', 'birch-club')):,}"
    assert re.fullmatch(r"\d+\.\d s", fact(page, "freeze-p50")) and re.fullmatch(
        r"\d+\.\d s", fact(page, "freeze-p95")
    )
    assert 'href="/tenants/alder-club"' in page and "maintenance page" in page and "503" in page
    assert 'action="/move-plans/' not in page, "nothing to pause, resume or cancel"
    assert client.get(f"/move-plans/{plan_id}/progress", headers=HTMX).headers["hx-refresh"] == "true"
    [listed_row] = re.findall(
        rf'<tr data-plan="{plan_id}">(.*?)</tr>', client.get("/move-plans").text, re.DOTALL
    )
    assert text_of(listed_row).startswith(f"#{plan_id} shared finished moved 2 refused 1")
    assert [(action, target) for action, target, _ in audit_trail(settings)] == [
        ("moveplan.start", f"move plan #{plan_id}")
    ]


def test_pausing_resuming_and_cancelling_answer_on_the_plan_page_and_are_on_the_audit_trail(
    superadmin_client: TestClient[Any], settings: Settings
) -> None:
    client = superadmin_client
    for slug in ("alder-club", "birch-club"):
        provision(settings, slug)
    spec = MovePlanSpec(Selection(), MoveTarget(IsolationMode.SHARED), batch_size=1, concurrency=1)
    plan_id = start_without_workers(settings, spec)
    page = f"/move-plans/{plan_id}"

    shown = client.get(page).text
    assert plan_status(shown) == "running" and f'action="{page}/pause"' in shown
    progress = client.get(f"{page}/progress", headers=HTMX)
    assert is_partial(progress.text)
    assert f'hx-get="{page}/progress" hx-trigger="every 1s"' in progress.text
    assert {slug: row["status"] for slug, row in tenant_rows(progress.text).items()} == {
        "alder-club": "moving",
        "birch-club": "queued",
    }

    paused = post(client, f"{page}/pause")
    assert (paused.status_code, paused.headers["location"]) == (303, page)
    shown = client.get(page).text
    assert plan_status(shown) == "paused" and f'action="{page}/resume"' in shown
    assert f'hx-get="{page}/progress"' in shown, "alder-club is still moving: the page follows it"

    again = post(client, f"{page}/pause")
    assert again.status_code == 409
    assert f"Move plan #{plan_id} is paused; only a running plan pauses." in text_of(again.text)
    assert_no_trace(again.text)

    assert post(client, f"{page}/resume").status_code == 303
    assert plan_status(client.get(page).text) == "running"
    shown = client.get(page).text
    assert "Cancel this move plan…" in shown and f"Yes, cancel move plan #{plan_id}" in shown
    assert post(client, f"{page}/cancel").status_code == 303
    shown = client.get(page).text
    assert plan_status(shown) == "cancelled" and f'action="{page}/' not in shown
    assert {slug: row["status"] for slug, row in tenant_rows(shown).items()} == {
        "alder-club": "moving",
        "birch-club": "skipped",
    }
    assert post(client, f"{page}/cancel").status_code == 409
    assert [(action, target) for action, target, _ in audit_trail(settings)] == [
        ("moveplan.pause", f"move plan #{plan_id}"),
        ("moveplan.resume", f"move plan #{plan_id}"),
        ("moveplan.cancel", f"move plan #{plan_id}"),
    ]
    for path in ("/move-plans/999", "/move-plans/999/progress"):
        missing = client.get(path)
        assert missing.status_code == 404 and "There is no move plan #999." in missing.text, path
    assert post(client, "/move-plans/999/pause").status_code == 404


# --- Mistakes and refusals ---------------------------------------------------------------------


@ON_SQLITE
def test_a_form_with_mistakes_comes_back_with_each_field_named_and_nothing_starts(
    superadmin_client: TestClient[Any], settings: Settings
) -> None:
    client = superadmin_client
    add_tenant(settings, "harbour-club", "Harbour Club")  # registered, not provisioned: not active
    fields = {
        "tenants": "harbour-club, no-such-club",
        "to_isolation": "schema",
        "to_backend": "oracle",
        "batch_size": "a few",
        "concurrency": "0",
        "halt_after_failures": str(2**40),
    }

    for path in ("/move-plans/dry-run", "/move-plans"):
        response = post_form(client, path, fields)

        assert response.status_code == 400, path
        assert field_errors(response.text) == {
            "tenants": "There is no tenant no-such-club here.",
            "to_isolation": "Move to one of the isolation modes here: database, shared.",
            "to_backend": "There is no such backend here; the backends are: SQLite.",
            "batch_size": "Give a whole number.",
            "concurrency": "Concurrency must be at least 1.",
            "halt_after_failures": "At most 2147483647.",
        }, path
        assert 'name="batch_size" value="a few"' in response.text, "as typed"
        assert 'name="tenants" value="harbour-club, no-such-club"' in response.text
        assert_no_trace(response.text)

    in_place = post_form(client, "/move-plans/dry-run", {**fields, "to_isolation": ""}, headers=HTMX)
    assert in_place.status_code == 422 and is_partial(in_place.text)  # the status the portal's HTMX swaps in
    assert in_place.text.lstrip().startswith('<section id="move-plan-planner">')
    assert field_errors(in_place.text)["to_isolation"] == "Choose the isolation mode the tenants move to."

    nothing = post_form(client, "/move-plans", {**TO_SHARED, "isolation": [], "tenants": "harbour-club"})
    assert nothing.status_code == 409
    said = text_of(nothing.text)
    assert "Nothing to move: no selected tenant can move there (1 refused; the dry run says why)." in said
    assert refused(nothing.text) == {
        "harbour-club": "harbour-club is provisioning; only an active tenant moves."
    }
    assert_no_trace(nothing.text)
    assert (count(settings, MovePlan), count(settings, TenantMove)) == (0, 0)
    assert audit_trail(settings) == []


@pytest.mark.parametrize("role", [TenantRole.TENANT_ADMIN, TenantRole.TENANT_MEMBER])
def test_tenant_people_and_signed_out_visitors_are_refused_move_plans(
    client: TestClient[Any], settings: Settings, role: str
) -> None:
    add_tenant(settings, "harbour-club", "Harbour Club")
    paths = ("/move-plans", "/move-plans/new", "/move-plans/1", "/move-plans/1/progress")

    for path in paths:
        response = client.get(path, follow_redirects=False)
        assert response.headers["location"] == f"/login?next={path}", path
    assert post_form(client, "/move-plans", TO_SHARED, follow_redirects=False).status_code in (302, 303)

    signed_in(client, add_user(settings, "pat@harbour.example", role, tenant_slug="harbour-club"))
    for path in paths:
        assert client.get(path).status_code == 403, path
    for path in ("/move-plans", "/move-plans/dry-run", "/move-plans/1/pause", "/move-plans/1/cancel"):
        assert post_form(client, path, TO_SHARED).status_code == 403, path
    assert 'href="/move-plans"' not in client.get("/").text

    signed_in(client, add_user(settings, "lee@landlord.example", PlatformRole.LANDLORD_ADMIN))
    assert client.get("/move-plans").status_code == 200 and client.get("/move-plans/new").status_code == 200
    assert count(settings, MovePlan) == 0
