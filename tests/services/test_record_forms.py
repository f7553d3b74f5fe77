"""Forms generated from a table's definition: the input each column gets, what a submission may
hold, and what the database refuses, each said next to the field, with nothing written."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import CheckConstraint, Column, Integer, MetaData, Numeric, String, Table, func, select

from services.errors import Conflict, InvalidFields, InvalidInput
from services.layers.catalogue import load_catalogue
from services.layers.migrator import RevisionRun, upgrade_layer
from services.models import IsolationMode
from services.models.tenant import Role, TenantRow, TenantUser, Unit, UnitAssignment
from services.settings import PROJECT_ROOT
from services.tenancy.context import Scope
from services.tenancy.sessions import scoped_session
from services.tenancy.stores import SQLITE, StoreLocation
from services.tenant_data.forms import (
    FieldKind,
    InvalidRecord,
    blank_values,
    from_form,
    input_value,
    read_record,
    record_form,
    table_fields,
    values_of,
)
from services.tenant_data.records import (
    RecordSchema,
    RecordTable,
    create_record,
    delete_record,
    get_record,
    list_records,
    record_schema,
    update_record,
)

T = TypeVar("T")
TENANTS = (1, 2)


async def _forget(_run: RevisionRun) -> None:
    pass


class PartyStore:
    """A shared store of two political parties with events and membership tiers; each has the
    units root > north, root > south."""

    def __init__(self, folder: Path) -> None:
        path = folder / "parties.db"
        self.location = StoreLocation(SQLITE, IsolationMode.SHARED, str(path), f"sqlite+aiosqlite:///{path}")
        self.units: dict[tuple[int, str], int] = {}
        self.key = f"forms-{secrets.token_hex(4)}"

    async def build(self) -> None:
        catalogue = load_catalogue(PROJECT_ROOT / "layers")
        store = self.location.open()
        try:
            for layer in catalogue.layers_for("political_party", ["events", "membership_tiers"]):
                await upgrade_layer(store, layer, _forget)
            for tenant_id in TENANTS:
                async with scoped_session(store.engine, Scope.of_tenant(tenant_id)) as data:
                    root = Unit(name=f"root-{tenant_id}", path="")
                    data.add(root)
                    await data.flush()
                    root.path = f"/{root.id}/"
                    self.units[tenant_id, "root"] = root.id
                    for name in ("north", "south"):
                        unit = Unit(name=f"{name}-{tenant_id}", parent_id=root.id, path="")
                        data.add(unit)
                        await data.flush()
                        unit.path = f"{root.path}{unit.id}/"
                        self.units[tenant_id, name] = unit.id
        finally:
            await store.dispose()

    def admin(self, tenant_id: int = 1) -> Scope:
        return Scope.of_tenant(tenant_id)

    def member_of(self, name: str, tenant_id: int = 1) -> Scope:
        return Scope.of_units(tenant_id, frozenset({self.units[tenant_id, name]}))

    def run(self, scope: Scope, work: Callable[[Any, RecordSchema], Awaitable[T]]) -> T:
        """`work(data, schema)` in a committed session of `scope`."""

        async def go() -> T:
            store = self.location.open()
            try:
                async with scoped_session(store.engine, scope) as data:
                    return await work(data, await record_schema(data, self.key))
            finally:
                await store.dispose()

        return asyncio.run(go())

    def count(self, scope: Scope, table: str) -> int:
        async def work(data: Any, schema: RecordSchema) -> int:
            return await data.scalar(select(func.count()).select_from(schema.table(table).model)) or 0

        return self.run(scope, work)

    def add(self, scope: Scope, table: str, values: dict[str, Any]) -> int:
        async def work(data: Any, schema: RecordSchema) -> int:
            record_id: int = (await create_record(data, schema.table(table), values)).id
            return record_id

        return self.run(scope, work)


@pytest.fixture(scope="module")
def parties(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PartyStore]:
    store = PartyStore(tmp_path_factory.mktemp("parties"))
    asyncio.run(store.build())
    yield store


def _read(
    store: PartyStore, scope: Scope, table: str, submitted: dict[str, Any], **options: Any
) -> dict[str, Any]:
    async def work(data: Any, schema: RecordSchema) -> dict[str, Any]:
        return await read_record(data, schema, schema.table(table), submitted, **options)

    return store.run(scope, work)


def _refusals(
    store: PartyStore, scope: Scope, table: str, submitted: dict[str, Any], **options: Any
) -> dict[str, str]:
    with pytest.raises(InvalidRecord) as refused:
        _read(store, scope, table, submitted, **options)
    return refused.value.errors


def _event(**values: Any) -> dict[str, str]:
    return {"title": "Rally", "starts_at": "2025-05-01T18:00", "status": "draft", **values}


def test_every_column_type_gets_its_own_input(parties: PartyStore) -> None:
    async def work(_data: Any, schema: RecordSchema) -> None:
        events = {field.name: field for field in table_fields(schema.table("events"))}
        assert set(events) == {
            "venue_id",
            "title",
            "description",
            "starts_at",
            "ends_at",
            "status",
            "is_public",
            "unit_id",
            "capacity",
        }, "no id, tenant or created_at: those are the database's"
        assert (events["title"].kind, events["title"].max_length) == (FieldKind.TEXT, 200)
        assert events["description"].kind is FieldKind.TEXTAREA
        assert events["starts_at"].kind is FieldKind.DATETIME
        assert events["capacity"].kind is FieldKind.NUMBER
        assert events["is_public"].kind is FieldKind.CHECKBOX and events["is_public"].default == ""
        assert (events["venue_id"].kind, events["venue_id"].target, events["venue_id"].label) == (
            FieldKind.REFERENCE,
            "venues",
            "Venue",
        )
        assert events["unit_id"].target == "units"
        status = events["status"]
        assert (status.kind, status.default) == (FieldKind.CHOICE, "draft")
        assert [choice.value for choice in status.choices] == ["draft", "published", "cancelled", "completed"]
        assert [comparison.column for comparison in events["ends_at"].comparisons] == ["starts_at"]

        tiers = {field.name: field for field in table_fields(schema.table("tiers"))}
        fee = tiers["annual_fee"]
        assert (fee.kind, fee.scale, fee.step, fee.minimum, fee.default) == (
            FieldKind.DECIMAL,
            2,
            "0.01",
            "0",
            "0",
        )
        assert tiers["is_active"].default == "on"
        subscriptions = {field.name: field for field in table_fields(schema.table("member_subscriptions"))}
        assert subscriptions["starts_on"].kind is FieldKind.DATE
        assert blank_values(schema.table("tiers"))["sort_order"] == "0"

    parties.run(parties.admin(), work)


def test_rules_read_alike_from_sqlite_and_postgresql() -> None:
    """PostgreSQL hands CHECK constraints back in its own words; they mean the same rules."""
    table = Table(
        "pledges",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("kind", String(16), nullable=False),
        Column("amount", Numeric(12, 2), nullable=False),
        Column("low", Integer),
        Column("high", Integer),
        CheckConstraint(
            "kind::text = ANY (ARRAY['cash'::character varying, 'in_kind'::character varying]::text[])"
        ),
        CheckConstraint("amount > 0::numeric"),
        CheckConstraint("(high IS NULL) OR (high >= low)"),
        CheckConstraint("lower(kind) <> 'x'"),
    )
    fields = {field.name: field for field in table_fields(RecordTable("pledges", table, TenantRow))}
    assert [choice.value for choice in fields["kind"].choices] == ["cash", "in_kind"]
    assert [(c.operator, c.number) for c in fields["amount"].comparisons] == [(">", Decimal(0))]
    assert [(c.operator, c.column) for c in fields["high"].comparisons] == [(">=", "low")]


def test_a_submission_becomes_the_values_the_columns_take(parties: PartyStore) -> None:
    values = _read(
        parties,
        parties.admin(),
        "events",
        _event(description="Bring\r\nflags", is_public="on", capacity=" 120 ", ends_at="2025-05-01 21:30"),
    )
    assert values == {
        "title": "Rally",
        "description": "Bring\r\nflags",
        "starts_at": datetime(2025, 5, 1, 18, 0, tzinfo=UTC),
        "ends_at": datetime(2025, 5, 1, 21, 30, tzinfo=UTC),
        "status": "draft",
        "is_public": True,
        "capacity": 120,
        "venue_id": None,
        "unit_id": None,
    }
    api = _read(
        parties,
        parties.admin(),
        "tiers",
        {"code": "GOLD", "name": "Gold", "currency": "EUR", "annual_fee": 12.5},
    )
    assert api == {
        "code": "GOLD",
        "name": "Gold",
        "currency": "EUR",
        "annual_fee": Decimal("12.5"),
        "description": None,
        "unit_id": None,
    }, "left out, a column with a default keeps it (sort order, active) and any other is empty"


def test_every_kind_of_field_says_what_is_wrong_with_it(parties: PartyStore) -> None:
    errors = _refusals(
        parties,
        parties.admin(),
        "events",
        {
            "title": "x" * 201,
            "starts_at": "tomorrow evening",
            "ends_at": "",
            "status": "postponed",
            "is_public": "maybe",
            "capacity": "twelve",
            "venue_id": "999",
            "unit_id": "abc",
            "tenant_id": "2",
        },
    )
    assert errors == {
        "title": "At most 200 characters; this has 201.",
        "starts_at": "Enter a date and time as YYYY-MM-DD HH:MM (UTC), such as 2025-03-31 18:30.",
        "status": "Choose one of: draft, published, cancelled, completed.",
        "is_public": "Tick it or leave it empty (true or false).",
        "capacity": "Enter a whole number, such as 42.",
        "venue_id": "Choose a venue from the list: #999 is not one you can see.",
        "unit_id": "Choose a unit from the list.",
        "tenant_id": "Events has no field 'tenant_id'.",
    }
    fees = _refusals(
        parties, parties.admin(), "tiers", {"code": "", "name": "Gold", "currency": "EUR", "annual_fee": "-1"}
    )
    assert fees == {"code": "Fill in code.", "annual_fee": "Must be at least 0."}
    assert _refusals(
        parties,
        parties.admin(),
        "tiers",
        {"code": "A", "name": "A", "currency": "EUR", "annual_fee": "1.005"},
    ) == {"annual_fee": "At most 2 decimal places."}
    assert _refusals(
        parties, parties.admin(), "tiers", {"code": "A", "name": "A", "currency": "EUR", "annual_fee": "1e12"}
    ) == {"annual_fee": "Too large: at most 10 digits before the decimal point."}
    dates = _refusals(
        parties,
        parties.admin(),
        "member_subscriptions",
        {
            "tier_id": "",
            "member_name": "Ann",
            "member_email": "ann@example.org",
            "starts_on": "31/12/2025",
            "ends_on": "2024-02-30",
        },
    )
    assert dates == {
        "tier_id": "Choose a tier.",
        "starts_on": "Enter a date as YYYY-MM-DD, such as 2025-03-31.",
        "ends_on": "Enter a date as YYYY-MM-DD, such as 2025-03-31.",
    }
    assert _refusals(parties, parties.admin(), "events", _event(ends_at="2025-05-01T17:00")) == {
        "ends_at": "Must be on or after “Starts at”."
    }
    assert _refusals(parties, parties.admin(), "events", _event(capacity=2**31)) == {
        "capacity": "Enter a number from -2147483648 to 2147483647."
    }


def test_a_required_column_with_a_default_may_be_left_out_only_when_creating(parties: PartyStore) -> None:
    event_id = parties.add(parties.admin(), "events", _read(parties, parties.admin(), "events", _event()))

    async def edit(data: Any, schema: RecordSchema) -> dict[str, str]:
        events = schema.table("events")
        row = await get_record(data, events, event_id)
        assert values_of(events, row)["starts_at"] == "2025-05-01T18:00"
        with pytest.raises(InvalidRecord) as refused:
            await read_record(data, schema, events, from_form(events, {"title": "Rally"}), row=row)
        partial = await read_record(
            data, schema, events, {"ends_at": "2025-05-01T20:00"}, row=row, partial=True
        )
        assert partial == {"ends_at": datetime(2025, 5, 1, 20, 0, tzinfo=UTC)}
        with pytest.raises(InvalidRecord) as backwards:
            await read_record(data, schema, events, {"ends_at": "2025-04-01T20:00"}, row=row, partial=True)
        assert backwards.value.errors == {"ends_at": "Must be on or after “Starts at”."}, (
            "against the row's start"
        )
        return refused.value.errors

    assert parties.run(parties.admin(), edit) == {
        "starts_at": "Fill in starts at.",
        "status": "Choose a status.",
    }, "an unticked checkbox is false, an empty optional field empty"


def test_a_member_is_offered_and_may_name_only_what_their_units_hold(parties: PartyStore) -> None:
    north_venue = parties.add(
        parties.admin(), "venues", {"name": "North hall", "unit_id": parties.units[1, "north"]}
    )
    south_venue = parties.add(
        parties.admin(), "venues", {"name": "South hall", "unit_id": parties.units[1, "south"]}
    )
    other_tenants = parties.add(parties.admin(2), "venues", {"name": "Their hall"})
    north = parties.member_of("north")

    async def offered(data: Any, schema: RecordSchema) -> dict[str, list[str]]:
        form = await record_form(data, schema, schema.table("events"), {}, creating=True)
        fields = {field.name: field for field in form.fields}
        assert fields["unit_id"].required, "a member's rows live in their units"
        return {name: [choice.label for choice in fields[name].choices] for name in ("venue_id", "unit_id")}

    assert parties.run(north, offered) == {
        "venue_id": [f"North hall (#{north_venue})"],
        "unit_id": [f"north-1 (#{parties.units[1, 'north']})"],
    }
    with pytest.raises(InvalidRecord) as refused:
        _read(
            parties,
            north,
            "events",
            _event(venue_id=str(south_venue), unit_id=str(parties.units[1, "south"])),
        )
    assert set(refused.value.errors) == {"venue_id", "unit_id"}
    assert refused.value.hidden_references == {
        "venue_id": ("venues", south_venue),
        "unit_id": ("units", parties.units[1, "south"]),
    }
    assert _refusals(parties, parties.admin(), "events", _event(venue_id=other_tenants)) == {
        "venue_id": f"Choose a venue from the list: #{other_tenants} is not one you can see."
    }, "another tenant's row is refused as if it did not exist"
    assert _refusals(parties, north, "events", _event()) == {"unit_id": "Choose a unit."}


def test_a_person_select_offers_active_people_and_a_member_only_those_of_their_units(
    parties: PartyStore,
) -> None:
    async def people(data: Any, _schema: RecordSchema) -> dict[str, int]:
        role = Role(key="member", name="Member")
        data.add(role)
        await data.flush()
        made: dict[str, int] = {}
        for name, unit, active in (
            ("Nell North", "north", True),
            ("Sam South", "south", True),
            ("Gone North", "north", False),
            ("Una Unplaced", None, True),
        ):
            person = TenantUser(
                account_id=1000 + len(made),
                email=f"{len(made)}@example.org",
                display_name=name,
                role_id=role.id,
                is_active=active,
            )
            data.add(person)
            await data.flush()
            if unit is not None:
                data.add(UnitAssignment(user_id=person.id, unit_id=parties.units[1, unit]))
            made[name] = person.id
        return made

    ids = parties.run(parties.admin(), people)

    async def offered(data: Any, schema: RecordSchema) -> list[str]:
        form = await record_form(data, schema, schema.table("event_registrations"), {}, creating=True)
        return [choice.label for choice in next(f for f in form.fields if f.name == "user_id").choices]

    def registration(person: str) -> dict[str, Any]:
        return {
            "event_id": "1",
            "attendee_name": "A",
            "attendee_email": "a@example.org",
            "user_id": ids[person],
        }

    assert parties.run(parties.admin(), offered) == [
        f"Nell North (#{ids['Nell North']})",
        f"Sam South (#{ids['Sam South']})",
        f"Una Unplaced (#{ids['Una Unplaced']})",
    ], "never a deactivated person"
    assert parties.run(parties.member_of("north"), offered) == [f"Nell North (#{ids['Nell North']})"]
    assert "user_id" in _refusals(parties, parties.admin(), "event_registrations", registration("Gone North"))
    refused = _refusals(parties, parties.member_of("north"), "event_registrations", registration("Sam South"))
    assert refused["user_id"] == f"Choose a user from the list: #{ids['Sam South']} is not one you can see."


def test_a_reference_no_column_can_hold_is_refused_like_a_missing_row(parties: PartyStore) -> None:
    refused = _refusals(parties, parties.admin(), "events", _event(venue_id=10**30, unit_id=str(2**31)))

    assert refused == {
        "venue_id": f"Choose a venue from the list: #{10**30} is not one you can see.",
        "unit_id": f"Choose a unit from the list: #{2**31} is not one you can see.",
    }


def test_what_the_database_refuses_is_said_of_its_field_and_nothing_is_written(parties: PartyStore) -> None:
    parties.add(parties.admin(), "provinces", {"code": "NP", "name": "Northern"})
    before = parties.count(parties.admin(), "provinces")
    with pytest.raises(InvalidFields) as clash:
        parties.add(parties.admin(), "provinces", {"code": "NP2", "name": "Northern"})
    assert clash.value.errors == {"name": "Another row of provinces already has this name."}
    with pytest.raises(InvalidFields) as outside:
        parties.add(
            parties.member_of("north"),
            "provinces",
            {"code": "S", "name": "S", "unit_id": parties.units[1, "south"]},
        )
    assert outside.value.errors == {"unit_id": "Choose one of your own units: records are kept in them."}
    assert parties.count(parties.admin(), "provinces") == before

    province = parties.add(parties.admin(), "provinces", {"code": "WP", "name": "Western"})
    district = parties.add(
        parties.admin(), "districts", {"code": "W1", "name": "West one", "province_id": province}
    )

    async def delete_province(data: Any, schema: RecordSchema) -> None:
        provinces = schema.table("provinces")
        await delete_record(data, schema, provinces, await get_record(data, provinces, province))

    with pytest.raises(Conflict, match=r"still refer to this one \(in districts\)"):
        parties.run(parties.admin(), delete_province)

    async def rename_district(data: Any, schema: RecordSchema) -> str:
        districts = schema.table("districts")
        row = await update_record(
            data, districts, await get_record(data, districts, district), {"name": "West"}
        )
        return str(row.name)

    assert parties.run(parties.admin(), rename_district) == "West"
    assert parties.count(parties.admin(), "provinces") == before + 1


def test_rows_sort_by_any_column_of_the_table_and_nothing_else(parties: PartyStore) -> None:
    for name in ("Zeta hall", "Alpha hall"):
        parties.add(parties.admin(), "venues", {"name": name, "seats": 10})

    async def names(data: Any, schema: RecordSchema, sort: str, direction: str = "asc") -> list[str]:
        page = await list_records(data, schema.table("venues"), query="hall", sort=sort, direction=direction)
        return [row.name for row in page.rows]

    ascending = parties.run(parties.admin(), lambda d, s: names(d, s, sort="name", direction="asc"))
    assert ascending == sorted(ascending)
    assert (
        parties.run(parties.admin(), lambda d, s: names(d, s, sort="name", direction="desc"))
        == ascending[::-1]
    )
    with pytest.raises(InvalidInput, match="sorted by id, name"):
        parties.run(parties.admin(), lambda d, s: names(d, s, sort="tenant_id"))
    with pytest.raises(InvalidInput, match="asc or desc"):
        parties.run(parties.admin(), lambda d, s: names(d, s, sort="name", direction="up"))


def test_a_form_shows_times_in_utc_and_dates_as_iso(parties: PartyStore) -> None:
    assert input_value(datetime(2025, 5, 1, 20, 15, tzinfo=UTC)) == "2025-05-01T20:15"
    assert input_value(datetime(2025, 5, 1, 20, 15, 7)) == "2025-05-01T20:15:07"
    assert input_value(date(2025, 5, 1)) == "2025-05-01"
    assert input_value(Decimal("12.50")) == "12.50"
    assert (input_value(True), input_value(False), input_value(None)) == ("on", "", "")
