"""/api/v1/move-plans: a dry run names each tenant a fleet move takes, its rows and batch, and each
refusal with why, and records nothing; a started plan (201) moves its tenants batch after batch and
its report carries each move's figures; pause, resume and cancel answer with the plan and name the
token on the audit trail, a refusal being 409; mistakes are 422 naming each field; and only landlord
tokens may."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.models import AuditEntry, IsolationMode, MovePlan, MovePlanStatus, PlatformRole, TenantRole
from services.moves.plans import MovePlanSpec, plan_moves, start_plan
from services.moves.requests import MoveTarget
from services.selection import Selection
from services.settings import Settings
from tests.services.running import wait_for
from tests.support import Credentials, run_db
from tests.web.portal import add_tenant, add_token, add_user
from tests.web.tenant_world import add_rows, no_stores_left_behind, provision  # noqa: F401
from tests.web.test_api import assert_json_error, bearer
from tests.web.test_api_provisioning import errors_by_field
from tests.web.test_rollouts_pages import count
from tests.workers.support import tenant

PLANS = "/api/v1/move-plans"
#: Every tenant in a database of its own, one at a time into the shared store.
ONE_BY_ONE_TO_SHARED = {
    "isolation": "shared",
    "selection": {"isolation": ["database"]},
    "batch_size": 1,
    "concurrency": 1,
}
#: Most tests need no PostgreSQL: the first one, which moves tenants, runs on both backends.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def landlord_token(settings: Settings, superadmin: Credentials) -> str:
    return add_token(settings, superadmin.email)


def clubs(settings: Settings, venues: dict[str, list[str]]) -> None:
    """Tenants in databases of their own, provisioned as a worker builds them, with their venues."""
    for slug, names in venues.items():
        provision(settings, slug, modules=["events"])
        add_rows(settings, slug, "venues", [{"name": name} for name in names])


def report(client: TestClient[Any], token: str, plan_id: int) -> dict[str, Any]:
    response = client.get(f"{PLANS}/{plan_id}", headers=bearer(token))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def until_stopped(client: TestClient[Any], token: str, plan_id: int) -> dict[str, Any]:
    """The plan's report once it has stopped (finished, halted, ...), polled through the API."""

    def stopped() -> dict[str, Any] | None:
        body = report(client, token, plan_id)
        return body if body["status"] in MovePlanStatus.stopped() else None

    return wait_for(stopped, 120, what=f"move plan #{plan_id} to stop", interval=0.1)


def start_without_workers(settings: Settings, spec: MovePlanSpec) -> int:
    """A plan started with no worker to take its jobs: its first move stays under way."""

    async def work(session: AsyncSession) -> int:
        preview = await plan_moves(session, settings, spec)
        return (await start_plan(session, settings, preview, requested_by="ops@example.org")).id

    return run_db(settings, work)


def audit_trail(settings: Settings) -> list[tuple[str, str | None, dict[str, Any]]]:
    """The move plan entries on the audit trail, oldest first: (action, target, detail)."""

    async def work(session: AsyncSession) -> list[tuple[str, str | None, dict[str, Any]]]:
        entries = await session.scalars(
            select(AuditEntry).where(AuditEntry.action.startswith("moveplan.")).order_by(AuditEntry.seq)
        )
        return [(entry.action, entry.target, entry.detail) for entry in entries]

    return run_db(settings, work)


def test_a_landlord_token_dry_runs_starts_and_follows_a_fleet_move_into_the_shared_store(
    client: TestClient[Any], settings: Settings, superadmin: Credentials, landlord_token: str
) -> None:
    auth = bearer(landlord_token)
    clubs(settings, {"alder": ["Boat House", "Town Hall"], "birch": ["Barn"], "cedar": ["Lodge"]})
    suspended = client.post("/api/v1/tenants/cedar/suspend", json={"reason": "Unpaid"}, headers=auth)
    assert suspended.status_code == 201, suspended.text

    dry_run = client.post(f"{PLANS}/dry-run", json=ONE_BY_ONE_TO_SHARED, headers=auth)

    assert dry_run.status_code == 200, dry_run.text
    preview = dry_run.json()
    assert [(planned["slug"], planned["batch"]) for planned in preview["tenants"]] == [
        ("alder", 0),
        ("birch", 1),
    ]
    alder, birch = preview["tenants"]
    assert (alder["name"], alder["rows"]["venues"], birch["rows"]["venues"]) == ("Alder", 2, 1)
    assert alder["going"] == birch["going"] and alder["going"].startswith("the shared ")
    assert all(planned["total_rows"] == sum(planned["rows"].values()) for planned in preview["tenants"])
    assert preview["refused"] == [
        {"slug": "cedar", "why": "cedar is suspended; only an active tenant moves."}
    ]
    assert (preview["batches"], preview["total_rows"]) == (2, alder["total_rows"] + birch["total_rows"])
    assert (preview["target"], preview["selection"]) == ("shared", "isolation database")
    assert preview["throughput"]["measured_moves"] == 0 and preview["estimate_seconds"] > 0
    assert preview["throughput"]["summary"] == "guessed: no move has been measured here yet"
    assert count(settings, MovePlan) == 0 and audit_trail(settings) == []

    started = client.post(PLANS, json=ONE_BY_ONE_TO_SHARED, headers=auth)

    assert started.status_code == 201, started.text
    plan = started.json()
    assert started.headers["location"] == f"{PLANS}/{plan['id']}"
    assert (plan["isolation"], plan["selection"], plan["requested_by"]) == (
        "shared",
        {"isolation": ["database"]},
        superadmin.email,
    )
    assert [(row["slug"], row["batch"]) for row in plan["tenants"]] == [
        ("alder", 0),
        ("birch", 1),
        ("cedar", 2),
    ]
    assert plan["tenants"][2]["status"] == "refused"
    assert (
        plan["tenants"][2]["error"]
        == "Refused at the start: cedar is suspended; only an active tenant moves."
    )
    finished = until_stopped(client, landlord_token, plan["id"])
    assert (finished["status"], finished["note"]) == ("finished", None)
    assert finished["finished_at"] is not None
    assert finished["tenants_by_status"] == {"moved": 2, "refused": 1}
    moved = [row for row in finished["tenants"] if row["status"] == "moved"]
    assert [row["slug"] for row in moved] == ["alder", "birch"]
    for row, planned in zip(moved, preview["tenants"], strict=True):
        figures = row["move"]
        assert (figures["rows"], row["error"]) == (planned["total_rows"], None)
        assert figures["tables"] > 0 and figures["copy_ms"] >= 0 and figures["freeze_ms"] > 0
        assert row["started_at"] <= row["finished_at"]
        assert tenant(settings, row["slug"]).isolation == IsolationMode.SHARED
    assert moved[1]["started_at"] >= moved[0]["finished_at"], "one batch after the other"
    assert finished["rows_moved"] == preview["total_rows"]
    freezes = sorted(row["move"]["freeze_ms"] for row in moved)
    assert (finished["freeze_p50_ms"], finished["freeze_p95_ms"]) == (freezes[1], freezes[1])
    assert tenant(settings, "cedar").isolation == IsolationMode.DATABASE

    [listed] = client.get(PLANS, headers=auth).json()
    assert (listed["id"], listed["tenants_by_status"], listed["tenants"]) == (
        plan["id"],
        {"moved": 2, "refused": 1},
        None,
    )
    [(action, target, detail)] = audit_trail(settings)
    assert (action, target) == ("moveplan.start", f"move plan #{plan['id']}")
    assert landlord_token.startswith(detail["token"])
    again = client.post(f"{PLANS}/dry-run", json=ONE_BY_ONE_TO_SHARED, headers=auth).json()
    assert again["tenants"] == [] and again["throughput"]["measured_moves"] == 2
    assert again["throughput"]["summary"].startswith("from 2 move(s) measured here")


@SQLITE_ONLY
def test_pause_resume_and_cancel_answer_with_the_plan_and_a_refusal_is_409(
    client: TestClient[Any], settings: Settings, landlord_token: str
) -> None:
    auth = bearer(landlord_token)
    for slug in ("alder", "birch"):
        provision(settings, slug)
    spec = MovePlanSpec(Selection(), MoveTarget(IsolationMode.SHARED), batch_size=1, concurrency=1)
    plan_id = start_without_workers(settings, spec)
    path = f"{PLANS}/{plan_id}"

    paused = client.post(f"{path}/pause", headers=auth)

    assert (paused.status_code, paused.json()["status"]) == (200, "paused")
    refused = assert_json_error(client.post(f"{path}/pause", headers=auth), 409)
    assert refused["detail"] == f"Move plan #{plan_id} is paused; only a running plan pauses."
    resumed = client.post(f"{path}/resume", headers=auth)
    assert (resumed.status_code, resumed.json()["status"]) == (200, "running")
    assert_json_error(client.post(f"{path}/resume", headers=auth), 409)
    cancelled = client.post(f"{path}/cancel", headers=auth)

    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert {row["slug"]: row["status"] for row in cancelled.json()["tenants"]} == {
        "alder": "moving",  # its move's job: no worker took it
        "birch": "skipped",
    }
    assert cancelled.json()["tenants"][1]["error"] == "The plan was cancelled before its turn."
    assert (
        "cancelled already" in assert_json_error(client.post(f"{path}/cancel", headers=auth), 409)["detail"]
    )
    trail = audit_trail(settings)
    assert [(action, target) for action, target, _ in trail] == [
        ("moveplan.pause", f"move plan #{plan_id}"),
        ("moveplan.resume", f"move plan #{plan_id}"),
        ("moveplan.cancel", f"move plan #{plan_id}"),
    ]
    assert all(landlord_token.startswith(detail["token"]) for _, _, detail in trail)
    missing = assert_json_error(client.get(f"{PLANS}/999", headers=auth), 404)
    assert missing["detail"] == "There is no move plan #999."
    for change in ("pause", "resume", "cancel"):
        assert_json_error(client.post(f"{PLANS}/999/{change}", headers=auth), 404)


@SQLITE_ONLY
def test_a_plan_that_cannot_run_is_422_naming_each_field_and_nothing_to_move_is_409(
    client: TestClient[Any], settings: Settings, landlord_token: str
) -> None:
    auth = bearer(landlord_token)
    wrong = {
        "isolation": "moon",
        "server": "pg-z",
        "batch_size": 0,
        "concurrency": 0,
        "halt_after_failures": 0,
    }

    for route in (f"{PLANS}/dry-run", PLANS):
        named = errors_by_field(assert_json_error(client.post(route, json=wrong, headers=auth), 422))
        assert set(named) == {"isolation", "server", "batch_size", "concurrency", "halt_after_failures"}
        assert named["isolation"] == "Move to one of the isolation modes: database, schema, shared."
        assert named["batch_size"] == "Batch size must be at least 1."
    for body, field in [
        ({"isolation": "shared", "backend": "oracle"}, "backend"),
        ({"isolation": "shared", "batch_size": 2**40}, "batch_size"),
        ({}, "isolation"),
    ]:
        unread = assert_json_error(client.post(PLANS, json=body, headers=auth), 422)
        assert list(errors_by_field(unread)) == [field]
    nothing = assert_json_error(client.post(PLANS, json={"isolation": "shared"}, headers=auth), 409)
    assert nothing["detail"] == "Nothing to move: no selected tenant can move there."
    assert count(settings, MovePlan) == 0 and audit_trail(settings) == []


@SQLITE_ONLY
def test_only_a_landlord_token_of_the_platforms_staff_may(
    client: TestClient[Any], settings: Settings, superadmin: Credentials
) -> None:
    add_tenant(settings, "harbour-club")
    add_user(settings, "pat@harbour.example", TenantRole.TENANT_ADMIN, tenant_slug="harbour-club")
    add_user(settings, "lee@landlord.example", PlatformRole.LANDLORD_ADMIN)
    tenant_admins = bearer(add_token(settings, "pat@harbour.example", tenant_slug="harbour-club"))
    landlord_admins_for_a_tenant = bearer(
        add_token(settings, "lee@landlord.example", tenant_slug="harbour-club")
    )
    routes = [
        ("GET", PLANS),
        ("GET", f"{PLANS}/1"),
        ("POST", PLANS),
        ("POST", f"{PLANS}/dry-run"),
        ("POST", f"{PLANS}/1/pause"),
        ("POST", f"{PLANS}/1/resume"),
        ("POST", f"{PLANS}/1/cancel"),
    ]

    for method, path in routes:
        body = {"isolation": "shared"} if method == "POST" else None
        assert_json_error(client.request(method, path, json=body), 401)
        for refused in (tenant_admins, landlord_admins_for_a_tenant):
            assert_json_error(client.request(method, path, json=body, headers=refused), 403)

    landlord_admins = bearer(add_token(settings, "lee@landlord.example"))
    assert client.get(PLANS, headers=landlord_admins).json() == []
    assert count(settings, MovePlan) == 0
