"""The boundaries between the packages, as code (in the manner of Sentry's silo tests).

`tenantry/` (the command line) puts the others together and nothing imports it; `web/` may import
`services/` and `workers/`; `workers/` imports `services/`; `services/` imports neither. Inside `services/`, the isolation core (`services/tenancy`), the layers,
the audit trail and the accounts import none of the features built on them. Inside
`web/`, the JSON API and the two portals do not import one another. Every `import` and `from …
import` is read with `ast`, those inside functions included, and so is every string that names one
of our modules (`"web.asgi:app"`). A violation names the file, the line and the import.

The API-and-portals rule holds with no exception: KNOWN_PORTAL_IMPORTS, the place for one, is empty
and checked exactly (what the two portals both show lives in `web/backup_pages.py`; use cases live
in services).

Every model is on exactly one side, landlord or tenant, and no foreign key crosses between them.
"""

from __future__ import annotations

import ast
import asyncio
import importlib
import pkgutil
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

import services
from services.db import Database
from services.layers.catalogue import load_catalogue
from services.layers.migrator import upgrade_layer
from services.layers.ownership import TENANT_COLUMN
from services.models import LandlordBase
from services.models.tenant import TenantBase, TenantRow
from services.settings import PROJECT_ROOT

PACKAGES = ("tenantry", "services", "workers", "web")
_DOTTED = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
IMPORT_STRING = re.compile(rf"(?P<module>{_DOTTED})(?::(?P<attribute>{_DOTTED}))?")


@dataclass(frozen=True)
class Boundary:
    """Code under `inside` (a folder of the project) may not import `forbidden` (dotted prefixes)."""

    inside: str
    forbidden: tuple[str, ...]


LAYERS = (
    Boundary("services", ("web", "workers", "tenantry")),
    Boundary("workers", ("web", "tenantry")),
    Boundary("web", ("tenantry",)),
)
#: Inside services, the foundations under the features. The isolation core (services/tenancy:
#: the registry, stores, scope, access, scoped sessions and connections) and the layers it
#: migrates are built on by tenant data, people, modules, backups and provisioning, and import none
#: of them; audit and accounts sit under the core or beside it.
FEATURES = (
    "services.tenant_data",
    "services.people",
    "services.modules",
    "services.usage",
    "services.tenant_settings",
    "services.backups",
    "services.provisioning",
    "services.dashboard",
    "services.installation",
)
FOUNDATIONS = (
    Boundary("services/tenancy", (*FEATURES, "services.jobs", "services.accounts")),
    Boundary("services/layers", (*FEATURES, "services.jobs", "services.accounts", "services.tenancy")),
    Boundary("services/audit", (*FEATURES, "services.jobs", "services.accounts", "services.tenancy")),
    Boundary("services/accounts", FEATURES),
)
PORTALS = (
    Boundary("web/api", ("web.landlord", "web.tenant")),
    Boundary("web/landlord", ("web.tenant", "web.api")),
    Boundary("web/tenant", ("web.landlord", "web.api")),
)

#: Imports between the API and the portals that are allowed all the same, as (file, module): none.
#: The API imports no portal, and neither portal the other (what both show of a tenant's backups is
#: in web/backup_pages.py). It is checked exactly, so an import not listed here fails, and so would
#: an entry that no longer holds.
KNOWN_PORTAL_IMPORTS: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class Import:
    file: str
    line: int
    module: str
    statement: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.statement}"


def _module_of(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_our_module(dotted: str) -> bool:
    path = PROJECT_ROOT.joinpath(*dotted.split("."))
    return dotted.split(".")[0] in PACKAGES and (path.with_suffix(".py").is_file() or path.is_dir())


def _imported(node: ast.AST, package: str) -> Iterator[tuple[str, str]]:
    """(module, statement) for each module `node` imports; `from a import b` imports `a` and `a.b`."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name, f"import {alias.name}"
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*anchor, *filter(None, [node.module])])
        names = ", ".join(alias.name for alias in node.names)
        statement = f"from {'.' * node.level}{node.module or ''} import {names}"
        yield base, statement
        for alias in node.names:
            yield f"{base}.{alias.name}", statement
    elif isinstance(node, ast.Constant) and isinstance(node.value, str):
        # An import string, as uvicorn and Dramatiq take them: "web.asgi:app", "services.jobs". A
        # bare "tenantry" is a name (of a database, a role), not the package.
        named = IMPORT_STRING.fullmatch(node.value)
        if named and (named["attribute"] or "." in named["module"]) and _is_our_module(named["module"]):
            yield named["module"], repr(node.value)


def imports_in(folder: str) -> list[Import]:
    found: list[Import] = []
    for path in sorted((PROJECT_ROOT / folder).rglob("*.py")):
        module = _module_of(path)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        file = path.relative_to(PROJECT_ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text(), filename=file)):
            for imported, statement in _imported(node, package):
                found.append(Import(file, getattr(node, "lineno", 0), imported, statement))
    return found


def crossings(boundary: Boundary) -> list[tuple[Import, str]]:
    """Each import across `boundary`, with the forbidden module it reaches (one per statement)."""
    found: dict[tuple[str, int, str], tuple[Import, str]] = {}
    for each in imports_in(boundary.inside):
        for forbidden in boundary.forbidden:
            if each.module == forbidden or each.module.startswith(forbidden + "."):
                # The shortest name that crosses is the module: `from web.tenant.data import
                # add_record` reaches web.tenant.data, `from web import tenant` web.tenant.
                key = (each.file, each.line, each.statement)
                if key not in found or len(each.module) < len(found[key][0].module):
                    found[key] = (each, forbidden)
    return sorted(found.values(), key=lambda pair: (pair[0].file, pair[0].line))


def test_the_collector_sees_imports_in_functions_and_import_strings() -> None:
    cli = imports_in("tenantry")
    assert any(each.module == "web.asgi" and each.statement == "'web.asgi:app'" for each in cli)
    assert any(each.module == "workers.runner" for each in cli), "imported inside cmd_worker"
    assert not any(each.module.startswith("tenantry.") for each in imports_in("web")), (
        "strings such as 'tenantry.switch' name no module and are no import"
    )


@pytest.mark.parametrize("boundary", LAYERS + FOUNDATIONS, ids=lambda boundary: boundary.inside)
def test_no_package_imports_one_above_it(boundary: Boundary) -> None:
    wrong = [f"{each} (reaches {forbidden})" for each, forbidden in crossings(boundary)]
    assert not wrong, f"{boundary.inside}/ may not import {', '.join(boundary.forbidden)}:\n" + "\n".join(
        wrong
    )


#: Opening a tenant session by hand: only entering a tenant (services/tenancy/entry.py) does it, so
#: that scope, store connection and row security always come together.
SESSION_OPENERS = ("services.tenancy.sessions.scoped_session", "services.tenancy.sessions.open_session")


def test_tenant_sessions_are_opened_only_by_entering_a_tenant() -> None:
    wrong = [
        str(each)
        for folder in PACKAGES
        for each in imports_in(folder)
        if each.module in SESSION_OPENERS and not each.file.startswith("services/tenancy/")
    ]
    assert not wrong, "enter the tenant (services.tenancy.entry.enter_tenant) instead:\n" + "\n".join(wrong)


def test_the_api_and_the_portals_do_not_import_one_another() -> None:
    found = [each for boundary in PORTALS for each, _ in crossings(boundary)]
    new = [str(each) for each in found if (each.file, each.module) not in KNOWN_PORTAL_IMPORTS]
    gone = sorted(KNOWN_PORTAL_IMPORTS - {(each.file, each.module) for each in found})
    assert not new, "a new import between the API and the portals (move the use case into services):\n" + (
        "\n".join(new)
    )
    assert not gone, f"no longer imported, so delete from KNOWN_PORTAL_IMPORTS: {gone}"


# Models: one side each (landlord or tenant), no key across.


def _every_declarative_class() -> set[type[DeclarativeBase]]:
    """Every declarative class in services (where models live), whichever base it has."""
    for module in pkgutil.walk_packages(services.__path__, "services."):
        importlib.import_module(module.name)
    found: set[type[DeclarativeBase]] = set()
    pending: list[type[DeclarativeBase]] = [DeclarativeBase]
    while pending:
        subclasses: list[type[DeclarativeBase]] = pending.pop().__subclasses__()
        for subclass in subclasses:
            if subclass not in found:
                found.add(subclass)
                pending.append(subclass)
    return found


def _mapped_classes(base: type[DeclarativeBase]) -> set[type]:
    return {mapper.class_ for mapper in base.registry.mappers}


def test_every_model_is_on_exactly_one_side() -> None:
    landlord, tenant = _mapped_classes(LandlordBase), _mapped_classes(TenantBase)
    assert landlord and tenant
    assert not landlord & tenant
    assert LandlordBase.metadata is not TenantBase.metadata
    for model in tenant:
        assert issubclass(model, TenantRow), f"{model.__name__} is a tenant model without tenant_id"
        assert model.__table__.metadata is TenantBase.metadata  # type: ignore[attr-defined]
    for model in landlord:
        assert not issubclass(model, TenantRow), f"{model.__name__} is a landlord model marked as tenant data"
        assert model.__table__.metadata is LandlordBase.metadata  # type: ignore[attr-defined]
    for model in _every_declarative_class() - {LandlordBase, TenantBase}:
        sides = issubclass(model, LandlordBase) + issubclass(model, TenantBase)
        assert sides == 1, f"{model.__module__}.{model.__qualname__} is on {sides} sides, not one"


def test_no_foreign_key_crosses_the_sides() -> None:
    for metadata in (LandlordBase.metadata, TenantBase.metadata):
        for table in metadata.tables.values():
            for foreign_key in table.foreign_keys:
                assert foreign_key.column.table.metadata is metadata, (
                    f"{table.name}.{foreign_key.parent.name} refers to the other side"
                )


def test_the_tenant_models_match_what_the_basic_layer_creates(tmp_path: Path) -> None:
    """The models describe the store the migrations build: same tables, same columns."""

    async def reflect() -> MetaData:
        store = Database(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}", transactional_ddl=True)
        try:

            async def ignore(_run: object) -> None:
                return None

            await upgrade_layer(store, load_catalogue(PROJECT_ROOT / "layers").basic, ignore)
            metadata = MetaData()
            async with store.engine.connect() as connection:
                await connection.run_sync(metadata.reflect)
            return metadata
        finally:
            await store.dispose()

    built = asyncio.run(reflect())
    for name, table in TenantBase.metadata.tables.items():
        assert name in built.tables, f"the basic layer creates no {name} table"
        assert set(table.c.keys()) == set(built.tables[name].c.keys()), name
        assert TENANT_COLUMN in built.tables[name].c
        assert {c.name for c in table.primary_key} == {c.name for c in built.tables[name].primary_key}, name
    made = {name for name in built.tables if not name.startswith("layer_version_")}
    assert made == set(TenantBase.metadata.tables), "every basic table has its model"
