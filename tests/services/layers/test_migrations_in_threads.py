"""Migrations in several threads of one process at once (a web loop replaying a footprint beside
the embedded worker's loop, or two worker threads): each store gets exactly its own layers, as if
each had been migrated alone. Alembic's `op` is one module-wide proxy, so without one turn at a
time per process a thread's operations ran on another thread's store."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from services.db import Database
from services.layers.catalogue import Layer
from tests.services.layers.stores import Runs, catalogue, tables_of, up

#: Migrating a template takes well under a second here; one still running after this is stuck.
STUCK_SECONDS = 60


def _migrated(
    path: Path, layers: list[Layer], ready: threading.Barrier | None = None
) -> tuple[set[str], list[str]]:
    async def go() -> tuple[set[str], list[str]]:
        store = Database(f"sqlite+aiosqlite:///{path}", transactional_ddl=True)
        runs = Runs()
        try:
            if ready is not None:
                ready.wait()  # every thread starts migrating together
            await up(store, layers, runs)
            return await tables_of(store), [
                f"{run.layer} {run.revision}: {run.error}" for run in runs.failures()
            ]
        finally:
            await store.dispose()

    return asyncio.run(go())


def test_stores_migrated_in_threads_at_once_each_get_their_own_layers(tmp_path: Path) -> None:
    layers = catalogue()
    stacks = [
        [layers.basic, template] for template in sorted(layers.templates.values(), key=lambda t: t.name)
    ]
    alone = [_migrated(tmp_path / f"alone-{number}.db", stack)[0] for number, stack in enumerate(stacks)]

    ready = threading.Barrier(len(stacks))
    results: list[tuple[set[str], list[str]] | BaseException] = [set()] * len(stacks)  # type: ignore[list-item]

    def run(number: int) -> None:
        try:
            results[number] = _migrated(tmp_path / f"together-{number}.db", stacks[number], ready)
        except BaseException as error:  # reported below, with the others
            results[number] = error

    threads = [threading.Thread(target=run, args=(number,), daemon=True) for number in range(len(stacks))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=STUCK_SECONDS)
    assert not any(thread.is_alive() for thread in threads), "a migration is stuck on another's store"

    assert [result if isinstance(result, BaseException) else result[1] for result in results] == [
        [] for _ in stacks
    ]
    assert [result[0] for result in results if not isinstance(result, BaseException)] == alone
    assert len({frozenset(tables) for tables in alone}) == len(stacks), (
        "each template makes tables of its own"
    )
