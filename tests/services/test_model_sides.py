"""Every model belongs to exactly one side, landlord or tenant, and no key crosses between them."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import MetaData

from services.db import Database
from services.layers.catalogue import load_catalogue
from services.layers.migrator import upgrade_layer
from services.layers.ownership import TENANT_COLUMN
from services.models import LandlordBase
from services.models.tenant import TenantBase, TenantRow
from services.settings import PROJECT_ROOT


def _mapped_classes(base: type) -> set[type]:
    return {mapper.class_ for mapper in base.registry.mappers}  # type: ignore[attr-defined]


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
