"""Golden images: a store already built for one (backend, isolation, template, modules, layer
heads), cloned instead of replaying migrations. A clone counts only when its snapshot hash equals
the one recorded from the replay that built the image."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.db import Database
from services.layers.catalogue import Catalogue
from services.layers.migrator import head
from services.layers.snapshot import take_snapshot
from services.models import GoldenImage, IsolationMode
from services.settings import Settings
from services.tenancy.stores import (
    StoreLocation,
    allocate_store,
    can_copy_schemas,
    drop_store,
    plan_store,
    store_exists,
)


def golden_key(catalogue: Catalogue, location: StoreLocation, template: str, modules: list[str]) -> str:
    """Names what the image holds: any change of layer head, template or module set is a new key."""
    layers = catalogue.layers_for(template, modules)
    recipe = {
        "backend": location.backend,
        "server": location.server,
        "isolation": location.isolation,
        "layers": [[layer.key, head(layer)] for layer in layers],
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def supports_cloning(location: StoreLocation) -> bool:
    """SQLite files are copied, PostgreSQL databases created from a template, and schemas copied
    through pg_dump; without pg_dump, schema-isolated tenants replay their migrations."""
    if location.is_shared:
        return False  # the store exists already and holds other tenants
    return location.isolation != IsolationMode.SCHEMA or can_copy_schemas()


def golden_location(settings: Settings, location: StoreLocation, key: str) -> StoreLocation:
    return plan_store(
        settings,
        key[:24],
        location.isolation,
        purpose="golden",
        backend=location.backend,
        server=location.server_name,
    )


async def clone_golden(settings: Settings, location: StoreLocation, key: str) -> None:
    """Make the store at `location` a copy of the image for `key`. An image never changes while it
    exists, so a schema image's script is read once (services.tenancy.stores)."""
    await allocate_store(location, template=golden_location(settings, location, key), unchanging=True)


async def find_golden(session: AsyncSession, settings: Settings, location: StoreLocation, key: str):  # type: ignore[no-untyped-def]
    """The usable image for `key` (recorded and still present), or None."""
    image = await session.scalar(select(GoldenImage).where(GoldenImage.key == key))
    if image is None or not await store_exists(golden_location(settings, location, key)):
        return None
    return image


async def capture_golden(
    session: AsyncSession, settings: Settings, tenant_store: StoreLocation, key: str, sha256: str
) -> bool:
    """Keep a copy of a freshly replayed store as the image for `key`. The tenant store must have
    no open connections (PostgreSQL copies only idle databases). Returns False if one exists."""
    if await session.get(GoldenImage, key) is not None:
        return False
    target = golden_location(settings, tenant_store, key)
    await allocate_store(target, template=tenant_store)
    try:
        async with session.begin_nested():
            session.add(
                GoldenImage(key=key, backend=tenant_store.backend, store_name=target.name, sha256=sha256)
            )
    except IntegrityError:
        return False  # another tenant with the same recipe recorded it first; both copies are equal
    return True


async def discard_golden(
    session: AsyncSession, settings: Settings, location: StoreLocation, key: str
) -> None:
    """Forget an image that no longer matches its record, so the next replay captures a good one."""
    image = await session.get(GoldenImage, key)
    if image is not None:
        await session.delete(image)
    await drop_store(golden_location(settings, location, key))


async def store_snapshot(
    location: StoreLocation, only: frozenset[str] | None = None, *, opened: Database | None = None
) -> tuple[dict[str, Any], str]:
    """The schema snapshot of the store at `location` (of the tables `only`) and its hash, read
    through the engine `opened` on it when the caller keeps one."""
    store = opened or location.open()
    try:
        return await take_snapshot(store, only)
    finally:
        if opened is None:
            await store.dispose()
