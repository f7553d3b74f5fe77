"""A record's pages as people read them: named by their table and their name ("Party member: Anna
de Vries"), listing the rows that refer to them (a province's districts), units offered as their
tree, dates kept on one line, deleting marked as dangerous, email columns holding email addresses
only, and an empty choice that says where to add one."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from services.installation import prepare_landlord
from services.settings import Settings
from tests.support import Credentials, installation_settings, signed_in
from tests.web.portal import add_token, assert_no_trace, portal
from tests.web.tenant_world import add_admin, add_member, add_rows, add_units, provision
from tests.web.test_tenant_data import count_rows, field_error, fill, post, read_form

PARTY, CLUB = "rose-party", "oak-club"
DATA = f"/t/{PARTY}/data"


@dataclass
class World:
    settings: Settings
    admin: Credentials
    club_admin: Credentials
    #: A member of the North unit (and North Harbour, below it).
    north: Credentials
    units: dict[str, int]
    #: Province ids by name; district ids by province.
    provinces: dict[str, int]
    districts: dict[str, list[int]]
    anna: int


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A political party with provinces, districts and a member, and a community group; SQLite."""
    folder: Path = tmp_path_factory.mktemp("record-pages")
    settings = installation_settings(folder / "data", f"sqlite+aiosqlite:///{folder / 'landlord.db'}")
    asyncio.run(prepare_landlord(settings))
    provision(settings, PARTY, template="political_party", modules=["events"])
    provision(settings, CLUB)
    # Added in an order unlike their names' and ids', so the tree's order shows.
    units = add_units(
        settings,
        PARTY,
        [("South", None), ("North", None), ("North Harbour", "North"), ("Dunes", "South"), ("Bay", "North")],
    )
    north, south = add_rows(
        settings,
        PARTY,
        "provinces",
        [
            {"code": "NH", "name": "Noord-Holland", "unit_id": units["North"]},
            {"code": "ZH", "name": "Zuid-Holland", "unit_id": units["South"]},
        ],
    )
    # Twelve districts of the north, the first two in North Harbour, the rest in South.
    northern = add_rows(
        settings,
        PARTY,
        "districts",
        [
            {
                "province_id": north,
                "code": f"NH-{number:02}",
                "name": f"Noord district {number:02}",
                "unit_id": units["North Harbour"] if number <= 2 else units["South"],
            }
            for number in range(1, 13)
        ],
    )
    southern = add_rows(
        settings,
        PARTY,
        "districts",
        [
            {"province_id": south, "code": "ZH-01", "name": "Delfland"},
            {"province_id": south, "code": "ZH-02", "name": "Zuid district 1"},
        ],
    )
    [anna] = add_rows(
        settings,
        PARTY,
        "party_members",
        [
            {
                "membership_number": "R-001",
                "name": "Anna de Vries",
                "email": "anna@rose.example",
                "joined_on": date(2024, 3, 1),
            }
        ],
    )
    yield World(
        settings,
        add_admin(settings, PARTY, "admin@rose.example"),
        add_admin(settings, CLUB, "admin@oak.example"),
        add_member(settings, PARTY, "north@rose.example", unit_ids=[units["North"]]),
        units,
        {"Noord-Holland": north, "Zuid-Holland": south},
        {"Noord-Holland": northern, "Zuid-Holland": southern},
        anna,
    )


@pytest.fixture
def admin(world: World) -> Iterator[TestClient[Any]]:
    with portal(world.settings) as client:
        yield signed_in(client, world.admin)


def heading(html: str) -> str:
    found = re.search(r"<h1>(.*?)</h1>", html, re.DOTALL)
    assert found, "the page has a heading"
    return unescape(found.group(1)).strip()


def page_title(html: str) -> str:
    found = re.search(r"<title>(.*?)</title>", html, re.DOTALL)
    assert found
    return unescape(found.group(1)).strip()


def crumbs(html: str) -> list[str]:
    found = re.search(r'<p class="crumbs">(.*?)</p>', html, re.DOTALL)
    assert found
    return [unescape(text) for text in re.findall(r">([^<]+)</a>", found.group(1))]


def links_in(html: str, section_id: str) -> dict[str, str]:
    """The links inside the element `section_id`, text to address."""
    found = re.search(rf'id="{section_id}".*?</section>', html, re.DOTALL)
    assert found, f"no section {section_id!r}"
    return {
        unescape(text): href for href, text in re.findall(r'<a href="([^"]+)">([^<]+)</a>', found.group(0))
    }


def options(html: str, name: str) -> list[tuple[str, str]]:
    """The options of the select `name`: value and text, as a browser shows them."""
    select = re.search(rf'<select id="field-{name}" name="{name}".*?</select>', html, re.DOTALL)
    assert select, f"no select {name!r}"
    return [
        (value, unescape(text))
        for value, text in re.findall(r'<option value="(\d+)"[^>]*>([^<]*)</option>', select.group(0))
    ]


# --- Titles --------------------------------------------------------------------------------------


def test_a_record_is_named_by_its_table_and_its_name_wherever_it_is_named(
    world: World, admin: TestClient[Any]
) -> None:
    record = f"{DATA}/party_members/{world.anna}"
    page = admin.get(record).text
    assert heading(page) == "Party member: Anna de Vries"
    assert page_title(page).startswith("Party member: Anna de Vries · Rose Party")

    edit = admin.get(f"{record}/edit").text
    assert heading(edit) == "Edit Party member: Anna de Vries"
    assert page_title(edit).startswith("Edit Party member: Anna de Vries")
    assert crumbs(edit) == ["Party members", "Party member: Anna de Vries"]

    delete = admin.get(f"{record}/delete").text
    assert page_title(delete).startswith("Delete Party member: Anna de Vries")
    assert crumbs(delete) == ["Party members", "Party member: Anna de Vries"]
    assert "Party member: Anna de Vries is deleted for good." in delete

    assert heading(admin.get(f"{DATA}/party_members/new").text) == "New party member"


def test_a_row_nothing_names_is_named_by_its_number(world: World) -> None:
    [group] = add_rows(world.settings, CLUB, "groups", [{"name": "Birdwatchers"}])
    [ann] = add_rows(
        world.settings,
        CLUB,
        "community_members",
        [{"name": "Ann", "email": "ann@oak.example", "joined_on": date(2024, 1, 1)}],
    )
    [membership] = add_rows(
        world.settings,
        CLUB,
        "group_memberships",
        [{"group_id": group, "member_id": ann, "joined_on": date(2024, 1, 2)}],
    )
    with portal(world.settings) as client:
        signed_in(client, world.club_admin)
        page = client.get(f"/t/{CLUB}/data/group_memberships/{membership}").text
        assert heading(page) == f"Group membership #{membership}"
        facts = re.search(r'<dl class="record">.*?</dl>', page, re.DOTALL)
        assert facts and f'href="/t/{CLUB}/data/groups/{group}">Birdwatchers (#{group})</a>' in facts.group(
            0
        ), "a reference links to the row it names"


# --- The rows that refer to a record -------------------------------------------------------------


def test_a_provinces_page_lists_its_districts_and_leads_to_all_of_them(
    world: World, admin: TestClient[Any]
) -> None:
    north = world.provinces["Noord-Holland"]
    page = admin.get(f"{DATA}/provinces/{north}").text
    section = re.search(r'id="referring-districts-province_id">\s*<h2>(.*?)</h2>', page, re.DOTALL)
    assert section and re.sub(r"<[^>]+>", "", section.group(1)) == "Districts (12)"
    listed = links_in(page, "referring-districts-province_id")
    shown = [name for name in listed if name.startswith("Noord district")]
    assert shown == [f"Noord district {number:02}" for number in range(1, 11)], "the first ten, by name"
    first = world.districts["Noord-Holland"][0]
    assert listed["Noord district 01"] == f"{DATA}/districts/{first}"
    assert "Delfland" not in page, "another province's district"

    everything = listed["All 12 districts"]
    assert everything == f"{DATA}/districts?province_id={north}"
    filtered = admin.get(everything)
    assert filtered.status_code == 200
    assert "12 rows" in filtered.text and "Delfland" not in filtered.text and "Zuid" not in filtered.text
    only = re.search(r'<p id="pointing-to">(.*?)</p>', filtered.text, re.DOTALL)
    assert only and "Province: Noord-Holland" in unescape(only.group(1))
    assert f'<input type="hidden" name="province_id" value="{north}" form="record-search">' in filtered.text
    searched = admin.get(
        f"{DATA}/districts", params={"province_id": north, "q": "district 1"}, headers={"HX-Request": "true"}
    )
    assert "3 rows" in searched.text and "Zuid district 1" not in searched.text, "10, 11 and 12 of the north"
    assert f"province_id={north}" in searched.text, "paging and sorting keep to the province"

    south = admin.get(f"{DATA}/provinces/{world.provinces['Zuid-Holland']}").text
    assert "Delfland" in links_in(south, "referring-districts-province_id")
    assert "All 2 districts" not in south, "both are listed already"


def test_a_row_referring_to_its_own_table_says_how(world: World, admin: TestClient[Any]) -> None:
    [national] = add_rows(
        world.settings, PARTY, "committees", [{"name": "National board", "level": "national"}]
    )
    [north] = add_rows(
        world.settings,
        PARTY,
        "committees",
        [{"name": "Northern board", "level": "provincial", "parent_id": national}],
    )
    page = admin.get(f"{DATA}/committees/{national}").text
    section = re.search(r'id="referring-committees-parent_id">\s*<h2>(.*?)</h2>', page, re.DOTALL)
    assert section and re.sub(r"<[^>]+>", "", section.group(1)) == "Committees with this as their parent (1)"
    assert links_in(page, "referring-committees-parent_id")["Northern board"] == f"{DATA}/committees/{north}"


def test_a_member_sees_only_the_referring_rows_of_their_units(world: World) -> None:
    with portal(world.settings) as client:
        signed_in(client, world.north)
        page = client.get(f"{DATA}/provinces/{world.provinces['Noord-Holland']}").text
        listed = links_in(page, "referring-districts-province_id")
        assert [name for name in listed if "district" in name] == ["Noord district 01", "Noord district 02"]
        assert "(2)" in page and "(12)" not in page
        filtered = client.get(f"{DATA}/districts", params={"province_id": world.provinces["Noord-Holland"]})
        assert "2 rows" in filtered.text and "Noord district 03" not in filtered.text


def test_a_list_filtered_by_something_else_than_a_reference_is_refused_plainly(
    admin: TestClient[Any],
) -> None:
    refused = admin.get(f"{DATA}/districts", params={"province_id": "many"})
    assert refused.status_code == 422
    assert "Name a province by its number, such as 12." in unescape(refused.text)
    assert_no_trace(refused.text)


# --- Forms ---------------------------------------------------------------------------------------


def test_a_unit_select_shows_the_tree_parents_first_indented_by_depth(
    world: World, admin: TestClient[Any]
) -> None:
    units = world.units
    offered = options(admin.get(f"{DATA}/districts/new").text, "unit_id")
    indent = "— "  # as the units page's selects indent them
    assert offered == [
        (str(units["root"]), f"Rose Party (#{units['root']})"),
        (str(units["North"]), f"{indent}North (#{units['North']})"),
        (str(units["Bay"]), f"{indent * 2}Bay (#{units['Bay']})"),
        (str(units["North Harbour"]), f"{indent * 2}North Harbour (#{units['North Harbour']})"),
        (str(units["South"]), f"{indent}South (#{units['South']})"),
        (str(units["Dunes"]), f"{indent * 2}Dunes (#{units['Dunes']})"),
    ]
    with portal(world.settings) as client:
        signed_in(client, world.north)
        offered = options(client.get(f"{DATA}/districts/new").text, "unit_id")
        assert [text for _, text in offered] == [
            f"North (#{units['North']})",
            f"— Bay (#{units['Bay']})",
            f"— North Harbour (#{units['North Harbour']})",
        ], "a member's top unit is the top of their tree"


def test_an_email_column_takes_only_email_addresses_in_the_form_and_the_api(
    world: World, admin: TestClient[Any]
) -> None:
    form = read_form(admin.get(f"{DATA}/party_members/new").text)
    assert {control.name: control.type for control in form.controls}["email"] == "email"
    before = count_rows(world.settings, PARTY, "party_members")
    values = {**fill("party_members", form.controls), "email": "bram at rose.example"}
    refused = post(admin, f"{DATA}/party_members", values, form.csrf)
    assert refused.status_code == 422
    assert field_error(refused.text, "email") == "Enter a valid email address, like name@example.org."

    token = add_token(world.settings, world.admin.email, PARTY)
    api = admin.post(
        "/api/v1/tenant/data/party_members",
        json={"membership_number": "R-9", "name": "Bram", "email": "bram@", "joined_on": "2025-01-01"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert api.status_code == 422
    assert api.json()["errors"] == [
        {"field": "email", "message": "Enter a valid email address, like name@example.org."}
    ]
    assert count_rows(world.settings, PARTY, "party_members") == before

    added = post(admin, f"{DATA}/party_members", {**values, "email": " bram@rose.example "}, form.csrf)
    assert added.status_code == 303, added.text
    assert "bram@rose.example" in admin.get(added.headers["location"]).text


def test_an_empty_choice_says_so_and_leads_to_where_one_is_added(
    world: World, admin: TestClient[Any]
) -> None:
    page = admin.get(f"{DATA}/events/new").text
    assert options(page, "venue_id") == []
    empty = re.search(r'<small id="none-venue_id">(.*?)</small>', page, re.DOTALL)
    assert empty, "the empty select says so"
    said = " ".join(unescape(re.sub(r"<[^>]+>", "", empty.group(1))).split())
    assert said == "There are no venues you can choose yet: add one to venues first."
    assert f'<a href="{DATA}/venues/new">add one to venues</a>' in empty.group(1)


# --- Lists and actions ---------------------------------------------------------------------------


def test_dates_and_times_stay_on_one_line_and_deleting_looks_dangerous(
    world: World, admin: TestClient[Any]
) -> None:
    listing = admin.get(f"{DATA}/party_members").text
    assert '<td class="nowrap">2024-03-01</td>' in listing, "joined on"
    assert "<td>Anna de Vries</td>" in listing, "text wraps as it needs"

    record = f"{DATA}/party_members/{world.anna}"
    assert f'class="button-link danger" href="{record}/delete"' in admin.get(record).text
    confirm = admin.get(f"{record}/delete").text
    assert re.search(r'<button type="submit" class="danger">Delete #\d+</button>', confirm)
