"""/api/v1/tenants/{slug}/moves: a landlord token moves a tenant into the shared store and back (202,
a job to follow), the answers carry the figures and the tenant's rows come through intact; a move
while one is under way and a move back of anything but the latest move are conflicts (409); bad
input is named by field (422); unknown tenants and moves are 404; only landlord tokens move."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from services.models import IsolationMode
from services.moves.requests import BACKEND_NAMES, MOVE_BACK_STEP_NAMES, MOVE_STEP_NAMES
from services.moves.steps import MOVE_STEPS
from services.settings import Settings
from services.tenancy.stores import SQLITE
from tests.services.running import wait_for
from tests.support import Credentials
from tests.web.portal import add_token
from tests.web.tenant_world import add_admin, add_rows, no_stores_left_behind, provision  # noqa: F401
from tests.web.test_api import assert_json_error, bearer
from tests.web.test_api_provisioning import errors_by_field, follow
from tests.workers.gate import reached
from tests.workers.restore_gate import hold_restore_at
from tests.workers.support import tenant

SLUG = "harbour-club"
VENUES = ["Boat House", "Harbour Hall", "Town Hall"]
MOVES = f"/api/v1/tenants/{SLUG}/moves"


@pytest.fixture
def landlord_token(settings: Settings, superadmin: Credentials) -> str:
    return add_token(settings, superadmin.email)


@pytest.fixture
def harbour_token(settings: Settings, superadmin: Credentials) -> str:
    """A tenant admin's token, for harbour-club: provisioned in its own database, with three venues."""
    provision(settings, SLUG, modules=["events"])
    add_rows(settings, SLUG, "venues", [{"name": name} for name in VENUES])
    admin = add_admin(settings, SLUG, "pat@harbour.example")
    return add_token(settings, admin.email, tenant_slug=SLUG)


def venues(client: TestClient[Any], tenant_token: str) -> list[str]:
    """The tenant's venues, read through its data API."""
    response = client.get("/api/v1/tenant/data/venues", headers=bearer(tenant_token))
    assert response.status_code == 200, response.text
    return sorted(row["name"] for row in response.json()["items"])


def accepted(response: Any) -> dict[str, Any]:
    """A 202 pointing at the move's job; its body."""
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    assert response.headers["location"] == f"/api/v1/jobs/{body['job']['id']}"
    assert body["move"]["job_id"] == body["job"]["id"] and body["job"]["kind"] == "move"
    return body


def moves(client: TestClient[Any], token: str) -> list[dict[str, Any]]:
    response = client.get(MOVES, headers=bearer(token))
    assert response.status_code == 200, response.text
    listed: list[dict[str, Any]] = response.json()
    return listed


def the_move(client: TestClient[Any], token: str, move_id: int) -> dict[str, Any]:
    response = client.get(f"{MOVES}/{move_id}", headers=bearer(token))
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def copied_by(client: TestClient[Any], token: str, move: dict[str, Any]) -> dict[str, Any]:
    """The portable backup the move's job took of the tenant."""
    response = client.get(f"/api/v1/tenants/{SLUG}/backups", headers=bearer(token))
    assert response.status_code == 200, response.text
    [backup] = [backup for backup in response.json() if backup["job_id"] == move["job_id"]]
    return dict(backup)


def test_a_landlord_token_moves_a_tenant_into_the_shared_store_and_back_with_its_rows_intact(
    client: TestClient[Any], landlord_token: str, harbour_token: str, settings: Settings, tmp_path: Path
) -> None:
    at_first = tenant(settings, SLUG)
    assert venues(client, harbour_token) == VENUES
    gate = tmp_path / "gate"
    gate.touch()
    remove_gate = hold_restore_at("lock", gate, MOVE_STEPS)
    try:
        asked = accepted(client.post(MOVES, json={"isolation": "shared"}, headers=bearer(landlord_token)))
        wait_for(reached(gate).exists, 60, what="the move to reach its gate")

        again = assert_json_error(
            client.post(MOVES, json={"isolation": "shared"}, headers=bearer(landlord_token)), 409
        )
        assert f"moving already (move #{asked['move']['id']})" in again["detail"]
    finally:
        gate.unlink()
        remove_gate()

    assert [step["name"] for step in asked["job"]["steps"]] == MOVE_STEP_NAMES
    assert asked["message"].startswith(f"{SLUG} is moving to the shared")
    assert asked["move"]["from"] == {
        "backend": at_first.store_backend,
        "isolation": "database",
        "store": at_first.store_name,
        "server": None if at_first.store_backend == SQLITE else "main",
    }
    assert (asked["move"]["to"]["backend"], asked["move"]["to"]["isolation"]) == (
        at_first.store_backend,
        "shared",
    )
    assert asked["move"]["status"] in ("queued", "running")
    assert (asked["move"]["back_of"], asked["move"]["may_move_back"]) == (None, False)
    job = follow(client, landlord_token, f"/api/v1/jobs/{asked['job']['id']}")
    assert (job["status"], job["error"]) == ("succeeded", None)

    [moved] = moves(client, landlord_token)
    assert moved == the_move(client, landlord_token, asked["move"]["id"])
    assert (moved["status"], moved["old_store"], moved["may_move_back"]) == ("succeeded", "kept", True)
    copy = copied_by(client, landlord_token, moved)
    assert copy["verification"] == "verified"
    assert (moved["rows"], moved["tables"]) == (
        copy["manifest"]["totals"]["rows"],
        copy["manifest"]["totals"]["tables"],
    )
    assert moved["rows"] >= len(VENUES) and moved["copy_ms"] >= 0 and moved["freeze_ms"] > 0
    kept_until = datetime.fromisoformat(moved["kept_until"]).replace(tzinfo=UTC)
    finished_at = datetime.fromisoformat(moved["finished_at"]).replace(tzinfo=UTC)
    assert abs(kept_until - finished_at - timedelta(days=settings.move_retention_days)) < timedelta(minutes=1)
    assert tenant(settings, SLUG).isolation == IsolationMode.SHARED
    assert venues(client, harbour_token) == VENUES

    back = accepted(client.post(f"{MOVES}/{moved['id']}/back", headers=bearer(landlord_token)))

    assert [step["name"] for step in back["job"]["steps"]] == MOVE_BACK_STEP_NAMES
    assert back["move"]["back_of"] == moved["id"]
    job = follow(client, landlord_token, f"/api/v1/jobs/{back['job']['id']}")
    assert (job["status"], job["error"]) == ("succeeded", None)
    newest, first = moves(client, landlord_token)
    assert newest["id"] == back["move"]["id"] and first["id"] == moved["id"]
    assert newest["to"] == moved["from"], "back in the very store it left"
    assert (newest["status"], newest["may_move_back"]) == ("succeeded", True)
    assert (first["old_store"], first["kept_until"], first["may_move_back"]) == ("in use", None, False)
    assert tenant(settings, SLUG).store_name == at_first.store_name
    assert venues(client, harbour_token) == VENUES

    refused = assert_json_error(
        client.post(f"{MOVES}/{moved['id']}/back", headers=bearer(landlord_token)), 409
    )
    assert "only that one is moved back" in refused["detail"]


def test_bad_input_unknown_names_and_other_tokens_are_refused_and_nothing_moves(
    client: TestClient[Any], landlord_token: str, harbour_token: str, settings: Settings
) -> None:
    def move(body: Any, slug: str = SLUG, token: str | None = landlord_token) -> Any:
        return client.post(f"/api/v1/tenants/{slug}/moves", json=body, headers=bearer(token) if token else {})

    unknown = errors_by_field(assert_json_error(move({"isolation": "cloud"}), 422))
    assert list(unknown) == ["isolation"] and "cloud" in unknown["isolation"]
    unknown = errors_by_field(assert_json_error(move({"isolation": "shared", "backend": "oracle"}), 422))
    assert list(unknown) == ["backend"] and "oracle" in unknown["backend"]
    missing = errors_by_field(assert_json_error(move({}), 422))
    assert list(missing) == ["isolation"]
    backend = tenant(settings, SLUG).store_backend
    assert backend is not None
    already = assert_json_error(move({"isolation": "database"}), 422)
    assert already["detail"] == f"{SLUG} is in a {BACKEND_NAMES[backend]} database already."
    assert already["field"] == "isolation"
    if backend == SQLITE:
        elsewhere = assert_json_error(move({"isolation": "schema"}), 422)
        assert elsewhere["detail"].startswith(f"{SLUG} cannot move to a SQLite schema here")
        assert elsewhere["field"] == "isolation"
    nowhere = assert_json_error(move({"isolation": "shared", "server": "pg-z"}), 422)
    assert nowhere["field"] == "server" and "no tenant server 'pg-z'" in nowhere["detail"]

    assert_json_error(move({"isolation": "shared"}, slug="no-such-club"), 404)
    assert_json_error(client.get("/api/v1/tenants/no-such-club/moves", headers=bearer(landlord_token)), 404)
    assert_json_error(client.get(f"{MOVES}/999", headers=bearer(landlord_token)), 404)
    assert_json_error(client.post(f"{MOVES}/999/back", headers=bearer(landlord_token)), 404)

    assert_json_error(move({"isolation": "shared"}, token=None), 401)
    assert_json_error(client.get(MOVES), 401)
    assert_json_error(move({"isolation": "shared"}, token=harbour_token), 403)
    assert_json_error(client.get(MOVES, headers=bearer(harbour_token)), 403)

    assert moves(client, landlord_token) == []
    assert tenant(settings, SLUG).isolation == IsolationMode.DATABASE

    suspended = client.post(
        f"/api/v1/tenants/{SLUG}/suspend", json={"reason": "Unpaid"}, headers=bearer(landlord_token)
    )
    assert suspended.status_code == 201, suspended.text
    not_active = assert_json_error(move({"isolation": "shared"}), 409)
    assert "only an active tenant moves" in not_active["detail"]
    assert moves(client, landlord_token) == []
