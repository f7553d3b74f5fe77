"""/api/v1/tenants/{slug}/splits: a landlord token asks what splitting a district off would do (the
dry run: rows per table, people who follow, conflicts and refusals), then splits it (202, a job to
follow) into a new tenant that holds its rows; bad input is named by field (422), a split the dry
run refuses is a conflict (409) saying why, an unknown tenant is 404, and only landlord tokens split."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from litestar.testing import TestClient

from services.moves.split import REMOVED_FROM_SOURCE, SPLIT_STEP_NAMES
from services.settings import Settings
from tests.support import Credentials
from tests.web.districts import tenant_with_a_district
from tests.web.portal import add_token
from tests.web.tenant_world import add_admin, add_member, add_rows, provision
from tests.web.test_api import assert_json_error, bearer
from tests.web.test_api_provisioning import errors_by_field, follow
from tests.workers.support import tenant

SLUG = "harbour-club"
SPLITS = f"/api/v1/tenants/{SLUG}/splits"


@pytest.fixture
def landlord_token(settings: Settings, superadmin: Credentials) -> str:
    return add_token(settings, superadmin.email)


@pytest.fixture
def district(settings: Settings) -> dict[str, int]:
    """harbour-club with a North district and its ward, two venues and an event in the ward, a
    venue of the root, and Wanda, a member assigned to the ward."""
    return tenant_with_a_district(
        settings, SLUG, [("Boat House", "Ward"), ("Pier", "North"), ("Town Hall", "root")]
    )


def test_a_landlord_token_splits_a_district_off_after_its_dry_run(
    client: TestClient[Any], landlord_token: str, district: dict[str, int], settings: Settings
) -> None:
    body = {"unit": "North", "into": "north-harbour"}
    dry = client.post(f"{SPLITS}/dry-run", json=body, headers=bearer(landlord_token))

    assert dry.status_code == 200, dry.text
    plan = dry.json()
    assert (plan["unit"], plan["unit_id"], plan["into"], plan["name"]) == (
        "North",
        district["North"],
        "north-harbour",
        "North",
    )
    moving = {table["table"]: table["moving"] for table in plan["tables"] if table["moving"]}
    assert moving == {"units": 2, "venues": 2, "unit_assignments": 1}
    assert plan["people"] == [
        {"email": "wanda@harbour.example", "role": "tenant_member", "leaves_source": True}
    ]
    assert (plan["refusals"], plan["conflicts"], plan["source"]) == ([], [], REMOVED_FROM_SOURCE)
    assert tenant(settings, SLUG).status == "active", "a dry run changes nothing"

    started = client.post(SPLITS, json=body, headers=bearer(landlord_token))

    assert started.status_code == 202, started.text
    asked = started.json()
    assert started.headers["location"] == f"/api/v1/jobs/{asked['job']['id']}"
    assert [step["name"] for step in asked["job"]["steps"]] == SPLIT_STEP_NAMES
    assert asked["new_tenant"] == "north-harbour"
    job = follow(client, landlord_token, f"/api/v1/jobs/{asked['job']['id']}")
    assert (job["status"], job["error"]) == ("succeeded", None)
    new = client.get("/api/v1/tenants/north-harbour", headers=bearer(landlord_token)).json()
    assert (new["status"], new["modules"]) == ("active", ["events"])

    admin = add_admin(settings, "north-harbour", "nia@harbour.example")
    venues = client.get(
        "/api/v1/tenant/data/venues",
        headers=bearer(add_token(settings, admin.email, tenant_slug="north-harbour")),
    )
    assert sorted(row["name"] for row in venues.json()["items"]) == ["Boat House", "Pier"]
    again = assert_json_error(
        client.post(f"{SPLITS}/dry-run", json=body, headers=bearer(landlord_token)), 422
    )
    assert set(errors_by_field(again)) == {"unit", "into"}, "North is gone from the source, the slug taken"


def test_bad_input_is_named_by_field_and_a_refused_split_says_why(
    client: TestClient[Any], landlord_token: str, district: dict[str, int], settings: Settings
) -> None:
    wrong = client.post(
        f"{SPLITS}/dry-run", json={"unit": "Nowhere", "into": "Not A Slug"}, headers=bearer(landlord_token)
    )
    assert set(errors_by_field(assert_json_error(wrong, 422))) == {"unit", "into"}
    root = client.post(
        SPLITS, json={"unit": str(district["root"]), "into": "all-of-it"}, headers=bearer(landlord_token)
    )
    assert "the whole tenant" in errors_by_field(assert_json_error(root, 422))["unit"]
    missing = client.post(SPLITS, json={"unit": "North"}, headers=bearer(landlord_token))
    assert_json_error(missing, 422)
    unknown = client.post(
        "/api/v1/tenants/nobody-here/splits/dry-run",
        json={"unit": "North", "into": "x-y"},
        headers=bearer(landlord_token),
    )
    assert_json_error(unknown, 404)

    # An event of the root whose venue goes: the venue reference may be empty, so it is cleared;
    # a registration of the root for an event of the ward may not lose its event: refused.
    [event] = add_rows(
        settings,
        SLUG,
        "events",
        [{"title": "Gala", "starts_at": datetime(2026, 6, 1, 18), "unit_id": district["Ward"]}],
    )
    add_rows(
        settings,
        SLUG,
        "event_registrations",
        [
            {
                "event_id": event,
                "attendee_name": "Ann",
                "attendee_email": "ann@x.example",
                "unit_id": district["root"],
            }
        ],
    )
    dry = client.post(
        f"{SPLITS}/dry-run", json={"unit": "North", "into": "north-harbour"}, headers=bearer(landlord_token)
    )
    assert dry.status_code == 200, dry.text
    [refusal] = dry.json()["refusals"]
    assert refusal.startswith("event_registrations #1 stays, but its event_id names events #1, which goes")
    refused = assert_json_error(
        client.post(SPLITS, json={"unit": "North", "into": "north-harbour"}, headers=bearer(landlord_token)),
        409,
    )
    assert "cannot be split at North" in refused["detail"]

    member = add_member(settings, SLUG, "mo@harbour.example")
    member_token = add_token(settings, member.email, tenant_slug=SLUG)
    assert (
        client.post(
            SPLITS, json={"unit": "North", "into": "north-harbour"}, headers=bearer(member_token)
        ).status_code
        == 403
    )
    assert tenant(settings, SLUG).status == "active"


def test_a_landlord_token_merges_a_tenant_into_another_after_its_dry_run(
    client: TestClient[Any], landlord_token: str, district: dict[str, int], settings: Settings
) -> None:
    provision(settings, "otter-club", modules=["events"])
    add_rows(settings, "otter-club", "venues", [{"name": "Boat House"}, {"name": "Otter Holt"}])
    merges = "/api/v1/tenants/otter-club/merges"

    wrong = client.post(f"{merges}/dry-run", json={"into": "nobody-here"}, headers=bearer(landlord_token))
    said = assert_json_error(wrong, 422)
    assert (said["field"], said["detail"]) == ("into", "There is no tenant 'nobody-here' to merge into.")
    itself = client.post(f"{merges}/dry-run", json={"into": "otter-club"}, headers=bearer(landlord_token))
    assert assert_json_error(itself, 422)["field"] == "into"
    dry = client.post(f"{merges}/dry-run", json={"into": SLUG}, headers=bearer(landlord_token))
    assert dry.status_code == 200, dry.text
    plan = dry.json()
    assert (plan["tables"]["venues"], plan["refusals"]) == (2, [])
    assert plan["conflicts"] == [
        "venues #1 of otter-club: its name 'Boat House' is taken: it comes in as 'Boat House (otter-club)'"
    ]

    started = client.post(merges, json={"into": SLUG}, headers=bearer(landlord_token))
    assert started.status_code == 202, started.text
    job = follow(client, landlord_token, f"/api/v1/jobs/{started.json()['job']['id']}")
    assert (job["status"], job["error"]) == ("succeeded", None)
    admin = add_admin(settings, SLUG, "nia@harbour.example")
    venues = client.get(
        "/api/v1/tenant/data/venues", headers=bearer(add_token(settings, admin.email, tenant_slug=SLUG))
    )
    assert sorted(row["name"] for row in venues.json()["items"]) == [
        "Boat House",
        "Boat House (otter-club)",
        "Otter Holt",
        "Pier",
        "Town Hall",
    ]
    assert tenant(settings, "otter-club").status == "active"
