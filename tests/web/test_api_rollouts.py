"""/api/v1 for fleet rollouts: the fleet says who is behind a new revision; a dry run answers the
plan and changes nothing; a started rollout (201) brings the tenants to the head and its rollback
(201) takes them back; pause, resume and cancel answer with the rollout and name the token on the
audit trail, a refusal being 409; mistakes are 422 naming each field; and only landlord tokens may."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.models import AuditEntry, Rollout, RolloutStatus, Tenant, TenantRole
from services.rollouts.plans import RolloutSpec
from services.settings import Settings
from services.tenancy.stores import location_of
from tests.services.provisioning.installation import execute
from tests.services.running import wait_for
from tests.support import Credentials, run_db
from tests.web.portal import add_tenant, add_token, add_user
from tests.web.tenant_world import (
    no_stores_left_behind,  # noqa: F401  (autouse fixture)
    provision,
)
from tests.web.test_api import assert_json_error, bearer
from tests.web.test_rollouts_pages import (
    EVENTS,
    add_events_revision,
    audit_trail,
    count,
    start_without_workers,
    wait_until_stopped,
    with_own_layers,
)

TENANTS = ["harbour-club", "reed-club"]
#: The events layer of the two tenants, to its head.
EVENTS_OF_BOTH = {"layer": EVENTS, "selection": {"tenants": TENANTS}}


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return with_own_layers(tmp_path, database_url)


@pytest.fixture
def landlord_token(settings: Settings, superadmin: Credentials) -> str:
    return add_token(settings, superadmin.email)


@pytest.fixture
def behind(settings: Settings) -> list[str]:
    """Two tenants with the events module, and a revision of it they do not have yet."""
    for slug in TENANTS:
        provision(settings, slug, modules=["events"])
    add_events_revision(settings)
    return TENANTS


def fleet_behind(client: TestClient[Any], token: str) -> dict[str, list[tuple[str, str | None, str | None]]]:
    response = client.get("/api/v1/fleet", headers=bearer(token))
    assert response.status_code == 200, response.text
    return {
        lag["slug"]: [(layer["layer"], layer["at"], layer["head"]) for layer in lag["layers"]]
        for lag in response.json()["behind"]
    }


def errors_by_field(response: Any) -> dict[str, str]:
    body = assert_json_error(response, 422)
    return {error["field"]: error["message"] for error in body["errors"]}


def test_a_landlord_token_plans_starts_follows_and_rolls_back_a_rollout(
    client: TestClient[Any], settings: Settings, landlord_token: str, behind: list[str]
) -> None:
    auth = bearer(landlord_token)
    lag = [(EVENTS, "events_0002", "events_0003")]
    assert fleet_behind(client, landlord_token) == {"harbour-club": lag, "reed-club": lag}
    events = next(
        layer
        for layer in client.get("/api/v1/fleet", headers=auth).json()["layers"]
        if layer["key"] == EVENTS
    )
    assert (events["head"], events["behind"], events["tenants_at"]) == (
        "events_0003",
        2,
        [{"revision": "events_0002", "tenants": 2}],
    )

    plan = client.post("/api/v1/rollouts/plan", json=EVENTS_OF_BOTH, headers=auth)

    assert plan.status_code == 200, plan.text
    body = plan.json()
    assert [(tenant["slug"], tenant["wave"]) for tenant in body["tenants"]] == [
        ("harbour-club", 0),
        ("reed-club", 1),
    ]
    assert [(step["revision"], step["direction"]) for step in body["tenants"][0]["steps"]] == [
        ("events_0003", "up")
    ]
    assert (body["refused"], body["at_target"], body["waves"]) == ([], 0, 2)
    assert count(settings, Rollout) == 0

    started = client.post("/api/v1/rollouts", json=EVENTS_OF_BOTH, headers=auth)

    assert started.status_code == 201, started.text
    rollout = started.json()
    assert started.headers["location"] == f"/api/v1/rollouts/{rollout['id']}"
    assert (rollout["target"], rollout["selection"]) == ("modules/events to its head", {"tenants": TENANTS})
    assert [tenant["tenant"] for tenant in rollout["tenants"]] == TENANTS
    assert wait_until_stopped(settings, rollout["id"]) == RolloutStatus.FINISHED
    finished = client.get(f"/api/v1/rollouts/{rollout['id']}", headers=auth).json()
    assert finished["tenants_by_status"] == {"succeeded": 2}
    assert {
        (row["started_at_revisions"][EVENTS], row["target_revisions"][EVENTS]) for row in finished["tenants"]
    } == {("events_0002", "events_0003")}
    assert fleet_behind(client, landlord_token) == {}

    back = client.post(f"/api/v1/rollouts/{rollout['id']}/rollback", headers=auth)

    assert back.status_code == 201, back.text
    assert back.json()["rollback_of"] == rollout["id"]
    assert back.json()["target"] == f"its tenants back to where rollout #{rollout['id']} found them"
    assert wait_until_stopped(settings, back.json()["id"]) == RolloutStatus.FINISHED
    assert fleet_behind(client, landlord_token) == {"harbour-club": lag, "reed-club": lag}
    listed = client.get("/api/v1/rollouts", headers=auth).json()
    assert [(item["id"], item["tenants"]) for item in listed] == [
        (back.json()["id"], None),
        (rollout["id"], None),
    ]
    trail = audit_trail(settings)
    assert [action for action, _, _ in trail] == ["rollout.start", "rollout.rollback"]
    assert all(landlord_token.startswith(detail["token"]) for _, _, detail in trail)  # the token is named


def test_pause_resume_and_cancel_answer_with_the_rollout_and_a_refusal_is_409(
    client: TestClient[Any], settings: Settings, landlord_token: str, behind: list[str]
) -> None:
    auth = bearer(landlord_token)
    rollout_id = start_without_workers(settings, RolloutSpec(layer=EVENTS))
    path = f"/api/v1/rollouts/{rollout_id}"

    paused = client.post(f"{path}/pause", headers=auth)
    assert (paused.status_code, paused.json()["status"]) == (200, "paused")
    refused = assert_json_error(client.post(f"{path}/pause", headers=auth), 409)
    assert refused["detail"] == f"Rollout #{rollout_id} is paused; only a running rollout pauses."
    assert client.post(f"{path}/resume", headers=auth).json()["status"] == "running"
    assert (
        "still has tenants migrating"
        in assert_json_error(client.post(f"{path}/rollback", headers=auth), 409)["detail"]
    )
    cancelled = client.post(f"{path}/cancel", headers=auth)

    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert {row["tenant"]: row["status"] for row in cancelled.json()["tenants"]} == {
        "harbour-club": "running",  # its canary's job: no worker took it
        "reed-club": "skipped",
    }
    assert [(action, target) for action, target, _ in audit_trail(settings)] == [
        ("rollout.pause", f"rollout #{rollout_id}"),
        ("rollout.resume", f"rollout #{rollout_id}"),
        ("rollout.cancel", f"rollout #{rollout_id}"),
    ]
    assert all(landlord_token.startswith(detail["token"]) for _, _, detail in audit_trail(settings))
    assert (
        assert_json_error(client.get("/api/v1/rollouts/999", headers=auth), 404)["detail"]
        == "There is no rollout #999."
    )
    assert_json_error(client.post("/api/v1/rollouts/999/cancel", headers=auth), 404)


def test_a_rollout_that_cannot_run_is_422_naming_each_field_and_nothing_to_do_is_409(
    client: TestClient[Any], settings: Settings, landlord_token: str
) -> None:
    auth = bearer(landlord_token)

    wrong = client.post(
        "/api/v1/rollouts",
        json={"layer": "modules/nope", "canary": -1, "halt_after_failures": 0},
        headers=auth,
    )
    assert errors_by_field(wrong) == {
        "layer": "There is no layer 'modules/nope'; layers are named like basic, templates/x or modules/x.",
        "canary": "Canary must be at least 0.",
        "halt_after_failures": "Halt after at least one failed tenant, or leave it empty.",
    }
    assert set(
        errors_by_field(client.post("/api/v1/rollouts/plan", json={"revision": "events_0003"}, headers=auth))
    ) == {"revision"}
    assert set(errors_by_field(client.post("/api/v1/rollouts", json={"wave_size": 2**40}, headers=auth))) == {
        "wave_size"
    }
    nothing = assert_json_error(client.post("/api/v1/rollouts", json={}, headers=auth), 409)
    assert nothing["detail"] == "Nothing to roll out: every selected tenant is at its target, or refused."
    assert count(settings, Rollout) == 0


def test_a_tenant_token_is_refused(
    client: TestClient[Any], settings: Settings, superadmin: Credentials
) -> None:
    add_tenant(settings, "harbour-club")
    add_user(settings, "pat@harbour.example", TenantRole.TENANT_ADMIN, tenant_slug="harbour-club")
    auth = bearer(add_token(settings, "pat@harbour.example", tenant_slug="harbour-club"))

    for method, path in [("GET", "/api/v1/fleet"), ("GET", "/api/v1/rollouts"), ("POST", "/api/v1/rollouts")]:
        response = client.request(method, path, json={} if method == "POST" else None, headers=auth)
        assert_json_error(response, 403)


def test_a_drift_check_through_the_api_finds_a_change_by_hand_and_a_rollout_refuses_that_tenant_unless_forced(
    client: TestClient[Any], settings: Settings, landlord_token: str, behind: list[str]
) -> None:
    auth = bearer(landlord_token)
    harbour = run_db(
        settings, lambda session: session.scalar(select(Tenant).where(Tenant.slug == "harbour-club"))
    )
    assert harbour is not None
    asyncio.run(execute(location_of(settings, harbour), "ALTER TABLE events ADD COLUMN secret_notes TEXT"))

    asked = client.post("/api/v1/fleet/drift", headers=auth)
    assert asked.status_code == 202, asked.text
    job = asked.json()
    assert (asked.headers["location"], job["kind"]) == (f"/api/v1/jobs/{job['id']}", "drift_check")
    wait_for(
        lambda: client.get(asked.headers["location"], headers=auth).json()["status"] == "succeeded",
        60,
        what="the drift check to run",
        interval=0.1,
    )

    [drifted] = client.get("/api/v1/fleet", headers=auth).json()["drifted"]
    assert drifted["slug"] == "harbour-club"
    assert "column events.secret_notes is there but no layer makes it" in drifted["differences"]
    plan = client.post("/api/v1/rollouts/plan", headers=auth, json=EVENTS_OF_BOTH).json()
    assert [tenant["slug"] for tenant in plan["tenants"]] == ["reed-club"]
    assert [refusal["slug"] for refusal in plan["refused"]] == ["harbour-club"]
    assert "its schema has drifted" in plan["refused"][0]["why"]
    forced = client.post("/api/v1/rollouts/plan", headers=auth, json={**EVENTS_OF_BOTH, "force": True}).json()
    assert sorted(tenant["slug"] for tenant in forced["tenants"]) == TENANTS
    assert ("drift.check", None) in [(action, target) for action, target, _ in audit_trail_all(settings)]


def audit_trail_all(settings: Settings) -> list[tuple[str, str | None, dict[str, Any]]]:
    async def work(session: AsyncSession) -> list[tuple[str, str | None, dict[str, Any]]]:
        entries = await session.scalars(select(AuditEntry).order_by(AuditEntry.seq))
        return [(entry.action, entry.target, entry.detail) for entry in entries]

    return run_db(settings, work)
