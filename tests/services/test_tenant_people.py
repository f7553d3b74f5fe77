"""A tenant's people, unit tree, settings and usage, through the services the portal calls: each
step in a committed transaction of its own, as a request makes it, on real provisioned tenants."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.db import Database
from services.errors import Conflict, InvalidFields, InvalidInput, NotFound
from services.models import Plan, Tenant, User
from services.models.tenant import Unit
from services.people.people import (
    change_role,
    deactivate_person,
    invite_person,
    let_in,
    list_people,
    reactivate_person,
    set_units,
)
from services.people.units import add_unit, delete_unit, move_unit, rename_unit, unit_tree
from services.settings import Settings
from services.tenancy.access import TENANT_ADMIN, TENANT_MEMBER, grant_access, scope_for
from services.tenancy.context import Scope
from services.tenancy.sessions import scoped_session
from services.tenancy.stores import location_of
from services.tenant_data.records import record_schema
from services.tenant_settings import read_settings, update_settings
from services.tenant_usage import measure_tenant_usage
from tests.support import Credentials, requires_postgres
from tests.web.tenant_world import add_admin, add_member, add_rows, add_units, provision

T = TypeVar("T")

#: Every isolation mode on each landlord backend it exists on (schemas are PostgreSQL's).
EVERY_STORE = [
    ("sqlite", "database"),
    ("sqlite", "shared"),
    *(
        pytest.param("postgres", isolation, marks=requires_postgres)
        for isolation in ("database", "shared", "schema")
    ),
]
Work = Callable[[AsyncSession, AsyncSession, Tenant], Awaitable[T]]


class Installation:
    """The landlord database and the tenants' stores, as the portal reaches them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def run(self, slug: str, work: Work[T], *, scope: Scope | None = None) -> T:
        """`work(landlord, data, tenant)` in one committed transaction on each side."""

        async def go() -> T:
            async with self._sessions(slug, scope) as (landlord, data, tenant):
                return await work(landlord, data, tenant)

        return asyncio.run(go())

    @asynccontextmanager
    async def _sessions(
        self, slug: str, scope: Scope | None
    ) -> AsyncIterator[tuple[AsyncSession, AsyncSession, Tenant]]:
        database = Database(self.settings.database_url)
        try:
            async with database.session() as landlord:
                tenant = await landlord.scalar(select(Tenant).where(Tenant.slug == slug))
                assert tenant is not None
                store = location_of(self.settings, tenant).open()
                try:
                    async with scoped_session(store.engine, scope or Scope.of_tenant(tenant.id)) as data:
                        yield landlord, data, tenant
                finally:
                    await store.dispose()
        finally:
            await database.dispose()

    def refused(self, slug: str, work: Work[Any]) -> Exception:
        """What `work` is refused with; nothing of it is committed."""
        with pytest.raises((InvalidInput, NotFound, Conflict)) as refusal:
            self.run(slug, work)
        return refusal.value

    def account_id(self, email: str) -> int:
        async def work(landlord: AsyncSession, _data: AsyncSession, _tenant: Tenant) -> int:
            account = await landlord.scalar(select(User.id).where(User.email == email))
            assert account is not None
            return account

        return self.run(SLUG, work)

    def scope_of(self, email: str) -> Scope | None:
        """The scope `email` gets at the tenant's door; None when the door refuses them."""

        async def work(landlord: AsyncSession, data: AsyncSession, tenant: Tenant) -> Scope | None:
            user = await landlord.scalar(select(User).where(User.email == email))
            assert user is not None
            access = grant_access(tenant, user, switched_into=None, via_token=False)
            return None if access is None else await scope_for(data, access, user)

        return self.run(SLUG, work)

    def set_plan(self, **limits: int | None) -> None:
        """Put the tenant on a plan "Tiny" with these limits (none for the others)."""
        unlimited: dict[str, int | None] = {"max_users": None, "max_modules": None, "max_storage_mb": None}

        async def work(landlord: AsyncSession, _data: AsyncSession, tenant: Tenant) -> None:
            landlord.add(Plan(key="tiny", name="Tiny", modules=None, **(unlimited | limits)))
            await landlord.flush()
            await landlord.execute(update(Tenant).where(Tenant.id == tenant.id).values(plan_key="tiny"))

        self.run(SLUG, work)


SLUG = "garden-club"


@pytest.fixture
def installation(settings: Settings, superadmin: Credentials) -> Installation:
    return Installation(settings)


def _invite(email: str, *, role: str = TENANT_MEMBER, units: list[int] | None = None) -> Work[Any]:
    """The whole invitation: `run` commits the store (the profile) before the landlord (the door)."""

    async def work(landlord: AsyncSession, data: AsyncSession, tenant: Tenant) -> Any:
        invitation = await invite_person(
            landlord, data, tenant, email=email, display_name="", role=role, unit_ids=units or []
        )
        await let_in(landlord, tenant, invitation)
        return invitation

    return work


def test_an_invitation_is_refused_on_each_field_that_is_wrong_and_the_plans_limit(
    settings: Settings, installation: Installation
) -> None:
    provision(settings, SLUG)
    units = add_units(settings, SLUG, [("North", None)])
    add_admin(settings, SLUG, "admin@garden.example")
    installation.set_plan(max_users=2)

    invited = installation.run(SLUG, _invite("Rose@Garden.example", units=[units["North"]]))
    assert invited.user.email == "rose@garden.example" and len(invited.password) >= 12

    refusal = installation.refused(
        SLUG, _invite("rose@garden.example", role="owner", units=[units["North"] + 99])
    )
    assert isinstance(refusal, InvalidFields)
    assert refusal.errors["email"] == "rose@garden.example is already one of Garden Club's people."
    assert refusal.errors["role"] == "Choose a role: tenant admin or member."
    assert "not here" in refusal.errors["units"]
    assert refusal.errors["people"].startswith(
        "Garden Club's plan (Tiny) allows 2 active people, and 2 are active."
    )

    refusal = installation.refused(SLUG, _invite("not-an-email"))
    assert isinstance(refusal, InvalidFields) and set(refusal.errors) == {"email", "people"}
    people = installation.run(SLUG, lambda landlord, data, tenant: list_people(landlord, data, tenant))
    assert sorted(person.email for person in people) == ["admin@garden.example", "rose@garden.example"]


def test_the_last_active_admin_is_neither_demoted_nor_deactivated(
    settings: Settings, installation: Installation
) -> None:
    tenant_id = provision(settings, SLUG)
    add_admin(settings, SLUG, "admin@garden.example")
    add_member(settings, SLUG, "member@garden.example")
    admin, member = (
        installation.account_id("admin@garden.example"),
        installation.account_id("member@garden.example"),
    )

    refusal = installation.refused(
        SLUG, lambda landlord, data, tenant: change_role(landlord, data, tenant, admin, TENANT_MEMBER)
    )
    assert str(refusal) == (
        "admin@garden.example is the last active admin of Garden Club: make someone else an admin before "
        "you make them a member."
    )
    refusal = installation.refused(
        SLUG,
        lambda landlord, data, tenant: deactivate_person(landlord, data, tenant, admin, by_account_id=member),
    )
    assert "last active admin" in str(refusal)
    assert "You cannot deactivate yourself" in str(
        installation.refused(
            SLUG,
            lambda landlord, data, tenant: deactivate_person(
                landlord, data, tenant, admin, by_account_id=admin
            ),
        )
    )

    promoted = installation.run(
        SLUG, lambda landlord, data, tenant: change_role(landlord, data, tenant, member, TENANT_ADMIN)
    )
    assert promoted.is_admin
    assert installation.scope_of("member@garden.example") == Scope.of_tenant(tenant_id), (
        "takes effect at once"
    )
    demoted = installation.run(
        SLUG, lambda landlord, data, tenant: change_role(landlord, data, tenant, admin, TENANT_MEMBER)
    )
    assert not demoted.is_admin
    assert installation.scope_of("admin@garden.example") == Scope.of_units(tenant_id, frozenset())


def test_a_deactivated_person_is_refused_at_the_door_and_comes_back_as_they_were(
    settings: Settings, installation: Installation
) -> None:
    provision(settings, SLUG)
    units = add_units(settings, SLUG, [("North", None), ("Harbour", "North"), ("South", None)])
    add_admin(settings, SLUG, "admin@garden.example")
    add_member(settings, SLUG, "member@garden.example", unit_ids=[units["North"]])
    admin, member = (
        installation.account_id("admin@garden.example"),
        installation.account_id("member@garden.example"),
    )
    in_view = installation.scope_of("member@garden.example")
    assert in_view is not None and in_view.unit_ids == frozenset({units["North"], units["Harbour"]})
    reassigned = installation.run(
        SLUG, lambda landlord, data, tenant: set_units(landlord, data, tenant, member, [units["South"]])
    )
    assert [unit.name for unit in reassigned.units] == ["South"]
    in_view = installation.scope_of("member@garden.example")
    assert in_view is not None and in_view.unit_ids == frozenset({units["South"]})

    gone = installation.run(
        SLUG,
        lambda landlord, data, tenant: deactivate_person(landlord, data, tenant, member, by_account_id=admin),
    )
    assert not gone.active and [unit.name for unit in gone.units] == ["South"]
    assert installation.scope_of("member@garden.example") is None, "the door refuses them"

    installation.set_plan(max_users=1)
    refusal = installation.refused(
        SLUG, lambda landlord, data, tenant: reactivate_person(landlord, data, tenant, member)
    )
    assert "allows 1 active person, and 1 is active" in str(refusal)

    async def lift_limit(landlord: AsyncSession, _data: AsyncSession, _tenant: Tenant) -> None:
        await landlord.execute(update(Plan).where(Plan.key == "tiny").values(max_users=None))

    installation.run(SLUG, lift_limit)
    back = installation.run(
        SLUG, lambda landlord, data, tenant: reactivate_person(landlord, data, tenant, member)
    )
    assert back.active and back.role == TENANT_MEMBER and [unit.name for unit in back.units] == ["South"]
    assert installation.scope_of("member@garden.example") == in_view


@pytest.mark.parametrize(("database_url", "isolation"), EVERY_STORE, indirect=["database_url"])
def test_moving_a_unit_takes_its_subtree_along_and_a_members_scope_follows(
    settings: Settings, installation: Installation, isolation: str
) -> None:
    provision(settings, SLUG, isolation=isolation)
    units = add_units(
        settings, SLUG, [("North", None), ("Harbour", "North"), ("Quay", "Harbour"), ("South", None)]
    )
    add_member(settings, SLUG, "south@garden.example", unit_ids=[units["South"]])
    add_rows(settings, SLUG, "groups", [{"name": "Quay rowers", "unit_id": units["Quay"]}])

    def move(unit: str, parent: str) -> Work[Unit]:
        return lambda _landlord, data, _tenant: move_unit(data, units[unit], units[parent])

    assert "cannot move under itself" in str(installation.refused(SLUG, move("North", "North")))
    assert "cannot move under Harbour, which is inside it" in str(
        installation.refused(SLUG, move("North", "Harbour"))
    )
    assert "is the top of the tree" in str(installation.refused(SLUG, move("root", "North")))
    pier = installation.run(
        SLUG, lambda _landlord, data, _tenant: add_unit(data, parent_id=units["South"], name="Harbour")
    )
    assert "already a unit called 'Harbour' in South" in str(
        installation.refused(SLUG, move("Harbour", "South"))
    )
    installation.run(SLUG, lambda _landlord, data, _tenant: rename_unit(data, pier.id, "Pier"))

    installation.run(SLUG, move("Harbour", "South"))

    async def paths(_landlord: AsyncSession, data: AsyncSession, _tenant: Tenant) -> dict[int, str]:
        return {unit.id: unit.path for unit in await unit_tree(data)}

    tree = installation.run(SLUG, paths)
    root, south, harbour = tree[units["root"]], tree[units["South"]], tree[units["Harbour"]]
    assert harbour == f"{south}{units['Harbour']}/" and south == f"{root}{units['South']}/"
    assert tree[units["Quay"]] == f"{harbour}{units['Quay']}/"
    assert tree[units["North"]] == f"{root}{units['North']}/"
    scope = installation.scope_of("south@garden.example")
    assert scope is not None
    assert scope.unit_ids == frozenset({units["South"], pier.id, units["Harbour"], units["Quay"]}), (
        "the member of South now sees Harbour and everything below it"
    )

    async def rows_seen(_landlord: AsyncSession, data: AsyncSession, tenant: Tenant) -> list[str]:
        schema = await record_schema(data, f"people-test-{isolation}-{tenant.id}")
        groups = schema.table("groups")
        return list(await data.scalars(select(groups.table.c.name).select_from(groups.model)))

    assert installation.run(SLUG, rows_seen, scope=scope) == ["Quay rowers"]


def test_a_unit_is_deleted_only_when_empty_and_never_the_root(
    settings: Settings, installation: Installation
) -> None:
    provision(settings, SLUG)
    units = add_units(settings, SLUG, [("North", None), ("Harbour", "North"), ("Empty", None)])
    add_member(settings, SLUG, "north@garden.example", unit_ids=[units["North"]])
    add_rows(settings, SLUG, "groups", [{"name": "Roses", "unit_id": units["North"]}])

    def remove(unit: str) -> Work[Unit]:
        async def work(_landlord: AsyncSession, data: AsyncSession, tenant: Tenant) -> Unit:
            schema = await record_schema(data, f"delete-test-{tenant.id}")
            return await delete_unit(data, units[unit], schema.tables.values())

        return work

    assert str(installation.refused(SLUG, remove("North"))) == (
        "North still has 1 unit inside it, 1 person assigned to it, 1 row in groups: move or remove them first."
    )
    assert "top of the tree" in str(installation.refused(SLUG, remove("root")))
    assert installation.run(SLUG, remove("Empty")).name == "Empty"

    async def names(_landlord: AsyncSession, data: AsyncSession, _tenant: Tenant) -> list[str]:
        return [unit.name for unit in await unit_tree(data)]

    assert installation.run(SLUG, names) == ["Garden Club", "North", "Harbour"]


def test_settings_are_refused_whole_on_any_mistake_and_the_name_reaches_the_landlord(
    settings: Settings, installation: Installation
) -> None:
    provision(settings, SLUG)

    def save(name: str, timezone: str, colour: str) -> Work[dict[str, tuple[str, str]]]:
        return lambda landlord, data, tenant: update_settings(
            landlord, data, tenant, name=name, timezone=timezone, accent_colour=colour
        )

    refusal = installation.refused(SLUG, save("  ", "Mars/Olympus", "blue"))
    assert isinstance(refusal, InvalidFields)
    assert set(refusal.errors) == {"name", "timezone", "accent_colour"}
    refusal = installation.refused(SLUG, save("Gardeners", "Europe/Paris", "#12345"))
    assert isinstance(refusal, InvalidFields) and set(refusal.errors) == {"accent_colour"}

    async def current(
        _landlord: AsyncSession, data: AsyncSession, tenant: Tenant
    ) -> tuple[str, str, str, str]:
        stored = await read_settings(data, tenant)
        return tenant.name, stored.name, stored.timezone, stored.accent_colour

    assert installation.run(SLUG, current) == ("Garden Club", "Garden Club", "UTC", "#2f5bd3")
    changed = installation.run(SLUG, save(" Gardeners ", "Europe/Paris", "#AA3300"))
    assert changed == {
        "name": ("Garden Club", "Gardeners"),
        "timezone": ("UTC", "Europe/Paris"),
        "accent_colour": ("#2f5bd3", "#aa3300"),
    }
    assert installation.run(SLUG, current) == ("Gardeners", "Gardeners", "Europe/Paris", "#aa3300")


@pytest.mark.parametrize(("database_url", "isolation"), EVERY_STORE, indirect=["database_url"])
def test_usage_counts_people_rows_per_module_and_storage_against_the_plan(
    settings: Settings, installation: Installation, isolation: str
) -> None:
    provision(settings, SLUG, isolation=isolation)
    add_admin(settings, SLUG, "admin@garden.example")
    add_member(settings, SLUG, "member@garden.example")
    add_rows(settings, SLUG, "groups", [{"name": "Roses"}, {"name": "Tulips"}, {"name": "Cacti"}])
    installation.set_plan(max_users=4, max_storage_mb=50)
    member = installation.account_id("member@garden.example")
    admin = installation.account_id("admin@garden.example")
    installation.run(
        SLUG,
        lambda landlord, data, tenant: deactivate_person(landlord, data, tenant, member, by_account_id=admin),
    )

    async def measure(landlord: AsyncSession, data: AsyncSession, tenant: Tenant) -> Any:
        return await measure_tenant_usage(landlord, settings, tenant, data)

    usage = installation.run(SLUG, measure)
    assert (usage.people.used, usage.people.limit, usage.people.percent) == (1, 4, 25)
    assert usage.modules.used == 0 and usage.modules.limit is None
    [template] = usage.layers
    assert template.layer.name == "community_group"
    assert dict(template.tables)["groups"] == 3 and template.rows == 3
    if isolation == "shared":
        assert usage.storage is None
    else:
        assert usage.storage_bytes is not None and usage.storage_bytes > 0
        assert usage.storage is not None and usage.storage.limit == 50
        assert usage.storage.percent == round(100 * usage.storage_bytes / (50 * 1024 * 1024))
