"""Running a layer's migrations on a tenant store with Alembic's machinery.

Each layer is its own Alembic script directory (layers/<layer>/versions) with its own version
table in the store, so every layer of every tenant has its own recorded version. Revisions run
one at a time, each in its own transaction (transactional DDL on SQLite as on PostgreSQL), so a
crash leaves every revision applied whole or not at all, and the caller records each one. Asked
to (`atomic=True`), all the revisions of one call run in one transaction instead: a failure in
any of them leaves the layer exactly as it was (enabling or dropping a module)."""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from alembic.config import Config
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Column,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    bindparam,
    select,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.db import Database, broken_foreign_key, sqlite_foreign_keys_off
from services.errors import DomainError
from services.layers.catalogue import Layer
from services.layers.ownership import TENANT_LAYER
from services.layers.replay import StoreWithoutRows
from services.layers.snapshot import version_rows

UP, DOWN = "up", "down"
#: How asyncpg's errors begin, as SQLAlchemy's adapter passes them on.
_DRIVER_CLASS = re.compile(r"^<class '[\w.]+'>: ")
BASE = "base"


@dataclass(frozen=True)
class RevisionRun:
    """One revision of one layer, applied or reverted, as the landlord's history records it."""

    layer: str
    revision: str
    direction: str
    duration_ms: float
    error: str | None = None
    #: Where the layer is once the run has committed: the revision applied, or the one below the
    #: revision reverted (None: no revision left).
    reached: str | None = None

    @property
    def outcome(self) -> str:
        return "failed" if self.error else "succeeded"


Recorder = Callable[[RevisionRun], Awaitable[None]]


@dataclass(frozen=True)
class Timeouts:
    """How long one tenant's revision may wait for a lock, and run, before it fails (a rollout
    sets them, so that one busy tenant fails fast and the others go on), on PostgreSQL. On SQLite
    the wait for the store's write lock is its engine's busy timeout (StoreLocation.open)."""

    lock_ms: int
    statement_ms: int


class MigrationFailed(DomainError):
    def __init__(self, run: RevisionRun) -> None:
        verb = "apply" if run.direction == UP else "revert"
        super().__init__(f"Could not {verb} {run.layer} revision {run.revision}: {run.error}")
        self.run = run


def script_directory(path: Path) -> tuple[Config, ScriptDirectory]:
    """The Alembic scripts of a layer (or of the landlord), read again only when its revision
    files change: a developer adds (or fixes) a tenant's custom revision and it is applied on
    request, without a restart; otherwise reading them (every file parsed) is paid once."""
    return _read_script(path, _revision_files(path / "versions"))


def _revision_files(versions: Path) -> tuple[tuple[str, int, int], ...]:
    """Each revision file's name, time and size."""
    try:
        entries = list(os.scandir(versions))
    except FileNotFoundError:
        return ()
    return tuple(
        sorted(
            (entry.name, stat.st_mtime_ns, stat.st_size)
            for entry in entries
            if entry.name.endswith(".py")
            for stat in (entry.stat(),)
        )
    )


@lru_cache(maxsize=256)
def _read_script(path: Path, _files: tuple[tuple[str, int, int], ...]) -> tuple[Config, ScriptDirectory]:
    config = Config()
    config.set_main_option("script_location", str(path))
    return config, ScriptDirectory.from_config(config)


def revisions(layer: Layer) -> list[str]:
    """The layer's revisions from the first to the head (a layer's history is a straight line)."""
    return list(_in_order(script_directory(layer.path)[1]))


@lru_cache(maxsize=256)
def _in_order(script: ScriptDirectory) -> tuple[str, ...]:
    return tuple(revision.revision for revision in reversed(list(script.walk_revisions())))


def needs_quiet(layer: Layer, revision: str) -> bool:
    """Whether the revision says it needs its tenant quiet while it runs (`needs_quiet = True` in
    its file: a table rewrite, say); the tenant's portal then shows maintenance meanwhile."""
    module = script_directory(layer.path)[1].get_revision(revision).module
    return bool(getattr(module, "needs_quiet", False))


def head(layer: Layer) -> str | None:
    return script_directory(layer.path)[1].get_current_head()


class _Skipped(Exception):
    """The revision had already run (another migrator of the same store got there first)."""


def _migrate(
    connection: Connection, layer: Layer, revision: str, direction: str, without_rows: StoreWithoutRows | None
) -> None:
    """Run one revision's upgrade() or downgrade() with Alembic's operations and move the layer's
    version row, in the caller's transaction (the store's migration lock held). The version is
    read here, under that lock: a revision another migrator of the same store (a shared store)
    ran meanwhile is skipped (_Skipped), and a layer found somewhere unexpected is an error.
    `without_rows`: the store holds no rows, and the revision may be sent as the SQL it sent on the same
    schema before (services.layers.replay)."""
    ordered = revisions(layer)
    index = ordered.index(revision)
    before, after = (ordered[index - 1] if index else None, revision)
    if direction == DOWN:
        before, after = revision, before
    version = _version_table(layer.version_table)
    if before is None:
        version.create(connection, checkfirst=True)
    now = connection.execute(select(version.c.version_num)).scalar()
    if now != before:
        position = ordered.index(now) if now in ordered else -1
        if (direction == UP and position >= index) or (direction == DOWN and position < index):
            if without_rows is not None:
                without_rows.lose_track()  # another migrator changed the store
            raise _Skipped(revision)
        raise RuntimeError(f"{layer.key} is at {now or 'no revision'} in the store, not at {before}")
    connection.info[TENANT_LAYER] = True  # every table it creates gets its tenant_id (ownership.py)

    def run() -> None:
        context = MigrationContext.configure(connection, opts={"version_table": layer.version_table})
        module = script_directory(layer.path)[1].get_revision(revision).module
        with Operations.context(context):
            module.upgrade() if direction == UP else module.downgrade()

    if without_rows is None:
        run()
    else:
        files = _revision_files(layer.path / "versions")
        without_rows.run_or_replay(connection, [layer.key, revision, direction, files], run)
    if before is None:
        connection.execute(version.insert().values(version_num=after))
    elif after is None:  # a layer taken off entirely leaves no trace, not even its version table
        version.drop(connection)
    else:
        connection.execute(version.update().values(version_num=after))


@lru_cache(maxsize=256)
def _version_table(name: str) -> Table:
    """A layer's version table, as Alembic makes it."""
    return Table(
        name,
        MetaData(),
        Column("version_num", String(32), nullable=False),
        PrimaryKeyConstraint("version_num", name=f"{name}_pkc"),
    )


#: Alembic's `op` and `context` are module-wide proxies, installed for each migration: two threads
#: migrating at once (a web loop replaying a footprint beside a worker's loop, or two worker threads)
#: would each run the other's operations, on the other's store. So one migration at a time in a
#: process, whatever its thread.
_ALEMBIC_IN_USE = threading.Lock()
#: How often a migration waiting for its turn looks again.
_TURN_POLL_SECONDS = 0.005


@asynccontextmanager
async def alembic_turn() -> AsyncIterator[None]:
    """The process's one turn at Alembic, for a block. The lock is asked for without blocking, so
    a loop whose migration waits keeps serving, and a waiter that is cancelled holds nothing."""
    # Polled: the holder may be another thread's loop, which no asyncio.Event reaches.
    while not _ALEMBIC_IN_USE.acquire(blocking=False):  # noqa: ASYNC110
        await asyncio.sleep(_TURN_POLL_SECONDS)
    try:
        yield
    finally:
        _ALEMBIC_IN_USE.release()


async def current_revision(store: Database, layer: Layer) -> str | None:
    return (await current_revisions(store, [layer]))[layer.key]


_VERSION_TABLES = {
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN :names",
    "postgresql": "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename IN :names",
}


async def current_revisions(store: Database, layers: Sequence[Layer]) -> dict[str, str | None]:
    """Where each layer is in the store (None: not there), read in two statements on one
    connection whatever the number of layers: which version tables exist, then their rows.
    Alembic's own reading reflects the table first, at several times the cost, once per layer;
    a rollout reads every layer of every tenant."""
    found: dict[str, str | None] = {layer.key: None for layer in layers}
    by_table = {layer.version_table: layer.key for layer in layers}
    async with store.engine.connect() as connection:
        await store.in_schema(connection)
        which = text(_VERSION_TABLES[connection.dialect.name]).bindparams(bindparam("names", expanding=True))
        tables = list(await connection.scalars(which, {"names": list(by_table)}))
        if tables:
            for name, revision in await connection.execute(version_rows(tables)):
                found[by_table[name]] = revision
    return found


async def _settle(connection: AsyncConnection, store: Database, timeouts: Timeouts | None) -> None:
    """A PostgreSQL migration's transaction: in its schema, with its timeouts, and then holding
    the schema's migration lock (one migrator per schema, across processes). Two statements."""
    settings = {
        "search_path": store.search_path(connection),
        "lock_timeout": str(timeouts.lock_ms) if timeouts else None,
        "statement_timeout": str(timeouts.statement_ms) if timeouts else None,
    }
    if chosen := {name: value for name, value in settings.items() if value is not None}:
        calls = ", ".join(f"set_config('{name}', :{name}, true)" for name in chosen)
        await connection.execute(text(f"SELECT {calls}"), chosen)
    await connection.exec_driver_sql(
        "SELECT pg_advisory_xact_lock(hashtext('tenantry.migrate.' || current_schema()))"
    )


async def _run_revisions(
    store: Database,
    layer: Layer,
    moves: list[tuple[str, str]],
    direction: str,
    timeouts: Timeouts | None = None,
    without_rows: StoreWithoutRows | None = None,
) -> list[RevisionRun]:
    """Run revisions, each given as (revision, destination), in one transaction: all of them or
    none. On SQLite, foreign keys are off while they run (so a table rebuilt by batch mode does not
    cascade-delete its children) and checked after each revision. Returns a run per revision
    reached (none for one that another migrator ran meanwhile); on failure the last carries the
    error and those before it say they were undone."""
    runs: list[RevisionRun] = []
    started = time.perf_counter()
    revision = moves[0][0]
    try:
        # Connected first (slow on a new server connection), then one migration at a time.
        async with (
            store.engine.connect() as connection,
            alembic_turn(),
            sqlite_foreign_keys_off(connection) as sqlite,
            connection.begin(),
        ):
            if not sqlite:
                await _settle(connection, store, timeouts)
            for revision, destination in moves:
                try:
                    await connection.run_sync(_migrate, layer, revision, direction, without_rows)
                except _Skipped:
                    continue
                if sqlite and (broken := await broken_foreign_key(connection)):
                    raise RuntimeError(f"the revision leaves a broken foreign key in {broken}")
                elapsed = (time.perf_counter() - started) * 1000
                reached = destination if destination != BASE else None
                runs.append(RevisionRun(layer.key, revision, direction, elapsed, reached=reached))
                started = time.perf_counter()
    except Exception as exc:
        if without_rows is not None:
            without_rows.lose_track()  # rolled back, whatever the revisions said they left
        error = _in_words(exc)
        # `revision`: the one running, or the last one when the commit failed
        undone = f"undone: revision {revision} failed in the same transaction"
        return [
            *(replace(run, error=undone) for run in runs if run.revision != revision),
            RevisionRun(layer.key, revision, direction, (time.perf_counter() - started) * 1000, error),
        ]
    return runs


def _in_words(error: Exception) -> str:
    """A failure as the database said it, without the driver's wrapping (shown to landlord staff):
    "CHECK constraint failed: ck_events_capacity", not the exception's class path."""
    if isinstance(error, DBAPIError) and error.orig is not None:
        said = _DRIVER_CLASS.sub("", str(error.orig))
    else:
        said = f"{type(error).__name__}: {error}"
    return said.strip().splitlines()[0]


async def _run_and_record(
    store: Database,
    layer: Layer,
    moves: list[tuple[str, str]],
    direction: str,
    record: Recorder,
    atomic: bool,
    timeouts: Timeouts | None,
    without_rows: StoreWithoutRows | None = None,
) -> None:
    """Run the revisions (in one transaction when `atomic`, else one each), record every run, and
    raise MigrationFailed at the first failure."""
    batches = [moves] if atomic else [[move] for move in moves]
    for batch in batches:
        if not batch:
            continue
        runs = await _run_revisions(store, layer, batch, direction, timeouts, without_rows)
        for run in runs:
            await record(run)
        if runs and runs[-1].error:
            raise MigrationFailed(runs[-1])


def _upward(ordered: list[str], current: str | None, target: str | None) -> list[tuple[str, str]]:
    """(revision, destination) for each revision above `current` up to `target` (None: the head)."""
    start = ordered.index(current) + 1 if current else 0
    stop = ordered.index(target) + 1 if target else len(ordered)
    return [(revision, revision) for revision in ordered[start:stop]]


def _downward(ordered: list[str], current: str | None, target: str) -> list[tuple[str, str]]:
    """(revision, destination) for each revision from `current` down to above `target` (BASE: all)."""
    if current is None:
        return []
    stop = ordered.index(target) + 1 if target != BASE else 0
    return [
        (ordered[index], ordered[index - 1] if index > 0 else BASE)
        for index in range(ordered.index(current), stop - 1, -1)
    ]


async def upgrade_layer(
    store: Database,
    layer: Layer,
    record: Recorder,
    target: str | None = None,
    *,
    atomic: bool = False,
    timeouts: Timeouts | None = None,
    without_rows: StoreWithoutRows | None = None,
) -> int:
    """Apply the layer's missing revisions up to `target` (the head by default); returns how many.
    `atomic`: all of them in one transaction, so a failure applies none. `without_rows`: the store
    is being built and holds no rows, so a revision may be sent as the SQL it sent on the same
    schema before (services.layers.replay)."""
    moves = _upward(revisions(layer), await current_revision(store, layer), target)
    await _run_and_record(store, layer, moves, UP, record, atomic, timeouts, without_rows)
    return len(moves)


async def downgrade_layer(
    store: Database,
    layer: Layer,
    record: Recorder,
    target: str = BASE,
    *,
    atomic: bool = False,
    timeouts: Timeouts | None = None,
) -> int:
    """Revert the layer's revisions down to `target` (all of them by default); returns how many.
    `atomic`: all of them in one transaction, so a failure reverts none."""
    moves = _downward(revisions(layer), await current_revision(store, layer), target)
    await _run_and_record(store, layer, moves, DOWN, record, atomic, timeouts)
    return len(moves)


async def move_layer(
    store: Database,
    layer: Layer,
    current: str | None,
    target: str | None,
    record: Recorder,
    *,
    timeouts: Timeouts | None = None,
) -> int:
    """Take the layer from `current` (just read, with current_revisions) to `target` (None: no
    revision), up or down, one revision per transaction; returns how many revisions ran."""
    ordered = revisions(layer)
    position = {revision: index for index, revision in enumerate(ordered)}
    if position.get(target or "", -1) >= position.get(current or "", -1):
        moves, direction = _upward(ordered, current, target) if target else [], UP
    else:
        moves, direction = _downward(ordered, current, target or BASE), DOWN
    await _run_and_record(store, layer, moves, direction, record, False, timeouts)
    return len(moves)
