"""The tenant's home page: how much there is, by what the caller's scope sees, and, for the
tenant's admins, its people, its latest backup and what changed lately, each linked to its page.
Nothing of another tenant, and nothing of people or the trail for a member."""

from __future__ import annotations

import re
from datetime import date
from html import unescape

import pytest

from services.settings import Settings
from tests.support import Credentials, post_form, signed_in
from tests.web.portal import portal
from tests.web.tenant_world import (
    add_admin,
    add_member,
    add_rows,
    add_units,
    no_stores_left_behind,  # noqa: F401  (autouse fixture)
    provision,
)
from tests.web.test_tenant_backups import backed_up
from tests.web.test_tenant_data import post, read_form

SLUG, OTHER = "iris-party", "fern-club"
HOME = f"/t/{SLUG}/"


def card(page: str, card_id: str) -> str | None:
    """The text of a card of the home page; None when the page has no such card."""
    found = re.search(rf'<article class="card" id="{card_id}">(.*?)</article>', page, re.DOTALL)
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", found.group(1))).split()) if found else None


def counted_tables(page: str) -> dict[str, int]:
    """The rows of each table, as the home page's data table counts them."""
    return {
        name: int(rows) for name, rows in re.findall(r'<tr data-table="(\w+)">.*?<td>(\d+)</td></tr>', page)
    }


def layer_titles(page: str) -> list[str]:
    return re.findall(r'<th scope="rowgroup" colspan="2">([^<]+)</th>', page)


def changes(page: str) -> list[tuple[str, str | None]]:
    """The recent changes listed: what each says, and where its link goes (None: no link)."""
    table = re.search(r'<table id="recent-changes">.*?</table>', page, re.DOTALL)
    assert table, "the page lists recent changes"
    found = []
    for cell in re.findall(r"<td>(?:(?!</td>).)*</td>\s*</tr>", table.group(0), re.DOTALL):
        link = re.search(r'<a href="([^"]+)">', cell)
        found.append(
            (" ".join(unescape(re.sub(r"<[^>]+>", "", cell)).split()), link.group(1) if link else None)
        )
    return found


def party(settings: Settings, isolation: str = "database") -> dict[str, int]:
    """The party, with units North and South, a province in each, and districts (two in the north,
    one in the south); the units' ids."""
    provision(settings, SLUG, template="political_party", modules=["events"], isolation=isolation)
    units = add_units(settings, SLUG, [("North", None), ("South", None)])
    north, south = add_rows(
        settings,
        SLUG,
        "provinces",
        [
            {"code": "N", "name": "Northland", "unit_id": units["North"]},
            {"code": "S", "name": "Southland", "unit_id": units["South"]},
        ],
    )
    add_rows(
        settings,
        SLUG,
        "districts",
        [
            {"province_id": north, "code": "N1", "name": "Fjord", "unit_id": units["North"]},
            {"province_id": north, "code": "N2", "name": "Cape", "unit_id": units["North"]},
            {"province_id": south, "code": "S1", "name": "Delta", "unit_id": units["South"]},
        ],
    )
    return units


@pytest.mark.parametrize("isolation", ["database", "shared"])
def test_everyone_sees_the_counts_of_what_their_scope_holds_and_nothing_of_another_tenant(
    settings: Settings, superadmin: Credentials, isolation: str
) -> None:
    units = party(settings, isolation)
    provision(settings, OTHER, isolation=isolation)
    add_rows(settings, OTHER, "groups", [{"name": "Ferns"}, {"name": "Mosses"}])
    admin = add_admin(settings, SLUG, "admin@iris.example")
    member = add_member(settings, SLUG, "north@iris.example", unit_ids=[units["North"]])
    with portal(settings) as client:
        page = signed_in(client, admin).get(HOME).text
        assert card(page, "count-people") == "People 2 See the people"
        assert card(page, "count-units") == "Units 3 See the unit tree"
        assert card(page, "count-rows") == "Rows 5 See the data"
        counted = counted_tables(page)
        assert (counted["provinces"], counted["districts"], counted["party_members"]) == (2, 3, 0)
        assert counted["venues"] == 0 and "groups" not in counted, "the tenant's own tables only"
        assert layer_titles(page) == ["Political party", "Events"], (
            "the template's tables, then each module's"
        )
        assert f'href="/t/{SLUG}/data/provinces">Provinces</a>' in page

        page = signed_in(client, member).get(HOME).text
        assert card(page, "count-units") == "Units 1 See the unit tree"
        assert card(page, "count-rows") == "Rows 3 See the data", "Northland, Fjord and Cape"
        assert (counted_tables(page)["provinces"], counted_tables(page)["districts"]) == (1, 2)
        for admins_only in ("count-people", "latest-backup"):
            assert card(page, admins_only) is None, admins_only
        assert "Recent changes" not in page and "admin@iris.example" not in page
        assert "North" in re.search(r'<ul class="unit-tree">(.*?)</ul>', page, re.DOTALL).group(1)  # type: ignore[union-attr]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_admin_reads_what_changed_lately_in_words_each_linked_to_its_page(
    settings: Settings, superadmin: Credentials
) -> None:
    units = party(settings)
    provision(settings, OTHER)
    [southland] = add_rows(settings, SLUG, "provinces", [{"code": "W", "name": "Westland"}])
    admin = add_admin(settings, SLUG, "admin@iris.example")
    other_admin = add_admin(settings, OTHER, "admin@fern.example")
    with portal(settings) as client:
        signed_in(client, other_admin)
        form = read_form(client.get(f"/t/{OTHER}/data/groups/new").text)
        assert post(client, f"/t/{OTHER}/data/groups", {"name": "Secret ferns"}, form.csrf).status_code == 303

        signed_in(client, admin)
        page = client.get(HOME).text
        assert "Nothing has changed in Iris Party yet." in page
        assert card(page, "latest-backup") == "Latest backup None yet. See the backups"

        form = read_form(client.get(f"/t/{SLUG}/data/party_members/new").text)
        member = {
            "membership_number": "I-1",
            "name": "Anna de Vries",
            "email": "anna@iris.example",
            "joined_on": "2025-01-06",
            "status": "active",
        }
        added = post(client, f"/t/{SLUG}/data/party_members", member, form.csrf)
        assert added.status_code == 303, added.text
        anna = added.headers["location"]
        confirm = read_form(client.get(f"/t/{SLUG}/data/provinces/{southland}/delete").text, "confirm-delete")
        assert (
            post(client, f"/t/{SLUG}/data/provinces/{southland}/delete", {}, confirm.csrf).status_code == 303
        )
        renamed = post_form(
            client, f"/t/{SLUG}/units/{units['North']}/rename", {"name": "Noord"}, follow_redirects=False
        )
        assert renamed.status_code in (200, 303), renamed.text
        saved = post_form(
            client,
            f"/t/{SLUG}/settings",
            {"name": "Iris Party", "timezone": "Europe/Amsterdam", "accent_colour": "#2f5bd3"},
            follow_redirects=False,
        )
        assert saved.status_code in (200, 303), saved.text
        backup = backed_up(client, settings, "portable", slug=SLUG)

        page = client.get(HOME).text
    assert changes(page) == [
        ("changed the timezone from “UTC” to “Europe/Amsterdam”", f"/t/{SLUG}/settings"),
        ("renamed the unit North to Noord", f"/t/{SLUG}/units"),
        (f"deleted province #{southland}", f"/t/{SLUG}/data/provinces"),
        ("added Party member: Anna de Vries", anna),
    ]
    assert "When (Europe/Amsterdam)" in page and "admin@iris.example" in page
    assert "Secret ferns" not in page and "admin@fern.example" not in page
    assert f'href="/t/{SLUG}/audit">The whole audit trail</a>' in page
    latest = card(page, "latest-backup")
    assert latest is not None and latest.startswith(f"Latest backup #{backup.id} succeeded")
    assert date.today().isoformat()[:4] in latest, "when it was taken"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_row_deleted_since_is_named_by_its_number(settings: Settings, superadmin: Credentials) -> None:
    provision(settings, SLUG, template="political_party", modules=["events"])
    admin = add_admin(settings, SLUG, "admin@iris.example")
    with portal(settings) as client:
        signed_in(client, admin)
        form = read_form(client.get(f"/t/{SLUG}/data/venues/new").text)
        added = post(client, f"/t/{SLUG}/data/venues", {"name": "Town hall"}, form.csrf)
        assert added.status_code == 303, added.text
        assert changes(client.get(HOME).text)[0] == ("added Venue: Town hall", added.headers["location"])
        venue = added.headers["location"].rsplit("/", 1)[1]
        confirm = read_form(client.get(f"{added.headers['location']}/delete").text, "confirm-delete")
        assert post(client, f"{added.headers['location']}/delete", {}, confirm.csrf).status_code == 303
        said = changes(client.get(HOME).text)
    assert said[:2] == [
        (f"deleted venue #{venue}", f"/t/{SLUG}/data/venues"),
        (f"added venue #{venue}", f"/t/{SLUG}/data/venues"),
    ]
