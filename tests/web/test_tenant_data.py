"""The tenant's data pages and API, generated from each table's definition: every table of every
template and module can be listed, filled in, read, changed and deleted; wrong input is refused
next to its field with nothing changed; members keep to their units; other tenants' rows are not
found, through the portal and through the API."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.installation import prepare_landlord
from services.models import AuditEntry, Tenant
from services.settings import PROJECT_ROOT, Settings
from services.tenancy.security import CROSS_TENANT
from services.tenant_data.records import record_schema
from tests.support import Credentials, installation_settings, post_form, run_db, signed_in
from tests.web.portal import add_token, assert_no_trace, portal
from tests.web.tenant_world import add_admin, add_member, add_rows, add_units, in_tenant, provision

#: Between them, every template and every module (finance and simple_ledger conflict).
WALKED = {
    "party-walk": (
        "political_party",
        [
            "membership_tiers",
            "events",
            "election_campaign",
            "documents",
            "social_media",
            "volunteering",
            "finance",
        ],
    ),
    "charity-walk": ("non_profit", ["simple_ledger"]),
    "club-walk": ("community_group", []),
}
PARTY = "party-walk"


# --- Tenants, as the provisioning job builds them ------------------------------------------------


def count_rows(settings: Settings, slug: str, table: str) -> int:
    """The tenant's rows in `table`, counted in its store, past the portal."""

    async def work(_landlord: AsyncSession, data: Any, tenant: Tenant) -> int:
        model = (await record_schema(data, f"count-{tenant.id}-{table}")).table(table).model
        return await data.scalar(select(func.count()).select_from(model)) or 0

    return in_tenant(settings, slug, work)


def audit_actions(settings: Settings, action_prefix: str) -> list[tuple[str, dict[str, Any]]]:
    async def work(session: Any) -> list[tuple[str, dict[str, Any]]]:
        entries = await session.scalars(
            select(AuditEntry).where(AuditEntry.action.startswith(action_prefix)).order_by(AuditEntry.id)
        )
        return [(entry.action, entry.detail) for entry in entries]

    return run_db(settings, work)


def cross_tenant_attempts(settings: Settings, tenant_id: int) -> int:
    async def work(session: Any) -> int:
        statement = select(func.count()).where(
            AuditEntry.action == CROSS_TENANT, AuditEntry.tenant_id == tenant_id
        )
        return await session.scalar(statement.select_from(AuditEntry)) or 0

    return run_db(settings, work)


def layer_tables(template: str, modules: list[str]) -> set[str]:
    """The tables a template's and its modules' migrations create, read from the files themselves."""
    folders = [PROJECT_ROOT / "layers" / "templates" / template] + [
        PROJECT_ROOT / "layers" / "modules" / module for module in modules
    ]
    return {
        name
        for folder in folders
        for migration in (folder / "versions").glob("*.py")
        for name in re.findall(r'create_table\(\s*"(\w+)"', migration.read_text())
    }


@dataclass
class World:
    settings: Settings
    admins: dict[str, Credentials]
    units: dict[str, int]
    #: A member of the party's North unit (and everything below it).
    north: Credentials


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Three tenants on SQLite, provisioned once for the whole module."""
    folder: Path = tmp_path_factory.mktemp("walk")
    settings = installation_settings(folder / "data", f"sqlite+aiosqlite:///{folder / 'landlord.db'}")
    asyncio.run(prepare_landlord(settings))
    admins = {}
    for slug, (template, modules) in WALKED.items():
        provision(settings, slug, template=template, modules=modules)
        admins[slug] = add_admin(settings, slug, f"admin@{slug}.example")
    units = add_units(settings, PARTY, [("North", None), ("North Harbour", "North"), ("South", None)])
    north = add_member(settings, PARTY, "north@party.example", unit_ids=[units["North"]])
    yield World(settings, admins, units, north)


# --- Reading a generated form as a browser does ------------------------------------------------


@dataclass
class Control:
    name: str
    tag: str
    type: str = "text"
    value: str = ""
    required: bool = False
    maxlength: int | None = None
    minimum: str | None = None
    step: str | None = None
    options: list[str] = field(default_factory=list)


class FormReader(HTMLParser):
    """The controls of the page's record form, and its CSRF token."""

    def __init__(self, form_id: str = "record-form") -> None:
        super().__init__()
        self.form_id, self.inside, self.csrf = form_id, False, ""
        self.controls: list[Control] = []
        self._select: Control | None = None
        self._textarea: Control | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {key: value or "" for key, value in attrs}
        if tag == "form" and found.get("id") == self.form_id:
            self.inside = True
        if not self.inside:
            return
        if tag == "input" and found.get("name") == "_csrf_token":
            self.csrf = found["value"]
        elif tag in ("input", "select", "textarea") and "name" in found:
            control = Control(
                found["name"],
                tag,
                type=found.get("type", tag),
                value=found.get("value", "")
                if tag != "input" or found.get("type") != "checkbox"
                else ("on" if "checked" in found else ""),
                required="required" in found,
                maxlength=int(found["maxlength"]) if "maxlength" in found else None,
                minimum=found.get("min"),
                step=found.get("step"),
            )
            self.controls.append(control)
            self._select = control if tag == "select" else None
            self._textarea = control if tag == "textarea" else None
        elif tag == "option" and self._select is not None:
            self._select.options.append(found.get("value", ""))
            if "selected" in found:
                self._select.value = found.get("value", "")

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._textarea.value += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        if tag in ("select", "textarea"):
            self._select = self._textarea = None


def read_form(html: str, form_id: str = "record-form") -> FormReader:
    reader = FormReader(form_id)
    reader.feed(html)
    assert reader.csrf, f"no form {form_id!r} with a CSRF token on the page"
    return reader


START = datetime(2025, 1, 6, 9, 0)


def fill(table: str, controls: list[Control]) -> dict[str, str]:
    """Values a person would give, from what each input says it takes: the first choice offered,
    a ticked box, an email address, numbers from the input's minimum, dates and times in the
    inputs' order."""
    values: dict[str, str] = {}
    for position, control in enumerate(controls):
        moment = START + timedelta(days=position)
        if control.tag == "select":
            offered = [option for option in control.options if option]
            values[control.name] = offered[0] if offered else ""
        elif control.type == "checkbox":
            values[control.name] = "on"
        elif control.type == "email":
            values[control.name] = f"{control.name}.{position}@{table.replace('_', '-')}.example"
        elif control.type == "number":
            floor = max(Decimal(control.minimum or 0), Decimal(1))
            values[control.name] = (
                f"{floor + 4}" if control.step in ("1", None) else f"{floor + Decimal('11.5')}"
            )
        elif control.type == "date":
            values[control.name] = moment.date().isoformat()
        elif control.type == "datetime-local":
            values[control.name] = moment.isoformat(timespec="minutes")
        elif control.tag == "textarea":
            values[control.name] = f"Notes on {table}"
        else:
            values[control.name] = f"{table} {control.name} {position}"[: control.maxlength].strip()
    return values


def changed(controls: list[Control], values: dict[str, str]) -> tuple[str, str, str]:
    """One value to change in an edit, and how the row's page shows the new one."""
    for control in controls:
        if control.tag == "input" and control.type == "text" and (control.maxlength or 99) >= 30:
            new = f"{values[control.name][:20]} edited"
            return control.name, new, new
    for control in controls:
        if control.tag == "textarea" or control.type == "number":
            new = f"{values[control.name]}9" if control.type == "number" else "Edited notes"
            return control.name, new, new
    moments = [c for c in controls if c.type in ("date", "datetime-local")]
    last = moments[-1]  # the latest moment moves later, so "ends after starts" still holds
    moved = (datetime.fromisoformat(values[last.name]) + timedelta(days=30)).isoformat(timespec="minutes")
    new = moved[:10] if last.type == "date" else moved
    return last.name, new, new.replace("T", " ")


def field_error(html: str, name: str) -> str | None:
    found = re.search(rf'<p class="field-error" id="error-{name}" role="alert">(.*?)</p>', html, re.DOTALL)
    return unescape(found.group(1)).strip() if found else None


def post(client: TestClient[Any], path: str, values: dict[str, str], csrf: str) -> Any:
    return client.post(path, data={**values, "_csrf_token": csrf}, follow_redirects=False)


# --- Every page and form of every table -----------------------------------------------------------


@pytest.mark.parametrize("slug", list(WALKED))
def test_every_table_of_every_template_and_module_can_be_listed_filled_in_changed_and_deleted(
    world: World, slug: str
) -> None:
    template, modules = WALKED[slug]
    expected = layer_tables(template, modules)
    with portal(world.settings) as client:
        signed_in(client, world.admins[slug])
        listing = client.get(f"/t/{slug}/data")
        assert listing.status_code == 200
        shown = set(re.findall(rf'href="/t/{slug}/data/(\w+)"', listing.text))
        assert shown == expected, "every table the template and modules create, and only those"

        created: list[tuple[str, int]] = []
        waiting = sorted(expected)
        while waiting:
            progress = False
            for table in list(waiting):
                form_page = client.get(f"/t/{slug}/data/{table}/new")
                assert form_page.status_code == 200, form_page.text
                form = read_form(form_page.text)
                if any(c.tag == "select" and c.required and not any(c.options) for c in form.controls):
                    continue  # it points to a table with no rows yet: parents first
                created.append((table, walk_one_table(client, slug, table, form)))
                waiting.remove(table)
                progress = True
            assert progress, f"no table could be filled in: {waiting}"

        for table, record_id in reversed(created):  # children before the rows they point to
            confirm = client.get(f"/t/{slug}/data/{table}/{record_id}/delete")
            assert confirm.status_code == 200 and "cannot be undone" in confirm.text
            csrf = read_form(confirm.text, "confirm-delete").csrf
            assert count_rows(world.settings, slug, table) == 1, "asking is not deleting"
            deleted = post(client, f"/t/{slug}/data/{table}/{record_id}/delete", {}, csrf)
            assert deleted.status_code == 303, (table, deleted.text)
            after = client.get(deleted.headers["location"])
            assert f"Row #{record_id} was deleted." in after.text and "There are no" in after.text
            assert client.get(f"/t/{slug}/data/{table}/{record_id}").status_code == 404

    tenant_actions = [
        (action, detail["table"])
        for action, detail in audit_actions(world.settings, "record.")
        if detail["table"] in expected
    ]
    for action in ("record.create", "record.update", "record.delete"):
        assert sorted(table for done, table in tenant_actions if done == action) == sorted(expected), action


def walk_one_table(client: TestClient[Any], slug: str, table: str, form: FormReader) -> int:
    """Add a row from the generated form, read it, change it: what a person does with a table."""
    base = f"/t/{slug}/data/{table}"
    values = fill(table, form.controls)
    added = post(client, base, values, form.csrf)
    assert added.status_code == 303, f"{table}: {added.status_code} {added.text[:3000]}"
    record_id = int(added.headers["location"].rsplit("/", 1)[1])

    page = client.get(added.headers["location"])
    assert page.status_code == 200
    entered = [
        values[control.name] for control in form.controls if control.type == "text" and values[control.name]
    ]
    assert all(value in page.text for value in entered), f"{table}: the row's page shows what was entered"

    listed = client.get(base)
    assert f'href="{base}/{record_id}"' in listed.text
    name, new, displayed = changed(form.controls, values)
    by_it = client.get(base, params={"sort": name, "dir": "desc"}, headers={"HX-Request": "true"})
    assert by_it.status_code == 200 and 'aria-sort="descending"' in by_it.text and "<html" not in by_it.text

    edit = read_form(client.get(f"{base}/{record_id}/edit").text)
    kept = {control.name: control.value for control in edit.controls}
    assert kept[name] == values[name], f"{table}: the edit form holds the row's values"
    saved = post(client, f"{base}/{record_id}/edit", {**kept, name: new}, edit.csrf)
    assert saved.status_code == 303, f"{table}: {saved.text[:3000]}"
    assert displayed in client.get(f"{base}/{record_id}").text, f"{table}: the change shows"
    return record_id


# --- Wrong input: refused next to its field, nothing written --------------------------------------

TAKEN = "Town hall"
#: A wrong value for each kind of generated field, and what the form says next to it.
WRONG = [
    ("events", "title", "", "Fill in title."),
    ("events", "title", "x" * 201, "At most 200 characters; this has 201."),
    ("events", "capacity", "lots", "Enter a whole number, such as 42."),
    ("tiers", "annual_fee", "12.345", "At most 2 decimal places."),
    ("tiers", "annual_fee", "-5", "Must be at least 0."),
    ("tiers", "annual_fee", "twelve", "Enter a number, such as 12.50."),
    ("member_subscriptions", "starts_on", "31/12/2025", "Enter a date as YYYY-MM-DD, such as 2025-03-31."),
    (
        "events",
        "starts_at",
        "next friday",
        "Enter a date and time as YYYY-MM-DD HH:MM (UTC), such as 2025-03-31 18:30.",
    ),
    ("events", "ends_at", "2024-01-01T00:00", "Must be on or after “Starts at”."),
    ("events", "status", "postponed", "Choose one of: draft, published, cancelled, completed."),
    ("events", "is_public", "perhaps", "Tick it or leave it empty (true or false)."),
    ("events", "venue_id", "987654", "Choose a venue from the list: #987654 is not one you can see."),
    ("events", "unit_id", "987654", "Choose a unit from the list: #987654 is not one you can see."),
    ("venues", "name", TAKEN, "Another row of venues already has this name."),
]


@pytest.fixture(scope="module")
def town_hall(world: World) -> int:
    """A venue of the party, whose name no second venue may take; and a tier, for the
    subscriptions form to offer."""
    add_rows(world.settings, PARTY, "tiers", [{"code": "STD", "name": "Standard", "currency": "EUR"}])
    return add_rows(world.settings, PARTY, "venues", [{"name": TAKEN}])[0]


@pytest.fixture(scope="module")
def party_admin(world: World) -> Iterator[TestClient[Any]]:
    """The party's admin, signed in once for the tests that only look and try."""
    with portal(world.settings) as client:
        yield signed_in(client, world.admins[PARTY])


@pytest.mark.parametrize(
    ("table", "name", "wrong", "message"), WRONG, ids=[f"{t}.{n}:{m[:20]}" for t, n, _, m in WRONG]
)
def test_a_wrong_value_in_any_kind_of_field_is_refused_next_to_it_and_nothing_is_written(
    world: World,
    town_hall: int,
    party_admin: TestClient[Any],
    table: str,
    name: str,
    wrong: str,
    message: str,
) -> None:
    before = count_rows(world.settings, PARTY, table)
    form = read_form(party_admin.get(f"/t/{PARTY}/data/{table}/new").text)
    sent = {**fill(table, form.controls), name: wrong}
    refused = post(party_admin, f"/t/{PARTY}/data/{table}", sent, form.csrf)

    assert refused.status_code == 422, refused.text
    assert field_error(refused.text, name) == message
    assert re.findall(r'id="error-(\w+)"', refused.text) == [name], "only the wrong field is marked"
    assert "Nothing was saved." in refused.text
    assert_no_trace(refused.text)
    again = {control.name: control.value for control in read_form(refused.text).controls}
    kept = {key: value for key, value in sent.items() if key != name or form_keeps(table, name)}
    assert {key: again[key] for key in kept} == kept, "every value is kept as it was typed"
    assert count_rows(world.settings, PARTY, table) == before


def form_keeps(table: str, name: str) -> bool:
    """A select can only show a value it offers; every other input shows what was typed."""
    return (table, name) not in {
        ("events", "status"),
        ("events", "venue_id"),
        ("events", "unit_id"),
    } and not (table == "events" and name == "is_public")


def test_a_member_is_offered_only_their_units_and_may_not_file_a_row_elsewhere(world: World) -> None:
    south_venue = add_rows(
        world.settings, PARTY, "venues", [{"name": "South barn", "unit_id": world.units["South"]}]
    )[0]
    harbour_venue = add_rows(
        world.settings, PARTY, "venues", [{"name": "Harbour shed", "unit_id": world.units["North Harbour"]}]
    )[0]
    before = count_rows(world.settings, PARTY, "events")
    with portal(world.settings) as client:
        signed_in(client, world.north)
        form = read_form(client.get(f"/t/{PARTY}/data/events/new").text)
        offered = {control.name: [o for o in control.options if o] for control in form.controls}
        assert offered["unit_id"] == [str(world.units["North"]), str(world.units["North Harbour"])]
        assert str(harbour_venue) in offered["venue_id"] and str(south_venue) not in offered["venue_id"]
        required = {control.name for control in form.controls if control.required}
        assert "unit_id" in required, "a member's rows live in their units"

        sent = {**fill("events", form.controls), "unit_id": str(world.units["South"])}
        refused = post(client, f"/t/{PARTY}/data/events", sent, form.csrf)
        assert refused.status_code == 422
        assert (
            field_error(refused.text, "unit_id")
            == f"Choose a unit from the list: #{world.units['South']} is not one you can see."
        )
        sent = {**sent, "unit_id": str(world.units["North"]), "venue_id": str(south_venue)}
        refused = post(client, f"/t/{PARTY}/data/events", sent, form.csrf)
        assert (
            field_error(refused.text, "venue_id")
            == f"Choose a venue from the list: #{south_venue} is not one you can see."
        )
        assert count_rows(world.settings, PARTY, "events") == before

        added = post(client, f"/t/{PARTY}/data/events", {**sent, "venue_id": str(harbour_venue)}, form.csrf)
        assert added.status_code == 303
    assert count_rows(world.settings, PARTY, "events") == before + 1


def test_a_member_sees_and_changes_only_their_units_rows(world: World) -> None:
    north, south = add_rows(
        world.settings,
        PARTY,
        "constituencies",
        [
            {"code": "N-1", "name": "North Central", "unit_id": world.units["North Harbour"]},
            {"code": "S-1", "name": "South Central", "unit_id": world.units["South"]},
        ],
    )
    base = f"/t/{PARTY}/data/constituencies"
    with portal(world.settings) as client:
        signed_in(client, world.north)
        listed = client.get(base, params={"q": "Central"}).text
        assert "North Central" in listed and "South Central" not in listed
        assert "1 row" in listed

        for path in (f"{base}/{south}", f"{base}/{south}/edit", f"{base}/{south}/delete"):
            hidden = client.get(path)
            assert hidden.status_code == 404 and "South Central" not in hidden.text, path
        csrf = read_form(client.get(f"{base}/{north}/edit").text).csrf
        for path in (f"{base}/{south}/edit", f"{base}/{south}/delete"):
            assert post(client, path, {"code": "S-1", "name": "Taken over"}, csrf).status_code == 404, path
        assert count_rows(world.settings, PARTY, "constituencies") >= 2
        assert "South Central" in signed_in(client, world.admins[PARTY]).get(f"{base}/{south}").text, (
            "unchanged"
        )

        signed_in(client, world.north)
        edit = read_form(client.get(f"{base}/{north}/edit").text)
        values = {control.name: control.value for control in edit.controls}
        moved = post(
            client, f"{base}/{north}/edit", {**values, "unit_id": str(world.units["South"])}, edit.csrf
        )
        assert moved.status_code == 422 and field_error(moved.text, "unit_id")
        renamed = post(client, f"{base}/{north}/edit", {**values, "name": "North Coast"}, edit.csrf)
        assert renamed.status_code == 303
        assert "North Coast" in client.get(f"{base}/{north}").text

        # A row of theirs may point to one they cannot see; editing it keeps that reference.
        station = add_rows(
            world.settings,
            PARTY,
            "polling_stations",
            [
                {
                    "constituency_id": south,
                    "code": "PS-9",
                    "name": "Quay school",
                    "unit_id": world.units["North Harbour"],
                }
            ],
        )[0]
        stations = f"/t/{PARTY}/data/polling_stations/{station}"
        edit_page = client.get(f"{stations}/edit").text
        assert f"#{south} (not in your view)" in edit_page and "South Central" not in edit_page
        edit = read_form(edit_page)
        values = {control.name: control.value for control in edit.controls}
        assert values["constituency_id"] == str(south)
        saved = post(client, f"{stations}/edit", {**values, "name": "Quay primary school"}, edit.csrf)
        assert saved.status_code == 303, saved.text
        page = signed_in(client, world.admins[PARTY]).get(stations).text
        assert "Quay primary school" in page and f"South Central (#{south})" in page


def test_a_row_others_still_refer_to_is_kept_and_the_page_says_why(world: World) -> None:
    constituency = add_rows(world.settings, PARTY, "constituencies", [{"code": "E-1", "name": "East"}])[0]
    add_rows(world.settings, PARTY, "candidates", [{"constituency_id": constituency, "name": "Ada"}])
    base = f"/t/{PARTY}/data/constituencies/{constituency}"
    with portal(world.settings) as client:
        signed_in(client, world.admins[PARTY])
        csrf = read_form(client.get(f"{base}/delete").text, "confirm-delete").csrf
        kept = post(client, f"{base}/delete", {}, csrf)
        assert kept.status_code == 409
        assert (
            "Other records still refer to this one (in candidates). Change or delete them first." in kept.text
        )
        assert "East" in kept.text and client.get(base).status_code == 200


def test_the_api_refuses_the_same_wrong_values_with_each_field_named(world: World, town_hall: int) -> None:
    admin = add_token(world.settings, world.admins[PARTY].email, PARTY)
    member = add_token(world.settings, world.north.email, PARTY)
    before = count_rows(world.settings, PARTY, "events")
    with portal(world.settings) as client:
        refused = client.post(
            "/api/v1/tenant/data/events",
            json={
                "title": 42,
                "starts_at": "next friday",
                "status": "postponed",
                "is_public": "perhaps",
                "capacity": "lots",
                "venue_id": 987654,
                "tenant_id": 2,
            },
            headers={"Authorization": f"Bearer {admin}"},
        )
        assert refused.status_code == 422, refused.text
        assert {e["field"]: e["message"] for e in refused.json()["errors"]} == {
            "title": "Enter text.",
            "starts_at": "Enter a date and time as YYYY-MM-DD HH:MM (UTC), such as 2025-03-31 18:30.",
            "status": "Choose one of: draft, published, cancelled, completed.",
            "is_public": "Tick it or leave it empty (true or false).",
            "capacity": "Enter a whole number, such as 42.",
            "venue_id": "Choose a venue from the list: #987654 is not one you can see.",
            "tenant_id": "Events has no field 'tenant_id'.",
        }
        outside = client.post(
            "/api/v1/tenant/data/events",
            json={"title": "Rally", "starts_at": "2025-05-01T18:00:00Z", "unit_id": world.units["South"]},
            headers={"Authorization": f"Bearer {member}"},
        )
        assert outside.status_code == 422
        assert [e["field"] for e in outside.json()["errors"]] == ["unit_id"]
        clash = client.post(
            "/api/v1/tenant/data/venues", json={"name": TAKEN}, headers={"Authorization": f"Bearer {admin}"}
        )
        assert clash.status_code == 422
        assert clash.json()["errors"] == [
            {"field": "name", "message": "Another row of venues already has this name."}
        ]
    assert count_rows(world.settings, PARTY, "events") == before


def test_the_api_writes_money_as_text_dates_as_iso_and_times_with_their_offset(world: World) -> None:
    headers = {"Authorization": f"Bearer {add_token(world.settings, world.admins[PARTY].email, PARTY)}"}
    rows = "/api/v1/tenant/data"
    with portal(world.settings) as client:
        account = client.post(
            f"{rows}/finance_accounts",
            json={"code": "MONEY-1", "name": "Campaign fund", "kind": "asset", "currency": "EUR"},
            headers=headers,
        )
        assert account.status_code == 201, account.text
        budget = {
            "account_id": account.json()["id"],
            "name": "Spring",
            "period_start": "2026-03-01",
            "period_end": "2026-05-31",
            "amount": "1250.50",
            "currency": "EUR",
        }
        added = client.post(f"{rows}/budgets", json=budget, headers=headers)
        assert added.status_code == 201, added.text
        listed = client.get(f"{rows}/budgets", params={"q": "Spring"}, headers=headers).json()["items"]
        one = client.get(f"{rows}/budgets/{added.json()['id']}", headers=headers).json()
    for read in (added.json(), listed[0], one):
        assert {name: read[name] for name in budget} == budget, "money as text, dates as YYYY-MM-DD"
        assert datetime.fromisoformat(read["created_at"]).utcoffset() == timedelta(0), "a time says it is UTC"
    assert listed == [one]


# --- The API, on every backend and isolation mode --------------------------------------------------


@pytest.mark.parametrize("isolation", ["database", "shared"])
def test_a_tenant_token_adds_reads_changes_and_deletes_rows_through_the_api(
    settings: Settings, superadmin: Credentials, isolation: str
) -> None:
    provision(settings, "garden-club", isolation=isolation)
    admin = add_admin(settings, "garden-club", "admin@garden.example")
    headers = {"Authorization": f"Bearer {add_token(settings, admin.email, 'garden-club')}"}
    rows = "/api/v1/tenant/data"
    with portal(settings) as client:
        added = client.post(
            f"{rows}/groups", json={"name": "Roses", "description": "Red ones"}, headers=headers
        )
        assert added.status_code == 201, added.text
        roses = added.json()
        assert (roses["name"], roses["is_open"], roses["meeting_schedule"]) == ("Roses", True, None), (
            "defaults apply"
        )
        assert "tenant_id" not in roses and roses["created_at"]
        assert client.get(f"{rows}/groups/{roses['id']}", headers=headers).json() == roses

        member = client.post(
            f"{rows}/community_members",
            json={"name": "Ann", "email": "ann@garden.example", "joined_on": "2025-02-01"},
            headers=headers,
        ).json()
        joined = client.post(
            f"{rows}/group_memberships",
            json={"group_id": roses["id"], "member_id": member["id"], "joined_on": "2025-02-03"},
            headers=headers,
        )
        assert joined.status_code == 201 and joined.json()["role"] == "member"

        patched = client.patch(
            f"{rows}/groups/{roses['id']}", json={"meeting_schedule": "Tuesdays"}, headers=headers
        )
        assert patched.status_code == 200
        assert (patched.json()["name"], patched.json()["meeting_schedule"]) == ("Roses", "Tuesdays")
        replaced = client.put(
            f"{rows}/groups/{roses['id']}",
            json={**roses, "name": "Roses and tulips", "is_open": False},
            headers=headers,
        )
        assert replaced.status_code == 200, replaced.text
        assert (replaced.json()["name"], replaced.json()["is_open"]) == ("Roses and tulips", False)
        assert replaced.json()["meeting_schedule"] is None, "a replacement leaves out what it does not name"

        client.post(f"{rows}/groups", json={"name": "Tulips"}, headers=headers)
        clash = client.post(f"{rows}/groups", json={"name": "Tulips"}, headers=headers)
        assert clash.status_code == 422
        assert clash.json()["errors"] == [
            {"field": "name", "message": "Another row of groups already has this name."}
        ]
        wrong = client.patch(
            f"{rows}/community_members/{member['id']}", json={"joined_on": "soon"}, headers=headers
        )
        assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "joined_on"
        listed = client.get(f"{rows}/groups", params={"sort": "name", "dir": "desc"}, headers=headers).json()
        assert [row["name"] for row in listed["items"]] == ["Tulips", "Roses and tulips"]
        assert client.get(f"{rows}/groups", params={"sort": "tenant_id"}, headers=headers).status_code == 422

        gone = client.delete(f"{rows}/groups/{roses['id']}", headers=headers)
        assert gone.status_code == 204
        assert client.get(f"{rows}/groups/{roses['id']}", headers=headers).status_code == 404
        assert (
            client.get(f"{rows}/group_memberships/{joined.json()['id']}", headers=headers).status_code == 404
        )

        # The same clash through the portal's form: refused next to the field, and the page (which
        # reads the form's choices after the database refused the row) still renders.
        signed_in(client, admin)
        form = read_form(client.get("/t/garden-club/data/groups/new").text)
        refused = post(
            client,
            "/t/garden-club/data/groups",
            {**fill("groups", form.controls), "name": "Tulips"},
            form.csrf,
        )
        assert refused.status_code == 422
        assert field_error(refused.text, "name") == "Another row of groups already has this name."
    assert count_rows(settings, "garden-club", "groups") == 1
    actions = [(action, detail["table"]) for action, detail in audit_actions(settings, "record.")]
    assert actions == [
        ("record.create", "groups"),
        ("record.create", "community_members"),
        ("record.create", "group_memberships"),
        ("record.update", "groups"),
        ("record.update", "groups"),
        ("record.create", "groups"),
        ("record.delete", "groups"),
    ]
    patch, replacement = [detail for _, detail in audit_actions(settings, "record.update")]
    assert (patch["before"], patch["after"]) == (
        {"meeting_schedule": None},
        {"meeting_schedule": "Tuesdays"},
    ), "the trail keeps what a change changed, before and after"
    assert replacement["before"] == {"name": "Roses", "is_open": True, "meeting_schedule": "Tuesdays"}
    assert replacement["after"] == {"name": "Roses and tulips", "is_open": False, "meeting_schedule": None}


def test_another_tenants_rows_are_not_found_and_the_attempts_are_recorded_against_it(
    settings: Settings, superadmin: Credentials
) -> None:
    provision(settings, "garden-club", isolation="shared")
    river_id = provision(settings, "river-club", isolation="shared")
    river_group = add_rows(settings, "river-club", "groups", [{"name": "Kayaks"}])[0]
    river_unit = add_units(settings, "river-club", [("Weir", None)])["Weir"]
    admin = add_admin(settings, "garden-club", "admin@garden.example")
    headers = {"Authorization": f"Bearer {add_token(settings, admin.email, 'garden-club')}"}
    row = f"/api/v1/tenant/data/groups/{river_group}"
    with portal(settings) as client:
        assert client.get(row, headers=headers).status_code == 404
        assert client.put(row, json={"name": "Ours now"}, headers=headers).status_code == 404
        assert client.patch(row, json={"name": "Ours now"}, headers=headers).status_code == 404
        assert client.delete(row, headers=headers).status_code == 404
        pointed = client.post(
            "/api/v1/tenant/data/groups", json={"name": "Annexe", "unit_id": river_unit}, headers=headers
        )
        assert pointed.status_code == 422 and "Weir" not in pointed.text
        assert pointed.json()["errors"] == [
            {
                "field": "unit_id",
                "message": f"Choose a unit from the list: #{river_unit} is not one you can see.",
            }
        ]

        signed_in(client, admin)
        page = f"/t/garden-club/data/groups/{river_group}"
        csrf = read_form(client.get("/t/garden-club/data/groups/new").text).csrf
        for path in (f"{page}/edit", f"{page}/delete"):
            seen = client.get(path)
            assert seen.status_code == 404 and "Kayaks" not in seen.text
            assert post(client, path, {"name": "Ours now"}, csrf).status_code == 404
    assert count_rows(settings, "river-club", "groups") == 1
    assert count_rows(settings, "garden-club", "groups") == 0
    # Four API calls on the row, one reference to its unit, four portal requests: each recorded against river.
    assert cross_tenant_attempts(settings, river_id) == 9


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_times_are_typed_and_shown_on_the_tenants_clock_and_kept_in_utc(
    settings: Settings, superadmin: Credentials
) -> None:
    provision(settings, "tide-club", modules=["events"])
    admin = add_admin(settings, "tide-club", "admin@tide.example")
    base = "/t/tide-club"
    with portal(settings) as client:
        signed_in(client, admin)
        saved = post_form(
            client,
            f"{base}/settings",
            {"name": "Tide Club", "timezone": "Europe/Paris", "accent_colour": "#2f5bd3"},
            follow_redirects=False,
        )
        assert saved.status_code in (200, 303), saved.text

        page = client.get(f"{base}/data/events/new").text
        assert "On the clock of Europe/Paris." in page
        form = read_form(page)
        added = post(
            client,
            f"{base}/data/events",
            {**fill("events", form.controls), "starts_at": "2025-06-01T20:00", "ends_at": ""},
            form.csrf,
        )
        assert added.status_code == 303, added.text
        shown = client.get(added.headers["location"]).text
        assert "2025-06-01 20:00" in shown, "as typed, on the tenant's clock"
        edit = read_form(client.get(f"{added.headers['location']}/edit").text)
        assert {c.name: c.value for c in edit.controls}["starts_at"] == "2025-06-01T20:00"

        token = add_token(settings, admin.email, "tide-club")
        rows = client.get("/api/v1/tenant/data/events", headers={"Authorization": f"Bearer {token}"}).json()
        assert [row["starts_at"] for row in rows["items"]] == ["2025-06-01T18:00:00+00:00"], "kept in UTC"
