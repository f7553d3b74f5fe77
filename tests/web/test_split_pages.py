"""Splitting a tenant from the landlord portal: "Split…" on the tenant page, a unit and a slug
chosen, the dry run shown (rows per table, who follows their units, what becomes of the source)
before anything happens, the slug typed to confirm, and the tenant page following the split's job;
mistakes are said beside their fields and change nothing; only landlord staff may split."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import TestClient

from services.moves.split import PEOPLE_FOLLOW, REMOVED_FROM_SOURCE, SPLIT
from services.settings import Settings
from tests.support import chose_own_password, post_form, signed_in
from tests.web.portal import HTMX, assert_no_trace, is_partial
from tests.web.tenant_world import add_member, add_rows, add_units, provision
from tests.web.test_provisioning_pages import text_of
from tests.workers.support import tenant, wait_until_finished

SLUG = "harbour-club"
PAGE = f"/tenants/{SLUG}"
SPLIT_PAGE = f"{PAGE}/split"


@pytest.fixture
def units(settings: Settings) -> dict[str, int]:
    provision(settings, SLUG, modules=["events"])
    units = add_units(settings, SLUG, [("North", None), ("Ward", "North"), ("South", None)])
    add_rows(settings, SLUG, "venues", [{"name": "Boat House", "unit_id": units["Ward"]}])
    add_member(settings, SLUG, "wanda@harbour.example", unit_ids=[units["Ward"]])
    return units


def test_a_superadmin_sees_the_dry_run_then_splits_a_district_off(
    superadmin_client: TestClient[Any], units: dict[str, int], settings: Settings
) -> None:
    client = superadmin_client
    assert f'href="{SPLIT_PAGE}"' in client.get(PAGE).text

    form = client.get(SPLIT_PAGE)
    assert form.status_code == 200, form.text
    said = text_of(form.text)
    assert REMOVED_FROM_SOURCE in said and PEOPLE_FOLLOW in said, "the page says so beforehand"
    assert (
        f'<option value="{units["North"]}"' in form.text
        and f'<option value="{units["root"]}"' not in form.text
    )

    preview = client.get(SPLIT_PAGE, params={"unit": units["North"], "into": "north-harbour"}, headers=HTMX)
    assert preview.status_code == 200 and is_partial(preview.text)
    shown = text_of(preview.text)
    assert "North (#" in shown and "4 rows leave harbour-club for north-harbour" in shown
    assert (
        "wanda@harbour.example (tenant member): left with no unit in harbour-club, deactivated there" in shown
    )
    assert tenant(settings, SLUG).status == "active"

    unconfirmed = post_form(
        client, SPLIT_PAGE, {"unit": str(units["North"]), "into": "north-harbour", "confirm": "nope"}
    )
    assert unconfirmed.status_code == 422 and "Type harbour-club to confirm" in text_of(unconfirmed.text)
    assert_no_trace(unconfirmed.text)

    asked = post_form(
        client,
        SPLIT_PAGE,
        {"unit": str(units["North"]), "into": "north-harbour", "name": "", "confirm": SLUG},
        follow_redirects=False,
    )
    assert asked.status_code == 303, asked.text
    assert asked.headers["location"] == PAGE
    following = client.get(PAGE).text
    assert "Split job #" in following
    job_id = int(following.split("Split job #", 1)[1].split(" ", 1)[0].split("<", 1)[0])
    job = wait_until_finished(settings, job_id, timeout=90)
    assert (job.kind, job.status, job.error) == (SPLIT, "succeeded", None)
    assert tenant(settings, "north-harbour").status == "active"
    done = text_of(client.get(PAGE).text)
    assert "remove from source" in done and "Split North off into a new tenant, safety backup #" in done


def test_a_wrong_unit_or_slug_is_said_and_nothing_changes(
    superadmin_client: TestClient[Any], units: dict[str, int], settings: Settings, client: TestClient[Any]
) -> None:
    wrong = superadmin_client.get(SPLIT_PAGE, params={"unit": "Nowhere", "into": SLUG})
    assert wrong.status_code == 422
    said = text_of(wrong.text)
    assert "There is no unit 'Nowhere' here" in said and "The slug 'harbour-club' is taken" in said
    root = superadmin_client.get(SPLIT_PAGE, params={"unit": units["root"], "into": "all-of-it"})
    assert root.status_code == 422 and "the whole tenant" in text_of(root.text)
    given = add_member(settings, SLUG, "mo@harbour.example", role="tenant_admin")
    signed_in(client, given)
    chose_own_password(client, given)
    assert client.get(SPLIT_PAGE, follow_redirects=False).status_code == 403
    asked = post_form(
        client, SPLIT_PAGE, {"unit": str(units["North"]), "into": "north-harbour", "confirm": SLUG}
    )
    assert asked.status_code == 403
    assert tenant(settings, SLUG).status == "active"


def test_a_superadmin_merges_a_tenant_into_another_after_its_dry_run(
    superadmin_client: TestClient[Any], units: dict[str, int], settings: Settings
) -> None:
    client = superadmin_client
    provision(settings, "otter-club", modules=["events"])
    add_rows(settings, "otter-club", "venues", [{"name": "Boat House"}, {"name": "Otter Holt"}])
    page = "/tenants/otter-club/merge"
    assert f'href="{page}"' in client.get("/tenants/otter-club").text

    form = client.get(page)
    assert form.status_code == 200 and f'<option value="{SLUG}"' in form.text
    dry = client.get(page, params={"into": SLUG})
    assert dry.status_code == 200
    said = text_of(dry.text)
    assert "Boat House (otter-club)" in said and "The tenant merged in is not changed" in said
    wrong = client.get(page, params={"into": "nowhere"})
    assert wrong.status_code == 422 and "There is no tenant 'nowhere' to merge into." in text_of(wrong.text)

    asked = post_form(client, page, {"into": SLUG, "confirm": "otter-club"}, follow_redirects=False)
    assert asked.status_code == 303, asked.text
    assert asked.headers["location"] == PAGE
    following = client.get(PAGE).text
    job_id = int(following.split("Merge job #", 1)[1].split(" ", 1)[0].split("<", 1)[0])
    job = wait_until_finished(settings, job_id, timeout=90)
    assert (job.status, job.error) == ("succeeded", None)
    assert (tenant(settings, SLUG).status, tenant(settings, "otter-club").status) == ("active", "active")
