"""The layers on disk: the templates and modules the catalogue reads, how a module choice resolves
(and how it is refused), and what each layer's migrations actually create: which tables, owned by
which layer, referring to what."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from services.db import Database
from services.layers.catalogue import Catalogue, Layer, LayerKind, ModuleProblems, load_catalogue
from services.layers.migrator import revisions
from services.layers.snapshot import take_snapshot
from tests.services.layers.stores import business_tables, catalogue, every_layer, foundation, requirements, up

# --- the catalogue ------------------------------------------------------------------------------


def test_the_catalogue_has_three_templates_and_at_least_eight_modules() -> None:
    found = catalogue()
    assert sorted(found.templates) == ["community_group", "non_profit", "political_party"]
    assert len(found.modules) >= 8
    assert {
        "membership_tiers",
        "events",
        "finance",
        "simple_ledger",
        "election_campaign",
        "social_media",
        "documents",
        "volunteering",
    } <= set(found.modules)
    for layer in [*found.templates.values(), *found.modules.values()]:
        assert layer.title and layer.title != layer.name, layer.key
        assert layer.description, layer.key
        assert layer.version.count(".") == 2 and layer.version != "0", layer.key
        assert revisions(layer), f"{layer.key} has migrations"
    assert found.modules["election_campaign"].requires == ("events",)
    assert found.modules["volunteering"].requires == ("events",)
    assert found.modules["finance"].conflicts == ("simple_ledger",)
    assert found.modules["simple_ledger"].conflicts == ("finance",)


@pytest.mark.parametrize("template", sorted(catalogue().templates))
def test_each_templates_default_modules_resolve(template: str) -> None:
    found = catalogue()
    defaults = found.templates[template].default_modules
    assert defaults, f"{template} names its default modules"
    resolved = found.resolve_modules(template, list(defaults))
    assert sorted(resolved) == sorted(defaults)
    for index, name in enumerate(resolved):
        assert set(found.modules[name].requires) <= set(resolved[:index]), f"{name} after its requirements"


def test_requirements_come_first() -> None:
    resolved = catalogue().resolve_modules(
        "political_party", ["election_campaign", "membership_tiers", "events"]
    )
    assert resolved.index("events") < resolved.index("election_campaign")
    assert sorted(resolved) == ["election_campaign", "events", "membership_tiers"]
    layers = catalogue().layers_for("political_party", resolved)
    assert [layer.key for layer in layers[:2]] == ["basic", "templates/political_party"]


MODULE_KEYS = "documents, election_campaign, events, finance, membership_tiers, simple_ledger, social_media and volunteering"


def problems_of(template: str, chosen: list[str], found: Catalogue | None = None) -> list[str]:
    """What resolving the choice refuses, a sentence each."""
    with pytest.raises(ModuleProblems) as refused:
        (found or catalogue()).resolve_modules(template, chosen)
    assert refused.value.field == "modules"
    assert refused.value.message == "\n".join(refused.value.problems), "the message has a line each"
    return list(refused.value.problems)


def test_an_unknown_module_is_named_as_typed_with_the_modules_there_are() -> None:
    assert problems_of("non_profit", ["finance", "crowdfunding"]) == [
        f"There is no module 'crowdfunding': leave it out; the modules are {MODULE_KEYS}."
    ]
    assert problems_of("non_profit", ["Finance", "crowdfunding", "finance"]) == [
        f"There are no modules 'Finance' and 'crowdfunding': leave them out; the modules are {MODULE_KEYS}."
    ]


def test_a_missing_requirement_names_both_modules_by_title_and_says_what_to_tick() -> None:
    assert problems_of("political_party", ["election_campaign"]) == [
        "Election campaign needs Events: tick Events too, or untick Election campaign."
    ]


def test_conflicting_modules_are_named_by_title() -> None:
    assert problems_of("non_profit", ["finance", "documents", "simple_ledger"]) == [
        "Finance and Simple ledger cannot be enabled together: choose one."
    ]


def test_every_problem_of_a_choice_is_reported_at_once() -> None:
    assert problems_of(
        "political_party", ["election_campaign", "volunteering", "simple_ledger", "finance", "teleportation"]
    ) == [
        f"There is no module 'teleportation': leave it out; the modules are {MODULE_KEYS}.",
        "Election campaign needs Events: tick Events too, or untick Election campaign.",
        "Volunteering needs Events: tick Events too, or untick Volunteering.",
        "Simple ledger and Finance cannot be enabled together: choose one.",
    ]


def _layer(folder: Path, manifest: str) -> None:
    folder.mkdir(parents=True)
    (folder / "manifest.toml").write_text(manifest)


def test_requirements_of_requirements_and_cycles_are_named_with_the_modules_they_pass(tmp_path: Path) -> None:
    _layer(tmp_path / "basic", 'name = "basic"\n')
    _layer(tmp_path / "templates" / "club", 'name = "club"\n')
    _layer(tmp_path / "modules" / "alpha", 'name = "alpha"\nrequires = ["beta"]\n')
    _layer(tmp_path / "modules" / "beta", 'name = "beta"\nrequires = ["kappa"]\n')
    _layer(tmp_path / "modules" / "kappa", 'name = "kappa"\nrequires = ["alpha"]\n')
    _layer(tmp_path / "modules" / "gamma", 'name = "gamma"\nrequires = ["delta"]\n')
    _layer(tmp_path / "modules" / "delta", 'name = "delta"\nrequires = ["epsilon"]\n')
    _layer(tmp_path / "modules" / "epsilon", 'name = "epsilon"\n')
    _layer(tmp_path / "modules" / "zeta", 'name = "zeta"\nrequires = ["omega", "epsilon"]\n')
    found = load_catalogue(tmp_path)
    assert found.modules["alpha"].requires == ("beta",)

    def problems(chosen: list[str]) -> list[str]:
        return problems_of("club", chosen, found)

    circle = "so none of them can be enabled first: leave them out (their manifests need mending)."
    assert problems(["alpha", "beta", "kappa"]) == [
        f"Alpha needs Beta, Beta needs Kappa, and Kappa needs Alpha, {circle}"
    ]
    # One module of a cycle: what it needs, and the cycle from it, at once.
    assert problems(["kappa"]) == [
        "Kappa needs Alpha, and Alpha needs Beta: tick Alpha and Beta too, or untick Kappa.",
        f"Kappa needs Alpha, Alpha needs Beta, and Beta needs Kappa, {circle}",
    ]
    # A requirement of a requirement: the module that needs it is named, once.
    assert problems(["gamma", "delta"]) == ["Delta needs Epsilon: tick Epsilon too, or untick Delta."]
    assert problems(["gamma"]) == [
        "Gamma needs Delta, and Delta needs Epsilon: tick Delta and Epsilon too, or untick Gamma."
    ]
    assert problems(["zeta"]) == [
        "Zeta needs Epsilon: tick Epsilon too, or untick Zeta.",
        "Zeta needs 'omega', which this installation does not have: untick Zeta.",
    ]
    assert found.resolve_modules("club", ["gamma", "delta", "epsilon"]) == ["epsilon", "delta", "gamma"]


# --- what the layers create ----------------------------------------------------------------------


def _unique_in_order(connection: Connection) -> dict[str, list[list[str]]]:
    """Each table's unique constraints with their columns in order (a snapshot sorts them)."""
    inspector = inspect(connection)
    return {
        table: [unique["column_names"] for unique in inspector.get_unique_constraints(table)]
        for table in inspector.get_table_names()
    }


def _describe_alone(layer: Layer, folder: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The schema beneath `layer` (basic and its requirements) and with it, on a store of its own;
    and the store's unique constraints in column order."""

    async def go() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        store = Database(f"sqlite+aiosqlite:///{folder / 'tenant.db'}", transactional_ddl=True)
        try:
            await up(store, foundation(layer))
            before, _ = await take_snapshot(store)
            await up(store, [layer])
            after, _ = await take_snapshot(store)
            async with store.engine.connect() as connection:
                unique = await connection.run_sync(_unique_in_order)
            return before, after, unique
        finally:
            await store.dispose()

    return asyncio.run(go())


@pytest.fixture(scope="module")
def created(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """For each layer: the tables it creates, as the store describes them after applying it."""
    result = {}
    for layer in every_layer():
        before, after, unique = _describe_alone(layer, tmp_path_factory.mktemp(layer.name))
        result[layer.key] = {
            table: {**after["tables"][table], "unique_in_order": unique[table]}
            for table in business_tables(after) - business_tables(before)
        }
    return result


def test_no_table_is_created_by_two_layers(created: dict[str, dict[str, Any]]) -> None:
    owners: dict[str, list[str]] = {}
    for key, tables in created.items():
        for table in tables:
            owners.setdefault(table, []).append(key)
    shared = {table: keys for table, keys in owners.items() if len(keys) > 1}
    assert shared == {}
    assert "events" in created["modules/events"] and "group_events" in created["templates/community_group"]


def test_the_layers_create_at_least_forty_tables(created: dict[str, dict[str, Any]]) -> None:
    assert len(created["basic"]) == 6
    every = {table for tables in created.values() for table in tables}
    assert len(every) >= 40, sorted(every)
    for key, tables in created.items():
        if key.startswith("modules/"):
            assert 2 <= len(tables) <= 5, f"{key} creates {sorted(tables)}"


def test_a_layer_refers_only_to_basic_its_own_tables_and_its_requirements(
    created: dict[str, dict[str, Any]],
) -> None:
    """Any template goes with any module set, so a module never refers to a template's tables, nor
    to a module it does not require; a template refers only to basic and itself."""
    found = catalogue()
    for layer in [*found.templates.values(), *found.modules.values()]:
        allowed = set(created["basic"]) | set(created[layer.key])
        for requirement in requirements(layer):
            allowed |= set(created[requirement.key])
        for table, shape in created[layer.key].items():
            for fk in shape["foreign_keys"]:
                assert fk["references"] in allowed, f"{layer.key}: {table} refers to {fk['references']}"


def test_every_business_table_can_be_scoped_to_a_unit(created: dict[str, dict[str, Any]]) -> None:
    """A nullable unit_id to basic's units (SET NULL when the unit goes), indexed, and created_at."""
    for key, tables in created.items():
        if key == "basic":
            continue
        for table, shape in tables.items():
            columns = {column["name"]: column for column in shape["columns"]}
            assert "unit_id" in columns and columns["unit_id"]["nullable"], f"{table}.unit_id"
            assert {
                "columns": ["unit_id"],
                "references": "units",
                "referred_columns": ["id"],
                "on_delete": "SET NULL",
            } in shape["foreign_keys"], f"{table}.unit_id → units.id"
            assert any(index["columns"][0] == "unit_id" for index in shape["indexes"]), (
                f"{table}.unit_id index"
            )
            created_at = columns.get("created_at")
            assert created_at and not created_at["nullable"], f"{table}.created_at"
            assert "CURRENT_TIMESTAMP" in str(created_at["default"]).upper(), f"{table}.created_at default"


def test_every_foreign_key_is_indexed_and_money_is_numeric_12_2(created: dict[str, dict[str, Any]]) -> None:
    for tables in created.values():
        for table, shape in tables.items():
            # A foreign key's column leads an index, a unique constraint or the primary key.
            leading = {index["columns"][0] for index in shape["indexes"]}
            leading |= {columns[0] for columns in shape["unique_in_order"]}
            leading |= set(shape["primary_key"][:1])
            for fk in shape["foreign_keys"]:
                assert fk["columns"][0] in leading, f"{table}.{fk['columns'][0]} is not indexed"
            for column in shape["columns"]:
                if column["type"].startswith(("NUMERIC", "DECIMAL")):
                    assert column["type"] == "NUMERIC(12, 2)", f"{table}.{column['name']}"


def test_revision_ids_are_unique_across_every_layer() -> None:
    seen: dict[str, str] = {}
    for layer in every_layer():
        for revision in revisions(layer):
            assert revision.startswith(f"{layer.name}_"), f"{layer.key}: {revision}"
            assert revision not in seen, f"{revision} is in {seen.get(revision)} and {layer.key}"
            seen[revision] = layer.key
    assert revisions(catalogue().modules["events"]) == ["events_0001", "events_0002"]
    assert all(layer.kind is not LayerKind.CUSTOM for layer in every_layer())
