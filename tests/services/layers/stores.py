"""Helpers for the layer tests: the real catalogue, the layers each layer stands on, and driving
layers up and down a tenant store the way provisioning does (through services.layers.migrator)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import text

from services.db import Database
from services.layers.catalogue import Catalogue, Layer, LayerKind, load_catalogue
from services.layers.migrator import RevisionRun, downgrade_layer, upgrade_layer
from services.layers.snapshot import VERSION_TABLE_PREFIX, take_snapshot

LAYERS = Path(__file__).resolve().parents[3] / "layers"
T = TypeVar("T")


@dataclass(frozen=True)
class Store:
    """Where a tenant store lives: a URL, and on PostgreSQL in schema mode, the schema."""

    url: str
    schema: str | None = None

    def run(self, work: Callable[[Database], Awaitable[T]]) -> T:
        async def go() -> T:
            database = Database(self.url, schema=self.schema, transactional_ddl=True)
            try:
                return await work(database)
            finally:
                await database.dispose()

        return asyncio.run(go())

    @classmethod
    def new_schema(cls, url: str) -> Store:
        """A new, empty schema in the PostgreSQL database at `url`."""
        schema = f"tenant_{secrets.token_hex(4)}"

        async def create_schema(database: Database) -> None:
            async with database.engine.begin() as connection:
                await connection.execute(text(f'CREATE SCHEMA "{schema}"'))

        cls(url).run(create_schema)
        return cls(url, schema)


def catalogue() -> Catalogue:
    return load_catalogue(LAYERS)


def every_layer() -> list[Layer]:
    """Basic, then each template, then each module."""
    found = catalogue()
    return [found.basic, *found.templates.values(), *found.modules.values()]


def requirements(layer: Layer) -> list[Layer]:
    """Every module `layer` needs, transitively, in the order they apply (requirements first)."""
    if layer.kind is not LayerKind.MODULE:
        return []
    modules = catalogue().modules
    ordered: list[str] = []

    def visit(name: str) -> None:
        for requirement in modules[name].requires:
            visit(requirement)
        if name not in ordered:
            ordered.append(name)

    visit(layer.name)
    return [modules[name] for name in ordered[:-1]]


def foundation(layer: Layer) -> list[Layer]:
    """The layers `layer` is applied on top of: nothing for basic; basic (and requirements) else."""
    if layer.kind is LayerKind.BASIC:
        return []
    return [catalogue().basic, *requirements(layer)]


def version_key(layer: Layer) -> str:
    """How a snapshot's layer_versions names the layer."""
    return layer.version_table.removeprefix(VERSION_TABLE_PREFIX)


def business_tables(description: dict[str, Any]) -> set[str]:
    return {name for name in description["tables"] if not name.startswith(VERSION_TABLE_PREFIX)}


class Runs:
    """A recorder that keeps every revision run, as the landlord's history would."""

    def __init__(self) -> None:
        self.runs: list[RevisionRun] = []

    async def __call__(self, run: RevisionRun) -> None:
        self.runs.append(run)

    def failures(self) -> list[RevisionRun]:
        return [run for run in self.runs if run.error]


async def up(store: Database, layers: list[Layer], record: Runs | None = None) -> None:
    record = record or Runs()
    for layer in layers:
        await upgrade_layer(store, layer, record)


async def down(store: Database, layers: list[Layer], record: Runs | None = None) -> None:
    """Take `layers` off in reverse order."""
    record = record or Runs()
    for layer in reversed(layers):
        await downgrade_layer(store, layer, record)


async def tables_of(store: Database) -> set[str]:
    description, _ = await take_snapshot(store)
    return business_tables(description)
